//! Setting values as types. Settings are stored and shown as text (the seed's words); every
//! consumer (intake, outbox, Test connection, CLI) reads them through these types, so the text
//! of a value is compared in one place: here.

use std::time::Duration;

use crate::parse::parse_duration;
use crate::resolve::Effective;

macro_rules! choice {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant),+
        }

        impl $name {
            /// Every value, in the order the settings list them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored text (`kurir settings set …=<this>`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value for a stored text; `None` for anything else.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

choice! {
    /// *Metod för e-post*: how a user or the webshop sends.
    Method {
        ExchangeOnline = "exchange-online",
        Smtp = "smtp",
        None = "none",
    }
}

choice! {
    /// How Kurir gets its tokens from Entra ID.
    AuthFlow {
        /// App-only, with a client secret.
        ClientSecret = "client-secret",
        /// Delegated, the mailbox user's name and password (ROPC).
        UsernamePassword = "username-password",
        /// App-only, with a certificate.
        Certificate = "certificate",
        /// Delegated, signed in once on another device.
        DeviceCode = "device-code",
    }
}

impl AuthFlow {
    /// App-only flows act as the application (any mailbox the app may reach); the others as
    /// one signed-in user.
    pub fn is_app_only(self) -> bool {
        matches!(self, AuthFlow::ClientSecret | AuthFlow::Certificate)
    }
}

choice! {
    /// How an incoming-mail account reads its mailbox.
    Protocol {
        Graph = "graph",
        Imap = "imap",
        Pop3 = "pop3",
    }
}

choice! {
    /// TLS of an IMAP, POP3 or SMTP connection.
    TlsMode {
        StartTls = "starttls",
        Tls = "tls",
        None = "none",
    }
}

choice! {
    /// Microsoft's cloud (national clouds have other endpoints).
    Cloud {
        Global = "global",
        UsGov = "usgov",
        China = "china",
    }
}

impl Effective {
    /// *Metod för e-post*; `none` when unset.
    pub fn method(&self) -> Method {
        self.get("method")
            .and_then(Method::parse)
            .unwrap_or(Method::None)
    }

    /// The token flow; client secret when unset (the setting's default).
    pub fn auth_flow(&self) -> AuthFlow {
        self.get("auth_flow")
            .and_then(AuthFlow::parse)
            .unwrap_or(AuthFlow::ClientSecret)
    }

    /// An account's protocol, if set to one.
    pub fn protocol(&self) -> Option<Protocol> {
        self.get("protocol").and_then(Protocol::parse)
    }

    /// The cloud; global when unset.
    pub fn cloud(&self) -> Cloud {
        self.get("cloud")
            .and_then(Cloud::parse)
            .unwrap_or(Cloud::Global)
    }

    /// A TLS setting (`imap_tls`, `pop3_tls`, `smtp_tls`), if set to one.
    pub fn tls(&self, key: &str) -> Option<TlsMode> {
        self.get(key).and_then(TlsMode::parse)
    }

    /// A port setting (`imap_port`, …) as a port: `None` when unset or not a port (validation
    /// reports the latter).
    pub fn port(&self, key: &str) -> Option<u16> {
        self.get(key)?.trim().parse::<u16>().ok().filter(|p| *p > 0)
    }

    /// A duration setting (`poll_interval`, …): `None` when unset or not a duration.
    pub fn duration(&self, key: &str) -> Option<Duration> {
        parse_duration(self.get(key)?).ok()
    }

    /// A yes/no setting: `true` only when set to `true`.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key) == Some("true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{AUTH_FLOWS, CLOUDS, METHODS, PROTOCOLS, TLS_MODES};

    /// The types and the settings' own lists of values never drift apart.
    #[test]
    fn every_choice_the_settings_accept_has_a_type() {
        let names = |all: Vec<&'static str>| all;
        assert_eq!(
            names(Method::ALL.iter().map(|m| m.as_str()).collect()),
            METHODS
        );
        assert_eq!(
            names(AuthFlow::ALL.iter().map(|m| m.as_str()).collect()),
            AUTH_FLOWS
        );
        assert_eq!(
            names(Protocol::ALL.iter().map(|m| m.as_str()).collect()),
            PROTOCOLS
        );
        assert_eq!(
            names(TlsMode::ALL.iter().map(|m| m.as_str()).collect()),
            TLS_MODES
        );
        assert_eq!(
            names(Cloud::ALL.iter().map(|m| m.as_str()).collect()),
            CLOUDS
        );
        assert_eq!(
            Method::parse("exchange-online"),
            Some(Method::ExchangeOnline)
        );
        assert_eq!(Method::parse("Exchange-Online"), None);
    }
}
