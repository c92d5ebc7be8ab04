//! [`LifecycleStore`] on both databases (tables from `migrations/*/00{08,09}_lifecycle.sql`).
//!
//! The purge works in chunks of [`PURGE_CHUNK`] rows, one short transaction each, so it never
//! holds a lock (SQLite has one writer) for long while intake and the outbox go on, and never
//! loads more than a chunk into memory. Files go only after the rows that pointed at them have
//! committed, and only when no other row points at them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sqlx::AssertSqlSafe;

use super::{for_every_backend, now, params};
use crate::StoreError;
use crate::lifecycle::{
    ActionRefused, AuditEntry, LifecycleStore, NotifiedAlarm, OutboxUse, PurgeReport, Reprocessed,
    Retention, StorageUse,
};
use crate::messages::{MessageStatus, RawMime};

/// Rows per purge transaction.
const PURGE_CHUNK: i64 = 500;

/// A message whose raw MIME retention may remove (besides its age): it is processed (stored, or
/// quarantined and handled by an administrator), its server-side step is done, and the ERP has
/// acknowledged every document it gave (`m` is the message row).
const RAW_PURGEABLE: &str = "(m.status = 'stored' OR m.handled_at IS NOT NULL) \
    AND NOT EXISTS (SELECT 1 FROM message_server_ids s WHERE s.message = m.id AND s.state = 'stored') \
    AND NOT EXISTS (SELECT 1 FROM import_queue q WHERE q.message = m.id AND q.state <> 'picked_up')";

/// RFC 3339 of now minus `d` (the stored times are RFC 3339 UTC text, which sorts by time).
fn cutoff(d: std::time::Duration) -> String {
    let at = time::OffsetDateTime::now_utc()
        - time::Duration::try_from(d).unwrap_or(time::Duration::days(36_500));
    at.format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formatting")
}

/// The file a `raw_path` value lives in (a segment's byte range is `path#offset+len`).
fn file_of(raw_path: &str) -> String {
    match RawMime::from_raw_path(raw_path) {
        RawMime::Segment { path, .. } | RawMime::File(path) => path,
        RawMime::Inline(_) => String::new(),
    }
}

/// Removes a file of the data directory; a file already gone is fine.
fn remove(dir: &Path, rel: &str) -> bool {
    let path: PathBuf = dir.join(rel);
    match std::fs::remove_file(&path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "retention could not remove a file; it is tried again at the next purge");
            false
        }
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: String,
    actor: String,
    action: String,
    subject: String,
    detail: Option<String>,
}

