//! Sending: `POST /users/{id}/sendMail` (JSON form, or MIME form as base64 `text/plain`),
//! drafts (`POST /users/{id}/messages`, JSON or MIME) and `POST …/messages/{id}/send`.
//!
//! Submission does what Exchange does visibly: adds Date / Message-ID / From when missing,
//! delivers a copy (without Bcc) to the Inbox of every recipient that is a mailbox in the
//! emulator, and keeps the message in the sender's Sent Items unless `saveToSentItems` is
//! false. Mail to addresses outside the emulator is accepted and dropped, like mail to the
//! internet.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kurir_graph::{Message, SendMailRequest, codes};

use super::mime::{self, MimeAttachment};
use super::reply::{ApiError, ApiResult, Reply};
use super::store::{MailStore, StoredMessage, now};
use super::{GraphState, Req, Target, with_mailbox};
use crate::fixture::Fixture;
use crate::state::lock;

fn is_mime_form(req: &Req) -> bool {
    req.header("content-type")
        .is_some_and(|c| c.trim().to_ascii_lowercase().starts_with("text/plain"))
}

/// Decodes the MIME form's body (base64, line breaks allowed).
fn decode_mime(req: &Req) -> Result<Vec<u8>, ApiError> {
    let text: Vec<u8> = req
        .body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let raw = STANDARD
        .decode(&text)
        .ok()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::MIME_INVALID_BASE64,
                "Invalid base64 string for MIME content.",
            )
        })?;
    Ok(raw)
}

fn json_attachments(msg: &Message) -> Result<Vec<MimeAttachment>, ApiError> {
    let mut out = Vec::new();
    for a in msg.attachments.iter().flatten() {
        let data = a
            .content_bytes
            .as_deref()
            .map(|b| STANDARD.decode(b.trim()))
            .transpose()
            .map_err(|_| {
                ApiError::bad_request("An attachment's contentBytes is not valid base64.")
            })?
            .unwrap_or_default();
        out.push(MimeAttachment {
            name: a.name.clone().unwrap_or_else(|| "attachment".into()),
            content_type: a
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            data,
            inline: a.is_inline.unwrap_or(false),
            content_id: None,
        });
    }
    Ok(out)
}

/// The MIME a request describes, either form.
fn request_mime(
    graph: &GraphState,
    req: &Req,
    t: &Target,
) -> Result<(Vec<u8>, Option<bool>), ApiError> {
    if is_mime_form(req) {
        return Ok((decode_mime(req)?, None));
    }
    let (msg, save) = if let Ok(s) = serde_json::from_slice::<SendMailRequest>(&req.body) {
        (s.message, s.save_to_sent_items)
    } else {
        (req.json::<Message>()?, None)
    };
    let attachments = json_attachments(&msg)?;
    let store = lock(&graph.store);
    let mb = store
        .find(&t.mailbox)
        .ok_or_else(|| ApiError::internal("mailbox vanished"))?;
    Ok((
        mime::build_from_json(&msg, &mb.as_recipient(), &attachments, mb.domain()),
        save,
    ))
}

pub fn send_mail(graph: &GraphState, fixture: &Fixture, req: &Req, t: &Target) -> ApiResult {
    if !is_mime_form(req) {
        // The JSON form must carry a `message`; a bare message is a draft, not a sendMail.
        let parsed: SendMailRequest = req.json()?;
        let _ = parsed;
    }
    let (raw, save) = request_mime(graph, req, t)?;
    may_send_as(fixture, t, &raw)?;
    let mut store = lock(&graph.store);
    submit(&mut store, &t.mailbox, raw, save.unwrap_or(true))?;
    store.save()?;
    Ok(Reply::empty(StatusCode::ACCEPTED))
}

/// Exchange's Send As check: a message whose From is another address than the mailbox it is
/// submitted through needs that address's Send As permission for this mailbox, and an app
/// limited by an application access policy may not send as a mailbox outside it. Otherwise
/// 403 `ErrorSendAsDenied` (nothing is delivered). With an app token the documented way to
/// send as a user is through that user's own mailbox:
/// <https://learn.microsoft.com/en-us/graph/outlook-send-mail-from-other-user>.
fn may_send_as(fixture: &Fixture, t: &Target, raw: &[u8]) -> Result<(), ApiError> {
    let Some(from) = mime::parse(raw)
        .from
        .and_then(|r| r.email_address.address)
        .map(|a| a.to_ascii_lowercase())
    else {
        return Ok(()); // Exchange fills in the mailbox itself.
    };
    if from == t.mailbox {
        return Ok(());
    }
    let granted = fixture.send_as(&from).contains(&t.mailbox);
    // The same application access policy `auth::authorize` applies to the mailbox in the URL.
    let in_scope = fixture
        .app(&t.caller.app_id.to_string())
        .and_then(|a| a.mailbox_access.as_ref())
        .is_none_or(|scope| scope.contains(&from));
    if granted && in_scope {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        codes::SEND_AS_DENIED,
        "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.",
    ))
}

