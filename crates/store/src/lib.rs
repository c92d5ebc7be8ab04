//! Kurir's durable store.
//!
//! [`Store`], [`MessageStore`], [`OutboxStore`] and [`AdminStore`] are what the rest of Kurir
//! uses. They have one implementation, [`sql::SqlStore`], generic over the database: SQLite by
//! default ([`SqliteStore`], one file in the data directory) and PostgreSQL for several
//! instances sharing the work ([`PgStore`]); `tests/conformance.rs` runs every case on both. Secrets are sealed with the
//! [`crypto::MasterKey`] before they reach either database, and only [`Store::reveal`] opens one.

pub mod any;
pub mod crypto;
pub mod error;
pub mod files;
pub mod lifecycle;
pub mod messages;
pub mod outbox;
pub mod postgres;
pub mod sql;
pub mod sqlite;
pub mod web;

use async_trait::async_trait;
use kurir_settings::{Scope, SettingsSnapshot};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use any::{KurirStore, open_store};
pub use crypto::MasterKey;
pub use error::StoreError;
pub use files::private_data_dir;
pub use lifecycle::LifecycleStore;
pub use messages::MessageStore;
pub use outbox::OutboxStore;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use web::AdminStore;

/// A value to write.
pub enum NewValue {
    Plain(String),
    Secret(SecretString),
}

/// One change to a scope's layer; several are applied in one transaction.
pub enum Change {
    Set(String, NewValue),
    Unset(String),
}

/// A stored setting as it leaves or enters the store for export/import: plain values as text,
/// secrets still sealed (base64), so an export file never holds a plaintext secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRow {
    pub scope: String,
    pub key: String,
    pub value: ExportValue,
    pub set_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportValue {
    Plain(String),
    Sealed(String),
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Every layer, with secrets as masked [`kurir_settings::SecretInfo`].
    async fn snapshot(&self) -> Result<SettingsSnapshot, StoreError>;

    /// Applies changes to one scope atomically. The scope (user, account) must exist. Returns
    /// how many rows changed.
    async fn apply(&self, scope: &Scope, changes: Vec<Change>) -> Result<usize, StoreError>;

    /// The plaintext of a secret setting stored exactly at `scope` (no inheritance: resolve
    /// first to learn where the effective value lives).
    async fn reveal(&self, scope: &Scope, key: &str) -> Result<Option<SecretString>, StoreError>;

    /// Adds the user with its first settings in ONE transaction: when a setting is refused,
    /// no half-made user is left behind.
    async fn add_user_with(&self, code: &str, changes: Vec<Change>) -> Result<(), StoreError>;
    async fn add_user(&self, code: &str) -> Result<(), StoreError> {
        self.add_user_with(code, Vec::new()).await
    }
    /// Removes the user and every setting written for it.
    async fn remove_user(&self, code: &str) -> Result<(), StoreError>;
    /// Adds the account with its first settings in ONE transaction (see
    /// [`Store::add_user_with`]).
    async fn add_account_with(&self, name: &str, changes: Vec<Change>) -> Result<(), StoreError>;
    async fn add_account(&self, name: &str) -> Result<(), StoreError> {
        self.add_account_with(name, Vec::new()).await
    }
    async fn remove_account(&self, name: &str) -> Result<(), StoreError>;

    async fn export_rows(&self, include_secrets: bool) -> Result<Vec<ExportRow>, StoreError>;
    /// Imports rows in one transaction, creating users and accounts they name. Sealed values
    /// must come from a store with the same master key.
    async fn import_rows(
        &self,
        rows: Vec<ExportRow>,
        key_fingerprint: Option<&str>,
    ) -> Result<usize, StoreError>;

    /// Refresh tokens of delegated sign-ins, sealed like secrets.
    async fn load_refresh_token(&self, cache_key: &str)
    -> Result<Option<SecretString>, StoreError>;
    async fn save_refresh_token(
        &self,
        cache_key: &str,
        token: &SecretString,
    ) -> Result<(), StoreError>;
    async fn delete_refresh_token(&self, cache_key: &str) -> Result<(), StoreError>;

    /// The non-secret fingerprint of the master key in use.
    fn key_fingerprint(&self) -> String;
}

/// The associated data a secret is sealed with: its place.
pub(crate) fn aad(scope_key: &str, key: &str) -> String {
    format!("{scope_key}/{key}")
}
