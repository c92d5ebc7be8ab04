//! The SMTP submission listener as the webshop uses it: Python's smtplib and lettre connect,
//! STARTTLS (trusting the listener's generated CA), AUTH with a local login, and the messages
//! are queued durably, then sent as Kurir user WEBSHOP by SMTP XOAUTH2 through the real
//! Postfix/Dovecot stack and read back over IMAP.

mod common;

use std::time::Duration;

use common::*;
use kurir_outbox::listener::{self, ListenerConfig, ListenerTls};
use kurir_outbox::{Outbox, OutboxConfig};
use kurir_store::outbox::{OutboxFilter, OutgoingState};
use kurir_store::{OutboxStore, Store};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::SecretString;
use tokio::sync::watch;

const PASSWORD: &str = "webshop-listener-pw-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtplib_and_lettre_submit_through_the_listener_and_the_mail_arrives() {
    let env = env().await;
    env.store
        .set_listener_user("WEBSHOP", "WEBSHOP", &SecretString::from(PASSWORD))
        .await
        .unwrap();
    let tls_dir = env.data_dir.join("listener-tls");
    let cfg = ListenerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: ListenerTls::Generated { dir: tls_dir },
        auth_without_tls: false,
        ..ListenerConfig::loopback(&env.data_dir)
    };
    let bound = listener::bind(&cfg).await.expect("the listener binds");
    let port = bound.local_addr.port();
    let ca_path = bound.ca_path.clone().expect("a generated CA");
    let outbox = Outbox::new(
        env.store.clone(),
        OutboxConfig {
            rate_per_minute: None,
            idle_poll: Duration::from_millis(100),
            token: fast_token_config(),
            ..OutboxConfig::default()
        },
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = tokio::spawn(listener::serve(bound, outbox.clone(), cfg, stop_rx.clone()));
    let worker = {
        let outbox = outbox.clone();
        tokio::spawn(async move { outbox.run(stop_rx, false).await })
    };
    let rcpt = fresh_mailbox("listener");

    // Python's smtplib, as a legacy PHP/Python webshop would: STARTTLS, LOGIN, two messages on
    // one connection; and a wrong password, which must get 535.
    let script = r#"
import smtplib, ssl, sys
port, ca, pw, rcpt = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
s = smtplib.SMTP("127.0.0.1", port, timeout=30)
s.starttls(context=ctx)
try:
    s.login("WEBSHOP", "wrong-password-123")
    print("WRONG PASSWORD ACCEPTED"); sys.exit(1)
except smtplib.SMTPAuthenticationError as e:
    assert e.smtp_code == 535, e
s.quit()
s = smtplib.SMTP("127.0.0.1", port, timeout=30)
s.starttls(context=ctx)
s.login("WEBSHOP", pw)
for i in range(2):
    msg = f"From: shop@example.com\r\nTo: {rcpt}\r\nSubject: smtplib order {i}\r\n\r\nThanks for your order {i}.\r\n"
    refused = s.sendmail("shop@example.com", [rcpt], msg)
    assert not refused, refused
s.quit()
print("ok")
"#;
    let out = tokio::process::Command::new("python3")
        .args([
            "-c",
            script,
            &port.to_string(),
            ca_path.to_str().unwrap(),
            PASSWORD,
            &rcpt,
        ])
        .output()
        .await
        .expect("python3 runs (install Python 3)");
    assert!(
        out.status.success(),
        "smtplib against the listener failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // lettre with STARTTLS and AUTH PLAIN.
    let ca = std::fs::read(&ca_path).unwrap();
    let tls = TlsParameters::builder("localhost".into())
        .add_root_certificate(Certificate::from_pem(&ca).unwrap())
        .build_rustls()
        .unwrap();
    let client = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("localhost")
        .port(port)
        .tls(Tls::Required(tls))
        .credentials(Credentials::new("WEBSHOP".into(), PASSWORD.into()))
        .authentication(vec![Mechanism::Plain])
        .build();
    let msg = Message::builder()
        .from("shop@example.com".parse::<Mailbox>().unwrap())
        .to(rcpt.parse::<Mailbox>().unwrap())
        .subject("lettre order 7")
        .body("Thanks.\r\n.leading dot line\r\n".to_owned())
        .unwrap();
    let resp = client
        .send(msg)
        .await
        .expect("lettre submits to the listener");
    assert!(
        resp.message().any(|l| l.contains("queued as")),
        "250 only after queueing: {resp:?}"
    );

    let got = wait_for_count(&env.emu, &rcpt, 3, Duration::from_secs(30)).await;
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = worker.await;
    for s in ["smtplib order 0", "smtplib order 1", "lettre order 7"] {
        assert_eq!(got.get(s), Some(&1), "{s} arrived once: {got:?}");
    }
    let queued = env
        .store
        .outbox_list(&OutboxFilter::default())
        .await
        .unwrap();
    assert_eq!(queued.len(), 3);
    for m in queued {
        assert_eq!(m.sender_user, "WEBSHOP");
        assert_eq!(m.origin, "listener:WEBSHOP");
        assert_eq!(m.state, OutgoingState::Sent, "{m:?}");
        assert_eq!(m.recipients, vec![rcpt.clone()]);
    }
}

/// Issue 12.4: on the Graph route (the default) the SMTP envelope decides who receives, not the
/// MIME headers. The webshop submits with `RCPT TO` Megan (not in the header) and Adele (in
/// To), while the header also names the M2M mailbox in Cc (not in the envelope): Megan and
/// Adele receive it, the M2M mailbox gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_send_through_listener_delivers_to_envelope_not_headers() {
    let env = env().await;
    env.store
        .apply(
            &kurir_settings::Scope::System,
            vec![kurir_store::Change::Set(
                "graph_endpoint".into(),
                kurir_store::NewValue::Plain(env.emu.base_url()),
            )],
        )
        .await
        .unwrap();
    env.store
        .set_listener_user("WEBSHOP", "WEBSHOP", &SecretString::from(PASSWORD))
        .await
        .unwrap();
    let cfg = ListenerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: ListenerTls::Generated {
            dir: env.data_dir.join("listener-tls"),
        },
        auth_without_tls: false,
        ..ListenerConfig::loopback(&env.data_dir)
    };
    let bound = listener::bind(&cfg).await.expect("the listener binds");
    let port = bound.local_addr.port();
    let ca_path = bound.ca_path.clone().expect("a generated CA");
    let outbox = Outbox::new(
        env.store.clone(),
        OutboxConfig {
            rate_per_minute: None,
            idle_poll: Duration::from_millis(100),
            token: fast_token_config(),
            exchange_transport: kurir_outbox::ExchangeTransport::Graph,
            ..OutboxConfig::default()
        },
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = tokio::spawn(listener::serve(bound, outbox.clone(), cfg, stop_rx.clone()));
    let worker = {
        let outbox = outbox.clone();
        tokio::spawn(async move { outbox.run(stop_rx, false).await })
    };

    use kurir_emulator::demo;
    let subject = format!(
        "envelope {}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let header_only = demo::M2M_MAILBOX;
    let script = r#"
import smtplib, ssl, sys
port, ca, pw, subject, to, cc, envelope = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7].split(",")
ctx = ssl.create_default_context(cafile=ca)
s = smtplib.SMTP("127.0.0.1", port, timeout=30)
s.starttls(context=ctx)
s.login("WEBSHOP", pw)
msg = f"From: {to}\r\nTo: Adele <{to}>\r\nCc: {cc}\r\nSubject: {subject}\r\n\r\nOnly the envelope counts.\r\n"
refused = s.sendmail(to, envelope, msg)
assert not refused, refused
s.quit()
print("ok")
"#;
    let envelope = format!("{},{}", demo::USER2, demo::USER);
    let out = tokio::process::Command::new("python3")
        .args([
            "-c",
            script,
            &port.to_string(),
            ca_path.to_str().unwrap(),
            PASSWORD,
            &subject,
            demo::USER,
            header_only,
            &envelope,
        ])
        .output()
        .await
        .expect("python3 runs (install Python 3)");
    assert!(
        out.status.success(),
        "smtplib against the listener failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Wait until the outbox says sent.
    let started = std::time::Instant::now();
    let row = loop {
        let rows = env
            .store
            .outbox_list(&OutboxFilter::default())
            .await
            .unwrap();
        let row = rows
            .into_iter()
            .find(|m| m.subject.as_deref() == Some(subject.as_str()))
            .expect("the message was queued");
        if row.state == OutgoingState::Sent || row.state == OutgoingState::Failed {
            break row;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not sent: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = worker.await;
    assert_eq!(row.state, OutgoingState::Sent, "{row:?}");
    assert_eq!(row.via.as_deref(), Some("graph"), "{row:?}");
    assert_eq!(
        row.recipients,
        vec![demo::USER2.to_owned(), demo::USER.to_owned()]
    );

    let megan = graph_subjects(&env.emu, demo::USER2, "inbox").await;
    assert_eq!(
        megan.get(&subject),
        Some(&1),
        "the envelope-only recipient received it once: {megan:?}"
    );
    let adele = graph_subjects(&env.emu, demo::USER, "inbox").await;
    assert_eq!(
        adele.get(&subject),
        Some(&1),
        "the To recipient in the envelope: {adele:?}"
    );
    let m2m = graph_subjects(&env.emu, header_only, "inbox").await;
    assert_eq!(
        m2m.get(&subject),
        None,
        "an address only in the header received nothing: {m2m:?}"
    );
}
