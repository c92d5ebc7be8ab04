//! Incoming mail (Inkommande e-post) and quarantine (Karantän): the messages taken in, one
//! message with its import-queue entries and its raw `.eml`, and the Monitor-to-Monitor import
//! queue.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Redirect;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::*;
use crate::AppState;
use crate::auth::{Admin, AdminForm, PageLang};
use crate::i18n::{Lang, Texts};
use crate::ops::{self, ActionDone, OpError, QuarantineAction, RawError, eml_response, read_raw};
use kurir_store::messages::{ImportEntry, MessageFilter, StoredMessage};
use std::collections::BTreeSet;

/// Incoming messages per page.
pub const PAGE_SIZE: u32 = 50;
/// Import-queue entries listed (newest first).
pub const IMPORTS_LIMIT: usize = 200;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/incoming", get(incoming_page))
        .route("/incoming/imports", get(imports_page))
        .route("/incoming/{id}", get(incoming_message_page))
        .route("/incoming/{id}/raw", get(incoming_raw))
        .route("/incoming/{id}/quarantine", post(incoming_quarantine))
        .route("/quarantine", get(quarantine_page))
}

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
    /// A quarantined message an administrator marked handled.
    pub handled: bool,
}

fn message_row(m: &StoredMessage, lang: Lang) -> MessageRow {
    let t = lang.texts();
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
        reason: m
            .reason
            .as_deref()
            .map(|r| lang.reason(r))
            .unwrap_or_default(),
        handled: m.handled.is_some(),
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
    /// A quarantined message was just deleted.
    deleted: bool,
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
            rows: list.iter().map(|m| message_row(m, lang)).collect(),
            accounts,
            statuses,
            page_no,
            newer,
            older,
            deleted: quarantine && q.done.as_deref() == Some("deleted"),
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
    /// Quarantined: the actions are offered.
    actions: bool,
    /// (when, by whom, note) of "mark handled".
    handled: Option<(String, String, String)>,
    raw_gone: bool,
    /// What the last action did (`ok` or `error` class, text).
    notice: Option<(&'static str, &'static str)>,
    /// (when, who, action, detail), newest first.
    audit: Vec<(String, String, &'static str, String)>,
}

/// The query of the message page: what the last action did.
#[derive(serde::Deserialize, Default)]
struct MessagePageQuery {
    lang: Option<String>,
    done: Option<String>,
    refused: Option<String>,
}

fn notice(t: &'static Texts, q: &MessagePageQuery) -> Option<(&'static str, &'static str)> {
    let done = match q.done.as_deref() {
        Some("stored") => Some(t.done_stored),
        Some("still_quarantined") => Some(t.done_still_quarantined),
        Some("marked_handled") => Some(t.done_handled),
        Some("forwarded") => Some(t.done_forwarded),
        _ => None,
    };
    if let Some(text) = done {
        return Some(("ok", text));
    }
    let refused = match q.refused.as_deref()? {
        "not_quarantined" => t.refused_not_quarantined,
        "note_needed" => t.refused_note_needed,
        "bad_address" => t.refused_bad_address,
        "raw_gone" => t.refused_raw_gone,
        "server_step_pending" => t.refused_server_step_pending,
        "account_gone" => t.refused_account_gone,
        "cannot_send" => t.refused_cannot_send,
        _ => return None,
    };
    Some(("error", refused))
}

fn action_text(t: &'static Texts, action: &str) -> &'static str {
    match action {
        "reprocess" => t.action_reprocess,
        "mark_handled" => t.action_mark_handled,
        "forward" => t.action_forward,
        "delete" => t.action_delete,
        _ => "—",
    }
}

async fn incoming_message_page(
    State(state): State<Shared>,
    admin: Admin,
    PageLang(lang): PageLang,
    Path(id): Path<String>,
    Query(q): Query<MessagePageQuery>,
) -> Response {
    let t = lang.texts();
    let store = &state.store;
    let (id, m) = match found(&state, &admin, lang, "incoming", &id, async |id| {
        store.message(id).await
    })
    .await
    {
        Ok(found) => found,
        Err(r) => return r,
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
    let audit = match state
        .store
        .audit_log(Some(&format!("message:{id}")), 100)
        .await
    {
        Ok(log) => log
            .into_iter()
            .map(|e| {
                (
                    fmt_time(&e.at),
                    e.actor,
                    action_text(t, &e.action),
                    e.detail.unwrap_or_default(),
                )
            })
            .collect(),
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
            actions: m.status == MessageStatus::Quarantined,
            handled: m
                .handled
                .as_ref()
                .map(|h| (fmt_time(&h.at), h.by.clone(), h.note.clone())),
            raw_gone: m.raw_purged_at.is_some(),
            notice: notice(t, &q),
            audit,
            m: message_row(&m, lang),
        },
        q.lang.as_deref().and_then(Lang::parse),
        StatusCode::OK,
    )
}

/// A quarantine action from the message page (form field `action`: reprocess, mark_handled
/// with `note`, forward with `to`, delete with `confirm`), audited as `admin:NAME`.
async fn incoming_quarantine(
    State(state): State<Shared>,
    Path(id): Path<String>,
    AdminForm { admin, lang, form }: AdminForm,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return not_found(&state, &admin, lang, "quarantine").await;
    };
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let action = match form.get("action").map(String::as_str) {
        Some("reprocess") => QuarantineAction::Reprocess,
        Some("mark_handled") => QuarantineAction::MarkHandled {
            note: field("note"),
        },
        Some("forward") => QuarantineAction::Forward { to: field("to") },
        // Deleting loses the message: the form's box must be ticked.
        Some("delete") if form.contains_key("confirm") => QuarantineAction::Delete,
        _ => return Redirect::to(&format!("/incoming/{id}")).into_response(),
    };
    let name = action.name();
    let actor = format!("admin:{}", admin.name);
    match ops::quarantine_action(&state.store, &state.submitter, id, action, &actor).await {
        Ok(done) => {
            tracing::info!(admin = %admin.name, id, action = name, "quarantine action in the web UI");
            let code = match done {
                ActionDone::Deleted => {
                    return Redirect::to("/quarantine?done=deleted").into_response();
                }
                ActionDone::Stored { .. } => "stored",
                ActionDone::StillQuarantined { .. } => "still_quarantined",
                ActionDone::MarkedHandled => "marked_handled",
                ActionDone::Forwarded { .. } => "forwarded",
            };
            Redirect::to(&format!("/incoming/{id}?done={code}")).into_response()
        }
        Err(OpError::Quarantine(r)) => {
            Redirect::to(&format!("/incoming/{id}?refused={}", r.code())).into_response()
        }
        Err(OpError::NotFound(_)) => not_found(&state, &admin, lang, "quarantine").await,
        Err(e) => op_error(e),
    }
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
