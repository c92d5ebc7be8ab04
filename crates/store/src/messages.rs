//! Incoming mail in the store: the messages Kurir took in, the server ids it saw them under, the
//! import queue the ERP picks documents up from, and a health record per account.
//!
//! The store is what makes intake exactly-once. A batch of messages is recorded in ONE
//! transaction ([`MessageStore::record_batch`]) before anything happens on the mail server; only
//! then does intake move the messages to the processed folder (or DELE them) and mark their
//! server ids done. After a crash, a listed server id that the store knows is only moved, never
//! fetched again, and a message that reappears under a new server id is recognised by the hash
//! of its raw MIME (`content_hash`; the `dedupe_key` of new rows is `blake3:<content hash>`).
//!
//! A Message-ID alone never makes a message a duplicate: senders reuse them (counters, a
//! corrected document re-sent under the same id, or on purpose), and treating such a message as
//! known would throw away its only copy. A different message with a Message-ID the account
//! already has is stored normally and points at the earlier row (`same_message_id_as`). Rows
//! recorded under the older key formats (`mid:<Message-ID>`, or a content key) still carry their
//! content hash, so an identical re-delivery of one of them is still recognised.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Whether a message was taken in normally or put aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Parsed and handled by its account type's handler.
    Stored,
    /// Could not be parsed or handled: kept with the reason, moved to the quarantine folder,
    /// never retried automatically.
    Quarantined,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Stored => "stored",
            MessageStatus::Quarantined => "quarantined",
        }
    }

    pub fn parse(s: &str) -> Option<MessageStatus> {
        match s {
            "stored" => Some(MessageStatus::Stored),
            "quarantined" => Some(MessageStatus::Quarantined),
            _ => None,
        }
    }
}

/// Where the raw MIME of a message lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawMime {
    /// In the database row.
    Inline(Vec<u8>),
    /// A file under the data directory (path relative to it), written and synced before the
    /// row was committed. Large messages go here so they are never held whole in memory.
    File(String),
    /// A byte range of a batch segment file under the data directory (path relative to it):
    /// the small messages of one batch written with one write and one fsync, which is much
    /// faster than the same bytes as SQLite blobs (written twice: WAL, then checkpoint).
    Segment { path: String, offset: u64, len: u64 },
}

impl RawMime {
    /// How the file variants are kept in `messages.raw_path`: `path` or `path#offset+len`.
    pub fn to_raw_path(&self) -> Option<String> {
        match self {
            RawMime::Inline(_) => None,
            RawMime::File(p) => Some(p.clone()),
            RawMime::Segment { path, offset, len } => Some(format!("{path}#{offset}+{len}")),
        }
    }

    pub fn from_raw_path(s: &str) -> RawMime {
        if let Some((path, range)) = s.rsplit_once('#')
            && let Some((o, l)) = range.split_once('+')
            && let (Ok(offset), Ok(len)) = (o.parse(), l.parse())
        {
            return RawMime::Segment {
                path: path.to_owned(),
                offset,
                len,
            };
        }
        RawMime::File(s.to_owned())
    }

    /// The raw bytes, reading files relative to `data_dir`.
    pub fn read(&self, data_dir: &std::path::Path) -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        match self {
            RawMime::Inline(b) => Ok(b.clone()),
            RawMime::File(p) => std::fs::read(data_dir.join(p)),
            RawMime::Segment { path, offset, len } => {
                let mut f = std::fs::File::open(data_dir.join(path))?;
                f.seek(SeekFrom::Start(*offset))?;
                let mut buf = vec![0; *len as usize];
                f.read_exact(&mut buf)?;
                Ok(buf)
            }
        }
    }
}

/// One attachment as listed in the metadata (the content stays in the raw MIME).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentInfo {
    pub name: Option<String>,
    pub content_type: String,
    pub size: u64,
}

/// A document a handler extracted for the ERP; its file already waits in the staging folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImport {
    /// `xml`, `pdf`, … (what the ERP's import looks at).
    pub kind: String,
    /// The file name in `<data>/import/<account>/`, unique per account.
    pub file_name: String,
    pub content_type: Option<String>,
    pub size: u64,
}

