//! [`OutboxStore`] on PostgreSQL (tables from `migrations/postgres/0003_outbox.sql`).
//!
//! Queueing commits durably (the server's default `synchronous_commit = on`). Leases, renewals
//! and outcomes go through the store's `marks` pool (`synchronous_commit = off`), like the
//! SQLite store's `synchronous = NORMAL` connection: the "sent" mark must be cheap, and losing
//! one (only if the database server itself crashes) means a message is sent again, never lost.
//!
//! Leasing is ONE statement: the due rows are picked with `SELECT … FOR UPDATE SKIP LOCKED` and
//! updated in the same statement. Rows another instance is leasing at that moment are locked
//! and skipped; rows it has just leased no longer match (PostgreSQL re-checks the WHERE clause
//! on the newest row version before locking it). So concurrent instances get disjoint sets, and
//! a lease that expired is handed out again exactly once.
//!
//! Every time is kept in the DATABASE's clock. Instances on different machines have different
//! clocks; were each to compare leases by its own, one whose clock runs ahead by more than the
//! lease would take a message another instance is sending, and the message would go out
//! twice. Callers give times in their own clock (the worker: its now, now + lease, now + wait);
//! [`db_time`] turns each into the same distance from the database's now.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::messages::DB_NOW_MS;
use super::{PgStore, no_nul, now};
use crate::StoreError;
use crate::outbox::{
    Leased, ListenerUser, NewOutgoing, OutboxFilter, OutboxStore, Outcome, OutgoingMessage,
    OutgoingState,
};
use crate::web::{hash_secret, verify_secret};

const COLUMNS: &str = "id, sender_user, origin, from_addr, recipients, subject, message_id, size, \
    state, attempts, next_attempt_at, leased_until, last_error, via, server_reply, created_at, sent_at";

fn message_from_row(row: &PgRow) -> OutgoingMessage {
    let recipients: String = row.get("recipients");
    let state: String = row.get("state");
    OutgoingMessage {
        id: row.get("id"),
        sender_user: row.get("sender_user"),
        origin: row.get("origin"),
        from: row.get("from_addr"),
        recipients: serde_json::from_str(&recipients).unwrap_or_default(),
        subject: row.get("subject"),
        message_id: row.get("message_id"),
        size: row.get::<i64, _>("size") as u64,
        // The CHECK constraint allows only the five values.
        state: OutgoingState::parse(&state).unwrap_or(OutgoingState::Failed),
        attempts: row.get::<i64, _>("attempts") as u32,
        next_attempt_at: row.get("next_attempt_at"),
        leased_until: row.get("leased_until"),
        last_error: row.get("last_error"),
        via: row.get("via"),
        server_reply: row.get("server_reply"),
        created_at: row.get("created_at"),
        sent_at: row.get("sent_at"),
    }
}