for_every_backend! {
    impl {
        async fn audit_in(
            tx: &mut sqlx::Transaction<'_, DB>,
            actor: &str,
            action: &str,
            subject: &str,
            detail: Option<&str>,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(now())
            .bind(actor)
            .bind(action)
            .bind(subject)
            .bind(detail)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        /// The state of message `id` for a quarantine action: `Ok(handled?)` when it is
        /// quarantined, else why the action is refused.
        async fn quarantined_in(
            tx: &mut sqlx::Transaction<'_, DB>,
            id: i64,
        ) -> Result<Result<bool, ActionRefused>, StoreError> {
            let row: Option<(String, Option<String>)> =
                sqlx::query_as("SELECT status, handled_at FROM messages WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?;
            Ok(match row {
                None => Err(ActionRefused::NotFound),
                Some((s, handled)) if s == MessageStatus::Quarantined.as_str() => {
                    Ok(handled.is_some())
                }
                Some(_) => Err(ActionRefused::NotQuarantined),
            })
        }

        /// How many rows `from_where` (`table alias WHERE …`, with the cutoff as `$1`) has, and
        /// the sum of their `size`: what a dry run reports.
        async fn count_and_size(&self, from_where: &str, cut: &str) -> Result<(u64, u64), StoreError> {
            let (n, bytes): (i64, Option<i64>) = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT COUNT(*), CAST(SUM(size) AS BIGINT) FROM {from_where}"
            )))
            .bind(cut)
            .fetch_one(&self.pool)
            .await?;
            Ok((n as u64, bytes.unwrap_or(0) as u64))
        }

        /// Whether any message row still points at `file` (a message file, or a segment).
        async fn file_referenced(&self, file: &str) -> Result<bool, StoreError> {
            let prefix = format!("{file}#");
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM messages WHERE raw_path = $1 \
                 OR substr(raw_path, 1, CAST($3 AS INTEGER)) = $2 LIMIT 1",
            )
            .bind(file)
            .bind(prefix.as_str())
            .bind(prefix.chars().count() as i64)
            .fetch_optional(&self.pool)
            .await?;
            Ok(found.is_some())
        }

        /// Removes the files in `files` that no row points at any more.
        async fn remove_unreferenced(&self, files: BTreeSet<String>) -> Result<u64, StoreError> {
            let Some(dir) = self.local_dir().map(Path::to_path_buf) else {
                return Ok(0);
            };
            let mut removed = 0;
            for file in files {
                if !file.is_empty() && !self.file_referenced(&file).await? && remove(&dir, &file) {
                    removed += 1;
                }
            }
            Ok(removed)
        }

        async fn purge_raw(
            &self,
            cut: &str,
            dry_run: bool,
            report: &mut PurgeReport,
        ) -> Result<(), StoreError> {
            if dry_run {
                (report.raw_messages, report.raw_bytes) = self
                    .count_and_size(
                        &format!(
                            "messages m WHERE m.raw_purged_at IS NULL AND m.received_at < $1 \
                             AND {RAW_PURGEABLE}"
                        ),
                        cut,
                    )
                    .await?;
                return Ok(());
            }
            let mut files = BTreeSet::new();
            loop {
                let mut tx = self.pool.begin().await?;
                let rows: Vec<(i64, i64, Option<String>)> = sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT m.id, m.size, m.raw_path FROM messages m \
                     WHERE m.raw_purged_at IS NULL AND m.received_at < $1 AND {RAW_PURGEABLE} \
                     ORDER BY m.id LIMIT $2"
                )))
                .bind(cut)
                .bind(PURGE_CHUNK)
                .fetch_all(&mut *tx)
                .await?;
                if rows.is_empty() {
                    break;
                }
                let sql = format!(
                    "UPDATE messages SET raw = $1, raw_path = NULL, raw_purged_at = $2 WHERE id IN ({})",
                    params(3, rows.len())
                );
                let mut q = sqlx::query(AssertSqlSafe(sql)).bind(Vec::<u8>::new()).bind(now());
                for (id, _, _) in &rows {
                    q = q.bind(*id);
                }
                q.execute(&mut *tx).await?;
                tx.commit().await?;
                for (_, size, path) in rows {
                    report.raw_messages += 1;
                    report.raw_bytes += size as u64;
                    files.extend(path.as_deref().map(file_of));
                }
            }
            report.files_removed += self.remove_unreferenced(files).await?;
            Ok(())
        }

        /// Files of acknowledged import documents. With one instance (SQLite) the entry is
        /// marked once its file is gone; with PostgreSQL each instance has an import folder of
        /// its own, so each removes what it has and nothing is marked.
        async fn purge_imports(
            &self,
            cut: &str,
            dry_run: bool,
            report: &mut PurgeReport,
        ) -> Result<(), StoreError> {
            let Some(dir) = self.local_dir().map(Path::to_path_buf) else {
                return Ok(());
            };
            let mut after = 0i64;
            loop {
                let rows: Vec<(i64, String, Option<String>, i64)> = sqlx::query_as(
                    "SELECT q.id, q.file_name, d.dir_name, q.size FROM import_queue q \
                     LEFT JOIN account_dirs d ON d.account = q.account \
                     WHERE q.id > $1 AND q.state = 'picked_up' AND q.acked_at < $2 \
                     AND q.file_purged_at IS NULL ORDER BY q.id LIMIT $3",
                )
                .bind(after)
                .bind(cut)
                .bind(PURGE_CHUNK)
                .fetch_all(&self.pool)
                .await?;
                let Some(last) = rows.last() else { break };
                after = last.0;
                let mut gone = Vec::new();
                for (id, file, dir_name, size) in &rows {
                    let Some(dir_name) = dir_name else { continue };
                    let path = dir.join("import").join(dir_name).join(file);
                    let present = path.exists();
                    if present {
                        report.import_documents += 1;
                        report.import_bytes += *size as u64;
                        if !dry_run {
                            remove(&dir, &format!("import/{dir_name}/{file}"));
                        }
                    }
                    gone.push(*id);
                }
                if !dry_run && !DB::RAW_IN_DB && !gone.is_empty() {
                    let sql = format!(
                        "UPDATE import_queue SET file_purged_at = $1 WHERE id IN ({})",
                        params(2, gone.len())
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(now());
                    for id in &gone {
                        q = q.bind(*id);
                    }
                    q.execute(&self.pool).await?;
                }
            }
            Ok(())
        }

        async fn purge_sent(
            &self,
            cut: &str,
            dry_run: bool,
            report: &mut PurgeReport,
        ) -> Result<(), StoreError> {
            const SENT: &str = "state IN ('sent', 'cancelled') AND raw_purged_at IS NULL AND created_at < $1";
            if dry_run {
                (report.sent_messages, report.sent_bytes) = self
                    .count_and_size(&format!("outbox WHERE {SENT}"), cut)
                    .await?;
                return Ok(());
            }
            loop {
                let rows: Vec<(i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT id, size FROM outbox WHERE {SENT} ORDER BY id LIMIT $2"
                )))
                .bind(cut)
                .bind(PURGE_CHUNK)
                .fetch_all(&self.pool)
                .await?;
                if rows.is_empty() {
                    break;
                }
                // The state is checked again: an admin's retry may have requeued it meanwhile.
                let sql = format!(
                    "UPDATE outbox SET raw = $1, raw_purged_at = $2 \
                     WHERE state IN ('sent', 'cancelled') AND id IN ({})",
                    params(3, rows.len())
                );
                let mut q = sqlx::query(AssertSqlSafe(sql)).bind(Vec::<u8>::new()).bind(now());
                for (id, _) in &rows {
                    q = q.bind(*id);
                }
                q.execute(&self.pool).await?;
                report.sent_messages += rows.len() as u64;
                report.sent_bytes += rows.iter().map(|(_, s)| *s as u64).sum::<u64>();
            }
            Ok(())
        }

        /// Records whose content is gone (or goes in this purge) and that are older than
        /// `keep_records`.
        async fn purge_records(
            &self,
            cut: &str,
            dry_run: bool,
            report: &mut PurgeReport,
        ) -> Result<(), StoreError> {
            let old_message = format!(
                "m.received_at < $1 AND (m.raw_purged_at IS NOT NULL OR ({RAW_PURGEABLE}))"
            );
            let old_outbox = "state IN ('sent', 'cancelled') AND created_at < $1";
            if dry_run {
                let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM messages m WHERE {old_message}"
                )))
                .bind(cut)
                .fetch_one(&self.pool)
                .await?;
                let o: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM outbox WHERE {old_outbox}"
                )))
                .bind(cut)
                .fetch_one(&self.pool)
                .await?;
                report.message_records = n as u64;
                report.outbox_records = o as u64;
                return Ok(());
            }
            let mut files = BTreeSet::new();
            loop {
                let mut tx = self.pool.begin().await?;
                let rows: Vec<(i64, Option<String>)> = sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT m.id, m.raw_path FROM messages m WHERE {old_message} \
                     AND m.raw_purged_at IS NOT NULL ORDER BY m.id LIMIT $2"
                )))
                .bind(cut)
                .bind(PURGE_CHUNK)
                .fetch_all(&mut *tx)
                .await?;
                if rows.is_empty() {
                    break;
                }
                let list = params(1, rows.len());
                for sql in [
                    format!("UPDATE messages SET same_message_id_as = NULL WHERE same_message_id_as IN ({list})"),
                    format!("DELETE FROM import_queue WHERE message IN ({list})"),
                    format!("DELETE FROM message_server_ids WHERE message IN ({list})"),
                    format!("DELETE FROM messages WHERE id IN ({list})"),
                ] {
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for (id, _) in &rows {
                        q = q.bind(*id);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                report.message_records += rows.len() as u64;
                files.extend(rows.iter().filter_map(|(_, p)| p.as_deref().map(file_of)));
            }
            report.files_removed += self.remove_unreferenced(files).await?;
            loop {
                let r = sqlx::query(AssertSqlSafe(format!(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE {old_outbox} \
                     AND raw_purged_at IS NOT NULL ORDER BY id LIMIT $2)"
                )))
                .bind(cut)
                .bind(PURGE_CHUNK)
                .execute(&self.pool)
                .await?;
                let n = DB::rows_affected(&r);
                report.outbox_records += n;
                if n == 0 {
                    break;
                }
            }
            // The audit trail is kept as long as the records it speaks of.
            sqlx::query("DELETE FROM audit_log WHERE at < $1")
                .bind(cut)
                .execute(&self.pool)
                .await?;
            Ok(())
        }
    }
}

