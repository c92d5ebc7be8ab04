//! Upload sessions for large attachments (3–150 MB):
//! `POST …/messages/{id}/attachments/createUploadSession` → 201 `{uploadUrl,
//! expirationDateTime, nextExpectedRanges:["0-"]}`, then `PUT uploadUrl` in chunks with
//! `Content-Range: bytes a-b/total`, each at most 4 MB: 200 `{"nextExpectedRanges":["{start}"]}`
//! (for Outlook attachments a single start offset, not OneDrive's `start-end` ranges:
//! <https://learn.microsoft.com/en-us/graph/api/resources/uploadsession>) until the last chunk,
//! which answers 201 and attaches the file to the draft.
//!
//! The upload URL looks like Outlook's (`/api/v2.0/Users('…')/Messages('…')/AttachmentSessions('…')`)
//! and carries an opaque `authtoken`; like the real one it refuses an Authorization header,
//! which catches clients that send their Graph token to it. Microsoft hands it out on another
//! host than Graph (outlook.office.com), so SDKs that attach tokens only to Graph's host send
//! none there; the emulator does the same with its other loopback name (`localhost` for a client
//! that called `127.0.0.1` and the other way round; both are in its certificate). The final
//! chunk's 201 carries the attachment's URL in `Location`, as documented
//! (<https://learn.microsoft.com/en-us/graph/outlook-large-attachments>). A refused chunk is
//! read to its end before the answer, so the client gets the error instead of a reset
//! connection.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use kurir_graph::{
    CreateUploadSessionRequest, MAX_ATTACHMENT_BYTES, MAX_REQUEST_BYTES, UploadSession, codes,
};
use serde_json::json;
use time::OffsetDateTime;

use super::reply::{ApiError, ApiResult, Reply};
use super::store::{PendingAttachment, new_item_id};
use super::{GraphState, Req, Target, context, with_mailbox};
use crate::state::{EmulatorState, lock};

/// How long an upload URL stays valid.
const SESSION_LIFETIME: time::Duration = time::Duration::hours(2);

/// An upload in progress.
pub struct UploadState {
    mailbox: String,
    message_id: String,
    name: String,
    content_type: String,
    size: u64,
    data: Vec<u8>,
    expires: OffsetDateTime,
    is_inline: bool,
    content_id: Option<String>,
}

pub fn create(graph: &GraphState, req: &Req, t: &Target, id: &str) -> ApiResult {
    let body: CreateUploadSessionRequest = req.json()?;
    let item = body.attachment_item;
    if item.size == 0 {
        return Err(ApiError::bad_request(
            "The attachment size must be greater than 0.",
        ));
    }
    // <https://learn.microsoft.com/en-us/graph/outlook-large-attachments#errors>
    if item.size < kurir_graph::INLINE_ATTACHMENT_LIMIT {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::ATTACHMENT_TOO_SMALL_FOR_SESSION,
            "Attachment size must be greater than the minimum size. Attach files under 3 MB with a POST to the attachments of the message.",
        ));
    }
    if item.size > MAX_ATTACHMENT_BYTES {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize",
            "The attachment is larger than the maximum size of 150 MB.",
        ));
    }
    let object_id = with_mailbox(graph, t, false, |mb| {
        let m = mb.messages.get(id).ok_or_else(ApiError::item_not_found)?;
        if !m.is_draft {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ErrorInvalidOperation",
                "Attachments can only be uploaded to a draft.",
            ));
        }
        Ok(mb.object_id)
    })?;
    let token = new_item_id("eyJ0eXAiOiJKV1Qi");
    let session_id = new_item_id("AAMkAGU");
    let expires = super::store::now() + SESSION_LIFETIME;
    lock(&graph.uploads).insert(
        token.clone(),
        UploadState {
            mailbox: t.mailbox.clone(),
            message_id: id.to_string(),
            name: item.name.clone(),
            content_type: item
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            size: item.size,
            data: Vec::with_capacity(item.size.min(16 * 1024 * 1024) as usize),
            expires,
            is_inline: item.is_inline.unwrap_or(false),
            content_id: item.content_id.clone(),
        },
    );
    let session = UploadSession {
        upload_url: format!(
            "{}/api/v2.0/Users('{object_id}')/Messages('{id}')/AttachmentSessions('{session_id}')?authtoken={token}",
            upload_base(&req.base)
        ),
        expiration_date_time: Some(expires),
        next_expected_ranges: vec!["0-".into()],
    };
    let mut v = serde_json::to_value(session).map_err(ApiError::internal)?;
    v["@odata.context"] = context(req, t, "microsoft.graph.uploadSession").into();
    Ok(Reply::json(StatusCode::CREATED, v))
}

/// The base of upload URLs: the emulator's other loopback name than the one the client used
/// for Graph, so the upload host differs from Graph's as Microsoft's does. A client that reached
/// the emulator by another name (a non-loopback address, a proxy's name) keeps it: the
/// certificate names no other.
fn upload_base(graph_base: &str) -> String {
    let Ok(mut url) = url::Url::parse(graph_base) else {
        return graph_base.to_owned();
    };
    let other = match url.host_str() {
        Some("127.0.0.1") | Some("[::1]") => "localhost",
        Some("localhost") => "127.0.0.1",
        _ => return graph_base.to_owned(),
    };
    if url.set_host(Some(other)).is_err() {
        return graph_base.to_owned();
    }
    url.as_str().trim_end_matches('/').to_owned()
}

