//! Sending through Microsoft Graph with kurir-graph's `GraphClient`.
//!
//! **Who receives.** Graph has no envelope: it delivers to the To/Cc/Bcc of the message. So the
//! message handed to Graph is first made to name exactly the envelope recipients
//! ([`envelope_view`]: header recipients outside the envelope dropped, envelope-only ones added
//! as Bcc).
//!
//! **What is sent.** The queued MIME always travels as MIME, so Graph keeps every header the
//! sender wrote — Message-ID, In-Reply-To/References (threading), custom headers — and inline
//! parts keep their Content-IDs. Graph's JSON message form cannot carry them: `internetMessageHeaders`
//! takes only custom `x-` headers, so In-Reply-To/References would be lost
//! (<https://learn.microsoft.com/en-us/graph/api/user-sendmail>, "internetMessageHeaders").
//!
//! - A message that fits Graph's 4 MB request limit (no attachment over 3 MB) and is to be kept
//!   in Sent Items goes by sendMail's MIME form (the base64 of the message).
//! - Otherwise a draft is created from the MIME (`POST /users/{id}/messages`, base64 MIME as
//!   `text/plain`, <https://learn.microsoft.com/en-us/graph/api/user-post-messages>) without
//!   the parts that do not fit in one request; each of those is added to the draft, through an
//!   upload session from 3 MB on and in one `POST …/attachments` below, since Graph refuses
//!   upload sessions for smaller files (inline ones with `isInline` and `contentId`); with saveToSentItems off the draft is marked
//!   PidTagDeleteAfterSubmit (a draft has no saveToSentItems switch); then the draft is sent.
//!
//! **A retry whose first attempt may have gone through** (a kill -9 between Graph's 202 and the
//! recorded outcome) first looks the message up in Sent Items by its Message-ID
//! (`$filter=internetMessageId eq '…'`) when a copy is kept, and records it as sent instead of
//! sending it again. Without a copy there is nothing to look up, so the final request (sendMail
//! or /send) is taken by one message at a time per process, holding the [`Gate`] until the
//! worker has recorded the outcome, as the SMTP route does: a kill duplicates at most one
//! message.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kurir_entra::TokenClient;
use kurir_graph::{AttachmentItem, GraphClient, GraphError, RetryPolicy};
use mail_parser::{MessageParser, MimeHeaders};
use secrecy::ExposeSecret;
use tokio::sync::Mutex;

use crate::compose::envelope_view;
use crate::error::SendError;
use crate::sender::{Route, Sender};
use crate::smtp::Gate;

/// Graph's per-request limit and the largest attachment that may travel inside a request.
const MAX_REQUEST: usize = 4 * 1024 * 1024;
const INLINE_ATTACHMENT_LIMIT: usize = 3 * 1024 * 1024;

pub struct GraphSender {
    save_to_sent_items: bool,
    clients: Mutex<HashMap<(String, Option<String>), GraphClient>>,
    /// Held from the final request of a send without a Sent Items copy until its outcome is
    /// recorded (see the module docs).
    gate: Arc<Mutex<()>>,
}

/// What one Graph send needs from the queued row.
pub struct Outgoing<'a> {
    pub raw: &'a [u8],
    /// The envelope recipients: exactly these receive the message.
    pub recipients: &'a [String],
    pub message_id: Option<&'a str>,
    /// An earlier attempt may have reached Graph (this is not the first attempt).
    pub retry: bool,
}

impl GraphSender {
    pub fn new(save_to_sent_items: bool) -> GraphSender {
        GraphSender {
            save_to_sent_items,
            clients: Mutex::new(HashMap::new()),
            gate: Arc::new(Mutex::new(())),
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

    /// Sends the message as the sender's mailbox; returns a description of what Graph
    /// accepted, and the [`Gate`] to drop once the outcome is recorded (sends without a Sent
    /// Items copy).
    pub async fn send(
        &self,
        tokens: &TokenClient,
        sender: &Sender,
        out: Outgoing<'_>,
    ) -> Result<(String, Option<Gate>), SendError> {
        let Route::Graph {
            endpoint,
            mailbox,
            token,
        } = &sender.route
        else {
            unreachable!("the worker sends SMTP routes through SMTP")
        };
        if out.recipients.is_empty() {
            return Err(SendError::Message("it has no recipients".into()));
        }
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

        if let (true, true, Some(id)) = (out.retry, self.save_to_sent_items, out.message_id) {
            let found = client
                .find_by_internet_message_id(bearer, mailbox, "sentitems", id)
                .await
                .map_err(graph_err)?;
            if !found.is_empty() {
                tracing::info!(mailbox = %mailbox, message_id = %id, "already in Sent Items: an earlier attempt was sent; not sending again");
                return Ok((
                    "already sent: found in Sent Items by its Message-ID before retrying".into(),
                    None,
                ));
            }
        }

        let raw = envelope_view(out.raw, out.recipients);
        // A panic inside the parser (mail-parser 0.11.9 has a `debug_assert!` that hostile
        // MIME reaches, found by `scripts/fuzz`) fails this one message, never the worker.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            MessageParser::default().parse(&raw)
        }))
        .ok()
        .flatten()
        .ok_or_else(|| SendError::Message("its MIME cannot be parsed".into()))?;
        let big: Vec<usize> = parsed
            .attachments()
            .enumerate()
            .filter(|(_, a)| a.contents().len() > INLINE_ATTACHMENT_LIMIT)
            .map(|(i, _)| i)
            .collect();
        let fits = raw.len().div_ceil(3) * 4 <= MAX_REQUEST;

