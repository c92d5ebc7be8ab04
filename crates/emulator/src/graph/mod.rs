//! Microsoft Graph mail, emulated: `/v1.0/users/{id}/…` on the emulator's HTTPS listener.
//!
//! Requests are routed by hand here rather than by axum because `$batch` must run its inner
//! requests through exactly the same path (token check, authorisation, throttling, handler)
//! and collect their answers as values: [`dispatch`] takes a [`Req`] and gives a [`Reply`],
//! and both the HTTP handler and `$batch` call it.
//!
//! One file per operation: `folders.rs`, `list.rs` (listing with query options), `item.rs`
//! (get, `$value`, patch, delete), `attachments.rs`, `moves.rs`, `respond.rs` (reply, forward), `delta.rs`, `send.rs` (sendMail, drafts,
//! send), `upload.rs` (upload sessions), `batch.rs`. Around them: `auth.rs` (tokens and
//! permissions), `faults.rs` (concurrency limit, injected faults), `store.rs` (mailboxes and
//! persistence), `mime.rs`, `query.rs` (OData options), `reply.rs` (answers and Graph's error
//! body), `ops.rs` (`/_emulator` test API), `fixture.rs` (the fixture's mailboxes), `cli.rs`
//! (`kurir emulator put-mail`).

pub mod attachments;
pub mod auth;
pub mod batch;
pub mod cli;
pub mod delta;
pub mod faults;
pub mod fixture;
pub mod folders;
pub mod item;
pub mod list;
pub mod mime;
pub mod moves;
pub mod ops;
pub mod query;
pub mod reply;
pub mod respond;
pub mod send;
pub mod store;
pub mod upload;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::any;
use kurir_graph::MAX_REQUEST_BYTES;
use time::OffsetDateTime;

use crate::fixture::Fixture;
use crate::state::{EmulatorState, lock};
use auth::{Caller, CallerKind, Permission};
use faults::{GraphCounterSnapshot, GraphCounters, GraphFaults, Injected, Throttle};
use reply::{ApiError, ApiResult, Reply};
use store::{MailStore, Mailbox, StoreError};

/// The Graph side of the emulator's state.
pub struct GraphState {
    pub store: Mutex<MailStore>,
    /// Where message and attachment blobs live (read without the store lock).
    pub blob_dir: PathBuf,
    pub faults: GraphFaults,
    pub throttle: Throttle,
    pub counters: GraphCounters,
    pub uploads: Mutex<HashMap<String, upload::UploadState>>,
    pub delta_sessions: Mutex<HashMap<String, delta::DeltaSession>>,
}

impl GraphState {
    /// Loads persisted mailboxes from the state dir and adds every mailbox the fixture
    /// defines that is missing (users with a mailbox, shared mailboxes).
    pub fn load(fixture: &Fixture, state_dir: &Path) -> Result<GraphState, StoreError> {
        let mut store = MailStore::load(state_dir)?;
        for u in fixture.users.iter().filter(|u| u.mailbox) {
            store
                .mailboxes
                .entry(u.upn.to_ascii_lowercase())
                .or_insert_with(|| Mailbox::new(&u.upn, &u.display_name, u.object_id, u.tenant_id));
        }
        for m in &fixture.mailboxes {
            store
                .mailboxes
                .entry(m.address.to_ascii_lowercase())
                .or_insert_with(|| {
                    Mailbox::new(&m.address, &m.display_name, m.object_id, m.tenant_id)
                });
        }
        store.save()?;
        Ok(GraphState {
            blob_dir: store
                .blob_path("x")
                .parent()
                .map(PathBuf::from)
                .unwrap_or_default(),
            store: Mutex::new(store),
            faults: GraphFaults::default(),
            throttle: Throttle::default(),
            counters: GraphCounters::default(),
            uploads: Mutex::new(HashMap::new()),
            delta_sessions: Mutex::new(HashMap::new()),
        })
    }

