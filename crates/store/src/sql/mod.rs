//! The store, written once over sqlx for both databases.
//!
//! [`SqlStore`] holds the SQL text and the row decoding of every operation; [`Backend`] is what
//! differs between SQLite and PostgreSQL, and it is small on purpose: the current time as SQL
//! (leases compare against the *database's* clock), the lock clause of the outbox's lease
//! query, whether raw MIME lives in the database, and where the store's local files are.
//! Connecting and migrations are in [`crate::sqlite`] and [`crate::postgres`].
//!
//! The SQL is the dialect both databases share: `$N` parameters (SQLite accepts them),
//! `ON CONFLICT … DO UPDATE/NOTHING`, `RETURNING`, `CAST(… AS TEXT)`, `COUNT(*) FILTER`, and
//! `WITH … AS MATERIALIZED`. Text sorts in byte order on both (PostgreSQL's sorted columns
//! are `COLLATE "C"`, migration 0007), so listings come back in the same order everywhere.

use std::path::Path;

use kurir_settings::Scope;
use sqlx::{Database, Pool};

use crate::crypto::MasterKey;
use crate::error::StoreError;

mod lifecycle;
mod messages;
mod outbox;
mod settings;
mod web;

#[cfg(test)]
mod tests;

/// What one database does differently from the other; everything else is [`SqlStore`]'s.
pub trait Backend: Database {
    /// Where this backend's store keeps its own things (file path, URL, local directory).
    type Place: Send + Sync + std::fmt::Debug;

    /// `sqlite` or `postgres`, for logs and metrics.
    const KIND: &'static str;

    /// The database's clock in Unix milliseconds, as an SQL expression. Leases and the outbox's
    /// due times are kept in it: several instances sharing a PostgreSQL outbox have clocks
    /// that differ, the database has one.
    const NOW_MS: &'static str;

    /// Appended to the outbox's lease query: PostgreSQL skips rows another instance is leasing
    /// at this moment (`FOR UPDATE SKIP LOCKED`); SQLite serialises writers anyway.
    const SKIP_LOCKED: &'static str;

    /// Whether raw MIME is kept in the database (PostgreSQL: instances share no disk) rather
    /// than as the file or segment the intake wrote (SQLite, beside the database file).
    const RAW_IN_DB: bool;

    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// The directory that raw MIME files and segments are relative to.
    fn local_dir(place: &Self::Place) -> Option<&Path>;
}

/// Writes an `impl` block for [`SqlStore`] over every [`Backend`], with the bounds that let
/// generic sqlx code bind, run and decode the types the store uses. Rust does not carry a
/// trait's where-clauses to its users, so they are written here, once, instead of on every
/// block.
macro_rules! for_every_backend {
    ($(#[$m:meta])* impl $($Trait:path)? { $($body:tt)* }) => {
        $(#[$m])*
        impl<DB: $crate::sql::Backend> $($Trait for)? $crate::sql::SqlStore<DB>
        where
            for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
            DB::Arguments: sqlx::IntoArguments<DB>,
            for<'r> &'r str: sqlx::ColumnIndex<DB::Row>,
            usize: sqlx::ColumnIndex<DB::Row>,
            for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Decode<'t, DB> + sqlx::Type<DB>,
            for<'t> Option<i64>: sqlx::Encode<'t, DB> + sqlx::Decode<'t, DB> + sqlx::Type<DB>,
            for<'t> String: sqlx::Encode<'t, DB> + sqlx::Decode<'t, DB> + sqlx::Type<DB>,
            for<'t> Option<String>: sqlx::Encode<'t, DB> + sqlx::Decode<'t, DB> + sqlx::Type<DB>,
            for<'t> &'t str: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
            for<'t> Option<&'t str>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
            for<'t> Vec<u8>: sqlx::Encode<'t, DB> + sqlx::Decode<'t, DB> + sqlx::Type<DB>,
            for<'t> Option<Vec<u8>>: sqlx::Encode<'t, DB> + sqlx::Decode<'t, DB> + sqlx::Type<DB>,
        {
            $($body)*
        }
    };
}
pub(crate) use for_every_backend;

/// Kurir's store on one database. Use it as [`crate::SqliteStore`] or [`crate::PgStore`].
pub struct SqlStore<DB: Backend> {
    pub(crate) pool: Pool<DB>,
    /// Connections whose commits do not wait for the disk (SQLite `synchronous = NORMAL`,
    /// PostgreSQL `synchronous_commit = off`) for the outbox's leases and outcome marks: the
    /// moment between the server's acceptance and the "sent" mark is when a `kill -9` makes a
    /// duplicate, so that mark must cost microseconds, not an fsync. It still survives a crash
    /// of Kurir; only a crash of the machine or database server can undo the last marks, which
    /// sends those messages again, never loses them. Queueing stays on `pool` (durable).
    pub(crate) marks: Pool<DB>,
    pub(crate) key: MasterKey,
    /// This machine's clock (Unix ms), in which callers give the outbox's times.
    pub(crate) clock: fn() -> i64,
    pub(crate) place: DB::Place,
}

impl<DB: Backend> std::fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &DB::KIND)
            .field("place", &self.place)
            .finish_non_exhaustive()
    }
}

