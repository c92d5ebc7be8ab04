//! The admin web UI: the seed's screens — Systeminställningar, Användare (with WEBSHOP),
//! Inställningar för inkommande e-post, Webbshop Administration — plus an overview with alarms.
//!
//! Each subject page is one form of every setting that can be written there. A field left empty
//! inherits (its placeholder shows the inherited value and where it comes from); "Reset" removes
//! a value set here. Secret fields are write-only: the page shows only `••••cdef (set on DATE)`
//! and an empty password input, which keeps the secret when left empty. Validation problems
//! appear under the field they concern, with the fix.
//!
//! Pages are rendered on the server (askama, checked at compile time) and work without
//! JavaScript; the Content-Security-Policy forbids inline script anyway.
//!
//! Layout: this file has the frame every page shares (layout, alarms, rendering) and the helpers
//! of the list pages; one file per page group: `login.rs`, `overview.rs`, `subjects.rs` (the
//! settings forms), `lists.rs` (users and accounts), `outbox.rs` (Utkorg), `incoming.rs`
//! (incoming mail, quarantine, the import queue) and `health.rs` (Kontohälsa). What a change does
//! lives in [`crate::ops`], shared with the REST API.

mod health;
mod incoming;
mod lists;
mod login;
mod outbox;
mod overview;
pub mod setup;
mod subjects;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use kurir_settings::{Scope, SettingsSnapshot};
use kurir_store::StoreError;
use kurir_store::messages::MessageStatus;
use kurir_store::outbox::OutgoingState;
use serde::Deserialize;

use crate::AppState;
use crate::alarms::{self, Alarm};
use crate::auth::{Admin, LANG_COOKIE, set_cookie};
use crate::i18n::{Lang, Texts};
use crate::ops::OpError;

type Shared = Arc<AppState>;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/static/style.css", get(style))
        .route("/", get(overview::overview))
        .merge(login::routes())
        .merge(subjects::routes())
        .merge(lists::routes())
        .merge(outbox::routes())
        .merge(incoming::routes())
        .merge(setup::routes())
        .route("/health", get(health::health_page))
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/style.css"),
    )
        .into_response()
}

// ---- layout ----------------------------------------------------------------------------------

/// What every page's frame needs.
pub struct Layout {
    pub t: &'static Texts,
    pub lang: &'static str,
    pub other_lang: &'static str,
    pub switch_href: String,
    pub admin: String,
    pub csrf: String,
    /// Which navigation entry is current: overview, system, users, accounts, webshop.
    pub nav: &'static str,
    pub title: String,
    pub alarms: Vec<AlarmView>,
    /// The server switch `allow_custom_endpoints` is on: every page says so (issue #13.1), since
    /// secrets may then go to hosts other than Microsoft's.
    pub custom_endpoints: bool,
}

pub struct AlarmView {
    pub severity: &'static str,
    pub message: String,
    pub fix: String,
    pub href: String,
}