    /// Stores a raw RFC 822 message in a mailbox folder (id, well-known or display name;
    /// default Inbox) as delivered mail (unread). Returns the message id.
    pub fn put_mail(
        &self,
        mailbox: &str,
        folder: Option<&str>,
        raw: Vec<u8>,
        received: Option<OffsetDateTime>,
    ) -> Result<String, PutMailError> {
        let mut store = lock(&self.store);
        let mb = store
            .get_mut(mailbox)
            .ok_or_else(|| PutMailError::NoMailbox(mailbox.to_string()))?;
        let folder_key = folder.unwrap_or("inbox");
        let folder_id = mb
            .folder_loose(folder_key)
            .map(|f| f.id.clone())
            .ok_or_else(|| PutMailError::NoFolder {
                mailbox: mailbox.to_string(),
                folder: folder_key.to_string(),
            })?;
        let id = mb.insert(
            &folder_id,
            raw,
            received.unwrap_or_else(store::now),
            false,
            false,
        );
        store.save()?;
        Ok(id)
    }

    /// Writes `{state_dir}/emulator.json` (base URL and CA path) so `kurir emulator
    /// put-mail` can find a running emulator from its state dir alone.
    pub fn write_discovery(
        state_dir: &Path,
        base_url: &str,
        ca_path: &Path,
    ) -> Result<(), StoreError> {
        let path = state_dir.join("emulator.json");
        let body = serde_json::json!({
            "base_url": base_url,
            "ca_path": ca_path,
            "pid": std::process::id(),
        });
        std::fs::write(&path, body.to_string()).map_err(|source| StoreError::Io {
            action: "write",
            path,
            source,
        })
    }
}

