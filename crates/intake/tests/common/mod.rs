//! Shared by the intake integration tests: the REAL Dovecot stack (scripts/mailstack, started
//! here in its own directory and ports so other suites re-trusting their emulators cannot pull
//! the keys from under us), an in-process Entra emulator whose keys the stack trusts, tokens,
//! LMTP seeding, and folder counts read with doveadm.
//!
//! A missing prerequisite fails the test with what to do; nothing is skipped.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use kurir_emulator::{Emulator, EmulatorConfig, RunningEmulator, demo};
use kurir_entra::{Authority, ClientConfig, Cloud, Credential, TokenClient, TokenRequest};
use kurir_intake::auth::{EntraTokens, Mechanism, TokenSource};
use kurir_intake::transport::imap::Folders;
use kurir_intake::{AccountSpec, Protocol};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufStream};

pub const HOST: &str = "127.0.0.1";
pub const IMAPS_PORT: u16 = 12993;
pub const POP3S_PORT: u16 = 12995;
pub const LMTP_PORT: u16 = 12024;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn stack_dir() -> PathBuf {
    STACK.dir()
}

/// The emulator's state dir is fixed, so its signing keys are the same in every test process
/// and one `trust` serves them all.
pub fn emulator_state_dir() -> PathBuf {
    std::env::temp_dir().join("kurir-intake-emulator-state")
}

/// This suite's mail stack: its own directory and ports (12xxx).
const STACK: kurir_testkit::MailStack =
    kurir_testkit::MailStack::new("intake", "kurir-intake-mailstack", 12);

fn mailstack(args: &[&str]) -> std::process::Output {
    STACK.run(args)
}

fn stack_started() {
    STACK.start_once();
}

fn trusted(emu: &RunningEmulator) {
    STACK.trust_once(&emu.state_dir(), demo::TENANT_ID, demo::TENANT_DOMAIN);
}

/// Everything a test needs: the stack, an emulator, and a CA bundle trusting both.
pub struct Env {
    pub emu: RunningEmulator,
    pub ca_bundle: PathBuf,
    _tmp: tempfile::TempDir,
}

pub async fn env() -> Env {
    // Parallel tests share the state dir: the first start creates the keys, so serialise starts.
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
    Env {
        emu,
        ca_bundle,
        _tmp: tmp,
    }
}

impl Env {
    /// An app-only (client credentials) token source for Exchange, as Kurir uses in production.
    pub fn app_tokens(&self, mailbox: &str) -> Arc<dyn TokenSource> {
        let client = TokenClient::new(ClientConfig {
            extra_ca_pem: Some(self.emu.ca_pem()),
            ..ClientConfig::default()
        })
        .unwrap();
        Arc::new(EntraTokens {
            client: Arc::new(client),
            request: TokenRequest {
                authority: Authority::url(&self.emu.base_url()).unwrap(),
                tenant: demo::TENANT_ID.into(),
                client_id: demo::CLIENT_ID.into(),
                credential: Credential::ClientSecret {
                    secret: demo::CLIENT_SECRET.to_owned().into(),
                    basic_auth: false,
                },
                scope: kurir_entra::Scope::exchange_app(Cloud::Global),
                user: None,
            },
            mailbox: mailbox.into(),
        })
    }

    /// A delegated token source (username/password) for the demo user's own mailbox.
    pub fn user_tokens(&self) -> Arc<dyn TokenSource> {
        let client = TokenClient::new(ClientConfig {
            extra_ca_pem: Some(self.emu.ca_pem()),
            ..ClientConfig::default()
        })
        .unwrap();
        Arc::new(EntraTokens {
            client: Arc::new(client),
            request: TokenRequest {
                authority: Authority::url(&self.emu.base_url()).unwrap(),
                tenant: demo::TENANT_ID.into(),
                client_id: demo::CLIENT_ID.into(),
                credential: Credential::UsernamePassword {
                    username: demo::USER.into(),
                    password: demo::PASSWORD.to_owned().into(),
                    client_secret: None,
                },
                scope: kurir_entra::Scope::exchange_delegated(
                    Cloud::Global,
                    &["IMAP.AccessAsUser.All", "POP.AccessAsUser.All"],
                ),
                user: None,
            },
            mailbox: demo::USER.into(),
        })
    }

    pub fn spec(
        &self,
        name: &str,
        account_type: &str,
        mailbox: &str,
        imap: bool,
        mechanism: Mechanism,
    ) -> AccountSpec {
        AccountSpec {
            name: name.into(),
            account_type: account_type.into(),
            mailbox: mailbox.into(),
            protocol: if imap {
                Protocol::Imap {
                    host: HOST.into(),
                    port: IMAPS_PORT,
                }
            } else {
                Protocol::Pop3 {
                    host: HOST.into(),
                    port: POP3S_PORT,
                }
            },
            folders: Folders {
                source: "INBOX".into(),
                processed: "Processed".into(),
                quarantine: "Quarantine".into(),
            },
            poll_interval: std::time::Duration::from_secs(60),
            ca_file: Some(self.ca_bundle.clone()),
            mechanism,
        }
    }
}

/// A mailbox nobody else uses (any local part is a mailbox on the stack).
pub fn fresh_mailbox(tag: &str) -> String {
    format!(
        "intake-{tag}-{:08x}@{}",
        rand::random::<u32>(),
        demo::TENANT_DOMAIN
    )
}

