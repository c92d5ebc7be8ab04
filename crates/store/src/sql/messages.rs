//! [`MessageStore`] on both databases (tables from `migrations/*/0002_intake.sql`).
//!
//! A batch is one transaction: one durable commit (one fsync on SQLite) makes a whole batch
//! stored, which is what lets intake be both exactly-once and fast. Rows go in as multi-row
//! statements, a round trip per chunk instead of two or three per message. A message whose
//! dedupe key the account already has only gets its server id linked. Two transactions
//! inserting the same dedupe key at once (two PostgreSQL instances that both took in the same
//! account) are serialised by the unique index: the second waits for the first and then sees
//! a duplicate, so a message is never stored twice.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
// Dynamic SQL here only ever adds numbered placeholders and fixed clauses; values are bound.
use sqlx::AssertSqlSafe;

use super::{for_every_backend, no_nul, now, params, value_rows};
use crate::StoreError;
use crate::messages::{
    ACCOUNT_DIR_TRIES, AccountLease, Ack, AttachmentInfo, Claim, Handled, Health, IMPORTS_WITH_DIR,
    ImportEntry, MessageCounts, MessageFilter, MessageStatus, MessageStore, NewMessage, RawMime,
    Recorded, SAME_MESSAGE_ID_AS, StoredMessage, account_dir_candidate,
};

/// Values per `IN (…)` list: far below either database's limit on bound parameters.
const IN_CHUNK: usize = 500;

/// Messages per multi-row INSERT (17 bound values each).
const RECORD_CHUNK: usize = 100;

const MESSAGE_COLUMNS: &str = "id, account, message_id, content_hash, status, reason, handler, \
    from_addr, to_addrs, subject, date, size, attachments, raw_path, received_at, same_message_id_as, \
    handled_at, handled_by, handled_note, raw_purged_at";

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: i64,
    account: String,
    message_id: Option<String>,
    content_hash: String,
    status: String,
    reason: Option<String>,
    handler: String,
    from_addr: Option<String>,
    to_addrs: Option<String>,
    subject: Option<String>,
    date: Option<String>,
    size: i64,
    attachments: String,
    raw_path: Option<String>,
    received_at: String,
    same_message_id_as: Option<i64>,
    handled_at: Option<String>,
    handled_by: Option<String>,
    handled_note: Option<String>,
    raw_purged_at: Option<String>,
}