/// A message to record.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// `imap:<UIDVALIDITY>:<UID>`, `pop3:<UIDL>` or `graph:<id>`.
    pub server_id: String,
    /// `blake3:<content hash>`: what makes two messages the same one (see the module doc).
    pub dedupe_key: String,
    pub message_id: Option<String>,
    /// Hex BLAKE3 of the raw MIME (`b3sum`).
    pub content_hash: String,
    pub status: MessageStatus,
    pub reason: Option<String>,
    /// The handler (account type) that took it in.
    pub handler: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
    /// The Date header as RFC 3339, when it could be read.
    pub date: Option<String>,
    pub size: u64,
    pub attachments: Vec<AttachmentInfo>,
    pub raw: RawMime,
    pub imports: Vec<NewImport>,
}

/// What [`MessageStore::record_batch`] did with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A new row.
    New { id: i64 },
    /// The account already had this message (same content): only the server id was added.
    Duplicate { id: i64 },
}

impl Recorded {
    pub fn id(self) -> i64 {
        match self {
            Recorded::New { id } | Recorded::Duplicate { id } => id,
        }
    }
}

/// A stored message's metadata, as `kurir messages` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredMessage {
    pub id: i64,
    pub account: String,
    pub message_id: Option<String>,
    pub content_hash: String,
    pub status: MessageStatus,
    pub reason: Option<String>,
    pub handler: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
    pub date: Option<String>,
    pub size: u64,
    pub attachments: Vec<AttachmentInfo>,
    pub raw_path: Option<String>,
    pub server_ids: Vec<String>,
    pub received_at: String,
    /// A different message of the same account that came earlier with the same Message-ID
    /// (its id): shown as "same Message-ID as #N".
    pub same_message_id_as: Option<i64>,
    /// A quarantined message an administrator marked handled.
    pub handled: Option<Handled>,
    /// When retention removed the raw MIME (the record stays until `keep_records`).
    pub raw_purged_at: Option<String>,
}

/// Who marked a quarantined message handled, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handled {
    pub at: String,
    pub by: String,
    pub note: String,
}

/// One entry of the import queue.
#[derive(Debug, Clone, Serialize)]
pub struct ImportEntry {
    pub id: i64,
    pub account: String,
    pub message: i64,
    pub kind: String,
    pub file_name: String,
    /// The account's directory under `<data>/import/` (see [`MessageStore::account_dir`]), so
    /// the document is at `<data>/import/<dir>/<file_name>`; `None` before it was assigned.
    pub dir: Option<String>,
    pub content_type: Option<String>,
    pub size: u64,
    /// `staged` (committed, file not yet renamed into place), `ready`, `picked_up`
    /// (acknowledged by the ERP).
    pub state: String,
    pub created_at: String,
    /// Claimed by a consumer until this time (ms since the epoch), if a claim is in force or was.
    pub claimed_until: Option<i64>,
    /// When the ERP acknowledged it.
    pub acked_at: Option<String>,
}

/// What `claim_import` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Claimed under the caller's token until this time (ms since the epoch, database clock).
    Claimed {
        until: i64,
    },
    /// Another consumer's claim is in force until then.
    ClaimedByOther {
        until: i64,
    },
    /// Already acknowledged: never offered again.
    Acked,
    /// Committed, but its file is not in the import folder yet (a moment after the commit).
    NotReady,
    NotFound,
}

/// What `ack_import` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    Acked,
    /// Acknowledged before with the same claim (a retried ack): nothing changes.
    AlreadyAcked,
    /// The caller holds no claim in force on it (never claimed, expired, or another's).
    NotClaimed,
    NotFound,
}

/// The health record of an account.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    pub account: String,
    pub last_attempt: Option<String>,
    pub last_success: Option<String>,
    /// The last error with its explanation; kept after a later success (compare the times).
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// Failures in a row (drives the backoff).
    pub failures: u32,
    pub taken_in_total: u64,
}

/// Which messages to list.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub account: Option<String>,
    pub status: Option<MessageStatus>,
    /// Newest first; 0 means no limit.
    pub limit: u32,
}

/// Counts per account, for summaries and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MessageCounts {
    pub stored: u64,
    pub quarantined: u64,
    /// Server ids whose server-side step (move/DELE) is not yet known to be done.
    pub pending_server_steps: u64,
}

