//! The REST API (JSON) under `/api/v1`, for scripts and the ERP's own tooling; documented as
//! OpenAPI 3 in `openapi.json`, served at `/api/openapi.json`.
//!
//! Every call needs an API key (`Authorization: Bearer kurir_…`, created with
//! `kurir admin api-key create NAME`). Settings come in the shape of
//! `kurir settings show --json`: `{key: {value, source, from?, secret?, set_on?}}`, secrets
//! masked. Secrets can be written (PATCH) but never read back.
//!
//! Errors are `{"error": "...", "fix": "..."}` (or `fields` for per-key problems) with the
//! usual status codes: 400 bad input, 401 no or bad key, 404 no such user/account, 409
//! already exists, 422 a value refused.

//!
//! Layout: this file has the routes, the error shapes and the settings of every scope
//! (`…/settings`, `…/check`, adding and removing users and accounts); `mail.rs` the incoming
//! messages, the import queue and the outbox; `send.rs` queuing mail (`POST /api/v1/outbox`).
//! What a request does lives in [`crate::ops`], shared with the web UI.

mod mail;
mod send;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Json, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use kurir_settings::Scope;
use kurir_store::StoreError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{ApiCaller, api_error};
use crate::i18n::Lang;
use crate::ops::{self, Edit, OpError, Scoped, Subject};

type Shared = Arc<AppState>;

/// The OpenAPI document, kept beside the code it describes.
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route(
            "/api/v1/system/settings",
            get(settings_get).patch(settings_patch),
        )
        .route("/api/v1/system/check", post(check))
        .route(
            "/api/v1/webshop/settings",
            get(settings_get).patch(settings_patch),
        )
        .route("/api/v1/webshop/check", post(check))
        .route("/api/v1/users", get(users_list).post(users_add))
        .route("/api/v1/users/{code}", delete(remove))
        .route(
            "/api/v1/users/{code}/settings",
            get(settings_get).patch(settings_patch),
        )
        .route("/api/v1/users/{code}/check", post(check))
        .route("/api/v1/accounts", get(accounts_list).post(accounts_add))
        .route("/api/v1/accounts/{name}", delete(remove))
        .route(
            "/api/v1/accounts/{name}/settings",
            get(settings_get).patch(settings_patch),
        )
        .route("/api/v1/accounts/{name}/check", post(check))
        .route("/api/v1/problems", get(problems))
        .route("/api/v1/alarms", get(alarms))
        .merge(mail::routes())
        .route(
            "/api/v1/outbox",
            get(mail::outbox_list)
                .post(send::send)
                .layer(axum::extract::DefaultBodyLimit::max(send::MAX_BODY)),
        )
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

fn internal(e: StoreError) -> Response {
    tracing::error!(error = %e, "store error in the API");
    api_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        &e.to_string(),
        "check Kurir's log and data directory",
    )
}

/// The answer to an operation that did not happen; `not_done` says what did not (e.g. "nothing
/// was changed"), `list` where to find what exists (e.g. "GET /api/v1/outbox").
fn refusal(e: OpError, not_done: &str, list: &str) -> Response {
    let unprocessable =
        |body: Value| (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
    match e {
        OpError::BadName(m) => api_error(
            StatusCode::BAD_REQUEST,
            &m,
            "use the ERP's user code (e.g. ANNA) or the account's name",
        ),
        OpError::NotFound(m) => {
            api_error(StatusCode::NOT_FOUND, &m, &format!("list them with {list}"))
        }
        OpError::Exists(e) => api_error(
            StatusCode::CONFLICT,
            &e.to_string(),
            "change the existing one with PATCH …/settings, or remove it first",
        ),
        OpError::Refused(fields) => unprocessable(json!({
            "error": format!("a value was refused; {not_done}"),
            "fix": "correct the fields listed and send the request again",
            "fields": fields,
        })),
        OpError::CustomEndpoints(added) => {
            let fields: BTreeMap<&str, String> = added
                .iter()
                .map(|p| (p.field, format!("{} Fix: {}", p.message, p.fix)))
                .collect();
            unprocessable(json!({
                "error": format!("a custom endpoint was refused; {not_done}: with method exchange-online Kurir sends secrets and tokens only to the selected cloud's endpoints unless custom endpoints are allowed on the server itself"),
                "fix": "leave authority, graph_endpoint and the IMAP/POP3/SMTP hosts unset and choose the cloud (cloud=global, usgov or china); for the emulator or a test tenant, allow custom endpoints on the server with the command line: kurir settings set allow_custom_endpoints=true (the REST API cannot)",
                "fields": fields,
            }))
        }
        OpError::WrongState(m) => api_error(
            StatusCode::CONFLICT,
            &format!(
                "outgoing message {} is {}; only queued or failed messages can be retried or cancelled; {not_done}",
                m.id, m.state
            ),
            &format!("see its state with GET /api/v1/outbox/{}", m.id),
        ),
        OpError::Quarantine(r) => api_error(
            StatusCode::CONFLICT,
            &format!("{r}; {not_done}"),
            &format!("see the message with {list}"),
        ),
        OpError::Failed(m) => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("{m}; {not_done}"),
            "fix what the error names and try again",
        ),
        OpError::Store(e) => internal(e),
    }
}

const SUBJECTS: &str = "GET /api/v1/users or /api/v1/accounts";

async fn settings_of(state: &AppState, scope: &Scope) -> Response {
    match ops::snapshot_of(&*state.store, scope).await {
        Ok(snap) => Json(snap.resolve(scope).to_json()).into_response(),
        Err(e) => refusal(e, "nothing was read", SUBJECTS),
    }
}

async fn settings_get(State(s): State<Shared>, _: ApiCaller, Scoped(scope): Scoped) -> Response {
    settings_of(&s, &scope).await
}

