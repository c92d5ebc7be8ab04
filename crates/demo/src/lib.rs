//! The demo scenario of `kurir demo`: the whole product on a fresh machine, against the built-in
//! emulator of Microsoft Entra ID and Exchange Online (Graph mail).
//!
//! [`Demo::start`] starts the emulator with its demo tenant, writes the seed's scenario into the
//! settings — system settings with a client secret, the user ANNA (own e-mail address,
//! everything else inherited), the user WEBSHOP (username/password), a Monitor-to-Monitor
//! account and a general one, the webshop "according to user settings" — puts mail into the demo
//! mailboxes, and runs the service (kurir-service: web UI, intake, outbox) so the admin sees mail
//! come in and go out. [`traffic`] keeps mail flowing; [`round_trip`] is `kurir demo --check`:
//! WEBSHOP sends an order document through Graph sendMail, it is delivered to the
//! Monitor-to-Monitor mailbox, taken in, moved to the processed folder and queued for the ERP's
//! import.
//!
//! The demo owns its data directory: it rewrites the settings at every start because the
//! emulator's port changes, and refuses a directory whose settings it did not write.
//! The CLI (`crates/kurir/src/cli/demo.rs`) only parses arguments and prints.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use kurir_emulator::demo as d;
use kurir_emulator::{Emulator, EmulatorConfig, Fixture, RunningEmulator};
use kurir_outbox::{Content, SendAs, Submission, Submitter};
use kurir_outbox::{Draft, FileAttachment, compose};
use kurir_service::{Service, ServiceConfig};
use kurir_settings::{AuthFlow, Method, Protocol, Scope, key, parse_value};
use kurir_store::messages::MessageFilter;
use kurir_store::outbox::OutgoingState;
use kurir_store::{Change, KurirStore, NewValue, SqliteStore};
use secrecy::SecretString;

pub const ADMIN: &str = "admin";
pub const M2M_ACCOUNT: &str = "Monitor-to-Monitor";
pub const GENERAL_ACCOUNT: &str = "Inkommande";
pub const CUSTOMER: &str = "kund@example.com";

/// A data directory with Kurir settings the demo did not write: the demo would overwrite them.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} holds Kurir settings that the demo did not write; the demo rewrites settings, so run it in its own directory (e.g. `kurir --data-dir ./kurir-demo demo`)",
    dir.display()
)]
pub struct NotADemoDir {
    pub dir: PathBuf,
}

/// The demo rewrites settings at every start: never let it do that to a real installation.
pub fn refuse_production_dir(dir: &Path) -> Result<(), NotADemoDir> {
    let db = dir.join("kurir.db");
    if db.exists() && !dir.join(MARKER).exists() {
        return Err(NotADemoDir {
            dir: dir.to_owned(),
        });
    }
    Ok(())
}

/// A file that says "the demo owns this data directory".
const MARKER: &str = "DEMO";

/// The running demo: the emulator and the service on the demo's data directory.
pub struct Demo {
    pub store: Arc<dyn KurirStore>,
    pub emulator: Arc<RunningEmulator>,
    pub service: Service,
    /// The admin's password for this run (new at every start, stored hashed).
    pub admin_password: String,
}

impl Demo {
    /// Starts the demo in `dir` (refused when it is not the demo's: [`NotADemoDir`]).
    pub async fn start(dir: &Path, listen: SocketAddr) -> anyhow::Result<Demo> {
        refuse_production_dir(dir)?;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the demo directory {}", dir.display()))?;
        std::fs::write(
            dir.join(MARKER),
            "This data directory belongs to `kurir demo`, which rewrites its settings at every start.\n",
        )?;
        let fresh_mail = !kurir_emulator::graph::store::MailStore::exists_in(&dir.join("emulator"));
        let emulator = Arc::new(
            Emulator::start(EmulatorConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                fixture: Fixture::demo(),
                state_dir: Some(dir.join("emulator")),
                userrealm_port: None,
            })
            .await
            .context("cannot start the built-in emulator")?,
        );
        let store: Arc<dyn KurirStore> = Arc::new(SqliteStore::open(dir).await?);
        configure(&*store, &emulator).await?;
        let admin_password = admin_login(&*store).await?;
        if fresh_mail {
            initial_mail(&emulator, dir)?;
        }
        let config = ServiceConfig {
            web: kurir_web::WebConfig {
                listen,
                ..kurir_web::WebConfig::default()
            },
            smtp_listen: None,
            // The demo's mail is a handful of messages: no per-minute cap, quick retries.
            outbox: kurir_outbox::OutboxConfig {
                concurrency: 4,
                rate_per_minute: None,
                backoff_initial: Duration::from_secs(5),
                ..kurir_outbox::OutboxConfig::default()
            },
            run_outbox: true,
            run_intake: true,
            shutdown_grace: Duration::from_secs(10),
            upkeep: Some(kurir_service::upkeep::UpkeepConfig::default()),
        };
        let service = Service::start(dir, store.clone(), config).await?;
        Ok(Demo {
            store,
            emulator,
            service,
            admin_password,
        })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.service.stop().await?;
        if let Ok(emu) = Arc::try_unwrap(self.emulator) {
            emu.shutdown().await;
        }
        Ok(())
    }
}

