//! IMAP and POP3 intake end to end against the real Dovecot stack with tokens from the Entra
//! emulator: XOAUTH2 and OAUTHBEARER, app-only and delegated tokens, metadata, moves/deletes,
//! a second pass that finds nothing new, and routing by account type (Monitor-to-Monitor XML+PDF
//! into the import queue; a message without XML quarantined and moved to the quarantine folder).

mod common;

use common::*;
use kurir_intake::auth::Mechanism;
use kurir_intake::pipeline::Quiet;
use kurir_store::MessageStore;
use kurir_store::messages::{MessageFilter, MessageStatus};

async fn take_in(
    env: &Env,
    spec: &kurir_intake::AccountSpec,
    tokens: std::sync::Arc<dyn kurir_intake::auth::TokenSource>,
    data: &std::path::Path,
) -> (
    kurir_intake::PassSummary,
    std::sync::Arc<kurir_store::SqliteStore>,
) {
    let _ = env;
    let store = open_store(data).await;
    let intake = spec.intake(data.to_owned(), store.clone());
    let mut transport = spec.transport(tokens).unwrap();
    let summary = intake
        .pass(transport.as_mut(), &mut Quiet)
        .await
        .unwrap_or_else(|e| panic!("intake pass failed: {e}"));
    transport.close().await;
    (summary, store)
}