/// Why a message could not be put into a mailbox through the test API.
#[derive(Debug, thiserror::Error)]
pub enum PutMailError {
    #[error(
        "there is no mailbox '{0}' in the emulator; use a fixture user's UPN or a [[mailboxes]] address"
    )]
    NoMailbox(String),
    #[error(
        "mailbox '{mailbox}' has no folder '{folder}'; use a well-known name (inbox, archive, …), a folder id or a folder's display name"
    )]
    NoFolder { mailbox: String, folder: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The Graph routes (merged into the emulator's router).
pub fn router() -> Router<Arc<EmulatorState>> {
    Router::new()
        .route("/v1.0/{*rest}", any(http_entry))
        .route("/api/v2.0/{*rest}", any(upload::http_put))
        .merge(ops::router())
}

/// A Graph request, parsed once.
pub struct Req {
    pub method: Method,
    /// Decoded path segments after `/v1.0`.
    pub segments: Vec<String>,
    /// Query options; names lower-cased without the `$` (`select`, `top`, …).
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `https://host:port` as the client addressed the emulator.
    pub base: String,
    pub request_id: String,
}

impl Req {
    /// Parses a path (after `/v1.0`) and query string.
    pub fn new(
        method: Method,
        path: &str,
        raw_query: Option<&str>,
        headers: HeaderMap,
        body: Bytes,
        base: String,
    ) -> Req {
        let segments = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let query = raw_query
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| {
                        (
                            k.trim_start_matches('$').to_ascii_lowercase(),
                            v.into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Req {
            method,
            segments,
            query,
            headers,
            body,
            base,
            request_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether a `Prefer` header carries a preference (`IdType="ImmutableId"`, …),
    /// compared case-insensitively without quotes or spaces.
    pub fn prefers(&self, pref: &str) -> bool {
        let norm = |s: &str| s.replace(['"', ' '], "").to_ascii_lowercase();
        let want = norm(pref);
        self.headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| norm(p) == want)
    }

    /// `Prefer: odata.maxpagesize=N`.
    pub fn max_page_size(&self) -> Option<usize> {
        self.headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|p| {
                let (k, v) = p.trim().split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("odata.maxpagesize")
                    .then(|| v.trim().trim_matches('"').parse().ok())
                    .flatten()
            })
    }

    pub fn client_request_id(&self) -> Option<&str> {
        self.header("client-request-id")
    }

    /// `https://host:port/v1.0/` + `rest`, for links handed back to the client.
    pub fn link(&self, rest: &str) -> String {
        format!("{}/v1.0/{}", self.base, rest.trim_start_matches('/'))
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))
    }
}

/// Marker payload of the unwinding used to drop a connection (see [`http_entry`]).
struct DroppedConnection;

async fn http_entry(State(state): State<Arc<EmulatorState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let base = crate::entra::external_base(&parts.headers, &state);
    let path = parts
        .uri
        .path()
        .strip_prefix("/v1.0")
        .unwrap_or_default()
        .to_string();
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = parts
        .headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let injected = state.graph.faults.take();
    if injected.is_some() {
        state
            .graph
            .counters
            .injected
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    match injected {
        Some(Injected::Drop) => {
            // A handler cannot close its connection. Unwinding out of the connection task
            // (without the panic hook, so nothing is printed) drops the TLS stream, and the
            // client sees the connection close with no answer, as after a network failure.
            std::panic::resume_unwind(Box::new(DroppedConnection));
        }
        Some(Injected::Throttle(secs)) => {
            return ApiError::throttled(secs)
                .into_reply(&request_id, client_request_id.as_deref())
                .into_http(&request_id, client_request_id.as_deref());
        }
        Some(Injected::Unavailable(secs)) => {
            return ApiError::unavailable(secs)
                .into_reply(&request_id, client_request_id.as_deref())
                .into_http(&request_id, client_request_id.as_deref());
        }
        Some(Injected::Unauthorized) => {
            return ApiError::unauthorized("Lifetime validation failed, the token is expired.")
                .into_reply(&request_id, client_request_id.as_deref())
                .into_http(&request_id, client_request_id.as_deref());
        }
        None => {}
    }
    if path.to_ascii_lowercase().ends_with("/createuploadsession")
        && let Some(secs) = state.graph.faults.take_upload_session_failure()
    {
        return ApiError::unavailable(secs)
            .into_reply(&request_id, client_request_id.as_deref())
            .into_http(&request_id, client_request_id.as_deref());
    }
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::too_large()
                .into_reply(&request_id, client_request_id.as_deref())
                .into_http(&request_id, client_request_id.as_deref());
        }
    };
    let mut req = Req::new(
        parts.method,
        &path,
        parts.uri.query(),
        parts.headers,
        body,
        base,
    );
    req.request_id = request_id.clone();
    let reply = dispatch(state, req).await;
    reply.into_http(&request_id, client_request_id.as_deref())
}

/// Runs one Graph request (from HTTP or from inside `$batch`).
///
/// Returns a boxed `dyn Send` future rather than being an `async fn`: `$batch` calls
/// dispatch again, and the compiler can only prove a recursive future `Send` through this
/// indirection.
pub fn dispatch(
    state: Arc<EmulatorState>,
    req: Req,
) -> Pin<Box<dyn Future<Output = Reply> + Send>> {
    Box::pin(async move {
        match run(&state, &req).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(
                    code = e.code,
                    status = e.status.as_u16(),
                    "Graph request refused"
                );
                e.into_reply(&req.request_id, req.client_request_id())
            }
        }
    })
}

/// What a path asks for.
enum Route {
    ListFolders,
    CreateFolder,
    GetFolder(String),
    ListChildren(String),
    CreateChild(String),
    ListFolderMessages(String),
    Delta(String),
    ListMessages,
    CreateDraft,
    CreateDraftIn(String),
    Copy(String),
    /// reply / replyAll / forward (send now) or their create… forms (a draft).
    Respond(String, respond::Kind, bool),
    GetMessage(String),
    GetMime(String),
    PatchMessage(String),
    DeleteMessage(String),
    Move(String),
    SendDraft(String),
    CreateUploadSession(String),
    SendMail,
    ListAttachments(String),
    AddAttachment(String),
    GetAttachment(String, String),
    AttachmentValue(String, String),
}

/// Graph accepts actions and functions with or without the `microsoft.graph.` prefix.
fn action(seg: &str, name: &str) -> bool {
    let s = seg.strip_prefix("microsoft.graph.").unwrap_or(seg);
    let s = s.strip_suffix("()").unwrap_or(s);
    s.eq_ignore_ascii_case(name)
}

