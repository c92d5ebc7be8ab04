//! Sending through Microsoft Graph with kurir-graph's `GraphClient`.
//!
//! The queued MIME is sent as it is (sendMail MIME form: the base64 of the message) when it fits
//! in Graph's 4 MB request limit and no attachment is over 3 MB. Larger messages are taken apart
//! (mail-parser): a draft is created with the text, the recipients and the small attachments;
//! each big attachment (3–150 MB) goes through its own upload session in chunks; then the draft
//! is sent. `saveToSentItems = false` needs sendMail's JSON form, so a small message is converted
//! to it in that case. (A draft that is sent is always kept in Sent Items: Graph has no switch.)

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kurir_entra::TokenClient;
use kurir_graph::{
    Attachment, AttachmentItem, BodyType, GraphClient, GraphError, ItemBody, Message, Recipient,
    RetryPolicy, SendMailRequest,
};
use mail_parser::{MessageParser, MimeHeaders};
use secrecy::ExposeSecret;
use tokio::sync::Mutex;

use crate::error::SendError;
use crate::sender::{Route, Sender};

/// Graph's per-request limit and the largest attachment that may travel inside a request.
const MAX_REQUEST: usize = 4 * 1024 * 1024;
const INLINE_ATTACHMENT_LIMIT: usize = 3 * 1024 * 1024;

pub struct GraphSender {
    save_to_sent_items: bool,
    clients: Mutex<HashMap<(String, Option<String>), GraphClient>>,
}

impl GraphSender {
    pub fn new(save_to_sent_items: bool) -> GraphSender {
        GraphSender {
            save_to_sent_items,
            clients: Mutex::new(HashMap::new()),
        }
    }

    async fn client(&self, endpoint: &str, ca: Option<&str>) -> Result<GraphClient, SendError> {
        let key = (endpoint.to_owned(), ca.map(str::to_owned));
        let mut map = self.clients.lock().await;
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        // The setting holds the host (https://graph.microsoft.com); the client wants the API
        // version in its base.
        let base = if endpoint.ends_with("/v1.0") || endpoint.ends_with("/beta") {
            endpoint.to_owned()
        } else {
            format!("{endpoint}/v1.0")
        };
        let c = GraphClient::new(&base, ca, Duration::from_secs(120))
            .map_err(|e| SendError::Settings(e.to_string()))?
            // A short in-request retry; longer waits are the outbox's backoff, which frees the
            // worker instead of pinning it.
            .with_retry(RetryPolicy {
                max_retries: 2,
                max_wait: Duration::from_secs(10),
                base_wait: Duration::from_millis(500),
            });
        map.insert(key, c.clone());
        Ok(c)
    }

    /// Sends `raw` as the sender's mailbox; returns a description of what Graph accepted.
    pub async fn send(
        &self,
        tokens: &TokenClient,
        sender: &Sender,
        raw: &[u8],
    ) -> Result<String, SendError> {
        let Route::Graph {
            endpoint,
            mailbox,
            token,
        } = &sender.route
        else {
            unreachable!("the worker sends SMTP routes through SMTP")
        };
        let client = self.client(endpoint, sender.ca_pem.as_deref()).await?;
        let access = tokens
            .token(token)
            .await
            .map_err(|source| SendError::Token {
                user: sender.user.clone(),
                source,
            })?;
        let bearer = access.secret.expose_secret();
        let graph_err = |e: GraphError| graph_error(client.base_url(), e);

        let parsed = MessageParser::default()
            .parse(raw)
            .ok_or_else(|| SendError::Message("its MIME cannot be parsed".into()))?;
        let big: Vec<usize> = parsed
            .attachments()
            .enumerate()
            .filter(|(_, a)| a.contents().len() > INLINE_ATTACHMENT_LIMIT)
            .map(|(i, _)| i)
            .collect();
        let fits = raw.len().div_ceil(3) * 4 <= MAX_REQUEST;

        if fits && big.is_empty() {
            if self.save_to_sent_items {
                client
                    .send_mime(bearer, mailbox, raw)
                    .await
                    .map_err(graph_err)?;
                return Ok("202 Accepted (sendMail, MIME)".into());
            }
            let message = to_graph_message(&parsed, &[], true);
            client
                .send_json(
                    bearer,
                    mailbox,
                    &SendMailRequest {
                        message,
                        save_to_sent_items: Some(false),
                    },
                )
                .await
                .map_err(graph_err)?;
            return Ok("202 Accepted (sendMail, JSON, not saved to Sent Items)".into());
        }

        // Too big for one request: everything that is not small goes through upload sessions.
        let uploads: Vec<usize> = if fits {
            big
        } else {
            parsed
                .attachments()
                .enumerate()
                .filter(|(_, a)| a.contents().len() > 64 * 1024)
                .map(|(i, _)| i)
                .collect()
        };
        let draft = to_graph_message(&parsed, &uploads, true);
        let created = client
            .create_draft_json(bearer, mailbox, &draft)
            .await
            .map_err(graph_err)?;
        let mut uploaded = 0u64;
        let finished: Result<(), GraphError> = async {
            for (i, a) in parsed.attachments().enumerate() {
                if !uploads.contains(&i) {
                    continue;
                }
                let item = AttachmentItem::file(
                    a.attachment_name().unwrap_or("attachment"),
                    a.contents().len() as u64,
                    a.content_type().map(|ct| match ct.subtype() {
                        Some(st) => format!("{}/{}", ct.ctype(), st),
                        None => ct.ctype().to_owned(),
                    }),
                );
                let session = client
                    .create_upload_session(bearer, mailbox, created.id(), &item)
                    .await?;
                client.upload_attachment(&session, a.contents()).await?;
                uploaded += a.contents().len() as u64;
            }
            client.send_draft(bearer, mailbox, created.id()).await
        }
        .await;
        if let Err(e) = finished {
            // The next attempt makes a draft of its own, so this one would stay behind in the
            // sender's Drafts. It is removed when Graph answered with an error (the draft was
            // certainly not sent); after a network failure the send may have gone through, and
            // the draft is then left rather than risk deleting what was sent.
            if matches!(e, GraphError::Service { .. }) {
                match client.delete_message(bearer, mailbox, created.id()).await {
                    Ok(()) => {
                        tracing::info!(mailbox = %mailbox, "removed the draft of a failed large send")
                    }
                    Err(d) => {
                        tracing::warn!(mailbox = %mailbox, error = %d, "the draft of a failed large send could not be removed; it stays in Drafts")
                    }
                }
            }
            return Err(graph_err(e));
        }
        Ok(format!(
            "202 Accepted (draft + {} upload session(s), {uploaded} bytes, send)",
            uploads.len()
        ))
    }
}

