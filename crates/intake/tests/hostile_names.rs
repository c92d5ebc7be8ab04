//! Hostile attachment names and dangerous XML through the real intake pipeline, against the real
//! Dovecot stack (issue 12 items 2 and 9): a name or a document that belongs to one message
//! quarantines that message with the reason, never stops the account, and nothing is written
//! outside the data directory.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use kurir_intake::auth::Mechanism;
use kurir_intake::handler::{Document, Handler, MonitorToMonitor, Rejection};
use kurir_intake::pipeline::Quiet;
use kurir_intake::{Intake, PassSummary};
use kurir_store::MessageStore;
use kurir_store::messages::{MessageFilter, MessageStatus, StoredMessage};

const ORDER: &[u8] = br#"<?xml version="1.0" encoding="utf-8"?>
<Order xmlns="urn:monitor:m2m"><OrderNo>4711</OrderNo><Buyer>Kund &amp; Co</Buyer></Order>"#;
const PDF: &[u8] = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n%%EOF\n";

/// RFC 2231 percent-encoding of every byte outside a safe ASCII set (as Outlook and Gmail send
/// non-ASCII names); NUL and control characters get through this way too.
fn pct(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A Monitor-to-Monitor message whose attachments carry the given raw names.
fn m2m(id: &str, parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    use base64::Engine;
    let mut m = format!(
        "From: Partner <edi@partner.example>\r\nTo: m2m@kurir.test\r\nSubject: Order {id}\r\nMessage-ID: <{id}@partner.example>\r\nDate: Tue, 1 Jul 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
    );
    for (name, ctype, bytes) in parts {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        m.push_str(&format!(
            "--b1\r\nContent-Type: {ctype}\r\nContent-Disposition: attachment;\r\n filename*=utf-8''{}\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            pct(name),
            lines.join("\r\n")
        ));
    }
    m.push_str("--b1--\r\n");
    m.into_bytes()
}

struct Account {
    mailbox: String,
    /// The data directory is `root/data`: anything written through `..` would land in `root`.
    root: tempfile::TempDir,
    store: Arc<kurir_store::SqliteStore>,
    intake: Intake,
    spec: kurir_intake::AccountSpec,
}

impl Account {
    async fn new(env: &Env, tag: &str, handler: Option<Arc<dyn Handler>>) -> Account {
        let mailbox = fresh_mailbox(tag);
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let spec = env.spec(
            "Monitor-to-Monitor",
            "monitor-to-monitor",
            &mailbox,
            true,
            Mechanism::XOAuth2,
        );
        let store = open_store(&data).await;
        let mut intake = spec.intake(data, store.clone());
        if let Some(h) = handler {
            intake.handler = h;
        }
        Account {
            mailbox,
            root,
            store,
            intake,
            spec,
        }
    }

    fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// Delivers the messages and runs one pass, which must succeed.
    async fn take_in(&self, env: &Env, messages: &[Vec<u8>]) -> PassSummary {
        deliver(&self.mailbox, messages).await;
        let mut transport = self.spec.transport(env.app_tokens(&self.mailbox)).unwrap();
        let summary = self
            .intake
            .pass(transport.as_mut(), &mut Quiet)
            .await
            .unwrap_or_else(|e| panic!("one message's attachment must not stop the account: {e}"));
        transport.close().await;
        assert_eq!(count(&self.mailbox, "INBOX"), 0, "nothing left behind");
        summary
    }

    async fn message(&self, id: &str) -> StoredMessage {
        let id = format!("{id}@partner.example");
        self.store
            .list_messages(&MessageFilter::default())
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.message_id.as_deref() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("{id} is stored"))
    }

    /// Every import document is a plain file name, ready, in the import folder; nothing was
    /// written outside the data directory. Returns the file names.
    async fn ready_imports(&self) -> Vec<String> {
        let import_dir = self.intake.import_dir();
        assert!(import_dir.starts_with(self.data()));
        let imports = self.store.list_imports(None).await.unwrap();
        for i in &imports {
            assert_eq!(i.state, "ready", "{i:?}");
            let path = import_dir.join(&i.file_name);
            assert_eq!(path.parent(), Some(import_dir.as_path()), "{i:?}");
            assert!(path.is_file(), "{} exists", path.display());
            assert!(i.file_name.len() < 160, "{i:?}");
            assert!(
                i.file_name.ends_with(&format!(".{}", i.kind)),
                "the extension is the kind: {i:?}"
            );
        }
        let outside: Vec<PathBuf> = std::fs::read_dir(self.root.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p != &self.data())
            .collect();
        assert!(
            outside.is_empty(),
            "written outside the data directory: {outside:?}"
        );
        let mut in_folder: Vec<String> = std::fs::read_dir(&import_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".staging")
            .collect();
        in_folder.sort();
        let mut names: Vec<String> = imports.into_iter().map(|i| i.file_name).collect();
        names.sort();
        assert_eq!(
            in_folder, names,
            "the import folder holds exactly the queue"
        );
        names
    }
}

