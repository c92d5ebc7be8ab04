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

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Json, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kurir_settings::{Scope, normalize_account_name, normalize_user_code};
use kurir_store::messages::{MessageFilter, MessageStatus};
use kurir_store::outbox::{OutboxFilter, OutgoingState};
use kurir_store::{Change, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{ApiCaller, api_error};
use crate::edit::{Edit, added_custom_endpoints, to_changes};
use crate::i18n::Lang;

type Shared = Arc<AppState>;

/// The OpenAPI document, kept beside the code it describes.
pub const OPENAPI: &str = include_str!("../openapi.json");

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route(
            "/api/v1/system/settings",
            get(system_get).patch(system_patch),
        )
        .route("/api/v1/system/check", post(system_check))
        .route(
            "/api/v1/webshop/settings",
            get(webshop_get).patch(webshop_patch),
        )
        .route("/api/v1/webshop/check", post(webshop_check))
        .route("/api/v1/users", get(users_list).post(users_add))
        .route("/api/v1/users/{code}", axum::routing::delete(users_remove))
        .route(
            "/api/v1/users/{code}/settings",
            get(user_get).patch(user_patch),
        )
        .route("/api/v1/users/{code}/check", post(user_check))
        .route("/api/v1/accounts", get(accounts_list).post(accounts_add))
        .route(
            "/api/v1/accounts/{name}",
            axum::routing::delete(accounts_remove),
        )
        .route(
            "/api/v1/accounts/{name}/settings",
            get(account_get).patch(account_patch),
        )
        .route("/api/v1/accounts/{name}/check", post(account_check))
        .route("/api/v1/problems", get(problems))
        .route("/api/v1/alarms", get(alarms))
        .route("/api/v1/health", get(health))
        .route("/api/v1/messages", get(messages))
        .route("/api/v1/messages/{id}", get(message_show))
        .route("/api/v1/messages/{id}/raw", get(message_raw))
        .route("/api/v1/imports", get(imports))
        .route("/api/v1/account-health", get(account_health))
        .route(
            "/api/v1/outbox",
            get(outbox_list)
                .post(crate::send::send)
                .layer(axum::extract::DefaultBodyLimit::max(crate::send::MAX_BODY)),
        )
        .route("/api/v1/outbox/{id}", get(outbox_show))
        .route("/api/v1/outbox/{id}/retry", post(outbox_retry))
        .route("/api/v1/outbox/{id}/cancel", post(outbox_cancel))
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

fn store_refusal(e: StoreError) -> Response {
    match e {
        StoreError::NoSuchUser(_) | StoreError::NoSuchAccount(_) => api_error(
            StatusCode::NOT_FOUND,
            &e.to_string(),
            "list them with GET /api/v1/users or /api/v1/accounts",
        ),
        StoreError::UserExists(_) | StoreError::AccountExists(_) => api_error(
            StatusCode::CONFLICT,
            &e.to_string(),
            "change the existing one with PATCH …/settings, or remove it first",
        ),
        e => internal(e),
    }
}

fn user_scope(code: &str) -> Result<Scope, Response> {
    normalize_user_code(code).map(Scope::User).map_err(|e| {
        api_error(
            StatusCode::BAD_REQUEST,
            &e,
            "use the ERP's user code, e.g. ANNA",
        )
    })
}

fn account_scope(name: &str) -> Result<Scope, Response> {
    normalize_account_name(name)
        .map(Scope::Account)
        .map_err(|e| api_error(StatusCode::BAD_REQUEST, &e, "use the account's name"))
}

async fn settings_of(state: &AppState, scope: &Scope) -> Response {
    let snap = match state.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    match scope {
        Scope::User(c) if !snap.users.contains_key(c) => {
            return store_refusal(StoreError::NoSuchUser(c.clone()));
        }
        Scope::Account(a) if !snap.accounts.contains_key(a) => {
            return store_refusal(StoreError::NoSuchAccount(a.clone()));
        }
        _ => {}
    }
    Json(snap.resolve(scope).to_json()).into_response()
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

async fn patch(
    state: &AppState,
    caller: &ApiCaller,
    scope: Scope,
    body: SettingsPatch,
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
    let changes = match to_changes(&scope, edits) {
        Ok(c) => c,
        Err(fields) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({
                    "error": "a value was refused; nothing was changed",
                    "fix": "correct the fields listed and send the request again",
                    "fields": fields,
                })),
            )
                .into_response();
        }
    };
    if let Some(r) = refuse_custom_endpoints(state, &scope, &changes, "nothing was changed").await {
        return r;
    }
    let n = changes.len();
    if let Err(e) = state.store.apply(&scope, changes).await {
        return store_refusal(e);
    }
    tracing::info!(api_key = %caller.key_name, scope = %scope.storage_key(), changes = n, "settings changed through the API");
    settings_of(state, &scope).await
}

