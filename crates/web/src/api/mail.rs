//! Incoming messages, the import queue, account health and the outbox.

use axum::Router;
use axum::extract::{Json, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kurir_store::messages::{MessageFilter, MessageStatus};
use kurir_store::outbox::{OutboxFilter, OutgoingState};
use serde::Deserialize;

use super::{Shared, internal, refusal};
use crate::AppState;
use crate::auth::{ApiCaller, api_error};
use crate::ops::{self, OutboxAction};

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/messages", get(messages))
        .route("/api/v1/messages/{id}", get(message_show))
        .route("/api/v1/messages/{id}/raw", get(message_raw))
        .route("/api/v1/imports", get(imports))
        .route("/api/v1/account-health", get(account_health))
        .route("/api/v1/outbox/{id}", get(outbox_show))
        .route("/api/v1/outbox/{id}/retry", post(outbox_retry))
        .route("/api/v1/outbox/{id}/cancel", post(outbox_cancel))
}

async fn health(State(s): State<Shared>, _: ApiCaller) -> Response {
    match s.store.health(None).await {
        Ok(h) => Json(h).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize, Default)]
pub struct MessagesQuery {
    account: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    /// Skip this many of the newest matches (paging).
    offset: Option<u32>,
}

async fn messages(
    State(s): State<Shared>,
    _: ApiCaller,
    Query(q): Query<MessagesQuery>,
) -> Response {
    let status = match q.status.as_deref() {
        None => None,
        Some(v) => match MessageStatus::parse(v) {
            Some(st) => Some(st),
            None => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    &format!("unknown status '{v}'"),
                    "use status=stored or status=quarantined",
                );
            }
        },
    };
    let filter = MessageFilter {
        account: q.account,
        status,
        limit: q.limit.unwrap_or(100).min(1000),
    };
    match s
        .store
        .list_messages_page(&filter, q.offset.unwrap_or(0))
        .await
    {
        Ok(m) => Json(m).into_response(),
        Err(e) => internal(e),
    }
}

/// A message id from the path; ids are positive integers.
fn id_of(raw: &str, what: &str, list: &str) -> Result<i64, Response> {
    raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        api_error(
            StatusCode::NOT_FOUND,
            &format!("there is no {what} '{raw}'"),
            &format!("ids are numbers; list them with GET {list}"),
        )
    })
}

fn no_message(id: i64) -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        &format!("there is no incoming message {id}"),
        "list them with GET /api/v1/messages",
    )
}

fn no_outgoing(id: i64) -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        &format!("there is no outgoing message {id}"),
        "list them with GET /api/v1/outbox",
    )
}

/// One incoming message's metadata with the import-queue entries made from it.
async fn message_show(State(s): State<Shared>, _: ApiCaller, Path(id): Path<String>) -> Response {
    let id = match id_of(&id, "incoming message", "/api/v1/messages") {
        Ok(id) => id,
        Err(r) => return r,
    };
    let m = match s.store.message(id).await {
        Ok(Some(m)) => m,
        Ok(None) => return no_message(id),
        Err(e) => return internal(e),
    };
    let imports: Vec<_> = match s.store.list_imports(Some(&m.account)).await {
        Ok(l) => l.into_iter().filter(|e| e.message == id).collect(),
        Err(e) => return internal(e),
    };
    let mut v = serde_json::to_value(&m).unwrap_or_default();
    v["imports"] = serde_json::to_value(imports).unwrap_or_default();
    Json(v).into_response()
}

/// The raw MIME (`message/rfc822`) exactly as it was taken in.
async fn message_raw(State(s): State<Shared>, c: ApiCaller, Path(id): Path<String>) -> Response {
    let id = match id_of(&id, "incoming message", "/api/v1/messages") {
        Ok(id) => id,
        Err(r) => return r,
    };
    match ops::read_raw(&*s.store, id).await {
        Ok(Some(bytes)) => {
            tracing::info!(api_key = %c.key_name, id, "raw incoming message downloaded through the API");
            ops::eml_response(id, bytes)
        }
        Ok(None) => no_message(id),
        Err(ops::RawError::Store(e)) => internal(e),
        Err(ops::RawError::Io(e)) => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the raw message {id} cannot be read from the data directory ({e})"),
            "restore the data directory from a backup",
        ),
    }
}

#[derive(Deserialize, Default)]
pub struct ImportsQuery {
    account: Option<String>,
}

/// The import queue (oldest first, as the ERP takes them).
async fn imports(State(s): State<Shared>, _: ApiCaller, Query(q): Query<ImportsQuery>) -> Response {
    match s.store.list_imports(q.account.as_deref()).await {
        Ok(l) => Json(l).into_response(),
        Err(e) => internal(e),
    }
}

async fn account_health(State(s): State<Shared>, _: ApiCaller) -> Response {
    match ops::health_summary(&*s.store, time::OffsetDateTime::now_utc()).await {
        Ok(h) => Json(h).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize, Default)]
pub struct OutboxQuery {
    state: Option<String>,
    user: Option<String>,
    limit: Option<u32>,
}

pub(super) async fn outbox_list(
    State(s): State<Shared>,
    _: ApiCaller,
    Query(q): Query<OutboxQuery>,
) -> Response {
    let state = match q.state.as_deref() {
        None => None,
        Some(v) => match OutgoingState::parse(v) {
            Some(st) => Some(st),
            None => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    &format!("unknown state '{v}'"),
                    "use state=queued, sending, sent, failed or cancelled",
                );
            }
        },
    };
    let filter = OutboxFilter {
        state,
        sender_user: q.user.map(|u| u.trim().to_ascii_uppercase()),
        limit: Some(q.limit.unwrap_or(100).clamp(1, 1000)),
    };
    match s.store.outbox_list(&filter).await {
        Ok(l) => Json(l).into_response(),
        Err(e) => internal(e),
    }
}

async fn outbox_show(State(s): State<Shared>, _: ApiCaller, Path(id): Path<String>) -> Response {
    let id = match id_of(&id, "outgoing message", "/api/v1/outbox") {
        Ok(id) => id,
        Err(r) => return r,
    };
    match s.store.outbox_get(id).await {
        Ok(Some(m)) => Json(m).into_response(),
        Ok(None) => no_outgoing(id),
        Err(e) => internal(e),
    }
}

async fn outbox_action(s: &AppState, c: &ApiCaller, id: &str, action: OutboxAction) -> Response {
    let id = match id_of(id, "outgoing message", "/api/v1/outbox") {
        Ok(id) => id,
        Err(r) => return r,
    };
    match ops::outbox_action(&*s.store, id, action).await {
        Ok(m) => {
            tracing::info!(api_key = %c.key_name, id, action = action.as_str(), "outgoing message changed through the API");
            Json(m).into_response()
        }
        Err(e) => refusal(e, "nothing was changed", "GET /api/v1/outbox"),
    }
}

async fn outbox_retry(State(s): State<Shared>, c: ApiCaller, Path(id): Path<String>) -> Response {
    outbox_action(&s, &c, &id, OutboxAction::Retry).await
}

async fn outbox_cancel(State(s): State<Shared>, c: ApiCaller, Path(id): Path<String>) -> Response {
    outbox_action(&s, &c, &id, OutboxAction::Cancel).await
}
