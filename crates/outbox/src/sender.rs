//! Who sends a queued message, and how: the sending user's effective settings decide.
//!
//! Every message is queued under a Kurir user code (`ANNA`, `WEBSHOP`). At send time that user's
//! *effective* settings (system settings overridden by the user's own) give the method, the
//! authentication flow, the credentials and the From address. The webshop is not special: it is
//! the user WEBSHOP, and the webshop's method *according to user settings* (Enligt
//! användarinställningar) means exactly "as WEBSHOP". Only a webshop with a method of its own is
//! resolved from the webshop's settings ([`WEBSHOP_SCOPE`]).
//!
//! Exchange Online offers two ways to send; Kurir uses Microsoft Graph `sendMail` unless the
//! user's settings name an SMTP server explicitly (`smtp_host` set rather than defaulted), which
//! selects SMTP AUTH with XOAUTH2 (`smtp.office365.com:587`). Graph is the default because
//! Microsoft is switching SMTP AUTH off tenant by tenant.

use std::sync::Arc;

use kurir_connect::Resource;
use kurir_entra::TokenRequest;
use kurir_settings::{Effective, Method, Protocol, Scope, SettingsSnapshot, Source, TlsMode};
use kurir_store::KurirStore;
use secrecy::SecretString;

use crate::error::SendError;

/// The `sender_user` of a message sent by a webshop whose method is its own (not according to
/// user settings).
pub const WEBSHOP_SCOPE: &str = ":webshop";

/// The `sender_user` of mail Kurir sends itself (alarm notices, forwarded quarantined
/// messages): the system settings, from the Default sender address (`default_sender`).
pub const SYSTEM_SENDER: &str = ":system";

/// Transport encryption for SMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Implicit,
    None,
}

/// How to reach Exchange Online for users with method exchange-online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExchangeTransport {
    /// Graph unless `smtp_host` is set explicitly (see the module docs).
    #[default]
    Auto,
    Graph,
    Smtp,
}

/// The way one message goes out.
#[derive(Clone)]
pub enum Route {
    Graph {
        endpoint: String,
        /// `/users/{mailbox}`: the sender's mailbox (app-only tokens act for any mailbox,
        /// delegated ones for the signed-in user).
        mailbox: String,
        token: Arc<TokenRequest>,
    },
    SmtpOauth {
        host: String,
        port: u16,
        tls: SmtpTls,
        /// XOAUTH2 `user=`: the mailbox for app-only tokens, the signed-in user for delegated.
        login: String,
        token: Arc<TokenRequest>,
    },
    SmtpClassic {
        host: String,
        port: u16,
        tls: SmtpTls,
        credentials: Option<(String, SecretString)>,
    },
}

impl Route {
    /// `graph`, `smtp-xoauth2` or `smtp`: what `kurir outbox show` records as `via`.
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Graph { .. } => Protocol::Graph.as_str(),
            Route::SmtpOauth { .. } => "smtp-xoauth2",
            Route::SmtpClassic { .. } => "smtp",
        }
    }
}

impl std::fmt::Debug for Route {
    // No credentials in logs: only where the message goes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Graph {
                endpoint, mailbox, ..
            } => write!(f, "graph {endpoint}/users/{mailbox}"),
            Route::SmtpOauth {
                host, port, login, ..
            } => write!(f, "smtp-xoauth2 {host}:{port} as {login}"),
            Route::SmtpClassic { host, port, .. } => write!(f, "smtp {host}:{port}"),
        }
    }
}

/// A resolved sender: who, from which address, which way, and with which extra CA.
#[derive(Debug, Clone)]
pub struct Sender {
    pub user: String,
    pub from: String,
    pub route: Route,
    /// PEM of the Extra CA certificate (ca_file), for SMTP and Graph TLS.
    pub ca_pem: Option<String>,
}

impl Sender {
    /// The key the per-mailbox throttle counts under.
    pub fn mailbox_key(&self) -> String {
        match &self.route {
            Route::Graph { mailbox, .. } => mailbox.to_ascii_lowercase(),
            _ => self.from.to_ascii_lowercase(),
        }
    }
}

/// The scope a `sender_user` resolves under.
pub fn scope_of(sender_user: &str) -> Scope {
    if sender_user == WEBSHOP_SCOPE {
        Scope::Webshop
    } else if sender_user == SYSTEM_SENDER {
        Scope::System
    } else {
        Scope::User(sender_user.to_owned())
    }
}

/// The `sender_user` to queue a message under for the webshop: the user it sends as, or the
/// webshop's own settings.
pub fn webshop_sender(snap: &SettingsSnapshot) -> String {
    snap.resolve(&Scope::Webshop)
        .sends_as
        .unwrap_or_else(|| WEBSHOP_SCOPE.to_owned())
}

fn tls_of(eff: &Effective) -> SmtpTls {
    match eff.tls("smtp_tls") {
        Some(TlsMode::Tls) => SmtpTls::Implicit,
        Some(TlsMode::None) => SmtpTls::None,
        Some(TlsMode::StartTls) | None => SmtpTls::StartTls,
    }
}

fn port_of(eff: &Effective, scope: &Scope) -> Result<u16, SendError> {
    match (eff.get("smtp_port"), eff.port("smtp_port")) {
        (None, _) => Ok(587),
        (Some(_), Some(port)) => Ok(port),
        (Some(raw), None) => Err(SendError::Settings(format!(
            "{scope}: SMTP port '{raw}' is not a port number; fix it with `kurir settings set {}smtp_port=587`",
            flag(scope)
        ))),
    }
}

