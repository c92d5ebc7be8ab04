//! `POST /api/v1/outbox`: queue a message as a Kurir user (or the webshop) — the REST way in to
//! the durable outbox, beside `kurir send` and the SMTP listener.
//!
//! The body is either a message to build (`to`, `subject`, `text`/`html`, attachments as
//! base64) or a ready RFC 822 message (`mime_base64`, what an ERP that builds its own MIME has).
//! The sender's effective settings are checked first, so a user that cannot send (method none,
//! incomplete settings) is refused at once with the fix instead of failing later in the queue.
//! 202 means the message is durably queued; the daemon's outbox workers send it.

use std::sync::Arc;

use axum::extract::{Json, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kurir_outbox::{Content, ExchangeTransport, FileAttachment, SendAs, Submission, SubmitError};
use serde::Deserialize;

use crate::AppState;
use crate::auth::{ApiCaller, api_error};

/// Largest message accepted (Exchange Online's ceiling is 150 MB; base64 grows it by 4/3).
pub const MAX_BODY: usize = 200 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The Kurir user who sends (e.g. ANNA, WEBSHOP).
    #[serde(rename = "as")]
    pub as_user: Option<String>,
    /// Send as the webshop: its method decides (according to user settings = as WEBSHOP).
    #[serde(default)]
    pub webshop: bool,
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    #[serde(default)]
    pub bcc: Vec<String>,
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    #[serde(default)]
    pub attachments: Vec<AttachmentIn>,
    /// A complete RFC 822 message instead of the fields above. `to`/`cc`/`bcc` are then its
    /// envelope (as in SMTP: the headers are not read for recipients, so a Bcc stays hidden).
    pub mime_base64: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentIn {
    pub name: String,
    pub content_base64: String,
}

fn bad(error: impl AsRef<str>, fix: &str) -> Response {
    api_error(StatusCode::BAD_REQUEST, error.as_ref(), fix)
}

pub async fn send(
    State(s): State<Arc<AppState>>,
    caller: ApiCaller,
    body: Result<Json<SendRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => {
            return bad(
                format!("the body is not a valid send request: {}", e.body_text()),
                "send JSON like {\"as\": \"ANNA\", \"to\": [\"kund@example.com\"], \"subject\": \"…\", \"text\": \"…\"}; see /api/openapi.json",
            );
        }
    };
    let send_as = match (&req.as_user, req.webshop) {
        (Some(_), true) => {
            return bad(
                "give either \"as\" or \"webshop\": true, not both",
                "the webshop sends as the user its settings name (WEBSHOP)",
            );
        }
        (None, true) => SendAs::Webshop,
        (Some(u), false) => SendAs::User(u.clone()),
        (None, false) => {
            return bad(
                "who sends? \"as\" is missing",
                "add \"as\": \"USER\" (a Kurir user) or \"webshop\": true",
            );
        }
    };
    let content = match &req.mime_base64 {
        Some(b64) => {
            if req.subject.is_some()
                || req.text.is_some()
                || req.html.is_some()
                || !req.attachments.is_empty()
            {
                return bad(
                    "mime_base64 is a whole message: subject, text, html and attachments cannot be given beside it",
                    "put them into the MIME message, or leave mime_base64 out",
                );
            }
            let raw = match STANDARD.decode(b64.trim()) {
                Ok(r) => r,
                Err(e) => {
                    return bad(
                        format!("mime_base64 is not base64 ({e})"),
                        "encode the RFC 822 message with standard base64",
                    );
                }
            };
            let envelope: Vec<String> = req
                .to
                .iter()
                .chain(&req.cc)
                .chain(&req.bcc)
                .cloned()
                .collect();
            if envelope.is_empty() {
                return bad(
                    "the message has no recipients",
                    "give the envelope recipients in \"to\" (and \"cc\"/\"bcc\") beside mime_base64",
                );
            }
            Content::Mime {
                raw,
                envelope: Some(envelope),
            }
        }
        None => {
            let Some(subject) = req.subject.clone() else {
                return bad("\"subject\" is missing", "add \"subject\": \"…\"");
            };
            let mut attachments = Vec::new();
            for a in &req.attachments {
                let content = match STANDARD.decode(a.content_base64.trim()) {
                    Ok(b) => b,
                    Err(e) => {
                        return bad(
                            format!(
                                "attachment '{}': content_base64 is not base64 ({e})",
                                a.name
                            ),
                            "encode the file with standard base64",
                        );
                    }
                };
                attachments.push(FileAttachment {
                    name: clean_name(&a.name),
                    content,
                });
            }
            Content::Compose {
                to: req.to.clone(),
                cc: req.cc.clone(),
                bcc: req.bcc.clone(),
                subject,
                text: req.text.clone(),
                html: req.html.clone(),
                attachments,
            }
        }
    };
    let submission = Submission {
        send_as,
        origin: format!("api:{}", caller.key_name),
        transport: ExchangeTransport::Auto,
        queue_if_sender_cannot_send: false,
        messages: vec![content],
    };
    let queued = match s.submitter.queue(submission).await {
        Ok(q) => q,
        Err(SubmitError::User(e)) => {
            return bad(&e, "give a Kurir user code, e.g. ANNA or WEBSHOP");
        }
        Err(e @ SubmitError::Sender { .. }) => {
            let SubmitError::Sender { user, .. } = &e else {
                unreachable!()
            };
            return api_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &e.to_string(),
                &format!(
                    "complete the user's e-mail settings (PATCH /api/v1/users/{user}/settings) and run POST /api/v1/users/{user}/check"
                ),
            );
        }
        Err(SubmitError::Message { problem, .. }) => {
            return bad(
                format!("the message cannot be sent: {problem}"),
                "fix the addresses or the attachments",
            );
        }
        Err(SubmitError::Store(e)) => {
            return api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
                "check Kurir's log and data directory",
            );
        }
    };
    let id = queued.ids[0];
    tracing::info!(id, user = %queued.sender_user, key = %caller.key_name, "queued through the API");
    match s.store.outbox_get(id).await {
        Ok(Some(m)) => (StatusCode::ACCEPTED, Json(m)).into_response(),
        _ => (StatusCode::ACCEPTED, Json(serde_json::json!({"id": id}))).into_response(),
    }
}

/// A file name without directories or characters that would change its meaning.
fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .trim_start_matches('.')
        .to_owned();
    if cleaned.is_empty() {
        "attachment".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::clean_name;

    #[test]
    fn attachment_names_cannot_escape() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\x\\faktura.pdf"), "faktura.pdf");
        assert_eq!(clean_name(".."), "attachment");
        assert_eq!(clean_name("order 1.xml"), "order 1.xml");
    }
}
