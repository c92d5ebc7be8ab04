//! [`Store`] (settings, users, accounts, refresh tokens) on both databases.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kurir_settings::{Layer, Scope, SecretInfo, SettingsSnapshot};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

use super::{date_of, for_every_backend, now};
use crate::error::StoreError;
use crate::{Change, ExportRow, ExportValue, NewValue, Store, aad};

for_every_backend! {
    impl {
        /// Adds a user or an account with its first settings in one transaction.
        async fn add_subject(&self, scope: &Scope, changes: Vec<Change>) -> Result<(), StoreError> {
            let (sql, name, exists): (&str, &String, fn(String) -> StoreError) = match scope {
                Scope::User(code) => (
                    "INSERT INTO users (code, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    code,
                    StoreError::UserExists,
                ),
                Scope::Account(name) => (
                    "INSERT INTO accounts (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    name,
                    StoreError::AccountExists,
                ),
                Scope::System | Scope::Webshop => return Ok(()),
            };
            let mut tx = self.pool.begin().await?;
            let r = sqlx::query(sql)
                .bind(name.as_str())
                .bind(now())
                .execute(&mut *tx)
                .await?;
            if DB::rows_affected(&r) == 0 {
                return Err(exists(name.clone()));
            }
            self.write_changes(&mut tx, scope, changes).await?;
            tx.commit().await?;
            Ok(())
        }

        /// Writes one scope's changes inside the caller's transaction; how many rows changed.
        async fn write_changes(
            &self,
            conn: &mut DB::Connection,
            scope: &Scope,
            changes: Vec<Change>,
        ) -> Result<usize, StoreError> {
            let scope_key = scope.storage_key();
            let at = now();
            let mut changed = 0;
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
                        .bind(scope_key.as_str())
                        .bind(key.as_str())
                        .bind(plain)
                        .bind(sealed)
                        .bind(at.as_str())
                        .execute(&mut *conn)
                        .await?;
                        changed += 1;
                    }
                    Change::Unset(key) => {
                        let r = sqlx::query("DELETE FROM settings WHERE scope = $1 AND key = $2")
                            .bind(scope_key.as_str())
                            .bind(key.as_str())
                            .execute(&mut *conn)
                            .await?;
                        changed += DB::rows_affected(&r) as usize;
                    }
                }
            }
            Ok(changed)
        }
    }
}

for_every_backend! {
    #[async_trait]
    impl Store {
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
            let mut tx = self.pool.begin().await?;
            let changed = self.write_changes(&mut tx, scope, changes).await?;
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

        async fn add_user_with(&self, code: &str, changes: Vec<Change>) -> Result<(), StoreError> {
            self.add_subject(&Scope::User(code.to_owned()), changes).await
        }

        async fn remove_user(&self, code: &str) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            let r = sqlx::query("DELETE FROM users WHERE code = $1")
                .bind(code)
                .execute(&mut *tx)
                .await?;
            if DB::rows_affected(&r) == 0 {
                return Err(StoreError::NoSuchUser(code.to_owned()));
            }
            sqlx::query("DELETE FROM settings WHERE scope = $1")
                .bind(Scope::User(code.to_owned()).storage_key())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }

        async fn add_account_with(
            &self,
            name: &str,
            changes: Vec<Change>,
        ) -> Result<(), StoreError> {
            self.add_subject(&Scope::Account(name.to_owned()), changes).await
        }

        async fn remove_account(&self, name: &str) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            let r = sqlx::query("DELETE FROM accounts WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            if DB::rows_affected(&r) == 0 {
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
                let rows = sqlx::query(
                "SELECT scope, key, value, secret, set_at FROM settings \
                 ORDER BY scope, key",
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
}
