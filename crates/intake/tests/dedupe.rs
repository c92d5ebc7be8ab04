//! What makes two messages the same one (issue 12.1), and whose directory is whose (issue 12.3),
//! end to end against the real Dovecot stack: a different message under a Message-ID already
//! taken in is stored and handled (over POP3: never deleted without being stored), the same
//! bytes again are a duplicate, also of rows recorded under the old `mid:` keys, and two
//! accounts whose names clean to the same file name keep out of each other's staging files.

mod common;

use common::*;
use kurir_intake::auth::Mechanism;
use kurir_intake::pipeline::Quiet;
use kurir_store::MessageStore;
use kurir_store::messages::{MessageFilter, MessageStatus, NewImport, NewMessage, RawMime};

async fn pass(
    env: &Env,
    spec: &kurir_intake::AccountSpec,
    mailbox: &str,
    data: &std::path::Path,
) -> kurir_intake::PassSummary {
    let store = open_store(data).await;
    let intake = spec.intake(data.to_owned(), store);
    let mut transport = spec.transport(env.app_tokens(mailbox)).unwrap();
    let summary = intake
        .pass(transport.as_mut(), &mut Quiet)
        .await
        .unwrap_or_else(|e| panic!("intake pass failed: {e}"));
    transport.close().await;
    summary
}

fn order(version: &str) -> (Vec<u8>, Vec<u8>) {
    let xml = format!(
        "<?xml version=\"1.0\"?><Order><OrderNumber>4711</OrderNumber><Version>{version}</Version></Order>"
    )
    .into_bytes();
    // Counter-based Message-IDs (scanners, scripts, ERP modules) repeat; so does a corrected
    // document re-sent under the same id.
    let mime = with_attachments(
        "order-4711@erp.partner.example",
        &format!("Order 4711 ({version})"),
        &[("order-4711.xml", "application/xml", &xml)],
    );
    (mime, xml)
}

