//! [`OutboxStore`] on both databases (tables from `migrations/*/0003_outbox.sql`).
//!
//! Queueing commits durably on `pool`. Leases, renewals and outcomes go through `marks` (see
//! [`SqlStore`](super::SqlStore)): the "sent" mark must be cheap, and losing one (only if the
//! machine or the database server crashes) means a message is sent again, never lost.
//!
//! Leasing is ONE statement: the due rows are picked and updated together. On PostgreSQL the
//! pick is `FOR UPDATE SKIP LOCKED`: rows another instance is leasing at that moment are
//! skipped, rows it has just leased no longer match (the WHERE clause is re-checked on the
//! newest row version), so concurrent instances get disjoint sets and an expired lease is handed
//! out again exactly once. SQLite serialises writers, which gives the same.
//!
//! Every time is kept in the DATABASE's clock. Instances on different machines have different
//! clocks; were each to compare leases by its own, one whose clock runs ahead by more than the
//! lease would take a message another instance is sending, and the message would go out twice.
//! Callers give times in their own clock (the worker: its now, now + lease, now + wait);
//! [`db_time`] turns each into the same distance from the database's now.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sqlx::AssertSqlSafe;

use super::{db_time, for_every_backend, no_nul, now};
use crate::StoreError;
use crate::outbox::{
    Leased, ListenerUser, NewOutgoing, OutboxFilter, OutboxStore, Outcome, OutgoingMessage,
    OutgoingState,
};
use crate::web::{hash_secret, verify_secret};

const COLUMNS: &str = "id, sender_user, origin, from_addr, recipients, subject, message_id, size, \
    state, attempts, next_attempt_at, leased_until, last_error, via, server_reply, created_at, sent_at";

#[derive(sqlx::FromRow)]
struct OutgoingRow {
    id: i64,
    sender_user: String,
    origin: String,
    from_addr: Option<String>,
    recipients: String,
    subject: Option<String>,
    message_id: Option<String>,
    size: i64,
    state: String,
    attempts: i64,
    next_attempt_at: i64,
    leased_until: Option<i64>,
    last_error: Option<String>,
    via: Option<String>,
    server_reply: Option<String>,
    created_at: String,
    sent_at: Option<String>,
}