/// SQL for the time in parameter `$at` (the caller's clock) in the database's clock, given
/// the caller's now in parameter `$local`: the database's now plus the same distance.
fn db_time(at: usize, local: usize) -> String {
    format!("({DB_NOW_MS} + (${at}::BIGINT - ${local}::BIGINT))")
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

#[async_trait]
impl OutboxStore for PgStore {
    async fn enqueue(&self, msg: NewOutgoing) -> Result<i64, StoreError> {
        Ok(self.enqueue_many(vec![msg]).await?[0])
    }

    async fn enqueue_many(&self, msgs: Vec<NewOutgoing>) -> Result<Vec<i64>, StoreError> {
        let created = now();
        // Due now by the database's clock.
        let insert = format!(
            "INSERT INTO outbox (sender_user, origin, from_addr, recipients, subject, message_id, size, \
             raw, state, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', 0, {DB_NOW_MS}, $9) RETURNING id"
        );
        let mut tx = self.pool.begin().await?;
        let mut ids = Vec::with_capacity(msgs.len());
        for mut m in msgs {
            m.from = m.from.map(no_nul);
            m.subject = m.subject.map(no_nul);
            m.message_id = m.message_id.map(no_nul);
            let recipients =
                serde_json::to_string(&m.recipients).expect("a list of strings serialises");
            let id: i64 = sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                .bind(&m.sender_user)
                .bind(&m.origin)
                .bind(&m.from)
                .bind(recipients)
                .bind(&m.subject)
                .bind(&m.message_id)
                .bind(m.raw.len() as i64)
                .bind(&m.raw)
                .bind(&created)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
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
        let returning = COLUMNS
            .split(", ")
            .map(|c| format!("o.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let now_db = db_time(3, 5);
        let sql = format!(
            "WITH due AS ( \
               SELECT id FROM outbox WHERE \
                 (state = 'queued' AND next_attempt_at <= {now_db}) OR (state = 'sending' AND leased_until <= {now_db}) \
               ORDER BY next_attempt_at, id LIMIT $4 \
               FOR UPDATE SKIP LOCKED) \
             UPDATE outbox o SET state = 'sending', leased_until = {until}, lease_token = $2, \
               attempts = o.attempts + 1 \
             FROM due WHERE o.id = due.id \
             RETURNING {returning}, o.raw",
            until = db_time(1, 5),
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now_ms.saturating_add(lease_ms))
            .bind(&token)
            .bind(now_ms)
            .bind(limit as i64)
            .bind((self.clock)())
            .fetch_all(&self.marks)
            .await?;
        let mut out: Vec<Leased> = rows
            .iter()
            .map(|r| Leased {
                message: message_from_row(r),
                raw: r.get("raw"),
                lease_token: token.clone(),
            })
            .collect();
        // RETURNING gives no order guarantee; oldest first keeps the queue fair.
        out.sort_by_key(|l| (l.message.next_attempt_at, l.message.id));
        Ok(out)
    }

    async fn renew_lease(&self, id: i64, token: &str, until_ms: i64) -> Result<bool, StoreError> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET leased_until = {} WHERE id = $2 AND state = 'sending' AND lease_token = $3",
            db_time(1, 4)
        )))
        .bind(until_ms)
        .bind(id)
        .bind(token)
        .bind((self.clock)())
        .execute(&self.marks)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn finish(&self, id: i64, token: &str, outcome: Outcome) -> Result<bool, StoreError> {
        // Server replies and error texts come from outside.
        let outcome = match outcome {
            Outcome::Sent { via, reply } => Outcome::Sent {
                via,
                reply: no_nul(reply),
            },
            Outcome::Retry { at, error } => Outcome::Retry {
                at,
                error: no_nul(error),
            },
            Outcome::Failed { error } => Outcome::Failed {
                error: no_nul(error),
            },
            other => other,
        };
        let local = (self.clock)();
        let q = match &outcome {
            Outcome::Sent { via, reply } => sqlx::query(sqlx::AssertSqlSafe(
                "UPDATE outbox SET state = 'sent', leased_until = NULL, lease_token = NULL, \
                 via = $1, server_reply = $2, sent_at = $3, last_error = NULL \
                 WHERE id = $4 AND state = 'sending' AND lease_token = $5"
                    .to_owned(),
            ))
            .bind(via)
            .bind(reply)
            .bind(now()),
            // The next attempt in the database's clock (see the module docs); the caller's
            // now is the last parameter.
            Outcome::Retry { at, error } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE outbox SET state = 'queued', leased_until = NULL, lease_token = NULL, \
                 next_attempt_at = {}, last_error = $2 \
                 WHERE id = $3 AND state = 'sending' AND lease_token = $4",
                db_time(1, 5)
            )))
            .bind(*at)
            .bind(error),
            Outcome::Defer { at } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE outbox SET state = 'queued', leased_until = NULL, lease_token = NULL, \
                 next_attempt_at = {}, attempts = GREATEST(attempts - 1, 0) \
                 WHERE id = $2 AND state = 'sending' AND lease_token = $3",
                db_time(1, 4)
            )))
            .bind(*at),
            Outcome::Failed { error } => sqlx::query(sqlx::AssertSqlSafe(
                "UPDATE outbox SET state = 'failed', leased_until = NULL, lease_token = NULL, \
                 last_error = $1 WHERE id = $2 AND state = 'sending' AND lease_token = $3"
                    .to_owned(),
            ))
            .bind(error),
        };
        let mut q = q.bind(id).bind(token);
        if matches!(outcome, Outcome::Retry { .. } | Outcome::Defer { .. }) {
            q = q.bind(local);
        }
        let r = q.execute(&self.marks).await?;
        Ok(r.rows_affected() == 1)
    }

    async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        // Kept in the database's clock; answered in the caller's (the worker sleeps until it).
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT MIN(CASE WHEN state = 'queued' THEN next_attempt_at ELSE leased_until END) \
               - {DB_NOW_MS} + $1::BIGINT \
             FROM outbox WHERE state IN ('queued', 'sending')"
        )))
        .bind((self.clock)())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get::<Option<i64>, _>(0))
    }

    async fn outbox_list(&self, filter: &OutboxFilter) -> Result<Vec<OutgoingMessage>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM outbox WHERE ($1::TEXT IS NULL OR state = $1) \
             AND ($2::TEXT IS NULL OR sender_user = $2) ORDER BY id DESC LIMIT $3"
        )))
        .bind(filter.state.map(|s| s.as_str()))
        .bind(&filter.sender_user)
        .bind(filter.limit.unwrap_or(100) as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(message_from_row).collect())
    }

    async fn outbox_get(&self, id: i64) -> Result<Option<OutgoingMessage>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM outbox WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(message_from_row))
    }

    async fn outbox_raw(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT raw FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn outbox_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM outbox GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1) as u64))
            .collect())
    }

    async fn outbox_counts_by_sender(&self) -> Result<BTreeMap<(String, String), u64>, StoreError> {
        let rows = sqlx::query(
            "SELECT sender_user, state, COUNT(*) FROM outbox GROUP BY sender_user, state",
        )
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

    async fn outbox_retry(&self, id: i64) -> Result<bool, StoreError> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET state = 'queued', next_attempt_at = {DB_NOW_MS}, attempts = 0 \
             WHERE id = $1 AND state IN ('failed', 'queued')"
        )))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn outbox_cancel(&self, id: i64) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE outbox SET state = 'cancelled' WHERE id = $1 AND state IN ('failed', 'queued')",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
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
        let row =
            sqlx::query("SELECT kurir_user, password_hash FROM listener_users WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        let (user, phc) = match &row {
            Some(r) => (Some(r.get::<String, _>(0)), r.get::<String, _>(1)),
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
        Ok(r.rows_affected() == 1)
    }

    async fn list_listener_users(&self) -> Result<Vec<ListenerUser>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, kurir_user, created_at, last_login FROM listener_users \
             ORDER BY name COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ListenerUser {
                name: r.get(0),
                kurir_user: r.get(1),
                created_at: r.get(2),
                last_login: r.get(3),
            })
            .collect())
    }
}