fn href(scope: &Scope) -> String {
    let enc = |s: &str| {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    match scope {
        Scope::System => "/system".into(),
        Scope::User(c) => format!("/users/{}", enc(c)),
        Scope::Account(a) => format!("/accounts/{}", enc(a)),
        Scope::Webshop => "/webshop".into(),
    }
}

fn alarm_views(alarms: &[Alarm]) -> Vec<AlarmView> {
    alarms
        .iter()
        .map(|a| AlarmView {
            severity: match a.severity {
                alarms::AlarmSeverity::Error => "error",
                alarms::AlarmSeverity::Warning => "warning",
            },
            message: a.message.clone(),
            fix: a.fix.clone(),
            href: alarms::href(a).unwrap_or_else(|| href(&a.scope)),
        })
        .collect()
}

async fn current_alarms(state: &AppState, snap: &SettingsSnapshot, lang: Lang) -> Vec<Alarm> {
    let now = time::OffsetDateTime::now_utc();
    let health = state.store.health(None).await.unwrap_or_default();
    let mut out = alarms::compute(snap, &health, now, lang);
    if let Ok(counts) = state.store.outbox_counts_by_sender().await {
        out.extend(alarms::outbox_alarms(&counts, lang));
    }
    out
}

/// The frame of a page; `path` may carry a query (the language switch keeps it).
pub(crate) async fn layout(
    state: &AppState,
    snap: &SettingsSnapshot,
    admin: &Admin,
    lang: Lang,
    nav: &'static str,
    title: String,
    path: &str,
) -> Layout {
    let sep = if path.contains('?') { '&' } else { '?' };
    Layout {
        t: lang.texts(),
        lang: lang.code(),
        other_lang: lang.other().code(),
        switch_href: format!("{path}{sep}lang={}", lang.other().code()),
        admin: admin.name.clone(),
        csrf: admin.csrf.clone(),
        nav,
        title,
        alarms: alarm_views(&current_alarms(state, snap, lang).await),
        custom_endpoints: snap.custom_endpoints_allowed(),
    }
}

/// Renders a template; a `lang` query switch also stores the choice in a cookie.
pub(crate) fn page(
    tpl: impl Template,
    lang_switched: Option<Lang>,
    status: StatusCode,
) -> Response {
    match tpl.render() {
        Ok(html) => {
            let mut resp = (status, Html(html)).into_response();
            if let Some(l) = lang_switched
                && let Ok(v) = set_cookie(LANG_COOKIE, l.code(), 365 * 24 * 3600, false).parse()
            {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

#[derive(serde::Deserialize, Default)]
pub struct PageQuery {
    lang: Option<String>,
    saved: Option<String>,
    next: Option<String>,
    error: Option<String>,
}

impl PageQuery {
    fn switched(&self) -> Option<Lang> {
        self.lang.as_deref().and_then(Lang::parse)
    }
}

pub(crate) fn store_error(e: StoreError) -> Response {
    tracing::error!(error = %e, "store error");
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
}

/// An operation's refusal where the page has no better place to show it.
pub(crate) fn op_error(e: OpError) -> Response {
    match e {
        OpError::Store(e) => store_error(e),
        e => (e.status(), e.to_string()).into_response(),
    }
}

// ---- shared helpers ---------------------------------------------------------------------------

/// `2026-06-01T12:00:00.123Z` → `2026-06-01 14:00:00 CEST`: in the server's time zone, with the
/// zone shown (the text itself when unreadable).
pub fn fmt_time(rfc3339: &str) -> String {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(fmt_odt)
        .unwrap_or_else(|| rfc3339.to_owned())
}

/// The server's time zone: `TZ`, else the system's (`/etc/localtime`, the Windows setting),
/// else UTC. Read once: the zone of a running service does not change under it.
fn local_zone() -> &'static jiff::tz::TimeZone {
    static ZONE: std::sync::OnceLock<jiff::tz::TimeZone> = std::sync::OnceLock::new();
    ZONE.get_or_init(jiff::tz::TimeZone::system)
}

fn fmt_odt(t: time::OffsetDateTime) -> Option<String> {
    fmt_in(t, local_zone())
}

/// `t` as local time in `zone` with the zone's abbreviation (CET/CEST, UTC, or the offset).
fn fmt_in(t: time::OffsetDateTime, zone: &jiff::tz::TimeZone) -> Option<String> {
    let ts = jiff::Timestamp::from_nanosecond(t.unix_timestamp_nanos()).ok()?;
    Some(
        ts.to_zoned(zone.clone())
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
    )
}

/// Unix milliseconds (the outbox's clock) → `2026-06-01 14:00:00 CEST`.
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

/// What `get` finds under the id in the path `raw`, or the answer to send: the "not found" page
/// (a malformed id, or none by that id) or the store's error.
async fn found<T>(
    state: &AppState,
    admin: &Admin,
    lang: Lang,
    nav: &'static str,
    raw: &str,
    get: impl AsyncFnOnce(i64) -> Result<Option<T>, StoreError>,
) -> Result<(i64, T), Response> {
    let Some(id) = parse_id(raw) else {
        return Err(not_found(state, admin, lang, nav).await);
    };
    match get(id).await {
        Ok(Some(v)) => Ok((id, v)),
        Ok(None) => Err(not_found(state, admin, lang, nav).await),
        Err(e) => Err(store_error(e)),
    }
}

fn parse_id(id: &str) -> Option<i64> {
    id.parse().ok().filter(|n: &i64| *n > 0)
}