impl<DB: Backend> SqlStore<DB> {
    /// The clock this machine reads (default: the system clock). Callers give the outbox's
    /// times (now, lease ends, next attempts) in it; the store keeps and compares them in the
    /// *database's* clock, as the same distance from the database's now. Tests give a skewed
    /// clock here to play an instance on a machine whose clock is off.
    pub fn with_local_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    /// Closes the connections (waits for queries in flight).
    pub async fn close(&self) {
        self.marks.close().await;
        self.pool.close().await;
    }

    pub(crate) fn local_dir(&self) -> Option<&Path> {
        DB::local_dir(&self.place)
    }
}

/// A known plaintext sealed under the master key at creation; opening it proves a later key is
/// the same one, so a wrong key fails at once instead of producing garbage later.
const KEY_CHECK_PLAIN: &[u8] = b"kurir master key check v1";
const KEY_CHECK_AAD: &str = "meta/key_check";

for_every_backend! {
    impl {
        pub(crate) async fn check_key(&self) -> Result<(), StoreError> {
            // Twice at most: when two instances start on an empty database at once, one of
            // them writes the check row and the other reads it on the second round.
            for _ in 0..2 {
                let sealed: Option<Vec<u8>> =
                    sqlx::query_scalar("SELECT value FROM meta WHERE name = 'key_check'")
                        .fetch_optional(&self.pool)
                        .await?;
                if let Some(sealed) = sealed {
                    if self.key.open(&sealed, KEY_CHECK_AAD).ok().as_deref() == Some(KEY_CHECK_PLAIN)
                    {
                        return Ok(());
                    }
                    let expected: Option<Vec<u8>> =
                        sqlx::query_scalar("SELECT value FROM meta WHERE name = 'key_fingerprint'")
                            .fetch_optional(&self.pool)
                            .await?;
                    return Err(StoreError::WrongMasterKey {
                        origin: self.key.origin.clone(),
                        given: self.key.fingerprint().to_owned(),
                        expected: expected
                            .map(|v| String::from_utf8_lossy(&v).into_owned())
                            .unwrap_or_else(|| "unknown".into()),
                    });
                }
                let sealed = self.key.seal(KEY_CHECK_PLAIN, KEY_CHECK_AAD);
                let mut tx = self.pool.begin().await?;
                let r = sqlx::query(
                    "INSERT INTO meta (name, value) VALUES ('key_check', $1) ON CONFLICT DO NOTHING",
                )
                .bind(sealed)
                .execute(&mut *tx)
                .await?;
                if DB::rows_affected(&r) == 1 {
                    sqlx::query(
                        "INSERT INTO meta (name, value) VALUES ('key_fingerprint', $1) \
                         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    )
                    .bind(self.key.fingerprint().as_bytes().to_vec())
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    return Ok(());
                }
                tx.rollback().await?;
            }
            Err(StoreError::Db(sqlx::Error::Protocol(
                "the master key check row appeared and vanished while connecting".into(),
            )))
        }

        pub(crate) async fn scope_exists(&self, scope: &Scope) -> Result<(), StoreError> {
            let (sql, name, missing): (&str, &String, fn(String) -> StoreError) = match scope {
                Scope::System | Scope::Webshop => return Ok(()),
                Scope::User(code) => (
                    "SELECT code FROM users WHERE code = $1",
                    code,
                    StoreError::NoSuchUser,
                ),
                Scope::Account(name) => (
                    "SELECT name FROM accounts WHERE name = $1",
                    name,
                    StoreError::NoSuchAccount,
                ),
            };
            let found: Option<String> = sqlx::query_scalar(sql)
                .bind(name.as_str())
                .fetch_optional(&self.pool)
                .await?;
            found.map(|_| ()).ok_or_else(|| missing(name.clone()))
        }
    }
}

pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formatting of the current time")
}

pub(crate) fn date_of(set_at: &str) -> time::Date {
    time::OffsetDateTime::parse(set_at, &time::format_description::well_known::Rfc3339)
        .map(|t| t.date())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH.date())
}

/// PostgreSQL TEXT cannot hold NUL characters: a header that decodes to one
/// (`=?utf-8?q?=00?=`) must not make a message impossible to store, which would stop its
/// account's intake at that message forever. It becomes U+FFFD, on both databases so they
/// answer alike; the raw MIME keeps it.
pub(crate) fn no_nul(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s
    }
}

/// `$first, $first+1, …` for `n` values: an `IN (…)` list or a row of a multi-row `VALUES`.
pub(crate) fn params(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows of `width` parameters each, numbered on from `first`: `($1, $2), ($3, $4)`.
pub(crate) fn value_rows(first: usize, rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", params(first + r * width, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The SQL for a time the caller gives in its own clock (parameter `$at`), in the database's
/// clock: the database's now plus the same distance from the caller's now (parameter `$local`).
pub(crate) fn db_time<DB: Backend>(at: usize, local: usize) -> String {
    format!("({} + (${at} - ${local}))", DB::NOW_MS)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn parameter_lists_are_numbered_on() {
        assert_eq!(params(2, 3), "$2, $3, $4");
        assert_eq!(value_rows(1, 2, 2), "($1, $2), ($3, $4)");
    }
}
