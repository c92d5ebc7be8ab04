//! The pages about the mail itself: the outbox (Utkorg) with Retry and Cancel, incoming messages
//! (Inkommande e-post) with their raw `.eml` and the Monitor-to-Monitor import queue, quarantine
//! (Karantän), and account health (Kontohälsa).
//!
//! They only read the store, except Retry and Cancel, which are POST forms with the session's
//! CSRF token like every other change. Nothing here shows a secret or a token: outgoing messages
//! are shown from their metadata and their own header block, incoming ones from the metadata
//! intake recorded. The raw message is a download for a signed-in admin only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kurir_store::messages::{ImportEntry, MessageFilter, MessageStatus, StoredMessage};
use kurir_store::outbox::{OutboxFilter, OutgoingMessage, OutgoingState};
use kurir_store::{KurirStore, StoreError};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{Admin, AdminForm, PageLang};
use crate::i18n::{Lang, Texts};
use crate::ui::{Layout, layout, page, store_error};

type Shared = Arc<AppState>;

/// Incoming messages per page.
pub const PAGE_SIZE: u32 = 50;
/// Outgoing messages listed (newest first).
pub const OUTBOX_LIMIT: u32 = 200;
/// Import-queue entries listed (newest first).
pub const IMPORTS_LIMIT: usize = 200;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/outbox", get(outbox_page))
        .route("/outbox/{id}", get(outbox_message_page))
        .route("/outbox/{id}/retry", post(outbox_retry))
        .route("/outbox/{id}/cancel", post(outbox_cancel))
        .route("/incoming", get(incoming_page))
        .route("/incoming/imports", get(imports_page))
        .route("/incoming/{id}", get(incoming_message_page))
        .route("/incoming/{id}/raw", get(incoming_raw))
        .route("/quarantine", get(quarantine_page))
        .route("/health", get(health_page))
}

// ---- shared helpers ---------------------------------------------------------------------------

/// `2026-06-01T12:00:00.123Z` → `2026-06-01 12:00:00 UTC` (the text itself when unreadable).
pub fn fmt_time(rfc3339: &str) -> String {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| fmt_odt(t.to_offset(time::UtcOffset::UTC)))
        .unwrap_or_else(|| rfc3339.to_owned())
}

fn fmt_odt(t: time::OffsetDateTime) -> Option<String> {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(&f).ok()
}

/// Unix milliseconds (the outbox's clock) → `2026-06-01 12:00:00 UTC`.
pub fn fmt_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(fmt_odt)
        .unwrap_or_else(|| ms.to_string())
}

/// `812 B`, `12.3 kB`, `4.1 MB`.
pub fn fmt_size(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        _ => format!("{:.1} MB", n as f64 / 1e6),
    }
}

