//! [`MessageStore`] on PostgreSQL (tables from `migrations/postgres/0002_intake.sql`).
//!
//! The same exactly-once design as the SQLite store: a batch is one transaction; a message
//! whose dedupe key the account already has only gets its server id linked. Two transactions
//! inserting the same dedupe key at once are serialised by the unique index (the second waits
//! for the first and then sees a duplicate), so even two instances that both took in the same
//! account (see [`MessageStore::try_lease_account`]) never store a message twice.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};

use super::{PgStore, no_nul, now};
use crate::StoreError;
use crate::messages::{
    ACCOUNT_DIR_TRIES, IMPORTS_WITH_DIR, SAME_MESSAGE_ID_AS, account_dir_candidate,
};
use crate::messages::{
    AccountLease, AttachmentInfo, Health, ImportEntry, MessageCounts, MessageFilter, MessageStatus,
    MessageStore, NewMessage, RawMime, Recorded, StoredMessage,
};

const MESSAGE_COLUMNS: &str = "id, account, message_id, content_hash, status, reason, handler, \
    from_addr, to_addrs, subject, date, size, attachments, received_at, same_message_id_as";

/// The database's clock in Unix milliseconds (account and outbox leases compare against it).
pub(super) const DB_NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

fn message_from_row(row: &PgRow) -> StoredMessage {
    let attachments: String = row.get("attachments");
    let status: String = row.get("status");
    StoredMessage {
        id: row.get("id"),
        account: row.get("account"),
        message_id: row.get("message_id"),
        content_hash: row.get("content_hash"),
        // The CHECK constraint allows only the two values.
        status: MessageStatus::parse(&status).unwrap_or(MessageStatus::Quarantined),
        reason: row.get("reason"),
        handler: row.get("handler"),
        from: row.get("from_addr"),
        to: row.get("to_addrs"),
        subject: row.get("subject"),
        date: row.get("date"),
        size: row.get::<i64, _>("size") as u64,
        attachments: serde_json::from_str::<Vec<AttachmentInfo>>(&attachments).unwrap_or_default(),
        // Raw MIME is always in the database here.
        raw_path: None,
        server_ids: Vec::new(),
        received_at: row.get("received_at"),
        same_message_id_as: row.get("same_message_id_as"),
    }
}

fn import_from_row(row: &PgRow) -> ImportEntry {
    ImportEntry {
        id: row.get("id"),
        account: row.get("account"),
        message: row.get("message"),
        kind: row.get("kind"),
        file_name: row.get("file_name"),
        dir: row.try_get("dir_name").unwrap_or(None),
        content_type: row.get("content_type"),
        size: row.get::<i64, _>("size") as u64,
        state: row.get("state"),
        created_at: row.get("created_at"),
    }
}