fn flag(scope: &Scope) -> String {
    let f = scope.cli_flag();
    if f.is_empty() { f } else { format!("{f} ") }
}

async fn ca_pem(eff: &Effective) -> Result<Option<String>, SendError> {
    match eff.get("ca_file") {
        None => Ok(None),
        Some(path) => tokio::fs::read_to_string(path).await.map(Some).map_err(|e| {
            SendError::Settings(format!(
                "the Extra CA certificate (ca_file) {path} cannot be read ({e}); fix the path with `kurir settings set ca_file=…`"
            ))
        }),
    }
}

/// Resolves how `sender_user` sends now, from a settings snapshot.
pub async fn resolve(
    store: &Arc<dyn KurirStore>,
    snap: &SettingsSnapshot,
    sender_user: &str,
    exchange: ExchangeTransport,
) -> Result<Sender, SendError> {
    let scope = scope_of(sender_user);
    if let Scope::User(code) = &scope
        && !snap.users.contains_key(code)
    {
        return Err(SendError::Settings(format!(
            "there is no user {code}; add it with `kurir users add {code} --email …`, then `kurir outbox retry` the message"
        )));
    }
    let eff = snap.resolve(&scope);
    // The system has no E-postadress of its own; it sends from the Default sender address.
    let address_key = if scope == Scope::System {
        "default_sender"
    } else {
        "email"
    };
    let from = eff.get(address_key).map(str::to_owned).ok_or_else(|| {
        SendError::Settings(if scope == Scope::System {
            "Kurir sends its own mail (alarms, forwarded messages) from the Default sender address, which is not set; set it with `kurir settings set default_sender=…`".to_owned()
        } else {
            format!(
                "{scope} has no E-postadress (email) to send from; set it with `kurir settings set {}email=…` or a system default_sender",
                flag(&eff.fix_scope("email"))
            )
        })
    })?;
    let ca_pem = ca_pem(&eff).await?;
    let method = eff.method();
    let route = match method {
        Method::ExchangeOnline => {
            let smtp_explicit = eff
                .field("smtp_host")
                .is_some_and(|f| f.value.is_some() && f.source != Source::Default);
            let use_smtp = match exchange {
                ExchangeTransport::Auto => smtp_explicit,
                ExchangeTransport::Graph => false,
                ExchangeTransport::Smtp => true,
            };
            let resource = if use_smtp {
                Resource::Exchange
            } else {
                Resource::Graph
            };
            let (_, req) = kurir_connect::token_request(&**store, snap, &scope, resource)
                .await
                .map_err(SendError::from)?;
            // Delegated tokens act for the signed-in user; app-only tokens for the mailbox.
            let login = req.user.clone().filter(|u| u.contains('@'));
            let token = Arc::new(req);
            if use_smtp {
                Route::SmtpOauth {
                    host: eff
                        .get("smtp_host")
                        .unwrap_or("smtp.office365.com")
                        .to_owned(),
                    port: port_of(&eff, &scope)?,
                    tls: tls_of(&eff),
                    login: login.unwrap_or_else(|| from.clone()),
                    token,
                }
            } else {
                Route::Graph {
                    endpoint: eff
                        .get("graph_endpoint")
                        .unwrap_or("https://graph.microsoft.com")
                        .trim_end_matches('/')
                        .to_owned(),
                    mailbox: login.unwrap_or_else(|| from.clone()),
                    token,
                }
            }
        }
        Method::Smtp => {
            let host = eff.get("smtp_host").ok_or_else(|| {
                SendError::Settings(format!(
                    "{scope} sends through a classic SMTP server (method smtp) but no SMTP server is set; `kurir settings set {}smtp_host=…`",
                    flag(&eff.fix_scope("smtp_host"))
                ))
            })?;
            let credentials = match eff.get("smtp_username") {
                None => None,
                Some(u) => {
                    let from_scope = eff.field("smtp_password").and_then(|f| f.from.clone());
                    let pw = match from_scope {
                        Some(s) => store
                            .reveal(&s, "smtp_password")
                            .await
                            .map_err(|e| SendError::Settings(e.to_string()))?,
                        None => None,
                    };
                    let pw = pw.ok_or_else(|| {
                        SendError::Settings(format!(
                            "{scope} has an SMTP username but no SMTP password; `kurir settings set {}smtp_password` (it prompts)",
                            flag(&eff.fix_scope("smtp_password"))
                        ))
                    })?;
                    Some((u.to_owned(), pw))
                }
            };
            Route::SmtpClassic {
                host: host.to_owned(),
                port: port_of(&eff, &scope)?,
                tls: tls_of(&eff),
                credentials,
            }
        }
        Method::None => {
            return Err(SendError::Settings(format!(
                "{scope} has Method for e-mail = none, so it cannot send; set method={} (or {}) with `kurir settings set {}method={}`",
                Method::ExchangeOnline,
                Method::Smtp,
                flag(&eff.fix_scope("method")),
                Method::ExchangeOnline
            )));
        }
    };
    Ok(Sender {
        user: sender_user.to_owned(),
        from,
        route,
        ca_pem,
    })
}
