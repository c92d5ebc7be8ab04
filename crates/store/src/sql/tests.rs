use kurir_settings::{Scope, StoredValue};
use secrecy::{ExposeSecret, SecretString};

use std::path::Path;

use crate::crypto::{KeyOrigin, MasterKey};
use crate::messages::{
    MessageFilter, MessageStatus, MessageStore, NewMessage, RawMime, StoredMessage,
};
use crate::sqlite::DB_FILE;
use crate::web::AdminStore;
use crate::{Change, ExportValue, NewValue, SqliteStore, Store, StoreError};

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

/// Every byte Kurir wrote for the database: the file and its WAL/SHM siblings.
fn all_db_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(DB_FILE)
        {
            out.extend(std::fs::read(p).unwrap());
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn secrets_are_not_in_the_database_files_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 1).await.unwrap();
    s.add_user("WEBSHOP").await.unwrap();
    s.apply(&Scope::System, vec![set_secret("client_secret", SECRET)])
        .await
        .unwrap();
    s.apply(
        &Scope::User("WEBSHOP".into()),
        vec![set_secret("exchange_password", "Sommar2026!Lösenord")],
    )
    .await
    .unwrap();
    s.save_refresh_token(
        "k",
        &SecretString::from("refresh-token-plaintext-0123".to_owned()),
    )
    .await
    .unwrap();
    let bytes = all_db_bytes(dir.path());
    assert!(!bytes.is_empty());
    assert!(!contains(&bytes, SECRET.as_bytes()));
    assert!(!contains(&bytes, "Sommar2026!Lösenord".as_bytes()));
    assert!(!contains(&bytes, b"refresh-token-plaintext"));
    // …and yet they can be read back with the key.
    assert_eq!(
        s.reveal(&Scope::System, "client_secret")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        SECRET
    );
    assert_eq!(
        s.load_refresh_token("k")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "refresh-token-plaintext-0123"
    );
}

#[tokio::test]
async fn a_wrong_master_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 1).await.unwrap();
    s.apply(&Scope::System, vec![set_secret("client_secret", SECRET)])
        .await
        .unwrap();
    drop(s);
    let err = store(dir.path(), 2).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("is not the key this data directory was encrypted with"),
        "{text}"
    );
    assert!(
        text.contains(key(1).fingerprint()),
        "names the expected fingerprint: {text}"
    );
    assert!(store(dir.path(), 1).await.is_ok());
}

#[tokio::test]
async fn snapshot_masks_secrets_and_keeps_plain_values() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 1).await.unwrap();
    s.add_user("ANNA").await.unwrap();
    s.add_account("Monitor-to-Monitor").await.unwrap();
    s.apply(
        &Scope::System,
        vec![
            Change::Set(
                "client_id".into(),
                NewValue::Plain("11111111-2222-3333-4444-555555555555".into()),
            ),
            set_secret("client_secret", SECRET),
        ],
    )
    .await
    .unwrap();
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
    assert!(snap.users.contains_key("ANNA") && snap.accounts.contains_key("Monitor-to-Monitor"));
    // Unset goes back to inherited.
    assert_eq!(
        s.apply(&Scope::System, vec![Change::Unset("client_id".into())])
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.snapshot().await.unwrap().system.get("client_id"), None);
}

#[tokio::test]
async fn users_and_accounts_must_exist_and_take_their_settings_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 1).await.unwrap();
    let err = s
        .apply(
            &Scope::User("ANNA".into()),
            vec![Change::Set(
                "email".into(),
                NewValue::Plain("a@b.se".into()),
            )],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("kurir users add ANNA"), "{err}");
    s.add_user("ANNA").await.unwrap();
    assert!(matches!(
        s.add_user("ANNA").await,
        Err(StoreError::UserExists(_))
    ));
    s.apply(
        &Scope::User("ANNA".into()),
        vec![Change::Set(
            "email".into(),
            NewValue::Plain("a@b.se".into()),
        )],
    )
    .await
    .unwrap();
    s.remove_user("ANNA").await.unwrap();
    s.add_user("ANNA").await.unwrap();
    assert_eq!(
        s.snapshot().await.unwrap().users["ANNA"].get("email"),
        None,
        "settings left with the user"
    );
    assert!(matches!(
        s.remove_account("nope").await,
        Err(StoreError::NoSuchAccount(_))
    ));
}

