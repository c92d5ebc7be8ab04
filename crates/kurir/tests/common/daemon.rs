//! The world the daemon tests share: a data directory configured against the Entra + Graph
//! emulator (app-only client secret, ANNA, a general Graph account), mail put into the
//! emulator's mailboxes, outgoing mail queued through the store, and a real `kurir serve`
//! (its JSON line and its log) that stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use kurir_emulator::{RunningEmulator, demo};
use kurir_store::KurirStore;
use kurir_store::outbox::{NewOutgoing, OutboxFilter, OutgoingState};

/// Runs `kurir ARGS` on `dir` (and the database, if any) and asserts success.
pub fn ok_db(dir: &Path, db: Option<&str>, args: &[&str], env: &[(&str, &str)]) {
    let mut c = super::kurir(dir);
    if let Some(url) = db {
        c.env("KURIR_DATABASE_URL", url);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "kurir {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// System settings for the emulator's demo tenant (client secret, app-only), through the CLI.
pub fn emulator_system_settings(dir: &Path, db: Option<&str>, emu: &RunningEmulator) {
    let base = emu.base_url();
    ok_db(
        dir,
        db,
        &[
            "settings",
            "set",
            "method=exchange-online",
            &format!("client_id={}", demo::CLIENT_ID),
            &format!("tenant_id={}", demo::TENANT_ID),
            "auth_flow=client-secret",
            // The emulator is not Microsoft's cloud: the server switch, set with the CLI.
            "allow_custom_endpoints=true",
            &format!("authority={base}"),
            &format!("graph_endpoint={base}"),
            &format!("ca_file={}", emu.ca_path().display()),
        ],
        &[],
    );
    // A secret the way a script sets one: through the environment, never argv.
    ok_db(
        dir,
        db,
        &[
            "settings",
            "set",
            "--secret-env",
            "client_secret=KURIR_TEST_SECRET",
        ],
        &[("KURIR_TEST_SECRET", demo::CLIENT_SECRET)],
    );
}

/// The system settings above, the user ANNA (sends as adele.vance), and `account`: a general
/// Graph account on the M2M mailbox polled every 10 s.
pub fn emulator_world(dir: &Path, db: Option<&str>, emu: &RunningEmulator, account: &str) {
    emulator_system_settings(dir, db, emu);
    ok_db(
        dir,
        db,
        &["users", "add", "ANNA", "--email", demo::USER],
        &[],
    );
    ok_db(
        dir,
        db,
        &[
            "accounts",
            "add",
            account,
            "--type",
            "general",
            "--mailbox",
            demo::M2M_MAILBOX,
            "--protocol",
            "graph",
        ],
        &[],
    );
    ok_db(
        dir,
        db,
        &["settings", "set", "--account", account, "poll_interval=10s"],
        &[],
    );
}

/// Puts messages `incoming {from}` … `incoming {to - 1}` into the M2M mailbox's Inbox.
pub fn put_incoming(emu: &RunningEmulator, range: std::ops::Range<usize>) {
    for i in range {
        let raw = format!(
            "From: Leverantör <order@leverantor.example>\r\nTo: {}\r\nSubject: incoming {i}\r\nMessage-ID: <in-{i}@leverantor.example>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nbody {i}\r\n",
            demo::M2M_MAILBOX
        );
        emu.put_mail(demo::M2M_MAILBOX, None, raw.into_bytes())
            .unwrap();
    }
}

/// `n` messages from ANNA to megan.bowen (`outgoing 0` …), built and queued as `kurir send`
/// does, in one commit (one spawn per message would only slow the tests down).
pub async fn queue_outgoing(store: &dyn KurirStore, n: usize) {
    queue_outgoing_range(store, 0..n).await
}

/// `outgoing {from}` … `outgoing {to - 1}`, queued as [`queue_outgoing`] does.
pub async fn queue_outgoing_range(store: &dyn KurirStore, range: std::ops::Range<usize>) {
    let mut queue = Vec::new();
    for i in range {
        let subject = format!("outgoing {i}");
        let c = kurir_outbox::compose(&kurir_outbox::Draft {
            from: demo::USER.into(),
            to: vec![demo::USER2.into()],
            subject: subject.clone(),
            text: Some("Hej!\n".into()),
            ..kurir_outbox::Draft::default()
        })
        .unwrap();
        queue.push(NewOutgoing {
            sender_user: "ANNA".into(),
            origin: "test".into(),
            from: Some(demo::USER.into()),
            recipients: c.recipients,
            subject: Some(subject),
            message_id: Some(c.message_id),
            raw: c.raw,
        });
    }
    store.enqueue_many(queue).await.unwrap();
}

/// (all, sent, sending) messages in the outbox.
pub async fn outbox_states(store: &dyn KurirStore) -> (usize, usize, usize) {
    let all = store
        .outbox_list(&OutboxFilter {
            limit: Some(100_000),
            ..OutboxFilter::default()
        })
        .await
        .unwrap();
    let count = |s: OutgoingState| all.iter().filter(|m| m.state == s).count();
    (
        all.len(),
        count(OutgoingState::Sent),
        count(OutgoingState::Sending),
    )
}

/// Messages in a mailbox folder, through the emulator's test API.
pub async fn emulator_folder(
    emu: &RunningEmulator,
    mailbox: &str,
    folder: &str,
) -> Vec<serde_json::Value> {
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let v: serde_json::Value = http
        .get(format!(
            "{}/_emulator/mailboxes/{mailbox}/messages?folder={folder}",
            emu.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["messages"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("the emulator lists messages: {v}"))
}

/// Every one of the `n` messages [`queue_outgoing`] queued reached USER2's inbox, none twice.
pub async fn assert_outgoing_delivered_once(emu: &RunningEmulator, n: usize) {
    let delivered = emulator_folder(emu, demo::USER2, "inbox").await;
    let mut subjects: Vec<String> = delivered
        .iter()
        .filter_map(|m| m["subject"].as_str().map(str::to_owned))
        .filter(|s| s.starts_with("outgoing "))
        .collect();
    let all = subjects.len();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), n, "every queued message delivered");
    assert_eq!(all, n, "none delivered twice");
}

/// A running `kurir serve`: its JSON line and its log lines (stderr, also echoed with the
/// instance's name). Killed if a failed assertion drops it while it runs.
pub struct Daemon {
    pub child: Child,
    pub name: &'static str,
    pub line: serde_json::Value,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// `kurir serve` on loopback port 0, no SMTP listener, no rate cap, 4 sends at a time,
    /// 1 s backoff, 20 s shutdown grace; `extra` args after those.
    pub fn serve(name: &'static str, dir: &Path, db: Option<&str>, extra: &[&str]) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kurir"));
        cmd.env("KURIR_DATA_DIR", dir)
            .env_remove("KURIR_MASTER_KEY")
            .env_remove("KURIR_DATABASE_URL")
            .env_remove("KURIR_LANG")
            .env("KURIR_LOG", "info")
            .env("NO_COLOR", "1");
        if let Some(url) = db {
            cmd.env("KURIR_DATABASE_URL", url);
        }
        let mut child = cmd
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--smtp-listen",
                "off",
                "--rate-per-minute",
                "0",
                "--concurrency",
                "4",
                "--backoff-secs",
                "1",
                "--shutdown-grace",
                "20",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kurir serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{name}] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("kurir serve prints its JSON line");
        let line: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            let _ = child.kill();
            panic!("{name}: no JSON line on stdout ({e}): {line:?}")
        });
        Daemon {
            child,
            name,
            line,
            log,
        }
    }

    /// `http://127.0.0.1:PORT` of the web UI and API.
    pub fn url(&self) -> &str {
        self.line["listen"].as_str().expect("the line has listen")
    }

    pub fn instance_id(&self) -> &str {
        self.line["instance"]
            .as_str()
            .expect("the line names the instance")
    }

    /// Whether some log line contains every needle.
    pub fn logged(&self, needles: &[&str]) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| needles.iter().all(|n| l.contains(n)))
    }

    /// How many log lines contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
