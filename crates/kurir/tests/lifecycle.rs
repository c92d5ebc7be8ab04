//! Keeping a data directory for years (issue #16), with the real `kurir` binary against the
//! Entra + Graph emulator in this test process:
//! - `kurir backup` while `kurir serve` takes mail in and sends, `kurir restore` into an empty
//!   directory: every message and outbox entry of the backup is there once, with its raw MIME;
//! - `kurir purge` (dry and real) and the purge `kurir serve` runs at start: only what the
//!   `keep_*` settings let go, files included;
//! - quarantine actions from the CLI and the REST API: reprocess after the account's type was
//!   changed, mark handled, forward as Kurir itself, delete; each in the audit trail.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::{Daemon, emulator_world, ok_db, put_incoming, queue_outgoing};
use common::{kurir, ok};
use kurir_emulator::{Emulator, EmulatorConfig, demo};
use kurir_store::messages::{MessageFilter, MessageStatus};
use kurir_store::outbox::OutboxFilter;
use serde_json::Value;

const ACCOUNT: &str = "Inkorg";

fn all() -> MessageFilter {
    MessageFilter {
        limit: 0,
        ..Default::default()
    }
}

fn every_outgoing() -> OutboxFilter {
    OutboxFilter {
        limit: Some(100_000),
        ..Default::default()
    }
}

