//! On PostgreSQL the store keeps raw MIME itself (its instances share no disk), so `kurir
//! fetch` must leave nothing of a message on the local disk once its batch has committed.
//! Before, the intake wrote a segment file (and a file per large message) that the PostgreSQL
//! store then copied into the database, and the files stayed behind: one fsync'd write too many
//! per batch, and a copy of every message on a disk the other instances cannot see.
//!
//! The real binary takes in five small messages and one of 2.5 MB (spooled to a file while it
//! arrives) from the emulator's Graph mailbox into a fresh schema of the database `test` on
//! 127.0.0.1:5432 (`KURIR_TEST_POSTGRES_URL` overrides the URL). Without PostgreSQL the test
//! fails with a message saying so; it never skips.

mod common;

use std::path::{Path, PathBuf};

use common::daemon::{emulator_world, ok_db};
use common::pg::Schema;
use kurir_emulator::{Emulator, EmulatorConfig, demo};
use kurir_store::messages::{MessageFilter, RawMime};

fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_below(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_intake_leaves_no_message_files_on_local_disk() {
    let schema = Schema::create().await;
    let url = schema.kurir_url();
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    emulator_world(dir, Some(&url), &emu, "Inkorg");

    let mut raws = Vec::new();
    for i in 0..5 {
        raws.push(format!(
            "From: order@leverantor.example\r\nTo: {}\r\nSubject: small {i}\r\n\
             Message-ID: <small-{i}@leverantor.example>\r\n\r\nbody {i}\r\n",
            demo::M2M_MAILBOX
        ));
    }
    let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    raws.push(format!(
        "From: order@leverantor.example\r\nTo: {}\r\nSubject: large\r\n\
         Message-ID: <large@leverantor.example>\r\n\r\n{}",
        demo::M2M_MAILBOX,
        line.repeat(2_500_000 / line.len())
    ));
    for raw in &raws {
        emu.put_mail(demo::M2M_MAILBOX, None, raw.clone().into_bytes())
            .unwrap();
    }

    ok_db(dir, Some(&url), &["fetch", "--account", "Inkorg"], &[]);

    let store = kurir_store::open_store(dir, Some(&url)).await.unwrap();
    let stored = store
        .list_messages(&MessageFilter::default())
        .await
        .unwrap();
    assert_eq!(stored.len(), raws.len(), "every message stored once");
    assert!(
        stored.iter().any(|m| m.size > 2_000_000),
        "the large message was taken in"
    );
    for m in &stored {
        match store.raw_message(m.id).await.unwrap() {
            Some(RawMime::Inline(bytes)) => assert_eq!(bytes.len() as u64, m.size),
            other => panic!("message {} is not in the database: {other:?}", m.id),
        }
    }
    let left: Vec<PathBuf> = ["messages", "spool"]
        .iter()
        .flat_map(|d| files_below(&dir.join(d)))
        .collect();
    assert!(
        left.is_empty(),
        "message files left on the local disk: {left:?}"
    );
}
