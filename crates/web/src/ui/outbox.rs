//! The outbox (Utkorg): outgoing messages by state and sender, one message with its header block,
//! Retry and Cancel.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::*;
use crate::AppState;
use crate::auth::{Admin, AdminForm, PageLang};
use crate::i18n::Texts;
use crate::ops::{self, OpError, OutboxAction};
use kurir_store::outbox::{OutboxFilter, OutgoingMessage};
use std::collections::{BTreeMap, BTreeSet};

/// Outgoing messages listed (newest first).
pub const OUTBOX_LIMIT: u32 = 200;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/outbox", get(outbox_page))
        .route("/outbox/{id}", get(outbox_message_page))
        .route("/outbox/{id}/retry", post(outbox_retry))
        .route("/outbox/{id}/cancel", post(outbox_cancel))
}

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
    let store = &state.store;
    let (id, m) = match found(&state, &admin, lang, "outbox", &id, async |id| {
        store.outbox_get(id).await
    })
    .await
    {
        Ok(found) => found,
        Err(r) => return r,
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
    id: &str,
    action: OutboxAction,
    AdminForm { admin, lang, .. }: AdminForm,
) -> Response {
    let Some(id) = parse_id(id) else {
        return not_found(state, &admin, lang, "outbox").await;
    };
    let done = match ops::outbox_action(&*state.store, id, action).await {
        Ok(_) => {
            tracing::info!(admin = %admin.name, id, action = action.as_str(), "outgoing message changed in the web UI");
            match action {
                OutboxAction::Retry => "retried",
                OutboxAction::Cancel => "cancelled",
            }
        }
        Err(OpError::WrongState(_)) => "refused",
        Err(OpError::NotFound(_)) => return not_found(state, &admin, lang, "outbox").await,
        Err(e) => return op_error(e),
    };
    Redirect::to(&format!("/outbox/{id}?done={done}")).into_response()
}

async fn outbox_retry(
    State(s): State<Shared>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Response {
    outbox_action(&s, &id, OutboxAction::Retry, form).await
}

async fn outbox_cancel(
    State(s): State<Shared>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Response {
    outbox_action(&s, &id, OutboxAction::Cancel, form).await
}
