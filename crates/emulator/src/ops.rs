//! Test and operations endpoints under `/_emulator/…`: counters, fault injection, reset and
//! the device code hooks, for test suites that are not written in Rust.
//!
//! The prefix cannot collide with anything Microsoft serves, so a client pointed at the
//! emulator can never reach these by accident.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::entra::devicecode::{self, DeviceCodeHookError};
use crate::state::{EmulatorState, lock};

pub fn router() -> Router<Arc<EmulatorState>> {
    Router::new()
        .route("/_emulator/health", get(health))
        .route("/_emulator/counters", get(counters))
        .route("/_emulator/faults", get(get_faults).post(set_faults))
        .route("/_emulator/reset", post(reset))
        .route("/_emulator/devicecode/pending", get(pending))
        .route("/_emulator/devicecode/approve", post(approve))
        .route("/_emulator/devicecode/decline", post(decline))
        .route("/_emulator/devicecode/expire", post(expire))
        .route("/_emulator/refresh-tokens/revoke", post(revoke))
}

fn problem(status: StatusCode, message: String) -> Response {
    (
        status,
        Json(json!({"error": status.canonical_reason(), "message": message})),
    )
        .into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn counters(State(state): State<Arc<EmulatorState>>) -> Json<serde_json::Value> {
    let by: Vec<_> = lock(&state.counters.by_client_scope)
        .iter()
        .map(|((client, scope), n)| json!({"client_id": client, "scope": scope, "count": n}))
        .collect();
    Json(json!({
        "token_requests": state.counters.token_requests.load(Ordering::SeqCst),
        "devicecode_requests": state.counters.devicecode_requests.load(Ordering::SeqCst),
        "by_client_scope": by,
    }))
}

fn faults_json(state: &EmulatorState) -> serde_json::Value {
    let f = &state.faults;
    json!({
        "latency_ms": f.latency().as_millis() as u64,
        "fail_next": f.pending_failures(),
        "token_lifetime_secs": f.token_lifetime().as_secs(),
        "refresh_token_lifetime_secs": f.refresh_token_lifetime().as_secs(),
        "secret_lifetime_secs": f.secret_lifetime().map(|d| d.as_secs()),
    })
}

async fn get_faults(State(state): State<Arc<EmulatorState>>) -> Json<serde_json::Value> {
    Json(faults_json(&state))
}

/// Any subset of the knobs; omitted ones keep their value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsBody {
    latency_ms: Option<u64>,
    fail_next: Option<u32>,
    token_lifetime_secs: Option<u64>,
    refresh_token_lifetime_secs: Option<u64>,
    secret_lifetime_secs: Option<u64>,
}

async fn set_faults(
    State(state): State<Arc<EmulatorState>>,
    Json(body): Json<FaultsBody>,
) -> Json<serde_json::Value> {
    let f = &state.faults;
    if let Some(ms) = body.latency_ms {
        f.set_latency(Duration::from_millis(ms));
    }
    if let Some(n) = body.fail_next {
        f.fail_next(n);
    }
    if let Some(s) = body.token_lifetime_secs {
        f.set_token_lifetime(Duration::from_secs(s));
    }
    if let Some(s) = body.refresh_token_lifetime_secs {
        f.set_refresh_token_lifetime(Duration::from_secs(s));
    }
    if let Some(s) = body.secret_lifetime_secs {
        f.set_secret_lifetime(Duration::from_secs(s));
    }
    Json(faults_json(&state))
}

async fn reset(State(state): State<Arc<EmulatorState>>) -> Json<serde_json::Value> {
    state.reset();
    Json(json!({"status": "reset"}))
}

async fn pending(State(state): State<Arc<EmulatorState>>) -> Json<serde_json::Value> {
    Json(json!({"pending": devicecode::pending(&state)}))
}

#[derive(Deserialize)]
struct ApproveBody {
    user_code: String,
    username: String,
}

#[derive(Deserialize)]
struct UserCodeBody {
    user_code: String,
}

fn hook_result(r: Result<(), DeviceCodeHookError>) -> Response {
    match r {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(e @ DeviceCodeHookError::UnknownUserCode(_)) => {
            problem(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e) => problem(StatusCode::CONFLICT, e.to_string()),
    }
}

async fn approve(State(state): State<Arc<EmulatorState>>, Json(b): Json<ApproveBody>) -> Response {
    hook_result(devicecode::approve(&state, &b.user_code, &b.username))
}

async fn decline(State(state): State<Arc<EmulatorState>>, Json(b): Json<UserCodeBody>) -> Response {
    hook_result(devicecode::decline(&state, &b.user_code))
}

async fn expire(State(state): State<Arc<EmulatorState>>, Json(b): Json<UserCodeBody>) -> Response {
    hook_result(devicecode::expire(&state, &b.user_code))
}

#[derive(Deserialize, Default)]
struct RevokeBody {
    username: Option<String>,
}

async fn revoke(
    State(state): State<Arc<EmulatorState>>,
    body: Option<Json<RevokeBody>>,
) -> Response {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let user_id = match &body.username {
        Some(name) => match state.fixture().user(name) {
            Some(u) => Some(u.object_id),
            None => {
                return problem(
                    StatusCode::NOT_FOUND,
                    format!(
                        "user '{name}' is not in the fixture; omit username to revoke every refresh token"
                    ),
                );
            }
        },
        None => None,
    };
    let n = state.revoke_refresh_tokens(user_id);
    Json(json!({"revoked": n})).into_response()
}