/// A 422 when `changes` would make Kurir send secrets or tokens to an endpoint outside the
/// selected cloud while the server switch is off (issue #13.1); `what` says what did not happen.
async fn refuse_custom_endpoints(
    state: &AppState,
    scope: &Scope,
    changes: &[Change],
    what: &str,
) -> Option<Response> {
    let snap = match state.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return Some(internal(e)),
    };
    let added = added_custom_endpoints(&snap, scope, changes);
    if added.is_empty() {
        return None;
    }
    let fields: BTreeMap<&str, String> = added
        .iter()
        .map(|p| (p.field, format!("{} Fix: {}", p.message, p.fix)))
        .collect();
    Some(
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": format!("a custom endpoint was refused; {what}: with method exchange-online Kurir sends secrets and tokens only to the selected cloud's endpoints unless custom endpoints are allowed on the server itself"),
                "fix": "leave authority, graph_endpoint and the IMAP/POP3/SMTP hosts unset and choose the cloud (cloud=global, usgov or china); for the emulator or a test tenant, allow custom endpoints on the server with the command line: kurir settings set allow_custom_endpoints=true (the REST API cannot)",
                "fields": fields,
            })),
        )
            .into_response(),
    )
}

#[derive(Deserialize, Default)]
pub struct LangQuery {
    lang: Option<String>,
}

async fn check(state: &Shared, scope: Scope, q: LangQuery) -> Response {
    let lang = q.lang.as_deref().and_then(Lang::parse).unwrap_or(Lang::En);
    if let Ok(snap) = state.store.snapshot().await {
        match &scope {
            Scope::User(c) if !snap.users.contains_key(c) => {
                return store_refusal(StoreError::NoSuchUser(c.clone()));
            }
            Scope::Account(a) if !snap.accounts.contains_key(a) => {
                return store_refusal(StoreError::NoSuchAccount(a.clone()));
            }
            _ => {}
        }
    }
    Json(crate::check::run(state.store.clone(), &scope, lang).await).into_response()
}

async fn system_get(State(s): State<Shared>, _: ApiCaller) -> Response {
    settings_of(&s, &Scope::System).await
}
async fn system_patch(
    State(s): State<Shared>,
    c: ApiCaller,
    Json(b): Json<SettingsPatch>,
) -> Response {
    patch(&s, &c, Scope::System, b).await
}
async fn system_check(
    State(s): State<Shared>,
    _: ApiCaller,
    Query(q): Query<LangQuery>,
) -> Response {
    check(&s, Scope::System, q).await
}
async fn webshop_get(State(s): State<Shared>, _: ApiCaller) -> Response {
    settings_of(&s, &Scope::Webshop).await
}
async fn webshop_patch(
    State(s): State<Shared>,
    c: ApiCaller,
    Json(b): Json<SettingsPatch>,
) -> Response {
    patch(&s, &c, Scope::Webshop, b).await
}
async fn webshop_check(
    State(s): State<Shared>,
    _: ApiCaller,
    Query(q): Query<LangQuery>,
) -> Response {
    check(&s, Scope::Webshop, q).await
}
async fn user_get(State(s): State<Shared>, _: ApiCaller, Path(code): Path<String>) -> Response {
    match user_scope(&code) {
        Ok(scope) => settings_of(&s, &scope).await,
        Err(r) => r,
    }
}
async fn user_patch(
    State(s): State<Shared>,
    c: ApiCaller,
    Path(code): Path<String>,
    Json(b): Json<SettingsPatch>,
) -> Response {
    match user_scope(&code) {
        Ok(scope) => patch(&s, &c, scope, b).await,
        Err(r) => r,
    }
}
async fn user_check(
    State(s): State<Shared>,
    _: ApiCaller,
    Path(code): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    match user_scope(&code) {
        Ok(scope) => check(&s, scope, q).await,
        Err(r) => r,
    }
}
async fn account_get(State(s): State<Shared>, _: ApiCaller, Path(name): Path<String>) -> Response {
    match account_scope(&name) {
        Ok(scope) => settings_of(&s, &scope).await,
        Err(r) => r,
    }
}
async fn account_patch(
    State(s): State<Shared>,
    c: ApiCaller,
    Path(name): Path<String>,
    Json(b): Json<SettingsPatch>,
) -> Response {
    match account_scope(&name) {
        Ok(scope) => patch(&s, &c, scope, b).await,
        Err(r) => r,
    }
}
async fn account_check(
    State(s): State<Shared>,
    _: ApiCaller,
    Path(name): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    match account_scope(&name) {
        Ok(scope) => check(&s, scope, q).await,
        Err(r) => r,
    }
}

