//! Cases only an in-crate test can reach (rows changed behind the store's back). Everything
//! else the store promises is in `tests/conformance.rs`, which runs each case on SQLite and on
//! PostgreSQL.

use std::path::Path;

use kurir_settings::Scope;
use secrecy::SecretString;

use crate::crypto::{KeyOrigin, MasterKey};
use crate::sqlite::DB_FILE;
use crate::{Change, NewValue, SqliteStore, Store, StoreError};

const SECRET: &str = "Abc8Q~PlaintextThatMustNeverBeOnDisk_cdef";

fn key(b: u8) -> MasterKey {
    MasterKey::from_bytes(&[b; 32], KeyOrigin::Explicit)
}

async fn store(dir: &Path, b: u8) -> Result<SqliteStore, StoreError> {
    SqliteStore::open_with_key(&dir.join(DB_FILE), key(b)).await
}

fn set_secret(k: &str, v: &str) -> Change {
    Change::Set(k.into(), NewValue::Secret(SecretString::from(v.to_owned())))
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 1).await.unwrap();
    s.add_user("ANNA").await.unwrap();
    s.apply(&Scope::System, vec![set_secret("client_secret", SECRET)])
        .await
        .unwrap();
    sqlx::query("INSERT INTO settings (scope, key, value, secret, set_at) SELECT 'user:ANNA', 'client_secret', NULL, secret, set_at FROM settings WHERE scope = 'system'")
        .execute(&s.pool)
        .await
        .unwrap();
    let err = s
        .reveal(&Scope::User("ANNA".into()), "client_secret")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::CorruptSecret { .. }), "{err:?}");
}
