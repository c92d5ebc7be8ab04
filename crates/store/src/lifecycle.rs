//! What keeps a store healthy over years of unattended running (issue #16): retention (the
//! purge), storage use per account, quarantine actions with their audit trail, the alarms
//! already notified and the ERP webhook's cursor.
//!
//! Retention never removes what is still someone's work: a message whose server-side step is not
//! done, a quarantined message nobody handled, an import document the ERP has not acknowledged,
//! an outgoing message not sent (queued, sending, failed). Everything else goes in two steps: the
//! bulky content first (raw MIME, import files, sent MIME), the small record later.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::StoreError;
use crate::messages::{AttachmentInfo, MessageStatus, NewImport};

/// How long things are kept (the system settings `keep_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The raw MIME of a processed incoming message, from when it was received.
    pub raw_mail: Duration,
    /// An import document's file, from when the ERP acknowledged it.
    pub import_documents: Duration,
    /// A sent or cancelled outgoing message's MIME, from when it was created.
    pub sent_mail: Duration,
    /// The records themselves (message, import and outbox rows), once their content is gone.
    pub records: Duration,
}

impl Default for Retention {
    fn default() -> Retention {
        const DAY: u64 = 86_400;
        Retention {
            raw_mail: Duration::from_secs(90 * DAY),
            import_documents: Duration::from_secs(90 * DAY),
            sent_mail: Duration::from_secs(90 * DAY),
            records: Duration::from_secs(730 * DAY),
        }
    }
}

/// What a purge removed (or, dry, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub dry_run: bool,
    /// Incoming messages whose raw MIME went, and its bytes.
    pub raw_messages: u64,
    pub raw_bytes: u64,
    /// Import documents (files in the import folders) removed, and their bytes.
    pub import_documents: u64,
    pub import_bytes: u64,
    /// Sent/cancelled outgoing messages whose MIME went, and its bytes.
    pub sent_messages: u64,
    pub sent_bytes: u64,
    /// Records removed altogether: incoming messages (with their import entries) and outbox
    /// entries.
    pub message_records: u64,
    pub outbox_records: u64,
    /// Message and segment files removed from the data directory.
    pub files_removed: u64,
}

/// What an account's mail takes up (the health page and `/metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StorageUse {
    pub account: String,
    /// Message records, and how many of them still have their raw MIME.
    pub messages: u64,
    pub messages_with_raw: u64,
    /// Bytes of raw MIME kept.
    pub raw_bytes: u64,
    /// Quarantined messages nobody has handled yet.
    pub quarantine_open: u64,
    /// Import documents not yet removed by retention, and their bytes.
    pub import_documents: u64,
    pub import_bytes: u64,
}

/// The outbox's share of the storage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxUse {
    pub entries: u64,
    /// Bytes of MIME kept (queued, failed, and sent/cancelled ones not purged yet).
    pub bytes: u64,
}

/// Who did something, for the audit trail: `admin:NAME` (web UI), `api:KEYNAME` (REST API),
/// `cli:OSUSER` (the command line), `kurir` (the service itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    /// `reprocess`, `mark_handled`, `forward`, `delete`.
    pub action: String,
    /// What it was done to: `message:ID`.
    pub subject: String,
    pub detail: Option<String>,
}

/// The result of running an account's handler again on a quarantined message
/// ([`LifecycleStore::replace_quarantine`]): it replaces the quarantine state.
#[derive(Debug, Clone)]
pub struct Reprocessed {
    pub status: MessageStatus,
    pub reason: Option<String>,
    pub handler: String,
    pub attachments: Vec<AttachmentInfo>,
    /// Documents for the import queue (their files wait in staging), recorded as `staged`.
    pub imports: Vec<NewImport>,
}

/// Why a quarantine action was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionRefused {
    NotFound,
    /// The message is not (or no longer) in quarantine.
    NotQuarantined,
    /// The message was moved to the quarantine folder on the server, but that is not recorded
    /// as done yet: deleting its record now would take it in again. The next intake pass
    /// records it; try again after it.
    ServerStepPending,
}

/// An alarm that was notified and still lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotifiedAlarm {
    /// The alarm's kind and subject: `client_secret_expiring/system`.
    pub key: String,
    pub severity: String,
    /// The alarm's text as last sent.
    pub message: String,
    pub first_seen: String,
    pub last_sent: String,
}

#[async_trait]
pub trait LifecycleStore: Send + Sync {
    /// Removes (with `dry_run`: counts) what `retention` lets go, as of now, in bounded chunks.
    /// Files of this store's data directory go after the rows that pointed at them committed.
    async fn purge(&self, retention: &Retention, dry_run: bool) -> Result<PurgeReport, StoreError>;

    /// Storage use per account, and the outbox's.
    async fn storage_use(&self) -> Result<(Vec<StorageUse>, OutboxUse), StoreError>;

    /// Marks a quarantined message handled (it stays quarantined with its reason, and no longer
    /// waits for anyone), with the audit entry, in one transaction.
    async fn mark_handled(
        &self,
        id: i64,
        actor: &str,
        note: &str,
    ) -> Result<Result<(), ActionRefused>, StoreError>;

    /// Replaces a quarantined message's state with what its handler says now; its new import
    /// entries are `staged` (the caller moves their files into place and marks them ready). The
    /// audit entry is in the same transaction. Returns the new import entries' ids.
    async fn replace_quarantine(
        &self,
        id: i64,
        outcome: Reprocessed,
        actor: &str,
    ) -> Result<Result<Vec<i64>, ActionRefused>, StoreError>;

    /// Deletes a quarantined message: its record, server ids and raw MIME (files too), with the
    /// audit entry.
    async fn delete_quarantined(
        &self,
        id: i64,
        actor: &str,
    ) -> Result<Result<(), ActionRefused>, StoreError>;

    /// Adds an audit entry on its own (e.g. a forward: the outbox entry is queued separately).
    async fn audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError>;

    /// The audit trail, newest first: of one subject (`message:12`), or all.
    async fn audit_log(
        &self,
        subject: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    async fn notified_alarms(&self) -> Result<Vec<NotifiedAlarm>, StoreError>;
    /// Records (or refreshes) that an alarm was notified.
    async fn save_notified_alarm(&self, alarm: &NotifiedAlarm) -> Result<(), StoreError>;
    /// The alarm cleared (and its "resolved" notice went out).
    async fn forget_notified_alarm(&self, key: &str) -> Result<(), StoreError>;

    /// Writes a consistent copy of the database to `dest` (a new file) while the service runs:
    /// SQLite's `VACUUM INTO`, one read transaction. PostgreSQL: refused
    /// ([`StoreError::NotWithPostgres`]); use `pg_dump`.
    async fn copy_database_to(&self, dest: &std::path::Path) -> Result<(), StoreError>;

    /// The last id of `feed` (`messages`, `imports`) the ERP's webhook was told about.
    async fn webhook_cursor(&self, feed: &str) -> Result<Option<i64>, StoreError>;
    async fn set_webhook_cursor(&self, feed: &str, last_id: i64) -> Result<(), StoreError>;
}