/// `{"set": {"key": "value"}, "unset": ["key"]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    unset: Vec<String>,
}

async fn settings_patch(
    State(s): State<Shared>,
    caller: ApiCaller,
    Scoped(scope): Scoped,
    Json(body): Json<SettingsPatch>,
) -> Response {
    let mut edits: Vec<Edit> = body.unset.into_iter().map(Edit::Unset).collect();
    edits.extend(body.set.into_iter().map(|(k, v)| Edit::Set(k, v)));
    if edits.is_empty() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "nothing to change",
            "send {\"set\": {\"key\": \"value\"}} and/or {\"unset\": [\"key\"]}",
        );
    }
    match ops::change_settings(&*s.store, &scope, edits).await {
        Ok(keys) => {
            tracing::info!(api_key = %caller.key_name, scope = %scope.storage_key(), keys = ?keys, "settings changed through the API");
            settings_of(&s, &scope).await
        }
        Err(e) => refusal(e, "nothing was changed", SUBJECTS),
    }
}

#[derive(Deserialize, Default)]
pub struct LangQuery {
    lang: Option<String>,
}

impl LangQuery {
    fn lang(&self) -> Lang {
        self.lang
            .as_deref()
            .and_then(Lang::parse)
            .unwrap_or(Lang::En)
    }
}

/// Test connection of one scope, as the UI's button runs it.
async fn check(
    State(s): State<Shared>,
    _: ApiCaller,
    Scoped(scope): Scoped,
    Query(q): Query<LangQuery>,
) -> Response {
    if let Err(e) = ops::snapshot_of(&*s.store, &scope).await {
        return refusal(e, "nothing was tested", SUBJECTS);
    }
    Json(crate::check::run(s.store.clone(), &scope, q.lang()).await).into_response()
}

async fn users_list(State(s): State<Shared>, _: ApiCaller) -> Response {
    let snap = match s.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let rows: Vec<Value> = ops::list(&snap, Subject::User)
        .into_iter()
        .map(|u| {
            let eff = &u.effective;
            json!({
                "code": u.name,
                "email": eff.get("email"),
                "method": eff.get("method"),
                "auth_flow": eff.get("auth_flow"),
                "overrides": u.overrides,
                "errors": u.errors,
            })
        })
        .collect();
    Json(rows).into_response()
}

async fn accounts_list(State(s): State<Shared>, _: ApiCaller) -> Response {
    let snap = match s.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let rows: Vec<Value> = ops::list(&snap, Subject::Account)
        .into_iter()
        .map(|a| {
            let eff = &a.effective;
            json!({
                "name": a.name,
                "type": eff.get("type"),
                "mailbox": eff.get("mailbox"),
                "protocol": eff.get("protocol"),
                "auth_flow": eff.get("auth_flow"),
                "poll_interval": eff.get("poll_interval"),
                "overrides": a.overrides,
                "errors": a.errors,
            })
        })
        .collect();
    Json(rows).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    code: String,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    name: String,
    #[serde(default, rename = "type")]
    account_type: Option<String>,
    #[serde(default)]
    mailbox: Option<String>,
    #[serde(default)]
    protocol: Option<String>,
    /// Any further account settings.
    #[serde(default)]
    settings: BTreeMap<String, String>,
}

async fn users_add(State(s): State<Shared>, c: ApiCaller, Json(b): Json<NewUser>) -> Response {
    let edits = b
        .email
        .into_iter()
        .map(|e| Edit::Set("email".into(), e))
        .collect();
    added(
        &s,
        &c,
        Subject::User,
        &b.code,
        edits,
        "the user was not added",
    )
    .await
}

async fn accounts_add(
    State(s): State<Shared>,
    c: ApiCaller,
    Json(b): Json<NewAccount>,
) -> Response {
    let mut edits: Vec<Edit> = [
        ("type", b.account_type),
        ("mailbox", b.mailbox),
        ("protocol", b.protocol),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| Edit::Set(k.into(), v)))
    .collect();
    edits.extend(b.settings.into_iter().map(|(k, v)| Edit::Set(k, v)));
    added(
        &s,
        &c,
        Subject::Account,
        &b.name,
        edits,
        "the account was not added",
    )
    .await
}

async fn added(
    s: &AppState,
    c: &ApiCaller,
    subject: Subject,
    name: &str,
    edits: Vec<Edit>,
    not_done: &str,
) -> Response {
    match ops::add(&*s.store, subject, name, edits).await {
        Ok(scope) => {
            tracing::info!(api_key = %c.key_name, scope = %scope.storage_key(), "added through the API");
            (StatusCode::CREATED, settings_of(s, &scope).await).into_response()
        }
        Err(e) => refusal(e, not_done, SUBJECTS),
    }
}

async fn remove(State(s): State<Shared>, c: ApiCaller, Scoped(scope): Scoped) -> Response {
    match ops::remove(&*s.store, &scope).await {
        Ok(()) => {
            tracing::info!(api_key = %c.key_name, scope = %scope.storage_key(), "removed through the API");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => refusal(e, "nothing was removed", SUBJECTS),
    }
}

async fn problems(State(s): State<Shared>, _: ApiCaller) -> Response {
    match s.store.snapshot().await {
        Ok(snap) => Json(snap.validate_all(crate::today())).into_response(),
        Err(e) => internal(e),
    }
}

async fn alarms(State(s): State<Shared>, _: ApiCaller, Query(q): Query<LangQuery>) -> Response {
    match crate::alarms::current(&*s.store, time::OffsetDateTime::now_utc(), q.lang()).await {
        Ok((_, alarms)) => Json(alarms).into_response(),
        Err(e) => internal(e),
    }
}
