//! [`OutboxStore`] on SQLite (tables from `migrations/sqlite/0003_outbox.sql`).
//!
//! Every write is one transaction on a database in WAL mode. Queueing runs with `synchronous =
//! FULL`, so when [`OutboxStore::enqueue`] returns, the message survives a crash or power cut.
//! Leases, renewals and outcomes go through the store's `marks` connection (`synchronous =
//! NORMAL`, not fsync'd): the moment between the server's acceptance and the "sent" mark is
//! when a `kill -9` makes a duplicate, so that mark must cost microseconds, not an fsync. It
//! still survives `kill -9` (the commit is in the OS page cache); a power cut may undo the last
//! marks, which only sends those messages again. Leasing is a single `UPDATE … RETURNING`,
//! atomic against other workers (in this process or another one sharing the file).

use std::collections::BTreeMap;

use async_trait::async_trait;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, now};
use crate::StoreError;
use crate::outbox::{
    Leased, ListenerUser, NewOutgoing, OutboxFilter, OutboxStore, Outcome, OutgoingMessage,
    OutgoingState, now_ms,
};
use crate::web::{hash_secret, verify_secret};

const COLUMNS: &str = "id, sender_user, origin, from_addr, recipients, subject, message_id, size, \
    state, attempts, next_attempt_at, leased_until, last_error, via, server_reply, created_at, sent_at";

fn message_from_row(row: &SqliteRow) -> OutgoingMessage {
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

async fn insert(
    tx: &mut sqlx::SqliteConnection,
    m: NewOutgoing,
    created: &str,
    due: i64,
) -> Result<i64, StoreError> {
    let recipients = serde_json::to_string(&m.recipients).expect("a list of strings serialises");
    let id = sqlx::query(
        "INSERT INTO outbox (sender_user, origin, from_addr, recipients, subject, message_id, size, \
         raw, state, attempts, next_attempt_at, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?) RETURNING id",
    )
    .bind(&m.sender_user)
    .bind(&m.origin)
    .bind(&m.from)
    .bind(recipients)
    .bind(&m.subject)
    .bind(&m.message_id)
    .bind(m.raw.len() as i64)
    .bind(&m.raw)
    .bind(due)
    .bind(created)
    .fetch_one(&mut *tx)
    .await?
    .get(0);
    Ok(id)
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn enqueue(&self, msg: NewOutgoing) -> Result<i64, StoreError> {
        Ok(self.enqueue_many(vec![msg]).await?[0])
    }

    async fn enqueue_many(&self, msgs: Vec<NewOutgoing>) -> Result<Vec<i64>, StoreError> {
        let created = now();
        let due = now_ms();
        let mut tx = self.pool.begin().await?;
        let mut ids = Vec::with_capacity(msgs.len());
        for m in msgs {
            ids.push(insert(&mut tx, m, &created, due).await?);
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
        let sql = format!(
            "UPDATE outbox SET state = 'sending', leased_until = ?, lease_token = ?, \
             attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM outbox WHERE \
               (state = 'queued' AND next_attempt_at <= ?) OR (state = 'sending' AND leased_until <= ?) \
               ORDER BY next_attempt_at, id LIMIT ?) \
             RETURNING {COLUMNS}, raw"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now_ms + lease_ms)
            .bind(&token)
            .bind(now_ms)
            .bind(now_ms)
            .bind(limit as i64)
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
        let r = sqlx::query(
            "UPDATE outbox SET leased_until = ? WHERE id = ? AND state = 'sending' AND lease_token = ?",
        )
        .bind(until_ms)
        .bind(id)
        .bind(token)
        .execute(&self.marks)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn finish(&self, id: i64, token: &str, outcome: Outcome) -> Result<bool, StoreError> {
        let q = match &outcome {
            Outcome::Sent { via, reply } => sqlx::query(
                "UPDATE outbox SET state = 'sent', leased_until = NULL, lease_token = NULL, \
                 via = ?, server_reply = ?, sent_at = ?, last_error = NULL \
                 WHERE id = ? AND state = 'sending' AND lease_token = ?",
            )
            .bind(via)
            .bind(reply)
            .bind(now()),
            Outcome::Retry { at, error } => sqlx::query(
                "UPDATE outbox SET state = 'queued', leased_until = NULL, lease_token = NULL, \
                 next_attempt_at = ?, last_error = ? \
                 WHERE id = ? AND state = 'sending' AND lease_token = ?",
            )
            .bind(*at)
            .bind(error),
            Outcome::Defer { at } => sqlx::query(
                "UPDATE outbox SET state = 'queued', leased_until = NULL, lease_token = NULL, \
                 next_attempt_at = ?, attempts = MAX(attempts - 1, 0) \
                 WHERE id = ? AND state = 'sending' AND lease_token = ?",
            )
            .bind(*at),
            Outcome::Failed { error } => sqlx::query(
                "UPDATE outbox SET state = 'failed', leased_until = NULL, lease_token = NULL, \
                 last_error = ? WHERE id = ? AND state = 'sending' AND lease_token = ?",
            )
            .bind(error),
        };
        let r = q.bind(id).bind(token).execute(&self.marks).await?;
        Ok(r.rows_affected() == 1)
    }

    async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT MIN(CASE WHEN state = 'queued' THEN next_attempt_at ELSE leased_until END) \
             FROM outbox WHERE state IN ('queued', 'sending')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get::<Option<i64>, _>(0))
    }

    async fn outbox_list(&self, filter: &OutboxFilter) -> Result<Vec<OutgoingMessage>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM outbox WHERE (?1 IS NULL OR state = ?1) \
             AND (?2 IS NULL OR sender_user = ?2) ORDER BY id DESC LIMIT ?3"
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
            "SELECT {COLUMNS} FROM outbox WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(message_from_row))
    }

    async fn outbox_raw(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT raw FROM outbox WHERE id = ?")
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
        let r = sqlx::query(
            "UPDATE outbox SET state = 'queued', next_attempt_at = ?, attempts = 0 \
             WHERE id = ? AND state IN ('failed', 'queued')",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn outbox_cancel(&self, id: i64) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE outbox SET state = 'cancelled' WHERE id = ? AND state IN ('failed', 'queued')",
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
            "INSERT INTO listener_users (name, kurir_user, password_hash, created_at) VALUES (?, ?, ?, ?) \
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
            sqlx::query("SELECT kurir_user, password_hash FROM listener_users WHERE name = ?")
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
                sqlx::query("UPDATE listener_users SET last_login = ? WHERE name = ?")
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
        let r = sqlx::query("DELETE FROM listener_users WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn list_listener_users(&self) -> Result<Vec<ListenerUser>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, kurir_user, created_at, last_login FROM listener_users ORDER BY name",
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
