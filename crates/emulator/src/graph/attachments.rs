//! A message's attachments (<https://learn.microsoft.com/en-us/graph/api/message-list-attachments>):
//! `GET …/messages/{id}/attachments`, `GET …/attachments/{aid}` (a `fileAttachment` with
//! `contentBytes`), `GET …/attachments/{aid}/$value` (the bytes), `POST …/attachments` (a
//! `fileAttachment` under 3 MB; larger ones need an upload session, as in Graph), and
//! `$expand=attachments` on a message.
//!
//! The attachments of a received or sent message are the parts of its MIME; a draft's also
//! include what was added through this API or an upload session. An attachment's id names the
//! message's blob (which never changes, unlike the message id) and the attachment's position.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{Value, json};

use super::reply::{ApiError, ApiResult, Reply, ReplyBody};
use super::store::{Mailbox, PendingAttachment, StoredMessage};
use super::{GraphState, Req, Target, context, with_mailbox};
use crate::state::lock;

/// Graph's limit for `POST …/attachments`; larger files go through an upload session
/// (<https://learn.microsoft.com/en-us/graph/api/message-post-attachments>).
pub const INLINE_ATTACHMENT_MAX: usize = 3 * 1024 * 1024;

/// One attachment, decoded.
pub struct Attachment {
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub is_inline: bool,
    pub content_id: Option<String>,
    pub data: Vec<u8>,
}

impl Attachment {
    /// The `fileAttachment` resource; `contentBytes` only when asked (lists include it too,
    /// as Graph's do).
    pub fn json(&self, m: &StoredMessage, with_bytes: bool) -> Value {
        let mut v = json!({
            "@odata.type": "#microsoft.graph.fileAttachment",
            "@odata.mediaContentType": self.content_type,
            "id": self.id,
            "lastModifiedDateTime": m.modified.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "name": self.name,
            "contentType": self.content_type,
            "size": self.data.len(),
            "isInline": self.is_inline,
            "contentId": self.content_id,
            "contentLocation": null,
        });
        if with_bytes {
            v["contentBytes"] = STANDARD.encode(&self.data).into();
        }
        v
    }
}

fn attachment_id(m: &StoredMessage, index: usize) -> String {
    format!(
        "AAMkAGAtt{}",
        URL_SAFE_NO_PAD.encode(format!("{}:{index}", m.blob))
    )
}

/// The id of `m`'s last attachment (just added): its MIME parts come first, then a draft's
/// pending ones. Reads no attachment's bytes.
pub fn last_id(m: &StoredMessage) -> String {
    let in_mime = MessageParser::default()
        .parse(m.raw.as_slice())
        .map_or(0, |p| p.attachments().count());
    attachment_id(m, (in_mime + m.attachments.len()).saturating_sub(1))
}

/// Every attachment of `m`: its MIME parts, then a draft's pending ones.
pub fn of(graph: &GraphState, m: &StoredMessage) -> Result<Vec<Attachment>, ApiError> {
    let mut out = Vec::new();
    if let Some(parsed) = MessageParser::default().parse(m.raw.as_slice()) {
        for part in parsed.attachments() {
            let content_type = part
                .content_type()
                .map(|c| match c.subtype() {
                    Some(s) => format!("{}/{s}", c.ctype()),
                    None => c.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into());
            let is_inline = part
                .content_disposition()
                .is_some_and(|d| d.ctype().eq_ignore_ascii_case("inline"));
            out.push(Attachment {
                id: attachment_id(m, out.len()),
                name: part.attachment_name().unwrap_or("attachment").to_owned(),
                content_type,
                is_inline,
                content_id: part
                    .content_id()
                    .map(|c| c.trim_matches(['<', '>']).to_owned()),
                data: part.contents().to_vec(),
            });
        }
    }
    for a in &m.attachments {
        let path = graph.blob_dir.join(format!("{}.eml", a.blob));
        let data = std::fs::read(&path).map_err(ApiError::internal)?;
        out.push(Attachment {
            id: attachment_id(m, out.len()),
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            is_inline: a.is_inline,
            content_id: a.content_id.clone(),
            data,
        });
    }
    Ok(out)
}

fn message<'a>(mb: &'a Mailbox, id: &str) -> Result<&'a StoredMessage, ApiError> {
    mb.messages.get(id).ok_or_else(ApiError::item_not_found)
}