/// Reads and discards what is left of a request body (at most `limit` bytes), so an error can
/// be answered on a connection that is still in step: hyper closes a connection whose request
/// body was not read, and the client sees a reset instead of the answer.
async fn drain(body: axum::body::Body, limit: usize) {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut seen = 0usize;
    while seen <= limit {
        match body.frame().await {
            Some(Ok(f)) => seen += f.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
}

/// The whole body if it is at most `limit` bytes; otherwise `None` after reading (and
/// dropping) up to twice the limit, so the 413 reaches the client (see [`drain`]).
async fn collect_bounded(body: axum::body::Body, limit: usize) -> Option<Vec<u8>> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return None };
        if let Some(d) = frame.data_ref() {
            if out.len() + d.len() > limit {
                drain(body, limit).await;
                return None;
            }
            out.extend_from_slice(d);
        }
    }
    Some(out)
}

fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// `PUT`/`DELETE` on an upload URL.
pub async fn http_put(State(state): State<Arc<EmulatorState>>, request: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = request.into_parts();
    let base = crate::entra::external_base(&parts.headers, &state);
    let reply = match put(&state, &parts, body, &base).await {
        Ok(r) => r,
        Err(e) => e.into_reply(&request_id, None),
    };
    reply.into_http(&request_id, None)
}

async fn put(
    state: &EmulatorState,
    parts: &axum::http::request::Parts,
    body: axum::body::Body,
    base: &str,
) -> ApiResult {
    let graph = &state.graph;
    // Refusals before the chunk is read drain it first (see `drain`); a chunk larger than a
    // request may be is read up to twice the limit, then the connection is given up.
    let refuse = async |e: ApiError, body: axum::body::Body| {
        drain(body, 2 * MAX_REQUEST_BYTES).await;
        Err(e)
    };
    let token = parts.uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "authtoken")
            .map(|(_, v)| v.into_owned())
    });
    let Some(token) = token else {
        return refuse(
            ApiError::unauthorized(
                "The upload URL has no authtoken; use uploadUrl exactly as returned.",
            ),
            body,
        )
        .await;
    };
    if parts.headers.contains_key("authorization") {
        return refuse(
            ApiError::unauthorized(
                "Do not send an Authorization header to an upload URL: it carries its own token.",
            ),
            body,
        )
        .await;
    }
    let announced = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > MAX_REQUEST_BYTES) {
        return refuse(ApiError::too_large(), body).await;
    }
    if parts.method == Method::DELETE {
        lock(&graph.uploads)
            .remove(&token)
            .ok_or_else(ApiError::item_not_found)?;
        return Ok(Reply::empty(StatusCode::NO_CONTENT));
    }
    if parts.method != Method::PUT {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::BAD_REQUEST,
            "Upload URLs take PUT (a chunk) or DELETE (cancel).",
        ));
    }
    let Some(range) = parts
        .headers
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_content_range)
    else {
        return refuse(
            ApiError::bad_request("A Content-Range header 'bytes a-b/total' is required."),
            body,
        )
        .await;
    };
    let chunk = collect_bounded(body, MAX_REQUEST_BYTES)
        .await
        .ok_or_else(ApiError::too_large)?;
    graph
        .counters
        .upload_chunks
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let (a, b, total) = range;
    let done = {
        let mut uploads = lock(&graph.uploads);
        let s = uploads
            .get_mut(&token)
            .ok_or_else(ApiError::item_not_found)?;
        if OffsetDateTime::now_utc() > s.expires {
            uploads.remove(&token);
            return Err(ApiError::item_not_found());
        }
        let expected = s.data.len() as u64;
        if total != s.size
            || a != expected
            || b < a
            || b - a + 1 != chunk.len() as u64
            || b >= total
        {
            return Err(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                format!(
                    "The Content-Range 'bytes {a}-{b}/{total}' does not fit: expected the chunk starting at {expected} of {} bytes, with exactly as many bytes as the range says.",
                    s.size
                ),
            ));
        }
        s.data.extend_from_slice(&chunk);
        if (s.data.len() as u64) < s.size {
            let next = s.data.len();
            return Ok(Reply::json(
                StatusCode::OK,
                json!({
                    "expirationDateTime": s.expires.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                    "nextExpectedRanges": [next.to_string()],
                }),
            ));
        }
        uploads
            .remove(&token)
            .ok_or_else(ApiError::item_not_found)?
    };
    let blob = {
        let store = lock(&graph.store);
        store.write_blob(&done.data)?
    };
    let mut store = lock(&graph.store);
    let mb = store
        .get_mut(&done.mailbox)
        .ok_or_else(ApiError::item_not_found)?;
    let m = mb
        .messages
        .get_mut(&done.message_id)
        .ok_or_else(ApiError::item_not_found)?;
    m.attachments.push(PendingAttachment {
        name: done.name,
        content_type: done.content_type,
        blob,
        is_inline: done.is_inline,
        content_id: done.content_id,
    });
    mb.touch(&done.message_id);
    let m = mb
        .messages
        .get(&done.message_id)
        .ok_or_else(ApiError::item_not_found)?;
    let attachment = super::attachments::last_id(m);
    let location = format!(
        "{base}/v1.0/users/{}/messages/{}/attachments/{attachment}",
        done.mailbox, done.message_id
    );
    store.save()?;
    Ok(Reply::empty(StatusCode::CREATED).header("location", location))
}
