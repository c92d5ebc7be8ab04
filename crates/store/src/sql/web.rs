//! [`AdminStore`] on both databases (tables from `migrations/*/0004_web.sql`).
//!
//! argon2 is deliberately slow (tens of milliseconds), so hashing and verifying run on the
//! blocking pool and never stall the async workers that serve other requests. Session tokens
//! are kept as their SHA-256 only.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

use super::{for_every_backend, now};
use crate::StoreError;
use crate::web::{
    API_KEY_PREFIX, AdminStore, AdminUser, ApiKeyInfo, NewApiKey, NewSession, Session, hash_secret,
    random_hex, session_token_hash, split_api_key, verify_secret,
};

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formatting of a valid time")
}

async fn hash_blocking(secret: SecretString) -> String {
    tokio::task::spawn_blocking(move || hash_secret(&secret))
        .await
        .expect("argon2 hashing does not panic")
}

async fn verify_blocking(secret: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || verify_secret(&secret, &phc))
        .await
        .expect("argon2 verification does not panic")
}

/// A hash of nothing in particular, verified against when the admin name is unknown so both
/// answers take the same time.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_secret(&SecretString::from(random_hex(16))))
}

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    name: String,
    created_at: String,
    last_used: Option<String>,
}

impl From<ApiKeyRow> for ApiKeyInfo {
    fn from(r: ApiKeyRow) -> ApiKeyInfo {
        ApiKeyInfo {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
            last_used: r.last_used,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ApiKeyWithHash {
    #[sqlx(flatten)]
    key: ApiKeyRow,
    secret_hash: String,
}

for_every_backend! {
    #[async_trait]
    impl AdminStore {
        async fn add_admin(&self, name: &str, password: &SecretString) -> Result<bool, StoreError> {
            let hash = hash_blocking(password.clone()).await;
            let r = sqlx::query(
                "INSERT INTO admin_users (name, password_hash, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(name)
            .bind(hash)
            .bind(now())
            .execute(&self.pool)
            .await?;
            Ok(DB::rows_affected(&r) == 1)
        }

        async fn set_admin_password(
            &self,
            name: &str,
            password: &SecretString,
        ) -> Result<bool, StoreError> {
            let hash = hash_blocking(password.clone()).await;
            let mut tx = self.pool.begin().await?;
            let r = sqlx::query("UPDATE admin_users SET password_hash = $1 WHERE name = $2")
                .bind(hash)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            // A new password is often a reaction to a leak: whoever had the old one is signed out.
            sqlx::query("DELETE FROM admin_sessions WHERE admin = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(DB::rows_affected(&r) == 1)
        }

        async fn remove_admin(&self, name: &str) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM admin_sessions WHERE admin = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            let r = sqlx::query("DELETE FROM admin_users WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(DB::rows_affected(&r) == 1)
        }

        async fn list_admins(&self) -> Result<Vec<AdminUser>, StoreError> {
            let rows = sqlx::query(
                "SELECT name, created_at, last_login FROM admin_users ORDER BY name",
            )
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| AdminUser {
                    name: r.get(0),
                    created_at: r.get(1),
                    last_login: r.get(2),
                })
                .collect())
        }

        async fn verify_admin(&self, name: &str, password: &SecretString) -> Result<bool, StoreError> {
            let row = sqlx::query("SELECT password_hash FROM admin_users WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
            let (phc, known) = match row {
                Some(r) => (r.get::<String, _>(0), true),
                None => (decoy_hash().to_owned(), false),
            };
            let ok = verify_blocking(password.expose_secret().to_owned(), phc).await && known;
            if ok {
                sqlx::query("UPDATE admin_users SET last_login = $1 WHERE name = $2")
                    .bind(now())
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
            }
            Ok(ok)
        }

        async fn create_session(
            &self,
            admin: &str,
            ttl: time::Duration,
        ) -> Result<NewSession, StoreError> {
            let token = random_hex(32);
            let csrf = random_hex(32);
            let expires_at = time::OffsetDateTime::now_utc() + ttl;
            // Expired sessions are swept here rather than by a timer: sign-ins are rare, so
            // this keeps the table small without another background task.
            sqlx::query("DELETE FROM admin_sessions WHERE expires_at < $1")
                .bind(now())
                .execute(&self.pool)
                .await?;
            sqlx::query(
                "INSERT INTO admin_sessions (token_hash, admin, csrf, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(session_token_hash(&token))
            .bind(admin)
            .bind(&csrf)
            .bind(now())
            .bind(rfc3339(expires_at))
            .execute(&self.pool)
            .await?;
            Ok(NewSession {
                token: SecretString::from(token),
                session: Session {
                    admin: admin.to_owned(),
                    csrf,
                    expires_at,
                },
            })
        }

        async fn session(&self, token: &str) -> Result<Option<Session>, StoreError> {
            let row =
                sqlx::query("SELECT admin, csrf, expires_at FROM admin_sessions WHERE token_hash = $1")
                    .bind(session_token_hash(token))
                    .fetch_optional(&self.pool)
                    .await?;
            let Some(row) = row else { return Ok(None) };
            let expires: String = row.get(2);
            let Ok(expires_at) =
                time::OffsetDateTime::parse(&expires, &time::format_description::well_known::Rfc3339)
            else {
                return Ok(None);
            };
            if expires_at <= time::OffsetDateTime::now_utc() {
                return Ok(None);
            }
            Ok(Some(Session {
                admin: row.get(0),
                csrf: row.get(1),
                expires_at,
            }))
        }

        async fn delete_session(&self, token: &str) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
                .bind(session_token_hash(token))
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn create_api_key(&self, name: &str) -> Result<Option<NewApiKey>, StoreError> {
            let id = random_hex(8);
            let secret = random_hex(24);
            let hash = hash_blocking(SecretString::from(secret.clone())).await;
            let created_at = now();
            let r = sqlx::query(
                "INSERT INTO api_keys (id, name, secret_hash, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&id)
            .bind(name)
            .bind(hash)
            .bind(&created_at)
            .execute(&self.pool)
            .await?;
            if DB::rows_affected(&r) == 0 {
                return Ok(None);
            }
            Ok(Some(NewApiKey {
                info: ApiKeyInfo {
                    id: id.clone(),
                    name: name.to_owned(),
                    created_at,
                    last_used: None,
                },
                token: SecretString::from(format!("{API_KEY_PREFIX}{id}_{secret}")),
            }))
        }

        async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>, StoreError> {
            let rows: Vec<ApiKeyRow> =
                sqlx::query_as("SELECT id, name, created_at, last_used FROM api_keys ORDER BY name")
                    .fetch_all(&self.pool)
                    .await?;
            Ok(rows.into_iter().map(ApiKeyInfo::from).collect())
        }

        async fn revoke_api_key(&self, name_or_id: &str) -> Result<bool, StoreError> {
            let r = sqlx::query("DELETE FROM api_keys WHERE name = $1 OR id = $1")
                .bind(name_or_id)
                .execute(&self.pool)
                .await?;
            Ok(DB::rows_affected(&r) > 0)
        }

        async fn verify_api_key(&self, token: &str) -> Result<Option<ApiKeyInfo>, StoreError> {
            let Some((id, secret)) = split_api_key(token) else {
                return Ok(None);
            };
            let row: Option<ApiKeyWithHash> = sqlx::query_as(
                "SELECT id, name, created_at, last_used, secret_hash FROM api_keys WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            if !verify_blocking(secret.to_owned(), row.secret_hash).await {
                return Ok(None);
            }
            self.api_key_exists(id).await?;
            Ok(Some(row.key.into()))
        }

        async fn api_key_exists(&self, id: &str) -> Result<bool, StoreError> {
            let r = sqlx::query("UPDATE api_keys SET last_used = $1 WHERE id = $2")
                .bind(now())
                .bind(id)
                .execute(&self.pool)
                .await?;
            Ok(DB::rows_affected(&r) == 1)
        }
}
}
