//! The PostgreSQL store: for several Kurir instances sharing the work (one database, several
//! daemons, possibly on several machines). It implements the same traits as
//! [`crate::SqliteStore`] with the same observable behaviour (the conformance suite in
//! `tests/conformance.rs` runs against both), with these differences:
//!
//! * Raw MIME of incoming messages lives in the database (`messages.raw`, BYTEA), never in files:
//!   the instances do not share a data directory. A [`RawMime::File`](crate::messages::RawMime)
//!   or `Segment` handed to [`MessageStore::record_batch`](crate::MessageStore::record_batch) is
//!   read from the directory given to [`PgStore::with_local_dir`] and stored inline;
//!   [`MessageStore::raw_message`](crate::MessageStore::raw_message) always answers `Inline`.
//! * The outbox's leases use `SELECT … FOR UPDATE SKIP LOCKED`, so concurrent instances get
//!   disjoint sets of messages.
//! * Account leases ([`MessageStore::try_lease_account`](crate::MessageStore::try_lease_account))
//!   expire by the database's clock.
//!
//! Secrets are sealed with the same [`MasterKey`] as in SQLite; a key check row in `meta` makes
//! a wrong key fail at connect time with [`StoreError::WrongMasterKey`].

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kurir_settings::{Layer, Scope, SecretInfo, SettingsSnapshot};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::crypto::MasterKey;
use crate::error::StoreError;
use crate::sqlite::{KEY_CHECK_AAD, KEY_CHECK_PLAIN, date_of, now};
use crate::{Change, ExportRow, ExportValue, NewValue, Store, aad};

pub mod messages;
pub mod outbox;
pub mod web;

pub struct PgStore {
    pool: PgPool,
    /// Connections with `synchronous_commit = off` for the outbox's leases and outcome marks,
    /// the counterpart of the SQLite store's `marks` connection: a commit there does not wait
    /// for the server's WAL flush. A crash of Kurir loses nothing (the server has the commit);
    /// only a crash of the PostgreSQL server can undo the last marks, which means those
    /// messages are sent again. Queueing stays on `pool` (durable commits).
    marks: PgPool,
    key: MasterKey,
    /// Where [`crate::messages::RawMime::File`]/`Segment` paths are read from at record time.
    local_dir: Option<PathBuf>,
    url: String,
    schema: Option<String>,
    /// This machine's clock (Unix ms), in which callers give the outbox's times; see
    /// [`PgStore::with_local_clock`].
    clock: fn() -> i64,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.url)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// The URL with a password (if any) replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}",
        &url[..scheme_end + 3],
        &userinfo[..colon],
        &rest[at..]
    )
}

/// PostgreSQL TEXT cannot hold NUL characters (SQLite TEXT can): a header that decodes to one
/// (`=?utf-8?q?=00?=`) must not make a message impossible to store, which would stop its
/// account's intake at that message forever. It becomes U+FFFD here; the raw MIME keeps it.
pub(crate) fn no_nul(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s
    }
}

