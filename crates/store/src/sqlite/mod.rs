//! The SQLite store: one file, `kurir.db`, in the data directory, in WAL mode so the daemon and a
//! CLI command can use it at the same time.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kurir_settings::{Layer, Scope, SecretInfo, SettingsSnapshot};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::crypto::MasterKey;
use crate::error::StoreError;
use crate::{Change, ExportRow, ExportValue, NewValue, Store, aad};

pub mod messages;
pub mod outbox;
pub mod web;

pub const DB_FILE: &str = "kurir.db";

/// A known plaintext sealed under the master key at creation; opening it proves a later key is
/// the same one, so a wrong key fails at once instead of producing garbage later.
pub(crate) const KEY_CHECK_PLAIN: &[u8] = b"kurir master key check v1";
pub(crate) const KEY_CHECK_AAD: &str = "meta/key_check";

pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection with `synchronous = NORMAL` for the outbox's leases and outcome marks
    /// (see `outbox.rs`): a commit there is not fsync'd, so it costs microseconds instead of an
    /// fsync, and it still survives `kill -9` (in WAL mode the commit is in the OS page cache);
    /// only a power cut can lose it, and losing a lease or a "sent" mark only means a message
    /// is sent again. Accepting a message into the queue stays on `pool` (FULL, fsync'd).
    marks: SqlitePool,
    key: MasterKey,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
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

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir` with the master key from the
    /// environment or the key file.
    pub async fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        crate::files::private_data_dir(data_dir)?;
        let key = MasterKey::load_or_create(data_dir)?;
        SqliteStore::open_with_key(&data_dir.join(DB_FILE), key).await
    }

    pub async fn open_with_key(path: &Path, key: MasterKey) -> Result<SqliteStore, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                source: e,
            })?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.clone())
            .await
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                source: e,
            })?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        restrict_file(path);
        // One connection: marks are serialised here (an in-process queue) instead of
        // contending for SQLite's write lock, whose busy handler sleeps in steps of up to 100 ms.
        let marks = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.synchronous(SqliteSynchronous::Normal))
            .await
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                source: e,
            })?;
        let store = SqliteStore {
            pool,
            marks,
            key,
            path: path.to_owned(),
        };
        store.check_key().await?;
        Ok(store)
    }

    async fn check_key(&self) -> Result<(), StoreError> {
        let row = sqlx::query("SELECT value FROM meta WHERE name = 'key_check'")
            .fetch_optional(&self.pool)
            .await?;
        let fp_row = sqlx::query("SELECT value FROM meta WHERE name = 'key_fingerprint'")
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => {
                let sealed: Vec<u8> = row.get(0);
                if self.key.open(&sealed, KEY_CHECK_AAD).ok().as_deref() != Some(KEY_CHECK_PLAIN) {
                    let expected = fp_row
                        .map(|r| String::from_utf8_lossy(&r.get::<Vec<u8>, _>(0)).into_owned())
                        .unwrap_or_else(|| "unknown".into());
                    return Err(StoreError::WrongMasterKey {
                        origin: self.key.origin.clone(),
                        given: self.key.fingerprint().to_owned(),
                        expected,
                    });
                }
            }
            None => {
                let sealed = self.key.seal(KEY_CHECK_PLAIN, KEY_CHECK_AAD);
                let mut tx = self.pool.begin().await?;
                sqlx::query("INSERT INTO meta (name, value) VALUES ('key_check', ?)")
                    .bind(sealed)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT OR REPLACE INTO meta (name, value) VALUES ('key_fingerprint', ?)",
                )
                .bind(self.key.fingerprint().as_bytes().to_vec())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn scope_exists(&self, scope: &Scope) -> Result<(), StoreError> {
        match scope {
            Scope::System | Scope::Webshop => Ok(()),
            Scope::User(code) => {
                let found = sqlx::query("SELECT 1 FROM users WHERE code = ?")
                    .bind(code)
                    .fetch_optional(&self.pool)
                    .await?;
                found
                    .map(|_| ())
                    .ok_or_else(|| StoreError::NoSuchUser(code.clone()))
            }
            Scope::Account(name) => {
                let found = sqlx::query("SELECT 1 FROM accounts WHERE name = ?")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                found
                    .map(|_| ())
                    .ok_or_else(|| StoreError::NoSuchAccount(name.clone()))
            }
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
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
                Change::Set(key, NewValue::Plain(v)) => {
                    sqlx::query("INSERT OR REPLACE INTO settings (scope, key, value, secret, set_at) VALUES (?, ?, ?, NULL, ?)")
                        .bind(&scope_key)
                        .bind(&key)
                        .bind(v)
                        .bind(&at)
                        .execute(&mut *tx)
                        .await?;
                    changed += 1;
                }
                Change::Set(key, NewValue::Secret(s)) => {
                    let sealed = self
                        .key
                        .seal(s.expose_secret().as_bytes(), &aad(&scope_key, &key));
                    sqlx::query("INSERT OR REPLACE INTO settings (scope, key, value, secret, set_at) VALUES (?, ?, NULL, ?, ?)")
                        .bind(&scope_key)
                        .bind(&key)
                        .bind(sealed)
                        .bind(&at)
                        .execute(&mut *tx)
                        .await?;
                    changed += 1;
                }
                Change::Unset(key) => {
                    let r = sqlx::query("DELETE FROM settings WHERE scope = ? AND key = ?")
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
            "SELECT secret FROM settings WHERE scope = ? AND key = ? AND secret IS NOT NULL",
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
        let r = sqlx::query("INSERT OR IGNORE INTO users (code, created_at) VALUES (?, ?)")
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
        let r = sqlx::query("DELETE FROM users WHERE code = ?")
            .bind(code)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NoSuchUser(code.to_owned()));
        }
        sqlx::query("DELETE FROM settings WHERE scope = ?")
            .bind(Scope::User(code.to_owned()).storage_key())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_account(&self, name: &str) -> Result<(), StoreError> {
        let r = sqlx::query("INSERT OR IGNORE INTO accounts (name, created_at) VALUES (?, ?)")
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
        let r = sqlx::query("DELETE FROM accounts WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NoSuchAccount(name.to_owned()));
        }
        sqlx::query("DELETE FROM settings WHERE scope = ?")
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
        let rows = sqlx::query(
            "SELECT scope, key, value, secret, set_at FROM settings ORDER BY scope, key",
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
                    sqlx::query("INSERT OR IGNORE INTO users (code, created_at) VALUES (?, ?)")
                        .bind(code)
                        .bind(&row.set_at)
                        .execute(&mut *tx)
                        .await?;
                }
                Scope::Account(name) => {
                    sqlx::query("INSERT OR IGNORE INTO accounts (name, created_at) VALUES (?, ?)")
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
            sqlx::query("INSERT OR REPLACE INTO settings (scope, key, value, secret, set_at) VALUES (?, ?, ?, ?, ?)")
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
        let row = sqlx::query("SELECT secret FROM refresh_tokens WHERE cache_key = ?")
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
        sqlx::query("INSERT OR REPLACE INTO refresh_tokens (cache_key, secret, updated_at) VALUES (?, ?, ?)")
            .bind(cache_key)
            .bind(sealed)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_refresh_token(&self, cache_key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM refresh_tokens WHERE cache_key = ?")
            .bind(cache_key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn key_fingerprint(&self) -> String {
        self.key.fingerprint().to_owned()
    }
}

fn restrict_file(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    let _ = path;
}

#[cfg(test)]
mod tests;