/// `reply`, `replyAll`, `forward` (send now: true) and `createReply`, `createReplyAll`,
/// `createForward` (a draft: false).
fn respond_action(seg: &str) -> Option<(respond::Kind, bool)> {
    use respond::Kind::*;
    [
        ("reply", Reply, true),
        ("replyAll", ReplyAll, true),
        ("forward", Forward, true),
        ("createReply", Reply, false),
        ("createReplyAll", ReplyAll, false),
        ("createForward", Forward, false),
    ]
    .into_iter()
    .find(|(name, _, _)| action(seg, name))
    .map(|(_, kind, now)| (kind, now))
}

/// Graph refuses an item id that cannot be an Exchange id at all with 400
/// `ErrorInvalidIdMalformed` (before looking for the item), and one that is well-formed but
/// unknown with 404 `ErrorItemNotFound`. Exchange ids are base64 of a binary entry id (URL-safe
/// `-`/`_` in REST), never shorter than a few dozen characters.
fn check_item_id(id: &str) -> Result<(), ApiError> {
    let well_formed = id.len() >= 20
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/' | b'='));
    if well_formed {
        Ok(())
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            kurir_graph::codes::INVALID_ID_MALFORMED,
            "Id is malformed.",
        ))
    }
}

fn route(method: &Method, rest: &[String]) -> Result<(Route, Permission), ApiError> {
    use Permission::*;
    let r: Vec<&str> = rest.iter().map(String::as_str).collect();
    if let [ms, id, ..] = r.as_slice()
        && ms.eq_ignore_ascii_case("messages")
        && !action(id, "delta")
    {
        check_item_id(id)?;
    }
    let m = method.clone();
    let found = match (m, r.as_slice()) {
        (Method::GET, [mf]) if mf.eq_ignore_ascii_case("mailFolders") => (Route::ListFolders, Read),
        (Method::POST, [mf]) if mf.eq_ignore_ascii_case("mailFolders") => {
            (Route::CreateFolder, ReadWrite)
        }
        (Method::GET, [mf, f]) if mf.eq_ignore_ascii_case("mailFolders") => {
            (Route::GetFolder(f.to_string()), Read)
        }
        (Method::GET, [mf, f, c])
            if mf.eq_ignore_ascii_case("mailFolders") && c.eq_ignore_ascii_case("childFolders") =>
        {
            (Route::ListChildren(f.to_string()), Read)
        }
        (Method::POST, [mf, f, c])
            if mf.eq_ignore_ascii_case("mailFolders") && c.eq_ignore_ascii_case("childFolders") =>
        {
            (Route::CreateChild(f.to_string()), ReadWrite)
        }
        (Method::GET, [mf, f, ms])
            if mf.eq_ignore_ascii_case("mailFolders") && ms.eq_ignore_ascii_case("messages") =>
        {
            (Route::ListFolderMessages(f.to_string()), Read)
        }
        (Method::GET, [mf, f, ms, d])
            if mf.eq_ignore_ascii_case("mailFolders")
                && ms.eq_ignore_ascii_case("messages")
                && action(d, "delta") =>
        {
            (Route::Delta(f.to_string()), Read)
        }
        (Method::POST, [mf, f, ms])
            if mf.eq_ignore_ascii_case("mailFolders") && ms.eq_ignore_ascii_case("messages") =>
        {
            (Route::CreateDraftIn(f.to_string()), ReadWrite)
        }
        (m, [mf, _, ms, tail @ ..])
            if mf.eq_ignore_ascii_case("mailFolders")
                && ms.eq_ignore_ascii_case("messages")
                && !tail.is_empty() =>
        {
            let mut v = vec!["messages".to_string()];
            v.extend(tail.iter().map(|s| s.to_string()));
            return route(&m, &v);
        }
        (Method::GET, [ms]) if ms.eq_ignore_ascii_case("messages") => (Route::ListMessages, Read),
        (Method::POST, [ms]) if ms.eq_ignore_ascii_case("messages") => {
            (Route::CreateDraft, ReadWrite)
        }
        (Method::GET, [ms, id]) if ms.eq_ignore_ascii_case("messages") => {
            (Route::GetMessage(id.to_string()), Read)
        }
        (Method::PATCH, [ms, id]) if ms.eq_ignore_ascii_case("messages") => {
            (Route::PatchMessage(id.to_string()), ReadWrite)
        }
        (Method::DELETE, [ms, id]) if ms.eq_ignore_ascii_case("messages") => {
            (Route::DeleteMessage(id.to_string()), ReadWrite)
        }
        (Method::GET, [ms, id, v]) if ms.eq_ignore_ascii_case("messages") && *v == "$value" => {
            (Route::GetMime(id.to_string()), Read)
        }
        (Method::POST, [ms, id, a]) if ms.eq_ignore_ascii_case("messages") && action(a, "move") => {
            (Route::Move(id.to_string()), ReadWrite)
        }
        (Method::POST, [ms, id, a])
            if ms.eq_ignore_ascii_case("messages")
                && let Some((kind, now)) = respond_action(a) =>
        {
            let need = if now { Send } else { ReadWrite };
            (Route::Respond(id.to_string(), kind, now), need)
        }
        (Method::POST, [ms, id, a]) if ms.eq_ignore_ascii_case("messages") && action(a, "copy") => {
            (Route::Copy(id.to_string()), ReadWrite)
        }
        (Method::POST, [ms, id, a]) if ms.eq_ignore_ascii_case("messages") && action(a, "send") => {
            (Route::SendDraft(id.to_string()), Send)
        }
        (Method::POST, [ms, id, at, a])
            if ms.eq_ignore_ascii_case("messages")
                && at.eq_ignore_ascii_case("attachments")
                && action(a, "createUploadSession") =>
        {
            (Route::CreateUploadSession(id.to_string()), ReadWrite)
        }
        (Method::GET, [ms, id, at])
            if ms.eq_ignore_ascii_case("messages") && at.eq_ignore_ascii_case("attachments") =>
        {
            (Route::ListAttachments(id.to_string()), Read)
        }
        (Method::POST, [ms, id, at])
            if ms.eq_ignore_ascii_case("messages") && at.eq_ignore_ascii_case("attachments") =>
        {
            (Route::AddAttachment(id.to_string()), ReadWrite)
        }
        (Method::GET, [ms, id, at, aid])
            if ms.eq_ignore_ascii_case("messages") && at.eq_ignore_ascii_case("attachments") =>
        {
            (Route::GetAttachment(id.to_string(), aid.to_string()), Read)
        }
        (Method::GET, [ms, id, at, aid, v])
            if ms.eq_ignore_ascii_case("messages")
                && at.eq_ignore_ascii_case("attachments")
                && *v == "$value" =>
        {
            (
                Route::AttachmentValue(id.to_string(), aid.to_string()),
                Read,
            )
        }
        (Method::POST, [a]) if action(a, "sendMail") => (Route::SendMail, Send),
        (_, _) => {
            return Err(ApiError::resource_not_found(
                rest.last().map_or("", String::as_str),
            ));
        }
    };
    Ok(found)
}

