//! What a caller asks for: which tenant and app, with which credential, for which scope.

use std::fmt;
use std::sync::Arc;

use secrecy::SecretString;

use crate::assertion::AssertionAlg;
use crate::authority::Authority;
use crate::scope::Scope;

/// What the user must do to complete a device-code sign-in; handed to the prompt callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCodePrompt {
    /// The short code the user types at `verification_uri`.
    pub user_code: String,
    /// Where to sign in, normally `https://microsoft.com/devicelogin`.
    pub verification_uri: String,
    /// Microsoft's ready-made instruction ("To sign in, use a web browser to open …").
    pub message: String,
    /// After this the code is useless and the sign-in must be started again.
    pub expires_at: time::OffsetDateTime,
}

/// Called once per device-code sign-in with what to show the user.
pub type DeviceCodeCallback = Arc<dyn Fn(&DeviceCodePrompt) + Send + Sync>;

/// How the app (and possibly a user) proves who it is.
#[derive(Clone)]
pub enum Credential {
    /// App-only, with a client secret (Klienthemlighet). `basic_auth` sends it as HTTP Basic
    /// instead of in the form body; Entra accepts both, some proxies only pass one.
    ClientSecret {
        secret: SecretString,
        basic_auth: bool,
    },
    /// App-only, with a certificate registered on the app and its private key (both PEM).
    Certificate {
        cert_pem: String,
        key_pem: SecretString,
        alg: AssertionAlg,
    },
    /// Delegated, with the user's password (ROPC). `client_secret` for confidential apps.
    UsernamePassword {
        username: String,
        password: SecretString,
        client_secret: Option<SecretString>,
    },
    /// Delegated, the user signs in in a browser once; Kurir keeps the refresh token.
    DeviceCode { prompt: DeviceCodeCallback },
}

impl Credential {
    /// The flow this credential is used with.
    pub fn flow(&self) -> Flow {
        match self {
            Credential::ClientSecret { .. } => Flow::ClientSecret,
            Credential::Certificate { .. } => Flow::Certificate,
            Credential::UsernamePassword { .. } => Flow::UsernamePassword,
            Credential::DeviceCode { .. } => Flow::DeviceCode,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::ClientSecret { basic_auth, .. } => f
                .debug_struct("ClientSecret")
                .field("secret", &"[redacted]")
                .field("basic_auth", basic_auth)
                .finish(),
            Credential::Certificate { alg, .. } => f
                .debug_struct("Certificate")
                .field("key_pem", &"[redacted]")
                .field("alg", alg)
                .finish_non_exhaustive(),
            Credential::UsernamePassword {
                username,
                client_secret,
                ..
            } => f
                .debug_struct("UsernamePassword")
                .field("username", username)
                .field("password", &"[redacted]")
                .field(
                    "client_secret",
                    &client_secret.as_ref().map(|_| "[redacted]"),
                )
                .finish(),
            Credential::DeviceCode { .. } => f.debug_struct("DeviceCode").finish_non_exhaustive(),
        }
    }
}

/// The authentication flow (Autentiseringsflöde): the settings' own type.
pub use kurir_settings::AuthFlow as Flow;

/// The grant that actually produced a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grant {
    ClientCredentials,
    Password,
    DeviceCode,
    RefreshToken,
}

impl Grant {
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::Password => "password",
            Grant::DeviceCode => "device_code",
            Grant::RefreshToken => "refresh_token",
        }
    }
}

/// One request for an access token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub authority: Authority,
    /// Katalog-ID (klientorganisation): a GUID or a verified domain.
    pub tenant: String,
    /// Program-ID (klient).
    pub client_id: String,
    pub credential: Credential,
    pub scope: Scope,
    /// Who the token is for, to keep users' delegated tokens apart in the cache (e.g. the ERP
    /// user code or mailbox). Defaults to the username of [`Credential::UsernamePassword`];
    /// ignored for app-only flows, whose token is the app's whatever mailbox it is used on.
    pub user: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let creds = [
            Credential::ClientSecret {
                secret: SecretString::from("S3CRET-1"),
                basic_auth: true,
            },
            Credential::Certificate {
                cert_pem: "-----BEGIN CERTIFICATE-----".into(),
                key_pem: SecretString::from("S3CRET-2"),
                alg: AssertionAlg::Ps256,
            },
            Credential::UsernamePassword {
                username: "adele@x".into(),
                password: SecretString::from("S3CRET-3"),
                client_secret: Some(SecretString::from("S3CRET-4")),
            },
            Credential::DeviceCode {
                prompt: Arc::new(|_| {}),
            },
        ];
        for c in creds {
            let req = TokenRequest {
                authority: Authority::global(),
                tenant: "t".into(),
                client_id: "c".into(),
                credential: c,
                scope: Scope::parse("s"),
                user: None,
            };
            let shown = format!("{req:?}");
            assert!(!shown.contains("S3CRET"), "{shown}");
        }
    }
}
