//! The malformed-input corpus (`testdata/malformed/*.eml`: bad encodings, truncated multiparts,
//! 8-bit and NUL bytes in headers, nested message/rfc822, huge headers, no Message-ID, empty
//! body, empty file, binary garbage, …) never crashes intake: through the real Dovecot stack,
//! over IMAP and POP3, each message is either stored or quarantined with a reason, and none is
//! left in the source folder or marked read and lost.

mod common;

use std::path::PathBuf;

use common::*;
use kurir_intake::auth::Mechanism;
use kurir_intake::handler::handler_for;
use kurir_intake::pipeline::Quiet;
use kurir_store::MessageStore;
use kurir_store::messages::{MessageFilter, MessageStatus};

fn corpus() -> Vec<PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/malformed");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    assert!(files.len() >= 12, "the corpus is in {}", dir.display());
    files
}

#[test]
fn every_corpus_file_parses_or_is_refused_with_a_reason_under_every_handler() {
    for file in corpus() {
        let raw = std::fs::read(&file).unwrap();
        match kurir_intake::parse::parse(&raw) {
            Err(reason) => assert!(!reason.is_empty(), "{}", file.display()),
            Ok(msg) => {
                let meta = kurir_intake::parse::meta(&msg);
                for t in ["general", "monitor-to-monitor", "supplier-invoices"] {
                    // Ok or a rejection; a panic fails the test.
                    let _ = handler_for(t).handle(&msg);
                }
                let _ = meta;
            }
        }
    }
}

async fn run(mechanism: Mechanism, imap: bool, account_type: &str) {
    let env = env().await;
    let files = corpus();
    let n = files.len() as u64;
    let mailbox = fresh_mailbox(if imap { "malimap" } else { "malpop" });
    tokio::task::block_in_place(|| deliver_exact(&mailbox, &files));
    let stored_in_inbox = count(&mailbox, "INBOX");
    assert!(
        stored_in_inbox >= n - 1,
        "Dovecot accepted the corpus ({stored_in_inbox} of {n})"
    );

    let data = tempfile::tempdir().unwrap();
    let name = "Malformed";
    let spec = env.spec(name, account_type, &mailbox, imap, mechanism);
    let store = open_store(data.path()).await;
    let intake = spec.intake(data.path().to_owned(), store.clone());
    let mut transport = spec.transport(env.app_tokens(&mailbox)).unwrap();
    let summary = intake
        .pass(transport.as_mut(), &mut Quiet)
        .await
        .unwrap_or_else(|e| panic!("the corpus must not stop intake: {e}"));
    transport.close().await;

    assert_eq!(
        summary.stored + summary.quarantined,
        stored_in_inbox,
        "each message stored or quarantined: {summary:?}"
    );
    assert_eq!(summary.duplicates, 0);
    assert_eq!(count(&mailbox, "INBOX"), 0, "nothing left behind");
    if imap {
        assert_eq!(count(&mailbox, "Processed"), summary.stored);
        assert_eq!(count(&mailbox, "Quarantine"), summary.quarantined);
    }
    let all = store
        .list_messages(&MessageFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len() as u64, stored_in_inbox);
    for m in &all {
        if m.status == MessageStatus::Quarantined {
            assert!(
                m.reason.as_deref().is_some_and(|r| r.len() > 10),
                "a quarantined message has a reason: {m:?}"
            );
        }
    }
    // What is not an e-mail at all is quarantined, never silently dropped.
    let quarantined: Vec<_> = all
        .iter()
        .filter(|m| m.status == MessageStatus::Quarantined)
        .collect();
    assert!(
        quarantined
            .iter()
            .any(|m| m.reason.as_deref().unwrap().contains("header")),
        "the header-less/garbage files are quarantined: {quarantined:#?}"
    );
    // The oddities that are still mail reach the store with what could be read.
    let eight_bit = all
        .iter()
        .find(|m| m.message_id.as_deref() == Some("8bit@malformed.test"))
        .expect("8-bit headers stored");
    assert!(eight_bit.subject.is_some());
    assert!(
        all.iter()
            .any(|m| m.message_id.as_deref() == Some("huge@malformed.test"))
    );
    let no_id = all
        .iter()
        .find(|m| m.subject.as_deref() == Some("no message id here"))
        .expect("the message without Message-ID is stored");
    assert!(no_id.message_id.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_corpus_over_imap_general() {
    run(Mechanism::XOAuth2, true, "general").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_corpus_over_pop3_general() {
    run(Mechanism::XOAuth2, false, "general").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_corpus_over_imap_monitor_to_monitor() {
    let env = env().await;
    let files = corpus();
    let mailbox = fresh_mailbox("malm2m");
    tokio::task::block_in_place(|| deliver_exact(&mailbox, &files));
    let n = count(&mailbox, "INBOX");
    let data = tempfile::tempdir().unwrap();
    let spec = env.spec(
        "M2M",
        "monitor-to-monitor",
        &mailbox,
        true,
        Mechanism::XOAuth2,
    );
    let store = open_store(data.path()).await;
    let intake = spec.intake(data.path().to_owned(), store.clone());
    let mut transport = spec.transport(env.app_tokens(&mailbox)).unwrap();
    let summary = intake.pass(transport.as_mut(), &mut Quiet).await.unwrap();
    assert_eq!(summary.stored + summary.quarantined, n, "{summary:?}");
    // Only the forwarded message with an XML order inside qualifies as Monitor-to-Monitor.
    assert_eq!(summary.stored, 1, "{summary:?}");
    let q = store.list_imports(Some("M2M")).await.unwrap();
    assert_eq!(q.len(), 1);
    assert!(q[0].file_name.ends_with("order.xml"));
    let lies = store
        .list_messages(&MessageFilter::default())
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.message_id.as_deref() == Some("xmllies@malformed.test"))
        .unwrap();
    assert!(lies.reason.unwrap().contains("not XML"));
    assert_eq!(count(&mailbox, "Quarantine"), summary.quarantined);
}
