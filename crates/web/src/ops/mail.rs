//! Mail: retrying and cancelling outgoing messages, the raw bytes of an incoming one, and the
//! health of accounts and senders.

use std::collections::BTreeMap;
use std::path::PathBuf;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use kurir_store::outbox::OutgoingMessage;
use kurir_store::{KurirStore, StoreError};
use serde::Serialize;

use super::OpError;

/// What to do with an outgoing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxAction {
    Retry,
    Cancel,
}

impl OutboxAction {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxAction::Retry => "retry",
            OutboxAction::Cancel => "cancel",
        }
    }
}

/// Retries or cancels outgoing message `id`; only queued or failed messages can be.
pub async fn outbox_action(
    store: &dyn KurirStore,
    id: i64,
    action: OutboxAction,
) -> Result<OutgoingMessage, OpError> {
    let done = match action {
        OutboxAction::Retry => store.outbox_retry(id).await?,
        OutboxAction::Cancel => store.outbox_cancel(id).await?,
    };
    match store.outbox_get(id).await? {
        None => Err(OpError::NotFound(format!(
            "there is no outgoing message {id}"
        ))),
        Some(m) if done => Ok(m),
        Some(m) => Err(OpError::WrongState(Box::new(m))),
    }
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
