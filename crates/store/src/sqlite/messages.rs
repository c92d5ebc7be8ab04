//! [`MessageStore`] on SQLite (tables from `migrations/sqlite/0002_intake.sql`).
//!
//! A batch is one transaction, and the database runs with `synchronous = FULL` in WAL mode: one
//! fsync makes a whole batch durable, which is what lets intake be both exactly-once and fast.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
// Dynamic SQL here only ever adds `?` placeholders and fixed clauses; values are bound.
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row};

use super::{SqliteStore, now};
use crate::StoreError;
use crate::messages::{
    ACCOUNT_DIR_TRIES, AccountLease, AttachmentInfo, Health, ImportEntry, MessageCounts,
    MessageFilter, MessageStatus, MessageStore, NewMessage, RawMime, Recorded, StoredMessage,
    account_dir_candidate,
};
use crate::messages::{IMPORTS_WITH_DIR, SAME_MESSAGE_ID_AS};

/// SQLite's default limit on bound parameters is far above this; chunks keep `IN (…)` lists sane.
const IN_CHUNK: usize = 500;

/// Messages per multi-row INSERT (17 bound values each).
const RECORD_CHUNK: usize = 100;

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

const MESSAGE_COLUMNS: &str = "id, account, message_id, content_hash, status, reason, handler, \
    from_addr, to_addrs, subject, date, size, attachments, raw_path, received_at, same_message_id_as";

fn message_from_row(row: &SqliteRow) -> StoredMessage {
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
        raw_path: row.get("raw_path"),
        server_ids: Vec::new(),
        received_at: row.get("received_at"),
        same_message_id_as: row.get("same_message_id_as"),
    }
}