fn under(root: &Path, dir: &Path) -> bool {
    dir.canonicalize()
        .unwrap()
        .starts_with(root.canonicalize().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn cjk_attachment_name_of_120_chars_does_not_stop_the_account() {
    let env = env().await;
    let account = Account::new(&env, "cjk", None).await;
    let cjk = "注文書".repeat(40); // 120 characters, 360 bytes
    let summary = account
        .take_in(
            &env,
            &[
                m2m(
                    "cjk",
                    &[
                        (format!("{cjk}.xml").as_str(), "application/xml", ORDER),
                        (format!("{cjk}.pdf").as_str(), "application/pdf", PDF),
                    ],
                ),
                m2m("after-cjk", &[("order.xml", "application/xml", ORDER)]),
            ],
        )
        .await;
    assert_eq!((summary.stored, summary.quarantined), (2, 0), "{summary:?}");
    assert_eq!(account.message("cjk").await.status, MessageStatus::Stored);
    let names = account.ready_imports().await;
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.contains("注文書") && n.ends_with(".xml")),
        "{names:?}"
    );
    // The next pass takes in the account's next message.
    let summary = account
        .take_in(
            &env,
            &[m2m("next", &[("order.xml", "application/xml", ORDER)])],
        )
        .await;
    assert_eq!(summary.stored, 1, "{summary:?}");
    assert_eq!(account.ready_imports().await.len(), 4);
}

/// The file-drop side of the ERP's contract (docs/import-queue.md): a document the ERP removes
/// from the import folder is acknowledged at the next pass (`picked_up`, never offered again);
/// the others stay ready. Without it, a file-drop ERP's documents stayed "ready" for ever and
/// an API consumer would be offered documents the ERP had long taken.
#[tokio::test(flavor = "multi_thread")]
async fn an_import_document_the_erp_removes_is_acknowledged_at_the_next_pass() {
    let env = env().await;
    let account = Account::new(&env, "filedrop", None).await;
    account
        .take_in(
            &env,
            &[
                m2m("taken", &[("order.xml", "application/xml", ORDER)]),
                m2m("kept", &[("order.xml", "application/xml", ORDER)]),
            ],
        )
        .await;
    let names = account.ready_imports().await;
    assert_eq!(names.len(), 2, "{names:?}");
    let taken = account.message("taken").await.id;
    let entries = account.store.list_imports(None).await.unwrap();
    let taken_entry = entries.iter().find(|e| e.message == taken).unwrap();
    // The ERP imports one document and removes its file, as a file-drop import does.
    std::fs::remove_file(account.intake.import_dir().join(&taken_entry.file_name)).unwrap();
    account.take_in(&env, &[]).await;
    let after = account.store.list_imports(None).await.unwrap();
    for e in &after {
        if e.id == taken_entry.id {
            assert_eq!(e.state, "picked_up", "{e:?}");
            assert!(e.acked_at.is_some(), "{e:?}");
        } else {
            assert_eq!(e.state, "ready", "the document still in the folder: {e:?}");
        }
    }
    let pending = account
        .store
        .imports_after(None, 0, 100, true)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_ne!(pending[0].id, taken_entry.id);
}