impl PgStore {
    async fn server_ids_of(&self, id: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT server_id FROM message_server_ids WHERE message = $1 \
             ORDER BY seen_at COLLATE \"C\", server_id COLLATE \"C\"",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The bytes to store for a message: inline as given, files read from the local data
    /// directory (off the async threads).
    async fn raw_bytes(&self, raw: RawMime) -> Result<Vec<u8>, StoreError> {
        match raw {
            RawMime::Inline(bytes) => Ok(bytes),
            other => {
                let Some(dir) = self.local_dir().map(|d| d.to_owned()) else {
                    return Err(StoreError::RawMimeUnavailable(format!(
                        "{} is a file of a data directory this PostgreSQL store was not given",
                        other.to_raw_path().unwrap_or_default()
                    )));
                };
                let what = other.to_raw_path().unwrap_or_default();
                tokio::task::spawn_blocking(move || other.read(&dir))
                    .await
                    .map_err(|e| StoreError::RawMimeUnavailable(format!("{what}: {e}")))?
                    .map_err(|e| StoreError::Io {
                        what: format!("read the raw MIME {what}"),
                        source: e,
                    })
            }
        }
    }
}

#[async_trait]
impl MessageStore for PgStore {
    async fn known_server_ids(
        &self,
        account: &str,
        server_ids: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        if server_ids.is_empty() {
            return Ok(HashSet::new());
        }
        let rows = sqlx::query(
            "SELECT server_id FROM message_server_ids WHERE account = $1 AND server_id = ANY($2)",
        )
        .bind(account)
        .bind(server_ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn record_batch(
        &self,
        account: &str,
        batch: Vec<NewMessage>,
    ) -> Result<Vec<Recorded>, StoreError> {
        let at = now();
        // Files are read before the transaction starts, so it is not held open during I/O.
        let mut prepared = Vec::with_capacity(batch.len());
        for mut m in batch {
            m.dedupe_key = no_nul(m.dedupe_key);
            m.message_id = m.message_id.map(no_nul);
            m.reason = m.reason.map(no_nul);
            m.from = m.from.map(no_nul);
            m.to = m.to.map(no_nul);
            m.subject = m.subject.map(no_nul);
            m.date = m.date.map(no_nul);
            for imp in &mut m.imports {
                imp.content_type = imp.content_type.take().map(no_nul);
            }
            let raw = std::mem::replace(&mut m.raw, RawMime::Inline(Vec::new()));
            let bytes = self.raw_bytes(raw).await?;
            prepared.push((m, bytes));
        }
        // Rows are inserted in dedupe-key order (stable, so the first of two equal keys in the
        // batch is still the one stored): two instances recording overlapping batches then take
        // the unique-index locks in the same order and wait for each other instead of
        // deadlocking. The answers are given in the batch's order.
        let mut order: Vec<usize> = (0..prepared.len()).collect();
        order.sort_by(|&a, &b| prepared[a].0.dedupe_key.cmp(&prepared[b].0.dedupe_key));
        let mut slots: Vec<Option<(NewMessage, Vec<u8>)>> =
            prepared.into_iter().map(Some).collect();
        let mut out = vec![Recorded::New { id: 0 }; slots.len()];
        let mut tx = self.pool.begin().await?;
        for idx in order {
            let (m, raw) = slots[idx].take().expect("each index once");
            // The same content the account already has, under whatever key format its row was
            // recorded: a duplicate of that row. (A concurrent insert of the same content is
            // caught by the unique dedupe key below.)
            let same = sqlx::query(
                "SELECT MIN(id) FROM messages WHERE account = $1 AND content_hash = $2",
            )
            .bind(account)
            .bind(&m.content_hash)
            .fetch_one(&mut *tx)
            .await?
            .get::<Option<i64>, _>(0);
            if let Some(id) = same {
                let recorded = Recorded::Duplicate { id };
                sqlx::query(
                    "INSERT INTO message_server_ids (account, server_id, message, state, seen_at) \
                     VALUES ($1, $2, $3, 'stored', $4) ON CONFLICT (account, server_id) DO NOTHING",
                )
                .bind(account)
                .bind(&m.server_id)
                .bind(id)
                .bind(&at)
                .execute(&mut *tx)
                .await?;
                out[idx] = recorded;
                continue;
            }
            let attachments =
                serde_json::to_string(&m.attachments).unwrap_or_else(|_| "[]".to_owned());
            let inserted = sqlx::query(
                "INSERT INTO messages (account, dedupe_key, message_id, content_hash, status, reason, handler, \
                 from_addr, to_addrs, subject, date, size, attachments, raw, first_server_id, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                 ON CONFLICT (account, dedupe_key) DO NOTHING RETURNING id",
            )
            .bind(account)
            .bind(&m.dedupe_key)
            .bind(&m.message_id)
            .bind(&m.content_hash)
            .bind(m.status.as_str())
            .bind(&m.reason)
            .bind(&m.handler)
            .bind(&m.from)
            .bind(&m.to)
            .bind(&m.subject)
            .bind(&m.date)
            .bind(m.size as i64)
            .bind(attachments)
            .bind(raw)
            .bind(&m.server_id)
            .bind(&at)
            .fetch_optional(&mut *tx)
            .await?;
            let recorded = match inserted {
                Some(row) => {
                    let id: i64 = row.get(0);
                    if m.message_id.is_some() {
                        sqlx::query(AssertSqlSafe(format!("{} AND id = $1", SAME_MESSAGE_ID_AS)))
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    for imp in &m.imports {
                        sqlx::query(
                            "INSERT INTO import_queue (account, message, kind, file_name, content_type, size, state, created_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, 'staged', $7) ON CONFLICT (account, file_name) DO NOTHING",
                        )
                        .bind(account)
                        .bind(id)
                        .bind(&imp.kind)
                        .bind(&imp.file_name)
                        .bind(&imp.content_type)
                        .bind(imp.size as i64)
                        .bind(&at)
                        .execute(&mut *tx)
                        .await?;
                    }
                    Recorded::New { id }
                }
                None => {
                    let row = sqlx::query(
                        "SELECT id FROM messages WHERE account = $1 AND dedupe_key = $2",
                    )
                    .bind(account)
                    .bind(&m.dedupe_key)
                    .fetch_one(&mut *tx)
                    .await?;
                    Recorded::Duplicate { id: row.get(0) }
                }
            };
            sqlx::query(
                "INSERT INTO message_server_ids (account, server_id, message, state, seen_at) \
                 VALUES ($1, $2, $3, 'stored', $4) ON CONFLICT (account, server_id) DO NOTHING",
            )
            .bind(account)
            .bind(&m.server_id)
            .bind(recorded.id())
            .bind(&at)
            .execute(&mut *tx)
            .await?;
            out[idx] = recorded;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn mark_done(&self, account: &str, server_ids: &[String]) -> Result<(), StoreError> {
        if server_ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE message_server_ids SET state = 'done' WHERE account = $1 AND server_id = ANY($2)",
        )
        .bind(account)
        .bind(server_ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn pending_server_ids(&self, account: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT server_id FROM message_server_ids WHERE account = $1 AND state = 'stored'",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn status_of_server_ids(
        &self,
        account: &str,
        server_ids: &[String],
    ) -> Result<Vec<(String, MessageStatus)>, StoreError> {
        if server_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT s.server_id, m.status FROM message_server_ids s JOIN messages m ON m.id = s.message \
             WHERE s.account = $1 AND s.server_id = ANY($2)",
        )
        .bind(account)
        .bind(server_ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let status: String = row.get(1);
                (
                    row.get(0),
                    MessageStatus::parse(&status).unwrap_or(MessageStatus::Quarantined),
                )
            })
            .collect())
    }

    async fn staged_imports(&self, account: &str) -> Result<Vec<ImportEntry>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{IMPORTS_WITH_DIR} WHERE q.account = $1 AND q.state = 'staged' ORDER BY q.id"
        )))
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(import_from_row).collect())
    }

    async fn mark_imports_ready(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE import_queue SET state = 'ready' WHERE state = 'staged' AND id = ANY($1)",
        )
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_messages(
        &self,
        filter: &MessageFilter,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.list_messages_page(filter, 0).await
    }

    async fn list_messages_page(
        &self,
        filter: &MessageFilter,
        offset: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        // Only fixed clauses and integers are added to the text; values are bound.
        let mut sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE ($1::TEXT IS NULL OR account = $1) \
             AND ($2::TEXT IS NULL OR status = $2) ORDER BY id DESC"
        );
        if filter.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", filter.limit));
        }
        if offset > 0 {
            sql.push_str(&format!(" OFFSET {offset}"));
        }
        Ok(sqlx::query(AssertSqlSafe(sql))
            .bind(&filter.account)
            .bind(filter.status.map(|s| s.as_str()))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(message_from_row)
            .collect())
    }

    async fn counts_since(
        &self,
        since: &str,
    ) -> Result<BTreeMap<(String, String), u64>, StoreError> {
        // RFC 3339 UTC text from `now()` compares in time order (to the second) in byte order.
        let rows = sqlx::query(
            "SELECT account, status, COUNT(*) FROM messages WHERE received_at COLLATE \"C\" >= $1 \
             GROUP BY account, status",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    (r.get::<String, _>(0), r.get::<String, _>(1)),
                    r.get::<i64, _>(2) as u64,
                )
            })
            .collect())
    }

    async fn message(&self, id: i64) -> Result<Option<StoredMessage>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let mut m = message_from_row(&row);
                m.server_ids = self.server_ids_of(id).await?;
                Ok(Some(m))
            }
        }
    }

    async fn raw_message(&self, id: i64) -> Result<Option<RawMime>, StoreError> {
        let row = sqlx::query("SELECT raw FROM messages WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| RawMime::Inline(r.get(0))))
    }

    async fn count_messages(&self, account: &str) -> Result<MessageCounts, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FILTER (WHERE status = 'stored'), \
             COUNT(*) FILTER (WHERE status = 'quarantined'), \
             (SELECT COUNT(*) FROM message_server_ids WHERE account = $1 AND state = 'stored') \
             FROM messages WHERE account = $1",
        )
        .bind(account)
        .fetch_one(&self.pool)
        .await?;
        Ok(MessageCounts {
            stored: row.get::<i64, _>(0) as u64,
            quarantined: row.get::<i64, _>(1) as u64,
            pending_server_steps: row.get::<i64, _>(2) as u64,
        })
    }

    async fn list_imports(&self, account: Option<&str>) -> Result<Vec<ImportEntry>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{IMPORTS_WITH_DIR} WHERE ($1::TEXT IS NULL OR q.account = $1) ORDER BY q.id"
        )))
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(import_from_row).collect())
    }

    async fn health(&self, account: Option<&str>) -> Result<Vec<Health>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM intake_health WHERE ($1::TEXT IS NULL OR account = $1) \
             ORDER BY account COLLATE \"C\"",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Health {
                account: r.get("account"),
                last_attempt: r.get("last_attempt"),
                last_success: r.get("last_success"),
                last_error: r.get("last_error"),
                last_error_at: r.get("last_error_at"),
                failures: r.get::<i64, _>("failures") as u32,
                taken_in_total: r.get::<i64, _>("taken_in_total") as u64,
            })
            .collect())
    }

    async fn record_pass(
        &self,
        account: &str,
        outcome: Result<u64, String>,
    ) -> Result<(), StoreError> {
        let at = now();
        match outcome {
            Ok(n) => {
                sqlx::query(
                    "INSERT INTO intake_health (account, last_attempt, last_success, failures, taken_in_total) \
                     VALUES ($1, $2, $2, 0, $3) ON CONFLICT (account) DO UPDATE SET \
                     last_attempt = excluded.last_attempt, last_success = excluded.last_success, \
                     failures = 0, taken_in_total = intake_health.taken_in_total + excluded.taken_in_total",
                )
                .bind(account)
                .bind(&at)
                .bind(n as i64)
                .execute(&self.pool)
                .await?;
            }
            Err(text) => {
                sqlx::query(
                    "INSERT INTO intake_health (account, last_attempt, last_error, last_error_at, failures) \
                     VALUES ($1, $2, $3, $2, 1) ON CONFLICT (account) DO UPDATE SET \
                     last_attempt = excluded.last_attempt, last_error = excluded.last_error, \
                     last_error_at = excluded.last_error_at, failures = intake_health.failures + 1",
                )
                .bind(account)
                .bind(&at)
                .bind(no_nul(text))
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    async fn try_lease_account(
        &self,
        account: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let ttl_ms = ttl.as_millis().min(i64::MAX as u128 / 2) as i64;
        // One statement, atomic under concurrency: a conflicting insert waits for the other
        // transaction and then evaluates the WHERE against the row it committed.
        let r = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO account_leases (account, holder, leased_until, acquired_at) \
             VALUES ($1, $2, {DB_NOW_MS} + $3, $4) ON CONFLICT (account) DO UPDATE SET \
             acquired_at = CASE WHEN account_leases.holder = excluded.holder \
               THEN account_leases.acquired_at ELSE excluded.acquired_at END, \
             holder = excluded.holder, leased_until = excluded.leased_until \
             WHERE account_leases.holder = excluded.holder OR account_leases.leased_until <= {DB_NOW_MS}"
        )))
        .bind(account)
        .bind(holder)
        .bind(ttl_ms)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn account_dir(&self, account: &str, wanted: &str) -> Result<String, StoreError> {
        let recorded = || async {
            Ok::<_, StoreError>(
                sqlx::query("SELECT dir_name FROM account_dirs WHERE account = $1")
                    .bind(account)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| r.get::<String, _>(0)),
            )
        };
        if let Some(dir) = recorded().await? {
            return Ok(dir);
        }
        for n in 1..=ACCOUNT_DIR_TRIES {
            let dir = no_nul(account_dir_candidate(wanted, n));
            let r = sqlx::query(
                "INSERT INTO account_dirs (account, dir_name, dir_key) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(account)
            .bind(&dir)
            .bind(dir.to_lowercase())
            .execute(&self.pool)
            .await?;
            if r.rows_affected() == 1 {
                return Ok(dir);
            }
            // Taken by another account, or this account got one meanwhile (another instance).
            if let Some(dir) = recorded().await? {
                return Ok(dir);
            }
        }
        Err(StoreError::NoAccountDir(
            account.to_owned(),
            ACCOUNT_DIR_TRIES,
        ))
    }

    async fn release_account(&self, account: &str, holder: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM account_leases WHERE account = $1 AND holder = $2")
            .bind(account)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn account_lease(&self, account: &str) -> Result<Option<AccountLease>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT account, holder, leased_until, acquired_at FROM account_leases \
             WHERE account = $1 AND leased_until > {DB_NOW_MS}"
        )))
        .bind(account)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| AccountLease {
            account: r.get(0),
            holder: r.get(1),
            leased_until: r.get(2),
            acquired_at: r.get(3),
        }))
    }
}