/// A schema name is put into SQL text, so only plain identifiers are accepted.
fn valid_schema(schema: &str) -> bool {
    !schema.is_empty()
        && schema.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !schema.starts_with(|c: char| c.is_ascii_digit())
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:5432/database`), brings the schema up
    /// to date and checks the master key. Name the user in the URL (or set `PGUSER`): unlike
    /// libpq, sqlx does not fall back to the operating-system user.
    pub async fn connect(url: &str, key: MasterKey) -> Result<PgStore, StoreError> {
        PgStore::connect_in_schema(url, None, key).await
    }

    /// Like [`PgStore::connect`], with Kurir's tables in `schema` (created if missing; only
    /// letters, digits and `_`): several installations, or tests, can then share one database.
    pub async fn connect_in_schema(
        url: &str,
        schema: Option<&str>,
        key: MasterKey,
    ) -> Result<PgStore, StoreError> {
        let redacted = redact_url(url);
        let connect_err = |source| StoreError::Connect {
            url: redacted.clone(),
            source,
        };
        let mut opts = PgConnectOptions::from_str(url).map_err(connect_err)?;
        if let Some(s) = schema {
            if !valid_schema(s) {
                return Err(connect_err(sqlx::Error::Configuration(
                    format!("the schema name {s:?} may only hold letters, digits and _").into(),
                )));
            }
            // Only this schema: nothing is read from or created in `public` by accident.
            opts = opts.options([("search_path", s)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await
            .map_err(connect_err)?;
        if let Some(s) = schema {
            create_schema(&pool, s).await?;
        }
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let marks = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.options([("synchronous_commit", "off")]))
            .await
            .map_err(connect_err)?;
        let store = PgStore {
            pool,
            marks,
            key,
            local_dir: None,
            url: redacted,
            schema: schema.map(str::to_owned),
            clock: crate::outbox::now_ms,
        };
        store.check_key().await?;
        Ok(store)
    }

    /// The directory that [`crate::messages::RawMime::File`] and `Segment` paths handed to
    /// `record_batch` are relative to (the instance's data directory). Their bytes are copied
    /// into the database; without this, such a message is refused.
    pub fn with_local_dir(mut self, dir: impl Into<PathBuf>) -> PgStore {
        self.local_dir = Some(dir.into());
        self
    }

    /// The clock this machine reads (default: the system clock). Callers give the outbox's
    /// times (now, lease ends, next attempts) in it; the store keeps and compares them in the
    /// *database's* clock, as the same distance from the database's now, because several
    /// instances share the outbox and their clocks differ. Tests give a skewed clock here to
    /// play an instance on a machine whose clock is off.
    pub fn with_local_clock(mut self, clock: fn() -> i64) -> PgStore {
        self.clock = clock;
        self
    }

    /// The URL connected to, without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Closes the connections (waits for queries in flight).
    pub async fn close(&self) {
        self.marks.close().await;
        self.pool.close().await;
    }

    async fn check_key(&self) -> Result<(), StoreError> {
        // Twice at most: when two instances start on an empty database at once, one of them
        // writes the check row and the other reads it on the second round.
        for _ in 0..2 {
            let row = sqlx::query("SELECT value FROM meta WHERE name = 'key_check'")
                .fetch_optional(&self.pool)
                .await?;
            if let Some(row) = row {
                let sealed: Vec<u8> = row.get(0);
                if self.key.open(&sealed, KEY_CHECK_AAD).ok().as_deref() == Some(KEY_CHECK_PLAIN) {
                    return Ok(());
                }
                let expected = sqlx::query("SELECT value FROM meta WHERE name = 'key_fingerprint'")
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| String::from_utf8_lossy(&r.get::<Vec<u8>, _>(0)).into_owned())
                    .unwrap_or_else(|| "unknown".into());
                return Err(StoreError::WrongMasterKey {
                    origin: self.key.origin.clone(),
                    given: self.key.fingerprint().to_owned(),
                    expected,
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
            if r.rows_affected() == 1 {
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

    async fn scope_exists(&self, scope: &Scope) -> Result<(), StoreError> {
        match scope {
            Scope::System | Scope::Webshop => Ok(()),
            Scope::User(code) => {
                let found = sqlx::query("SELECT 1 FROM users WHERE code = $1")
                    .bind(code)
                    .fetch_optional(&self.pool)
                    .await?;
                found
                    .map(|_| ())
                    .ok_or_else(|| StoreError::NoSuchUser(code.clone()))
            }
            Scope::Account(name) => {
                let found = sqlx::query("SELECT 1 FROM accounts WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                found
                    .map(|_| ())
                    .ok_or_else(|| StoreError::NoSuchAccount(name.clone()))
            }
        }
    }

    pub(crate) fn local_dir(&self) -> Option<&Path> {
        self.local_dir.as_deref()
    }
}

async fn create_schema(pool: &PgPool, schema: &str) -> Result<(), StoreError> {
    let sql = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
    if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await {
        // Two instances creating it at the same moment: one of them gets a unique violation
        // although IF NOT EXISTS; fine if it exists now.
        let exists = sqlx::query("SELECT 1 FROM pg_namespace WHERE nspname = $1")
            .bind(schema)
            .fetch_optional(pool)
            .await?
            .is_some();
        if !exists {
            return Err(e.into());
        }
    }
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    async fn snapshot(&self) -> Result<SettingsSnapshot, StoreError> {
        let mut snap = SettingsSnapshot::default();
        for row in sqlx::query("SELECT code FROM users ORDER BY code")
            .fetch_all(&self.pool)
            .await?
        {
            snap.users.insert(row.get(0), Layer::default());
        }
        for row in sqlx::query("SELECT name FROM accounts ORDER BY name")
            .fetch_all(&self.pool)
            .await?
        {
            snap.accounts.insert(row.get(0), Layer::default());
        }
        let rows = sqlx::query("SELECT scope, key, value, secret, set_at FROM settings")
            .fetch_all(&self.pool)
            .await?;
        for row in rows {
            let scope_key: String = row.get(0);
            let key: String = row.get(1);
            let Some(scope) = Scope::from_storage_key(&scope_key) else {
                continue;
            };
            let layer = match &scope {
                Scope::System => &mut snap.system,
                Scope::Webshop => &mut snap.webshop,
                Scope::User(c) => snap.users.entry(c.clone()).or_default(),
                Scope::Account(n) => snap.accounts.entry(n.clone()).or_default(),
            };
            let value: Option<String> = row.get(2);
            let secret: Option<Vec<u8>> = row.get(3);
            let set_at: String = row.get(4);
            match (value, secret) {
                (Some(v), _) => {
                    layer.set_plain(&key, v);
                }
                (None, Some(sealed)) => {
                    // Decrypted only to compute the mask; the plaintext is dropped at once.
                    let plain = self.key.open(&sealed, &aad(&scope_key, &key))?;
                    let info = SecretInfo::mask(&String::from_utf8_lossy(&plain), date_of(&set_at));
                    layer.set_secret(&key, info);
                }
                (None, None) => {}
            }
        }
        Ok(snap)
    }

    async fn apply(&self, scope: &Scope, changes: Vec<Change>) -> Result<usize, StoreError> {
        self.scope_exists(scope).await?;
        let scope_key = scope.storage_key();
        let at = now();
        let mut changed = 0;
        let mut tx = self.pool.begin().await?;
        for change in changes {
            match change {
                Change::Set(key, value) => {
                    let (plain, sealed) = match value {
                        NewValue::Plain(v) => (Some(v), None),
                        NewValue::Secret(s) => (
                            None,
                            Some(
                                self.key
                                    .seal(s.expose_secret().as_bytes(), &aad(&scope_key, &key)),
                            ),
                        ),
                    };
                    sqlx::query(
                        "INSERT INTO settings (scope, key, value, secret, set_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, key) DO UPDATE SET \
                         value = excluded.value, secret = excluded.secret, set_at = excluded.set_at",
                    )
                    .bind(&scope_key)
                    .bind(&key)
                    .bind(plain)
                    .bind(sealed)
                    .bind(&at)
                    .execute(&mut *tx)
                    .await?;
                    changed += 1;
                }
                Change::Unset(key) => {
                    let r = sqlx::query("DELETE FROM settings WHERE scope = $1 AND key = $2")
                        .bind(&scope_key)
                        .bind(&key)
                        .execute(&mut *tx)
                        .await?;
                    changed += r.rows_affected() as usize;
                }
            }
        }
        tx.commit().await?;
        Ok(changed)
    }

    async fn reveal(&self, scope: &Scope, key: &str) -> Result<Option<SecretString>, StoreError> {
        let scope_key = scope.storage_key();
        let row = sqlx::query(
            "SELECT secret FROM settings WHERE scope = $1 AND key = $2 AND secret IS NOT NULL",
        )
        .bind(&scope_key)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let sealed: Vec<u8> = row.get(0);
                let plain = self.key.open(&sealed, &aad(&scope_key, key))?;
                let text = String::from_utf8(plain).map_err(|_| StoreError::CorruptSecret {
                    place: aad(&scope_key, key),
                })?;
                Ok(Some(SecretString::from(text)))
            }
        }
    }

    async fn add_user(&self, code: &str) -> Result<(), StoreError> {
        let r = sqlx::query(
            "INSERT INTO users (code, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(code)
        .bind(now())
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::UserExists(code.to_owned()));
        }
        Ok(())
    }

    async fn remove_user(&self, code: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("DELETE FROM users WHERE code = $1")
            .bind(code)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NoSuchUser(code.to_owned()));
        }
        sqlx::query("DELETE FROM settings WHERE scope = $1")
            .bind(Scope::User(code.to_owned()).storage_key())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_account(&self, name: &str) -> Result<(), StoreError> {
        let r = sqlx::query(
            "INSERT INTO accounts (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(now())
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::AccountExists(name.to_owned()));
        }
        Ok(())
    }

    async fn remove_account(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("DELETE FROM accounts WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NoSuchAccount(name.to_owned()));
        }
        sqlx::query("DELETE FROM settings WHERE scope = $1")
            .bind(Scope::Account(name.to_owned()).storage_key())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn export_rows(&self, include_secrets: bool) -> Result<Vec<ExportRow>, StoreError> {
        let mut out = Vec::new();
        // Users and accounts without settings still need to travel: an empty marker row each.
        for row in sqlx::query("SELECT code, created_at FROM users ORDER BY code")
            .fetch_all(&self.pool)
            .await?
        {
            out.push(ExportRow {
                scope: Scope::User(row.get(0)).storage_key(),
                key: String::new(),
                value: ExportValue::Plain(String::new()),
                set_at: row.get(1),
            });
        }
        for row in sqlx::query("SELECT name, created_at FROM accounts ORDER BY name")
            .fetch_all(&self.pool)
            .await?
        {
            out.push(ExportRow {
                scope: Scope::Account(row.get(0)).storage_key(),
                key: String::new(),
                value: ExportValue::Plain(String::new()),
                set_at: row.get(1),
            });
        }
        // COLLATE "C": byte order, as SQLite sorts text.
        let rows = sqlx::query(
            "SELECT scope, key, value, secret, set_at FROM settings \
             ORDER BY scope COLLATE \"C\", key COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let value: Option<String> = row.get(2);
            let secret: Option<Vec<u8>> = row.get(3);
            let value = match (value, secret) {
                (Some(v), _) => ExportValue::Plain(v),
                (None, Some(s)) if include_secrets => ExportValue::Sealed(B64.encode(s)),
                _ => continue,
            };
            out.push(ExportRow {
                scope: row.get(0),
                key: row.get(1),
                value,
                set_at: row.get(4),
            });
        }
        Ok(out)
    }

    async fn import_rows(
        &self,
        rows: Vec<ExportRow>,
        key_fingerprint: Option<&str>,
    ) -> Result<usize, StoreError> {
        let has_sealed = rows
            .iter()
            .any(|r| matches!(r.value, ExportValue::Sealed(_)));
        if has_sealed && key_fingerprint != Some(self.key.fingerprint()) {
            return Err(StoreError::ForeignExport {
                given: key_fingerprint.unwrap_or("none").to_owned(),
                expected: self.key.fingerprint().to_owned(),
            });
        }
        let mut tx = self.pool.begin().await?;
        let mut n = 0;
        for row in rows {
            let scope =
                Scope::from_storage_key(&row.scope).ok_or_else(|| StoreError::CorruptSecret {
                    place: row.scope.clone(),
                })?;
            match &scope {
                Scope::User(code) => {
                    sqlx::query(
                        "INSERT INTO users (code, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    )
                    .bind(code)
                    .bind(&row.set_at)
                    .execute(&mut *tx)
                    .await?;
                }
                Scope::Account(name) => {
                    sqlx::query(
                        "INSERT INTO accounts (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    )
                    .bind(name)
                    .bind(&row.set_at)
                    .execute(&mut *tx)
                    .await?;
                }
                _ => {}
            }
            if row.key.is_empty() {
                continue;
            }
            let (value, secret) = match row.value {
                ExportValue::Plain(v) => (Some(v), None),
                ExportValue::Sealed(b) => {
                    let sealed =
                        B64.decode(b.as_bytes())
                            .map_err(|_| StoreError::CorruptSecret {
                                place: aad(&row.scope, &row.key),
                            })?;
                    // Prove it opens here before storing it.
                    self.key.open(&sealed, &aad(&row.scope, &row.key))?;
                    (None, Some(sealed))
                }
            };
            sqlx::query(
                "INSERT INTO settings (scope, key, value, secret, set_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value, \
                 secret = excluded.secret, set_at = excluded.set_at",
            )
            .bind(&row.scope)
            .bind(&row.key)
            .bind(value)
            .bind(secret)
            .bind(&row.set_at)
            .execute(&mut *tx)
            .await?;
            n += 1;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn load_refresh_token(
        &self,
        cache_key: &str,
    ) -> Result<Option<SecretString>, StoreError> {
        let row = sqlx::query("SELECT secret FROM refresh_tokens WHERE cache_key = $1")
            .bind(cache_key)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let place = aad("refresh_token", cache_key);
        let plain = self.key.open(&row.get::<Vec<u8>, _>(0), &place)?;
        let text = String::from_utf8(plain).map_err(|_| StoreError::CorruptSecret { place })?;
        Ok(Some(SecretString::from(text)))
    }

    async fn save_refresh_token(
        &self,
        cache_key: &str,
        token: &SecretString,
    ) -> Result<(), StoreError> {
        let sealed = self.key.seal(
            token.expose_secret().as_bytes(),
            &aad("refresh_token", cache_key),
        );
        sqlx::query(
            "INSERT INTO refresh_tokens (cache_key, secret, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (cache_key) DO UPDATE SET secret = excluded.secret, \
             updated_at = excluded.updated_at",
        )
        .bind(cache_key)
        .bind(sealed)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_refresh_token(&self, cache_key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM refresh_tokens WHERE cache_key = $1")
            .bind(cache_key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn key_fingerprint(&self) -> String {
        self.key.fingerprint().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://kurir:s3cret@db.example:5432/kurir"),
            "postgres://kurir:***@db.example:5432/kurir"
        );
        assert_eq!(
            redact_url("postgres://127.0.0.1:5432/test"),
            "postgres://127.0.0.1:5432/test"
        );
        assert_eq!(
            redact_url("postgres://kurir@db/kurir?sslmode=require"),
            "postgres://kurir@db/kurir?sslmode=require"
        );
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema("kurir_test_1"));
        assert!(!valid_schema("a\"; DROP TABLE x; --"));
        assert!(!valid_schema("1abc"));
        assert!(!valid_schema(""));
    }
}
