//! Shared by the outbox integration tests: the REAL Postfix/Dovecot stack (scripts/mailstack in
//! its own directory and ports, so other suites re-trusting their own emulators cannot pull the
//! keys from under us), an in-process Entra emulator whose keys the stack trusts, a Kurir store
//! with the seed's settings pointed at both, and reading mailboxes back over IMAP (XOAUTH2).
//!
//! A missing prerequisite fails the test with what to do; nothing is skipped.
#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use kurir_emulator::{Emulator, EmulatorConfig, RunningEmulator, demo};
use kurir_entra::{Authority, ClientConfig, Cloud, Credential, TokenClient, TokenRequest};
use kurir_settings::Scope;
use kurir_store::{Change, NewValue, SqliteStore, Store};
use secrecy::{ExposeSecret, SecretString};

pub const HOST: &str = "127.0.0.1";
pub const IMAPS_PORT: u16 = 14993;
pub const SUBMISSION_PORT: u16 = 14587;
pub const ANNA: &str = "anna@kurirdemo.onmicrosoft.com";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn stack_dir() -> PathBuf {
    STACK.dir()
}

/// Fixed, so the signing keys are the same in every test process and one `trust` serves all.
pub fn emulator_state_dir() -> PathBuf {
    std::env::temp_dir().join("kurir-outbox-emulator-state")
}

/// This suite's mail stack: its own directory and ports (14xxx).
const STACK: kurir_testkit::MailStack =
    kurir_testkit::MailStack::new("outbox", "kurir-mailstack-outbox", 14);

pub fn mailstack(args: &[&str]) -> std::process::Output {
    STACK.run(args)
}

fn stack_started() {
    STACK.start_once();
}

fn trusted(emu: &RunningEmulator) {
    STACK.trust_once(&emu.state_dir(), demo::TENANT_ID, demo::TENANT_DOMAIN);
}

/// The emulator started in this process, the stack trusting it, a CA bundle for both, and a
/// Kurir data directory with the seed's settings pointed at them.
pub struct Env {
    pub emu: RunningEmulator,
    pub ca_bundle: PathBuf,
    pub data_dir: PathBuf,
    pub store: Arc<SqliteStore>,
    _tmp: tempfile::TempDir,
}

pub async fn env() -> Env {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .expect("the id command");
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        panic!(
            "the outbox tests start the real mail stack, which needs root (apt-get, Dovecot/Postfix privilege separation): run `sudo -E cargo test -p kurir-outbox`"
        );
    }
    static START: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let guard = START.lock().await;
    let emu = Emulator::start(EmulatorConfig {
        state_dir: Some(emulator_state_dir()),
        ..EmulatorConfig::demo()
    })
    .await
    .expect("the Entra emulator starts");
    drop(guard);
    tokio::task::block_in_place(|| {
        stack_started();
        trusted(&emu);
    });
    let tmp = tempfile::tempdir().unwrap();
    let ca_bundle = tmp.path().join("ca-bundle.pem");
    let stack_ca = std::fs::read_to_string(stack_dir().join("tls/ca.pem"))
        .expect("the mail stack's CA (tls/ca.pem) exists after start");
    std::fs::write(&ca_bundle, format!("{}\n{}", emu.ca_pem(), stack_ca)).unwrap();
    let data_dir = tmp.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let store = Arc::new(open_store(&data_dir).await);
    seed_settings(&store, &emu, &ca_bundle).await;
    Env {
        emu,
        ca_bundle,
        data_dir,
        store,
        _tmp: tmp,
    }
}

/// Opens (creating) the store with its own master key file, as `kurir --data-dir` does, so
/// the real binary can share it.
pub async fn open_store(dir: &Path) -> SqliteStore {
    SqliteStore::open(dir).await.expect("the store opens")
}

fn plain(k: &str, v: impl Into<String>) -> Change {
    Change::Set(k.into(), NewValue::Plain(v.into()))
}

fn secret(k: &str, v: &str) -> Change {
    Change::Set(k.into(), NewValue::Secret(SecretString::from(v.to_owned())))
}

