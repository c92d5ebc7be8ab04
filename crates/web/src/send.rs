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
use kurir_outbox::{Draft, ExchangeTransport, FileAttachment, compose, sender};
use kurir_settings::normalize_user_code;
use kurir_store::outbox::NewOutgoing;
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
    let snap = match s.store.snapshot().await {
        Ok(snap) => snap,
        Err(e) => {
            return api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
                "check Kurir's log and data directory",
            );
        }
    };
    let user = match (&req.as_user, req.webshop) {
        (Some(_), true) => {
            return bad(
                "give either \"as\" or \"webshop\": true, not both",
                "the webshop sends as the user its settings name (WEBSHOP)",
            );
        }
        (None, true) => sender::webshop_sender(&snap),
        (Some(u), false) => match normalize_user_code(u) {
            Ok(u) => u,
            Err(e) => {
                return bad(&e, "give a Kurir user code, e.g. ANNA or WEBSHOP");
            }
        },
        (None, false) => {
            return bad(
                "who sends? \"as\" is missing",
                "add \"as\": \"USER\" (a Kurir user) or \"webshop\": true",
            );
        }
    };
    let who = match sender::resolve(&s.store, &snap, &user, ExchangeTransport::Auto).await {
        Ok(w) => w,
        Err(e) => {
            return api_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("user {user} cannot send: {e}"),
                &format!(
                    "complete the user's e-mail settings (PATCH /api/v1/users/{user}/settings) and run POST /api/v1/users/{user}/check"
                ),
            );
        }
    };

    let (raw, recipients, message_id, subject) = match &req.mime_base64 {
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
            let domain = who
                .from
                .rsplit('@')
                .next()
                .unwrap_or("localhost")
                .to_owned();
            let (raw, message_id) = kurir_outbox::compose::ensure_ids(raw, &domain);
            let h = kurir_outbox::compose::read_headers(&raw);
            let recipients: Vec<String> = req
                .to
                .iter()
                .chain(&req.cc)
                .chain(&req.bcc)
                .cloned()
                .collect();
            if recipients.is_empty() {
                return bad(
                    "the message has no recipients",
                    "give the envelope recipients in \"to\" (and \"cc\"/\"bcc\") beside mime_base64",
                );
            }
            (raw, recipients, message_id, h.subject.clone())
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
            let draft = Draft {
                from: who.from.clone(),
                to: req.to.clone(),
                cc: req.cc.clone(),
                bcc: req.bcc.clone(),
                subject: subject.clone(),
                text: req.text.clone(),
                html: req.html.clone(),
                attachments,
            };
            match compose(&draft) {
                Ok(c) => (c.raw, c.recipients, Some(c.message_id), Some(subject)),
                Err(e) => {
                    return bad(
                        format!("the message cannot be sent: {e}"),
                        "fix the addresses or the attachments",
                    );
                }
            }
        }
    };
    let queued = s
        .store
        .enqueue(NewOutgoing {
            sender_user: user.clone(),
            origin: format!("api:{}", caller.key_name),
            from: Some(who.from.clone()),
            recipients,
            subject,
            message_id,
            raw,
        })
        .await;
    let id = match queued {
        Ok(id) => id,
        Err(e) => {
            return api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
                "check Kurir's log and data directory",
            );
        }
    };
    tracing::info!(id, user = %user, key = %caller.key_name, "queued through the API");
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