/// Finds the mailbox a `users/{id}` (or `me`) segment names, in the caller's tenant.
fn resolve<'a>(
    state: &EmulatorState,
    store: &'a MailStore,
    selector: &str,
    caller: &Caller,
) -> Result<&'a Mailbox, ApiError> {
    let key = if selector.eq_ignore_ascii_case("me") {
        match &caller.kind {
            CallerKind::User { oid, .. } => oid.to_string(),
            CallerKind::App { .. } => {
                return Err(ApiError::bad_request(
                    "/me request is only valid with delegated authentication flow.",
                ));
            }
        }
    } else {
        selector.to_string()
    };
    if let Some(mb) = store.find(&key).filter(|m| m.tenant_id == caller.tenant_id) {
        return Ok(mb);
    }
    let fixture = state.fixture();
    let user = fixture.user(&key).or_else(|| {
        uuid::Uuid::parse_str(&key)
            .ok()
            .and_then(|id| fixture.user_by_id(id))
    });
    if user.is_some_and(|u| u.tenant_id == caller.tenant_id) {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            kurir_graph::codes::MAILBOX_NOT_ENABLED,
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        ));
    }
    Err(ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        kurir_graph::codes::INVALID_USER,
        format!("The requested user '{selector}' is invalid."),
    ))
}

