//! Test and demo endpoints for Graph mail under `/_emulator/…` (no token needed):
//!
//! - `GET|POST /_emulator/graph/faults`: latency, next N requests 429 / 503 / dropped.
//! - `GET /_emulator/graph/counters`: sendMail, drafts, upload sessions and chunks, 429s and
//!   the peak concurrency per mailbox, so far.
//! - `GET /_emulator/mailboxes`: every mailbox with its folders and counts.
//! - `POST /_emulator/mailboxes/{address}/messages[?folder=F&received=RFC3339]`: store a raw
//!   RFC 822 message (the body) as delivered mail; answers `{"id": …}`.
//! - `GET /_emulator/mailboxes/{address}/messages[?folder=F]`: the messages in a folder
//!   (id, subject, from, isRead), to check deliveries without a token.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::PutMailError;
use super::faults::GraphFaultSettings;
use super::reply::plain;
use crate::state::{EmulatorState, lock};

/// Largest message the test API accepts (Exchange's ceiling plus MIME overhead).
const MAX_PUT_BYTES: usize = 200 * 1024 * 1024;

pub fn router() -> Router<Arc<EmulatorState>> {
    Router::new()
        .route("/_emulator/graph/faults", get(get_faults).post(set_faults))
        .route("/_emulator/graph/counters", get(get_counters))
        .route("/_emulator/mailboxes", get(mailboxes))
        .route(
            "/_emulator/mailboxes/{address}/messages",
            get(list_messages).post(put_message),
        )
}

async fn get_faults(State(state): State<Arc<EmulatorState>>) -> Json<GraphFaultSettings> {
    Json(state.graph.faults.settings())
}

async fn get_counters(
    State(state): State<Arc<EmulatorState>>,
) -> Json<super::faults::GraphCounterSnapshot> {
    Json(state.graph.counters.snapshot(&state.graph.throttle))
}

async fn set_faults(
    State(state): State<Arc<EmulatorState>>,
    Json(body): Json<GraphFaultSettings>,
) -> Json<GraphFaultSettings> {
    state.graph.faults.apply(&body);
    Json(state.graph.faults.settings())
}

async fn mailboxes(State(state): State<Arc<EmulatorState>>) -> Json<serde_json::Value> {
    let store = lock(&state.graph.store);
    let list: Vec<_> = store
        .mailboxes
        .values()
        .map(|mb| {
            json!({
                "address": mb.address,
                "display_name": mb.display_name,
                "object_id": mb.object_id.to_string(),
                "folders": mb.folders.iter().map(|f| mb.folder_json(f)).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({"mailboxes": list}))
}

#[derive(Deserialize)]
struct PutQuery {
    folder: Option<String>,
    received: Option<String>,
}

async fn put_message(
    State(state): State<Arc<EmulatorState>>,
    Path(address): Path<String>,
    Query(q): Query<PutQuery>,
    request: Request,
) -> Response {
    let received = match q
        .received
        .as_deref()
        .map(|r| OffsetDateTime::parse(r, &Rfc3339))
    {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => {
            return plain(
                StatusCode::BAD_REQUEST,
                "received must be an RFC 3339 date-time such as 2024-05-01T08:30:00Z".into(),
            );
        }
    };
    let raw = match axum::body::to_bytes(request.into_body(), MAX_PUT_BYTES).await {
        Ok(b) if !b.is_empty() => b.to_vec(),
        Ok(_) => {
            return plain(
                StatusCode::BAD_REQUEST,
                "the body must be the raw RFC 822 message (an .eml file); it was empty".into(),
            );
        }
        Err(_) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the message is over 200 MB; Exchange Online accepts at most 150 MB".into(),
            );
        }
    };
    match state
        .graph
        .put_mail(&address, q.folder.as_deref(), raw, received)
    {
        Ok(id) => (
            StatusCode::CREATED,
            Json(json!({"id": id, "mailbox": address, "folder": q.folder.unwrap_or_else(|| "inbox".into())})),
        )
            .into_response(),
        Err(e @ (PutMailError::NoMailbox(_) | PutMailError::NoFolder { .. })) => {
            plain(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    folder: Option<String>,
}

async fn list_messages(
    State(state): State<Arc<EmulatorState>>,
    Path(address): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let store = lock(&state.graph.store);
    let Some(mb) = store.find(&address) else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("there is no mailbox '{address}' in the emulator"),
        );
    };
    let key = q.folder.as_deref().unwrap_or("inbox");
    let Some(folder) = mb.folder_loose(key) else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("mailbox '{address}' has no folder '{key}'"),
        );
    };
    let mut msgs: Vec<_> = mb
        .messages
        .values()
        .filter(|m| m.folder_id == folder.id)
        .collect();
    msgs.sort_by_key(|m| (m.received, m.seq));
    let list: Vec<_> = msgs
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "subject": m.parsed.subject,
                "from": m.parsed.from.as_ref().and_then(|f| f.email_address.address.clone()),
                "internetMessageId": m.parsed.internet_message_id,
                "isRead": m.is_read,
                "size": m.raw.len(),
                "hasAttachments": m.parsed.has_attachments,
            })
        })
        .collect();
    Json(json!({"folder_id": folder.id, "messages": list})).into_response()
}
