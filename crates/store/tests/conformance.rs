//! One suite, two backends: every case here runs against the SQLite store (a temporary data
//! directory) and the PostgreSQL store (a fresh schema in the database `test` on
//! 127.0.0.1:5432, dropped afterwards; `KURIR_TEST_POSTGRES_URL` overrides the URL).
//!
//! PostgreSQL is required: when it cannot be reached the PostgreSQL cases FAIL with a message
//! saying so. They never skip, because a suite that silently skips half of itself proves
//! nothing about the backend several instances rely on.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use kurir_settings::{Scope, StoredValue};
use kurir_store::crypto::KeyOrigin;
use kurir_store::messages::{
    AttachmentInfo, MessageFilter, MessageStatus, NewImport, NewMessage, RawMime, Recorded,
};
use kurir_store::outbox::{NewOutgoing, OutboxFilter, Outcome, OutgoingState, now_ms};
use kurir_store::{
    AdminStore, Change, ExportValue, LifecycleStore, MasterKey, MessageStore, NewValue,
    OutboxStore, PgStore, SqliteStore, Store, StoreError,
};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{Connection, Row};

const SECRET: &str = "Abc8Q~PlaintextThatMustNeverBeStored_cdef";
const PASSWORD: &str = "Sommar2026!Lösenord";
const REFRESH: &str = "refresh-token-plaintext-0123456789";

fn key(b: u8) -> MasterKey {
    MasterKey::from_bytes(&[b; 32], KeyOrigin::Explicit)
}

/// What every backend offers a test case.
#[async_trait]
trait Backend: Send + Sync + Sized + 'static {
    type S: Store
        + MessageStore
        + OutboxStore
        + AdminStore
        + kurir_store::LifecycleStore
        + std::fmt::Debug
        + Send
        + Sync
        + 'static;

    /// A new, empty database.
    async fn create() -> Self;
    /// The store opened by `create` (master key 1).
    fn store(&self) -> &Self::S;
    /// Another store on the same database, as a second instance would open it.
    async fn open(&self, key_byte: u8) -> Result<Self::S, StoreError>;
    /// The data directory that `RawMime::File`/`Segment` paths are relative to.
    fn data_dir(&self) -> &Path;
    /// Every byte the database holds, as stored (for "no plaintext secret" checks).
    async fn stored_bytes(&self) -> Vec<u8>;
}

// ---------------------------------------------------------------------------------------------
// SQLite

struct Sqlite {
    dir: tempfile::TempDir,
    store: SqliteStore,
}

#[async_trait]
impl Backend for Sqlite {
    type S = SqliteStore;

    async fn create() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_with_key(&dir.path().join("kurir.db"), key(1))
            .await
            .unwrap();
        Sqlite { dir, store }
    }

    fn store(&self) -> &SqliteStore {
        &self.store
    }

    async fn open(&self, key_byte: u8) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with_key(&self.dir.path().join("kurir.db"), key(key_byte)).await
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    async fn stored_bytes(&self) -> Vec<u8> {
        // The database file and its WAL/SHM siblings.
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let p = entry.unwrap().path();
            if p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("kurir.db")
            {
                out.extend(std::fs::read(p).unwrap());
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

fn pg_url() -> String {
    if let Ok(url) = std::env::var("KURIR_TEST_POSTGRES_URL") {
        return url;
    }
    // Like libpq: without PGUSER, the operating-system user (sqlx would say "anonymous").
    let user = std::env::var("PGUSER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(|| {
            let out = std::process::Command::new("id").arg("-un").output().ok()?;
            Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
        })
        .filter(|u| !u.is_empty());
    match user {
        Some(u) => format!("postgres://{u}@127.0.0.1:5432/test"),
        None => "postgres://127.0.0.1:5432/test".to_owned(),
    }
}

struct Postgres {
    url: String,
    schema: String,
    dir: tempfile::TempDir,
    store: Option<PgStore>,
}

static SCHEMA_SEQ: AtomicU32 = AtomicU32::new(0);

#[async_trait]
impl Backend for Postgres {
    type S = PgStore;

    async fn create() -> Self {
        let url = pg_url();
        // A clear failure, not a skip, when the server is not there.
        let probe =
            tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(&url)).await;
        match probe {
            Ok(Ok(c)) => {
                let _ = c.close().await;
            }
            Ok(Err(e)) => panic!(
                "cannot connect to PostgreSQL at {url}: {e}. The conformance suite needs it and \
                 does not skip: start PostgreSQL with a database `test` that trusts this user, \
                 or point KURIR_TEST_POSTGRES_URL at one"
            ),
            Err(_) => panic!(
                "PostgreSQL at {url} did not answer within 10 s. The conformance suite needs it \
                 and does not skip: start PostgreSQL with a database `test` that trusts this \
                 user, or point KURIR_TEST_POSTGRES_URL at one"
            ),
        }
        let schema = format!(
            "kurir_conf_{}_{}_{:08x}",
            std::process::id(),
            SCHEMA_SEQ.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let dir = tempfile::tempdir().unwrap();
        let mut backend = Postgres {
            url,
            schema,
            dir,
            store: None,
        };
        // Dropped (with the schema) if opening fails, so nothing is left behind.
        let store = backend.open(1).await.unwrap();
        backend.store = Some(store);
        backend
    }

    fn store(&self) -> &PgStore {
        self.store.as_ref().expect("opened in create")
    }

    async fn open(&self, key_byte: u8) -> Result<PgStore, StoreError> {
        Ok(
            PgStore::connect_in_schema(&self.url, Some(&self.schema), key(key_byte))
                .await?
                .with_local_dir(self.dir.path()),
        )
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    async fn stored_bytes(&self) -> Vec<u8> {
        let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
        let columns = sqlx::query(
            "SELECT table_name::TEXT, column_name::TEXT, data_type::TEXT \
             FROM information_schema.columns WHERE table_schema = $1",
        )
        .bind(&self.schema)
        .fetch_all(&mut c)
        .await
        .unwrap();
        assert!(!columns.is_empty(), "no tables in {}", self.schema);
        let mut out = Vec::new();
        for col in columns {
            let (table, column, ty): (String, String, String) =
                (col.get(0), col.get(1), col.get(2));
            // bytea raw (a plaintext secret stored as bytes would show here), the rest as text.
            let expr = if ty == "bytea" {
                format!("\"{column}\"")
            } else {
                format!("convert_to(\"{column}\"::TEXT, 'UTF8')")
            };
            let sql = format!(
                "SELECT {expr} FROM \"{}\".\"{table}\" WHERE \"{column}\" IS NOT NULL",
                self.schema
            );
            for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut c)
                .await
                .unwrap()
            {
                out.extend(row.get::<Vec<u8>, _>(0));
                out.push(0);
            }
        }
        let _ = c.close().await;
        out
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Also on a failed assertion (unwinding): the schema must not outlive the test.
        let store = self.store.take();
        let url = self.url.clone();
        let schema = self.schema.clone();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Some(s) = store {
                    s.close().await;
                }
                let mut c = sqlx::PgConnection::connect(&url).await?;
                sqlx::query("SET lock_timeout = '20s'")
                    .execute(&mut c)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                )))
                .execute(&mut c)
                .await?;
                c.close().await
            })
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            eprintln!("could not drop the test schema {}: {done:?}", self.schema);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The cases, instantiated once per backend.

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let b = <super::Sqlite as super::Backend>::create().await;
                    super::$case(&b).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let b = <super::Postgres as super::Backend>::create().await;
                    super::$case(&b).await;
                }
            )*
        }
    };
}

conformance!(
    settings_round_trip_without_plaintext_in_the_database,
    a_wrong_master_key_is_refused,
    users_and_accounts_must_exist_and_take_their_settings_along,
    a_user_or_account_whose_first_settings_are_refused_is_not_added,
    export_import_round_trip,
    record_batch_is_exactly_once,
    different_message_with_same_message_id_is_stored,
    old_format_keys_still_recognise_an_identical_redelivery,
    accounts_whose_names_clean_alike_get_their_own_directories,
    raw_mime_from_data_dir_files_reads_back,
    a_nul_character_in_a_header_does_not_block_intake_or_sending,
    two_instances_recording_the_same_mail_store_it_once,
    mark_done_and_pending_server_ids,
    import_queue_states,
    the_erp_claims_and_acknowledges_imports_and_reads_cursor_feeds,
    listing_paging_and_counts,
    health_records_passes,
    outbox_lifecycle,
    outbox_lease_expiry_and_lost_leases,
    outbox_retry_cancel_and_counts,
    concurrent_leasers_get_disjoint_sets,
    account_lease_is_exclusive_and_expires,
    concurrent_account_lease_has_one_winner,
    listener_users,
    admin_users_sessions_and_api_keys,
    retention_purges_only_what_is_processed_acknowledged_or_sent,
    quarantine_actions_are_audited_and_refused_on_other_messages,
    notified_alarms_and_webhook_cursors_are_kept,
);