/// The seed's scenario against the emulator and the stack: system settings with a client
/// secret (app-only), ANNA with her own address, WEBSHOP with username/password (a delegated
/// token for adele.vance), the webshop according to user settings. SMTP is named explicitly, so
/// exchange-online users send by SMTP XOAUTH2.
pub async fn seed_settings(store: &SqliteStore, emu: &RunningEmulator, ca: &Path) {
    store
        .apply(
            &Scope::System,
            vec![
                plain("method", "exchange-online"),
                plain("client_id", demo::CLIENT_ID),
                plain("tenant_id", demo::TENANT_ID),
                plain("auth_flow", "client-secret"),
                secret("client_secret", demo::CLIENT_SECRET),
                // The emulator and the local SMTP server are not Microsoft's cloud.
                plain("allow_custom_endpoints", "true"),
                plain("authority", emu.base_url()),
                plain("ca_file", ca.display().to_string()),
                plain("smtp_host", "localhost"),
                plain("smtp_port", SUBMISSION_PORT.to_string()),
                plain("smtp_tls", "starttls"),
            ],
        )
        .await
        .expect("system settings");
    store.add_user("ANNA").await.unwrap();
    store
        .apply(&Scope::User("ANNA".into()), vec![plain("email", ANNA)])
        .await
        .unwrap();
    store.add_user("WEBSHOP").await.unwrap();
    store
        .apply(
            &Scope::User("WEBSHOP".into()),
            vec![
                plain("email", demo::USER),
                plain("auth_flow", "username-password"),
                plain("exchange_username", demo::USER),
                secret("exchange_password", demo::PASSWORD),
            ],
        )
        .await
        .unwrap();
    store
        .apply(
            &Scope::Webshop,
            vec![plain("method", "according-to-user-settings")],
        )
        .await
        .unwrap();
}

/// A mailbox of its own for each test run: any local part in the tenant's domain is a mailbox.
pub fn fresh_mailbox(tag: &str) -> String {
    format!(
        "{tag}-{}@{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10],
        demo::TENANT_DOMAIN
    )
}

/// An app-only Exchange token from the emulator (to read mailboxes back over IMAP).
pub async fn exchange_app_token(emu: &RunningEmulator) -> SecretString {
    let client = TokenClient::new(ClientConfig {
        extra_ca_pem: Some(emu.ca_pem()),
        ..ClientConfig::default()
    })
    .unwrap();
    let req = TokenRequest {
        authority: Authority::url(&emu.base_url()).unwrap(),
        tenant: demo::TENANT_ID.into(),
        client_id: demo::CLIENT_ID.into(),
        credential: Credential::ClientSecret {
            secret: SecretString::from(demo::CLIENT_SECRET.to_owned()),
            basic_auth: false,
        },
        scope: kurir_entra::Scope::exchange_app(Cloud::Global),
        user: None,
    };
    client
        .token(&req)
        .await
        .expect("an Exchange app token")
        .secret
}

struct XOAuth2(String);

impl async_imap::Authenticator for XOAuth2 {
    type Response = String;
    fn process(&mut self, challenge: &[u8]) -> Self::Response {
        if challenge.is_empty() {
            std::mem::take(&mut self.0)
        } else {
            // An error challenge (JSON): answer empty to get the tagged NO.
            String::new()
        }
    }
}

