//! Incoming messages, the import queue, account health and the outbox.

use axum::Router;
use axum::extract::{Json, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kurir_store::messages::{Ack, Claim, MessageFilter, MessageStatus};
use kurir_store::outbox::{OutboxFilter, OutgoingState};
use serde::Deserialize;
use serde_json::json;

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
        .route("/api/v1/messages/{id}/quarantine", post(message_quarantine))
        .route("/api/v1/messages/{id}/audit", get(message_audit))
        .route("/api/v1/imports", get(imports))
        .route("/api/v1/imports/{id}/claim", post(import_claim))
        .route("/api/v1/imports/{id}/ack", post(import_ack))
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
    /// Only messages with an id above this, oldest first (a feed that never skips or repeats).
    after: Option<i64>,
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
    // `after`: the ERP's cursor feed, oldest first; otherwise the newest first, paged.
    let listed = match q.after {
        Some(after) => s.store.messages_after(&filter, after).await,
        None => {
            s.store
                .list_messages_page(&filter, q.offset.unwrap_or(0))
                .await
        }
    };
    match listed {
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

/// A quarantine action: `{"action": "reprocess" | "mark_handled" | "forward" | "delete",
/// "note": …, "to": …}`.
#[derive(Deserialize)]
pub struct QuarantineBody {
    action: String,
    note: Option<String>,
    to: Option<String>,
}

/// Acts on a quarantined message; audited under the API key's name.
async fn message_quarantine(
    State(s): State<Shared>,
    c: ApiCaller,
    Path(id): Path<String>,
    Json(body): Json<QuarantineBody>,
) -> Response {
    let id = match id_of(&id, "incoming message", "/api/v1/messages") {
        Ok(id) => id,
        Err(r) => return r,
    };
    let action = match body.action.as_str() {
        "reprocess" => ops::QuarantineAction::Reprocess,
        "mark_handled" => ops::QuarantineAction::MarkHandled {
            note: body.note.unwrap_or_default(),
        },
        "forward" => ops::QuarantineAction::Forward {
            to: body.to.unwrap_or_default(),
        },
        "delete" => ops::QuarantineAction::Delete,
        other => {
            return api_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("unknown quarantine action '{other}'"),
                "use one of reprocess, mark_handled (with note), forward (with to), delete",
            );
        }
    };
    let actor = format!("api:{}", c.key_name);
    match ops::quarantine_action(&s.store, &s.submitter, id, action, &actor).await {
        Ok(done) => {
            tracing::info!(api_key = %c.key_name, id, "quarantine action through the API");
            Json(done).into_response()
        }
        Err(e) => refusal(
            e,
            "nothing was done",
            "GET /api/v1/messages?status=quarantined",
        ),
    }
}

/// The audit trail of one message (quarantine actions), newest first.
async fn message_audit(State(s): State<Shared>, _: ApiCaller, Path(id): Path<String>) -> Response {
    let id = match id_of(&id, "incoming message", "/api/v1/messages") {
        Ok(id) => id,
        Err(r) => return r,
    };
    match s.store.audit_log(Some(&format!("message:{id}")), 200).await {
        Ok(log) => Json(log).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize, Default)]
pub struct ImportsQuery {
    account: Option<String>,
    /// Only entries with an id above this (the last id the ERP has seen): a feed that never
    /// skips or repeats an entry.
    after: Option<i64>,
    limit: Option<u32>,
    /// Only entries still to be taken: ready, not claimed now, not acknowledged.
    pending: Option<bool>,
}

/// The import queue (oldest first, as the ERP takes them); committed entries only (a `staged`
/// one's file is not in the import folder yet).
async fn imports(State(s): State<Shared>, _: ApiCaller, Query(q): Query<ImportsQuery>) -> Response {
    let limit = q.limit.unwrap_or(1000).clamp(1, 1000);
    match s
        .store
        .imports_after(
            q.account.as_deref(),
            q.after.unwrap_or(0),
            limit,
            q.pending.unwrap_or(false),
        )
        .await
    {
        Ok(l) => Json(l).into_response(),
        Err(e) => internal(e),
    }
}

/// How long a claim lasts unless the ERP asks otherwise, and at most.
const CLAIM_DEFAULT_SECS: u32 = 300;
const CLAIM_MAX_SECS: u32 = 3600;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// How long the claim lasts (seconds, 1–3600; default 300).
    ttl_secs: Option<u32>,
    /// Renew a claim the caller holds.
    claim: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// The token `…/claim` gave.
    claim: String,
}