/// Wraps Monitor-to-Monitor and gives the documents of messages whose subject says so a name
/// no file system takes (300 bytes): what a name the handler did not foresee does at write time.
struct RefusedNames;

impl Handler for RefusedNames {
    fn name(&self) -> &str {
        "monitor-to-monitor"
    }
    fn handle<'a>(
        &self,
        msg: &'a mail_parser::Message<'a>,
    ) -> Result<Vec<Document<'a>>, Rejection> {
        let mut docs = MonitorToMonitor.handle(msg)?;
        if msg.subject().is_some_and(|s| s.contains("refused")) {
            for d in &mut docs {
                d.name = format!("{}.{}", "x".repeat(300), d.kind);
            }
        }
        Ok(docs)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_the_file_system_refuses_quarantines_only_its_message() {
    let env = env().await;
    let account = Account::new(&env, "refused", Some(Arc::new(RefusedNames))).await;
    let summary = account
        .take_in(
            &env,
            &[
                m2m("before", &[("order.xml", "application/xml", ORDER)]),
                m2m(
                    "refused",
                    &[
                        ("order.xml", "application/xml", ORDER),
                        ("order.pdf", "application/pdf", PDF),
                    ],
                ),
                m2m("after", &[("order.xml", "application/xml", ORDER)]),
            ],
        )
        .await;
    assert_eq!((summary.stored, summary.quarantined), (2, 1), "{summary:?}");
    assert_eq!(count(&account.mailbox, "Quarantine"), 1);
    assert_eq!(count(&account.mailbox, "Processed"), 2);
    let refused = account.message("refused").await;
    assert_eq!(refused.status, MessageStatus::Quarantined);
    let reason = refused.reason.unwrap();
    assert!(
        reason.contains("cannot be written to the import folder") && reason.contains("name"),
        "{reason}"
    );
    assert_eq!(account.ready_imports().await.len(), 2);
    let staging = account.intake.import_dir().join(".staging");
    assert!(under(&account.data(), &staging));
    assert_eq!(
        std::fs::read_dir(&staging).unwrap().count(),
        0,
        "no staged leftovers of the refused message"
    );
    let summary = account
        .take_in(
            &env,
            &[m2m("next", &[("order.xml", "application/xml", ORDER)])],
        )
        .await;
    assert_eq!(summary.stored, 1, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_attachment_names_land_safely_inside_the_import_folder() {
    let env = env().await;
    let account = Account::new(&env, "hostile", None).await;
    let emoji = "😀".repeat(120);
    let long = "ä".repeat(200) + ".xml";
    let names = [
        "..",
        "../../etc/passwd",
        "../../../../tmp/kurir-escape.xml",
        "/etc/cron.d/evil.xml",
        "..\\..\\Windows\\win.ini",
        "C:\\Users\\Public\\order.xml",
        "\\\\server\\share\\order.xml",
        "order.xml:stream",
        "a<b>c:d\"e|f?g*h.xml",
        "invoice.xml\0.exe",
        "order\u{202E}lmx.exe",
        "\u{2066}order\u{2069}\u{200E}.xml",
        "order.xml. . .",
        "order.xml   ",
        "CON.xml",
        "nul",
        "COM1.xml",
        "LPT9",
        "Order.xml",
        "ORDER.XML",
        "order.xml",
        "order",
        "order.txt",
        "",
        emoji.as_str(),
        long.as_str(),
    ];
    let messages: Vec<Vec<u8>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| m2m(&format!("hostile-{i}"), &[(*n, "application/xml", ORDER)]))
        .collect();
    // Names differing only in case inside one message, too.
    let mut messages = messages;
    messages.push(m2m(
        "cases",
        &[
            ("Order.xml", "application/xml", ORDER),
            ("ORDER.xml", "application/xml", ORDER),
            ("order.xml", "application/xml", ORDER),
            ("order.pdf\0.exe", "application/pdf", PDF),
        ],
    ));
    let summary = account.take_in(&env, &messages).await;
    assert_eq!(
        (summary.stored, summary.quarantined),
        (messages.len() as u64, 0),
        "{summary:?}"
    );
    let files = account.ready_imports().await;
    assert_eq!(files.len(), names.len() + 4);
    let folded: std::collections::HashSet<String> =
        files.iter().map(|f| f.to_lowercase()).collect();
    assert_eq!(
        folded.len(),
        files.len(),
        "no two files differ only in case"
    );
    for f in &files {
        let doc = f.splitn(3, '-').nth(2).unwrap();
        assert!(!doc.starts_with('.'), "{f}");
        assert!(!doc.ends_with(['.', ' ']), "{f}");
        assert!(f.ends_with(".xml") || f.ends_with(".pdf"), "{f}");
        assert!(
            !f.chars().any(
                |c| c.is_control() || "/\\<>:\"|?*\u{202E}\u{2066}\u{2069}\u{200E}".contains(c)
            ),
            "{f:?}"
        );
        let stem = doc.split('.').next().unwrap().to_ascii_uppercase();
        assert!(
            !["CON", "NUL", "COM1", "LPT9"].contains(&stem.as_str()),
            "{f}"
        );
    }
    assert!(
        files.iter().any(|f| f.ends_with("-order.pdf_.exe.pdf")),
        "{files:?}"
    );
    assert!(!Path::new("/tmp/kurir-escape.xml").exists());
}

/// Monitor-to-Monitor messages with the given XML beside a valid order message: the bad one is
/// quarantined with a reason naming what is wrong, the good one still reaches the import queue.
async fn dangerous_xml(tag: &str, xml: &[u8], reason_says: &str) {
    let env = env().await;
    let account = Account::new(&env, tag, None).await;
    let summary = account
        .take_in(
            &env,
            &[
                m2m(
                    "bad",
                    &[
                        ("order.xml", "application/xml", xml),
                        ("order.pdf", "application/pdf", PDF),
                    ],
                ),
                m2m("good", &[("order.xml", "application/xml", ORDER)]),
            ],
        )
        .await;
    assert_eq!((summary.stored, summary.quarantined), (1, 1), "{summary:?}");
    let bad = account.message("bad").await;
    assert_eq!(bad.status, MessageStatus::Quarantined);
    let reason = bad.reason.unwrap();
    assert!(reason.contains(reason_says), "{reason}");
    assert_eq!(count(&account.mailbox, "Quarantine"), 1);
    assert_eq!(account.message("good").await.status, MessageStatus::Stored);
    let files = account.ready_imports().await;
    assert_eq!(files.len(), 1, "only the valid order is queued: {files:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn xml_with_entity_declarations_is_quarantined() {
    let bomb = br#"<?xml version="1.0"?>
<!DOCTYPE Order [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Order><OrderNo>&lol3;</OrderNo></Order>"#;
    dangerous_xml("lol", bomb, "DOCTYPE").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn xml_with_external_dtd_is_quarantined() {
    let xxe = br#"<?xml version="1.0"?>
<!DOCTYPE Order [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Order><OrderNo>&xxe;</OrderNo></Order>"#;
    dangerous_xml("xxe", xxe, "DOCTYPE").await;
    let external = br#"<?xml version="1.0"?><!DOCTYPE Order SYSTEM "http://attacker.example/order.dtd"><Order/>"#;
    dangerous_xml("dtd", external, "DOCTYPE").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_xml_is_quarantined() {
    dangerous_xml(
        "badxml",
        b"<?xml version=\"1.0\"?><Order><OrderNo>1</Order>",
        "not well-formed",
    )
    .await;
}