for_every_backend! {
    #[async_trait]
    impl LifecycleStore {
        async fn purge(&self, retention: &Retention, dry_run: bool) -> Result<PurgeReport, StoreError> {
            let mut report = PurgeReport {
                dry_run,
                ..Default::default()
            };
            self.purge_raw(&cutoff(retention.raw_mail), dry_run, &mut report).await?;
            self.purge_imports(&cutoff(retention.import_documents), dry_run, &mut report)
                .await?;
            self.purge_sent(&cutoff(retention.sent_mail), dry_run, &mut report).await?;
            self.purge_records(&cutoff(retention.records), dry_run, &mut report).await?;
            Ok(report)
        }

        async fn storage_use(&self) -> Result<(Vec<StorageUse>, OutboxUse), StoreError> {
            let rows: Vec<(String, i64, i64, Option<i64>, i64)> = sqlx::query_as(
                "SELECT account, COUNT(*), \
                 COUNT(*) FILTER (WHERE raw_purged_at IS NULL), \
                 CAST(SUM(CASE WHEN raw_purged_at IS NULL THEN size ELSE 0 END) AS BIGINT), \
                 COUNT(*) FILTER (WHERE status = 'quarantined' AND handled_at IS NULL) \
                 FROM messages GROUP BY account ORDER BY account",
            )
            .fetch_all(&self.pool)
            .await?;
            let imports: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
                "SELECT account, COUNT(*), CAST(SUM(size) AS BIGINT) FROM import_queue \
                 WHERE file_purged_at IS NULL AND state <> 'staged' GROUP BY account",
            )
            .fetch_all(&self.pool)
            .await?;
            let mut out: Vec<StorageUse> = rows
                .into_iter()
                .map(|(account, n, with_raw, bytes, open)| StorageUse {
                    account,
                    messages: n as u64,
                    messages_with_raw: with_raw as u64,
                    raw_bytes: bytes.unwrap_or(0) as u64,
                    quarantine_open: open as u64,
                    ..Default::default()
                })
                .collect();
            for (account, n, bytes) in imports {
                if let Some(u) = out.iter_mut().find(|u| u.account == account) {
                    u.import_documents = n as u64;
                    u.import_bytes = bytes.unwrap_or(0) as u64;
                }
            }
            let (entries, bytes): (i64, Option<i64>) = sqlx::query_as(
                "SELECT COUNT(*), CAST(SUM(CASE WHEN raw_purged_at IS NULL THEN size ELSE 0 END) AS BIGINT) FROM outbox",
            )
            .fetch_one(&self.pool)
            .await?;
            Ok((
                out,
                OutboxUse {
                    entries: entries as u64,
                    bytes: bytes.unwrap_or(0) as u64,
                },
            ))
        }

        async fn mark_handled(
            &self,
            id: i64,
            actor: &str,
            note: &str,
        ) -> Result<Result<(), ActionRefused>, StoreError> {
            let mut tx = self.pool.begin().await?;
            if let Err(refused) = Self::quarantined_in(&mut tx, id).await? {
                return Ok(Err(refused));
            }
            sqlx::query(
                "UPDATE messages SET handled_at = $2, handled_by = $3, handled_note = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(now())
            .bind(actor)
            .bind(note)
            .execute(&mut *tx)
            .await?;
            Self::audit_in(&mut tx, actor, "mark_handled", &format!("message:{id}"), Some(note))
                .await?;
            tx.commit().await?;
            Ok(Ok(()))
        }

        async fn replace_quarantine(
            &self,
            id: i64,
            outcome: Reprocessed,
            actor: &str,
        ) -> Result<Result<Vec<i64>, ActionRefused>, StoreError> {
            let mut tx = self.pool.begin().await?;
            if let Err(refused) = Self::quarantined_in(&mut tx, id).await? {
                return Ok(Err(refused));
            }
            let account: String = sqlx::query_scalar("SELECT account FROM messages WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let attachments =
                serde_json::to_string(&outcome.attachments).unwrap_or_else(|_| "[]".into());
            // Still quarantined: the new reason replaces the old, and a "handled" mark no
            // longer applies to it.
            sqlx::query(
                "UPDATE messages SET status = $2, reason = $3, handler = $4, attachments = $5, \
                 handled_at = NULL, handled_by = NULL, handled_note = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(outcome.status.as_str())
            .bind(outcome.reason.as_deref())
            .bind(outcome.handler.as_str())
            .bind(attachments)
            .execute(&mut *tx)
            .await?;
            let mut ids = Vec::new();
            let at = now();
            for imp in &outcome.imports {
                let new: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO import_queue (account, message, kind, file_name, content_type, \
                     size, state, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'staged', $7) \
                     ON CONFLICT (account, file_name) DO NOTHING RETURNING id",
                )
                .bind(account.as_str())
                .bind(id)
                .bind(imp.kind.as_str())
                .bind(imp.file_name.as_str())
                .bind(imp.content_type.as_deref())
                .bind(imp.size as i64)
                .bind(at.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                ids.extend(new);
            }
            let detail = match outcome.status {
                MessageStatus::Stored => format!(
                    "taken in by {} ({} document(s) for the ERP)",
                    outcome.handler,
                    outcome.imports.len()
                ),
                MessageStatus::Quarantined => format!(
                    "still quarantined by {}: {}",
                    outcome.handler,
                    outcome.reason.as_deref().unwrap_or("")
                ),
            };
            Self::audit_in(&mut tx, actor, "reprocess", &format!("message:{id}"), Some(&detail))
                .await?;
            tx.commit().await?;
            Ok(Ok(ids))
        }

        async fn delete_quarantined(
            &self,
            id: i64,
            actor: &str,
        ) -> Result<Result<(), ActionRefused>, StoreError> {
            let mut tx = self.pool.begin().await?;
            if let Err(refused) = Self::quarantined_in(&mut tx, id).await? {
                return Ok(Err(refused));
            }
            let pending: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM message_server_ids WHERE message = $1 AND state = 'stored'",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            if pending > 0 {
                return Ok(Err(ActionRefused::ServerStepPending));
            }
            let (subject, from, raw_path): (Option<String>, Option<String>, Option<String>) =
                sqlx::query_as("SELECT subject, from_addr, raw_path FROM messages WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            for sql in [
                "UPDATE messages SET same_message_id_as = NULL WHERE same_message_id_as = $1",
                "DELETE FROM import_queue WHERE message = $1",
                "DELETE FROM message_server_ids WHERE message = $1",
                "DELETE FROM messages WHERE id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
            let detail = format!(
                "from {}, subject {}",
                from.as_deref().unwrap_or("-"),
                subject.as_deref().unwrap_or("-")
            );
            Self::audit_in(&mut tx, actor, "delete", &format!("message:{id}"), Some(&detail))
                .await?;
            tx.commit().await?;
            self.remove_unreferenced(raw_path.as_deref().map(file_of).into_iter().collect())
                .await?;
            Ok(Ok(()))
        }

        async fn audit(
            &self,
            actor: &str,
            action: &str,
            subject: &str,
            detail: Option<&str>,
        ) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            Self::audit_in(&mut tx, actor, action, subject, detail).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn audit_log(
            &self,
            subject: Option<&str>,
            limit: u32,
        ) -> Result<Vec<AuditEntry>, StoreError> {
            let rows: Vec<AuditRow> = sqlx::query_as(
                "SELECT id, at, actor, action, subject, detail FROM audit_log \
                 WHERE (CAST($1 AS TEXT) IS NULL OR subject = $1) ORDER BY id DESC LIMIT $2",
            )
            .bind(subject)
            .bind(i64::from(limit.max(1)))
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|r| AuditEntry {
                    id: r.id,
                    at: r.at,
                    actor: r.actor,
                    action: r.action,
                    subject: r.subject,
                    detail: r.detail,
                })
                .collect())
        }

        async fn notified_alarms(&self) -> Result<Vec<NotifiedAlarm>, StoreError> {
            let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
                "SELECT alarm_key, severity, message, first_seen, last_sent FROM notified_alarms \
                 ORDER BY alarm_key",
            )
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(key, severity, message, first_seen, last_sent)| NotifiedAlarm {
                    key,
                    severity,
                    message,
                    first_seen,
                    last_sent,
                })
                .collect())
        }

        async fn save_notified_alarm(&self, a: &NotifiedAlarm) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO notified_alarms (alarm_key, severity, message, first_seen, last_sent) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (alarm_key) DO UPDATE SET \
                 severity = excluded.severity, message = excluded.message, last_sent = excluded.last_sent",
            )
            .bind(a.key.as_str())
            .bind(a.severity.as_str())
            .bind(a.message.as_str())
            .bind(a.first_seen.as_str())
            .bind(a.last_sent.as_str())
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        async fn forget_notified_alarm(&self, key: &str) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM notified_alarms WHERE alarm_key = $1")
                .bind(key)
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn copy_database_to(&self, dest: &Path) -> Result<(), StoreError> {
            if DB::RAW_IN_DB {
                return Err(StoreError::NotWithPostgres("kurir backup"));
            }
            let dest = dest.to_str().ok_or_else(|| StoreError::Io {
                what: format!("use {} as a backup file name", dest.display()),
                source: std::io::Error::from(std::io::ErrorKind::InvalidFilename),
            })?;
            sqlx::query("VACUUM INTO $1").bind(dest).execute(&self.pool).await?;
            Ok(())
        }

        async fn webhook_cursor(&self, feed: &str) -> Result<Option<i64>, StoreError> {
            Ok(sqlx::query_scalar("SELECT last_id FROM webhook_cursor WHERE feed = $1")
                .bind(feed)
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn set_webhook_cursor(&self, feed: &str, last_id: i64) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO webhook_cursor (feed, last_id) VALUES ($1, $2) \
                 ON CONFLICT (feed) DO UPDATE SET last_id = excluded.last_id",
            )
            .bind(feed)
            .bind(last_id)
            .execute(&self.pool)
            .await?;
            Ok(())
        }
    }
}