#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Where raw MIME lives is the store's decision. `true`: the store keeps every byte of a
    /// message itself (PostgreSQL, whose instances share no disk): the intake hands it the
    /// bytes, or a spool file it reads and the intake removes after the commit, and writes no
    /// message files of its own. `false` (SQLite): the intake writes segment and message files
    /// beside the database, and the rows point at them.
    fn keeps_raw_bytes(&self) -> bool {
        false
    }

    /// Which of `server_ids` this account already recorded (whatever their state).
    async fn known_server_ids(
        &self,
        account: &str,
        server_ids: &[String],
    ) -> Result<HashSet<String>, StoreError>;

    /// Records a batch in one transaction: new messages, their import entries (state
    /// `staged`), and every server id. A message whose content the account already has (same
    /// `content_hash`, whatever key format its row was recorded under) is not stored again; its
    /// server id is linked to the existing row. A new message whose Message-ID an earlier row
    /// has gets `same_message_id_as` set to the earliest such row.
    async fn record_batch(
        &self,
        account: &str,
        batch: Vec<NewMessage>,
    ) -> Result<Vec<Recorded>, StoreError>;

    /// The server-side step (move to processed/quarantine, DELE + QUIT) is done for these ids.
    async fn mark_done(&self, account: &str, server_ids: &[String]) -> Result<(), StoreError>;

    /// Server ids recorded but whose server-side step is not confirmed (state `stored`).
    async fn pending_server_ids(&self, account: &str) -> Result<Vec<String>, StoreError>;

    /// The status (stored or quarantined) of the messages behind known server ids, so intake
    /// knows which folder to move a re-listed message to.
    async fn status_of_server_ids(
        &self,
        account: &str,
        server_ids: &[String],
    ) -> Result<Vec<(String, MessageStatus)>, StoreError>;

    /// Import entries committed but whose file may not be in place yet.
    async fn staged_imports(&self, account: &str) -> Result<Vec<ImportEntry>, StoreError>;
    async fn mark_imports_ready(&self, ids: &[i64]) -> Result<(), StoreError>;

    async fn list_messages(&self, filter: &MessageFilter)
    -> Result<Vec<StoredMessage>, StoreError>;
    /// A page of [`MessageStore::list_messages`]: the same order, skipping the `offset` newest
    /// matches (the web UI's paging).
    async fn list_messages_page(
        &self,
        filter: &MessageFilter,
        offset: u32,
    ) -> Result<Vec<StoredMessage>, StoreError>;
    /// How many messages each account took in since `since` (RFC 3339, UTC), by status:
    /// `(account, status) → count` (the account health page's last 24 hours).
    async fn counts_since(
        &self,
        since: &str,
    ) -> Result<BTreeMap<(String, String), u64>, StoreError>;
    async fn message(&self, id: i64) -> Result<Option<StoredMessage>, StoreError>;
    async fn raw_message(&self, id: i64) -> Result<Option<RawMime>, StoreError>;
    async fn count_messages(&self, account: &str) -> Result<MessageCounts, StoreError>;
    async fn list_imports(&self, account: Option<&str>) -> Result<Vec<ImportEntry>, StoreError>;

    /// The ERP's feed: committed import entries (not `staged`) with an id above `after`, oldest
    /// first, at most `limit`. With `pending`, only those still to be taken: `ready` and not
    /// claimed by anyone now.
    async fn imports_after(
        &self,
        account: Option<&str>,
        after: i64,
        limit: u32,
        pending: bool,
    ) -> Result<Vec<ImportEntry>, StoreError>;

    /// Incoming messages with an id above `after`, oldest first (the ERP's cursor feed).
    async fn messages_after(
        &self,
        filter: &MessageFilter,
        after: i64,
    ) -> Result<Vec<StoredMessage>, StoreError>;

    /// Claims a `ready` import entry for `ttl_ms` under `token` (atomically: one consumer at a
    /// time; an expired claim can be taken over).
    async fn claim_import(&self, id: i64, token: &str, ttl_ms: i64) -> Result<Claim, StoreError>;

    /// The file-drop side of the contract: `ready` entries whose file the ERP removed from the
    /// import folder are `picked_up` (acknowledged now); entries in another state stay as they
    /// are.
    async fn ack_removed_imports(&self, ids: &[i64]) -> Result<(), StoreError>;

    /// Acknowledges an entry the caller holds the claim `token` on: it is `picked_up` and never
    /// offered again. Repeating the ack with the same token is harmless.
    async fn ack_import(&self, id: i64, token: &str) -> Result<Ack, StoreError>;

    /// The health records (one account, or all).
    async fn health(&self, account: Option<&str>) -> Result<Vec<Health>, StoreError>;
    /// Records the outcome of one intake pass: `Ok(n)` messages taken in, or the error text
    /// (with its explanation) that stopped it.
    async fn record_pass(
        &self,
        account: &str,
        outcome: Result<u64, String>,
    ) -> Result<(), StoreError>;

    /// Takes, or renews, the right to take in `account` for `ttl`: `true` when `holder` holds
    /// it now (nobody held it, the previous holder's lease expired, or `holder` already held it
    /// and it is extended), `false` while another holder's lease runs. Atomic against other
    /// processes sharing the database.
    ///
    /// This is what keeps several Kurir instances on one PostgreSQL database from taking in the
    /// same account at once (two IMAP sessions moving the same messages). `kurir serve`'s intake
    /// supervisor calls it before starting an account's scheduler, with a `holder` unique to the
    /// process (host, pid, a random part), renews it every third of `ttl` while the scheduler
    /// runs, stops the scheduler when a renewal fails, leaves the account alone while it gets
    /// `false`, and calls [`MessageStore::release_account`] on shutdown; a daemon that dies
    /// leaves a lease that expires after `ttl`. A one-off `kurir fetch` does not take it.
    ///
    /// Expiry uses the database's clock on PostgreSQL (instances on several machines) and the
    /// local clock on SQLite (one machine).
    async fn try_lease_account(
        &self,
        account: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError>;

    /// The account's own directory name under `<data>/import`, `<data>/spool` and
    /// `<data>/locks`: the one recorded for it, or else `wanted` (the cleaned account name) if no
    /// other account has that name in any letter case, or else `wanted_2`, `wanted_3`, …
    /// Recorded in the same call, so it never changes afterwards (the ERP's configured import
    /// path stays put) and two accounts never share one. Atomic against other processes.
    async fn account_dir(&self, account: &str, wanted: &str) -> Result<String, StoreError>;

    /// Gives up `holder`'s lease of `account` at once; `false` when `holder` did not hold it.
    async fn release_account(&self, account: &str, holder: &str) -> Result<bool, StoreError>;

    /// The live (unexpired) lease of an account, if any: which instance takes it in.
    async fn account_lease(&self, account: &str) -> Result<Option<AccountLease>, StoreError>;
}