fn no_import(id: i64) -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        &format!("there is no import-queue entry {id}"),
        "list them with GET /api/v1/imports",
    )
}

fn ms_to_rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// `POST /api/v1/imports/{id}/claim`: the ERP takes one entry for a while, so that two of its
/// workers never process the same document; the claim expires on its own if the worker dies.
async fn import_claim(
    State(s): State<Shared>,
    c: ApiCaller,
    Path(id): Path<String>,
    body: Option<Json<ClaimRequest>>,
) -> Response {
    let id = match id_of(&id, "import-queue entry", "/api/v1/imports") {
        Ok(id) => id,
        Err(r) => return r,
    };
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let ttl = req.ttl_secs.unwrap_or(CLAIM_DEFAULT_SECS);
    if !(1..=CLAIM_MAX_SECS).contains(&ttl) {
        return api_error(
            StatusCode::BAD_REQUEST,
            &format!("ttl_secs {ttl} is out of range"),
            "give 1 to 3600 seconds, or leave it out for 300",
        );
    }
    let token = req
        .claim
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    match s
        .store
        .claim_import(id, &token, i64::from(ttl) * 1000)
        .await
    {
        Ok(Claim::Claimed { until }) => {
            tracing::info!(api_key = %c.key_name, id, "import-queue entry claimed");
            Json(json!({"id": id, "claim": token, "claimed_until": ms_to_rfc3339(until)}))
                .into_response()
        }
        Ok(Claim::ClaimedByOther { until }) => api_error(
            StatusCode::CONFLICT,
            &format!(
                "import-queue entry {id} is claimed by another consumer until {}",
                ms_to_rfc3339(until)
            ),
            "take another entry (GET /api/v1/imports?pending=true), or try this one after the claim expires",
        ),
        Ok(Claim::Acked) => api_error(
            StatusCode::CONFLICT,
            &format!("import-queue entry {id} was acknowledged already"),
            "it is done; it is never offered again",
        ),
        Ok(Claim::NotReady) => api_error(
            StatusCode::CONFLICT,
            &format!("import-queue entry {id} is not in the import folder yet"),
            "try again in a moment",
        ),
        Ok(Claim::NotFound) => no_import(id),
        Err(e) => internal(e),
    }
}

/// `POST /api/v1/imports/{id}/ack`: the ERP has the document; it is `picked_up` and never
/// offered again. Needs the claim in force; repeating an ack is harmless.
async fn import_ack(
    State(s): State<Shared>,
    c: ApiCaller,
    Path(id): Path<String>,
    Json(body): Json<AckRequest>,
) -> Response {
    let id = match id_of(&id, "import-queue entry", "/api/v1/imports") {
        Ok(id) => id,
        Err(r) => return r,
    };
    match s.store.ack_import(id, &body.claim).await {
        Ok(Ack::Acked) | Ok(Ack::AlreadyAcked) => {
            tracing::info!(api_key = %c.key_name, id, "import-queue entry acknowledged");
            Json(json!({"id": id, "state": "picked_up"})).into_response()
        }
        Ok(Ack::NotClaimed) => api_error(
            StatusCode::CONFLICT,
            &format!("you hold no claim in force on import-queue entry {id}"),
            "the claim expired or is another's: claim it again (POST …/claim), and ack within its ttl_secs",
        ),
        Ok(Ack::NotFound) => no_import(id),
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