/// `applications(appId='…')/…` as two segments (`applications`, `(appId='…')`), the form the
/// directory handler matches on.
fn directory_req(req: &Req) -> Req {
    let mut segments = Vec::new();
    for s in &req.segments {
        match s.find('(') {
            Some(i) if i > 0 => {
                segments.push(s[..i].to_owned());
                segments.push(s[i..].to_owned());
            }
            _ => segments.push(s.clone()),
        }
    }
    Req {
        method: req.method.clone(),
        segments,
        query: req.query.clone(),
        headers: req.headers.clone(),
        body: req.body.clone(),
        base: req.base.clone(),
        request_id: req.request_id.clone(),
    }
}

/// The mailbox a request works on, after all checks.
pub struct Target {
    pub caller: Caller,
    /// Lower-case address (the store key).
    pub mailbox: String,
}

async fn run(state: &Arc<EmulatorState>, req: &Req) -> ApiResult {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let (selector, rest) = match segs.as_slice() {
        ["$batch"] if req.method == Method::POST => {
            return batch::handle(state.clone(), req).await;
        }
        [users, sel, ..] if users.eq_ignore_ascii_case("users") => {
            (sel.to_string(), &req.segments[2..])
        }
        [me, ..] if me.eq_ignore_ascii_case("me") => ("me".to_string(), &req.segments[1..]),
        [dir, ..]
            if dir.eq_ignore_ascii_case("applications")
                || dir.eq_ignore_ascii_case("servicePrincipals")
                || dir.starts_with("applications(")
                || dir.starts_with("servicePrincipals(") =>
        {
            let caller = auth::authenticate(state, &req.headers)?;
            return crate::directory::handle(state, &directory_req(req), &caller);
        }
        _ => {
            return Err(ApiError::resource_not_found(
                req.segments.first().map_or("", String::as_str),
            ));
        }
    };
    let caller = auth::authenticate(state, &req.headers)?;
    let (route, need) = route(&req.method, rest)?;
    let graph = &state.graph;
    let mailbox = {
        let store = lock(&graph.store);
        let mb = resolve(state, &store, &selector, &caller)?;
        auth::authorize(state, &caller, mb, need)?;
        mb.address.to_ascii_lowercase()
    };
    let _slot = graph
        .throttle
        .acquire(caller.app_id, &mailbox)
        .ok_or_else(|| {
            graph
                .counters
                .concurrency_throttled
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            ApiError::throttled(graph.faults.retry_after())
        })?;
    let counter = match &route {
        Route::SendMail => Some(&graph.counters.send_mail),
        Route::CreateDraft | Route::CreateDraftIn(_) => Some(&graph.counters.drafts_created),
        Route::SendDraft(_) => Some(&graph.counters.drafts_sent),
        Route::CreateUploadSession(_) => Some(&graph.counters.upload_sessions),
        _ => None,
    };
    if let Some(c) = counter {
        c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    let latency = graph.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let t = Target { caller, mailbox };
    match route {
        Route::ListFolders => folders::list_top(graph, req, &t),
        Route::CreateFolder => folders::create(graph, req, &t, None),
        Route::GetFolder(f) => folders::get(graph, req, &t, &f),
        Route::ListChildren(f) => folders::list_children(graph, req, &t, &f),
        Route::CreateChild(f) => folders::create(graph, req, &t, Some(&f)),
        Route::ListFolderMessages(f) => list::list(graph, req, &t, Some(&f)),
        Route::ListMessages => list::list(graph, req, &t, None),
        Route::Delta(f) => delta::delta(graph, req, &t, &f),
        Route::GetMessage(id) => item::get(graph, req, &t, &id),
        Route::GetMime(id) => item::mime(graph, &t, &id),
        Route::PatchMessage(id) => item::patch(graph, req, &t, &id),
        Route::DeleteMessage(id) => item::delete(graph, req, &t, &id),
        Route::Move(id) => moves::move_message(graph, req, &t, &id),
        Route::CreateDraft => send::create_draft(graph, req, &t, None),
        Route::CreateDraftIn(f) => send::create_draft(graph, req, &t, Some(&f)),
        Route::Copy(id) => moves::copy_message(graph, req, &t, &id),
        Route::Respond(id, kind, true) => respond::send(graph, req, &t, &id, kind),
        Route::Respond(id, kind, false) => respond::create(graph, req, &t, &id, kind),
        Route::SendDraft(id) => send::send_draft(graph, &state.fixture(), &t, &id),
        Route::SendMail => send::send_mail(graph, &state.fixture(), req, &t),
        Route::CreateUploadSession(id) => upload::create(graph, req, &t, &id),
        Route::ListAttachments(id) => attachments::list(graph, req, &t, &id),
        Route::AddAttachment(id) => attachments::add(graph, req, &t, &id),
        Route::GetAttachment(id, aid) => attachments::get(graph, req, &t, &id, &aid),
        Route::AttachmentValue(id, aid) => attachments::value(graph, &t, &id, &aid),
    }
}

/// Runs `f` on the target mailbox (locked) and persists the store if `f` succeeded and
/// `changes` is set.
pub fn with_mailbox<T>(
    graph: &GraphState,
    t: &Target,
    changes: bool,
    f: impl FnOnce(&mut Mailbox) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut store = lock(&graph.store);
    let mb = store
        .get_mut(&t.mailbox)
        .ok_or_else(|| ApiError::internal("mailbox vanished"))?;
    let out = f(mb)?;
    if changes {
        store.save()?;
    }
    Ok(out)
}

/// The message `id` of `mb` as Graph returns an entity (with its `@odata.context`).
pub fn message_entity(
    mb: &Mailbox,
    req: &Req,
    t: &Target,
    id: &str,
    status: axum::http::StatusCode,
) -> ApiResult {
    let m = mb.messages.get(id).ok_or_else(ApiError::item_not_found)?;
    let mut v = serde_json::to_value(mb.message_json(m)).map_err(ApiError::internal)?;
    v["@odata.context"] = context(req, t, "messages/$entity").into();
    Ok(Reply::json(status, v))
}

/// `@odata.context` for a collection or entity under the mailbox.
pub fn context(req: &Req, t: &Target, rest: &str) -> String {
    req.link(&format!("$metadata#users('{}')/{rest}", t.mailbox))
}

impl crate::server::RunningEmulator {
    /// Stores a raw RFC 822 message in `mailbox` (`folder`: well-known name, id or display
    /// name; default Inbox) as delivered, unread mail. Returns the Graph message id.
    pub fn put_mail(
        &self,
        mailbox: &str,
        folder: Option<&str>,
        raw: Vec<u8>,
    ) -> Result<String, PutMailError> {
        self.state().graph.put_mail(mailbox, folder, raw, None)
    }

    /// Like [`Self::put_mail`] with an explicit `receivedDateTime`.
    pub fn put_mail_at(
        &self,
        mailbox: &str,
        folder: Option<&str>,
        raw: Vec<u8>,
        received: OffsetDateTime,
    ) -> Result<String, PutMailError> {
        self.state()
            .graph
            .put_mail(mailbox, folder, raw, Some(received))
    }

    /// Graph fault injection (latency, 429, 503, dropped connections).
    pub fn graph_faults(&self) -> &GraphFaults {
        &self.state().graph.faults
    }

    /// The Graph mail requests served so far (sendMail, drafts, upload sessions and chunks,
    /// throttling) and the peak concurrency per mailbox.
    pub fn graph_counters(&self) -> GraphCounterSnapshot {
        let g = &self.state().graph;
        g.counters.snapshot(&g.throttle)
    }

    /// Sets the Graph counters (and peaks) back to zero.
    pub fn reset_graph_counters(&self) {
        let g = &self.state().graph;
        g.counters.reset(&g.throttle);
    }

    /// `{base_url}/v1.0`, what a Graph client takes as its base URL.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.base_url())
    }
}