/// The Subject of every message in `mailbox`'s INBOX, read over IMAPS with XOAUTH2, with how
/// often each occurs.
pub async fn inbox_subjects(emu: &RunningEmulator, mailbox: &str) -> BTreeMap<String, u32> {
    let token = exchange_app_token(emu).await;
    let ca = std::fs::read(stack_dir().join("tls/ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect((HOST, IMAPS_PORT))
        .await
        .expect("IMAPS of the mail stack");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("TLS to IMAPS");
    let mut client = async_imap::Client::new(tls);
    let _greeting = client.read_response().await;
    let sasl = format!(
        "user={mailbox}\x01auth=Bearer {}\x01\x01",
        token.expose_secret()
    );
    let mut session = client
        .authenticate("XOAUTH2", XOAuth2(sasl))
        .await
        .map_err(|(e, _)| e)
        .expect("IMAP XOAUTH2 login with an app token");
    let mbox = session.select("INBOX").await.expect("SELECT INBOX");
    let mut out = BTreeMap::new();
    if mbox.exists > 0 {
        let fetches: Vec<_> = session
            .fetch("1:*", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
            .await
            .expect("FETCH")
            .try_collect()
            .await
            .expect("FETCH responses");
        for f in fetches {
            let h = f.header().or_else(|| f.body()).unwrap_or_default();
            let text = String::from_utf8_lossy(h);
            let subject = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or("")
                .trim()
                .to_owned();
            *out.entry(subject).or_insert(0) += 1;
        }
    }
    let _ = session.logout().await;
    out
}

/// Waits until `mailbox` holds at least `n` messages (Postfix delivers asynchronously).
pub async fn wait_for_count(
    emu: &RunningEmulator,
    mailbox: &str,
    n: u32,
    within: Duration,
) -> BTreeMap<String, u32> {
    let start = std::time::Instant::now();
    loop {
        let s = inbox_subjects(emu, mailbox).await;
        let total: u32 = s.values().sum();
        if total >= n || start.elapsed() > within {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A short-retry token client config for tests, trusting the emulator's CA.
pub fn fast_token_config() -> ClientConfig {
    let mut c = ClientConfig::default();
    c.retry.max_attempts = 2;
    c.retry.initial_backoff = Duration::from_millis(100);
    c.retry.max_total = Duration::from_secs(3);
    c
}

/// An app-only Graph token and client for the emulator, to read mailboxes back over Graph.
pub async fn graph_reader(emu: &RunningEmulator) -> (kurir_graph::GraphClient, SecretString) {
    let client = TokenClient::new(ClientConfig {
        extra_ca_pem: Some(emu.ca_pem()),
        ..ClientConfig::default()
    })
    .unwrap();
    let token = client
        .token(&TokenRequest {
            authority: Authority::url(&emu.base_url()).unwrap(),
            tenant: demo::TENANT_ID.into(),
            client_id: demo::CLIENT_ID.into(),
            credential: Credential::ClientSecret {
                secret: SecretString::from(demo::CLIENT_SECRET.to_owned()),
                basic_auth: false,
            },
            scope: kurir_entra::Scope::graph_app(Cloud::Global),
            user: None,
        })
        .await
        .expect("a Graph app token")
        .secret;
    let graph = kurir_graph::GraphClient::new(
        &emu.graph_url(),
        Some(&emu.ca_pem()),
        Duration::from_secs(60),
    )
    .unwrap();
    (graph, token)
}

/// The Subject of every message in an emulator mailbox's `folder`, read over Graph, with how
/// often each occurs.
pub async fn graph_subjects(
    emu: &RunningEmulator,
    mailbox: &str,
    folder: &str,
) -> BTreeMap<String, u32> {
    let (graph, token) = graph_reader(emu).await;
    let list = graph
        .list_messages(
            token.expose_secret(),
            mailbox,
            folder,
            &kurir_graph::MessageQuery {
                select: vec!["subject".into()],
                top: Some(1000),
                ..kurir_graph::MessageQuery::default()
            },
        )
        .await
        .expect("listing the folder over Graph");
    let mut out = BTreeMap::new();
    for m in list {
        *out.entry(m.subject.unwrap_or_default()).or_insert(0) += 1;
    }
    out
}

/// The `kurir` binary next to this test's deps directory, built first so the test runs the
/// current code.
pub fn kurir_binary() -> PathBuf {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "kurir"])
        .current_dir(repo())
        .status()
        .expect("cargo runs");
    assert!(out.success(), "cargo build -p kurir failed");
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("kurir");
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}

pub struct GraphEnv {
    /// The data directory of the store (under `tmp`).
    pub data: PathBuf,
    pub emu: RunningEmulator,
    pub store: Arc<SqliteStore>,
    pub tmp: tempfile::TempDir,
}

/// The emulator (its own temporary state) and a Kurir store whose system settings point at
/// it: exchange-online, client secret (app-only), Graph (no SMTP server named). ADELE sends
/// as adele.vance; CEO as the shared mailbox outside the app's access policy.
pub async fn graph_env() -> GraphEnv {
    let emu = Emulator::start(EmulatorConfig::demo())
        .await
        .expect("the emulator starts");
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("emulator-ca.pem");
    std::fs::write(&ca, emu.ca_pem()).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = Arc::new(SqliteStore::open(&data).await.expect("the store opens"));
    store
        .apply(
            &Scope::System,
            vec![
                plain("method", "exchange-online"),
                plain("client_id", demo::CLIENT_ID),
                plain("tenant_id", demo::TENANT_ID),
                plain("auth_flow", "client-secret"),
                Change::Set(
                    "client_secret".into(),
                    NewValue::Secret(SecretString::from(demo::CLIENT_SECRET.to_owned())),
                ),
                // The emulator is not Microsoft's cloud.
                plain("allow_custom_endpoints", "true"),
                plain("authority", emu.base_url()),
                plain("graph_endpoint", emu.base_url()),
                plain("ca_file", ca.display().to_string()),
            ],
        )
        .await
        .expect("system settings");
    for (code, email) in [("ADELE", demo::USER), ("CEO", demo::RESTRICTED_MAILBOX)] {
        store.add_user(code).await.unwrap();
        store
            .apply(&Scope::User(code.into()), vec![plain("email", email)])
            .await
            .unwrap();
    }
    GraphEnv {
        data,
        emu,
        store,
        tmp,
    }
}
