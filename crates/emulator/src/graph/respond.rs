//! Answering a message (<https://learn.microsoft.com/en-us/graph/api/message-reply>):
//! `reply`, `replyAll` and `forward` send at once (202); `createReply`, `createReplyAll` and
//! `createForward` make a draft in Drafts (201) to edit and send later. The answer threads
//! (`In-Reply-To` and `References` name the original's Message-ID), its subject is prefixed
//! `RE:` or `FW:` once, and its body is the `comment` above the original's text.

use axum::http::StatusCode;
use kurir_graph::{BodyType, ItemBody, Message, Recipient};
use serde_json::Value;

use super::reply::{ApiError, ApiResult, Reply};
use super::send::submit;
use super::store::{Mailbox, now};
use super::{GraphState, Req, Target, message_entity, mime, with_mailbox};
use crate::state::lock;

/// Which answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Reply,
    ReplyAll,
    Forward,
}

/// The answer's MIME, from the original in `mb` and the request body
/// (`comment`, `toRecipients` for a forward, or a `message` with its own recipients).
fn answer(mb: &Mailbox, id: &str, kind: Kind, body: &Value) -> Result<Vec<u8>, ApiError> {
    let original = mb.messages.get(id).ok_or_else(ApiError::item_not_found)?;
    let p = &original.parsed;
    let me = mb.address.to_ascii_lowercase();
    let message: Message = match body.get("message") {
        Some(m) => serde_json::from_value(m.clone())
            .map_err(|e| ApiError::bad_request(format!("Invalid message: {e}")))?,
        None => Message::default(),
    };
    let recipients = |list: Option<&Value>| -> Result<Vec<Recipient>, ApiError> {
        match list {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| ApiError::bad_request(format!("Invalid recipients: {e}"))),
            None => Ok(Vec::new()),
        }
    };
    let not_me = |r: &&Recipient| {
        r.email_address
            .address
            .as_deref()
            .is_none_or(|a| !a.eq_ignore_ascii_case(&me))
    };
    let (prefix, to, cc) = match kind {
        Kind::Forward => {
            // None yet is fine for a draft; sending refuses it (`send::submit`).
            let mut to = recipients(body.get("toRecipients"))?;
            to.extend(message.to_recipients.clone().unwrap_or_default());
            ("FW: ", to, Vec::new())
        }
        Kind::Reply | Kind::ReplyAll => {
            let sender = if p.reply_to.is_empty() {
                p.from.clone().into_iter().collect()
            } else {
                p.reply_to.clone()
            };
            let mut to: Vec<Recipient> = sender;
            let mut cc = Vec::new();
            if kind == Kind::ReplyAll {
                to.extend(p.to.iter().filter(not_me).cloned());
                cc.extend(p.cc.iter().filter(not_me).cloned());
            }
            ("RE: ", to, cc)
        }
    };
    let subject = {
        let s = p.subject.trim();
        let already = s.len() >= 3 && s[..3].eq_ignore_ascii_case(prefix.trim_end());
        if already {
            s.to_owned()
        } else {
            format!("{prefix}{s}")
        }
    };
    let comment = body["comment"].as_str().unwrap_or_default();
    let quoted = p
        .body
        .as_ref()
        .map(|b| b.content.clone())
        .unwrap_or_default();
    let from = p
        .from
        .as_ref()
        .and_then(|f| f.email_address.address.clone())
        .unwrap_or_default();
    let text = format!(
        "{comment}\r\n\r\n-----Original Message-----\r\nFrom: {from}\r\nSubject: {}\r\n\r\n{quoted}",
        p.subject
    );
    let msg = Message {
        subject: Some(subject),
        body: Some(ItemBody {
            content_type: BodyType::Text,
            content: text,
        }),
        to_recipients: Some(to),
        cc_recipients: Some(cc),
        ..Message::default()
    };
    let mut raw = mime::build_from_json(&msg, &mb.as_recipient(), &[], mb.domain());
    if let Some(mid) = &p.internet_message_id {
        let mid = format!("<{}>", mid.trim_matches(['<', '>']));
        let threading = format!("In-Reply-To: {mid}\r\nReferences: {mid}\r\n");
        raw.splice(0..0, threading.into_bytes());
    }
    Ok(raw)
}

/// `reply`, `replyAll`, `forward`: sent at once, a copy in Sent Items.
pub fn send(graph: &GraphState, req: &Req, t: &Target, id: &str, kind: Kind) -> ApiResult {
    let body: Value = if req.body.is_empty() {
        Value::Null
    } else {
        req.json()?
    };
    let mut store = lock(&graph.store);
    let raw = {
        let mb = store
            .find(&t.mailbox)
            .ok_or_else(|| ApiError::internal("mailbox vanished"))?;
        answer(mb, id, kind, &body)?
    };
    submit(&mut store, &t.mailbox, raw, true)?;
    store.save()?;
    Ok(Reply::empty(StatusCode::ACCEPTED))
}

/// `createReply`, `createReplyAll`, `createForward`: a draft in Drafts.
pub fn create(graph: &GraphState, req: &Req, t: &Target, id: &str, kind: Kind) -> ApiResult {
    let body: Value = if req.body.is_empty() {
        Value::Null
    } else {
        req.json()?
    };
    with_mailbox(graph, t, true, |mb| {
        let raw = answer(mb, id, kind, &body)?;
        let drafts = mb
            .folder("drafts")
            .map(|f| f.id.clone())
            .ok_or_else(ApiError::item_not_found)?;
        let new_id = mb.insert(&drafts, raw, now(), true, true);
        message_entity(mb, req, t, &new_id, StatusCode::CREATED)
    })
}
