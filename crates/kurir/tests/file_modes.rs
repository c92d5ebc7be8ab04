//! Everything Kurir writes is private to its user: after real `kurir` passes (settings, a
//! Graph intake pass with a Monitor-to-Monitor import, a message sent, a `kurir serve` start
//! and stop) no file or directory in the data directory is open to group or others. Three
//! ways in: a data directory Kurir creates, one that already exists with 0755 (it used to stay
//! so, and the first run's database WAL/SHM, segment, .eml, spool and import files were 0644),
//! and PostgreSQL mode (whose data directory was created 0755).
#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::daemon::{Daemon, emulator_world, ok_db, put_incoming};
use common::pg::Schema;
use kurir_emulator::{Emulator, EmulatorConfig, RunningEmulator, demo};

const ORDERS: &str = "Orders";

/// An order from another Monitor: an XML business document and a PDF beside it.
fn order_mail(n: usize) -> Vec<u8> {
    format!(
        "From: Leverantör <order@leverantor.example>\r\nTo: {to}\r\nSubject: order {n}\r\n\
         Message-ID: <order-{n}-{r}@leverantor.example>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nOrder {n}.\r\n\
         --b\r\nContent-Type: application/xml; name=\"order{n}.xml\"\r\nContent-Disposition: attachment; filename=\"order{n}.xml\"\r\n\r\n\
         <?xml version=\"1.0\"?><Order><Id>{n}</Id></Order>\r\n\
         --b\r\nContent-Type: application/pdf; name=\"order{n}.pdf\"\r\nContent-Disposition: attachment; filename=\"order{n}.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK\r\n\
         --b--\r\n",
        to = demo::USER2,
        r = rand::random::<u32>(),
    )
    .into_bytes()
}

/// Settings, an intake pass over a general and a Monitor-to-Monitor Graph account, a message
/// queued and sent, and `kurir serve` started and stopped, all through the real binary.
fn run_kurir(emu: &RunningEmulator, dir: &Path, db: Option<&str>, account: &str) {
    emulator_world(dir, db, emu, account);
    ok_db(
        dir,
        db,
        &[
            "accounts",
            "add",
            ORDERS,
            "--type",
            "monitor-to-monitor",
            "--mailbox",
            demo::USER2,
            "--protocol",
            "graph",
        ],
        &[],
    );
    put_incoming(emu, 0..3);
    for n in 0..2 {
        emu.put_mail(demo::USER2, None, order_mail(n)).unwrap();
    }
    ok_db(dir, db, &["fetch"], &[]);
    ok_db(
        dir,
        db,
        &[
            "send",
            "--as",
            "ANNA",
            "--to",
            demo::USER2,
            "--subject",
            "file modes",
        ],
        &[],
    );
    ok_db(dir, db, &["outbox", "run", "--until-empty"], &[]);
    let mut serve = Daemon::serve("modes", dir, db, &[]);
    assert!(serve.sigterm().success());
}

/// Every path under `dir` (and `dir` itself) with group or other permission bits.
fn open_to_others(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 && !meta.file_type().is_symlink() {
            out.push((p.clone(), mode));
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

/// The kinds of file the pass must have written, so the walk is not vacuous.
fn assert_wrote(dir: &Path, what: &[&str]) {
    let mut names = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        names.push(p.strip_prefix(dir).unwrap().display().to_string());
    }
    for w in what {
        assert!(
            names.iter().any(|n| n.contains(w)),
            "the pass wrote no {w} in {}: {names:?}",
            dir.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_kurir_writes_is_private() {
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // The test's own umask must not decide the outcome: the usual 022.
    // SAFETY: umask only sets the process's file mode creation mask.
    unsafe {
        libc::umask(0o022);
    }

    // A data directory Kurir creates.
    let fresh = tmp.path().join("fresh");
    run_kurir(&emu, &fresh, None, "Inkorg");
    assert_wrote(&fresh, &["master.key", "kurir.db", "import"]);
    assert_eq!(
        open_to_others(&fresh),
        vec![],
        "a data directory Kurir created"
    );

    // One that exists already, open to everyone to read, as `mkdir` makes it.
    let existing = tmp.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o755)).unwrap();
    run_kurir(&emu, &existing, None, "Inkorg2");
    assert_wrote(&existing, &["master.key", "kurir.db", "import"]);
    assert_eq!(
        open_to_others(&existing),
        vec![],
        "a data directory that existed with 0755"
    );

    // PostgreSQL mode: the data directory holds the key file and the import queue.
    let schema = Schema::create().await;
    let url = schema.kurir_url();
    let pg = tmp.path().join("pg");
    run_kurir(&emu, &pg, Some(&url), "Inkorg3");
    assert_wrote(&pg, &["master.key", "import"]);
    assert_eq!(open_to_others(&pg), vec![], "PostgreSQL mode");
}