impl From<MessageRow> for StoredMessage {
    fn from(r: MessageRow) -> StoredMessage {
        StoredMessage {
            id: r.id,
            account: r.account,
            message_id: r.message_id,
            content_hash: r.content_hash,
            // The CHECK constraint allows only the two values.
            status: MessageStatus::parse(&r.status).unwrap_or(MessageStatus::Quarantined),
            reason: r.reason,
            handler: r.handler,
            from: r.from_addr,
            to: r.to_addrs,
            subject: r.subject,
            date: r.date,
            size: r.size as u64,
            attachments: serde_json::from_str::<Vec<AttachmentInfo>>(&r.attachments)
                .unwrap_or_default(),
            raw_path: r.raw_path,
            server_ids: Vec::new(),
            received_at: r.received_at,
            same_message_id_as: r.same_message_id_as,
            handled: r.handled_at.map(|at| Handled {
                at,
                by: r.handled_by.unwrap_or_default(),
                note: r.handled_note.unwrap_or_default(),
            }),
            raw_purged_at: r.raw_purged_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ImportRow {
    id: i64,
    account: String,
    message: i64,
    kind: String,
    file_name: String,
    dir_name: Option<String>,
    content_type: Option<String>,
    size: i64,
    state: String,
    created_at: String,
    claimed_until: Option<i64>,
    acked_at: Option<String>,
}

impl From<ImportRow> for ImportEntry {
    fn from(r: ImportRow) -> ImportEntry {
        ImportEntry {
            id: r.id,
            account: r.account,
            message: r.message,
            kind: r.kind,
            file_name: r.file_name,
            dir: r.dir_name,
            content_type: r.content_type,
            size: r.size as u64,
            state: r.state,
            created_at: r.created_at,
            claimed_until: r.claimed_until,
            acked_at: r.acked_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct HealthRow {
    account: String,
    last_attempt: Option<String>,
    last_success: Option<String>,
    last_error: Option<String>,
    last_error_at: Option<String>,
    failures: i64,
    taken_in_total: i64,
}

impl From<HealthRow> for Health {
    fn from(r: HealthRow) -> Health {
        Health {
            account: r.account,
            last_attempt: r.last_attempt,
            last_success: r.last_success,
            last_error: r.last_error,
            last_error_at: r.last_error_at,
            failures: r.failures as u32,
            taken_in_total: r.taken_in_total as u64,
        }
    }
}

/// A message's text fields made storable on both databases (see [`no_nul`]).
fn storable(mut m: NewMessage) -> NewMessage {
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
    m
}

/// The `(raw, raw_path)` columns of a message.
type RawColumns = (Option<Vec<u8>>, Option<String>);

for_every_backend! {
    impl {
        async fn server_ids_of(&self, id: i64) -> Result<Vec<String>, StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT server_id FROM message_server_ids WHERE message = $1 \
                 ORDER BY seen_at, server_id",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?)
        }

        /// Where a message's bytes go: the file or segment the intake wrote stays where it is
        /// on SQLite (beside the database); PostgreSQL keeps every byte in the database,
        /// because its instances share no disk. Files are read off the async threads.
        async fn raw_columns(&self, raw: RawMime) -> Result<RawColumns, StoreError> {
            match raw {
                RawMime::Inline(bytes) => Ok((Some(bytes), None)),
                other if !DB::RAW_IN_DB => Ok((None, other.to_raw_path())),
                other => {
                    let what = other.to_raw_path().unwrap_or_default();
                    let Some(dir) = self.local_dir().map(|d| d.to_owned()) else {
                        return Err(StoreError::RawMimeUnavailable(format!(
                            "{what} is a file of a data directory this store was not given"
                        )));
                    };
                    let read = tokio::task::spawn_blocking(move || other.read(&dir));
                    let bytes = read
                        .await
                        .map_err(|e| StoreError::RawMimeUnavailable(format!("{what}: {e}")))?
                        .map_err(|e| StoreError::Io {
                            what: format!("read the raw MIME {what}"),
                            source: e,
                        })?;
                    Ok((Some(bytes), None))
                }
            }
        }

        /// Sets `set` (which may use `$1` = `value`) on the import entries `ids` that are in
        /// state `from`, in one transaction, in chunks of [`IN_CHUNK`].
        async fn move_imports(
            &self,
            ids: &[i64],
            from: &str,
            set: &str,
            value: Option<&str>,
        ) -> Result<(), StoreError> {
            let first = if value.is_some() { 2 } else { 1 };
            let mut tx = self.pool.begin().await?;
            for chunk in ids.chunks(IN_CHUNK) {
                let sql = format!(
                    "UPDATE import_queue SET {set} WHERE state = '{from}' AND id IN ({})",
                    params(first, chunk.len())
                );
                let mut q = sqlx::query(AssertSqlSafe(sql));
                if let Some(v) = value {
                    q = q.bind(v);
                }
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        }

        /// The messages `filter` matches (account `$1`, status `$2`), in the order and window
        /// `window` gives with the limit `$3` and `n` as `$4` (an offset, or the id to start
        /// after): one query for the newest-first pages and the oldest-first cursor feed.
        async fn messages_where(
            &self,
            filter: &MessageFilter,
            window: &str,
            n: i64,
        ) -> Result<Vec<StoredMessage>, StoreError> {
            let limit = if filter.limit > 0 { i64::from(filter.limit) } else { i64::MAX };
            let rows: Vec<MessageRow> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages \
                 WHERE (CAST($1 AS TEXT) IS NULL OR account = $1) \
                 AND (CAST($2 AS TEXT) IS NULL OR status = $2) {window}"
            )))
            .bind(filter.account.as_deref())
            .bind(filter.status.map(|s| s.as_str()))
            .bind(limit)
            .bind(n)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(StoredMessage::from).collect())
        }

        /// `SELECT …, $1 …` for values in chunks: `sql` gets the `IN (…)` list of each chunk
        /// (parameters from `$2`, after `first`); the rows of every chunk are collected.
        async fn select_in<T>(
            &self,
            sql: &str,
            first: &str,
            values: &[String],
        ) -> Result<Vec<T>, StoreError>
        where
            T: for<'r> sqlx::FromRow<'r, DB::Row> + Send + Unpin,
        {
            let mut out = Vec::new();
            for chunk in values.chunks(IN_CHUNK) {
                let text = sql.replace("{in}", &params(2, chunk.len()));
                let mut q = sqlx::query_as(AssertSqlSafe(text)).bind(first);
                for v in chunk {
                    q = q.bind(v.as_str());
                }
                out.extend(q.fetch_all(&self.pool).await?);
            }
            Ok(out)
        }
    }
}

for_every_backend! {
    #[async_trait]
    impl MessageStore {
        fn keeps_raw_bytes(&self) -> bool {
            DB::RAW_IN_DB
        }

        async fn known_server_ids(
            &self,
            account: &str,
            server_ids: &[String],
        ) -> Result<HashSet<String>, StoreError> {
            let rows: Vec<(String,)> = self
                .select_in(
                    "SELECT server_id FROM message_server_ids WHERE account = $1 AND server_id IN ({in})",
                    account,
                    server_ids,
                )
                .await?;
            Ok(rows.into_iter().map(|(id,)| id).collect())
        }

        async fn record_batch(
            &self,
            account: &str,
            batch: Vec<NewMessage>,
        ) -> Result<Vec<Recorded>, StoreError> {
            let at = now();
            let mut batch: Vec<NewMessage> = batch.into_iter().map(storable).collect();
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
            // before the write transaction begins: on SQLite a deferred transaction that reads
            // and then writes must upgrade its lock, and SQLite answers such an upgrade with
            // SQLITE_BUSY at once (no busy wait) while the mover's connection writes. One
            // process records an account at a time (the account lease), so nothing adds this
            // content in between; the same key at once is caught by the unique index below.
            let hashes: Vec<String> = candidates
                .iter()
                .map(|&i| batch[i].content_hash.clone())
                .collect();
            let known: HashMap<String, i64> = self
                .select_in::<(Option<i64>, String)>(
                    "SELECT MIN(id), content_hash FROM messages WHERE account = $1 \
                     AND content_hash IN ({in}) GROUP BY content_hash",
                    account,
                    &hashes,
                )
                .await?
                .into_iter()
                .filter_map(|(id, hash)| Some((hash, id?)))
                .collect();
            candidates.retain(|&i| match known.get(&batch[i].content_hash) {
                Some(&id) => {
                    out[i] = Some(Recorded::Duplicate { id });
                    false
                }
                None => true,
            });
            // Rows are inserted in dedupe-key order: two PostgreSQL instances recording
            // overlapping batches then take the unique-index locks in the same order and wait
            // for each other instead of deadlocking.
            candidates.sort_by(|&a, &b| batch[a].dedupe_key.cmp(&batch[b].dedupe_key));
            // Bytes are read (PostgreSQL) before the transaction starts, so it is not held
            // open during file I/O.
            let started = std::time::Instant::now();
            let mut raws: HashMap<usize, RawColumns> = HashMap::with_capacity(candidates.len());
            for &i in &candidates {
                let raw = std::mem::replace(&mut batch[i].raw, RawMime::Inline(Vec::new()));
                raws.insert(i, self.raw_columns(raw).await?);
            }
            let read = started.elapsed();
            let mut tx = self.pool.begin().await?;
            let mut existing = Vec::new();
            for chunk in candidates.chunks(RECORD_CHUNK) {
                let sql = format!(
                    "INSERT INTO messages (account, dedupe_key, message_id, content_hash, status, \
                     reason, handler, from_addr, to_addrs, subject, date, size, attachments, raw, \
                     raw_path, first_server_id, received_at) VALUES {} \
                     ON CONFLICT (account, dedupe_key) DO NOTHING RETURNING id, dedupe_key",
                    value_rows(1, chunk.len(), 17)
                );
                let mut q = sqlx::query_as::<DB, (i64, String)>(AssertSqlSafe(sql));
                for &i in chunk {
                    let m = &batch[i];
                    let (raw, raw_path) = raws.remove(&i).expect("read above");
                    let attachments =
                        serde_json::to_string(&m.attachments).unwrap_or_else(|_| "[]".to_owned());
                    q = q
                        .bind(account)
                        .bind(m.dedupe_key.as_str())
                        .bind(m.message_id.as_deref())
                        .bind(m.content_hash.as_str())
                        .bind(m.status.as_str())
                        .bind(m.reason.as_deref())
                        .bind(m.handler.as_str())
                        .bind(m.from.as_deref())
                        .bind(m.to.as_deref())
                        .bind(m.subject.as_deref())
                        .bind(m.date.as_deref())
                        .bind(m.size as i64)
                        .bind(attachments)
                        .bind(raw)
                        .bind(raw_path)
                        .bind(m.server_id.as_str())
                        .bind(at.as_str());
                }
                let inserted: HashMap<String, i64> = q
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|(id, key)| (key, id))
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
                    "SELECT id, dedupe_key FROM messages WHERE account = $1 AND dedupe_key IN ({})",
                    params(2, chunk.len())
                );
                let mut q = sqlx::query_as::<DB, (i64, String)>(AssertSqlSafe(sql)).bind(account);
                for &i in chunk {
                    q = q.bind(batch[i].dedupe_key.as_str());
                }
                let found: HashMap<String, i64> = q
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|(id, key)| (key, id))
                    .collect();
                for &i in chunk {
                    let id = *found
                        .get(&batch[i].dedupe_key)
                        .ok_or(StoreError::Db(sqlx::Error::RowNotFound))?;
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
                let sql = format!("{SAME_MESSAGE_ID_AS} AND id IN ({})", params(1, chunk.len()));
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(&mut *tx).await?;
            }
            for (m, r) in batch.iter().zip(&out) {
                let Recorded::New { id } = r else { continue };
                for imp in &m.imports {
                    sqlx::query(
                        "INSERT INTO import_queue (account, message, kind, file_name, content_type, \
                         size, state, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'staged', $7) \
                         ON CONFLICT (account, file_name) DO NOTHING",
                    )
                    .bind(account)
                    .bind(*id)
                    .bind(imp.kind.as_str())
                    .bind(imp.file_name.as_str())
                    .bind(imp.content_type.as_deref())
                    .bind(imp.size as i64)
                    .bind(at.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
            }
            let pairs: Vec<(&NewMessage, &Recorded)> = batch.iter().zip(&out).collect();
            for chunk in pairs.chunks(IN_CHUNK) {
                let rows = (0..chunk.len())
                    .map(|r| format!("(${}, ${}, ${}, 'stored', ${})", 4 * r + 1, 4 * r + 2, 4 * r + 3, 4 * r + 4))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "INSERT INTO message_server_ids (account, server_id, message, state, seen_at) \
                     VALUES {rows} ON CONFLICT (account, server_id) DO NOTHING"
                );
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for (m, r) in chunk {
                    q = q
                        .bind(account)
                        .bind(m.server_id.as_str())
                        .bind(r.id())
                        .bind(at.as_str());
                }
                q.execute(&mut *tx).await?;
            }
            let written = started.elapsed();
            tx.commit().await?;
            // Where a batch's time goes (bench-intake with KURIR_LOG=kurir_store=debug).
            tracing::debug!(
                backend = DB::KIND,
                messages = out.len(),
                read_ms = read.as_millis() as u64,
                write_ms = (written - read).as_millis() as u64,
                commit_ms = (started.elapsed() - written).as_millis() as u64,
                "batch recorded"
            );
            Ok(out)
        }

        async fn mark_done(&self, account: &str, server_ids: &[String]) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            for chunk in server_ids.chunks(IN_CHUNK) {
                let sql = format!(
                    "UPDATE message_server_ids SET state = 'done' WHERE account = $1 \
                     AND server_id IN ({})",
                    params(2, chunk.len())
                );
                let mut q = sqlx::query(AssertSqlSafe(sql)).bind(account);
                for id in chunk {
                    q = q.bind(id.as_str());
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        }

        async fn pending_server_ids(&self, account: &str) -> Result<Vec<String>, StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT server_id FROM message_server_ids WHERE account = $1 AND state = 'stored'",
            )
            .bind(account)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn status_of_server_ids(
            &self,
            account: &str,
            server_ids: &[String],
        ) -> Result<Vec<(String, MessageStatus)>, StoreError> {
            let rows: Vec<(String, String)> = self
                .select_in(
                    "SELECT s.server_id, m.status FROM message_server_ids s \
                     JOIN messages m ON m.id = s.message \
                     WHERE s.account = $1 AND s.server_id IN ({in})",
                    account,
                    server_ids,
                )
                .await?;
            Ok(rows
                .into_iter()
                .map(|(id, status)| {
                    (id, MessageStatus::parse(&status).unwrap_or(MessageStatus::Quarantined))
                })
                .collect())
        }

        async fn staged_imports(&self, account: &str) -> Result<Vec<ImportEntry>, StoreError> {
            let rows: Vec<ImportRow> = sqlx::query_as(AssertSqlSafe(format!(
                "{IMPORTS_WITH_DIR} WHERE q.account = $1 AND q.state = 'staged' ORDER BY q.id"
            )))
            .bind(account)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(ImportEntry::from).collect())
        }

        async fn mark_imports_ready(&self, ids: &[i64]) -> Result<(), StoreError> {
            self.move_imports(ids, "staged", "state = 'ready'", None).await
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
            self.messages_where(filter, "ORDER BY id DESC LIMIT $3 OFFSET $4", i64::from(offset))
                .await
        }

        async fn counts_since(
            &self,
            since: &str,
        ) -> Result<BTreeMap<(String, String), u64>, StoreError> {
            // RFC 3339 UTC text from `now()` compares in time order (to the second).
            let rows: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT account, status, COUNT(*) FROM messages WHERE received_at >= $1 \
                 GROUP BY account, status",
            )
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(account, status, n)| ((account, status), n as u64))
                .collect())
        }

        async fn message(&self, id: i64) -> Result<Option<StoredMessage>, StoreError> {
            let row: Option<MessageRow> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let mut m = StoredMessage::from(row);
            m.server_ids = self.server_ids_of(id).await?;
            Ok(Some(m))
        }

        async fn raw_message(&self, id: i64) -> Result<Option<RawMime>, StoreError> {
            // A message whose raw MIME retention removed has none any more.
            let row: Option<RawColumns> = sqlx::query_as(
                "SELECT raw, raw_path FROM messages WHERE id = $1 AND raw_purged_at IS NULL",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.and_then(|(raw, path)| {
                raw.map(RawMime::Inline)
                    .or(path.map(|p| RawMime::from_raw_path(&p)))
            }))
        }

        async fn count_messages(&self, account: &str) -> Result<MessageCounts, StoreError> {
            let (stored, quarantined, pending): (i64, i64, i64) = sqlx::query_as(
                "SELECT COUNT(*) FILTER (WHERE status = 'stored'), \
                 COUNT(*) FILTER (WHERE status = 'quarantined'), \
                 (SELECT COUNT(*) FROM message_server_ids WHERE account = $1 AND state = 'stored') \
                 FROM messages WHERE account = $1",
            )
            .bind(account)
            .fetch_one(&self.pool)
            .await?;
            Ok(MessageCounts {
                stored: stored as u64,
                quarantined: quarantined as u64,
                pending_server_steps: pending as u64,
            })
        }

        async fn list_imports(&self, account: Option<&str>) -> Result<Vec<ImportEntry>, StoreError> {
            let rows: Vec<ImportRow> = sqlx::query_as(AssertSqlSafe(format!(
                "{IMPORTS_WITH_DIR} WHERE (CAST($1 AS TEXT) IS NULL OR q.account = $1) ORDER BY q.id"
            )))
            .bind(account)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(ImportEntry::from).collect())
        }

        async fn imports_after(
            &self,
            account: Option<&str>,
            after: i64,
            limit: u32,
            pending: bool,
        ) -> Result<Vec<ImportEntry>, StoreError> {
            let rows: Vec<ImportRow> = sqlx::query_as(AssertSqlSafe(format!(
                "{IMPORTS_WITH_DIR} WHERE (CAST($1 AS TEXT) IS NULL OR q.account = $1) \
                 AND q.id > $2 AND q.state <> 'staged' \
                 AND ($3 = 0 OR (q.state = 'ready' \
                      AND (q.claimed_until IS NULL OR q.claimed_until < {}))) \
                 ORDER BY q.id LIMIT $4",
                DB::NOW_MS
            )))
            .bind(account)
            .bind(after)
            .bind(i64::from(pending))
            .bind(i64::from(limit.max(1)))
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(ImportEntry::from).collect())
        }

        async fn messages_after(
            &self,
            filter: &MessageFilter,
            after: i64,
        ) -> Result<Vec<StoredMessage>, StoreError> {
            self.messages_where(filter, "AND id > $4 ORDER BY id LIMIT $3", after)
                .await
        }

        async fn claim_import(&self, id: i64, token: &str, ttl_ms: i64) -> Result<Claim, StoreError> {
            // One statement: of two consumers claiming at once, one updates the row.
            let claimed: Option<(i64,)> = sqlx::query_as(AssertSqlSafe(format!(
                "UPDATE import_queue SET claim_token = $2, claimed_until = {now} + $3 \
                 WHERE id = $1 AND state = 'ready' \
                 AND (claimed_until IS NULL OR claimed_until < {now} OR claim_token = $2) \
                 RETURNING claimed_until",
                now = DB::NOW_MS
            )))
            .bind(id)
            .bind(token)
            .bind(ttl_ms)
            .fetch_optional(&self.pool)
            .await?;
            if let Some((until,)) = claimed {
                return Ok(Claim::Claimed { until });
            }
            let row: Option<(String, Option<i64>)> =
                sqlx::query_as("SELECT state, claimed_until FROM import_queue WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
            Ok(match row {
                None => Claim::NotFound,
                Some((state, _)) if state == "picked_up" => Claim::Acked,
                Some((state, _)) if state == "staged" => Claim::NotReady,
                Some((_, until)) => Claim::ClaimedByOther {
                    until: until.unwrap_or_default(),
                },
            })
        }

        async fn ack_removed_imports(&self, ids: &[i64]) -> Result<(), StoreError> {
            let at = now();
            self.move_imports(ids, "ready", "state = 'picked_up', acked_at = $1", Some(&at))
                .await
        }

        async fn ack_import(&self, id: i64, token: &str) -> Result<Ack, StoreError> {
            let done = sqlx::query(AssertSqlSafe(format!(
                "UPDATE import_queue SET state = 'picked_up', acked_at = $3 \
                 WHERE id = $1 AND state = 'ready' AND claim_token = $2 \
                 AND claimed_until >= {}",
                DB::NOW_MS
            )))
            .bind(id)
            .bind(token)
            .bind(now())
            .execute(&self.pool)
            .await?;
            if DB::rows_affected(&done) == 1 {
                return Ok(Ack::Acked);
            }
            let row: Option<(String, Option<String>)> =
                sqlx::query_as("SELECT state, claim_token FROM import_queue WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
            Ok(match row {
                None => Ack::NotFound,
                Some((state, held)) if state == "picked_up" && held.as_deref() == Some(token) => {
                    Ack::AlreadyAcked
                }
                Some(_) => Ack::NotClaimed,
            })
        }

        async fn health(&self, account: Option<&str>) -> Result<Vec<Health>, StoreError> {
            let rows: Vec<HealthRow> = sqlx::query_as(
                "SELECT account, last_attempt, last_success, last_error, last_error_at, failures, \
                 taken_in_total FROM intake_health \
                 WHERE (CAST($1 AS TEXT) IS NULL OR account = $1) ORDER BY account",
            )
            .bind(account)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(Health::from).collect())
        }

        async fn record_pass(
            &self,
            account: &str,
            outcome: Result<u64, String>,
        ) -> Result<(), StoreError> {
            let at = now();
            let q = match outcome {
                Ok(n) => sqlx::query(
                    "INSERT INTO intake_health (account, last_attempt, last_success, failures, \
                     taken_in_total) VALUES ($1, $2, $2, 0, $3) ON CONFLICT (account) DO UPDATE SET \
                     last_attempt = excluded.last_attempt, last_success = excluded.last_success, \
                     failures = 0, \
                     taken_in_total = intake_health.taken_in_total + excluded.taken_in_total",
                )
                .bind(account)
                .bind(at)
                .bind(n as i64),
                Err(text) => sqlx::query(
                    "INSERT INTO intake_health (account, last_attempt, last_error, last_error_at, \
                     failures) VALUES ($1, $2, $3, $2, 1) ON CONFLICT (account) DO UPDATE SET \
                     last_attempt = excluded.last_attempt, last_error = excluded.last_error, \
                     last_error_at = excluded.last_error_at, failures = intake_health.failures + 1",
                )
                .bind(account)
                .bind(at)
                .bind(no_nul(text)),
            };
            q.execute(&self.pool).await?;
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
            // transaction and then evaluates the WHERE against the row it committed. The
            // lease runs by the database's clock, which every instance shares.
            let r = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO account_leases (account, holder, leased_until, acquired_at) \
                 VALUES ($1, $2, {now} + $3, $4) ON CONFLICT (account) DO UPDATE SET \
                 acquired_at = CASE WHEN account_leases.holder = excluded.holder \
                   THEN account_leases.acquired_at ELSE excluded.acquired_at END, \
                 holder = excluded.holder, leased_until = excluded.leased_until \
                 WHERE account_leases.holder = excluded.holder \
                   OR account_leases.leased_until <= {now}",
                now = DB::NOW_MS
            )))
            .bind(account)
            .bind(holder)
            .bind(ttl_ms)
            .bind(now())
            .execute(&self.pool)
            .await?;
            Ok(DB::rows_affected(&r) == 1)
        }

        async fn account_dir(&self, account: &str, wanted: &str) -> Result<String, StoreError> {
            let recorded = || async {
                Ok::<Option<String>, StoreError>(
                    sqlx::query_scalar("SELECT dir_name FROM account_dirs WHERE account = $1")
                        .bind(account)
                        .fetch_optional(&self.pool)
                        .await?,
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
                .bind(dir.as_str())
                .bind(dir.to_lowercase())
                .execute(&self.pool)
                .await?;
                if DB::rows_affected(&r) == 1 {
                    return Ok(dir);
                }
                // Taken by another account, or this account got one meanwhile (another process).
                if let Some(dir) = recorded().await? {
                    return Ok(dir);
                }
            }
            Err(StoreError::NoAccountDir(account.to_owned(), ACCOUNT_DIR_TRIES))
        }

        async fn release_account(&self, account: &str, holder: &str) -> Result<bool, StoreError> {
            let r = sqlx::query("DELETE FROM account_leases WHERE account = $1 AND holder = $2")
                .bind(account)
                .bind(holder)
                .execute(&self.pool)
                .await?;
            Ok(DB::rows_affected(&r) == 1)
        }

        async fn account_lease(&self, account: &str) -> Result<Option<AccountLease>, StoreError> {
            let row: Option<(String, String, i64, String)> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT account, holder, leased_until, acquired_at FROM account_leases \
                 WHERE account = $1 AND leased_until > {}",
                DB::NOW_MS
            )))
            .bind(account)
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.map(|(account, holder, leased_until, acquired_at)| AccountLease {
                account,
                holder,
                leased_until,
                acquired_at,
            }))
        }
    }
}