#[tokio::test]
async fn export_import_round_trip_and_foreign_keys() {
    let a_dir = tempfile::tempdir().unwrap();
    let a = store(a_dir.path(), 1).await.unwrap();
    a.add_user("WEBSHOP").await.unwrap();
    a.add_account("Monitor-to-Monitor").await.unwrap();
    a.apply(
        &Scope::User("WEBSHOP".into()),
        vec![set_secret("exchange_password", "pw-0123456789abcdef")],
    )
    .await
    .unwrap();
    a.apply(
        &Scope::System,
        vec![Change::Set(
            "method".into(),
            NewValue::Plain(kurir_settings::Method::ExchangeOnline.as_str().into()),
        )],
    )
    .await
    .unwrap();

    let without = a.export_rows(false).await.unwrap();
    assert!(
        without
            .iter()
            .all(|r| !matches!(r.value, ExportValue::Sealed(_)))
    );
    let with = a.export_rows(true).await.unwrap();
    assert!(
        with.iter()
            .any(|r| matches!(r.value, ExportValue::Sealed(_)))
    );

    // Same key elsewhere: everything arrives, the secret still opens.
    let b_dir = tempfile::tempdir().unwrap();
    let b = store(b_dir.path(), 1).await.unwrap();
    b.import_rows(with.clone(), Some(&a.key_fingerprint()))
        .await
        .unwrap();
    let snap = b.snapshot().await.unwrap();
    assert!(snap.accounts.contains_key("Monitor-to-Monitor"));
    assert_eq!(
        snap.system.plain("method"),
        Some(kurir_settings::Method::ExchangeOnline.as_str())
    );
    assert_eq!(
        b.reveal(&Scope::User("WEBSHOP".into()), "exchange_password")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "pw-0123456789abcdef"
    );

    // Another key: refused as a whole, nothing half-imported.
    let c_dir = tempfile::tempdir().unwrap();
    let c = store(c_dir.path(), 3).await.unwrap();
    let err = c
        .import_rows(with, Some(&a.key_fingerprint()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ForeignExport { .. }), "{err}");
    assert!(c.snapshot().await.unwrap().users.is_empty());
    // Without secrets it imports anywhere.
    c.import_rows(without, None).await.unwrap();
    assert!(c.snapshot().await.unwrap().users.contains_key("WEBSHOP"));
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

#[tokio::test]
async fn admins_sessions_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 7).await.unwrap();
    let pw = SecretString::from("a long passphrase");
    assert!(s.add_admin("admin", &pw).await.unwrap());
    assert!(!s.add_admin("admin", &pw).await.unwrap(), "duplicate name");
    assert!(s.verify_admin("admin", &pw).await.unwrap());
    assert!(!s.verify_admin("admin", &"wrong".into()).await.unwrap());
    assert!(!s.verify_admin("nobody", &pw).await.unwrap());
    let admins = s.list_admins().await.unwrap();
    assert_eq!(admins.len(), 1);
    assert!(admins[0].last_login.is_some());

    let new = s
        .create_session("admin", time::Duration::hours(1))
        .await
        .unwrap();
    let token = new.token.expose_secret().to_owned();
    let found = s.session(&token).await.unwrap().expect("live session");
    assert_eq!(found.admin, "admin");
    assert_eq!(found.csrf, new.session.csrf);
    // The database holds only the hash of the token.
    let raw: String = sqlx::query_scalar("SELECT token_hash FROM admin_sessions")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_ne!(raw, token);
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
    // A password change signs everyone out.
    assert!(
        s.set_admin_password("admin", &"another passphrase".into())
            .await
            .unwrap()
    );
    assert!(s.session(&token).await.unwrap().is_none());

    let key = s.create_api_key("erp-script").await.unwrap().unwrap();
    assert!(s.create_api_key("erp-script").await.unwrap().is_none());
    let tok = key.token.expose_secret().to_owned();
    assert!(tok.starts_with("kurir_"));
    let info = s.verify_api_key(&tok).await.unwrap().expect("valid key");
    assert_eq!(info.name, "erp-script");
    // Another last character (a fixed "0" would be no change one time in 16).
    let last = if tok.ends_with('0') { "1" } else { "0" };
    let tampered = format!("{}{last}", &tok[..tok.len() - 1]);
    assert!(s.verify_api_key(&tampered).await.unwrap().is_none());
    let stored: String = sqlx::query_scalar("SELECT secret_hash FROM api_keys")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert!(!stored.contains(&tok[23..]), "secret stored in the clear");
    assert!(s.revoke_api_key("erp-script").await.unwrap());
    assert!(s.verify_api_key(&tok).await.unwrap().is_none());
    assert!(!s.api_key_exists(&info.id).await.unwrap());

    assert!(s.remove_admin("admin").await.unwrap());
    assert!(s.list_admins().await.unwrap().is_empty());
}

fn msg(n: u32, status: MessageStatus) -> NewMessage {
    NewMessage {
        server_id: format!("graph:{n}"),
        dedupe_key: format!("mid:{n}@test"),
        message_id: Some(format!("{n}@test")),
        content_hash: format!("{n:064}"),
        status,
        reason: (status == MessageStatus::Quarantined).then(|| "no XML".to_owned()),
        handler: "general".into(),
        from: Some("a@b.test".into()),
        to: None,
        subject: Some(format!("m{n}")),
        date: None,
        size: 10,
        attachments: Vec::new(),
        raw: RawMime::Inline(b"Subject: x\r\n\r\nx".to_vec()),
        imports: Vec::new(),
    }
}

#[tokio::test]
async fn pages_and_counts_since() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 7).await.unwrap();
    let batch = (1..=5)
        .map(|n| {
            msg(
                n,
                if n == 3 {
                    MessageStatus::Quarantined
                } else {
                    MessageStatus::Stored
                },
            )
        })
        .collect();
    s.record_batch("M2M", batch).await.unwrap();
    s.record_batch("Other", vec![msg(9, MessageStatus::Stored)])
        .await
        .unwrap();
    let f = MessageFilter {
        account: Some("M2M".into()),
        limit: 2,
        ..Default::default()
    };
    let subjects = |v: Vec<StoredMessage>| {
        v.into_iter()
            .map(|m| m.subject.unwrap())
            .collect::<Vec<_>>()
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
    let all = MessageFilter::default();
    assert_eq!(s.list_messages_page(&all, 5).await.unwrap().len(), 1);

    let counts = s.counts_since("2000-01-01T00:00:00Z").await.unwrap();
    assert_eq!(counts[&("M2M".to_owned(), "stored".to_owned())], 4);
    assert_eq!(counts[&("M2M".to_owned(), "quarantined".to_owned())], 1);
    assert_eq!(counts[&("Other".to_owned(), "stored".to_owned())], 1);
    assert!(
        s.counts_since("2999-01-01T00:00:00Z")
            .await
            .unwrap()
            .is_empty()
    );
}