fn import_from_row(row: &SqliteRow) -> ImportEntry {
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

impl SqliteStore {
    async fn server_ids_of(&self, id: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT server_id FROM message_server_ids WHERE message = ? ORDER BY seen_at, server_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn known_server_ids(
        &self,
        account: &str,
        server_ids: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        let mut known = HashSet::new();
        for chunk in server_ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT server_id FROM message_server_ids WHERE account = ? AND server_id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(account);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.pool).await? {
                known.insert(row.get(0));
            }
        }
        Ok(known)
    }

    async fn record_batch(
        &self,
        account: &str,
        mut batch: Vec<NewMessage>,
    ) -> Result<Vec<Recorded>, StoreError> {
        // Rows go in as multi-row statements: one round trip to SQLite's worker thread per
        // chunk instead of two or three per message, which was most of a batch's store time.
        let at = now();
        let mut out: Vec<Option<Recorded>> = vec![None; batch.len()];
        // A key seen earlier in this batch is a duplicate of that message, never inserted.
        let mut first_of: HashMap<String, usize> = HashMap::new();
        let mut candidates = Vec::new();
        let mut repeats = Vec::new();
        for (i, m) in batch.iter().enumerate() {
            match first_of.get(&m.dedupe_key) {
                Some(&first) => repeats.push((i, first)),
                None => {
                    first_of.insert(m.dedupe_key.clone(), i);
                    candidates.push(i);
                }
            }
        }
        // The same content the account already has, under whatever key format its row was
        // recorded: a duplicate of that row (the earliest, should there be several). Read
        // before the write transaction begins: a deferred transaction that reads and then
        // writes must upgrade its lock, and SQLite answers such an upgrade with SQLITE_BUSY at
        // once (no busy wait) while the mover's connection writes. One process records an
        // account at a time (the account lock), so nothing can add this content in between.
        let mut known: HashMap<String, i64> = HashMap::new();
        for chunk in candidates.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT MIN(id), content_hash FROM messages WHERE account = ? AND content_hash IN ({}) \
                 GROUP BY content_hash",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(account);
            for &i in chunk {
                q = q.bind(&batch[i].content_hash);
            }
            for r in q.fetch_all(&self.pool).await? {
                known.insert(r.get::<String, _>(1), r.get::<i64, _>(0));
            }
        }
        candidates.retain(|&i| match known.get(&batch[i].content_hash) {
            Some(&id) => {
                out[i] = Some(Recorded::Duplicate { id });
                false
            }
            None => true,
        });
        let mut tx = self.pool.begin().await?;
        let mut existing = Vec::new();
        for chunk in candidates.chunks(RECORD_CHUNK) {
            let sql = format!(
                "INSERT INTO messages (account, dedupe_key, message_id, content_hash, status, reason, handler, \
                 from_addr, to_addrs, subject, date, size, attachments, raw, raw_path, first_server_id, received_at) \
                 VALUES {} ON CONFLICT (account, dedupe_key) DO NOTHING RETURNING id, dedupe_key",
                vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
            );
            let mut raws: Vec<(Option<Vec<u8>>, Option<String>, String)> = chunk
                .iter()
                .map(|&i| {
                    let m = &mut batch[i];
                    let raw = std::mem::replace(&mut m.raw, RawMime::Inline(Vec::new()));
                    let attachments =
                        serde_json::to_string(&m.attachments).unwrap_or_else(|_| "[]".to_owned());
                    match raw {
                        RawMime::Inline(bytes) => (Some(bytes), None, attachments),
                        other => (None, other.to_raw_path(), attachments),
                    }
                })
                .collect();
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (&i, (raw, raw_path, attachments)) in chunk.iter().zip(raws.iter_mut()) {
                let m = &batch[i];
                q = q
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
                    .bind(std::mem::take(attachments))
                    .bind(raw.take())
                    .bind(raw_path.take())
                    .bind(&m.server_id)
                    .bind(&at);
            }
            let inserted: HashMap<String, i64> = q
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| (r.get::<String, _>(1), r.get::<i64, _>(0)))
                .collect();
            for &i in chunk {
                match inserted.get(&batch[i].dedupe_key) {
                    Some(&id) => out[i] = Some(Recorded::New { id }),
                    None => existing.push(i),
                }
            }
        }
        // Keys the account already had: duplicates of those rows.
        for chunk in existing.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT id, dedupe_key FROM messages WHERE account = ? AND dedupe_key IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(account);
            for &i in chunk {
                q = q.bind(&batch[i].dedupe_key);
            }
            let found: HashMap<String, i64> = q
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| (r.get::<String, _>(1), r.get::<i64, _>(0)))
                .collect();
            for &i in chunk {
                let id = *found
                    .get(&batch[i].dedupe_key)
                    .ok_or_else(|| StoreError::Db(sqlx::Error::RowNotFound))?;
                out[i] = Some(Recorded::Duplicate { id });
            }
        }
        for (i, first) in repeats {
            let id = out[first].expect("recorded above").id();
            out[i] = Some(Recorded::Duplicate { id });
        }
        let out: Vec<Recorded> = out
            .into_iter()
            .map(|r| r.expect("every message recorded"))
            .collect();
        let new_ids: Vec<i64> = batch
            .iter()
            .zip(&out)
            .filter(|(m, r)| m.message_id.is_some() && matches!(r, Recorded::New { .. }))
            .map(|(_, r)| r.id())
            .collect();
        for chunk in new_ids.chunks(IN_CHUNK) {
            let sql = format!(
                "{SAME_MESSAGE_ID_AS} AND id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(&mut *tx).await?;
        }
        for (m, r) in batch.iter().zip(&out) {
            if let Recorded::New { id } = r {
                for imp in &m.imports {
                    sqlx::query(
                        "INSERT INTO import_queue (account, message, kind, file_name, content_type, size, state, created_at) \
                         VALUES (?, ?, ?, ?, ?, ?, 'staged', ?) ON CONFLICT (account, file_name) DO NOTHING",
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
            }
        }
        let pairs: Vec<(&NewMessage, &Recorded)> = batch.iter().zip(&out).collect();
        for chunk in pairs.chunks(IN_CHUNK) {
            let sql = format!(
                "INSERT INTO message_server_ids (account, server_id, message, state, seen_at) \
                 VALUES {} ON CONFLICT (account, server_id) DO NOTHING",
                vec!["(?, ?, ?, 'stored', ?)"; chunk.len()].join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (m, r) in chunk {
                q = q.bind(account).bind(&m.server_id).bind(r.id()).bind(&at);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn mark_done(&self, account: &str, server_ids: &[String]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for chunk in server_ids.chunks(IN_CHUNK) {
            let sql = format!(
                "UPDATE message_server_ids SET state = 'done' WHERE account = ? AND server_id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(account);
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn pending_server_ids(&self, account: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT server_id FROM message_server_ids WHERE account = ? AND state = 'stored'",
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
        let mut out = Vec::new();
        for chunk in server_ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT s.server_id, m.status FROM message_server_ids s JOIN messages m ON m.id = s.message \
                 WHERE s.account = ? AND s.server_id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(account);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.pool).await? {
                let status: String = row.get(1);
                out.push((
                    row.get(0),
                    MessageStatus::parse(&status).unwrap_or(MessageStatus::Quarantined),
                ));
            }
        }
        Ok(out)
    }

    async fn staged_imports(&self, account: &str) -> Result<Vec<ImportEntry>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{IMPORTS_WITH_DIR} WHERE q.account = ? AND q.state = 'staged' ORDER BY q.id"
        )))
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(import_from_row).collect())
    }

    async fn mark_imports_ready(&self, ids: &[i64]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = format!(
                "UPDATE import_queue SET state = 'ready' WHERE state = 'staged' AND id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
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
        let mut sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE 1 = 1");
        if filter.account.is_some() {
            sql.push_str(" AND account = ?");
        }
        if filter.status.is_some() {
            sql.push_str(" AND status = ?");
        }
        sql.push_str(" ORDER BY id DESC");
        if filter.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", filter.limit));
        } else if offset > 0 {
            sql.push_str(" LIMIT -1");
        }
        if offset > 0 {
            sql.push_str(&format!(" OFFSET {offset}"));
        }
        let mut q = sqlx::query(AssertSqlSafe(sql));
        if let Some(a) = &filter.account {
            q = q.bind(a);
        }
        if let Some(s) = filter.status {
            q = q.bind(s.as_str());
        }
        Ok(q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(message_from_row)
            .collect())
    }

    async fn counts_since(
        &self,
        since: &str,
    ) -> Result<BTreeMap<(String, String), u64>, StoreError> {
        // RFC 3339 UTC text from `now()` compares in time order (to the second).
        let rows = sqlx::query(
            "SELECT account, status, COUNT(*) FROM messages WHERE received_at >= ? \
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
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?"
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
        let row = sqlx::query("SELECT raw, raw_path FROM messages WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|r| {
            let raw: Option<Vec<u8>> = r.get(0);
            let path: Option<String> = r.get(1);
            raw.map(RawMime::Inline)
                .or(path.map(|p| RawMime::from_raw_path(&p)))
        }))
    }

    async fn count_messages(&self, account: &str) -> Result<MessageCounts, StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(status = 'stored'), 0), COALESCE(SUM(status = 'quarantined'), 0) \
             FROM messages WHERE account = ?",
        )
        .bind(account)
        .fetch_one(&self.pool)
        .await?;
        let pending = sqlx::query(
            "SELECT COUNT(*) FROM message_server_ids WHERE account = ? AND state = 'stored'",
        )
        .bind(account)
        .fetch_one(&self.pool)
        .await?;
        Ok(MessageCounts {
            stored: row.get::<i64, _>(0) as u64,
            quarantined: row.get::<i64, _>(1) as u64,
            pending_server_steps: pending.get::<i64, _>(0) as u64,
        })
    }

    async fn list_imports(&self, account: Option<&str>) -> Result<Vec<ImportEntry>, StoreError> {
        let rows = match account {
            Some(a) => {
                sqlx::query(AssertSqlSafe(format!(
                    "{IMPORTS_WITH_DIR} WHERE q.account = ? ORDER BY q.id"
                )))
                .bind(a)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(AssertSqlSafe(format!("{IMPORTS_WITH_DIR} ORDER BY q.id")))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows.iter().map(import_from_row).collect())
    }

    async fn health(&self, account: Option<&str>) -> Result<Vec<Health>, StoreError> {
        let rows = match account {
            Some(a) => {
                sqlx::query("SELECT * FROM intake_health WHERE account = ?")
                    .bind(a)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM intake_health ORDER BY account")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
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
                     VALUES (?, ?, ?, 0, ?) ON CONFLICT (account) DO UPDATE SET \
                     last_attempt = excluded.last_attempt, last_success = excluded.last_success, \
                     failures = 0, taken_in_total = taken_in_total + excluded.taken_in_total",
                )
                .bind(account)
                .bind(&at)
                .bind(&at)
                .bind(n as i64)
                .execute(&self.pool)
                .await?;
            }
            Err(text) => {
                sqlx::query(
                    "INSERT INTO intake_health (account, last_attempt, last_error, last_error_at, failures) \
                     VALUES (?, ?, ?, ?, 1) ON CONFLICT (account) DO UPDATE SET \
                     last_attempt = excluded.last_attempt, last_error = excluded.last_error, \
                     last_error_at = excluded.last_error_at, failures = failures + 1",
                )
                .bind(account)
                .bind(&at)
                .bind(text)
                .bind(&at)
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
        let now_ms = crate::outbox::now_ms();
        let until = now_ms.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64);
        // One statement: the row is taken over only when it is this holder's or has expired.
        let r = sqlx::query(
            "INSERT INTO account_leases (account, holder, leased_until, acquired_at) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account) DO UPDATE SET \
             acquired_at = CASE WHEN account_leases.holder = excluded.holder \
               THEN account_leases.acquired_at ELSE excluded.acquired_at END, \
             holder = excluded.holder, leased_until = excluded.leased_until \
             WHERE account_leases.holder = excluded.holder OR account_leases.leased_until <= ?5",
        )
        .bind(account)
        .bind(holder)
        .bind(until)
        .bind(now())
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn account_dir(&self, account: &str, wanted: &str) -> Result<String, StoreError> {
        let recorded = || async {
            Ok::<_, StoreError>(
                sqlx::query("SELECT dir_name FROM account_dirs WHERE account = ?")
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
            let dir = account_dir_candidate(wanted, n);
            let r = sqlx::query(
                "INSERT INTO account_dirs (account, dir_name, dir_key) VALUES (?, ?, ?) \
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
            // Taken by another account, or this account got one meanwhile (another process).
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
        let r = sqlx::query("DELETE FROM account_leases WHERE account = ? AND holder = ?")
            .bind(account)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn account_lease(&self, account: &str) -> Result<Option<AccountLease>, StoreError> {
        let row = sqlx::query(
            "SELECT account, holder, leased_until, acquired_at FROM account_leases \
             WHERE account = ? AND leased_until > ?",
        )
        .bind(account)
        .bind(crate::outbox::now_ms())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{KeyOrigin, MasterKey};

    fn msg(n: u32, status: MessageStatus) -> NewMessage {
        NewMessage {
            server_id: format!("graph:{n}"),
            dedupe_key: format!("mid:{n}@test"),
            message_id: Some(format!("{n}@test")),
            content_hash: format!("{n:064}"),
            status,
            reason: (status == MessageStatus::Quarantined).then(|| "no XML".to_owned()),
            handler: "general".into(),
            from: Some("a@b.test".into()),
            to: None,
            subject: Some(format!("m{n}")),
            date: None,
            size: 10,
            attachments: Vec::new(),
            raw: RawMime::Inline(b"Subject: x\r\n\r\nx".to_vec()),
            imports: Vec::new(),
        }
    }

    #[tokio::test]
    async fn pages_and_counts_since() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::from_bytes(&[7; 32], KeyOrigin::Explicit);
        let s = SqliteStore::open_with_key(&dir.path().join("kurir.db"), key)
            .await
            .unwrap();
        let batch = (1..=5)
            .map(|n| {
                msg(
                    n,
                    if n == 3 {
                        MessageStatus::Quarantined
                    } else {
                        MessageStatus::Stored
                    },
                )
            })
            .collect();
        s.record_batch("M2M", batch).await.unwrap();
        s.record_batch("Other", vec![msg(9, MessageStatus::Stored)])
            .await
            .unwrap();
        let f = MessageFilter {
            account: Some("M2M".into()),
            limit: 2,
            ..Default::default()
        };
        let subjects = |v: Vec<StoredMessage>| {
            v.into_iter()
                .map(|m| m.subject.unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            subjects(s.list_messages_page(&f, 0).await.unwrap()),
            ["m5", "m4"]
        );
        assert_eq!(
            subjects(s.list_messages_page(&f, 2).await.unwrap()),
            ["m3", "m2"]
        );
        assert_eq!(subjects(s.list_messages_page(&f, 4).await.unwrap()), ["m1"]);
        let all = MessageFilter::default();
        assert_eq!(s.list_messages_page(&all, 5).await.unwrap().len(), 1);

        let counts = s.counts_since("2000-01-01T00:00:00Z").await.unwrap();
        assert_eq!(counts[&("M2M".to_owned(), "stored".to_owned())], 4);
        assert_eq!(counts[&("M2M".to_owned(), "quarantined".to_owned())], 1);
        assert_eq!(counts[&("Other".to_owned(), "stored".to_owned())], 1);
        assert!(
            s.counts_since("2999-01-01T00:00:00Z")
                .await
                .unwrap()
                .is_empty()
        );
    }
}