fn failing(dir: &Path, args: &[&str]) -> String {
    let out = kurir(dir).args(args).output().unwrap();
    assert!(!out.status.success(), "kurir {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// A message of more than 1 MiB: intake keeps it as a file of its own, not in a segment.
fn large(i: usize) -> Vec<u8> {
    let line = "x".repeat(998);
    let body: String = (0..1100).map(|_| format!("{line}\r\n")).collect();
    format!(
        "From: big@leverantor.example\r\nTo: {}\r\nSubject: large {i}\r\nMessage-ID: <large-{i}@leverantor.example>\r\n\r\n{body}",
        demo::M2M_MAILBOX
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_intake_and_sending_restores_every_message_and_outbox_entry_once() {
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    emulator_world(&dir, None, &emu, ACCOUNT);
    put_incoming(&emu, 0..150);
    for i in 0..2 {
        emu.put_mail(demo::M2M_MAILBOX, None, large(i)).unwrap();
    }
    let total = 152;
    let store = kurir_store::open_store(&dir, None).await.unwrap();
    queue_outgoing(&*store, 80).await;
    // Slow enough that the backup lands while both are at work.
    emu.graph_faults().set_latency(Duration::from_millis(40));
    let mut daemon = Daemon::serve("backup", &dir, None, &[]);

    let t0 = Instant::now();
    while store.count_messages(ACCOUNT).await.unwrap().stored < 10 {
        assert!(t0.elapsed() < Duration::from_secs(60), "intake started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let archive = tmp.path().join("backup.tar.gz");
    let out = kurir(&dir)
        .args(["backup", archive.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kurir backup: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        stderr.contains("The master key is NOT in the backup")
            && stderr.contains(&dir.join("master.key").display().to_string()),
        "the backup says where the key is: {stderr}"
    );
    let stored_at_backup = report["manifest"]["messages"].as_u64().unwrap();
    eprintln!(
        "backup during intake: {stored_at_backup} of {total} messages, {} outbox entries, {} files, {} bytes",
        report["manifest"]["outbox_entries"], report["manifest"]["files"], report["bytes"]
    );
    // Nothing of the key is in the archive.
    let key = std::fs::read_to_string(dir.join("master.key")).unwrap();
    let listing = std::process::Command::new("tar")
        .args(["-tzf", archive.to_str().unwrap()])
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(listing.lines().any(|l| l == "kurir.db"), "{listing}");
    assert!(!listing.contains("master.key"), "{listing}");
    assert!(
        !std::fs::read(&archive)
            .unwrap()
            .windows(20)
            .any(|w| w == &key.as_bytes()[..20])
    );

    // Everything finishes; the backup changed nothing for the running service.
    let t0 = Instant::now();
    loop {
        let c = store.count_messages(ACCOUNT).await.unwrap();
        let sent = store
            .outbox_list(&every_outgoing())
            .await
            .unwrap()
            .iter()
            .filter(|m| m.state == kurir_store::outbox::OutgoingState::Sent)
            .count();
        if c.stored as usize == total && c.pending_server_steps == 0 && sent == 80 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(90), "{c:?}, {sent} sent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(daemon.sigterm().success());

    // Restore: refused without the key, refused into a directory in use.
    let restored = tmp.path().join("restored");
    let err = failing(&restored, &["restore", archive.to_str().unwrap()]);
    assert!(
        err.contains(report["manifest"]["key_fingerprint"].as_str().unwrap()),
        "names the key it needs: {err}"
    );
    assert!(
        !restored.join("kurir.db").exists(),
        "nothing written without the key"
    );
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::copy(dir.join("master.key"), restored.join("master.key")).unwrap();
    let out = ok(&restored, &["restore", archive.to_str().unwrap()]);
    assert!(out.contains("Restored"), "{out}");
    let err = failing(&restored, &["restore", archive.to_str().unwrap()]);
    assert!(err.contains("is not empty"), "{err}");

    // Every message and outbox entry of the backup, once, raw MIME intact.
    let r = kurir_store::open_store(&restored, None).await.unwrap();
    let msgs = r.list_messages(&all()).await.unwrap();
    assert_eq!(msgs.len() as u64, stored_at_backup);
    assert!(!msgs.is_empty() && msgs.len() <= total);
    let ids: HashSet<i64> = msgs.iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), msgs.len(), "no message twice");
    let hashes: HashSet<&str> = msgs.iter().map(|m| m.content_hash.as_str()).collect();
    assert_eq!(hashes.len(), msgs.len(), "no content twice");
    for m in &msgs {
        let live = store.message(m.id).await.unwrap().unwrap();
        assert_eq!(live.content_hash, m.content_hash);
        let raw = r.raw_message(m.id).await.unwrap().unwrap();
        let bytes = raw.read(&restored).unwrap_or_else(|e| {
            panic!(
                "raw of {} ({:?}) missing after restore: {e}",
                m.id, m.raw_path
            )
        });
        assert_eq!(kurir_intake::parse::content_hash(&bytes), m.content_hash);
    }
    let outgoing = r.outbox_list(&every_outgoing()).await.unwrap();
    assert_eq!(
        outgoing.len() as u64,
        report["manifest"]["outbox_entries"].as_u64().unwrap()
    );
    assert_eq!(
        outgoing.len(),
        80,
        "every queued entry (queued before the backup)"
    );
    let ids: HashSet<i64> = outgoing.iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), 80, "no outbox entry twice");
    for m in &outgoing {
        let live = store.outbox_get(m.id).await.unwrap().unwrap();
        assert_eq!(live.message_id, m.message_id);
        assert_eq!(
            r.outbox_raw(m.id).await.unwrap(),
            store.outbox_raw(m.id).await.unwrap()
        );
    }
    // The restored directory works with the CLI (secrets open with the key).
    let token = ok(&restored, &["token", "--json"]);
    assert!(token.contains("\"audience\""), "{token}");

    // PostgreSQL: both refuse, naming pg_dump.
    for args in [
        vec!["backup", "/tmp/never.tar.gz"],
        vec!["restore", archive.to_str().unwrap()],
    ] {
        let out = kurir(&restored)
            .env("KURIR_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("pg_dump"),
            "{args:?}: {err}"
        );
    }
}

fn seg_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("messages/seg"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_only_what_retention_lets_go_and_serve_purges_at_start() {
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    emulator_world(&dir, None, &emu, ACCOUNT);
    put_incoming(&emu, 0..20);
    emu.put_mail(demo::M2M_MAILBOX, None, large(0)).unwrap();
    ok(&dir, &["fetch", "--account", ACCOUNT]);
    let store = kurir_store::open_store(&dir, None).await.unwrap();
    assert_eq!(store.count_messages(ACCOUNT).await.unwrap().stored, 21);
    assert!(seg_files(&dir) >= 1);
    let eml: Vec<_> = walk(&dir.join("messages"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    assert_eq!(eml.len(), 1, "the large message has a file of its own");

    // Defaults keep everything this young.
    let dry: Value = serde_json::from_str(&ok(&dir, &["purge", "--dry-run", "--json"])).unwrap();
    assert_eq!(dry["raw_messages"], 0);

    ok(
        &dir,
        &[
            "settings",
            "set",
            "keep_raw_mail=1s",
            "keep_sent_mail=1s",
            "keep_import_documents=1s",
        ],
    );
    std::thread::sleep(Duration::from_millis(1100));
    let dry: Value = serde_json::from_str(&ok(&dir, &["purge", "--dry-run", "--json"])).unwrap();
    assert_eq!(dry["raw_messages"], 21, "{dry}");
    assert!(seg_files(&dir) >= 1, "a dry run removes nothing");
    let t = Instant::now();
    let done: Value = serde_json::from_str(&ok(&dir, &["purge", "--json"])).unwrap();
    eprintln!(
        "kurir purge: {} originals ({} bytes), {} files removed in {} ms (the whole command)",
        done["raw_messages"],
        done["raw_bytes"],
        done["files_removed"],
        t.elapsed().as_millis()
    );
    assert_eq!(done["raw_messages"], 21, "{done}");
    assert_eq!(done["raw_bytes"], dry["raw_bytes"]);
    assert!(done["files_removed"].as_u64().unwrap() >= 2, "{done}");
    assert_eq!(
        seg_files(&dir),
        0,
        "segments whose every message is purged are removed"
    );
    assert!(
        eml.iter().all(|p| !p.exists()),
        "the large message's file is removed"
    );
    let human = ok(&dir, &["purge"]);
    assert!(human.contains("Never removed"), "{human}");

    let id = store.list_messages(&all()).await.unwrap()[0].id.to_string();
    let err = failing(&dir, &["messages", "export", &id]);
    assert!(err.contains("removed by retention"), "{err}");
    let shown = ok(&dir, &["messages", "show", &id]);
    assert!(shown.contains("removed by retention"), "{shown}");

    // kurir serve purges at start: the records go once keep_records has passed too.
    ok(&dir, &["settings", "set", "keep_records=1s"]);
    std::thread::sleep(Duration::from_millis(1100));
    let mut daemon = Daemon::serve("purge", &dir, None, &["--no-intake"]);
    let t0 = Instant::now();
    while !store.list_messages(&all()).await.unwrap().is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "serve purged at start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(daemon.sigterm().success());
    assert!(daemon.logged(&["retention: purged", "message_records=21"]));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A message whose only document is a PDF: quarantined by Monitor-to-Monitor (no XML), taken in
/// by supplier-invoices.
fn pdf_only(i: usize) -> Vec<u8> {
    format!(
        "From: faktura@leverantor.example\r\nTo: {mb}\r\nSubject: faktura {i}\r\nMessage-ID: <faktura-{i}@leverantor.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nFaktura bifogad.\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"faktura-{i}.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJSBLdXJpciB0ZXN0CiUlRU9GCg==\r\n--b--\r\n",
        mb = demo::M2M_MAILBOX
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_actions_reprocess_handle_forward_and_delete_with_an_audit_trail() {
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    emulator_world(&dir, None, &emu, ACCOUNT);
    ok(
        &dir,
        &[
            "settings",
            "set",
            "--account",
            ACCOUNT,
            "type=monitor-to-monitor",
        ],
    );
    for i in 0..4 {
        emu.put_mail(demo::M2M_MAILBOX, None, pdf_only(i)).unwrap();
    }
    ok(&dir, &["fetch", "--account", ACCOUNT]);
    let store = kurir_store::open_store(&dir, None).await.unwrap();
    let q = store
        .list_messages(&MessageFilter {
            status: Some(MessageStatus::Quarantined),
            ..all()
        })
        .await
        .unwrap();
    assert_eq!(q.len(), 4);
    let mut ids: Vec<String> = q.iter().map(|m| m.id.to_string()).collect();
    ids.sort();
    let (a, b, c, d) = (&ids[0], &ids[1], &ids[2], &ids[3]);

    // Reprocess after the type was changed: taken in, its PDF in the import folder.
    ok(
        &dir,
        &[
            "settings",
            "set",
            "--account",
            ACCOUNT,
            "type=supplier-invoices",
        ],
    );
    let out = ok(&dir, &["messages", "reprocess", a]);
    assert!(out.contains("taken in, 1 document(s)"), "{out}");
    let m = store.message(a.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(
        (m.status, m.handler.as_str()),
        (MessageStatus::Stored, "supplier-invoices")
    );
    let imports = store.list_imports(Some(ACCOUNT)).await.unwrap();
    assert_eq!(imports.len(), 1);
    assert_eq!(imports[0].state, "ready");
    let file = dir
        .join("import")
        .join(imports[0].dir.as_deref().unwrap())
        .join(&imports[0].file_name);
    assert!(
        std::fs::read(&file).unwrap().starts_with(b"%PDF-"),
        "{}",
        file.display()
    );
    let err = failing(&dir, &["messages", "reprocess", a]);
    assert!(err.contains("not in quarantine"), "{err}");

    // Mark handled needs a note.
    let err = failing(&dir, &["messages", "handle", b, "--note", " "]);
    assert!(err.contains("a note is needed"), "{err}");
    ok(
        &dir,
        &["messages", "handle", b, "--note", "registered by hand"],
    );
    assert!(ok(&dir, &["messages", "show", b]).contains("registered by hand"));

    // Forward: as Kurir itself, from the Default sender address (refused until it is set).
    let err = failing(&dir, &["messages", "forward", c, "--to", demo::USER2]);
    assert!(err.contains("Default sender"), "{err}");
    ok(
        &dir,
        &["settings", "set", &format!("default_sender={}", demo::USER)],
    );
    let err = failing(&dir, &["messages", "forward", c, "--to", "not an address"]);
    assert!(err.contains("is not one e-mail address"), "{err}");
    let out = ok(&dir, &["messages", "forward", c, "--to", demo::USER2]);
    assert!(out.contains("forwarded: outbox entry"), "{out}");
    ok_db(&dir, None, &["outbox", "run", "--until-empty"], &[]);
    let inbox = common::daemon::emulator_folder(&emu, demo::USER2, "inbox").await;
    let forwarded = store.message(c.parse().unwrap()).await.unwrap().unwrap();
    let subject = format!("Fwd: {}", forwarded.subject.unwrap());
    let fwd = inbox
        .iter()
        .find(|m| m["subject"] == subject.as_str())
        .unwrap_or_else(|| panic!("{subject} forwarded: {inbox:?}"));
    assert_eq!(fwd["from"], demo::USER, "{fwd}");
    assert_eq!(
        fwd["hasAttachments"], true,
        "the original is attached: {fwd}"
    );

    // Delete: the record and its raw MIME.
    ok(&dir, &["messages", "delete", d]);
    assert!(store.message(d.parse().unwrap()).await.unwrap().is_none());

    // Through the REST API, audited under the key's name.
    let key = common::web::provision(&dir);
    let daemon = Daemon::serve("api", &dir, None, &["--no-intake"]);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/v1/messages/{c}/quarantine", daemon.url()))
        .bearer_auth(&key)
        .json(&serde_json::json!({"action": "mark_handled", "note": "forwarded to Megan"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["result"], "marked_handled");
    let r = http
        .post(format!("{}/api/v1/messages/{a}/quarantine", daemon.url()))
        .bearer_auth(&key)
        .json(&serde_json::json!({"action": "delete"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "only quarantined messages");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not in quarantine"),
        "{body}"
    );
    let audit: Value = http
        .get(format!("{}/api/v1/messages/{c}/audit", daemon.url()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(actions[0], ("mark_handled", "api:tests"), "{audit}");
    assert_eq!(actions[1].0, "forward");
    assert!(actions[1].1.starts_with("cli:"), "{audit}");

    // The whole trail from the CLI.
    let trail = ok(&dir, &["messages", "audit", "--json"]);
    let trail: Value = serde_json::from_str(&trail).unwrap();
    let seen: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        seen,
        [
            "mark_handled",
            "delete",
            "forward",
            "mark_handled",
            "reprocess"
        ]
    );
}