pub fn list(graph: &GraphState, req: &Req, t: &Target, id: &str) -> ApiResult {
    with_mailbox(graph, t, false, |mb| {
        let m = message(mb, id)?;
        let value: Vec<Value> = of(graph, m)?.iter().map(|a| a.json(m, true)).collect();
        Ok(Reply::json(
            StatusCode::OK,
            json!({
                "@odata.context": context(req, t, &format!("messages('{id}')/attachments")),
                "value": value,
            }),
        ))
    })
}

/// Message `id` and its attachment `aid`.
fn find<'a>(
    graph: &GraphState,
    mb: &'a Mailbox,
    id: &str,
    aid: &str,
) -> Result<(&'a StoredMessage, Attachment), ApiError> {
    let m = message(mb, id)?;
    let a = of(graph, m)?
        .into_iter()
        .find(|a| a.id == aid)
        .ok_or_else(ApiError::item_not_found)?;
    Ok((m, a))
}

pub fn get(graph: &GraphState, req: &Req, t: &Target, id: &str, aid: &str) -> ApiResult {
    with_mailbox(graph, t, false, |mb| {
        let (m, a) = find(graph, mb, id, aid)?;
        let mut v = a.json(m, true);
        v["@odata.context"] =
            context(req, t, &format!("messages('{id}')/attachments/$entity")).into();
        Ok(Reply::json(StatusCode::OK, v))
    })
}

/// The attachment's bytes, with its content type.
pub fn value(graph: &GraphState, t: &Target, id: &str, aid: &str) -> ApiResult {
    with_mailbox(graph, t, false, |mb| {
        let (_, a) = find(graph, mb, id, aid)?;
        Ok(Reply {
            status: StatusCode::OK,
            headers: vec![("content-type", a.content_type.clone())],
            body: ReplyBody::Bytes {
                content_type: "application/octet-stream",
                data: std::sync::Arc::new(a.data),
            },
        })
    })
}

/// `POST …/attachments` with a `fileAttachment` (`name`, `contentType`, `contentBytes`).
pub fn add(graph: &GraphState, req: &Req, t: &Target, id: &str) -> ApiResult {
    let body: Value = req.json()?;
    let kind = body["@odata.type"].as_str().unwrap_or_default();
    if !kind.eq_ignore_ascii_case("#microsoft.graph.fileAttachment") {
        return Err(ApiError::bad_request(
            "Only #microsoft.graph.fileAttachment can be added here.",
        ));
    }
    let data = STANDARD
        .decode(body["contentBytes"].as_str().unwrap_or_default().trim())
        .map_err(|_| ApiError::bad_request("contentBytes is not valid base64."))?;
    if data.len() > INLINE_ATTACHMENT_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            kurir_graph::codes::REQUEST_TOO_LARGE,
            "The attachment is over 3 MB: use an upload session (createUploadSession).",
        ));
    }
    let blob = lock(&graph.store).write_blob(&data)?;
    with_mailbox(graph, t, true, |mb| {
        let m = mb
            .messages
            .get_mut(id)
            .ok_or_else(ApiError::item_not_found)?;
        let pending = PendingAttachment {
            name: body["name"].as_str().unwrap_or("attachment").to_owned(),
            content_type: body["contentType"]
                .as_str()
                .unwrap_or("application/octet-stream")
                .to_owned(),
            blob,
            is_inline: body["isInline"].as_bool().unwrap_or(false),
            content_id: body["contentId"].as_str().map(str::to_owned),
        };
        let added = Attachment {
            id: String::new(),
            name: pending.name.clone(),
            content_type: pending.content_type.clone(),
            is_inline: pending.is_inline,
            content_id: pending.content_id.clone(),
            data,
        };
        m.attachments.push(pending);
        mb.touch(id);
        let m = message(mb, id)?;
        let added = Attachment {
            id: last_id(m),
            ..added
        };
        let mut v = added.json(m, true);
        v["@odata.context"] =
            context(req, t, &format!("messages('{id}')/attachments/$entity")).into();
        Ok(Reply::json(StatusCode::CREATED, v))
    })
}
