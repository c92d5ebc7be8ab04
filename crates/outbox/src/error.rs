//! Why a message could not be sent, and whether trying again can help.
//!
//! Modelled on lettre's SMTP error: the worker asks [`SendError::is_transient`] (retry with
//! backoff, honouring [`SendError::retry_after`]) or [`SendError::is_permanent`] (stop, keep the
//! explanation visible in `kurir outbox show`). Every message says what went wrong AND what the
//! administrator can do. No message ever contains a token, password or secret.

use std::time::Duration;

use kurir_entra::EntraError;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The sending user's settings cannot send (incomplete, method none, unknown user).
    #[error("{0}")]
    Settings(String),

    /// No token from Entra ID. Permanent for configuration errors (e.g. AADSTS7000215, a wrong
    /// client secret), transient for outages.
    #[error("no access token for sending as {user}: {source}")]
    Token {
        user: String,
        #[source]
        source: EntraError,
    },

    /// The SMTP server refused (4xx: try later; 5xx: permanent) or the connection failed.
    #[error("SMTP server {server} {what}{}. {advice}", code.map(|c| format!(" ({c})")).unwrap_or_default())]
    Smtp {
        server: String,
        what: String,
        code: Option<u16>,
        transient: bool,
        advice: String,
    },

    /// Microsoft Graph refused or failed.
    #[error("Microsoft Graph answered HTTP {status}{} at {url}: {message}. {advice}{}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(), request_id.as_deref().map(|r| format!(" (request-id {r}: quote it to Microsoft support)")).unwrap_or_default())]
    Graph {
        url: String,
        status: u16,
        code: Option<String>,
        message: String,
        retry_after: Option<Duration>,
        advice: String,
        /// Graph's `request-id`, which Microsoft support asks for.
        request_id: Option<String>,
    },

    /// The network failed before an answer (Graph over HTTPS).
    #[error(
        "could not reach {what}: {detail}. Check the network, firewall and proxy; Kurir retries"
    )]
    Network { what: String, detail: String },

    /// The sender's credentials could not be read (the database failed for a moment: retried),
    /// or its authority cannot be used (permanent, like a settings problem).
    #[error("the credentials of the sender could not be prepared: {source}")]
    Credentials {
        #[source]
        source: kurir_connect::ConnectError,
    },

    /// The queued message itself is unusable (no recipients, unreadable MIME).
    #[error(
        "the message cannot be sent as it is: {0}. Cancel it with `kurir outbox cancel` and send it again corrected"
    )]
    Message(String),
}

impl From<kurir_connect::ConnectError> for SendError {
    /// Settings that cannot send stay a settings problem (with the same words as before); a
    /// store or Entra failure keeps its cause and decides whether to retry.
    fn from(e: kurir_connect::ConnectError) -> Self {
        match e {
            kurir_connect::ConnectError::Settings(m) => SendError::Settings(m),
            source => SendError::Credentials { source },
        }
    }
}

impl SendError {
    /// A short stable word for metrics (`kurir_failures_total{component="outbox",reason}`):
    /// `settings`, `token`, `smtp_4xx`/`smtp_5xx`/`smtp`, `graph_<status>`, `network`, `message`.
    pub fn reason(&self) -> String {
        match self {
            SendError::Settings(_) => "settings".into(),
            SendError::Token { .. } => "token".into(),
            SendError::Smtp { code: Some(c), .. } => format!("smtp_{}xx", c / 100),
            SendError::Smtp { .. } => "smtp".into(),
            SendError::Graph { status, .. } => format!("graph_{status}"),
            SendError::Network { .. } => "network".into(),
            SendError::Message(_) => "message".into(),
            SendError::Credentials { .. } => "credentials".into(),
        }
    }

    /// Worth trying again later without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            SendError::Settings(_) | SendError::Message(_) => false,
            SendError::Token { source, .. } => source.is_transient(),
            SendError::Smtp { transient, .. } => *transient,
            SendError::Graph { status, .. } => {
                matches!(*status, 408 | 429 | 500 | 502 | 503 | 504)
            }
            SendError::Network { .. } => true,
            SendError::Credentials { source } => source.is_transient(),
        }
    }

    /// Will fail again until someone changes a setting, an account or the message.
    pub fn is_permanent(&self) -> bool {
        !self.is_transient()
    }

    /// How long the server asked us to wait (Graph `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Graph { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Advice for an SMTP reply code, in the terms of Exchange Online where it matters.
pub(crate) fn smtp_advice(code: Option<u16>, text: &str) -> String {
    let t = text.to_ascii_lowercase();
    match code {
        Some(535) if t.contains("5.7.139") => "SMTP AUTH is disabled for the tenant or the mailbox: enable Authenticated SMTP for the mailbox (Set-CASMailbox -SmtpClientAuthenticationDisabled $false) or send through Microsoft Graph instead (unset smtp_host)".into(),
        Some(535) | Some(534) => "the server did not accept the OAuth token: check that the app has the SMTP.SendAsApp permission (app-only) or SMTP.Send (delegated) with admin consent, and that the Exchange service principal has access to the mailbox".into(),
        Some(553) | Some(550) if t.contains("sender") || t.contains("send as") || t.contains("sendas") => "the mailbox may not send as this From address: give the account Send As permission, or set the user's E-postadress to the mailbox it signs in as".into(),
        Some(c) if (500..600).contains(&c) => "the server refused the message permanently; read its answer above".into(),
        Some(c) if (400..500).contains(&c) => "a temporary refusal; Kurir retries with backoff".into(),
        _ => "Kurir retries with backoff; if it persists check the SMTP server, port, encryption (smtp_tls) and firewall".into(),
    }
}

#[cfg(test)]
mod tests {
    use kurir_connect::ConnectError;
    use kurir_store::StoreError;

    use super::SendError;

    /// Resolving a sender flattened every failure of `token_request` into a settings error, so
    /// a database that failed for a moment while the client secret was read failed the message
    /// for good ("settings") instead of retrying it. The cause is kept now and decides.
    #[test]
    fn a_database_failure_while_reading_the_senders_secret_is_retried_not_failed_for_good() {
        let blip = SendError::from(ConnectError::Store(StoreError::Io {
            what: "read the database".into(),
            source: std::io::Error::other("disk I/O error"),
        }));
        assert!(blip.is_transient(), "{blip}");
        assert_eq!(blip.reason(), "credentials");
        assert!(
            std::error::Error::source(&blip).is_some(),
            "the store error stays the source"
        );

        // A secret that cannot be decrypted needs a person, like a settings problem.
        let corrupt = SendError::from(ConnectError::Store(StoreError::CorruptSecret {
            place: "system/client_secret".into(),
        }));
        assert!(corrupt.is_permanent(), "{corrupt}");

        let settings = SendError::from(ConnectError::Settings(
            "user ANNA: client_secret is not set".into(),
        ));
        assert!(settings.is_permanent());
        assert_eq!(settings.reason(), "settings");
        assert_eq!(settings.to_string(), "user ANNA: client_secret is not set");
    }
}
