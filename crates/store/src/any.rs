//! Either backend behind one trait object: consumers hold an `Arc<dyn KurirStore>` (and upcast
//! it to `Arc<dyn MessageStore>` and the like) and let [`open_store`] choose SQLite or
//! PostgreSQL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{
    AdminStore, LifecycleStore, MasterKey, MessageStore, OutboxStore, PgStore, SqliteStore, Store,
    StoreError,
};

/// Everything Kurir keeps: settings, incoming mail, the outbox, admins, and what keeps them
/// healthy over the years (retention, quarantine actions, notified alarms).
pub trait KurirStore:
    Store + MessageStore + OutboxStore + AdminStore + LifecycleStore + std::fmt::Debug
{
    /// `sqlite` or `postgres` (for logs and metrics).
    fn backend(&self) -> &'static str;

    /// The directory that raw MIME files and segments are read relative to
    /// ([`crate::messages::RawMime::read`]): the SQLite data directory, or the local directory
    /// a PostgreSQL store was given (whose raw MIME is always inline).
    fn local_data_dir(&self) -> Option<PathBuf>;
}

crate::sql::for_every_backend! {
    impl KurirStore {
        fn backend(&self) -> &'static str {
            DB::KIND
        }

        fn local_data_dir(&self) -> Option<PathBuf> {
            self.local_dir().map(Path::to_path_buf)
        }
    }
}

/// Opens the store: PostgreSQL when `database_url` is given (every instance sharing it needs
/// the same master key: set `KURIR_MASTER_KEY`, or copy `master.key` into each data
/// directory), else SQLite in `data_dir`. The master key comes from the environment or
/// `data_dir`'s key file either way, and `data_dir` stays the local directory for files.
pub async fn open_store(
    data_dir: &Path,
    database_url: Option<&str>,
) -> Result<Arc<dyn KurirStore>, StoreError> {
    match database_url {
        None => Ok(Arc::new(SqliteStore::open(data_dir).await?)),
        Some(url) => {
            // The key file, the import queue and the listener's TLS key live here too.
            crate::files::private_data_dir(data_dir)?;
            let key = MasterKey::load_or_create(data_dir)?;
            Ok(Arc::new(
                PgStore::connect(url, key).await?.with_local_dir(data_dir),
            ))
        }
    }
}