async fn users_list(State(s): State<Shared>, _: ApiCaller) -> Response {
    let snap = match s.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let today = crate::today();
    let rows: Vec<Value> = snap
        .users
        .iter()
        .map(|(code, layer)| {
            let scope = Scope::User(code.clone());
            let eff = snap.resolve(&scope);
            let problems = snap.validate(&scope, today);
            json!({
                "code": code,
                "email": eff.get("email"),
                "method": eff.get("method"),
                "auth_flow": eff.get("auth_flow"),
                "overrides": layer.values.keys().collect::<Vec<_>>(),
                "errors": problems.iter().filter(|p| p.severity == kurir_settings::Severity::Error).count(),
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

async fn users_add(State(s): State<Shared>, c: ApiCaller, Json(b): Json<NewUser>) -> Response {
    let scope = match user_scope(&b.code) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Scope::User(code) = &scope else {
        unreachable!("user_scope gives a user")
    };
    let edits = b
        .email
        .into_iter()
        .map(|e| Edit::Set("email".into(), e))
        .collect();
    let changes = match to_changes(&scope, edits) {
        Ok(c) => c,
        Err(fields) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"error": "a value was refused; the user was not added", "fix": "correct the fields listed", "fields": fields})),
            )
                .into_response();
        }
    };
    if let Err(e) = s.store.add_user_with(code, changes).await {
        return store_refusal(e);
    }
    tracing::info!(api_key = %c.key_name, user = %code, "user added through the API");
    (StatusCode::CREATED, settings_of(&s, &scope).await).into_response()
}

async fn users_remove(State(s): State<Shared>, c: ApiCaller, Path(code): Path<String>) -> Response {
    let Ok(Scope::User(code)) = user_scope(&code) else {
        return user_scope(&code)
            .err()
            .unwrap_or_else(|| StatusCode::BAD_REQUEST.into_response());
    };
    match s.store.remove_user(&code).await {
        Ok(()) => {
            tracing::info!(api_key = %c.key_name, user = %code, "user removed through the API");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => store_refusal(e),
    }
}

async fn accounts_list(State(s): State<Shared>, _: ApiCaller) -> Response {
    let snap = match s.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let today = crate::today();
    let rows: Vec<Value> = snap
        .accounts
        .iter()
        .map(|(name, layer)| {
            let scope = Scope::Account(name.clone());
            let eff = snap.resolve(&scope);
            let problems = snap.validate(&scope, today);
            json!({
                "name": name,
                "type": eff.get("type"),
                "mailbox": eff.get("mailbox"),
                "protocol": eff.get("protocol"),
                "auth_flow": eff.get("auth_flow"),
                "poll_interval": eff.get("poll_interval"),
                "overrides": layer.values.keys().collect::<Vec<_>>(),
                "errors": problems.iter().filter(|p| p.severity == kurir_settings::Severity::Error).count(),
            })
        })
        .collect();
    Json(rows).into_response()
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

async fn accounts_add(
    State(s): State<Shared>,
    c: ApiCaller,
    Json(b): Json<NewAccount>,
) -> Response {
    let scope = match account_scope(&b.name) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Scope::Account(name) = &scope else {
        unreachable!("account_scope gives an account")
    };
    let mut edits: Vec<Edit> = [
        ("type", b.account_type),
        ("mailbox", b.mailbox),
        ("protocol", b.protocol),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| Edit::Set(k.into(), v)))
    .collect();
    edits.extend(b.settings.into_iter().map(|(k, v)| Edit::Set(k, v)));
    let changes = match to_changes(&scope, edits) {
        Ok(c) => c,
        Err(fields) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"error": "a value was refused; the account was not added", "fix": "correct the fields listed", "fields": fields})),
            )
                .into_response();
        }
    };
    if let Some(r) =
        refuse_custom_endpoints(&s, &scope, &changes, "the account was not added").await
    {
        return r;
    }
    if let Err(e) = s.store.add_account_with(name, changes).await {
        return store_refusal(e);
    }
    tracing::info!(api_key = %c.key_name, account = %name, "account added through the API");
    (StatusCode::CREATED, settings_of(&s, &scope).await).into_response()
}

