//! Store errors: each says what went wrong and what the administrator can do about it. None of
//! them carries a secret's value.

use std::path::PathBuf;

use thiserror::Error;

use crate::crypto::{KeyOrigin, MASTER_KEY_ENV, MASTER_KEY_FILE};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(
        "the master key from {origin} is not 32 bytes written as base64 (44 characters) or hex (64 characters); generate one with `openssl rand -base64 32`, or unset {MASTER_KEY_ENV} to let Kurir use its key file"
    )]
    BadMasterKeyFormat { origin: KeyOrigin },

    #[error(
        "the master key from {origin} (fingerprint {given}) is not the key this data directory was encrypted with (fingerprint {expected}); set {MASTER_KEY_ENV} to the original key or restore the original {MASTER_KEY_FILE} in the data directory. Without it the stored secrets cannot be read: they would have to be entered again in a new data directory"
    )]
    WrongMasterKey {
        origin: KeyOrigin,
        given: String,
        expected: String,
    },

    #[error(
        "the master key file {path} can be read by other users (mode {mode:o}); run `chmod 600 {path}` (and check who may have copied it)",
        path = path.display()
    )]
    KeyFileTooOpen { path: PathBuf, mode: u32 },

    #[error(
        "the stored secret {place} cannot be decrypted: it was altered, or encrypted under another master key; set it again with `kurir settings set`"
    )]
    CorruptSecret { place: String },

    #[error("could not {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "the database {path} could not be opened: {source}. Check that the data directory (--data-dir / KURIR_DATA_DIR) is writable and not on a network share that breaks SQLite locking",
        path = path.display()
    )]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },

    #[error(
        "could not connect to the PostgreSQL database {url}: {source}. Check the URL, that the server runs and is reachable from here, and that it accepts this user and password"
    )]
    Connect {
        /// The URL with any password replaced by `***`.
        url: String,
        #[source]
        source: sqlx::Error,
    },

    #[error(
        "the raw MIME of a message could not be stored: {0}. The PostgreSQL store keeps raw MIME in the database; give it the data directory the message file was written to (PgStore::with_local_dir)"
    )]
    RawMimeUnavailable(String),

    #[error(
        "the database schema could not be brought up to date: {0}. If this data directory was used by a newer Kurir, use that version"
    )]
    Migrate(#[from] sqlx::migrate::MigrateError),

    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),

    #[error(
        "{0} works on the SQLite store in the data directory only; a PostgreSQL database is backed up with pg_dump and restored with pg_restore (docs/backup.md), and the data directory's files beside it are copied as they are"
    )]
    NotWithPostgres(&'static str),

    #[error("there is no user {0}; add it with `kurir users add {0}`")]
    NoSuchUser(String),

    #[error("there is no incoming-mail account '{0}'; list them with `kurir accounts list`")]
    NoSuchAccount(String),

    #[error("user {0} already exists")]
    UserExists(String),

    #[error("incoming-mail account '{0}' already exists")]
    AccountExists(String),

    #[error(
        "this export was encrypted under another master key (fingerprint {given}, this data directory uses {expected}); import it where that key is, or export again without secrets and enter them by hand"
    )]
    ForeignExport { given: String, expected: String },

    #[error(
        "incoming-mail account '{0}' got no directory of its own: {1} other accounts already have names that clean to the same file name; rename this account"
    )]
    NoAccountDir(String, u32),
}

impl StoreError {
    /// Worth trying again later without anyone changing anything: the database or the disk
    /// failed for a moment (a lost connection, a lock, a full pool), as opposed to a wrong key,
    /// a corrupt secret or a name that does not exist.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Io { .. } | StoreError::Connect { .. } => true,
            StoreError::Db(sqlx::Error::Database(e)) => {
                // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
                // PostgreSQL: the SQLSTATE classes for a lost connection (08), a rolled-back
                // transaction such as a deadlock (40), exhausted resources (53) and an
                // administrator's shutdown (57P).
                let code = e.code().unwrap_or_default();
                match code.parse::<u32>() {
                    Ok(n) if code.len() <= 4 => matches!(n & 0xff, 5 | 6),
                    _ => ["08", "40", "53", "57P"]
                        .iter()
                        .any(|class| code.starts_with(class)),
                }
            }
            StoreError::Db(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            ),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StoreError;

    #[test]
    fn a_lost_connection_or_a_busy_database_is_transient_a_wrong_key_is_not() {
        assert!(StoreError::Db(sqlx::Error::PoolTimedOut).is_transient());
        assert!(
            StoreError::Db(sqlx::Error::Io(std::io::Error::other("connection reset")))
                .is_transient()
        );
        assert!(!StoreError::NoSuchUser("ANNA".into()).is_transient());
        assert!(
            !StoreError::CorruptSecret {
                place: "system/client_secret".into()
            }
            .is_transient()
        );
        assert!(!StoreError::Db(sqlx::Error::RowNotFound).is_transient());
    }
}