impl From<OutgoingRow> for OutgoingMessage {
    fn from(r: OutgoingRow) -> OutgoingMessage {
        OutgoingMessage {
            id: r.id,
            sender_user: r.sender_user,
            origin: r.origin,
            from: r.from_addr,
            recipients: serde_json::from_str(&r.recipients).unwrap_or_default(),
            subject: r.subject,
            message_id: r.message_id,
            size: r.size as u64,
            // The CHECK constraint allows only the five values.
            state: OutgoingState::parse(&r.state).unwrap_or(OutgoingState::Failed),
            attempts: r.attempts as u32,
            next_attempt_at: r.next_attempt_at,
            leased_until: r.leased_until,
            last_error: r.last_error,
            via: r.via,
            server_reply: r.server_reply,
            created_at: r.created_at,
            sent_at: r.sent_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct LeasedRow {
    #[sqlx(flatten)]
    message: OutgoingRow,
    raw: Vec<u8>,
}

#[derive(sqlx::FromRow)]
struct ListenerUserRow {
    name: String,
    kurir_user: String,
    created_at: String,
    last_login: Option<String>,
}

fn lease_token() -> String {
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// A hash verified against when the login name is unknown, so both answers take as long.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_secret(&SecretString::from(lease_token())))
}

/// `(key, state) → count` rows as a map.
fn counted<K: Ord>(rows: Vec<(K, i64)>) -> BTreeMap<K, u64> {
    rows.into_iter().map(|(k, n)| (k, n as u64)).collect()
}

for_every_backend! {
    #[async_trait]
    impl OutboxStore {
        async fn enqueue(&self, msg: NewOutgoing) -> Result<i64, StoreError> {
            Ok(self.enqueue_many(vec![msg]).await?[0])
        }

        async fn enqueue_many(&self, msgs: Vec<NewOutgoing>) -> Result<Vec<i64>, StoreError> {
            let created = now();
            // Due now by the database's clock.
            let insert = format!(
                "INSERT INTO outbox (sender_user, origin, from_addr, recipients, subject, message_id, \
                 size, raw, state, attempts, next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', 0, {}, $9) RETURNING id",
                DB::NOW_MS
            );
            let mut tx = self.pool.begin().await?;
            let mut ids = Vec::with_capacity(msgs.len());
            for m in msgs {
                let recipients =
                    serde_json::to_string(&m.recipients).expect("a list of strings serialises");
                let id: i64 = sqlx::query_scalar(AssertSqlSafe(insert.clone()))
                    .bind(m.sender_user)
                    .bind(m.origin)
                    .bind(m.from.map(no_nul))
                    .bind(recipients)
                    .bind(m.subject.map(no_nul))
                    .bind(m.message_id.map(no_nul))
                    .bind(m.raw.len() as i64)
                    .bind(m.raw)
                    .bind(created.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                ids.push(id);
            }
            tx.commit().await?;
            Ok(ids)
        }

        async fn lease_due(
            &self,
            now_ms: i64,
            lease_ms: i64,
            limit: u32,
        ) -> Result<Vec<Leased>, StoreError> {
            let token = lease_token();
            let now_db = db_time::<DB>(3, 5);
            let sql = format!(
                "WITH due AS MATERIALIZED ( \
                   SELECT id FROM outbox WHERE \
                     (state = 'queued' AND next_attempt_at <= {now_db}) \
                     OR (state = 'sending' AND leased_until <= {now_db}) \
                   ORDER BY next_attempt_at, id LIMIT $4{skip}) \
                 UPDATE outbox SET state = 'sending', leased_until = {until}, lease_token = $2, \
                   attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM due) \
                 RETURNING {COLUMNS}, raw",
                until = db_time::<DB>(1, 5),
                skip = DB::SKIP_LOCKED,
            );
            let rows: Vec<LeasedRow> = sqlx::query_as(AssertSqlSafe(sql))
                .bind(now_ms.saturating_add(lease_ms))
                .bind(token.as_str())
                .bind(now_ms)
                .bind(i64::from(limit))
                .bind((self.clock)())
                .fetch_all(&self.marks)
                .await?;
            let mut out: Vec<Leased> = rows
                .into_iter()
                .map(|r| Leased {
                    message: r.message.into(),
                    raw: r.raw,
                    lease_token: token.clone(),
                })
                .collect();
            // RETURNING gives no order guarantee; oldest first keeps the queue fair.
            out.sort_by_key(|l| (l.message.next_attempt_at, l.message.id));
            Ok(out)
        }

        async fn renew_lease(&self, id: i64, token: &str, until_ms: i64) -> Result<bool, StoreError> {
            let r = sqlx::query(AssertSqlSafe(format!(
                "UPDATE outbox SET leased_until = {} \
                 WHERE id = $2 AND state = 'sending' AND lease_token = $3",
                db_time::<DB>(1, 4)
            )))
            .bind(until_ms)
            .bind(id)
            .bind(token)
            .bind((self.clock)())
            .execute(&self.marks)
            .await?;
            Ok(DB::rows_affected(&r) == 1)
        }

        async fn finish(&self, id: i64, token: &str, outcome: Outcome) -> Result<bool, StoreError> {
            // The lease is the last two parameters of each statement; times the caller gives
            // are moved into the database's clock (see the module docs).
            let leased =
                |n: usize| format!("WHERE id = ${n} AND state = 'sending' AND lease_token = ${}", n + 1);
            let local = (self.clock)();
            let q = match outcome {
                Outcome::Sent { via, reply } => sqlx::query(AssertSqlSafe(format!(
                    "UPDATE outbox SET state = 'sent', leased_until = NULL, lease_token = NULL, \
                     via = $1, server_reply = $2, sent_at = $3, last_error = NULL {}",
                    leased(4)
                )))
                .bind(via)
                .bind(no_nul(reply))
                .bind(now()),
                Outcome::Retry { at, error } => sqlx::query(AssertSqlSafe(format!(
                    "UPDATE outbox SET state = 'queued', leased_until = NULL, lease_token = NULL, \
                     next_attempt_at = {}, last_error = $2 {}",
                    db_time::<DB>(1, 3),
                    leased(4)
                )))
                .bind(at)
                .bind(no_nul(error))
                .bind(local),
                Outcome::Defer { at } => sqlx::query(AssertSqlSafe(format!(
                    "UPDATE outbox SET state = 'queued', leased_until = NULL, lease_token = NULL, \
                     next_attempt_at = {}, \
                     attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END {}",
                    db_time::<DB>(1, 2),
                    leased(3)
                )))
                .bind(at)
                .bind(local),
                Outcome::Failed { error } => sqlx::query(AssertSqlSafe(format!(
                    "UPDATE outbox SET state = 'failed', leased_until = NULL, lease_token = NULL, \
                     last_error = $1 {}",
                    leased(2)
                )))
                .bind(no_nul(error)),
            };
            let r = q.bind(id).bind(token).execute(&self.marks).await?;
            Ok(DB::rows_affected(&r) == 1)
        }

        async fn next_due(&self) -> Result<Option<i64>, StoreError> {
            // Kept in the database's clock; answered in the caller's (the worker sleeps until it).
            let due: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT MIN(CASE WHEN state = 'queued' THEN next_attempt_at ELSE leased_until END) \
                   - {} + $1 \
                 FROM outbox WHERE state IN ('queued', 'sending')",
                DB::NOW_MS
            )))
            .bind((self.clock)())
            .fetch_one(&self.pool)
            .await?;
            Ok(due)
        }

        async fn outbox_list(&self, filter: &OutboxFilter) -> Result<Vec<OutgoingMessage>, StoreError> {
            let rows: Vec<OutgoingRow> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM outbox WHERE (CAST($1 AS TEXT) IS NULL OR state = $1) \
                 AND (CAST($2 AS TEXT) IS NULL OR sender_user = $2) ORDER BY id DESC LIMIT $3"
            )))
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.sender_user.as_deref())
            .bind(i64::from(filter.limit.unwrap_or(100)))
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(OutgoingMessage::from).collect())
        }

        async fn outbox_get(&self, id: i64) -> Result<Option<OutgoingMessage>, StoreError> {
            let row: Option<OutgoingRow> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM outbox WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.map(OutgoingMessage::from))
        }

        async fn outbox_raw(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(sqlx::query_scalar("SELECT raw FROM outbox WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn outbox_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT state, COUNT(*) FROM outbox GROUP BY state")
                    .fetch_all(&self.pool)
                    .await?;
            Ok(counted(rows))
        }

        async fn outbox_counts_by_sender(
            &self,
        ) -> Result<BTreeMap<(String, String), u64>, StoreError> {
            let rows: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT sender_user, state, COUNT(*) FROM outbox GROUP BY sender_user, state",
            )
            .fetch_all(&self.pool)
            .await?;
            Ok(counted(rows.into_iter().map(|(u, s, n)| ((u, s), n)).collect()))
        }

        async fn outbox_retry(&self, id: i64) -> Result<bool, StoreError> {
            let r = sqlx::query(AssertSqlSafe(format!(
                "UPDATE outbox SET state = 'queued', next_attempt_at = {}, attempts = 0 \
                 WHERE id = $1 AND state IN ('failed', 'queued')",
                DB::NOW_MS
            )))
            .bind(id)
            .execute(&self.pool)
            .await?;
            Ok(DB::rows_affected(&r) == 1)
        }

        async fn outbox_cancel(&self, id: i64) -> Result<bool, StoreError> {
            let r = sqlx::query(
                "UPDATE outbox SET state = 'cancelled' WHERE id = $1 AND state IN ('failed', 'queued')",
            )
            .bind(id)
            .execute(&self.pool)
            .await?;
            Ok(DB::rows_affected(&r) == 1)
        }

        async fn set_listener_user(
            &self,
            name: &str,
            kurir_user: &str,
            password: &SecretString,
        ) -> Result<(), StoreError> {
            let secret = SecretString::from(password.expose_secret().to_owned());
            let hash = tokio::task::spawn_blocking(move || hash_secret(&secret))
                .await
                .expect("argon2 hashing does not panic");
            sqlx::query(
                "INSERT INTO listener_users (name, kurir_user, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET kurir_user = excluded.kurir_user, \
                 password_hash = excluded.password_hash",
            )
            .bind(name)
            .bind(kurir_user)
            .bind(hash)
            .bind(now())
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        async fn check_listener_user(
            &self,
            name: &str,
            password: &SecretString,
        ) -> Result<Option<String>, StoreError> {
            let row: Option<(String, String)> = sqlx::query_as(
                "SELECT kurir_user, password_hash FROM listener_users WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
            let (user, phc) = match row {
                Some((user, phc)) => (Some(user), phc),
                None => (None, decoy_hash().to_owned()),
            };
            let given = password.expose_secret().to_owned();
            let ok = tokio::task::spawn_blocking(move || verify_secret(&given, &phc))
                .await
                .expect("argon2 verification does not panic");
            match user {
                Some(u) if ok => {
                    sqlx::query("UPDATE listener_users SET last_login = $1 WHERE name = $2")
                        .bind(now())
                        .bind(name)
                        .execute(&self.pool)
                        .await?;
                    Ok(Some(u))
                }
                _ => Ok(None),
            }
        }

        async fn remove_listener_user(&self, name: &str) -> Result<bool, StoreError> {
            let r = sqlx::query("DELETE FROM listener_users WHERE name = $1")
                .bind(name)
                .execute(&self.pool)
                .await?;
            Ok(DB::rows_affected(&r) == 1)
        }

        async fn list_listener_users(&self) -> Result<Vec<ListenerUser>, StoreError> {
            let rows: Vec<ListenerUserRow> = sqlx::query_as(
                "SELECT name, kurir_user, created_at, last_login FROM listener_users ORDER BY name",
            )
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|r| ListenerUser {
                    name: r.name,
                    kurir_user: r.kurir_user,
                    created_at: r.created_at,
                    last_login: r.last_login,
                })
                .collect())
        }
    }
}