        if fits && big.is_empty() && self.save_to_sent_items {
            client
                .send_mime(bearer, mailbox, &raw)
                .await
                .map_err(graph_err)?;
            return Ok(("202 Accepted (sendMail, MIME)".into(), None));
        }

        // A draft from the MIME; what does not fit in its request goes through upload sessions.
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
        let part_ids: Vec<usize> = uploads
            .iter()
            .filter_map(|i| parsed.attachments.get(*i).map(|p| *p as usize))
            .collect();
        let draft_mime = without_parts(&raw, &parsed, &part_ids);
        let created = client
            .create_draft_mime(bearer, mailbox, &draft_mime)
            .await
            .map_err(graph_err)?;
        let mut uploaded = 0u64;
        let mut gate = None;
        let finished: Result<(), GraphError> = async {
            for (i, a) in parsed.attachments().enumerate() {
                if !uploads.contains(&i) {
                    continue;
                }
                let mut item = AttachmentItem::file(
                    a.attachment_name().unwrap_or("attachment"),
                    a.contents().len() as u64,
                    a.content_type().map(|ct| match ct.subtype() {
                        Some(st) => format!("{}/{}", ct.ctype(), st),
                        None => ct.ctype().to_owned(),
                    }),
                );
                // An inline image keeps what the HTML refers to it by (cid:…).
                let disposition = a
                    .content_disposition()
                    .map(|d| d.ctype().to_ascii_lowercase());
                let cid = a
                    .content_id()
                    .map(|c| c.trim_matches(['<', '>']).to_owned());
                if disposition.as_deref() == Some("inline")
                    || (cid.is_some() && disposition.is_none())
                {
                    item.is_inline = Some(true);
                }
                item.content_id = cid;
                client
                    .attach(bearer, mailbox, created.id(), &item, a.contents())
                    .await?;
                uploaded += a.contents().len() as u64;
            }
            if !self.save_to_sent_items {
                client
                    .set_delete_after_submit(bearer, mailbox, created.id())
                    .await?;
                gate = Some(self.gate.clone().lock_owned().await);
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
                        tracing::info!(mailbox = %mailbox, "removed the draft of a failed send")
                    }
                    Err(d) => {
                        tracing::warn!(mailbox = %mailbox, error = %d, "the draft of a failed send could not be removed; it stays in Drafts")
                    }
                }
            }
            return Err(graph_err(e));
        }
        let saved = if self.save_to_sent_items {
            ""
        } else {
            ", not saved to Sent Items"
        };
        Ok((
            format!(
                "202 Accepted (draft from MIME + {} upload session(s), {uploaded} bytes, send{saved})",
                uploads.len()
            ),
            gate,
        ))
    }
}

/// `raw` without the MIME parts `ids` (indexes into `m.parts`), each cut out together with
/// the boundary delimiter line in front of it, so the multipart stays well-formed and every
/// other byte — the top-level header above all — stays as it was.
fn without_parts(raw: &[u8], m: &mail_parser::Message<'_>, ids: &[usize]) -> Vec<u8> {
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for &id in ids {
        let Some(p) = m.parts.get(id) else { continue };
        let start = p.offset_header as usize;
        if id == 0 || start == 0 || start > raw.len() {
            continue;
        }
        // The delimiter line ("--boundary") ends right before the part's header.
        let before = &raw[..start];
        let mut body_end = before.len();
        if before.ends_with(b"\r\n") {
            body_end -= 2;
        } else if before.ends_with(b"\n") {
            body_end -= 1;
        }
        let line_start = before[..body_end]
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |p| p + 1);
        let delimiter = before[line_start..body_end].trim_ascii_end();
        if !delimiter.starts_with(b"--") || delimiter.len() < 3 {
            continue;
        }
        // Up to the next delimiter of the same multipart (the next part or the closing one).
        let from = (p.offset_end as usize).min(raw.len());
        let next = raw[from..]
            .windows(delimiter.len() + 1)
            .position(|w| w[0] == b'\n' && &w[1..] == delimiter)
            .map(|q| from + q + 1);
        let Some(end) = next.or_else(|| {
            // offset_end may already sit on the next delimiter.
            raw[from..].starts_with(delimiter).then_some(from)
        }) else {
            continue;
        };
        cuts.push((line_start, end));
    }
    cuts.sort();
    let mut out = Vec::with_capacity(raw.len());
    let mut at = 0;
    for (a, b) in cuts {
        if a < at {
            continue;
        }
        out.extend_from_slice(&raw[at..a]);
        at = b;
    }
    out.extend_from_slice(&raw[at..]);
    out
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
            request_id,
        } => {
            // kurir-graph's explanation already says what to do.
            let advice = GraphError::Service {
                status,
                code: code.clone(),
                message: message.clone(),
                request_id: None,
                retry_after,
            }
            .to_string();
            SendError::Graph {
                url: url.to_owned(),
                status,
                code: (!code.is_empty()).then_some(code),
                message,
                retry_after,
                advice,
                request_id,
            }
        }
        GraphError::Invalid(m) => SendError::Message(m),
        other => SendError::Settings(other.to_string()),
    }
}
