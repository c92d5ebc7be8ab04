//! What can go wrong talking to Graph, and what the caller should do about it.
//!
//! Modelled on lettre's SMTP error: callers ask questions (`is_transient()`, `retry_after()`,
//! `code()`, `status()`) instead of matching strings, and the `Display` text explains the
//! common Graph errors in plain words with the fix, because the person reading it is an ERP
//! administrator, not a Graph developer.

use std::time::Duration;

use crate::types::codes;

/// An error from [`crate::GraphClient`].
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The client could not be built from its settings.
    #[error("Graph client setting `{setting}`: {problem}")]
    Config {
        setting: &'static str,
        problem: String,
    },
    /// No HTTP answer: DNS, TCP, TLS, timeout or a dropped connection.
    #[error(
        "could not reach Microsoft Graph ({detail}); check the network, proxy and Graph base URL. It is retried automatically"
    )]
    Transport { detail: String, timeout: bool },
    /// Graph answered with an error status.
    #[error("{}", explain(*.status, .code, .message))]
    Service {
        status: u16,
        /// Graph's error code (`ErrorAccessDenied`, …); empty when the body had none.
        code: String,
        message: String,
        request_id: Option<String>,
        retry_after: Option<Duration>,
    },
    /// Graph answered 2xx with a body that does not parse.
    #[error(
        "Microsoft Graph answered {what} with an unexpected body ({detail}); check that the Graph base URL points at Graph (…/v1.0)"
    )]
    Decode { what: &'static str, detail: String },
    /// Writing the downloaded MIME failed.
    #[error("could not write the downloaded message: {0}; check free disk space and permissions")]
    Write(#[source] std::io::Error),
    /// The caller asked for something Graph cannot do.
    #[error("{0}")]
    Invalid(String),
}

impl GraphError {
    /// The HTTP status, when Graph answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Service { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Graph's error code (`ErrorItemNotFound`, …), when Graph answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            GraphError::Service { code, .. } if !code.is_empty() => Some(code),
            _ => None,
        }
    }

    /// Graph's `request-id`, for a support case.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            GraphError::Service { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: throttling, Exchange being busy, gateway
    /// errors and network failures. Permission and addressing errors are not.
    pub fn is_transient(&self) -> bool {
        match self {
            GraphError::Transport { .. } => true,
            GraphError::Service { status, .. } => matches!(status, 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// How long Graph asked us to wait (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GraphError::Service { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True for 404 ErrorItemNotFound: the message is gone (deleted, or moved and so
    /// renamed). Intake treats it as "already handled", not as a failure.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
            && matches!(
                self.code(),
                Some(codes::ITEM_NOT_FOUND) | Some(codes::RESOURCE_NOT_FOUND) | None
            )
    }
}

/// Plain-words explanation of a Graph error with what to do.
fn explain(status: u16, code: &str, message: &str) -> String {
    let said = if message.is_empty() {
        format!("HTTP {status} {code}")
    } else {
        format!("HTTP {status} {code}: {message}")
    };
    let advice = match (status, code) {
        (401, _) => {
            if message.to_ascii_lowercase().contains("audience") {
                "the access token is not for Microsoft Graph; request it with the scope https://graph.microsoft.com/.default (not an Outlook/IMAP scope)"
            } else if message.to_ascii_lowercase().contains("expired") {
                "the access token has expired; a fresh token is fetched automatically, so if this repeats check the server clock"
            } else {
                "the access token was refused; check that the tenant id and app (client) id are right and the token comes from Microsoft Entra ID for this tenant"
            }
        }
        (403, codes::SEND_AS_DENIED) => {
            "the message's From address is another mailbox than the one it is sent through, and that mailbox has no Send As permission on it; send from the sender's own address (the user's E-mail address setting), or have the Exchange administrator grant it: Add-RecipientPermission -Identity <From address> -Trustee <sending mailbox> -AccessRights SendAs (and include the From mailbox in the app's access policy, if there is one)"
        }
        (403, codes::ACCESS_DENIED) if message.contains("OData") || message.contains("policy") => {
            "an Exchange application access policy or RBAC for Applications scope does not include this mailbox; ask the Exchange administrator to add the mailbox to the app's scope (New-ApplicationAccessPolicy / New-ManagementScope)"
        }
        (403, _) => {
            "the app lacks the Graph permission for this (Mail.Read / Mail.ReadWrite / Mail.Send as an Application permission, with admin consent), or an application access policy excludes this mailbox; grant the permission in Entra ID and click 'Grant admin consent', or ask the Exchange administrator to include the mailbox"
        }
        (404, codes::INVALID_USER) => {
            "no such mailbox in this tenant; check the mailbox address (UPN) for typos and that it belongs to the tenant the app is registered in"
        }
        (404, codes::MAILBOX_NOT_ENABLED) => {
            "the user exists but has no Exchange Online mailbox (no licence, or the mailbox is on-premises); assign an Exchange Online licence or use a cloud mailbox"
        }
        (404, codes::ITEM_NOT_FOUND) => {
            "the message or folder does not exist (any more); it was deleted or moved, and moving a message changes its id"
        }
        (409, codes::FOLDER_EXISTS) => "a folder with that name already exists under that parent",
        (429, _) => {
            "Microsoft Graph is throttling this app for this mailbox (at most 4 concurrent requests and 10,000 per 10 minutes); Kurir waits as told by Retry-After and tries again"
        }
        (413, _) | (400, codes::REQUEST_TOO_LARGE) => {
            "the request is over Graph's 4 MB limit; large attachments must go through an upload session"
        }
        (400, codes::INEFFICIENT_FILTER) => {
            "Graph refuses $orderby on a property that $filter does not name first; order by the first filtered property or drop $orderby (this is a bug in the caller: report it)"
        }
        (400, codes::INVALID_ID_MALFORMED) => {
            "the id in the request is not a Graph id at all (cut short or altered on the way); use the id exactly as Graph returned it"
        }
        (400, codes::MIME_INVALID_BASE64) => {
            "the MIME message was not sent as valid base64; this is a bug in the sender"
        }
        (503, _) | (502, _) | (504, _) | (500, _) => {
            "Microsoft Graph or Exchange Online is temporarily unavailable; it is retried automatically"
        }
        _ => "see the Graph error code in Microsoft's documentation",
    };
    format!("Microsoft Graph refused the request ({said}): {advice}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16, code: &str, message: &str) -> GraphError {
        GraphError::Service {
            status,
            code: code.into(),
            message: message.into(),
            request_id: None,
            retry_after: None,
        }
    }

    #[test]
    fn explains_common_errors_with_a_fix() {
        let e = service(
            401,
            codes::INVALID_AUTHENTICATION_TOKEN,
            "Access token validation failure. Invalid audience.",
        );
        assert!(
            e.to_string()
                .contains("https://graph.microsoft.com/.default")
        );
        assert!(!e.is_transient());
        let e = service(
            403,
            codes::ACCESS_DENIED,
            "Access is denied. Check credentials and try again.",
        );
        assert!(e.to_string().contains("Grant admin consent"), "{e}");
        let e = service(
            404,
            codes::MAILBOX_NOT_ENABLED,
            "REST API is not yet supported for this mailbox.",
        );
        assert!(e.to_string().contains("licence"), "{e}");
        let e = service(
            429,
            codes::APPLICATION_THROTTLED,
            "Application is over its MailboxConcurrency limit.",
        );
        assert!(e.is_transient());
        assert_eq!(e.code(), Some(codes::APPLICATION_THROTTLED));
        assert!(service(404, codes::ITEM_NOT_FOUND, "").is_not_found());
        assert!(!service(404, codes::INVALID_USER, "").is_not_found());
    }
}