/// Writes one scope's plain values and secrets, validated like `kurir settings set` does.
async fn set(
    store: &dyn KurirStore,
    scope: &Scope,
    plain: &[(&str, &str)],
    secrets: &[(&str, &str)],
) -> anyhow::Result<()> {
    let mut changes = Vec::new();
    for (k, v) in plain {
        let def = key(k).with_context(|| format!("unknown setting {k}"))?;
        let v = parse_value(def, scope.level(), v)?;
        changes.push(Change::Set((*k).to_owned(), NewValue::Plain(v)));
    }
    for (k, v) in secrets {
        changes.push(Change::Set(
            (*k).to_owned(),
            NewValue::Secret(SecretString::from((*v).to_owned())),
        ));
    }
    store.apply(scope, changes).await?;
    Ok(())
}

/// The seed's scenario, pointed at the emulator.
async fn configure(store: &dyn KurirStore, emu: &RunningEmulator) -> anyhow::Result<()> {
    let base = emu.base_url();
    let ca = emu.ca_path();
    let ca = ca.to_string_lossy();
    // Systeminställningar: Serverbaserat, via Microsoft Exchange Online; Klienthemlighet.
    set(
        store,
        &Scope::System,
        &[
            ("method", Method::ExchangeOnline.as_str()),
            ("client_id", d::CLIENT_ID),
            ("tenant_id", d::TENANT_ID),
            ("auth_flow", AuthFlow::ClientSecret.as_str()),
            ("client_secret_expires", "2099-12-31"),
            // Only because this is the emulator: Microsoft's cloud needs none of these four.
            // The server switch lets secrets go to the emulator instead of Microsoft's cloud
            // (issue #13.1); the demo sets it like the CLI does, and the UI shows it is on.
            ("allow_custom_endpoints", "true"),
            ("authority", &base),
            ("graph_endpoint", &base),
            ("ca_file", &ca),
            ("default_sender", d::USER),
        ],
        &[("client_secret", d::CLIENT_SECRET)],
    )
    .await?;
    let snap = store.snapshot().await?;
    for user in ["ANNA", "WEBSHOP"] {
        if !snap.users.contains_key(user) {
            store.add_user(user).await?;
        }
    }
    // ANNA: her own address; everything else inherited from the system settings.
    set(
        store,
        &Scope::User("ANNA".into()),
        &[("email", d::USER)],
        &[],
    )
    .await?;
    // WEBSHOP: Användarnamn (Exchange) / Lösenord (Exchange) with the username/password flow.
    set(
        store,
        &Scope::User("WEBSHOP".into()),
        &[
            ("method", Method::ExchangeOnline.as_str()),
            ("auth_flow", "username-password"),
            ("email", d::USER2),
            ("exchange_username", d::USER2),
        ],
        &[("exchange_password", d::PASSWORD)],
    )
    .await?;
    // Inställningar för inkommande e-post: typed accounts inheriting the system's Exchange values.
    for (name, kind, mailbox) in [
        (M2M_ACCOUNT, "monitor-to-monitor", d::M2M_MAILBOX),
        (GENERAL_ACCOUNT, "general", d::USER),
    ] {
        if !snap.accounts.contains_key(name) {
            store.add_account(name).await?;
        }
        set(
            store,
            &Scope::Account(name.into()),
            &[
                ("type", kind),
                ("mailbox", mailbox),
                ("protocol", Protocol::Graph.as_str()),
                ("poll_interval", "10s"),
            ],
            &[],
        )
        .await?;
    }
    // Webbshop Administration: Enligt användarinställningar i Monitor G5 (= as WEBSHOP).
    set(
        store,
        &Scope::Webshop,
        &[("method", "according-to-user-settings")],
        &[],
    )
    .await?;
    Ok(())
}

