//! PostgreSQL: for several Kurir instances sharing the work (one database, several daemons,
//! possibly on several machines). The store is the same [`SqlStore`] as on SQLite (the
//! conformance suite in `tests/conformance.rs` runs every case against both), with these
//! differences, all of them in [`Backend`]:
//!
//! * Raw MIME of incoming messages lives in the database (`messages.raw`, BYTEA), never in files:
//!   the instances do not share a data directory. A [`RawMime::File`](crate::messages::RawMime)
//!   or `Segment` handed to [`MessageStore::record_batch`](crate::MessageStore::record_batch) is
//!   read from the directory given to [`PgStore::with_local_dir`] and stored inline.
//! * The outbox's leases use `FOR UPDATE SKIP LOCKED`, so concurrent instances get disjoint sets
//!   of messages; account and outbox leases run by the database's clock.
//!
//! Secrets are sealed with the same [`MasterKey`] as in SQLite; a key check row in `meta` makes
//! a wrong key fail at connect time with [`StoreError::WrongMasterKey`].

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::crypto::MasterKey;
use crate::error::StoreError;
use crate::sql::{Backend, SqlStore};

/// Kurir's store in a PostgreSQL database.
pub type PgStore = SqlStore<Postgres>;

/// Where a PostgreSQL store lives: the URL (without password), its schema, and the local
/// directory that raw MIME files handed to it are read from.
#[derive(Debug)]
pub struct PgPlace {
    url: String,
    schema: Option<String>,
    local_dir: Option<PathBuf>,
}

impl Backend for Postgres {
    type Place = PgPlace;
    const KIND: &'static str = "postgres";
    const NOW_MS: &'static str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const RAW_IN_DB: bool = true;

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    fn local_dir(place: &PgPlace) -> Option<&Path> {
        place.local_dir.as_deref()
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

/// A schema name is put into SQL text, so only plain identifiers are accepted.
fn valid_schema(schema: &str) -> bool {
    !schema.is_empty()
        && schema.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !schema.starts_with(|c: char| c.is_ascii_digit())
}

impl SqlStore<Postgres> {
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
        let store = SqlStore {
            pool,
            marks,
            key,
            clock: crate::outbox::now_ms,
            place: PgPlace {
                url: redacted,
                schema: schema.map(str::to_owned),
                local_dir: None,
            },
        };
        store.check_key().await?;
        Ok(store)
    }

    /// The directory that [`crate::messages::RawMime::File`] and `Segment` paths handed to
    /// `record_batch` are relative to (the instance's data directory). Their bytes are copied
    /// into the database; without this, such a message is refused.
    pub fn with_local_dir(mut self, dir: impl Into<PathBuf>) -> PgStore {
        self.place.local_dir = Some(dir.into());
        self
    }

    /// The URL connected to, without its password.
    pub fn url(&self) -> &str {
        &self.place.url
    }

    pub fn schema(&self) -> Option<&str> {
        self.place.schema.as_deref()
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
