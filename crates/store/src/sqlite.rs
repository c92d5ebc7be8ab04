//! SQLite, the default: one file, `kurir.db`, in the data directory, in WAL mode so the daemon
//! and a CLI command can use it at the same time. Raw MIME stays in the files the intake wrote
//! beside it. Only connecting and migrations are here; the store is [`SqlStore`].

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::crypto::MasterKey;
use crate::error::StoreError;
use crate::sql::{Backend, SqlStore};

pub const DB_FILE: &str = "kurir.db";

/// Kurir's store in one SQLite file.
pub type SqliteStore = SqlStore<Sqlite>;

/// Where a SQLite store lives: its database file (raw MIME files are beside it).
#[derive(Debug)]
pub struct SqlitePlace {
    path: PathBuf,
    dir: Option<PathBuf>,
}

impl Backend for Sqlite {
    type Place = SqlitePlace;
    const KIND: &'static str = "sqlite";
    // SQLite's `now` is the machine's clock, fixed for the duration of one statement.
    const NOW_MS: &'static str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";
    const SKIP_LOCKED: &'static str = "";
    const RAW_IN_DB: bool = false;

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    fn local_dir(place: &SqlitePlace) -> Option<&Path> {
        place.dir.as_deref()
    }
}

impl SqlStore<Sqlite> {
    /// Opens (creating if needed) the store in `data_dir` with the master key from the
    /// environment or the key file.
    pub async fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        crate::files::private_data_dir(data_dir)?;
        let key = MasterKey::load_or_create(data_dir)?;
        SqliteStore::open_with_key(&data_dir.join(DB_FILE), key).await
    }

    pub async fn open_with_key(path: &Path, key: MasterKey) -> Result<SqliteStore, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(open_err)?
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
            .map_err(open_err)?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        restrict_file(path);
        // One connection: marks are serialised here (an in-process queue) instead of
        // contending for SQLite's write lock, whose busy handler sleeps in steps of up to 100 ms.
        let marks = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.synchronous(SqliteSynchronous::Normal))
            .await
            .map_err(open_err)?;
        let store = SqlStore {
            pool,
            marks,
            key,
            clock: crate::outbox::now_ms,
            place: SqlitePlace {
                path: path.to_owned(),
                dir: path.parent().map(Path::to_path_buf),
            },
        };
        store.check_key().await?;
        Ok(store)
    }

    /// What a database copy (`kurir backup`'s) refers to: the raw-mail files its rows point at
    /// (relative to the data directory), its message and outbox counts. Opened read-only, no
    /// migrations, no key: only these three answers are read.
    pub async fn backup_inventory(
        path: &Path,
    ) -> Result<(std::collections::BTreeSet<String>, u64, u64), StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?
            .filename(path)
            .read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
        let paths: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT raw_path FROM messages WHERE raw_path IS NOT NULL")
                .fetch_all(&pool)
                .await?;
        let messages: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
            .fetch_one(&pool)
            .await?;
        let outbox: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(&pool)
            .await?;
        pool.close().await;
        let files = paths
            .iter()
            .map(|p| match crate::messages::RawMime::from_raw_path(p) {
                crate::messages::RawMime::Segment { path, .. }
                | crate::messages::RawMime::File(path) => path,
                crate::messages::RawMime::Inline(_) => String::new(),
            })
            .filter(|p| !p.is_empty())
            .collect();
        Ok((files, messages as u64, outbox as u64))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.place.path
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