async fn accounts_remove(
    State(s): State<Shared>,
    c: ApiCaller,
    Path(name): Path<String>,
) -> Response {
    let scope = match account_scope(&name) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Scope::Account(name) = scope else {
        unreachable!("account_scope gives an account")
    };
    match s.store.remove_account(&name).await {
        Ok(()) => {
            tracing::info!(api_key = %c.key_name, account = %name, "account removed through the API");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => store_refusal(e),
    }
}

async fn problems(State(s): State<Shared>, _: ApiCaller) -> Response {
    match s.store.snapshot().await {
        Ok(snap) => Json(snap.validate_all(crate::today())).into_response(),
        Err(e) => internal(e),
    }
}

async fn alarms(State(s): State<Shared>, _: ApiCaller, Query(q): Query<LangQuery>) -> Response {
    let lang = q.lang.as_deref().and_then(Lang::parse).unwrap_or(Lang::En);
    match crate::alarms::current(&*s.store, time::OffsetDateTime::now_utc(), lang).await {
        Ok((_, alarms)) => Json(alarms).into_response(),
        Err(e) => internal(e),
    }
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
    match crate::mail::read_raw(&*s.store, id).await {
        Ok(Some(bytes)) => {
            tracing::info!(api_key = %c.key_name, id, "raw incoming message downloaded through the API");
            crate::mail::eml_response(id, bytes)
        }
        Ok(None) => no_message(id),
        Err(crate::mail::RawError::Store(e)) => internal(e),
        Err(crate::mail::RawError::Io(e)) => api_error(
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
    match crate::mail::health_summary(&*s.store, time::OffsetDateTime::now_utc()).await {
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

async fn outbox_list(
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

async fn outbox_action(s: &AppState, c: &ApiCaller, id: &str, cancel: bool) -> Response {
    let id = match id_of(id, "outgoing message", "/api/v1/outbox") {
        Ok(id) => id,
        Err(r) => return r,
    };
    let done = if cancel {
        s.store.outbox_cancel(id).await
    } else {
        s.store.outbox_retry(id).await
    };
    let done = match done {
        Ok(d) => d,
        Err(e) => return internal(e),
    };
    let m = match s.store.outbox_get(id).await {
        Ok(Some(m)) => m,
        Ok(None) => return no_outgoing(id),
        Err(e) => return internal(e),
    };
    if done {
        tracing::info!(api_key = %c.key_name, id, action = if cancel { "cancel" } else { "retry" }, "outgoing message changed through the API");
        Json(m).into_response()
    } else {
        api_error(
            StatusCode::CONFLICT,
            &format!(
                "outgoing message {id} is {}; only queued or failed messages can be {}",
                m.state,
                if cancel { "cancelled" } else { "retried" }
            ),
            "see its state with GET /api/v1/outbox/{id}",
        )
    }
}

async fn outbox_retry(State(s): State<Shared>, c: ApiCaller, Path(id): Path<String>) -> Response {
    outbox_action(&s, &c, &id, false).await
}

async fn outbox_cancel(State(s): State<Shared>, c: ApiCaller, Path(id): Path<String>) -> Response {
    outbox_action(&s, &c, &id, true).await
}