fn recipients(a: Option<&mail_parser::Address<'_>>) -> Option<Vec<Recipient>> {
    let list: Vec<Recipient> = a?
        .iter()
        .filter_map(|x| {
            x.address().map(|addr| Recipient {
                email_address: kurir_graph::EmailAddress {
                    name: x.name().map(str::to_owned),
                    address: Some(addr.to_owned()),
                },
            })
        })
        .collect();
    (!list.is_empty()).then_some(list)
}

/// The Graph JSON form of a parsed message, leaving out the attachments in `skip` (they go
/// through upload sessions).
fn to_graph_message(
    m: &mail_parser::Message<'_>,
    skip: &[usize],
    with_attachments: bool,
) -> Message {
    let body = if has_real_html(m) {
        ItemBody {
            content_type: BodyType::Html,
            content: m.body_html(0).map(|h| h.into_owned()).unwrap_or_default(),
        }
    } else {
        ItemBody {
            content_type: BodyType::Text,
            content: m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        }
    };
    let attachments: Vec<Attachment> = if with_attachments {
        m.attachments()
            .enumerate()
            .filter(|(i, _)| !skip.contains(i))
            .map(|(_, a)| Attachment {
                odata_type: Some(Attachment::FILE_TYPE.into()),
                name: Some(a.attachment_name().unwrap_or("attachment").to_owned()),
                content_type: a.content_type().map(|ct| match ct.subtype() {
                    Some(st) => format!("{}/{}", ct.ctype(), st),
                    None => ct.ctype().to_owned(),
                }),
                content_bytes: Some(STANDARD.encode(a.contents())),
                ..Attachment::default()
            })
            .collect()
    } else {
        Vec::new()
    };
    Message {
        subject: m.subject().map(str::to_owned),
        body: Some(body),
        to_recipients: recipients(m.to()),
        cc_recipients: recipients(m.cc()),
        bcc_recipients: recipients(m.bcc()),
        reply_to: recipients(m.reply_to()),
        attachments: (!attachments.is_empty()).then_some(attachments),
        ..Message::default()
    }
}

/// mail-parser synthesises an HTML body from text; only a real text/html part counts.
fn has_real_html(m: &mail_parser::Message<'_>) -> bool {
    m.parts.iter().any(|p| p.is_text_html())
}

fn graph_error(url: &str, e: GraphError) -> SendError {
    match e {
        GraphError::Transport { detail, .. } => SendError::Network {
            what: format!("Microsoft Graph at {url}"),
            detail,
        },
        GraphError::Service {
            status,
            code,
            message,
            retry_after,
            ..
        } => {
            let err = GraphError::Service {
                status,
                code: code.clone(),
                message: message.clone(),
                request_id: None,
                retry_after,
            };
            SendError::Graph {
                url: url.to_owned(),
                status,
                code: (!code.is_empty()).then_some(code),
                message,
                retry_after,
                // kurir-graph's explanation already says what to do.
                advice: err.to_string(),
            }
        }
        GraphError::Invalid(m) => SendError::Message(m),
        other => SendError::Settings(other.to_string()),
    }
}