/// Instances of one PostgreSQL outbox on machines whose clocks disagree. Each used to compare
/// leases by its own clock: one running ahead by more than the lease took a message another
/// was sending, and one running behind wrote leases that had "expired" for everyone else, so
/// the message went out twice. Leases now live in the database's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_lease_uses_database_clock() {
    fn ahead() -> i64 {
        now_ms() + 10 * 60_000
    }
    fn behind() -> i64 {
        now_ms() - 10 * 60_000
    }
    let b = Postgres::create().await;
    let exact = b.store();
    let fast = b.open(1).await.unwrap().with_local_clock(ahead);
    let slow = b.open(1).await.unwrap().with_local_clock(behind);

    // The accurate instance leases a message for a minute; the one whose clock is ten minutes
    // ahead must not take it.
    let first = exact.enqueue(outgoing("ANNA", 1)).await.unwrap();
    let leased = exact.lease_due(now_ms(), 60_000, 10).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert!(
        fast.lease_due(ahead(), 60_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "an instance whose clock runs ahead took a message being sent"
    );
    // Its renewal by its holder keeps it, whichever clock the holder has.
    assert!(
        exact
            .renew_lease(first, &leased[0].lease_token, now_ms() + 60_000)
            .await
            .unwrap()
    );
    assert!(
        fast.lease_due(ahead(), 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The instance whose clock is behind leases the next message for a minute: a minute by the
    // database's clock, not one that ended nine minutes ago for everyone else.
    let second = exact.enqueue(outgoing("ANNA", 2)).await.unwrap();
    let got = slow.lease_due(behind(), 60_000, 10).await.unwrap();
    assert_eq!(
        got.iter().map(|l| l.message.id).collect::<Vec<_>>(),
        [second]
    );
    assert!(
        exact
            .lease_due(now_ms(), 60_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "a lease written by an instance whose clock is behind had already expired"
    );
    assert!(
        fast.lease_due(ahead(), 60_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "a lease written by an instance whose clock is behind had already expired"
    );
    let m = exact.outbox_get(second).await.unwrap().unwrap();
    let until = m.leased_until.unwrap();
    assert!(
        (now_ms() + 55_000..=now_ms() + 61_000).contains(&until),
        "the lease ends a minute from now by the database's clock: {until} vs {}",
        now_ms()
    );
    // A retry "in 30 s" by the slow instance's clock is due in 30 s, for everyone.
    assert!(
        slow.finish(
            second,
            &got[0].lease_token,
            Outcome::Retry {
                at: behind() + 30_000,
                error: "421 try later".into()
            }
        )
        .await
        .unwrap()
    );
    assert!(
        fast.lease_due(ahead(), 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        exact
            .lease_due(now_ms(), 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = exact.next_due().await.unwrap().unwrap();
    assert!(
        (now_ms() + 25_000..=now_ms() + 31_000).contains(&due),
        "due in 30 s: {due} vs {}",
        now_ms()
    );
    assert!(near(fast.next_due().await.unwrap(), ahead() + 30_000));
    fast.close().await;
    slow.close().await;
}

fn set_secret(k: &str, v: &str) -> Change {
    Change::Set(k.into(), NewValue::Secret(SecretString::from(v.to_owned())))
}

fn set_plain(k: &str, v: &str) -> Change {
    Change::Set(k.into(), NewValue::Plain(v.to_owned()))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn settings_round_trip_without_plaintext_in_the_database<B: Backend>(b: &B) {
    let s = b.store();
    s.add_user("WEBSHOP").await.unwrap();
    s.add_account("Monitor-to-Monitor").await.unwrap();
    let n = s
        .apply(
            &Scope::System,
            vec![
                set_plain("client_id", "11111111-2222-3333-4444-555555555555"),
                set_secret("client_secret", SECRET),
            ],
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    s.apply(
        &Scope::User("WEBSHOP".into()),
        vec![set_secret("exchange_password", PASSWORD)],
    )
    .await
    .unwrap();
    s.apply(
        &Scope::Account("Monitor-to-Monitor".into()),
        vec![set_plain("mailbox", "m2m@contoso.com")],
    )
    .await
    .unwrap();
    s.save_refresh_token("ANNA|exchange", &SecretString::from(REFRESH.to_owned()))
        .await
        .unwrap();

    let bytes = b.stored_bytes().await;
    assert!(!bytes.is_empty());
    assert!(
        contains(&bytes, b"11111111-2222-3333-4444-555555555555"),
        "the dump does see plain values"
    );
    assert!(
        !contains(&bytes, SECRET.as_bytes()),
        "client secret in plaintext"
    );
    assert!(
        !contains(&bytes, PASSWORD.as_bytes()),
        "password in plaintext"
    );
    assert!(
        !contains(&bytes, REFRESH.as_bytes()),
        "refresh token in plaintext"
    );

    let snap = s.snapshot().await.unwrap();
    assert_eq!(
        snap.system.plain("client_id"),
        Some("11111111-2222-3333-4444-555555555555")
    );
    match snap.system.get("client_secret") {
        Some(StoredValue::Secret(info)) => {
            assert_eq!(info.masked, "••••cdef");
            assert_eq!(info.set_on, time::OffsetDateTime::now_utc().date());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        snap.accounts["Monitor-to-Monitor"].plain("mailbox"),
        Some("m2m@contoso.com")
    );
    assert!(snap.users.contains_key("WEBSHOP"));
    assert_eq!(
        s.reveal(&Scope::System, "client_secret")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        SECRET
    );
    assert_eq!(
        s.reveal(&Scope::User("WEBSHOP".into()), "exchange_password")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        PASSWORD
    );
    // No inheritance in reveal, and plain values are not secrets.
    assert!(
        s.reveal(&Scope::User("WEBSHOP".into()), "client_secret")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.reveal(&Scope::System, "client_id")
            .await
            .unwrap()
            .is_none()
    );
    // Overwrite a secret with a plain value and back.
    s.apply(
        &Scope::System,
        vec![set_plain("client_secret", "now-plain")],
    )
    .await
    .unwrap();
    assert!(
        s.reveal(&Scope::System, "client_secret")
            .await
            .unwrap()
            .is_none()
    );
    s.apply(&Scope::System, vec![set_secret("client_secret", SECRET)])
        .await
        .unwrap();
    // Another instance with the same key reads the same.
    let other = b.open(1).await.unwrap();
    assert_eq!(
        other
            .reveal(&Scope::System, "client_secret")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        SECRET
    );
    assert_eq!(other.key_fingerprint(), s.key_fingerprint());

    // Refresh tokens: load, replace, delete.
    assert_eq!(
        s.load_refresh_token("ANNA|exchange")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        REFRESH
    );
    s.save_refresh_token("ANNA|exchange", &SecretString::from("second".to_owned()))
        .await
        .unwrap();
    assert_eq!(
        other
            .load_refresh_token("ANNA|exchange")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "second"
    );
    assert!(s.load_refresh_token("nobody").await.unwrap().is_none());
    s.delete_refresh_token("ANNA|exchange").await.unwrap();
    assert!(
        s.load_refresh_token("ANNA|exchange")
            .await
            .unwrap()
            .is_none()
    );

    // Unset: back to inherited; unsetting nothing changes nothing.
    assert_eq!(
        s.apply(&Scope::System, vec![Change::Unset("client_id".into())])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.apply(&Scope::System, vec![Change::Unset("client_id".into())])
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.snapshot().await.unwrap().system.get("client_id"), None);
}

async fn a_wrong_master_key_is_refused<B: Backend>(b: &B) {
    b.store()
        .apply(&Scope::System, vec![set_secret("client_secret", SECRET)])
        .await
        .unwrap();
    let err = b.open(2).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(key(1).fingerprint()),
        "names the expected key: {text}"
    );
    assert!(
        text.contains(key(2).fingerprint()),
        "names the given key: {text}"
    );
    // The right key still opens it, and the secret is intact.
    let again = b.open(1).await.unwrap();
    assert_eq!(
        again
            .reveal(&Scope::System, "client_secret")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        SECRET
    );
}

/// Adding a user or account with its first settings was two transactions: a settings write
/// the database refused (PostgreSQL's TEXT cannot hold a NUL) left a half-made user behind.
/// Now it is one: either both are there, or neither.
async fn a_user_or_account_whose_first_settings_are_refused_is_not_added<B: Backend>(b: &B) {
    let s = b.store();
    let added = s
        .add_user_with("NUL", vec![set_plain("email", "a\0b@x.se")])
        .await;
    let snap = s.snapshot().await.unwrap();
    match added {
        Ok(()) => assert_eq!(snap.users["NUL"].plain("email"), Some("a\0b@x.se")),
        Err(_) => assert!(!snap.users.contains_key("NUL"), "a half-made user was left"),
    }
    let added = s
        .add_account_with("Nul", vec![set_plain("mailbox", "a\0b@x.se")])
        .await;
    let snap = s.snapshot().await.unwrap();
    match added {
        Ok(()) => assert_eq!(snap.accounts["Nul"].plain("mailbox"), Some("a\0b@x.se")),
        Err(_) => assert!(
            !snap.accounts.contains_key("Nul"),
            "a half-made account was left"
        ),
    }
    // Both at once still work, and a second add is refused as before.
    s.add_user_with("ANNA", vec![set_plain("email", "anna@x.se")])
        .await
        .unwrap();
    assert!(matches!(
        s.add_user_with("ANNA", Vec::new()).await,
        Err(StoreError::UserExists(_))
    ));
    let snap = s.snapshot().await.unwrap();
    assert_eq!(snap.users["ANNA"].plain("email"), Some("anna@x.se"));
}

async fn users_and_accounts_must_exist_and_take_their_settings_along<B: Backend>(b: &B) {
    let s = b.store();
    let err = s
        .apply(
            &Scope::User("ANNA".into()),
            vec![set_plain("email", "a@b.se")],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchUser(_)), "{err:?}");
    assert!(err.to_string().contains("kurir users add ANNA"), "{err}");
    let err = s
        .apply(&Scope::Account("Nope".into()), vec![set_plain("x", "y")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchAccount(_)), "{err:?}");

    s.add_user("ANNA").await.unwrap();
    assert!(matches!(
        s.add_user("ANNA").await,
        Err(StoreError::UserExists(_))
    ));
    s.add_account("Inkommande").await.unwrap();
    assert!(matches!(
        s.add_account("Inkommande").await,
        Err(StoreError::AccountExists(_))
    ));
    s.apply(
        &Scope::User("ANNA".into()),
        vec![set_plain("email", "a@b.se")],
    )
    .await
    .unwrap();
    s.apply(
        &Scope::Account("Inkommande".into()),
        vec![set_secret("client_secret", SECRET)],
    )
    .await
    .unwrap();
    s.remove_user("ANNA").await.unwrap();
    s.remove_account("Inkommande").await.unwrap();
    assert!(matches!(
        s.remove_user("ANNA").await,
        Err(StoreError::NoSuchUser(_))
    ));
    assert!(matches!(
        s.remove_account("Inkommande").await,
        Err(StoreError::NoSuchAccount(_))
    ));
    s.add_user("ANNA").await.unwrap();
    s.add_account("Inkommande").await.unwrap();
    let snap = s.snapshot().await.unwrap();
    assert_eq!(
        snap.users["ANNA"].get("email"),
        None,
        "settings left with the user"
    );
    assert!(
        s.reveal(&Scope::Account("Inkommande".into()), "client_secret")
            .await
            .unwrap()
            .is_none(),
        "settings left with the account"
    );
}

async fn export_import_round_trip<B: Backend>(a: &B) {
    let s = a.store();
    s.add_user("WEBSHOP").await.unwrap();
    s.add_user("EMPTY").await.unwrap();
    s.add_account("Monitor-to-Monitor").await.unwrap();
    s.apply(
        &Scope::User("WEBSHOP".into()),
        vec![set_secret("exchange_password", "pw-0123456789abcdef")],
    )
    .await
    .unwrap();
    s.apply(&Scope::System, vec![set_plain("method", "exchange-online")])
        .await
        .unwrap();

    let without = s.export_rows(false).await.unwrap();
    assert!(
        without
            .iter()
            .all(|r| !matches!(r.value, ExportValue::Sealed(_)))
    );
    let with = s.export_rows(true).await.unwrap();
    assert!(
        with.iter()
            .any(|r| matches!(r.value, ExportValue::Sealed(_)))
    );
    let keys: Vec<(&str, &str)> = with
        .iter()
        .map(|r| (r.scope.as_str(), r.key.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("user:EMPTY", ""),
            ("user:WEBSHOP", ""),
            ("account:Monitor-to-Monitor", ""),
            ("system", "method"),
            ("user:WEBSHOP", "exchange_password"),
        ],
        "markers first, then settings in byte order"
    );

    // Same key elsewhere (a second database of the same kind): everything arrives.
    let b = B::create().await;
    let n = b
        .store()
        .import_rows(with.clone(), Some(&s.key_fingerprint()))
        .await
        .unwrap();
    assert_eq!(n, 2);
    let snap = b.store().snapshot().await.unwrap();
    assert!(snap.accounts.contains_key("Monitor-to-Monitor"));
    assert!(snap.users.contains_key("EMPTY"));
    assert_eq!(snap.system.plain("method"), Some("exchange-online"));
    assert_eq!(
        b.store()
            .reveal(&Scope::User("WEBSHOP".into()), "exchange_password")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "pw-0123456789abcdef"
    );
    // Importing again replaces, does not duplicate.
    b.store()
        .import_rows(with.clone(), Some(&s.key_fingerprint()))
        .await
        .unwrap();
    assert_eq!(b.store().export_rows(true).await.unwrap(), with);

    // A foreign fingerprint: refused as a whole.
    let c = B::create().await;
    let err = c
        .store()
        .import_rows(with, Some("0000000000000000"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ForeignExport { .. }), "{err}");
    assert!(c.store().snapshot().await.unwrap().users.is_empty());
    c.store().import_rows(without, None).await.unwrap();
    assert!(
        c.store()
            .snapshot()
            .await
            .unwrap()
            .users
            .contains_key("WEBSHOP")
    );
}

fn msg(server_id: &str, message_id: Option<&str>, raw: &[u8]) -> NewMessage {
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(raw));
    NewMessage {
        server_id: server_id.to_owned(),
        dedupe_key: match message_id {
            Some(m) => format!("mid:{m}"),
            None => format!("sha256:{hash}"),
        },
        message_id: message_id.map(str::to_owned),
        content_hash: hash,
        status: MessageStatus::Stored,
        reason: None,
        handler: "general".into(),
        from: Some("erp@supplier.test".into()),
        to: Some("m2m@contoso.com".into()),
        subject: Some(format!("subject of {server_id}")),
        date: Some("2026-11-24T10:00:00Z".into()),
        size: raw.len() as u64,
        attachments: vec![AttachmentInfo {
            name: Some("order.xml".into()),
            content_type: "application/xml".into(),
            size: 42,
        }],
        raw: RawMime::Inline(raw.to_vec()),
        imports: Vec::new(),
    }
}

fn import(file: &str) -> NewImport {
    NewImport {
        kind: "xml".into(),
        file_name: file.to_owned(),
        content_type: Some("application/xml".into()),
        size: 42,
    }
}

async fn record_batch_is_exactly_once<B: Backend>(b: &B) {
    let s = b.store();
    let acc = "Monitor-to-Monitor";
    let mut first = msg("imap:7:1", Some("a@x"), b"Message-ID: <a@x>\r\n\r\nA");
    first.imports = vec![import("a.xml")];
    let no_id = msg("imap:7:2", None, b"Subject: no id\r\n\r\nB");
    let r = s
        .record_batch(acc, vec![first.clone(), no_id.clone()])
        .await
        .unwrap();
    let (a_id, b_id) = match r[..] {
        [Recorded::New { id: a }, Recorded::New { id: b }] => (a, b),
        ref other => panic!("{other:?}"),
    };
    assert_ne!(a_id, b_id);

    // The same server id again (a crash before the move): a duplicate, no second row, no
    // second import entry.
    let r = s.record_batch(acc, vec![first.clone()]).await.unwrap();
    assert_eq!(r, [Recorded::Duplicate { id: a_id }]);
    // The same Message-ID under a new server id (UIDVALIDITY changed): a duplicate, the new
    // server id linked to the same row.
    let mut moved = first.clone();
    moved.server_id = "imap:8:1".into();
    // Without Message-ID, the same content under a new server id: a duplicate by hash.
    let mut no_id_again = no_id.clone();
    no_id_again.server_id = "graph:AAMk=".into();
    // …and within one batch, the same message twice: stored once.
    let c = msg("pop3:uidl-c", Some("c@x"), b"C");
    let mut c_again = c.clone();
    c_again.server_id = "pop3:uidl-c2".into();
    let r = s
        .record_batch(acc, vec![moved, no_id_again, c, c_again])
        .await
        .unwrap();
    assert_eq!(r[0], Recorded::Duplicate { id: a_id });
    assert_eq!(r[1], Recorded::Duplicate { id: b_id });
    let c_id = match r[2] {
        Recorded::New { id } => id,
        other => panic!("{other:?}"),
    };
    assert_eq!(r[3], Recorded::Duplicate { id: c_id });

    let counts = s.count_messages(acc).await.unwrap();
    assert_eq!((counts.stored, counts.quarantined), (3, 0));
    assert_eq!(
        counts.pending_server_steps, 6,
        "every server id recorded once"
    );
    assert_eq!(s.list_imports(Some(acc)).await.unwrap().len(), 1);
    let m = s.message(a_id).await.unwrap().unwrap();
    assert_eq!(m.server_ids, ["imap:7:1", "imap:8:1"]);
    assert_eq!(m.message_id.as_deref(), Some("a@x"));
    assert_eq!(m.attachments, first.attachments);
    assert_eq!(m.account, acc);
    assert_eq!(m.status, MessageStatus::Stored);
    assert_eq!(
        s.raw_message(a_id)
            .await
            .unwrap()
            .unwrap()
            .read(b.data_dir())
            .unwrap(),
        b"Message-ID: <a@x>\r\n\r\nA"
    );
    assert!(s.raw_message(999_999).await.unwrap().is_none());
    assert!(s.message(999_999).await.unwrap().is_none());

    let known = s
        .known_server_ids(
            acc,
            &["imap:7:1".into(), "imap:8:1".into(), "imap:9:9".into()],
        )
        .await
        .unwrap();
    assert_eq!(
        known,
        HashSet::from(["imap:7:1".to_owned(), "imap:8:1".to_owned()])
    );
    assert!(s.known_server_ids(acc, &[]).await.unwrap().is_empty());

    // Another account is another mailbox: the same message is new there.
    let r = s.record_batch("Inkommande", vec![first]).await.unwrap();
    assert!(matches!(r[0], Recorded::New { id } if id != a_id));
    assert!(
        s.known_server_ids("Inkommande", &["imap:8:1".into()])
            .await
            .unwrap()
            .is_empty()
    );
    // A large batch of server ids (beyond any IN-list chunk).
    let many: Vec<String> = (0..1200).map(|i| format!("imap:7:{i}")).collect();
    assert_eq!(s.known_server_ids(acc, &many).await.unwrap().len(), 2);
}

/// A message as intake records it since keys are content-based: `blake3:<content hash>`.
fn content_keyed(server_id: &str, message_id: Option<&str>, raw: &[u8]) -> NewMessage {
    let mut m = msg(server_id, message_id, raw);
    m.dedupe_key = format!("blake3:{}", m.content_hash);
    m
}

fn new_id(r: Recorded) -> i64 {
    match r {
        Recorded::New { id } => id,
        other => panic!("expected a new row, got {other:?}"),
    }
}

/// Issue 12.1: a Message-ID alone never makes a message a duplicate; a different message with a
/// known Message-ID is stored and points at the earliest one; the same bytes are a duplicate.
async fn different_message_with_same_message_id_is_stored<B: Backend>(b: &B) {
    let s = b.store();
    let acc = "Monitor-to-Monitor";
    let first = content_keyed(
        "pop3:u1",
        Some("order-1@erp"),
        b"Message-ID: <order-1@erp>\r\n\r\nfirst",
    );
    let a = new_id(s.record_batch(acc, vec![first.clone()]).await.unwrap()[0]);
    assert_eq!(
        s.message(a).await.unwrap().unwrap().same_message_id_as,
        None
    );

    // A corrected document re-sent under the same Message-ID, and in one batch two more
    // different messages with one shared Message-ID.
    let mut corrected = content_keyed(
        "pop3:u2",
        Some("order-1@erp"),
        b"Message-ID: <order-1@erp>\r\n\r\ncorrected",
    );
    corrected.imports = vec![import("order-1-corrected.xml")];
    let y1 = content_keyed("pop3:u3", Some("scan-0001@scanner"), b"scan one");
    let y2 = content_keyed("pop3:u4", Some("scan-0001@scanner"), b"scan two");
    let r = s
        .record_batch(acc, vec![corrected.clone(), y1, y2])
        .await
        .unwrap();
    let (c, y1, y2) = (new_id(r[0]), new_id(r[1]), new_id(r[2]));
    assert!(c != a && y1 != y2);
    let shown = s.message(c).await.unwrap().unwrap();
    assert_eq!(
        shown.same_message_id_as,
        Some(a),
        "shown as same Message-ID as #{a}"
    );
    assert_eq!(shown.server_ids, ["pop3:u2"]);
    // Within one batch "earlier" is the lower row id: PostgreSQL inserts a batch in dedupe-key
    // order (so that two instances wait instead of deadlocking), not in the batch's order.
    let (lo, hi) = (y1.min(y2), y1.max(y2));
    assert_eq!(
        s.message(hi).await.unwrap().unwrap().same_message_id_as,
        Some(lo)
    );
    assert_eq!(
        s.message(lo).await.unwrap().unwrap().same_message_id_as,
        None
    );
    let imports = s.list_imports(Some(acc)).await.unwrap();
    assert_eq!(
        imports.len(),
        1,
        "the corrected message's document is queued"
    );
    assert_eq!(imports[0].message, c);
    // Listing carries the reference too.
    let listed = s
        .list_messages(&MessageFilter {
            account: Some(acc.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .find(|m| m.id == c)
            .unwrap()
            .same_message_id_as,
        Some(a)
    );

    // A third version points at the earliest, not at the latest.
    let third = content_keyed(
        "pop3:u5",
        Some("order-1@erp"),
        b"Message-ID: <order-1@erp>\r\n\r\nthird",
    );
    let t = new_id(s.record_batch(acc, vec![third]).await.unwrap()[0]);
    assert_eq!(
        s.message(t).await.unwrap().unwrap().same_message_id_as,
        Some(a)
    );

    // identical_redelivery_is_still_a_duplicate: the corrected message's bytes again under a
    // new server id (UIDVALIDITY reset, re-delivery) are that message, not a new one.
    let mut again = corrected.clone();
    again.server_id = "pop3:u6".into();
    assert_eq!(
        s.record_batch(acc, vec![again]).await.unwrap(),
        [Recorded::Duplicate { id: c }]
    );
    assert_eq!(s.count_messages(acc).await.unwrap().stored, 5);
    assert_eq!(
        s.list_imports(Some(acc)).await.unwrap().len(),
        1,
        "no second import entry"
    );
}

/// Rows recorded before keys were content-based (`mid:<Message-ID>`, `sha256:<hash>`) still
/// recognise an identical re-delivery through their content hash, and a different message under
/// their Message-ID is stored and points at them.
async fn old_format_keys_still_recognise_an_identical_redelivery<B: Backend>(b: &B) {
    let s = b.store();
    let acc = "Inkommande";
    // `msg` records with the old key formats.
    let old_mid = msg("imap:1:1", Some("old@x"), b"Message-ID: <old@x>\r\n\r\nold");
    let old_hash = msg("imap:1:2", None, b"Subject: no id\r\n\r\nold");
    assert!(old_mid.dedupe_key.starts_with("mid:") && old_hash.dedupe_key.starts_with("sha256:"));
    let r = s
        .record_batch(acc, vec![old_mid.clone(), old_hash.clone()])
        .await
        .unwrap();
    let (m, h) = (new_id(r[0]), new_id(r[1]));

    // Now recorded the new way, under new server ids (UIDVALIDITY changed).
    let mut redelivered = old_mid.clone();
    redelivered.server_id = "imap:2:1".into();
    redelivered.dedupe_key = format!("blake3:{}", redelivered.content_hash);
    let mut redelivered_no_id = old_hash.clone();
    redelivered_no_id.server_id = "imap:2:2".into();
    redelivered_no_id.dedupe_key = format!("blake3:{}", redelivered_no_id.content_hash);
    let different = content_keyed("imap:2:3", Some("old@x"), b"Message-ID: <old@x>\r\n\r\nnew");
    let r = s
        .record_batch(acc, vec![redelivered, redelivered_no_id, different])
        .await
        .unwrap();
    assert_eq!(r[0], Recorded::Duplicate { id: m });
    assert_eq!(r[1], Recorded::Duplicate { id: h });
    let d = new_id(r[2]);
    assert_eq!(
        s.message(d).await.unwrap().unwrap().same_message_id_as,
        Some(m)
    );
    assert_eq!(
        s.message(m).await.unwrap().unwrap().server_ids,
        ["imap:1:1", "imap:2:1"]
    );
    assert_eq!(s.count_messages(acc).await.unwrap().stored, 3);
}

/// Issue 12.3: every account gets a directory of its own, unique ignoring letter case, kept once
/// assigned; the import queue names it.
async fn accounts_whose_names_clean_alike_get_their_own_directories<B: Backend>(b: &B) {
    let s = b.store();
    assert_eq!(
        s.account_dir("Orders A", "Orders_A").await.unwrap(),
        "Orders_A"
    );
    assert_eq!(
        s.account_dir("Orders_A", "Orders_A").await.unwrap(),
        "Orders_A_2"
    );
    assert_eq!(
        s.account_dir("orders a", "orders_a").await.unwrap(),
        "orders_a_3",
        "Windows: case-insensitive"
    );
    // Kept: asked again (even should the cleaning rule change), the recorded name comes back.
    assert_eq!(
        s.account_dir("Orders A", "Orders-A").await.unwrap(),
        "Orders_A"
    );
    assert_eq!(
        s.account_dir("Orders_A", "Orders_A").await.unwrap(),
        "Orders_A_2"
    );
    // Another process (instance) sees the same assignment.
    let other = b.open(1).await.unwrap();
    assert_eq!(
        other.account_dir("Orders_A", "x").await.unwrap(),
        "Orders_A_2"
    );

    let mut m = content_keyed("imap:1:1", Some("o@x"), b"order");
    m.imports = vec![import("o.xml")];
    s.record_batch("Orders_A", vec![m]).await.unwrap();
    let q = s.list_imports(Some("Orders_A")).await.unwrap();
    assert_eq!(q[0].dir.as_deref(), Some("Orders_A_2"));
    assert_eq!(
        s.staged_imports("Orders_A").await.unwrap()[0]
            .dir
            .as_deref(),
        Some("Orders_A_2")
    );
    assert_eq!(
        s.list_imports(None).await.unwrap()[0].dir.as_deref(),
        Some("Orders_A_2")
    );
}

/// Two instances taking in the same mailbox at once (what account leases are to prevent, but
/// the store must not depend on it): overlapping batches in opposite orders neither deadlock nor
/// store a message twice.
async fn two_instances_recording_the_same_mail_store_it_once<B: Backend>(b: &B) {
    const N: usize = 100;
    let instances = [
        Arc::new(b.open(1).await.unwrap()),
        Arc::new(b.open(1).await.unwrap()),
    ];
    for round in 0..3 {
        let acc = format!("shared-{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let mut tasks = Vec::new();
        for (i, store) in instances.iter().enumerate() {
            let mut batch: Vec<NewMessage> = (0..N)
                .map(|n| {
                    let raw = format!("Message-ID: <{n}@shared>\r\n\r\n{n}");
                    msg(
                        &format!("i{i}:{n}"),
                        Some(&format!("{n}@shared")),
                        raw.as_bytes(),
                    )
                })
                .collect();
            if i == 1 {
                batch.reverse();
            }
            let (store, acc, barrier) = (store.clone(), acc.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let mut r = store.record_batch(&acc, batch).await.unwrap();
                if i == 1 {
                    r.reverse();
                }
                r
            }));
        }
        let b_res = tasks.pop().unwrap().await.unwrap();
        let a_res = tasks.pop().unwrap().await.unwrap();
        for n in 0..N {
            assert_eq!(a_res[n].id(), b_res[n].id(), "round {round}, message {n}");
            let news = [a_res[n], b_res[n]]
                .iter()
                .filter(|r| matches!(r, Recorded::New { .. }))
                .count();
            assert_eq!(
                news, 1,
                "round {round}, message {n}: {:?} {:?}",
                a_res[n], b_res[n]
            );
        }
        let counts = instances[0].count_messages(&acc).await.unwrap();
        assert_eq!(counts.stored, N as u64);
        assert_eq!(counts.pending_server_steps, 2 * N as u64);
        let m = instances[1].message(a_res[0].id()).await.unwrap().unwrap();
        let mut ids = m.server_ids.clone();
        ids.sort();
        assert_eq!(ids, ["i0:0", "i1:0"]);
    }
}

/// A NUL decoded from a header (`=?utf-8?q?=00?=`) is stored (SQLite keeps it, PostgreSQL,
/// whose TEXT cannot hold it, stores U+FFFD), never an error that would stop the account.
async fn a_nul_character_in_a_header_does_not_block_intake_or_sending<B: Backend>(b: &B) {
    let s = b.store();
    let shown = |t: &str| t.replace('\0', "\u{FFFD}");
    let mut m = msg(
        "imap:1:1",
        Some("nul\0id@x"),
        b"Subject: =?utf-8?q?a=00b?=\r\n\r\nx",
    );
    m.subject = Some("a\0b".into());
    m.from = Some("\0@x".into());
    m.status = MessageStatus::Quarantined;
    m.reason = Some("bad\0header".into());
    let id = s.record_batch("A", vec![m.clone()]).await.unwrap()[0];
    assert!(matches!(id, Recorded::New { .. }));
    let mut again = m.clone();
    again.server_id = "imap:2:1".into();
    assert_eq!(
        s.record_batch("A", vec![again]).await.unwrap()[0],
        Recorded::Duplicate { id: id.id() }
    );
    let stored = s.message(id.id()).await.unwrap().unwrap();
    assert_eq!(shown(stored.subject.as_deref().unwrap()), "a\u{FFFD}b");
    assert_eq!(
        shown(stored.reason.as_deref().unwrap()),
        "bad\u{FFFD}header"
    );
    s.record_pass("A", Err("odd\0reply".into())).await.unwrap();
    assert_eq!(
        shown(
            s.health(Some("A")).await.unwrap()[0]
                .last_error
                .as_deref()
                .unwrap()
        ),
        "odd\u{FFFD}reply"
    );
    let mut out = outgoing("ANNA", 1);
    out.subject = Some("re: a\0b".into());
    let oid = s.enqueue(out).await.unwrap();
    let l = s.lease_due(now_ms(), 60_000, 1).await.unwrap();
    assert!(
        s.finish(
            oid,
            &l[0].lease_token,
            Outcome::Failed {
                error: "550\0".into()
            }
        )
        .await
        .unwrap()
    );
    let o = s.outbox_get(oid).await.unwrap().unwrap();
    assert_eq!(shown(o.subject.as_deref().unwrap()), "re: a\u{FFFD}b");
    assert_eq!(shown(o.last_error.as_deref().unwrap()), "550\u{FFFD}");
}

async fn raw_mime_from_data_dir_files_reads_back<B: Backend>(b: &B) {
    // Intake writes small messages of a batch into a segment file and large ones into their
    // own file, then records rows pointing at them. Whatever the backend does with that, the
    // raw MIME must read back byte for byte relative to the data directory.
    let s = b.store();
    let seg_rel = "messages/seg/0000000000000001.seg";
    let one = b"Message-ID: <one@x>\r\n\r\nfirst".to_vec();
    let two = b"Message-ID: <two@x>\r\n\r\nsecond".to_vec();
    let big = vec![b'x'; 300_000];
    std::fs::create_dir_all(b.data_dir().join("messages/seg")).unwrap();
    std::fs::create_dir_all(b.data_dir().join("messages/ab")).unwrap();
    std::fs::write(
        b.data_dir().join(seg_rel),
        [one.clone(), two.clone()].concat(),
    )
    .unwrap();
    std::fs::write(b.data_dir().join("messages/ab/big.eml"), &big).unwrap();
    let mut m1 = msg("graph:1", Some("one@x"), &one);
    m1.raw = RawMime::Segment {
        path: seg_rel.into(),
        offset: 0,
        len: one.len() as u64,
    };
    let mut m2 = msg("graph:2", Some("two@x"), &two);
    m2.raw = RawMime::Segment {
        path: seg_rel.into(),
        offset: one.len() as u64,
        len: two.len() as u64,
    };
    let mut m3 = msg("graph:3", Some("big@x"), &big);
    m3.raw = RawMime::File("messages/ab/big.eml".into());
    let ids: Vec<i64> = s
        .record_batch("A", vec![m1, m2, m3])
        .await
        .unwrap()
        .into_iter()
        .map(Recorded::id)
        .collect();
    for (id, want) in ids.iter().zip([&one, &two, &big]) {
        let raw = s.raw_message(*id).await.unwrap().unwrap();
        assert_eq!(&raw.read(b.data_dir()).unwrap(), want);
    }
}

async fn mark_done_and_pending_server_ids<B: Backend>(b: &B) {
    let s = b.store();
    let acc = "A";
    let mut q = msg("imap:1:2", Some("q@x"), b"Q");
    q.status = MessageStatus::Quarantined;
    q.reason = Some("no XML document".into());
    s.record_batch(acc, vec![msg("imap:1:1", Some("p@x"), b"P"), q])
        .await
        .unwrap();
    let mut pending = s.pending_server_ids(acc).await.unwrap();
    pending.sort();
    assert_eq!(pending, ["imap:1:1", "imap:1:2"]);
    let mut status = s
        .status_of_server_ids(
            acc,
            &["imap:1:1".into(), "imap:1:2".into(), "imap:1:3".into()],
        )
        .await
        .unwrap();
    status.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        status,
        [
            ("imap:1:1".to_owned(), MessageStatus::Stored),
            ("imap:1:2".to_owned(), MessageStatus::Quarantined)
        ]
    );
    s.mark_done(acc, &["imap:1:1".into()]).await.unwrap();
    assert_eq!(s.pending_server_ids(acc).await.unwrap(), ["imap:1:2"]);
    // Marking done is idempotent and ignores unknown ids and other accounts.
    s.mark_done(acc, &["imap:1:1".into(), "imap:9:9".into()])
        .await
        .unwrap();
    s.mark_done("B", &["imap:1:2".into()]).await.unwrap();
    s.mark_done(acc, &[]).await.unwrap();
    let counts = s.count_messages(acc).await.unwrap();
    assert_eq!(
        (
            counts.stored,
            counts.quarantined,
            counts.pending_server_steps
        ),
        (1, 1, 1)
    );
    s.mark_done(acc, &["imap:1:2".into()]).await.unwrap();
    assert!(s.pending_server_ids(acc).await.unwrap().is_empty());
    // Done server ids are still known (never fetched again).
    assert_eq!(
        s.known_server_ids(acc, &["imap:1:2".into()])
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.count_messages("nobody").await.unwrap(),
        Default::default()
    );
}

/// The ERP's contract (issue #16.5): cursor feeds that never skip or repeat, one consumer per
/// claim, a claim that expires, an ack that needs the claim and is never undone, and an acked
/// entry that is never offered again.
async fn the_erp_claims_and_acknowledges_imports_and_reads_cursor_feeds<B: Backend>(b: &B) {
    use kurir_store::messages::{Ack, Claim};
    let s = b.store();
    let mut m1 = msg("graph:c1", Some("c1@x"), b"1");
    m1.imports = vec![import("claim-1.xml"), import("claim-2.xml")];
    let mut m2 = msg("graph:c2", Some("c2@x"), b"2");
    m2.imports = vec![import("claim-3.xml")];
    s.record_batch("M2M", vec![m1, m2]).await.unwrap();
    let staged = s.staged_imports("M2M").await.unwrap();
    let ids: Vec<i64> = staged.iter().map(|e| e.id).collect();
    // Staged entries (file not in place yet) are neither in the feed nor claimable.
    assert!(
        s.imports_after(None, 0, 100, false)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.claim_import(ids[0], "erp-a", 60_000).await.unwrap(),
        Claim::NotReady
    );
    s.mark_imports_ready(&ids).await.unwrap();

    // The feed pages by id without gaps or repeats.
    let page1 = s.imports_after(Some("M2M"), 0, 2, false).await.unwrap();
    let after = page1.last().unwrap().id;
    let page2 = s.imports_after(Some("M2M"), after, 2, false).await.unwrap();
    let seen: Vec<i64> = page1.iter().chain(&page2).map(|e| e.id).collect();
    assert_eq!(seen, ids);

    // One consumer per claim; the holder may renew it; the other is told until when.
    let Claim::Claimed { until } = s.claim_import(ids[0], "erp-a", 60_000).await.unwrap() else {
        panic!("claimed")
    };
    assert!(matches!(
        s.claim_import(ids[0], "erp-b", 60_000).await.unwrap(),
        Claim::ClaimedByOther { until: u } if u == until
    ));
    assert!(matches!(
        s.claim_import(ids[0], "erp-a", 60_000).await.unwrap(),
        Claim::Claimed { .. }
    ));
    // A claimed entry is not offered as pending; the others are.
    let pending: Vec<i64> = s
        .imports_after(None, 0, 100, true)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(pending, ids[1..]);

    // Only the holder acks; a retried ack is harmless; an acked entry is never offered again.
    assert_eq!(
        s.ack_import(ids[0], "erp-b").await.unwrap(),
        Ack::NotClaimed
    );
    assert_eq!(s.ack_import(ids[0], "erp-a").await.unwrap(), Ack::Acked);
    assert_eq!(
        s.ack_import(ids[0], "erp-a").await.unwrap(),
        Ack::AlreadyAcked
    );
    assert_eq!(
        s.claim_import(ids[0], "erp-b", 60_000).await.unwrap(),
        Claim::Acked
    );
    let all = s.imports_after(None, 0, 100, false).await.unwrap();
    assert_eq!(all[0].state, "picked_up");
    assert!(all[0].acked_at.is_some());
    assert!(
        !s.imports_after(None, 0, 100, true)
            .await
            .unwrap()
            .iter()
            .any(|e| e.id == ids[0])
    );

    // An expired claim can be taken over, and the first holder can no longer ack.
    assert!(matches!(
        s.claim_import(ids[1], "erp-a", -1).await.unwrap(),
        Claim::Claimed { .. }
    ));
    assert!(matches!(
        s.claim_import(ids[1], "erp-b", 60_000).await.unwrap(),
        Claim::Claimed { .. }
    ));
    assert_eq!(
        s.ack_import(ids[1], "erp-a").await.unwrap(),
        Ack::NotClaimed
    );
    assert_eq!(
        s.claim_import(999_999, "erp-a", 1).await.unwrap(),
        Claim::NotFound
    );
    assert_eq!(s.ack_import(999_999, "erp-a").await.unwrap(), Ack::NotFound);

    // Messages: the same cursor rule.
    let all = s
        .messages_after(&MessageFilter::default(), 0)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let rest = s
        .messages_after(&MessageFilter::default(), all[0].id)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, all[1].id);
}

async fn import_queue_states<B: Backend>(b: &B) {
    let s = b.store();
    let mut m1 = msg("graph:1", Some("1@x"), b"1");
    m1.imports = vec![import("order-1.xml"), {
        let mut pdf = import("order-1.pdf");
        pdf.kind = "pdf".into();
        pdf.content_type = None;
        pdf
    }];
    let mut m2 = msg("graph:2", Some("2@x"), b"2");
    // The same file name again in the account: ignored (unique per account).
    m2.imports = vec![import("order-1.xml"), import("order-2.xml")];
    let mut other = msg("graph:1", Some("1@x"), b"1");
    other.imports = vec![import("order-1.xml")];
    s.record_batch("M2M", vec![m1, m2]).await.unwrap();
    s.record_batch("Other", vec![other]).await.unwrap();

    let staged = s.staged_imports("M2M").await.unwrap();
    let names: Vec<&str> = staged.iter().map(|e| e.file_name.as_str()).collect();
    assert_eq!(names, ["order-1.xml", "order-1.pdf", "order-2.xml"]);
    assert!(
        staged
            .iter()
            .all(|e| e.state == "staged" && e.account == "M2M")
    );
    assert_eq!(staged[1].kind, "pdf");
    assert_eq!(staged[1].content_type, None);
    assert_eq!(staged[0].size, 42);
    assert_eq!(staged[0].message, staged[1].message);
    assert_ne!(staged[0].message, staged[2].message);

    s.mark_imports_ready(&[staged[0].id, staged[2].id])
        .await
        .unwrap();
    s.mark_imports_ready(&[]).await.unwrap();
    let staged_now = s.staged_imports("M2M").await.unwrap();
    assert_eq!(staged_now.len(), 1);
    assert_eq!(staged_now[0].file_name, "order-1.pdf");
    let all = s.list_imports(None).await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    let m2m = s.list_imports(Some("M2M")).await.unwrap();
    let states: Vec<&str> = m2m.iter().map(|e| e.state.as_str()).collect();
    assert_eq!(states, ["ready", "staged", "ready"]);
    assert_eq!(s.staged_imports("Other").await.unwrap().len(), 1);
}

async fn listing_paging_and_counts<B: Backend>(b: &B) {
    let s = b.store();
    let batch = (1..=5)
        .map(|n| {
            let mut m = msg(
                &format!("graph:{n}"),
                Some(&format!("{n}@t")),
                format!("{n}").as_bytes(),
            );
            m.subject = Some(format!("m{n}"));
            if n == 3 {
                m.status = MessageStatus::Quarantined;
                m.reason = Some("no XML".into());
            }
            m
        })
        .collect();
    s.record_batch("M2M", batch).await.unwrap();
    let mut o = msg("graph:9", Some("9@t"), b"9");
    o.subject = Some("m9".into());
    s.record_batch("Other", vec![o]).await.unwrap();
    let subjects = |v: Vec<kurir_store::messages::StoredMessage>| {
        v.into_iter()
            .map(|m| m.subject.unwrap())
            .collect::<Vec<_>>()
    };
    let f = MessageFilter {
        account: Some("M2M".into()),
        limit: 2,
        ..Default::default()
    };
    assert_eq!(
        subjects(s.list_messages_page(&f, 0).await.unwrap()),
        ["m5", "m4"]
    );
    assert_eq!(
        subjects(s.list_messages_page(&f, 2).await.unwrap()),
        ["m3", "m2"]
    );
    assert_eq!(subjects(s.list_messages_page(&f, 4).await.unwrap()), ["m1"]);
    assert_eq!(subjects(s.list_messages(&f).await.unwrap()), ["m5", "m4"]);
    let all = MessageFilter::default();
    assert_eq!(
        subjects(s.list_messages(&all).await.unwrap()),
        ["m9", "m5", "m4", "m3", "m2", "m1"]
    );
    assert_eq!(s.list_messages_page(&all, 5).await.unwrap().len(), 1);
    let q = MessageFilter {
        status: Some(MessageStatus::Quarantined),
        ..Default::default()
    };
    let quarantined = s.list_messages(&q).await.unwrap();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].reason.as_deref(), Some("no XML"));
    assert!(
        quarantined[0].server_ids.is_empty(),
        "lists leave server ids out"
    );

    let counts = s.counts_since("2000-01-01T00:00:00Z").await.unwrap();
    assert_eq!(counts[&("M2M".to_owned(), "stored".to_owned())], 4);
    assert_eq!(counts[&("M2M".to_owned(), "quarantined".to_owned())], 1);
    assert_eq!(counts[&("Other".to_owned(), "stored".to_owned())], 1);
    assert_eq!(counts.len(), 3);
    assert!(
        s.counts_since("2999-01-01T00:00:00Z")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn health_records_passes<B: Backend>(b: &B) {
    let s = b.store();
    assert!(s.health(None).await.unwrap().is_empty());
    s.record_pass("B", Ok(3)).await.unwrap();
    s.record_pass("A", Err("AADSTS7000215: invalid client secret".into()))
        .await
        .unwrap();
    s.record_pass("A", Err("AADSTS7000215: invalid client secret".into()))
        .await
        .unwrap();
    let a = &s.health(Some("A")).await.unwrap()[0];
    assert_eq!(a.failures, 2);
    assert!(a.last_success.is_none());
    assert_eq!(a.taken_in_total, 0);
    assert!(a.last_error.as_deref().unwrap().contains("AADSTS7000215"));
    s.record_pass("A", Ok(5)).await.unwrap();
    s.record_pass("A", Ok(2)).await.unwrap();
    let a = &s.health(Some("A")).await.unwrap()[0];
    assert_eq!(a.failures, 0);
    assert_eq!(a.taken_in_total, 7);
    assert!(a.last_success.is_some() && a.last_attempt.is_some());
    assert!(
        a.last_error.is_some() && a.last_error_at.is_some(),
        "the last error is kept after a success"
    );
    let all = s.health(None).await.unwrap();
    let names: Vec<&str> = all.iter().map(|h| h.account.as_str()).collect();
    assert_eq!(names, ["A", "B"]);
    assert_eq!(all[1].taken_in_total, 3);
    assert!(s.health(Some("C")).await.unwrap().is_empty());
}

/// An outbox time as read back: PostgreSQL keeps them in the database's clock (the same
/// distance from its now as from the caller's), so they match to within the time a query
/// takes, not to the millisecond.
fn near(got: Option<i64>, want: i64) -> bool {
    got.is_some_and(|g| (g - want).abs() <= 1_000)
}

fn outgoing(user: &str, n: u32) -> NewOutgoing {
    NewOutgoing {
        sender_user: user.to_owned(),
        origin: "cli".into(),
        from: Some(format!("{}@contoso.com", user.to_lowercase())),
        recipients: vec!["a@example.test".into(), "b@example.test".into()],
        subject: Some(format!("order {n}")),
        message_id: Some(format!("<{n}@kurir>")),
        raw: format!("Subject: order {n}\r\n\r\nbody {n}\r\n").into_bytes(),
    }
}

async fn outbox_lifecycle<B: Backend>(b: &B) {
    let s = b.store();
    assert_eq!(s.next_due().await.unwrap(), None);
    let before = now_ms();
    let id = s.enqueue(outgoing("WEBSHOP", 1)).await.unwrap();
    let ids = s
        .enqueue_many(vec![outgoing("ANNA", 2), outgoing("ANNA", 3)])
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] > id && ids[1] > ids[0]);
    let m = s.outbox_get(id).await.unwrap().unwrap();
    assert_eq!(m.state, OutgoingState::Queued);
    assert_eq!(m.recipients, ["a@example.test", "b@example.test"]);
    assert_eq!(m.size, outgoing("WEBSHOP", 1).raw.len() as u64);
    assert_eq!(m.attempts, 0);
    assert!(m.next_attempt_at >= before);
    assert_eq!(
        s.outbox_raw(id).await.unwrap().unwrap(),
        outgoing("WEBSHOP", 1).raw
    );
    assert!(s.outbox_get(999_999).await.unwrap().is_none());
    assert!(s.outbox_raw(999_999).await.unwrap().is_none());
    let due = s.next_due().await.unwrap().unwrap();
    // PostgreSQL keeps outbox times on the database's clock and maps them back to this
    // instance's clock, which may land a few milliseconds either side (as elsewhere: ±1 s).
    assert!(due >= before - 1000 && due <= now_ms() + 1000);

    // Lease two of three, oldest first.
    let t = now_ms();
    let leased = s.lease_due(t, 60_000, 2).await.unwrap();
    let got: Vec<i64> = leased.iter().map(|l| l.message.id).collect();
    assert_eq!(got, [id, ids[0]]);
    assert!(
        leased
            .iter()
            .all(|l| l.message.state == OutgoingState::Sending
                && l.message.attempts == 1
                && near(l.message.leased_until, t + 60_000))
    );
    assert_eq!(leased[0].raw, outgoing("WEBSHOP", 1).raw);
    let token = leased[0].lease_token.clone();
    // Renew with the token; a wrong token is refused.
    assert!(s.renew_lease(id, &token, t + 120_000).await.unwrap());
    assert!(
        !s.renew_lease(id, "not-the-token", t + 120_000)
            .await
            .unwrap()
    );
    assert!(near(
        s.outbox_get(id).await.unwrap().unwrap().leased_until,
        t + 120_000
    ));
    // Nothing else due except the third message.
    let rest = s.lease_due(t, 60_000, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].message.id, ids[1]);

    // Sent.
    assert!(
        !s.finish(
            id,
            "wrong",
            Outcome::Sent {
                via: "graph".into(),
                reply: "202".into()
            }
        )
        .await
        .unwrap()
    );
    assert!(
        s.finish(
            id,
            &token,
            Outcome::Sent {
                via: "graph".into(),
                reply: "202 Accepted".into()
            }
        )
        .await
        .unwrap()
    );
    let m = s.outbox_get(id).await.unwrap().unwrap();
    assert_eq!(m.state, OutgoingState::Sent);
    assert_eq!(m.via.as_deref(), Some("graph"));
    assert_eq!(m.server_reply.as_deref(), Some("202 Accepted"));
    assert!(m.sent_at.is_some() && m.leased_until.is_none());
    // A finished lease cannot be finished or renewed again.
    assert!(
        !s.finish(id, &token, Outcome::Failed { error: "x".into() })
            .await
            .unwrap()
    );
    assert!(!s.renew_lease(id, &token, t + 1).await.unwrap());

    // Retry: back to the queue at a later time, with the error kept.
    let retry_at = t + 30_000;
    assert!(
        s.finish(
            ids[0],
            &leased[1].lease_token,
            Outcome::Retry {
                at: retry_at,
                error: "421 try later".into()
            }
        )
        .await
        .unwrap()
    );
    let m = s.outbox_get(ids[0]).await.unwrap().unwrap();
    assert_eq!((m.state, m.attempts), (OutgoingState::Queued, 1));
    assert!(near(Some(m.next_attempt_at), retry_at));
    assert_eq!(m.last_error.as_deref(), Some("421 try later"));
    assert!(
        s.lease_due(t, 60_000, 10).await.unwrap().is_empty(),
        "not yet due"
    );
    // Defer: back to the queue without counting the attempt.
    assert!(
        s.finish(
            ids[1],
            &rest[0].lease_token,
            Outcome::Defer { at: t + 5_000 }
        )
        .await
        .unwrap()
    );
    let m = s.outbox_get(ids[1]).await.unwrap().unwrap();
    assert_eq!((m.state, m.attempts), (OutgoingState::Queued, 0));
    assert!(near(Some(m.next_attempt_at), t + 5_000));
    assert!(near(s.next_due().await.unwrap(), t + 5_000));
    // Failed for good.
    // A moment after it is due: times are kept in the database's clock (PostgreSQL's is read
    // at execution, this machine's when binding), so "exactly at retry_at" is only exact to
    // the round trip's few milliseconds.
    let again = s.lease_due(retry_at + 1_000, 60_000, 10).await.unwrap();
    assert_eq!(again.len(), 2);
    let first = again.iter().find(|l| l.message.id == ids[0]).unwrap();
    assert_eq!(first.message.attempts, 2);
    assert!(
        s.finish(
            ids[0],
            &first.lease_token,
            Outcome::Failed {
                error: "550 no such user".into()
            }
        )
        .await
        .unwrap()
    );
    let m = s.outbox_get(ids[0]).await.unwrap().unwrap();
    assert_eq!(m.state, OutgoingState::Failed);
    assert_eq!(m.last_error.as_deref(), Some("550 no such user"));
}

async fn outbox_lease_expiry_and_lost_leases<B: Backend>(b: &B) {
    let s = b.store();
    let id = s.enqueue(outgoing("ANNA", 1)).await.unwrap();
    // Minutes, not milliseconds: on PostgreSQL the store maps each time given to the database's
    // clock by the time a query takes, so sub-second windows were flaky on a loaded machine.
    let t = now_ms();
    let a = s.lease_due(t, 60_000, 10).await.unwrap();
    assert_eq!(a.len(), 1);
    assert!(
        near(s.next_due().await.unwrap(), t + 60_000),
        "due again when the lease ends"
    );
    // Before the lease ends nobody else gets it; after its end it is handed out again.
    assert!(
        s.lease_due(t + 30_000, 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let other = b.open(1).await.unwrap();
    let b2 = other.lease_due(t + 90_000, 60_000, 10).await.unwrap();
    assert_eq!(b2.len(), 1);
    assert_eq!(b2[0].message.id, id);
    assert_eq!(b2[0].message.attempts, 2);
    assert_ne!(b2[0].lease_token, a[0].lease_token);
    // The presumed-dead worker lost it: its renewal and outcome change nothing.
    assert!(
        !s.renew_lease(id, &a[0].lease_token, t + 120_000)
            .await
            .unwrap()
    );
    assert!(
        !s.finish(
            id,
            &a[0].lease_token,
            Outcome::Sent {
                via: "smtp".into(),
                reply: "250".into()
            }
        )
        .await
        .unwrap()
    );
    assert_eq!(
        s.outbox_get(id).await.unwrap().unwrap().state,
        OutgoingState::Sending
    );
    assert!(
        other
            .finish(
                id,
                &b2[0].lease_token,
                Outcome::Sent {
                    via: "smtp".into(),
                    reply: "250 2.0.0 OK".into()
                }
            )
            .await
            .unwrap()
    );
    let m = s.outbox_get(id).await.unwrap().unwrap();
    assert_eq!(m.state, OutgoingState::Sent);
    assert_eq!(m.server_reply.as_deref(), Some("250 2.0.0 OK"));
    assert_eq!(s.next_due().await.unwrap(), None);
    assert!(
        s.lease_due(t + 1_000_000, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn outbox_retry_cancel_and_counts<B: Backend>(b: &B) {
    let s = b.store();
    let ids = s
        .enqueue_many(
            (0..5)
                .map(|n| outgoing(if n < 3 { "ANNA" } else { "WEBSHOP" }, n))
                .collect(),
        )
        .await
        .unwrap();
    let t = now_ms();
    let leased = s.lease_due(t, 60_000, 3).await.unwrap();
    assert_eq!(leased.len(), 3);
    // ids[0] sent, ids[1] failed, ids[2] sending; ids[3], ids[4] queued.
    s.finish(
        ids[0],
        &leased[0].lease_token,
        Outcome::Sent {
            via: "graph".into(),
            reply: "202".into(),
        },
    )
    .await
    .unwrap();
    s.finish(
        ids[1],
        &leased[1].lease_token,
        Outcome::Failed {
            error: "AADSTS50126".into(),
        },
    )
    .await
    .unwrap();

    // Retry: failed or queued → queued now with attempts reset; not sent/sending/cancelled.
    assert!(s.outbox_retry(ids[1]).await.unwrap());
    let m = s.outbox_get(ids[1]).await.unwrap().unwrap();
    assert_eq!((m.state, m.attempts), (OutgoingState::Queued, 0));
    assert!(m.next_attempt_at >= t);
    assert!(s.outbox_retry(ids[3]).await.unwrap());
    assert!(!s.outbox_retry(ids[0]).await.unwrap(), "sent");
    assert!(!s.outbox_retry(ids[2]).await.unwrap(), "being sent");
    assert!(!s.outbox_retry(999_999).await.unwrap());
    // Cancel: queued or failed → cancelled; not sent/sending/cancelled.
    assert!(s.outbox_cancel(ids[4]).await.unwrap());
    assert!(!s.outbox_cancel(ids[4]).await.unwrap(), "already cancelled");
    assert!(!s.outbox_retry(ids[4]).await.unwrap(), "cancelled");
    assert!(!s.outbox_cancel(ids[0]).await.unwrap(), "sent");
    assert!(!s.outbox_cancel(ids[2]).await.unwrap(), "being sent");
    assert!(
        s.outbox_cancel(ids[1]).await.unwrap(),
        "queued again, so cancellable"
    );

    let counts = s.outbox_counts().await.unwrap();
    let want: std::collections::BTreeMap<String, u64> =
        [("cancelled", 2), ("queued", 1), ("sending", 1), ("sent", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
    assert_eq!(counts, want);
    let by_sender = s.outbox_counts_by_sender().await.unwrap();
    let get = |u: &str, st: &str| by_sender.get(&(u.to_owned(), st.to_owned())).copied();
    assert_eq!(get("ANNA", "sent"), Some(1));
    assert_eq!(get("ANNA", "cancelled"), Some(1));
    assert_eq!(get("ANNA", "sending"), Some(1));
    assert_eq!(get("WEBSHOP", "queued"), Some(1));
    assert_eq!(get("WEBSHOP", "cancelled"), Some(1));
    assert_eq!(by_sender.len(), 5);

    // Listing: newest first, by state, by sender, limited.
    let all = s.outbox_list(&OutboxFilter::default()).await.unwrap();
    let listed: Vec<i64> = all.iter().map(|m| m.id).collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
    let cancelled = s
        .outbox_list(&OutboxFilter {
            state: Some(OutgoingState::Cancelled),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        cancelled.iter().map(|m| m.id).collect::<Vec<_>>(),
        [ids[4], ids[1]]
    );
    let anna = s
        .outbox_list(&OutboxFilter {
            sender_user: Some("ANNA".into()),
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        anna.iter().map(|m| m.id).collect::<Vec<_>>(),
        [ids[2], ids[1]]
    );
    let none = s
        .outbox_list(&OutboxFilter {
            state: Some(OutgoingState::Failed),
            sender_user: Some("WEBSHOP".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// The multi-instance property: two instances (each with its own connections) and two workers
/// in each lease from the same 500 due messages at once; every message goes to exactly one.
async fn concurrent_leasers_get_disjoint_sets<B: Backend>(b: &B) {
    const N: usize = 500;
    let s = b.store();
    let all: Vec<i64> = s
        .enqueue_many((0..N as u32).map(|n| outgoing("WEBSHOP", n)).collect())
        .await
        .unwrap();
    let instances = [
        Arc::new(b.open(1).await.unwrap()),
        Arc::new(b.open(1).await.unwrap()),
    ];
    let t = now_ms();
    let mut tasks = Vec::new();
    for (i, store) in instances.iter().enumerate() {
        for w in 0..2 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut empty_in_a_row = 0;
                while empty_in_a_row < 3 {
                    let got = store.lease_due(t, 600_000, 7).await.unwrap();
                    if got.is_empty() {
                        empty_in_a_row += 1;
                        tokio::task::yield_now().await;
                        continue;
                    }
                    empty_in_a_row = 0;
                    for l in got {
                        assert_eq!(l.message.attempts, 1, "leased once only");
                        mine.push((l.message.id, l.lease_token));
                    }
                }
                (i, w, mine)
            }));
        }
    }
    let mut seen: BTreeSet<i64> = BTreeSet::new();
    let mut per_worker = Vec::new();
    let mut results = Vec::new();
    for task in tasks {
        let (i, w, mine) = task.await.unwrap();
        per_worker.push(((i, w), mine.len()));
        for (id, _) in &mine {
            assert!(seen.insert(*id), "message {id} was leased by two workers");
        }
        results.push((i, mine));
    }
    assert_eq!(seen.len(), N, "every message leased: {per_worker:?}");
    assert_eq!(seen, all.iter().copied().collect::<BTreeSet<_>>());
    let by_instance: Vec<usize> = (0..2)
        .map(|i| {
            results
                .iter()
                .filter(|(j, _)| *j == i)
                .map(|(_, m)| m.len())
                .sum()
        })
        .collect();
    eprintln!("{N} messages leased per instance: {by_instance:?}, per worker: {per_worker:?}");
    // Every worker can finish what it holds: the leases are all its own.
    for (i, mine) in results {
        for (id, token) in mine {
            assert!(
                instances[i]
                    .finish(
                        id,
                        &token,
                        Outcome::Sent {
                            via: "smtp".into(),
                            reply: "250".into()
                        }
                    )
                    .await
                    .unwrap()
            );
        }
    }
    assert_eq!(
        s.outbox_counts().await.unwrap().get("sent"),
        Some(&(N as u64))
    );
}

async fn account_lease_is_exclusive_and_expires<B: Backend>(b: &B) {
    let one = b.store();
    let two = b.open(1).await.unwrap();
    let acc = "Monitor-to-Monitor";
    let ttl = Duration::from_millis(1_500);
    assert!(one.account_lease(acc).await.unwrap().is_none());
    assert!(one.try_lease_account(acc, "host-a:1", ttl).await.unwrap());
    assert!(!two.try_lease_account(acc, "host-b:2", ttl).await.unwrap());
    let lease = two.account_lease(acc).await.unwrap().unwrap();
    assert_eq!(
        (lease.account.as_str(), lease.holder.as_str()),
        (acc, "host-a:1")
    );
    // Renewal by the holder extends it and keeps when it was taken.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(one.try_lease_account(acc, "host-a:1", ttl).await.unwrap());
    let renewed = one.account_lease(acc).await.unwrap().unwrap();
    assert!(renewed.leased_until > lease.leased_until);
    assert_eq!(renewed.acquired_at, lease.acquired_at);
    // Another account is independent.
    assert!(
        two.try_lease_account("Inkommande", "host-b:2", ttl)
            .await
            .unwrap()
    );
    // Only the holder can release.
    assert!(!two.release_account(acc, "host-b:2").await.unwrap());
    assert!(one.account_lease(acc).await.unwrap().is_some());

    // The holder dies: after the ttl the lease is free for the other instance.
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert!(one.account_lease(acc).await.unwrap().is_none(), "expired");
    assert!(two.try_lease_account(acc, "host-b:2", ttl).await.unwrap());
    assert!(
        !one.try_lease_account(acc, "host-a:1", ttl).await.unwrap(),
        "the old holder cannot take it back while the new lease runs"
    );
    assert_eq!(
        one.account_lease(acc).await.unwrap().unwrap().holder,
        "host-b:2"
    );
    // Released: free at once.
    assert!(two.release_account(acc, "host-b:2").await.unwrap());
    assert!(!two.release_account(acc, "host-b:2").await.unwrap());
    assert!(one.account_lease(acc).await.unwrap().is_none());
    assert!(one.try_lease_account(acc, "host-a:1", ttl).await.unwrap());
}

async fn concurrent_account_lease_has_one_winner<B: Backend>(b: &B) {
    let instances = [
        Arc::new(b.open(1).await.unwrap()),
        Arc::new(b.open(1).await.unwrap()),
    ];
    for round in 0..5 {
        let acc = format!("account-{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let mut tasks = Vec::new();
        for n in 0..8 {
            let store = instances[n % 2].clone();
            let acc = acc.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let won = store
                    .try_lease_account(&acc, &format!("holder-{n}"), Duration::from_secs(60))
                    .await
                    .unwrap();
                (n, won)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (n, won) = t.await.unwrap();
            if won {
                winners.push(n);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let holder = instances[0]
            .account_lease(&acc)
            .await
            .unwrap()
            .unwrap()
            .holder;
        assert_eq!(holder, format!("holder-{}", winners[0]));
    }
}

async fn listener_users<B: Backend>(b: &B) {
    let s = b.store();
    let pw = SecretString::from("webshop-smtp-password".to_owned());
    s.set_listener_user("webshop", "WEBSHOP", &pw)
        .await
        .unwrap();
    s.set_listener_user("legacy", "ANNA", &pw).await.unwrap();
    assert_eq!(
        s.check_listener_user("webshop", &pw)
            .await
            .unwrap()
            .as_deref(),
        Some("WEBSHOP")
    );
    assert!(
        s.check_listener_user("webshop", &"wrong".to_owned().into())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.check_listener_user("nobody", &pw)
            .await
            .unwrap()
            .is_none()
    );
    let users = s.list_listener_users().await.unwrap();
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["legacy", "webshop"]);
    assert!(users[1].last_login.is_some() && users[0].last_login.is_none());
    // Replacing changes the user and the password.
    let pw2 = SecretString::from("another-password".to_owned());
    s.set_listener_user("webshop", "ANNA", &pw2).await.unwrap();
    assert!(
        s.check_listener_user("webshop", &pw)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.check_listener_user("webshop", &pw2)
            .await
            .unwrap()
            .as_deref(),
        Some("ANNA")
    );
    assert!(!contains(&b.stored_bytes().await, b"another-password"));
    assert!(s.remove_listener_user("webshop").await.unwrap());
    assert!(!s.remove_listener_user("webshop").await.unwrap());
    assert_eq!(s.list_listener_users().await.unwrap().len(), 1);
}

async fn admin_users_sessions_and_api_keys<B: Backend>(b: &B) {
    let s = b.store();
    let pw = SecretString::from("a long passphrase".to_owned());
    assert!(s.add_admin("admin", &pw).await.unwrap());
    assert!(!s.add_admin("admin", &pw).await.unwrap(), "duplicate name");
    assert!(s.add_admin("backup", &pw).await.unwrap());
    assert!(s.verify_admin("admin", &pw).await.unwrap());
    assert!(
        !s.verify_admin("admin", &"wrong".to_owned().into())
            .await
            .unwrap()
    );
    assert!(!s.verify_admin("nobody", &pw).await.unwrap());
    let admins = s.list_admins().await.unwrap();
    assert_eq!(
        admins.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["admin", "backup"]
    );
    assert!(admins[0].last_login.is_some() && admins[1].last_login.is_none());

    let new = s
        .create_session("admin", time::Duration::hours(1))
        .await
        .unwrap();
    let token = new.token.expose_secret().to_owned();
    let other = b.open(1).await.unwrap();
    let found = other
        .session(&token)
        .await
        .unwrap()
        .expect("live session on another instance");
    assert_eq!(found.admin, "admin");
    assert_eq!(found.csrf, new.session.csrf);
    assert!(s.session("not-a-token").await.unwrap().is_none());
    let expired = s
        .create_session("admin", time::Duration::seconds(-1))
        .await
        .unwrap();
    assert!(
        s.session(expired.token.expose_secret())
            .await
            .unwrap()
            .is_none()
    );
    let backup = s
        .create_session("backup", time::Duration::hours(1))
        .await
        .unwrap();
    s.delete_session(backup.token.expose_secret())
        .await
        .unwrap();
    assert!(
        s.session(backup.token.expose_secret())
            .await
            .unwrap()
            .is_none()
    );

    let key = s.create_api_key("erp-script").await.unwrap().unwrap();
    assert!(s.create_api_key("erp-script").await.unwrap().is_none());
    let tok = key.token.expose_secret().to_owned();
    assert!(tok.starts_with("kurir_"));
    let info = other
        .verify_api_key(&tok)
        .await
        .unwrap()
        .expect("valid key");
    assert_eq!(info.name, "erp-script");
    assert_eq!(info.id, key.info.id);
    assert!(s.list_api_keys().await.unwrap()[0].last_used.is_some());
    // Another last character (a fixed "0" would be no change one time in 16).
    let last = if tok.ends_with('0') { "1" } else { "0" };
    let tampered = format!("{}{last}", &tok[..tok.len() - 1]);
    assert!(s.verify_api_key(&tampered).await.unwrap().is_none());
    assert!(s.verify_api_key("kurir_garbage").await.unwrap().is_none());

    // Nothing replayable is stored: not the session token, not the key's secret, not the
    // password.
    let bytes = b.stored_bytes().await;
    assert!(!contains(&bytes, token.as_bytes()), "session token stored");
    assert!(
        !contains(&bytes, tok.rsplit('_').next().unwrap().as_bytes()),
        "API key secret stored"
    );
    assert!(!contains(&bytes, b"a long passphrase"), "password stored");

    // A password change signs everyone out.
    assert!(
        s.set_admin_password("admin", &"another passphrase".to_owned().into())
            .await
            .unwrap()
    );
    assert!(!s.set_admin_password("nobody", &pw).await.unwrap());
    assert!(s.session(&token).await.unwrap().is_none());
    assert!(
        s.verify_admin("admin", &"another passphrase".to_owned().into())
            .await
            .unwrap()
    );

    assert!(s.api_key_exists(&info.id).await.unwrap());
    assert!(s.revoke_api_key(&info.id).await.unwrap(), "by id");
    assert!(!s.revoke_api_key("erp-script").await.unwrap());
    assert!(s.verify_api_key(&tok).await.unwrap().is_none());
    assert!(!s.api_key_exists(&info.id).await.unwrap());
    let k2 = s.create_api_key("second").await.unwrap().unwrap();
    assert!(s.revoke_api_key("second").await.unwrap(), "by name");
    assert!(
        s.verify_api_key(k2.token.expose_secret())
            .await
            .unwrap()
            .is_none()
    );

    let session = s
        .create_session("backup", time::Duration::hours(1))
        .await
        .unwrap();
    assert!(s.remove_admin("backup").await.unwrap());
    assert!(!s.remove_admin("backup").await.unwrap());
    assert!(
        s.session(session.token.expose_secret())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(s.list_admins().await.unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only: connecting.

#[tokio::test]
async fn postgres_connect_errors_name_the_server_without_the_password() {
    // Port 1 on loopback: nothing listens there.
    let err = PgStore::connect("postgres://kurir:hunter2-secret@127.0.0.1:1/kurir", key(1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("hunter2"), "password in the message: {text}");
    assert!(
        !format!("{err:?}").contains("hunter2"),
        "password in Debug: {err:?}"
    );
}

#[tokio::test]
async fn postgres_schema_names_are_checked_and_schemas_are_isolated() {
    let b = Postgres::create().await;
    let err = PgStore::connect_in_schema(&b.url, Some("x\"; DROP SCHEMA public; --"), key(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("schema name"), "{err}");
    // A second schema in the same database is a separate store (and may use another key).
    let other = Postgres::create().await;
    b.store().add_user("ANNA").await.unwrap();
    assert!(other.store().snapshot().await.unwrap().users.is_empty());
    let third = PgStore::connect_in_schema(&b.url, Some(&format!("{}_x", other.schema)), key(9))
        .await
        .unwrap();
    drop(third);
    let mut c = sqlx::PgConnection::connect(&b.url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{}_x\" CASCADE",
        other.schema
    )))
    .execute(&mut c)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_instances_starting_at_once_on_an_empty_schema_agree() {
    // Several daemons started together against a new database: one creates the schema, runs
    // the migrations and writes the key check row; the others wait and use it.
    let b = Postgres::create().await;
    let schema = format!("{}_start", b.schema);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (url, schema) = (b.url.clone(), schema.clone());
        tasks.push(tokio::spawn(async move {
            PgStore::connect_in_schema(&url, Some(&schema), key(1)).await
        }));
    }
    let mut stores = Vec::new();
    for t in tasks {
        stores.push(t.await.unwrap().expect("every instance starts"));
    }
    stores[0].add_user("ANNA").await.unwrap();
    for s in &stores {
        assert!(s.snapshot().await.unwrap().users.contains_key("ANNA"));
    }
    let err = PgStore::connect_in_schema(&b.url, Some(&schema), key(2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");
    for s in stores {
        s.close().await;
    }
    let mut c = sqlx::PgConnection::connect(&b.url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&mut c)
    .await
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Either backend as one trait object (`open_store`), as the consumers are to use it.

async fn use_as_trait_objects(store: Arc<dyn kurir_store::KurirStore>) {
    let messages: Arc<dyn MessageStore> = store.clone();
    let outbox: Arc<dyn OutboxStore> = store.clone();
    let settings: Arc<dyn Store> = store.clone();
    let r = messages
        .record_batch("A", vec![msg("graph:1", Some("1@x"), b"one")])
        .await
        .unwrap();
    let raw = store.raw_message(r[0].id()).await.unwrap().unwrap();
    let dir = store.local_data_dir().expect("a local directory");
    assert_eq!(raw.read(&dir).unwrap(), b"one");
    let id = outbox.enqueue(outgoing("ANNA", 1)).await.unwrap();
    assert_eq!(store.outbox_get(id).await.unwrap().unwrap().id, id);
    settings.add_user("ANNA").await.unwrap();
    assert!(
        store
            .add_admin("admin", &"pw".to_owned().into())
            .await
            .unwrap()
    );
}

fn write_key_file(dir: &Path, key_byte: u8) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("master.key");
    std::fs::write(&path, format!("{key_byte:02x}").repeat(32)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test]
async fn open_store_without_a_database_url_is_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    write_key_file(dir.path(), 1);
    let store = kurir_store::open_store(dir.path(), None).await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    assert_eq!(store.local_data_dir().as_deref(), Some(dir.path()));
    assert_eq!(store.key_fingerprint(), key(1).fingerprint());
    use_as_trait_objects(store).await;
}

#[tokio::test]
async fn open_store_with_a_database_url_is_postgres() {
    let b = Postgres::create().await;
    b.store().add_user("WEBSHOP").await.unwrap();
    let sep = if b.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}options=-c%20search_path%3D{}", b.url, b.schema);
    let dir = tempfile::tempdir().unwrap();
    write_key_file(dir.path(), 1);
    let store = kurir_store::open_store(dir.path(), Some(&url))
        .await
        .unwrap();
    assert_eq!(store.backend(), "postgres");
    assert_eq!(store.local_data_dir().as_deref(), Some(dir.path()));
    assert!(
        store
            .snapshot()
            .await
            .unwrap()
            .users
            .contains_key("WEBSHOP"),
        "the same database as the harness's store"
    );
    use_as_trait_objects(store).await;
    // Another key file: the database says no.
    let other = tempfile::tempdir().unwrap();
    write_key_file(other.path(), 2);
    let err = kurir_store::open_store(other.path(), Some(&url))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");
}

/// Retention (issue #16.1): the content of what is done goes after its time, its record later;
/// nothing still someone's work is touched: a message whose move on the server is not done, a
/// quarantined message nobody handled, a document the ERP has not acknowledged, mail not sent.
async fn retention_purges_only_what_is_processed_acknowledged_or_sent<B: Backend>(b: &B) {
    use kurir_store::lifecycle::Retention;
    let s = b.store();
    let done = msg("graph:r-done", None, b"done message");
    let pending = msg("graph:r-pending", None, b"pending server step");
    let mut unacked = msg("graph:r-unacked", None, b"document not acknowledged");
    unacked.imports = vec![import("r-unacked.xml")];
    let mut acked = msg("graph:r-acked", None, b"document acknowledged");
    acked.imports = vec![import("r-acked.xml")];
    let mut quarantined = msg("graph:r-q", None, b"quarantined, nobody handled it");
    quarantined.status = MessageStatus::Quarantined;
    quarantined.reason = Some("no XML".into());
    let ids: Vec<i64> = s
        .record_batch("R", vec![done, pending, unacked, acked, quarantined])
        .await
        .unwrap()
        .iter()
        .map(|r| r.id())
        .collect();
    let [done, pending, unacked, acked, quarantined] = ids[..] else {
        panic!("five recorded")
    };
    s.mark_done(
        "R",
        &[
            "graph:r-done",
            "graph:r-unacked",
            "graph:r-acked",
            "graph:r-q",
        ]
        .map(String::from),
    )
    .await
    .unwrap();
    let staged: Vec<i64> = s
        .staged_imports("R")
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    s.mark_imports_ready(&staged).await.unwrap();
    let acked_entry = s
        .list_imports(Some("R"))
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.message == acked)
        .unwrap();
    s.ack_removed_imports(&[acked_entry.id]).await.unwrap();
    // Outgoing: one sent, one queued, one failed.
    let sent = s.enqueue(outgoing("ANNA", 1)).await.unwrap();
    let failed = s.enqueue(outgoing("ANNA", 2)).await.unwrap();
    let queued = s.enqueue(outgoing("ANNA", 3)).await.unwrap();
    for l in s.lease_due(now_ms(), 60_000, 2).await.unwrap() {
        let outcome = if l.message.id == sent {
            Outcome::Sent {
                via: "graph".into(),
                reply: "202".into(),
            }
        } else {
            Outcome::Failed {
                error: "550 no such user".into(),
            }
        };
        assert!(
            s.finish(l.message.id, &l.lease_token, outcome)
                .await
                .unwrap()
        );
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Content older than "now", records kept for long.
    let content_now = Retention {
        raw_mail: Duration::ZERO,
        import_documents: Duration::ZERO,
        sent_mail: Duration::ZERO,
        records: Duration::from_secs(3600),
    };
    let dry = s.purge(&content_now, true).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!((dry.raw_messages, dry.sent_messages), (2, 1), "{dry:?}");
    assert_eq!(
        dry.raw_bytes,
        (b"done message".len() + b"document acknowledged".len()) as u64
    );
    // The dry run changed nothing.
    assert!(s.raw_message(done).await.unwrap().is_some());
    let report = s.purge(&content_now, false).await.unwrap();
    assert_eq!(
        (report.raw_messages, report.raw_bytes, report.sent_messages),
        (dry.raw_messages, dry.raw_bytes, dry.sent_messages)
    );
    assert_eq!((report.message_records, report.outbox_records), (0, 0));
    for id in [done, acked] {
        assert!(
            s.raw_message(id).await.unwrap().is_none(),
            "raw of {id} kept"
        );
        let m = s.message(id).await.unwrap().unwrap();
        assert!(m.raw_purged_at.is_some());
    }
    for id in [pending, unacked, quarantined] {
        assert!(
            s.raw_message(id).await.unwrap().is_some(),
            "raw of {id} purged"
        );
    }
    assert_eq!(s.outbox_raw(sent).await.unwrap().unwrap(), Vec::<u8>::new());
    assert_eq!(
        s.outbox_raw(failed).await.unwrap().unwrap(),
        outgoing("ANNA", 2).raw
    );
    assert_eq!(
        s.outbox_raw(queued).await.unwrap().unwrap(),
        outgoing("ANNA", 3).raw
    );
    // A second purge finds nothing more.
    let again = s.purge(&content_now, false).await.unwrap();
    assert_eq!((again.raw_messages, again.sent_messages), (0, 0));

    // Handled by an administrator: the quarantined message's original may go too.
    s.mark_handled(quarantined, "admin:anna", "asked the sender to resend")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.purge(&content_now, false).await.unwrap().raw_messages, 1);

    let (usage, outbox) = s.storage_use().await.unwrap();
    let r = usage.iter().find(|u| u.account == "R").unwrap();
    assert_eq!((r.messages, r.messages_with_raw), (5, 2));
    assert_eq!(
        r.raw_bytes,
        (b"pending server step".len() + b"document not acknowledged".len()) as u64
    );
    assert_eq!(r.quarantine_open, 0);
    assert_eq!(outbox.entries, 3);
    assert_eq!(
        outbox.bytes,
        (outgoing("ANNA", 2).raw.len() + outgoing("ANNA", 3).raw.len()) as u64
    );

    // Records whose content is gone, once older than keep_records.
    let all_now = Retention {
        records: Duration::ZERO,
        ..content_now
    };
    let report = s.purge(&all_now, false).await.unwrap();
    assert_eq!(
        (report.message_records, report.outbox_records),
        (3, 1),
        "{report:?}"
    );
    for id in [done, acked, quarantined] {
        assert!(s.message(id).await.unwrap().is_none());
    }
    for id in [pending, unacked] {
        assert!(s.message(id).await.unwrap().is_some());
    }
    assert!(s.outbox_get(sent).await.unwrap().is_none());
    assert!(s.outbox_get(failed).await.unwrap().is_some());
    // The removed messages' import entries and server ids went with them: the unacknowledged
    // entry stays.
    let left: Vec<i64> = s
        .list_imports(Some("R"))
        .await
        .unwrap()
        .iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(left, [unacked]);
    assert!(
        s.known_server_ids("R", &["graph:r-done".into()])
            .await
            .unwrap()
            .is_empty()
    );
}

/// Quarantine actions (issue #16.4) in the store: only on quarantined messages, each with its
/// audit entry; reprocessing replaces the state and queues the new documents as staged.
async fn quarantine_actions_are_audited_and_refused_on_other_messages<B: Backend>(b: &B) {
    use kurir_store::lifecycle::{ActionRefused, Reprocessed};
    let s = b.store();
    let mut q1 = msg("graph:q1", None, b"q1");
    q1.status = MessageStatus::Quarantined;
    q1.reason = Some("wrong type".into());
    let mut q2 = msg("graph:q2", None, b"q2");
    q2.status = MessageStatus::Quarantined;
    let ok = msg("graph:ok", None, b"ok");
    let ids: Vec<i64> = s
        .record_batch("Q", vec![q1, q2, ok])
        .await
        .unwrap()
        .iter()
        .map(|r| r.id())
        .collect();
    let [q1, q2, ok] = ids[..] else { panic!() };
    assert_eq!(
        s.mark_handled(ok, "admin:a", "n").await.unwrap(),
        Err(ActionRefused::NotQuarantined)
    );
    assert_eq!(
        s.mark_handled(999_999, "admin:a", "n").await.unwrap(),
        Err(ActionRefused::NotFound)
    );
    // The move on the server is not recorded yet: deleting would take it in again.
    assert_eq!(
        s.delete_quarantined(q2, "admin:a").await.unwrap(),
        Err(ActionRefused::ServerStepPending)
    );
    s.mark_done("Q", &["graph:q1".into(), "graph:q2".into()])
        .await
        .unwrap();

    let outcome = Reprocessed {
        status: MessageStatus::Stored,
        reason: None,
        handler: "monitor-to-monitor".into(),
        attachments: Vec::new(),
        imports: vec![import("q1.xml")],
    };
    let new = s
        .replace_quarantine(q1, outcome.clone(), "api:erp")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.len(), 1);
    let m = s.message(q1).await.unwrap().unwrap();
    assert_eq!(
        (m.status, m.reason.as_deref(), m.handler.as_str()),
        (MessageStatus::Stored, None, "monitor-to-monitor")
    );
    assert_eq!(s.staged_imports("Q").await.unwrap()[0].id, new[0]);
    // Not quarantined any more: a second reprocess is refused.
    assert_eq!(
        s.replace_quarantine(q1, outcome, "api:erp").await.unwrap(),
        Err(ActionRefused::NotQuarantined)
    );
    s.delete_quarantined(q2, "cli:root").await.unwrap().unwrap();
    assert!(s.message(q2).await.unwrap().is_none());
    assert!(
        s.known_server_ids("Q", &["graph:q2".into()])
            .await
            .unwrap()
            .is_empty()
    );

    let log = s.audit_log(None, 10).await.unwrap();
    let seen: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.subject.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("cli:root", "delete", format!("message:{q2}").as_str()),
            ("api:erp", "reprocess", format!("message:{q1}").as_str()),
        ]
    );
    assert_eq!(
        s.audit_log(Some(&format!("message:{q1}")), 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn notified_alarms_and_webhook_cursors_are_kept<B: Backend>(b: &B) {
    use kurir_store::lifecycle::NotifiedAlarm;
    let s = b.store();
    assert!(s.notified_alarms().await.unwrap().is_empty());
    let mut a = NotifiedAlarm {
        key: "client_secret_expiring/system".into(),
        severity: "warning".into(),
        message: "expires in 20 days".into(),
        first_seen: "2026-12-01T00:00:00Z".into(),
        last_sent: "2026-12-01T00:00:00Z".into(),
    };
    s.save_notified_alarm(&a).await.unwrap();
    a.message = "expires in 19 days".into();
    a.last_sent = "2026-12-02T00:00:00Z".into();
    s.save_notified_alarm(&a).await.unwrap();
    assert_eq!(s.notified_alarms().await.unwrap(), [a.clone()]);
    s.forget_notified_alarm(&a.key).await.unwrap();
    assert!(s.notified_alarms().await.unwrap().is_empty());
    assert_eq!(s.webhook_cursor("messages").await.unwrap(), None);
    s.set_webhook_cursor("messages", 7).await.unwrap();
    s.set_webhook_cursor("messages", 9).await.unwrap();
    assert_eq!(s.webhook_cursor("messages").await.unwrap(), Some(9));
}