/// Delivers a message from `sender` and files it in Sent Items.
pub fn submit(
    store: &mut MailStore,
    sender: &str,
    raw: Vec<u8>,
    save: bool,
) -> Result<(), ApiError> {
    let (address, name, domain) = {
        let mb = store
            .find(sender)
            .ok_or_else(|| ApiError::internal("mailbox vanished"))?;
        (
            mb.address.clone(),
            mb.display_name.clone(),
            mb.domain().to_string(),
        )
    };
    let raw = mime::complete_for_submission(&raw, &address, &name, &domain);
    let parsed = mime::parse(&raw);
    let mut recipients: Vec<String> = parsed
        .to
        .iter()
        .chain(&parsed.cc)
        .chain(&parsed.bcc)
        .filter_map(|r| r.email_address.address.as_deref())
        .map(str::to_ascii_lowercase)
        .collect();
    recipients.sort();
    recipients.dedup();
    if recipients.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRecipients",
            "At least one recipient is not valid., A message can't be sent because it contains no recipients.",
        ));
    }
    let delivered = mime::strip_header(&raw, "bcc");
    for r in &recipients {
        if let Some(mb) = store.get_mut(r)
            && let Some(inbox) = mb.folder("inbox").map(|f| f.id.clone())
        {
            mb.insert(&inbox, delivered.clone(), now(), false, false);
        }
    }
    if save {
        let mb = store
            .get_mut(sender)
            .ok_or_else(|| ApiError::internal("mailbox vanished"))?;
        let sent = mb
            .folder("sentitems")
            .map(|f| f.id.clone())
            .unwrap_or_default();
        mb.insert(&sent, raw, now(), true, false);
    }
    Ok(())
}

/// `POST …/messages` (a draft in Drafts) or `POST …/mailFolders/{folder}/messages` (a draft in
/// that folder: <https://learn.microsoft.com/en-us/graph/api/mailfolder-post-messages>).
pub fn create_draft(graph: &GraphState, req: &Req, t: &Target, folder: Option<&str>) -> ApiResult {
    let (raw, _) = request_mime(graph, req, t)?;
    with_mailbox(graph, t, true, |mb| {
        let drafts = mb
            .folder(folder.unwrap_or("drafts"))
            .map(|f| f.id.clone())
            .ok_or_else(ApiError::item_not_found)?;
        let id = mb.insert(&drafts, raw, now(), true, true);
        super::message_entity(mb, req, t, &id, StatusCode::CREATED)
    })
}

/// A draft's MIME with its uploaded attachments wrapped in.
pub fn draft_mime_with(graph: &GraphState, m: &StoredMessage) -> Result<Vec<u8>, ApiError> {
    let mut atts = Vec::new();
    for a in &m.attachments {
        let p = graph.blob_dir.join(format!("{}.eml", a.blob));
        let data = std::fs::read(&p).map_err(ApiError::internal)?;
        atts.push(MimeAttachment {
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            data,
            inline: a.is_inline,
            content_id: a.content_id.clone(),
        });
    }
    Ok(mime::add_attachments(&m.raw, &atts))
}

pub fn send_draft(graph: &GraphState, fixture: &Fixture, t: &Target, id: &str) -> ApiResult {
    let mut store = lock(&graph.store);
    let mb = store
        .get_mut(&t.mailbox)
        .ok_or_else(|| ApiError::internal("mailbox vanished"))?;
    let m = mb.messages.get(id).ok_or_else(ApiError::item_not_found)?;
    if !m.is_draft {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidOperation",
            "Only a draft can be sent; this message was already sent or received.",
        ));
    }
    let raw = draft_mime_with(graph, m)?;
    may_send_as(fixture, t, &raw)?;
    let save = !m.delete_after_submit;
    submit(&mut store, &t.mailbox, raw, save)?;
    if let Some(mb) = store.get_mut(&t.mailbox) {
        mb.remove(id);
    }
    store.save()?;
    Ok(Reply::empty(StatusCode::ACCEPTED))
}