/// Delivers messages over LMTP (one connection), the fast way to fill a mailbox.
pub async fn deliver(rcpt: &str, messages: &[Vec<u8>]) {
    let tcp = tokio::net::TcpStream::connect((HOST, LMTP_PORT))
        .await
        .unwrap_or_else(|e| {
            panic!("LMTP {HOST}:{LMTP_PORT} not reachable ({e}): run scripts/mailstack start")
        });
    let mut io = BufStream::new(tcp);
    async fn reply(io: &mut BufStream<tokio::net::TcpStream>, want: &str) {
        loop {
            let mut line = String::new();
            io.read_line(&mut line).await.unwrap();
            assert!(
                line.starts_with(want),
                "LMTP: expected {want}, got {line:?}"
            );
            if line.as_bytes().get(3) != Some(&b'-') {
                return;
            }
        }
    }
    reply(&mut io, "220").await;
    io.write_all(b"LHLO kurir-tests\r\n").await.unwrap();
    io.flush().await.unwrap();
    reply(&mut io, "250").await;
    for m in messages {
        io.write_all(
            format!(
                "MAIL FROM:<seed@{}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n",
                demo::TENANT_DOMAIN
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        io.flush().await.unwrap();
        reply(&mut io, "250").await;
        reply(&mut io, "250").await;
        reply(&mut io, "354").await;
        let mut data = Vec::with_capacity(m.len() + 16);
        for line in m.split_inclusive(|b| *b == b'\n') {
            if line.starts_with(b".") {
                data.push(b'.');
            }
            data.extend_from_slice(line);
        }
        if !data.ends_with(b"\r\n") {
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b".\r\n");
        io.write_all(&data).await.unwrap();
        io.flush().await.unwrap();
        reply(&mut io, "250").await;
    }
    io.write_all(b"QUIT\r\n").await.unwrap();
    io.flush().await.unwrap();
}

/// Puts files into the INBOX byte for byte (doveadm save through scripts/mailstack deliver).
pub fn deliver_exact(rcpt: &str, files: &[PathBuf]) {
    let mut args = vec!["deliver".to_owned(), rcpt.to_owned()];
    args.extend(files.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = mailstack(&args);
    assert!(
        out.status.success(),
        "scripts/mailstack deliver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Messages in a folder of a mailbox, as Dovecot counts them (0 if the folder does not exist).
pub fn count(mailbox: &str, folder: &str) -> u64 {
    let out = Command::new("doveadm")
        .args([
            "-c",
            stack_dir().join("etc/dovecot.conf").to_str().unwrap(),
            "-f",
            "flow",
            "mailbox",
            "status",
            "-u",
            mailbox,
            "messages",
            folder,
        ])
        .output()
        .expect("doveadm is installed with the mail stack");
    if !out.status.success() {
        return 0;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|kv| kv.strip_prefix("messages="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected doveadm output: {text}"))
}

/// A plain message with a unique Message-ID.
pub fn plain_message(i: usize, tag: &str, body_len: usize) -> Vec<u8> {
    let body: String = (0..body_len)
        .map(|j| (b'a' + ((i + j) % 26) as u8) as char)
        .collect::<String>()
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n");
    format!(
        "From: Sender {i} <sender{i}@example.com>\r\nTo: {tag}@{}\r\nSubject: Test {tag} {i}\r\nMessage-ID: <{tag}.{i}@kurir.test>\r\nDate: Tue, 1 Jul 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        demo::TENANT_DOMAIN
    )
    .into_bytes()
}

/// A multipart message with attachments (name, content type, bytes).
pub fn with_attachments(id: &str, subject: &str, parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    use base64::Engine;
    let mut m = format!(
        "From: Partner <edi@partner.example>\r\nTo: m2m@{}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Tue, 1 Jul 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n",
        demo::TENANT_DOMAIN
    );
    for (name, ctype, bytes) in parts {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let wrapped: Vec<String> = b64
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        m.push_str(&format!(
            "--b1\r\nContent-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            wrapped.join("\r\n")
        ));
    }
    m.push_str("--b1--\r\n");
    m.into_bytes()
}

pub async fn open_store(dir: &Path) -> Arc<kurir_store::SqliteStore> {
    Arc::new(kurir_store::SqliteStore::open(dir).await.unwrap())
}

/// The `kurir` binary of this workspace, built if needed (an integration test of another crate
/// cannot depend on a binary target).
pub fn kurir_bin() -> PathBuf {
    if let Ok(p) = std::env::var("KURIR_BIN") {
        return PathBuf::from(p);
    }
    let out = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "kurir", "--bin", "kurir"])
        .current_dir(repo())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "building the kurir binary failed (or set KURIR_BIN to a built one):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target/<profile>/kurir
    let bin = exe.parent().unwrap().parent().unwrap().join("kurir");
    assert!(bin.exists(), "no kurir binary at {}", bin.display());
    bin
}

pub fn kurir(bin: &Path, data: &Path) -> Command {
    let mut c = Command::new(bin);
    c.env("KURIR_DATA_DIR", data)
        .env_remove("KURIR_MASTER_KEY")
        .env_remove("KURIR_LOG")
        .env("KURIR_TEST_SECRET", kurir_emulator::demo::CLIENT_SECRET);
    c
}

pub fn ok(bin: &Path, data: &Path, args: &[&str]) {
    let out = kurir(bin, data).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "kurir {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