/// The demo's admin login: a new random password at every start (printed, stored hashed).
async fn admin_login(store: &dyn KurirStore) -> anyhow::Result<String> {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let password: String = {
        let mut rng = rand::rng();
        (0..16)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    let secret = SecretString::from(password.clone());
    if !store.add_admin(ADMIN, &secret).await? {
        store.set_admin_password(ADMIN, &secret).await?;
    }
    Ok(password)
}

/// A Monitor-to-Monitor business document as another Monitor ERP sends it.
fn order_xml(number: u32, buyer: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Order xmlns="urn:kurir:demo:monitor-to-monitor">
  <OrderNumber>{number}</OrderNumber>
  <Buyer>{buyer}</Buyer>
  <Seller>Kurir Demo AB</Seller>
  <Rows>
    <Row><PartNumber>SKRUV-M8x40</PartNumber><Quantity>500</Quantity><Unit>st</Unit></Row>
    <Row><PartNumber>MUTTER-M8</PartNumber><Quantity>500</Quantity><Unit>st</Unit></Row>
  </Rows>
</Order>
"#
    )
}

/// A one-page PDF saying `text` (ASCII), valid enough for any viewer.
fn pdf(text: &str) -> Vec<u8> {
    let text: String = text
        .chars()
        .filter(|c| c.is_ascii() && !matches!(c, '(' | ')' | '\\'))
        .collect();
    let stream = format!("BT /F1 18 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A message with an order (XML + PDF) built like `kurir send` builds one; the documents are
/// also written under `<dir>/demo-documents/`.
fn order_message(
    dir: &Path,
    from: &str,
    to: &str,
    number: u32,
    subject: &str,
) -> anyhow::Result<kurir_outbox::compose::Composed> {
    let attachments = vec![
        FileAttachment {
            name: format!("order-{number}.xml"),
            content: order_xml(number, from).into_bytes(),
        },
        FileAttachment {
            name: format!("order-{number}.pdf"),
            content: pdf(&format!("Order {number} from {from}")),
        },
    ];
    // Kept so the admin can open what the demo sent and compare it with the import queue.
    let docs = dir.join("demo-documents");
    std::fs::create_dir_all(&docs)?;
    for a in &attachments {
        std::fs::write(docs.join(&a.name), &a.content)?;
    }
    let draft = Draft {
        from: from.to_owned(),
        to: vec![to.to_owned()],
        cc: vec![],
        bcc: vec![],
        subject: subject.to_owned(),
        text: Some(format!(
            "Hej!\n\nHär kommer order {number} som Monitor-till-Monitor-dokument (XML) med en PDF-kopia.\n\nMed vänlig hälsning\n{from}\n"
        )),
        html: None,
        attachments,
    };
    Ok(compose(&draft)?)
}

fn plain_message(
    from: &str,
    to: &str,
    subject: &str,
    body: &str,
) -> anyhow::Result<kurir_outbox::compose::Composed> {
    let draft = Draft {
        from: from.to_owned(),
        to: vec![to.to_owned()],
        cc: vec![],
        bcc: vec![],
        subject: subject.to_owned(),
        text: Some(body.to_owned()),
        html: None,
        attachments: vec![],
    };
    Ok(compose(&draft)?)
}

/// What is in the mailboxes when the demo starts for the first time.
fn initial_mail(emu: &RunningEmulator, dir: &Path) -> anyhow::Result<()> {
    for n in [40117, 40118] {
        let m = order_message(
            dir,
            "order@leverantor.example",
            d::M2M_MAILBOX,
            n,
            &format!("Order {n}"),
        )?;
        emu.put_mail(d::M2M_MAILBOX, None, m.raw)?;
    }
    // A reply to the machine mailbox carries no business document: it is quarantined with the
    // reason, which the admin sees on the quarantine page.
    emu.put_mail(
        d::M2M_MAILBOX,
        None,
        plain_message(
            "inkop@leverantor.example",
            d::M2M_MAILBOX,
            "SV: Order 40117",
            "Tack, vi har tagit emot ordern!",
        )?
        .raw,
    )?;
    emu.put_mail(
        d::USER,
        None,
        plain_message(
            CUSTOMER,
            d::USER,
            "Fråga om leveransdatum",
            "Hej Anna! När kan ni leverera order 40117? /Kunden",
        )?
        .raw,
    )?;
    Ok(())
}

/// Queues a message the demo built as `user`, through the one submission path (the sender is
/// checked, the running service's workers are woken).
async fn queue(
    submitter: &Submitter,
    user: &str,
    composed: kurir_outbox::compose::Composed,
) -> anyhow::Result<i64> {
    let queued = submitter
        .queue(Submission {
            send_as: SendAs::User(user.to_owned()),
            origin: "demo".into(),
            transport: kurir_outbox::ExchangeTransport::Auto,
            queue_if_sender_cannot_send: false,
            messages: vec![Content::Mime {
                raw: composed.raw,
                envelope: Some(composed.recipients),
            }],
        })
        .await?;
    Ok(queued.ids[0])
}

/// Mail that keeps the demo alive: an order arrives, the webshop confirms one, ANNA orders.
pub async fn traffic(
    submitter: Submitter,
    emu: Arc<RunningEmulator>,
    dir: PathBuf,
    every: Duration,
) {
    let mut n: u32 = 50_000 + (rand::random::<u32>() % 40_000);
    loop {
        tokio::time::sleep(every).await;
        n += 1;
        let result: anyhow::Result<()> = async {
            match n % 3 {
                0 => {
                    let m = order_message(
                        &dir,
                        "order@leverantor.example",
                        d::M2M_MAILBOX,
                        n,
                        &format!("Order {n}"),
                    )?;
                    emu.put_mail(d::M2M_MAILBOX, None, m.raw)?;
                }
                1 => {
                    let subject = format!("Orderbekräftelse {n}");
                    let composed = plain_message(
                        d::USER2,
                        CUSTOMER,
                        &subject,
                        &format!("Tack för din beställning i webbshoppen! Ordernummer {n}."),
                    )?;
                    queue(&submitter, "WEBSHOP", composed).await?;
                }
                _ => {
                    let subject = format!("Inköpsorder {n}");
                    let m = order_message(&dir, d::USER, d::M2M_MAILBOX, n, &subject)?;
                    queue(&submitter, "ANNA", m).await?;
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %format!("{e:#}"), "demo traffic");
        }
    }
}

/// How one step of the round trip went, for the caller to show.
pub enum StepOutcome<'a> {
    Ok {
        name: &'a str,
        took: Duration,
    },
    Failed {
        name: &'a str,
        error: &'a anyhow::Error,
    },
    TimedOut {
        name: &'a str,
    },
}

/// Polls `probe` until it gives a value, fails, or `deadline` passes; tells `report` which.
async fn step<T>(
    name: &str,
    deadline: Instant,
    report: &mut dyn FnMut(StepOutcome<'_>),
    mut probe: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let t = Instant::now();
    loop {
        match probe().await {
            Ok(Some(v)) => {
                report(StepOutcome::Ok {
                    name,
                    took: t.elapsed(),
                });
                return Ok(v);
            }
            Ok(None) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Ok(None) => {
                report(StepOutcome::TimedOut { name });
                anyhow::bail!("{name}: timed out");
            }
            Err(error) => {
                report(StepOutcome::Failed {
                    name,
                    error: &error,
                });
                return Err(error);
            }
        }
    }
}

/// `kurir demo --check`'s round trip on a started demo; each step is told to `report` as it ends.
pub async fn round_trip(
    demo: &Demo,
    dir: &Path,
    timeout: Duration,
    report: &mut dyn FnMut(StepOutcome<'_>),
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let store = &demo.store;
    let http = reqwest::Client::new();
    let web = format!("http://{}", demo.service.web_addr);
    step("web UI answers /healthz", deadline, report, async || {
        let r = http.get(format!("{web}/healthz")).send().await?;
        Ok(r.status().is_success().then_some(()))
    })
    .await?;
    let snap = store.snapshot().await?;
    let problems: Vec<String> = snap
        .validate_all(time::OffsetDateTime::now_utc().date())
        .into_iter()
        .filter(|p| p.severity == kurir_settings::Severity::Error)
        .map(|p| p.to_string())
        .collect();
    step(
        "the seed's settings are complete and valid",
        deadline,
        report,
        async || {
            if problems.is_empty() {
                Ok(Some(()))
            } else {
                anyhow::bail!("{}", problems.join("; "))
            }
        },
    )
    .await?;
    // WEBSHOP (username/password flow, Graph sendMail) sends an order to the M2M mailbox.
    let number = 70_000 + rand::random::<u32>() % 10_000;
    let subject = format!("Demo check order {number}");
    let composed = order_message(dir, d::USER2, d::M2M_MAILBOX, number, &subject)?;
    let id = queue(&demo.service.submitter(), "WEBSHOP", composed).await?;
    step(
        "WEBSHOP's message sent through Graph sendMail",
        deadline,
        report,
        async || {
            let m = store
                .outbox_get(id)
                .await?
                .context("the queued message vanished")?;
            match m.state {
                OutgoingState::Sent => Ok(Some(())),
                OutgoingState::Failed | OutgoingState::Cancelled => {
                    anyhow::bail!("{}", m.last_error.unwrap_or_default())
                }
                _ => Ok(None),
            }
        },
    )
    .await?;
    let stored = step(
        "taken in by the Monitor-to-Monitor account (stored once)",
        deadline,
        report,
        async || {
            let list = store
                .list_messages(&MessageFilter {
                    account: Some(M2M_ACCOUNT.into()),
                    ..MessageFilter::default()
                })
                .await?;
            let hits: Vec<_> = list
                .into_iter()
                .filter(|m| m.subject.as_deref() == Some(subject.as_str()))
                .collect();
            match hits.len() {
                0 => Ok(None),
                1 => Ok(Some(hits.into_iter().next().expect("one"))),
                n => anyhow::bail!("stored {n} times"),
            }
        },
    )
    .await?;
    step(
        "XML order and PDF in the ERP's import queue",
        deadline,
        report,
        async || {
            let imports = store.list_imports(Some(M2M_ACCOUNT)).await?;
            let mine: Vec<_> = imports.iter().filter(|i| i.message == stored.id).collect();
            let xml = mine.iter().any(|i| i.kind == "xml" && i.state == "ready");
            let pdf = mine.iter().any(|i| i.kind == "pdf" && i.state == "ready");
            Ok((xml && pdf).then_some(()))
        },
    )
    .await?;
    step(
        "moved to the Processed folder on the server",
        deadline,
        report,
        async || {
            let pending = store
                .count_messages(M2M_ACCOUNT)
                .await?
                .pending_server_steps;
            Ok((pending == 0).then_some(()))
        },
    )
    .await?;
    step(
        "the first demo mail was taken in too",
        deadline,
        report,
        async || {
            let c = store.count_messages(M2M_ACCOUNT).await?;
            let g = store.count_messages(GENERAL_ACCOUNT).await?;
            // Two orders + this check's stored; the reply without XML quarantined.
            Ok((c.stored >= 3 && c.quarantined >= 1 && g.stored >= 1).then_some(()))
        },
    )
    .await?;
    // /metrics needs an API key (it names accounts and users): the check makes one, as a
    // Prometheus scraper's operator would with `kurir admin api-key create`.
    let key = store
        .create_api_key("demo-check")
        .await?
        .context("the demo check's API key exists already")?;
    step(
        "/metrics counts the messages",
        deadline,
        report,
        async || {
            use secrecy::ExposeSecret;
            let text = http
                .get(format!("{web}/metrics"))
                .bearer_auth(key.token.expose_secret())
                .send()
                .await?
                .text()
                .await?;
            Ok(text
                .lines()
                .any(|l| l.starts_with("kurir_messages_in_total{account=\"Monitor-to-Monitor\"}"))
                .then_some(()))
        },
    )
    .await?;
    Ok(())
}