async fn imap_round(mechanism: Mechanism) {
    let env = env().await;
    let mailbox = fresh_mailbox("imap");
    let msgs: Vec<Vec<u8>> = (0..25)
        .map(|i| plain_message(i, "imap", 200 + i * 50))
        .collect();
    deliver(&mailbox, &msgs).await;
    assert_eq!(count(&mailbox, "INBOX"), 25);

    let data = tempfile::tempdir().unwrap();
    let spec = env.spec("Imap-Test", "general", &mailbox, true, mechanism);
    let (summary, store) = take_in(&env, &spec, env.app_tokens(&mailbox), data.path()).await;
    assert_eq!(summary.listed, 25);
    assert_eq!(summary.stored, 25, "{summary:?}");
    assert_eq!(summary.quarantined, 0);
    assert_eq!(
        count(&mailbox, "INBOX"),
        0,
        "every message moved out of the source folder"
    );
    assert_eq!(
        count(&mailbox, "Processed"),
        25,
        "…into the processed folder, created by Kurir"
    );

    let counts = store.count_messages("Imap-Test").await.unwrap();
    assert_eq!(
        (
            counts.stored,
            counts.quarantined,
            counts.pending_server_steps
        ),
        (25, 0, 0)
    );
    let list = store
        .list_messages(&MessageFilter {
            account: Some("Imap-Test".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let m = list
        .iter()
        .find(|m| m.message_id.as_deref() == Some("imap.7@kurir.test"))
        .expect("message 7 stored with its Message-ID");
    assert_eq!(m.from.as_deref(), Some("sender7@example.com"));
    assert_eq!(m.subject.as_deref(), Some("Test imap 7"));
    assert_eq!(m.date.as_deref(), Some("2025-07-01T10:00:00Z"));
    let full = store.message(m.id).await.unwrap().unwrap();
    assert!(
        full.server_ids[0].starts_with("imap:INBOX:"),
        "server id is UIDVALIDITY:UID based: {:?}",
        full.server_ids
    );
    // Raw MIME kept byte for byte (LMTP adds trace headers in front of what we sent).
    let raw = store
        .raw_message(m.id)
        .await
        .unwrap()
        .unwrap()
        .read(data.path())
        .unwrap();
    assert!(raw.ends_with(&msgs[7][msgs[7].len() - 100..]));

    // Nothing new on a second pass.
    let (again, _) = take_in(&env, &spec, env.app_tokens(&mailbox), data.path()).await;
    assert_eq!((again.listed, again.stored), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_xoauth2_app_token_takes_in_and_moves_every_message() {
    imap_round(Mechanism::XOAuth2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_oauthbearer_app_token_takes_in_and_moves_every_message() {
    imap_round(Mechanism::OAuthBearer).await;
}

async fn pop3_round(mechanism: Mechanism) {
    let env = env().await;
    let mailbox = fresh_mailbox("pop3");
    let msgs: Vec<Vec<u8>> = (0..15).map(|i| plain_message(i, "pop3", 300)).collect();
    deliver(&mailbox, &msgs).await;
    let data = tempfile::tempdir().unwrap();
    let spec = env.spec("Pop3-Test", "general", &mailbox, false, mechanism);
    let (summary, store) = take_in(&env, &spec, env.app_tokens(&mailbox), data.path()).await;
    assert_eq!((summary.listed, summary.stored), (15, 15), "{summary:?}");
    assert_eq!(
        count(&mailbox, "INBOX"),
        0,
        "DELE + QUIT removed every stored message"
    );
    let counts = store.count_messages("Pop3-Test").await.unwrap();
    assert_eq!((counts.stored, counts.pending_server_steps), (15, 0));
    let list = store
        .list_messages(&MessageFilter::default())
        .await
        .unwrap();
    let full = store.message(list[0].id).await.unwrap().unwrap();
    assert!(
        full.server_ids[0].starts_with("pop3:"),
        "{:?}",
        full.server_ids
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pop3_xoauth2_app_token_takes_in_and_deletes() {
    pop3_round(Mechanism::XOAuth2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pop3_oauthbearer_app_token_takes_in_and_deletes() {
    pop3_round(Mechanism::OAuthBearer).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delegated_user_token_reads_the_users_own_mailbox_over_imap_and_pop3() {
    let env = env().await;
    let mailbox = kurir_emulator::demo::USER;
    // The user's mailbox is shared between runs: take in whatever is there first.
    let data = tempfile::tempdir().unwrap();
    let spec = env.spec("Adele", "general", mailbox, true, Mechanism::XOAuth2);
    take_in(&env, &spec, env.user_tokens(), data.path()).await;
    let tag = format!("adele{:06x}", rand::random::<u32>() & 0xffffff);
    deliver(
        mailbox,
        &[plain_message(1, &tag, 100), plain_message(2, &tag, 100)],
    )
    .await;
    let (summary, _) = take_in(&env, &spec, env.user_tokens(), data.path()).await;
    assert_eq!(summary.stored, 2, "{summary:?}");
    deliver(mailbox, &[plain_message(3, &tag, 100)]).await;
    let spec = env.spec(
        "Adele-Pop",
        "general",
        mailbox,
        false,
        Mechanism::OAuthBearer,
    );
    let (summary, _) = take_in(&env, &spec, env.user_tokens(), data.path()).await;
    assert_eq!(summary.stored, 1, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_token_cannot_open_someone_elses_mailbox_and_the_error_says_what_to_check() {
    let env = env().await;
    let other = fresh_mailbox("notadele");
    deliver(&other, &[plain_message(1, "x", 10)]).await;
    let data = tempfile::tempdir().unwrap();
    let spec = env.spec("Wrong", "general", &other, true, Mechanism::XOAuth2);
    let store = open_store(data.path()).await;
    let intake = spec.intake(data.path().to_owned(), store.clone());
    let mut transport = spec.transport(env.user_tokens()).unwrap();
    let err = intake
        .pass(transport.as_mut(), &mut Quiet)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("refused the OAuth sign-in"), "{text}");
    assert!(text.contains("Add-MailboxPermission"), "{text}");
    assert!(!text.contains("eyJ"), "no token in the error: {text}");
    assert!(!err.is_transient());
    assert_eq!(count(&other, "INBOX"), 1, "nothing was touched");
}

#[tokio::test(flavor = "multi_thread")]
async fn monitor_to_monitor_xml_and_pdf_land_in_the_import_queue() {
    let env = env().await;
    let mailbox = fresh_mailbox("m2m");
    let xml = b"<?xml version=\"1.0\"?><Order><OrderNumber>4711</OrderNumber></Order>".to_vec();
    let pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n".to_vec();
    let good = with_attachments(
        "order-4711@partner.example",
        "Order 4711",
        &[
            ("order-4711.xml", "application/xml", &xml),
            ("order-4711.pdf", "application/pdf", &pdf),
        ],
    );
    let no_xml = with_attachments(
        "just-a-pdf@partner.example",
        "Only a PDF",
        &[("scan.pdf", "application/pdf", &pdf)],
    );
    deliver(&mailbox, &[good, no_xml]).await;
    let data = tempfile::tempdir().unwrap();
    let spec = env.spec(
        "Monitor-to-Monitor",
        "monitor-to-monitor",
        &mailbox,
        true,
        Mechanism::XOAuth2,
    );
    let (summary, store) = take_in(&env, &spec, env.app_tokens(&mailbox), data.path()).await;
    assert_eq!(
        (summary.stored, summary.quarantined, summary.documents),
        (1, 1, 2),
        "{summary:?}"
    );

    let queue = store
        .list_imports(Some("Monitor-to-Monitor"))
        .await
        .unwrap();
    assert_eq!(queue.len(), 2, "{queue:?}");
    assert!(queue.iter().all(|e| e.state == "ready"));
    let dir = data.path().join("import/Monitor-to-Monitor");
    let xml_entry = queue.iter().find(|e| e.kind == "xml").unwrap();
    assert!(xml_entry.file_name.ends_with("order-4711.xml"));
    assert_eq!(std::fs::read(dir.join(&xml_entry.file_name)).unwrap(), xml);
    let pdf_entry = queue.iter().find(|e| e.kind == "pdf").unwrap();
    assert_eq!(std::fs::read(dir.join(&pdf_entry.file_name)).unwrap(), pdf);
    assert_eq!(
        std::fs::read_dir(dir.join(".staging")).unwrap().count(),
        0,
        "nothing left in staging"
    );

    let quarantined = store
        .list_messages(&MessageFilter {
            status: Some(MessageStatus::Quarantined),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(quarantined.len(), 1);
    assert!(
        quarantined[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("XML business document")
    );
    assert_eq!(count(&mailbox, "Processed"), 1);
    assert_eq!(
        count(&mailbox, "Quarantine"),
        1,
        "the unhandled message is in the quarantine folder"
    );
    assert_eq!(count(&mailbox, "INBOX"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn supplier_invoices_extract_pdf_and_general_extracts_nothing() {
    let env = env().await;
    let mailbox = fresh_mailbox("inv");
    let pdf = b"%PDF-1.7\ninvoice\n%%EOF\n".to_vec();
    deliver(
        &mailbox,
        &[with_attachments(
            "inv-1@supplier.example",
            "Invoice 1",
            &[("faktura-1.pdf", "application/pdf", &pdf)],
        )],
    )
    .await;
    let data = tempfile::tempdir().unwrap();
    let spec = env.spec(
        "Leverantorsfakturor",
        "supplier-invoices",
        &mailbox,
        true,
        Mechanism::XOAuth2,
    );
    let (summary, store) = take_in(&env, &spec, env.app_tokens(&mailbox), data.path()).await;
    assert_eq!((summary.stored, summary.documents), (1, 1));
    let q = store
        .list_imports(Some("Leverantorsfakturor"))
        .await
        .unwrap();
    assert_eq!(q[0].kind, "pdf");

    let mailbox2 = fresh_mailbox("gen");
    deliver(
        &mailbox2,
        &[with_attachments(
            "gen-1@x.example",
            "FYI",
            &[("faktura-1.pdf", "application/pdf", &pdf)],
        )],
    )
    .await;
    let spec = env.spec("Allmant", "general", &mailbox2, true, Mechanism::XOAuth2);
    let (summary, store) = take_in(&env, &spec, env.app_tokens(&mailbox2), data.path()).await;
    assert_eq!((summary.stored, summary.documents), (1, 0));
    assert!(
        store
            .list_imports(Some("Allmant"))
            .await
            .unwrap()
            .is_empty()
    );
    let m = &store
        .list_messages(&MessageFilter {
            account: Some("Allmant".into()),
            ..Default::default()
        })
        .await
        .unwrap()[0];
    assert_eq!(
        m.attachments.len(),
        1,
        "the attachment is listed in the metadata"
    );
    assert_eq!(m.attachments[0].name.as_deref(), Some("faktura-1.pdf"));
}