async fn same_message_id_round(imap: bool) {
    let env = env().await;
    let mailbox = fresh_mailbox(if imap { "sameid-imap" } else { "sameid-pop" });
    let data = tempfile::tempdir().unwrap();
    let spec = env.spec(
        "Monitor-to-Monitor",
        "monitor-to-monitor",
        &mailbox,
        imap,
        Mechanism::XOAuth2,
    );
    let (first, first_xml) = order("first");
    deliver(&mailbox, &[first]).await;
    let s = pass(&env, &spec, &mailbox, data.path()).await;
    assert_eq!((s.stored, s.duplicates, s.documents), (1, 0, 1), "{s:?}");

    // The corrected order, same Message-ID, different content.
    let (second, second_xml) = order("corrected");
    deliver(&mailbox, &[second]).await;
    let s = pass(&env, &spec, &mailbox, data.path()).await;
    assert_eq!(
        (s.stored, s.duplicates, s.documents),
        (1, 0, 1),
        "a different message is stored and handled, not thrown away as a duplicate: {s:?}"
    );
    assert_eq!(count(&mailbox, "INBOX"), 0);
    if imap {
        assert_eq!(count(&mailbox, "Processed"), 2);
    }

    let store = open_store(data.path()).await;
    let mut list = store
        .list_messages(&MessageFilter::default())
        .await
        .unwrap();
    list.sort_by_key(|m| m.id);
    assert_eq!(
        list.len(),
        2,
        "both messages kept (over POP3 the server copy is gone)"
    );
    assert!(list.iter().all(|m| m.status == MessageStatus::Stored));
    assert_eq!(
        list[1].same_message_id_as,
        Some(list[0].id),
        "shown as same Message-ID as #N"
    );
    let raw = store
        .raw_message(list[1].id)
        .await
        .unwrap()
        .unwrap()
        .read(data.path())
        .unwrap();
    assert!(String::from_utf8_lossy(&raw).contains("Order 4711 (corrected)"));

    // Both documents reached the ERP's import folder.
    let queue = store
        .list_imports(Some("Monitor-to-Monitor"))
        .await
        .unwrap();
    assert_eq!(queue.len(), 2, "{queue:?}");
    let dir = data
        .path()
        .join("import")
        .join(queue[0].dir.as_deref().unwrap());
    let mut got: Vec<Vec<u8>> = queue
        .iter()
        .map(|e| {
            assert_eq!(e.state, "ready");
            std::fs::read(dir.join(&e.file_name)).unwrap()
        })
        .collect();
    got.sort();
    let mut want = vec![first_xml, second_xml];
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn different_message_with_same_message_id_is_stored() {
    same_message_id_round(true).await;
}

/// Over POP3 a message recorded as a duplicate is DELEted: the only copy was lost.
#[tokio::test(flavor = "multi_thread")]
async fn different_message_with_same_message_id_is_stored_over_pop3_before_it_is_deleted() {
    same_message_id_round(false).await;
}

/// The same bytes under a new server id (a re-delivery, a UIDVALIDITY reset) are the message
/// already taken in: linked, moved, not stored or imported again.
#[tokio::test(flavor = "multi_thread")]
async fn identical_redelivery_is_still_a_duplicate() {
    let env = env().await;
    let mailbox = fresh_mailbox("redeliver");
    let data = tempfile::tempdir().unwrap();
    let spec = env.spec(
        "Monitor-to-Monitor",
        "monitor-to-monitor",
        &mailbox,
        true,
        Mechanism::XOAuth2,
    );
    let file = data.path().join("order.eml");
    std::fs::write(&file, order("first").0).unwrap();
    tokio::task::block_in_place(|| deliver_exact(&mailbox, std::slice::from_ref(&file)));
    let s = pass(&env, &spec, &mailbox, data.path()).await;
    assert_eq!((s.stored, s.documents), (1, 1), "{s:?}");

    tokio::task::block_in_place(|| deliver_exact(&mailbox, std::slice::from_ref(&file)));
    let s = pass(&env, &spec, &mailbox, data.path()).await;
    assert_eq!((s.stored, s.duplicates, s.documents), (0, 1, 0), "{s:?}");
    assert_eq!(count(&mailbox, "INBOX"), 0);
    assert_eq!(
        count(&mailbox, "Processed"),
        2,
        "the duplicate is moved too"
    );
    let store = open_store(data.path()).await;
    let list = store
        .list_messages(&MessageFilter::default())
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    let m = store.message(list[0].id).await.unwrap().unwrap();
    assert_eq!(
        m.server_ids.len(),
        2,
        "both server ids linked: {:?}",
        m.server_ids
    );
    assert_eq!(store.list_imports(None).await.unwrap().len(), 1);
}

/// A message recorded under the key format of earlier versions (`mid:<Message-ID>`) and then
/// delivered again byte for byte is still recognised.
#[tokio::test(flavor = "multi_thread")]
async fn message_recorded_under_an_old_mid_key_is_still_a_duplicate() {
    let env = env().await;
    let mailbox = fresh_mailbox("oldkey");
    let data = tempfile::tempdir().unwrap();
    let spec = env.spec("Inkommande", "general", &mailbox, true, Mechanism::XOAuth2);
    let bytes = plain_message(1, "oldkey", 300);
    let store = open_store(data.path()).await;
    let old = store
        .record_batch(
            "Inkommande",
            vec![NewMessage {
                server_id: "imap:1:1".into(),
                dedupe_key: "mid:oldkey.1@kurir.test".into(),
                message_id: Some("oldkey.1@kurir.test".into()),
                content_hash: kurir_intake::parse::content_hash(&bytes),
                status: MessageStatus::Stored,
                reason: None,
                handler: "general".into(),
                from: None,
                to: None,
                subject: None,
                date: None,
                size: bytes.len() as u64,
                attachments: Vec::new(),
                raw: RawMime::Inline(bytes.clone()),
                imports: Vec::new(),
            }],
        )
        .await
        .unwrap()[0]
        .id();
    store
        .mark_done("Inkommande", &["imap:1:1".into()])
        .await
        .unwrap();
    drop(store);

    let file = data.path().join("m.eml");
    std::fs::write(&file, &bytes).unwrap();
    tokio::task::block_in_place(|| deliver_exact(&mailbox, std::slice::from_ref(&file)));
    let s = pass(&env, &spec, &mailbox, data.path()).await;
    assert_eq!((s.stored, s.duplicates), (0, 1), "{s:?}");
    let store = open_store(data.path()).await;
    let m = store.message(old).await.unwrap().unwrap();
    assert_eq!(m.server_ids.len(), 2, "{:?}", m.server_ids);
    assert_eq!(store.count_messages("Inkommande").await.unwrap().stored, 1);
}

/// Issue 12.3: "Orders A" and "Orders_A" clean to the same file name. Each gets its own
/// import, staging, spool and lock directory, so one account's recovery (which removes staging
/// files it does not know) leaves the other's staged documents alone.
#[tokio::test(flavor = "multi_thread")]
async fn accounts_whose_names_clean_alike_get_their_own_directories() {
    let env = env().await;
    let data = tempfile::tempdir().unwrap();
    let (mb_a, mb_b) = (fresh_mailbox("orders-a"), fresh_mailbox("orders-b"));
    let spec_a = env.spec(
        "Orders A",
        "monitor-to-monitor",
        &mb_a,
        true,
        Mechanism::XOAuth2,
    );
    let spec_b = env.spec(
        "Orders_A",
        "monitor-to-monitor",
        &mb_b,
        true,
        Mechanism::XOAuth2,
    );
    let store = open_store(data.path()).await;
    let intake_a = spec_a.intake(data.path().to_owned(), store.clone());
    let intake_b = spec_b.intake(data.path().to_owned(), store.clone());
    let dir_a = intake_a.account_dir().await.unwrap().to_owned();
    let dir_b = intake_b.account_dir().await.unwrap().to_owned();
    assert_eq!(dir_a, "Orders_A", "the first keeps the name it always had");
    assert_ne!(dir_a.to_lowercase(), dir_b.to_lowercase());
    assert_ne!(intake_a.import_dir(), intake_b.import_dir());

    // Orders_A was killed after its batch committed and before its documents were renamed
    // into place: the entry is `staged`, the file waits in its staging folder.
    let staging_b = intake_b.import_dir().join(".staging");
    std::fs::create_dir_all(&staging_b).unwrap();
    let doc = b"<?xml version=\"1.0\"?><Order><OrderNumber>1</OrderNumber></Order>".to_vec();
    let file_name = "0123456789abcdef-01-order-b.xml";
    std::fs::write(staging_b.join(file_name), &doc).unwrap();
    let raw = b"Message-ID: <b@x>\r\nSubject: b\r\n\r\nb".to_vec();
    store
        .record_batch(
            "Orders_A",
            vec![NewMessage {
                server_id: "imap:1:1".into(),
                dedupe_key: format!("blake3:{}", kurir_intake::parse::content_hash(&raw)),
                message_id: Some("b@x".into()),
                content_hash: kurir_intake::parse::content_hash(&raw),
                status: MessageStatus::Stored,
                reason: None,
                handler: "monitor-to-monitor".into(),
                from: None,
                to: None,
                subject: None,
                date: None,
                size: raw.len() as u64,
                attachments: Vec::new(),
                raw: RawMime::Inline(raw),
                imports: vec![NewImport {
                    kind: "xml".into(),
                    file_name: file_name.into(),
                    content_type: Some("application/xml".into()),
                    size: doc.len() as u64,
                }],
            }],
        )
        .await
        .unwrap();

    // Orders A takes in a message of its own: its recovery runs first.
    let (a_mime, a_xml) = order("a");
    deliver(&mb_a, &[a_mime]).await;
    let s = pass(&env, &spec_a, &mb_a, data.path()).await;
    assert_eq!((s.stored, s.documents), (1, 1), "{s:?}");
    assert!(
        staging_b.join(file_name).exists(),
        "Orders A's recovery left Orders_A's staged document alone"
    );

    // Orders_A's own pass completes its document.
    let s = pass(&env, &spec_b, &mb_b, data.path()).await;
    assert_eq!(s.listed, 0);
    assert_eq!(
        std::fs::read(intake_b.import_dir().join(file_name)).unwrap(),
        doc
    );
    let q = store.list_imports(Some("Orders_A")).await.unwrap();
    assert_eq!(
        (q[0].state.as_str(), q[0].dir.as_deref()),
        ("ready", Some(dir_b.as_str()))
    );
    let q = store.list_imports(Some("Orders A")).await.unwrap();
    assert_eq!(q[0].dir.as_deref(), Some("Orders_A"));
    assert_eq!(
        std::fs::read(data.path().join("import/Orders_A").join(&q[0].file_name)).unwrap(),
        a_xml
    );
    // Each account's folder holds only its own documents.
    let names = |d: std::path::PathBuf| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(intake_a.import_dir()), [q[0].file_name.clone()]);
    assert_eq!(names(intake_b.import_dir()), [file_name.to_owned()]);
}
