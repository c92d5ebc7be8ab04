//! Outgoing mail in the store: the durable outbox and the local credentials of the SMTP
//! submission listener.
//!
//! The outbox is what makes sending crash-safe. A message is accepted only once its row has
//! committed ([`OutboxStore::enqueue`]; the database runs with `synchronous = FULL`, so the commit
//! is fsync'd). Workers then *lease* due rows ([`OutboxStore::lease_due`]): the row turns
//! `sending` with a lease deadline and a token. A worker that dies mid-send leaves a lease that
//! expires, and the next lease call hands the row out again — a message is never lost, at worst
//! sent twice (the mail server accepted it but the worker died before recording that).
//! [`OutboxStore::finish`] only applies while the caller still holds the lease, so a worker that
//! was presumed dead cannot overwrite what another worker did with the message since.

use std::collections::BTreeMap;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Serialize;

use crate::StoreError;

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutgoingState {
    /// Waiting for its next attempt.
    Queued,
    /// Leased by a worker (or by one that died: then the lease expires and it is due again).
    Sending,
    /// The server accepted it.
    Sent,
    /// Gave up: a permanent error (the reason is in `last_error`). `kurir outbox retry` requeues.
    Failed,
    /// An administrator cancelled it before it went out.
    Cancelled,
}

impl OutgoingState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutgoingState::Queued => "queued",
            OutgoingState::Sending => "sending",
            OutgoingState::Sent => "sent",
            OutgoingState::Failed => "failed",
            OutgoingState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<OutgoingState> {
        Some(match s {
            "queued" => OutgoingState::Queued,
            "sending" => OutgoingState::Sending,
            "sent" => OutgoingState::Sent,
            "failed" => OutgoingState::Failed,
            "cancelled" => OutgoingState::Cancelled,
            _ => return None,
        })
    }
}

impl std::fmt::Display for OutgoingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message to queue.
#[derive(Debug, Clone)]
pub struct NewOutgoing {
    /// The Kurir user whose effective settings send it (e.g. `ANNA`, `WEBSHOP`).
    pub sender_user: String,
    /// Where it came from: `cli`, `listener:<local user>`, `api`.
    pub origin: String,
    pub from: Option<String>,
    /// Envelope recipients (To, Cc and Bcc).
    pub recipients: Vec<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    /// The complete RFC 5322 message.
    pub raw: Vec<u8>,
}

/// A queued message without its content, as `kurir outbox list/show` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct OutgoingMessage {
    pub id: i64,
    pub sender_user: String,
    pub origin: String,
    pub from: Option<String>,
    pub recipients: Vec<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub size: u64,
    pub state: OutgoingState,
    pub attempts: u32,
    /// Unix milliseconds.
    pub next_attempt_at: i64,
    /// Unix milliseconds, while leased.
    pub leased_until: Option<i64>,
    pub last_error: Option<String>,
    pub via: Option<String>,
    pub server_reply: Option<String>,
    pub created_at: String,
    pub sent_at: Option<String>,
}

/// A message a worker holds the lease of.
#[derive(Debug, Clone)]
pub struct Leased {
    pub message: OutgoingMessage,
    pub raw: Vec<u8>,
    /// Proof of the lease for [`OutboxStore::renew_lease`] and [`OutboxStore::finish`].
    pub lease_token: String,
}

/// What became of an attempt.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The server accepted it.
    Sent { via: String, reply: String },
    /// A temporary problem: try again at `at` (Unix ms); `error` says what happened.
    Retry { at: i64, error: String },
    /// Not attempted after all (the mailbox's send rate is used up): back to the queue until
    /// `at` without counting as an attempt.
    Defer { at: i64 },
    /// A permanent problem: stop, keep the explanation.
    Failed { error: String },
}

/// Which messages to list.
#[derive(Debug, Clone, Default)]
pub struct OutboxFilter {
    pub state: Option<OutgoingState>,
    pub sender_user: Option<String>,
    /// Newest first, at most this many (default 100).
    pub limit: Option<u32>,
}

/// A local login of the SMTP submission listener (never with the hash).
#[derive(Debug, Clone, Serialize)]
pub struct ListenerUser {
    pub name: String,
    pub kurir_user: String,
    pub created_at: String,
    pub last_login: Option<String>,
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Queues one message; returns its id once the commit is durable.
    async fn enqueue(&self, msg: NewOutgoing) -> Result<i64, StoreError>;

    /// Queues several messages in ONE durable commit (one fsync), all or none.
    async fn enqueue_many(&self, msgs: Vec<NewOutgoing>) -> Result<Vec<i64>, StoreError>;

    /// Leases up to `limit` due messages until `now + lease_ms`: queued ones whose next attempt
    /// has come, and `sending` ones whose lease expired (their worker died). Counts an attempt.
    async fn lease_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Leased>, StoreError>;

    /// Extends a lease; false when it was lost (expired and taken by another worker).
    async fn renew_lease(&self, id: i64, token: &str, until_ms: i64) -> Result<bool, StoreError>;

    /// Records an attempt's outcome; false when the lease was lost (nothing is changed then).
    async fn finish(&self, id: i64, token: &str, outcome: Outcome) -> Result<bool, StoreError>;

    /// When the next queued message is due (Unix ms), or `None` when nothing waits.
    async fn next_due(&self) -> Result<Option<i64>, StoreError>;

    async fn outbox_list(&self, filter: &OutboxFilter) -> Result<Vec<OutgoingMessage>, StoreError>;
    async fn outbox_get(&self, id: i64) -> Result<Option<OutgoingMessage>, StoreError>;
    async fn outbox_raw(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError>;
    /// How many messages are in each state.
    async fn outbox_counts(&self) -> Result<BTreeMap<String, u64>, StoreError>;
    /// How many messages each sending user has in each state: `(user, state) → count`
    /// (metrics per sender, the health page's failing count per user).
    async fn outbox_counts_by_sender(&self) -> Result<BTreeMap<(String, String), u64>, StoreError>;

    /// Puts a failed (or queued, waiting) message back to be sent now; false if it is in
    /// another state (sent, cancelled, being sent).
    async fn outbox_retry(&self, id: i64) -> Result<bool, StoreError>;
    /// Cancels a queued or failed message; false if it is already sent, cancelled or being sent.
    async fn outbox_cancel(&self, id: i64) -> Result<bool, StoreError>;

    /// Adds or replaces a listener login (the password is stored as an argon2id hash).
    async fn set_listener_user(
        &self,
        name: &str,
        kurir_user: &str,
        password: &SecretString,
    ) -> Result<(), StoreError>;
    /// The Kurir user a listener login sends as, if name and password are right.
    async fn check_listener_user(
        &self,
        name: &str,
        password: &SecretString,
    ) -> Result<Option<String>, StoreError>;
    async fn remove_listener_user(&self, name: &str) -> Result<bool, StoreError>;
    async fn list_listener_users(&self) -> Result<Vec<ListenerUser>, StoreError>;
}

/// The current time in Unix milliseconds, the outbox's clock.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