/// At most `max` characters, with an ellipsis when cut.
fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// A long error text (the explained errors of intake and the outbox) as parts to show on their
/// own lines: (text, class), `main` first, then `fix` for what to do, `ms` for Microsoft's
/// message and the ids support asks for.
pub fn error_parts(e: &str) -> Vec<(String, &'static str)> {
    const MARKERS: [(&str, &str); 5] = [
        ("What to do:", "fix"),
        ("Åtgärd:", "fix"),
        ("Microsoft's message:", "ms"),
        ("Trace ID:", "ms"),
        ("Time:", "ms"),
    ];
    let mut out: Vec<(String, &'static str)> = Vec::new();
    for piece in e.split(" | ") {
        let mut rest = piece.trim();
        loop {
            // The earliest marker after the start splits the piece.
            let next = MARKERS
                .iter()
                .filter_map(|(m, _)| rest.get(1..).and_then(|r| r.find(m)).map(|i| i + 1))
                .min();
            match next {
                Some(i) => {
                    push_part(&mut out, &rest[..i]);
                    rest = &rest[i..];
                }
                None => {
                    push_part(&mut out, rest);
                    break;
                }
            }
        }
    }
    for (text, class) in out.iter_mut().skip(1) {
        *class = MARKERS
            .iter()
            .find(|(m, _)| text.starts_with(m))
            .map(|(_, c)| *c)
            .unwrap_or("ms");
    }
    out
}

fn push_part(out: &mut Vec<(String, &'static str)>, text: &str) {
    let t = text.trim();
    if !t.is_empty() {
        out.push((t.to_owned(), "main"));
    }
}

/// The first part of an explained error without URLs, for a list column.
fn error_preview(e: &str, max: usize) -> String {
    let first = error_parts(e)
        .into_iter()
        .next()
        .map(|p| p.0)
        .unwrap_or_default();
    let mut words: Vec<String> = Vec::new();
    for w in first.split_whitespace() {
        if w.starts_with("http://") || w.starts_with("https://") {
            if words.last().is_some_and(|l| l == "at") {
                words.pop();
            }
            if w.ends_with(':')
                && let Some(last) = words.last_mut()
            {
                last.push(':');
            }
            continue;
        }
        words.push(w.to_owned());
    }
    short(&words.join(" "), max)
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The data directory (the database file's folder): raw messages live under it.
fn data_dir(store: &dyn KurirStore) -> PathBuf {
    store.local_data_dir().unwrap_or_else(|| PathBuf::from("."))
}

/// The raw MIME of an incoming message, read off the async threads.
pub async fn read_raw(store: &dyn KurirStore, id: i64) -> Result<Option<Vec<u8>>, RawError> {
    let Some(raw) = store.raw_message(id).await.map_err(RawError::Store)? else {
        return Ok(None);
    };
    let dir = data_dir(store);
    tokio::task::spawn_blocking(move || raw.read(&dir))
        .await
        .map_err(|e| RawError::Io(std::io::Error::other(e)))?
        .map(Some)
        .map_err(RawError::Io)
}

#[derive(Debug)]
pub enum RawError {
    Store(StoreError),
    Io(std::io::Error),
}

/// The `.eml` download of a raw message.
pub fn eml_response(id: i64, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "message/rfc822".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"message-{id}.eml\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        bytes,
    )
        .into_response()
}

/// The header block of a raw message as (name, value) pairs, folded lines joined.
pub fn header_lines(raw: &[u8]) -> Vec<(String, String)> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(raw.len().min(64 * 1024));
    let text = String::from_utf8_lossy(&raw[..end]);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    for (_, v) in &mut out {
        *v = short(v, 600);
    }
    out.truncate(100);
    out
}

fn state_text(t: &'static Texts, s: OutgoingState) -> &'static str {
    match s {
        OutgoingState::Queued => t.state_queued,
        OutgoingState::Sending => t.state_sending,
        OutgoingState::Sent => t.state_sent,
        OutgoingState::Failed => t.state_failed,
        OutgoingState::Cancelled => t.state_cancelled,
    }
}

fn status_text(t: &'static Texts, s: MessageStatus) -> &'static str {
    match s {
        MessageStatus::Stored => t.status_stored,
        MessageStatus::Quarantined => t.status_quarantined,
    }
}

fn import_state_text(t: &'static Texts, s: &str) -> &'static str {
    match s {
        "staged" => t.import_staged,
        "ready" => t.import_ready,
        "picked_up" => t.import_picked_up,
        _ => "",
    }
}

const STATES: [OutgoingState; 5] = [
    OutgoingState::Queued,
    OutgoingState::Sending,
    OutgoingState::Sent,
    OutgoingState::Failed,
    OutgoingState::Cancelled,
];

#[derive(Deserialize, Default)]
pub struct ListQuery {
    lang: Option<String>,
    state: Option<String>,
    user: Option<String>,
    account: Option<String>,
    page: Option<u32>,
    done: Option<String>,
}

impl ListQuery {
    fn switched(&self) -> Option<Lang> {
        self.lang.as_deref().and_then(Lang::parse)
    }
    fn nonempty(v: &Option<String>) -> Option<String> {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }
}

/// The path and query of a list page, without `lang` (the switch adds it).
fn list_path(base: &str, pairs: &[(&str, Option<String>)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if let Some(v) = v {
            ser.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("{base}?{}", ser.finish())
    } else {
        base.to_owned()
    }
}

async fn not_found(state: &AppState, admin: &Admin, lang: Lang, nav: &'static str) -> Response {
    let snap = match state.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let t = lang.texts();
    let l = layout(state, &snap, admin, lang, nav, t.not_found.into(), "/").await;
    page(NotFoundTpl { l }, None, StatusCode::NOT_FOUND)
}

#[derive(Template)]
#[template(
    source = "{% extends \"base.html\" %}{% block content %}<p><a href=\"/\">{{ l.t.nav_overview }}</a></p>{% endblock %}",
    ext = "html"
)]
struct NotFoundTpl {
    l: Layout,
}

fn parse_id(id: &str) -> Option<i64> {
    id.parse().ok().filter(|n: &i64| *n > 0)
}

// ---- outbox -----------------------------------------------------------------------------------

pub struct OutboxRow {
    pub id: i64,
    pub href: String,
    pub state: &'static str,
    pub state_text: &'static str,
    pub sender: String,
    pub recipients: String,
    pub subject: String,
    pub attempts: u32,
    pub next_attempt: String,
    /// A preview for the list (the first part, without URLs).
    pub last_error: String,
    /// The whole explained error, for the message's page.
    pub error_parts: Vec<(String, &'static str)>,
    pub can_retry: bool,
    pub can_cancel: bool,
}

fn outbox_row(
    m: &OutgoingMessage,
    t: &'static Texts,
    now_ms: i64,
    error_chars: usize,
) -> OutboxRow {
    let actionable = matches!(m.state, OutgoingState::Queued | OutgoingState::Failed);
    OutboxRow {
        id: m.id,
        href: format!("/outbox/{}", m.id),
        state: m.state.as_str(),
        state_text: state_text(t, m.state),
        sender: m.sender_user.clone(),
        recipients: m.recipients.join(", "),
        subject: m
            .subject
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| t.no_subject.to_owned()),
        attempts: m.attempts,
        next_attempt: match m.state {
            OutgoingState::Queued if m.next_attempt_at > now_ms => fmt_ms(m.next_attempt_at),
            OutgoingState::Queued => t.now_word.to_owned(),
            OutgoingState::Sending => m.leased_until.map(fmt_ms).unwrap_or_default(),
            _ => "—".to_owned(),
        },
        last_error: m
            .last_error
            .as_deref()
            .map(|e| error_preview(e, error_chars))
            .unwrap_or_default(),
        error_parts: m.last_error.as_deref().map(error_parts).unwrap_or_default(),
        can_retry: actionable,
        can_cancel: actionable,
    }
}

#[derive(Template)]
#[template(path = "outbox.html")]
struct OutboxTpl {
    l: Layout,
    rows: Vec<OutboxRow>,
    /// (value, text, selected)
    states: Vec<(String, &'static str, bool)>,
    users: Vec<(String, bool)>,
    /// (state, text, count) for the summary line.
    counts: Vec<(&'static str, &'static str, u64)>,
    limit: u32,
}

async fn outbox_page(
    State(state): State<Shared>,
    admin: Admin,
    PageLang(lang): PageLang,
    Query(q): Query<ListQuery>,
) -> Response {
    let t = lang.texts();
    let want_state = ListQuery::nonempty(&q.state).and_then(|s| OutgoingState::parse(&s));
    let want_user = ListQuery::nonempty(&q.user).map(|u| u.to_ascii_uppercase());
    let snap = match state.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let list = match state
        .store
        .outbox_list(&OutboxFilter {
            state: want_state,
            sender_user: want_user.clone(),
            limit: Some(OUTBOX_LIMIT),
        })
        .await
    {
        Ok(l) => l,
        Err(e) => return store_error(e),
    };
    let by_sender = match state.store.outbox_counts_by_sender().await {
        Ok(c) => c,
        Err(e) => return store_error(e),
    };
    let mut per_state: BTreeMap<String, u64> = BTreeMap::new();
    let mut users: BTreeSet<String> = snap.users.keys().cloned().collect();
    for ((user, st), n) in &by_sender {
        users.insert(user.clone());
        *per_state.entry(st.clone()).or_default() += n;
    }
    let now = kurir_store::outbox::now_ms();
    let rows = list.iter().map(|m| outbox_row(m, t, now, 220)).collect();
    let mut states = vec![(String::new(), t.state_all, want_state.is_none())];
    states.extend(STATES.iter().map(|s| {
        (
            s.as_str().to_owned(),
            state_text(t, *s),
            want_state == Some(*s),
        )
    }));
    let counts = STATES
        .iter()
        .map(|s| {
            (
                s.as_str(),
                state_text(t, *s),
                per_state.get(s.as_str()).copied().unwrap_or(0),
            )
        })
        .collect();
    let path = list_path(
        "/outbox",
        &[
            ("state", want_state.map(|s| s.as_str().to_owned())),
            ("user", want_user.clone()),
        ],
    );
    let l = layout(
        &state,
        &snap,
        &admin,
        lang,
        "outbox",
        t.nav_outbox.into(),
        &path,
    )
    .await;
    page(
        OutboxTpl {
            l,
            rows,
            states,
            users: users
                .into_iter()
                .map(|u| {
                    let sel = want_user.as_deref() == Some(u.as_str());
                    (u, sel)
                })
                .collect(),
            counts,
            limit: OUTBOX_LIMIT,
        },
        q.switched(),
        StatusCode::OK,
    )
}

#[derive(Template)]
#[template(path = "outbox_message.html")]
struct OutboxMessageTpl {
    l: Layout,
    m: OutboxRow,
    from: String,
    origin: String,
    message_id: String,
    size: String,
    created: String,
    sent_at: String,
    via: String,
    server_reply: String,
    headers: Vec<(String, String)>,
    /// (css class, text)
    flash: Option<(&'static str, &'static str)>,
}

async fn outbox_message_page(
    State(state): State<Shared>,
    admin: Admin,
    PageLang(lang): PageLang,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let t = lang.texts();
    let Some(id) = parse_id(&id) else {
        return not_found(&state, &admin, lang, "outbox").await;
    };
    let m = match state.store.outbox_get(id).await {
        Ok(Some(m)) => m,
        Ok(None) => return not_found(&state, &admin, lang, "outbox").await,
        Err(e) => return store_error(e),
    };
    let raw = match state.store.outbox_raw(id).await {
        Ok(r) => r.unwrap_or_default(),
        Err(e) => return store_error(e),
    };
    let snap = match state.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let flash = match q.done.as_deref() {
        Some("retried") => Some(("ok", t.retried)),
        Some("cancelled") => Some(("ok", t.cancelled_done)),
        Some("refused") => Some(("error", t.action_refused)),
        _ => None,
    };
    let title = format!("{} {id}", t.outgoing_message);
    let l = layout(
        &state,
        &snap,
        &admin,
        lang,
        "outbox",
        title,
        &format!("/outbox/{id}"),
    )
    .await;
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".to_owned());
    page(
        OutboxMessageTpl {
            l,
            m: outbox_row(&m, t, kurir_store::outbox::now_ms(), usize::MAX),
            from: dash(&m.from),
            origin: m.origin.clone(),
            message_id: dash(&m.message_id),
            size: fmt_size(m.size),
            created: fmt_time(&m.created_at),
            sent_at: m
                .sent_at
                .as_deref()
                .map(fmt_time)
                .unwrap_or_else(|| "—".into()),
            via: dash(&m.via),
            server_reply: dash(&m.server_reply),
            headers: header_lines(&raw),
            flash,
        },
        q.switched(),
        StatusCode::OK,
    )
}

async fn outbox_action(
    state: &AppState,
    admin: &Admin,
    lang: Lang,
    id: &str,
    cancel: bool,
) -> Response {
    let Some(id) = parse_id(id) else {
        return not_found(state, admin, lang, "outbox").await;
    };
    let done = if cancel {
        state.store.outbox_cancel(id).await
    } else {
        state.store.outbox_retry(id).await
    };
    match done {
        Ok(true) => {
            tracing::info!(admin = %admin.name, id, action = if cancel { "cancel" } else { "retry" }, "outgoing message changed in the web UI");
            let word = if cancel { "cancelled" } else { "retried" };
            Redirect::to(&format!("/outbox/{id}?done={word}")).into_response()
        }
        Ok(false) => match state.store.outbox_get(id).await {
            Ok(Some(_)) => Redirect::to(&format!("/outbox/{id}?done=refused")).into_response(),
            Ok(None) => not_found(state, admin, lang, "outbox").await,
            Err(e) => store_error(e),
        },
        Err(e) => store_error(e),
    }
}

async fn outbox_retry(
    State(s): State<Shared>,
    Path(id): Path<String>,
    AdminForm {
        admin: a, lang: l, ..
    }: AdminForm,
) -> Response {
    outbox_action(&s, &a, l, &id, false).await
}

async fn outbox_cancel(
    State(s): State<Shared>,
    Path(id): Path<String>,
    AdminForm {
        admin: a, lang: l, ..
    }: AdminForm,
) -> Response {
    outbox_action(&s, &a, l, &id, true).await
}

// ---- incoming messages and quarantine ---------------------------------------------------------

pub struct MessageRow {
    pub id: i64,
    pub href: String,
    pub raw_href: String,
    pub account: String,
    pub from: String,
    pub subject: String,
    pub date: String,
    pub received: String,
    pub size: String,
    pub attachments: String,
    pub attachment_count: usize,
    pub status: &'static str,
    pub status_text: &'static str,
    pub reason: String,
}

fn message_row(m: &StoredMessage, t: &'static Texts) -> MessageRow {
    MessageRow {
        id: m.id,
        href: format!("/incoming/{}", m.id),
        raw_href: format!("/incoming/{}/raw", m.id),
        account: m.account.clone(),
        from: m.from.clone().unwrap_or_else(|| "—".into()),
        subject: m
            .subject
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| t.no_subject.to_owned()),
        date: m
            .date
            .as_deref()
            .map(fmt_time)
            .unwrap_or_else(|| "—".into()),
        received: fmt_time(&m.received_at),
        size: fmt_size(m.size),
        attachments: m
            .attachments
            .iter()
            .map(|a| a.name.clone().unwrap_or_else(|| t.unnamed.to_owned()))
            .collect::<Vec<_>>()
            .join(", "),
        attachment_count: m.attachments.len(),
        status: m.status.as_str(),
        status_text: status_text(t, m.status),
        reason: m.reason.clone().unwrap_or_default(),
    }
}

/// Every account name that has settings or a health record.
async fn account_names(state: &AppState, snap: &kurir_settings::SettingsSnapshot) -> Vec<String> {
    let mut names: BTreeSet<String> = snap.accounts.keys().cloned().collect();
    if let Ok(h) = state.store.health(None).await {
        names.extend(h.into_iter().map(|h| h.account));
    }
    names.into_iter().collect()
}

#[derive(Template)]
#[template(path = "incoming.html")]
struct IncomingTpl {
    l: Layout,
    quarantine: bool,
    action: &'static str,
    intro: &'static str,
    empty: &'static str,
    rows: Vec<MessageRow>,
    accounts: Vec<(String, bool)>,
    statuses: Vec<(String, &'static str, bool)>,
    page_no: u32,
    newer: Option<String>,
    older: Option<String>,
}

async fn messages_list(
    state: &AppState,
    admin: &Admin,
    lang: Lang,
    q: ListQuery,
    quarantine: bool,
) -> Response {
    let t = lang.texts();
    let account = ListQuery::nonempty(&q.account);
    let status = if quarantine {
        Some(MessageStatus::Quarantined)
    } else {
        ListQuery::nonempty(&q.state).and_then(|s| MessageStatus::parse(&s))
    };
    let page_no = q.page.unwrap_or(1).max(1);
    let snap = match state.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let mut list = match state
        .store
        .list_messages_page(
            &MessageFilter {
                account: account.clone(),
                status,
                limit: PAGE_SIZE + 1,
            },
            (page_no - 1).saturating_mul(PAGE_SIZE),
        )
        .await
    {
        Ok(l) => l,
        Err(e) => return store_error(e),
    };
    let more = list.len() > PAGE_SIZE as usize;
    list.truncate(PAGE_SIZE as usize);
    let base = if quarantine {
        "/quarantine"
    } else {
        "/incoming"
    };
    let state_param = if quarantine {
        None
    } else {
        status.map(|s| s.as_str().to_owned())
    };
    let at = |p: u32| {
        list_path(
            base,
            &[
                ("account", account.clone()),
                ("state", state_param.clone()),
                ("page", (p > 1).then(|| p.to_string())),
            ],
        )
    };
    let newer = (page_no > 1).then(|| at(page_no - 1));
    let older = more.then(|| at(page_no + 1));
    let path = at(page_no);
    let accounts = account_names(state, &snap)
        .await
        .into_iter()
        .map(|a| {
            let sel = account.as_deref() == Some(a.as_str());
            (a, sel)
        })
        .collect();
    let statuses = vec![
        (String::new(), t.state_all, status.is_none()),
        (
            "stored".to_owned(),
            t.status_stored,
            status == Some(MessageStatus::Stored),
        ),
        (
            "quarantined".to_owned(),
            t.status_quarantined,
            status == Some(MessageStatus::Quarantined),
        ),
    ];
    let (nav, title, intro, empty) = if quarantine {
        (
            "quarantine",
            t.nav_quarantine,
            t.quarantine_intro,
            t.no_quarantine,
        )
    } else {
        ("incoming", t.nav_incoming, t.incoming_intro, t.no_incoming)
    };
    let l = layout(state, &snap, admin, lang, nav, title.into(), &path).await;
    page(
        IncomingTpl {
            l,
            quarantine,
            action: base,
            intro,
            empty,
            rows: list.iter().map(|m| message_row(m, t)).collect(),
            accounts,
            statuses,
            page_no,
            newer,
            older,
        },
        q.switched(),
        StatusCode::OK,
    )
}

async fn incoming_page(
    State(s): State<Shared>,
    a: Admin,
    PageLang(l): PageLang,
    Query(q): Query<ListQuery>,
) -> Response {
    messages_list(&s, &a, l, q, false).await
}

async fn quarantine_page(
    State(s): State<Shared>,
    a: Admin,
    PageLang(l): PageLang,
    Query(q): Query<ListQuery>,
) -> Response {
    messages_list(&s, &a, l, q, true).await
}

pub struct ImportRow {
    pub id: i64,
    pub account: String,
    pub message: i64,
    pub message_href: String,
    pub kind: String,
    pub file_name: String,
    pub size: String,
    pub state: String,
    pub state_text: &'static str,
    pub created: String,
}

fn import_row(e: &ImportEntry, t: &'static Texts) -> ImportRow {
    ImportRow {
        id: e.id,
        account: e.account.clone(),
        message: e.message,
        message_href: format!("/incoming/{}", e.message),
        kind: e.kind.clone(),
        file_name: e.file_name.clone(),
        size: fmt_size(e.size),
        state: e.state.clone(),
        state_text: import_state_text(t, &e.state),
        created: fmt_time(&e.created_at),
    }
}

#[derive(Template)]
#[template(path = "incoming_message.html")]
struct IncomingMessageTpl {
    l: Layout,
    m: MessageRow,
    message_id: String,
    /// A different, earlier message with the same Message-ID (its id).
    same_message_id_as: Option<i64>,
    to: String,
    handler: String,
    content_hash: String,
    server_ids: String,
    /// (name, content type, size)
    attachments: Vec<(String, String, String)>,
    imports: Vec<ImportRow>,
}

async fn incoming_message_page(
    State(state): State<Shared>,
    admin: Admin,
    PageLang(lang): PageLang,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let t = lang.texts();
    let Some(id) = parse_id(&id) else {
        return not_found(&state, &admin, lang, "incoming").await;
    };
    let m = match state.store.message(id).await {
        Ok(Some(m)) => m,
        Ok(None) => return not_found(&state, &admin, lang, "incoming").await,
        Err(e) => return store_error(e),
    };
    let imports = match state.store.list_imports(Some(&m.account)).await {
        Ok(list) => list
            .iter()
            .filter(|e| e.message == id)
            .map(|e| import_row(e, t))
            .collect(),
        Err(e) => return store_error(e),
    };
    let snap = match state.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let nav = if m.status == MessageStatus::Quarantined {
        "quarantine"
    } else {
        "incoming"
    };
    let title = format!("{} {id}", t.incoming_message);
    let l = layout(
        &state,
        &snap,
        &admin,
        lang,
        nav,
        title,
        &format!("/incoming/{id}"),
    )
    .await;
    page(
        IncomingMessageTpl {
            l,
            message_id: m.message_id.clone().unwrap_or_else(|| "—".into()),
            same_message_id_as: m.same_message_id_as,
            to: m.to.clone().unwrap_or_else(|| "—".into()),
            handler: m.handler.clone(),
            content_hash: m.content_hash.clone(),
            server_ids: m.server_ids.join(", "),
            attachments: m
                .attachments
                .iter()
                .map(|a| {
                    (
                        a.name.clone().unwrap_or_else(|| t.unnamed.to_owned()),
                        a.content_type.clone(),
                        fmt_size(a.size),
                    )
                })
                .collect(),
            imports,
            m: message_row(&m, t),
        },
        q.switched(),
        StatusCode::OK,
    )
}

async fn incoming_raw(
    State(state): State<Shared>,
    admin: Admin,
    PageLang(lang): PageLang,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return not_found(&state, &admin, lang, "incoming").await;
    };
    match read_raw(&*state.store, id).await {
        Ok(Some(bytes)) => {
            tracing::info!(admin = %admin.name, id, "raw incoming message downloaded");
            eml_response(id, bytes)
        }
        Ok(None) => not_found(&state, &admin, lang, "incoming").await,
        Err(RawError::Store(e)) => store_error(e),
        Err(RawError::Io(e)) => {
            tracing::error!(id, error = %e, "raw message unreadable");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{} ({e})", lang.texts().raw_unreadable),
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "imports.html")]
struct ImportsTpl {
    l: Layout,
    rows: Vec<ImportRow>,
    accounts: Vec<(String, bool)>,
    total: usize,
    limit: usize,
}

async fn imports_page(
    State(state): State<Shared>,
    admin: Admin,
    PageLang(lang): PageLang,
    Query(q): Query<ListQuery>,
) -> Response {
    let t = lang.texts();
    let account = ListQuery::nonempty(&q.account);
    let snap = match state.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let list = match state.store.list_imports(account.as_deref()).await {
        Ok(l) => l,
        Err(e) => return store_error(e),
    };
    let total = list.len();
    let rows = list
        .iter()
        .rev()
        .take(IMPORTS_LIMIT)
        .map(|e| import_row(e, t))
        .collect();
    let accounts = account_names(&state, &snap)
        .await
        .into_iter()
        .map(|a| {
            let sel = account.as_deref() == Some(a.as_str());
            (a, sel)
        })
        .collect();
    let path = list_path("/incoming/imports", &[("account", account.clone())]);
    let l = layout(
        &state,
        &snap,
        &admin,
        lang,
        "incoming",
        t.import_queue.into(),
        &path,
    )
    .await;
    page(
        ImportsTpl {
            l,
            rows,
            accounts,
            total,
            limit: IMPORTS_LIMIT,
        },
        q.switched(),
        StatusCode::OK,
    )
}

// ---- account health ---------------------------------------------------------------------------

/// One incoming-mail account's health, as the page and `GET /api/v1/account-health` show it.
#[derive(Debug, Clone, Serialize)]
pub struct AccountHealth {
    pub account: String,
    pub last_success: Option<String>,
    pub last_attempt: Option<String>,
    /// The last error with its explanation (kept after a later success: see `error_is_current`).
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// The last error came after the last success: the account is failing now.
    pub error_is_current: bool,
    pub failures_in_a_row: u32,
    pub taken_in_total: u64,
    pub last_24h_stored: u64,
    pub last_24h_quarantined: u64,
}

/// One sending user's outbox, by state.
#[derive(Debug, Clone, Serialize)]
pub struct SenderHealth {
    pub user: String,
    pub failed: u64,
    /// Queued or being sent.
    pub waiting: u64,
    pub sent: u64,
    pub cancelled: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthSummary {
    pub accounts: Vec<AccountHealth>,
    pub senders: Vec<SenderHealth>,
}

/// Account health: every account with settings or a health record, and every sending user.
pub async fn health_summary(
    store: &dyn KurirStore,
    now: time::OffsetDateTime,
) -> Result<HealthSummary, StoreError> {
    let snap = store.snapshot().await?;
    let mut records: BTreeMap<String, kurir_store::messages::Health> = store
        .health(None)
        .await?
        .into_iter()
        .map(|h| (h.account.clone(), h))
        .collect();
    for a in snap.accounts.keys() {
        records
            .entry(a.clone())
            .or_insert_with(|| kurir_store::messages::Health {
                account: a.clone(),
                ..Default::default()
            });
    }
    let since = (now - time::Duration::hours(24))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let recent = store.counts_since(&since).await?;
    let count = |a: &str, s: &str| {
        recent
            .get(&(a.to_owned(), s.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    let accounts = records
        .into_values()
        .map(|h| AccountHealth {
            error_is_current: h.last_error.is_some()
                && match (&h.last_error_at, &h.last_success) {
                    (Some(e), Some(ok)) => e > ok,
                    _ => h.last_success.is_none(),
                },
            last_24h_stored: count(&h.account, "stored"),
            last_24h_quarantined: count(&h.account, "quarantined"),
            account: h.account,
            last_success: h.last_success,
            last_attempt: h.last_attempt,
            last_error: h.last_error,
            last_error_at: h.last_error_at,
            failures_in_a_row: h.failures,
            taken_in_total: h.taken_in_total,
        })
        .collect();
    let mut senders: BTreeMap<String, SenderHealth> = BTreeMap::new();
    for ((user, st), n) in store.outbox_counts_by_sender().await? {
        let e = senders.entry(user.clone()).or_insert(SenderHealth {
            user,
            failed: 0,
            waiting: 0,
            sent: 0,
            cancelled: 0,
        });
        match st.as_str() {
            "failed" => e.failed += n,
            "queued" | "sending" => e.waiting += n,
            "sent" => e.sent += n,
            "cancelled" => e.cancelled += n,
            _ => {}
        }
    }
    Ok(HealthSummary {
        accounts,
        senders: senders.into_values().collect(),
    })
}

pub struct AccountHealthRow {
    pub account: String,
    pub href: String,
    pub messages_href: String,
    pub last_success: String,
    pub last_attempt: String,
    pub last_error: Vec<(String, &'static str)>,
    pub last_error_at: String,
    pub error_is_current: bool,
    pub failures: u32,
    pub total: u64,
    pub stored_24h: u64,
    pub quarantined_24h: u64,
}

pub struct SenderRow {
    pub user: String,
    pub href: String,
    pub failed: u64,
    pub failed_href: String,
    pub waiting: u64,
    pub sent: u64,
}

#[derive(Template)]
#[template(path = "health.html")]
struct HealthTpl {
    l: Layout,
    accounts: Vec<AccountHealthRow>,
    senders: Vec<SenderRow>,
}

async fn health_page(
    State(state): State<Shared>,
    admin: Admin,
    PageLang(lang): PageLang,
    Query(q): Query<ListQuery>,
) -> Response {
    let t = lang.texts();
    let summary = match health_summary(&*state.store, time::OffsetDateTime::now_utc()).await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let snap = match state.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let time_or = |v: &Option<String>, none: &str| {
        v.as_deref()
            .map(fmt_time)
            .unwrap_or_else(|| none.to_owned())
    };
    let accounts = summary
        .accounts
        .iter()
        .map(|h| AccountHealthRow {
            href: format!("/accounts/{}", enc(&h.account).replace('+', "%20")),
            messages_href: format!("/incoming?account={}", enc(&h.account)),
            account: h.account.clone(),
            last_success: time_or(&h.last_success, t.never),
            last_attempt: time_or(&h.last_attempt, t.never),
            last_error: h.last_error.as_deref().map(error_parts).unwrap_or_default(),
            last_error_at: time_or(&h.last_error_at, ""),
            error_is_current: h.error_is_current,
            failures: h.failures_in_a_row,
            total: h.taken_in_total,
            stored_24h: h.last_24h_stored,
            quarantined_24h: h.last_24h_quarantined,
        })
        .collect();
    let senders = summary
        .senders
        .iter()
        .map(|s| SenderRow {
            href: format!("/users/{}", enc(&s.user)),
            failed_href: format!("/outbox?state=failed&user={}", enc(&s.user)),
            user: s.user.clone(),
            failed: s.failed,
            waiting: s.waiting,
            sent: s.sent,
        })
        .collect();
    let l = layout(
        &state,
        &snap,
        &admin,
        lang,
        "health",
        t.nav_health.into(),
        "/health",
    )
    .await;
    page(
        HealthTpl {
            l,
            accounts,
            senders,
        },
        q.switched(),
        StatusCode::OK,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_unfolded_and_the_body_is_not_shown() {
        let raw = b"From: anna@contoso.com\r\nSubject: a long\r\n  folded subject\r\nTo: x@y.test\r\n\r\nBody: not a header\r\n";
        let h = header_lines(raw);
        assert_eq!(
            h,
            vec![
                ("From".to_owned(), "anna@contoso.com".to_owned()),
                ("Subject".to_owned(), "a long folded subject".to_owned()),
                ("To".to_owned(), "x@y.test".to_owned()),
            ]
        );
    }

    #[test]
    fn explained_errors_are_split_into_parts_and_previewed_without_urls() {
        let e = "no access token for sending as ANNA: Microsoft Entra ID refused the token request (HTTP 401, invalid_client, AADSTS7000215) at https://login.example/t/oauth2/v2.0/token: The client secret is wrong. What to do: paste the Value. Microsoft's message: Invalid client secret provided. Trace ID: 1-2-3.";
        let parts = error_parts(e);
        let classes: Vec<&str> = parts.iter().map(|p| p.1).collect();
        assert_eq!(classes, ["main", "fix", "ms", "ms"], "{parts:?}");
        assert!(parts[1].0.starts_with("What to do: paste the Value."));
        assert_eq!(
            error_preview(e, 500),
            "no access token for sending as ANNA: Microsoft Entra ID refused the token request (HTTP 401, invalid_client, AADSTS7000215): The client secret is wrong."
        );
        let intake = "no token: AADSTS7000222: expired. | What to do: create a new one. | Microsoft's message: x | Trace ID: y";
        let parts = error_parts(intake);
        assert_eq!(parts.len(), 4);
        assert_eq!(
            parts[0],
            ("no token: AADSTS7000222: expired.".to_owned(), "main")
        );
        assert_eq!(parts[1].1, "fix");
        assert_eq!(error_parts("plain"), vec![("plain".to_owned(), "main")]);
    }

    #[test]
    fn times_and_sizes_read_well() {
        assert_eq!(
            fmt_time("2026-06-01T12:00:00.5+02:00"),
            "2026-06-01 10:00:00 UTC"
        );
        assert_eq!(fmt_time("not a time"), "not a time");
        assert_eq!(fmt_ms(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(fmt_size(812), "812 B");
        assert_eq!(fmt_size(12_345), "12.3 kB");
        assert_eq!(fmt_size(4_100_000), "4.1 MB");
        assert_eq!(short("abcdef", 3), "abc…");
    }
}
