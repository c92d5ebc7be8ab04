//! Who may use the admin web UI and the REST API: local admin users with passwords, their
//! browser sessions, and API keys for scripts.
//!
//! Kurir runs unattended next to an ERP, often without a directory to sign in against, so it
//! keeps its own small list of admins. What is stored can never be replayed: passwords and API
//! key secrets are argon2id hashes ([`hash_secret`], [`verify_secret`]); session tokens are
//! stored as SHA-256 ([`session_token_hash`]), enough for 256 random bits and cheap on every
//! request. The plaintext of a new session token or API key leaves the store exactly once, in
//! the value that creates it.

use async_trait::async_trait;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::StoreError;

/// The prefix every API key starts with, so a leaked key is recognisable (secret scanners,
/// log filters) and a pasted password is not mistaken for one.
pub const API_KEY_PREFIX: &str = "kurir_";

/// A local admin user (never with the hash).
#[derive(Debug, Clone, Serialize)]
pub struct AdminUser {
    pub name: String,
    pub created_at: String,
    pub last_login: Option<String>,
}

/// A signed-in browser session.
#[derive(Debug, Clone)]
pub struct Session {
    pub admin: String,
    /// Every form carries this; a POST without it is refused.
    pub csrf: String,
    pub expires_at: time::OffsetDateTime,
}

/// What is known of an API key (never its secret).
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub last_used: Option<String>,
}

/// A key just created: the only time its full value exists outside the caller's hands.
pub struct NewApiKey {
    pub info: ApiKeyInfo,
    /// `kurir_<id>_<secret>`.
    pub token: SecretString,
}

/// A freshly created session and its token (the cookie value).
pub struct NewSession {
    pub token: SecretString,
    pub session: Session,
}

#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Adds an admin; `Ok(false)` if the name is taken.
    async fn add_admin(&self, name: &str, password: &SecretString) -> Result<bool, StoreError>;
    /// Sets a new password and ends the admin's sessions; `Ok(false)` if there is no such admin.
    async fn set_admin_password(
        &self,
        name: &str,
        password: &SecretString,
    ) -> Result<bool, StoreError>;
    /// Removes an admin and their sessions; `Ok(false)` if there was none.
    async fn remove_admin(&self, name: &str) -> Result<bool, StoreError>;
    async fn list_admins(&self) -> Result<Vec<AdminUser>, StoreError>;
    /// Checks a password. Unknown names cost the same argon2 work as known ones, so the timing
    /// does not tell which admin names exist.
    async fn verify_admin(&self, name: &str, password: &SecretString) -> Result<bool, StoreError>;

    /// Starts a session lasting `ttl`.
    async fn create_session(
        &self,
        admin: &str,
        ttl: time::Duration,
    ) -> Result<NewSession, StoreError>;
    /// The live session for a cookie value (expired ones are treated as absent).
    async fn session(&self, token: &str) -> Result<Option<Session>, StoreError>;
    async fn delete_session(&self, token: &str) -> Result<(), StoreError>;

    /// Creates an API key; `Ok(None)` if the name is taken.
    async fn create_api_key(&self, name: &str) -> Result<Option<NewApiKey>, StoreError>;
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>, StoreError>;
    /// Revokes by name or id; `Ok(false)` if there was none.
    async fn revoke_api_key(&self, name_or_id: &str) -> Result<bool, StoreError>;
    /// The key a bearer token belongs to, if it is valid (argon2: call it rarely, cache the
    /// outcome by [`ApiKeyInfo::id`] and re-check with [`AdminStore::api_key_exists`]).
    async fn verify_api_key(&self, token: &str) -> Result<Option<ApiKeyInfo>, StoreError>;
    /// Whether a key id is still there (not revoked); also records its use.
    async fn api_key_exists(&self, id: &str) -> Result<bool, StoreError>;
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The stored form of a session token.
pub fn session_token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// An argon2id PHC string for a password or API key secret (salted, default OWASP parameters).
pub fn hash_secret(secret: &SecretString) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(secret.expose_secret().as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any input")
        .to_string()
}

/// Checks a secret against a PHC string; a malformed stored hash is simply a mismatch.
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(secret.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Splits `kurir_<id>_<secret>` into id and secret.
pub fn split_api_key(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(API_KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()) && secret.len() >= 32)
        .then_some((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip_and_mismatch() {
        let phc = hash_secret(&SecretString::from("correct horse"));
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_secret("correct horse", &phc));
        assert!(!verify_secret("Correct horse", &phc));
        assert!(!verify_secret("correct horse", "not a hash"));
    }

    #[test]
    fn api_key_shape() {
        let id = "0123456789abcdef";
        let secret = random_hex(24);
        let token = format!("{API_KEY_PREFIX}{id}_{secret}");
        assert_eq!(split_api_key(&token), Some((id, secret.as_str())));
        assert_eq!(split_api_key("kurir_short_x"), None);
        assert_eq!(split_api_key("Bearer something"), None);
    }
}