/// Points new rows at the earliest earlier row of their account with the same Message-ID (the
/// caller appends `AND id IN (…)`); the same statement on both stores.
pub(crate) const SAME_MESSAGE_ID_AS: &str = "UPDATE messages SET same_message_id_as = \
    (SELECT MIN(e.id) FROM messages e WHERE e.account = messages.account \
     AND e.message_id = messages.message_id AND e.id < messages.id) \
    WHERE message_id IS NOT NULL";

/// The import queue with each entry's account directory.
pub(crate) const IMPORTS_WITH_DIR: &str =
    "SELECT q.*, d.dir_name FROM import_queue q LEFT JOIN account_dirs d ON d.account = q.account";

/// The `n`th directory name [`MessageStore::account_dir`] tries for an account: `wanted`, then
/// `wanted_2`, `wanted_3`, … (one rule for both stores).
pub fn account_dir_candidate(wanted: &str, n: u32) -> String {
    if n <= 1 {
        wanted.to_owned()
    } else {
        format!("{wanted}_{n}")
    }
}

/// How many names [`MessageStore::account_dir`] tries before it gives up (a bound, not a limit
/// anyone reaches: it takes that many accounts whose names clean alike).
pub const ACCOUNT_DIR_TRIES: u32 = 1000;

/// Who holds the right to take in an account (see [`MessageStore::try_lease_account`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountLease {
    pub account: String,
    pub holder: String,
    /// Unix milliseconds (the database's clock on PostgreSQL).
    pub leased_until: i64,
    /// When this holder took it (RFC 3339); renewals keep it.
    pub acquired_at: String,
}
