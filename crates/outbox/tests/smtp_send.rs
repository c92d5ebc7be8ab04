//! Sending through the real Postfix/Dovecot stack with SMTP XOAUTH2 (tokens from the in-process
//! Entra emulator): per-user senders (ANNA app-only, WEBSHOP delegated through the webshop's
//! "according to user settings"), a permanent Entra error kept with its explanation, and an
//! Entra outage that loses nothing. Mail is read back over IMAP.

mod common;

use std::time::Duration;

use common::*;
use kurir_emulator::demo;
use kurir_outbox::{Draft, Outbox, OutboxConfig, compose, sender};
use kurir_settings::Scope;
use kurir_store::outbox::{NewOutgoing, OutgoingState};
use kurir_store::{Change, NewValue, OutboxStore, Store};
use secrecy::SecretString;
use tokio::sync::watch;

fn config() -> OutboxConfig {
    OutboxConfig {
        rate_per_minute: None,
        backoff_initial: Duration::from_millis(500),
        backoff_max: Duration::from_secs(2),
        idle_poll: Duration::from_millis(100),
        token: fast_token_config(),
        ..OutboxConfig::default()
    }
}

async fn queue(env: &Env, user: &str, from: &str, to: &str, subject: &str) -> i64 {
    let c = compose(&Draft {
        from: from.into(),
        to: vec![to.into()],
        subject: subject.into(),
        text: Some(format!("Body of {subject}\r\n")),
        ..Draft::default()
    })
    .unwrap();
    env.store
        .enqueue(NewOutgoing {
            sender_user: user.into(),
            origin: "test".into(),
            from: Some(from.into()),
            recipients: c.recipients,
            subject: Some(subject.into()),
            message_id: Some(c.message_id),
            raw: c.raw,
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_the_webshop_send_by_smtp_xoauth2_and_the_mail_arrives() {
    let env = env().await;
    let rcpt = fresh_mailbox("smtp");
    let snap = env.store.snapshot().await.unwrap();
    let webshop = sender::webshop_sender(&snap);
    assert_eq!(
        webshop, "WEBSHOP",
        "according to user settings = as WEBSHOP"
    );

    let before = env.emu.token_requests();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(queue(&env, "ANNA", ANNA, &rcpt, &format!("anna {i}")).await);
    }
    ids.push(queue(&env, &webshop, demo::USER, &rcpt, "webshop order 4711").await);

    let outbox = Outbox::new(env.store.clone(), config());
    let (_tx, rx) = watch::channel(false);
    let stats = outbox.run(rx, true).await.unwrap();
    assert_eq!(stats.sent, 4, "{stats:?}");

    for id in &ids {
        let m = env.store.outbox_get(*id).await.unwrap().unwrap();
        assert_eq!(m.state, OutgoingState::Sent, "{m:?}");
        assert_eq!(m.via.as_deref(), Some("smtp-xoauth2"));
        assert!(
            m.server_reply.as_deref().unwrap_or("").starts_with("250"),
            "{m:?}"
        );
    }
    // One token per (client, scope): ANNA's app-only token is cached and shared by her three
    // messages; WEBSHOP's delegated sign-in is a second request.
    // (Counted before the IMAP read-back, which fetches its own token.)
    let requests = env.emu.token_requests() - before;
    assert_eq!(requests, 2, "token requests during the run");
    let got = wait_for_count(&env.emu, &rcpt, 4, Duration::from_secs(20)).await;
    for s in ["anna 0", "anna 1", "anna 2", "webshop order 4711"] {
        assert_eq!(got.get(s), Some(&1), "{s} arrived once: {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_fails_for_good_with_the_explanation() {
    let env = env().await;
    env.store.add_user("BADSECRET").await.unwrap();
    env.store
        .apply(
            &Scope::User("BADSECRET".into()),
            vec![
                Change::Set(
                    "email".into(),
                    NewValue::Plain(format!("bad@{}", demo::TENANT_DOMAIN)),
                ),
                // The secret's ID pasted instead of its value: AADSTS7000215.
                Change::Set(
                    "client_secret".into(),
                    NewValue::Secret(SecretString::from(demo::CLIENT_SECRET_ID.to_owned())),
                ),
            ],
        )
        .await
        .unwrap();
    let rcpt = fresh_mailbox("bad");
    let id = queue(
        &env,
        "BADSECRET",
        &format!("bad@{}", demo::TENANT_DOMAIN),
        &rcpt,
        "never",
    )
    .await;
    let outbox = Outbox::new(env.store.clone(), config());
    let (_tx, rx) = watch::channel(false);
    let stats = outbox.run(rx, true).await.unwrap();
    assert_eq!(stats.failed, 1, "{stats:?}");
    let m = env.store.outbox_get(id).await.unwrap().unwrap();
    assert_eq!(m.state, OutgoingState::Failed);
    assert_eq!(m.attempts, 1, "a permanent error is not retried");
    let err = m.last_error.unwrap();
    assert!(err.contains("AADSTS7000215"), "{err}");
    assert!(
        err.contains("What to do"),
        "the explanation says what to do: {err}"
    );
    assert!(
        !err.contains(demo::CLIENT_SECRET_ID),
        "no secret in the error: {err}"
    );
}

/// The token endpoint answers 503 for 60 seconds (emulator fault injection), as in the issue:
/// nothing may fail for good or be lost meanwhile, and afterwards everything goes out exactly
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entra_outage_loses_nothing_and_everything_goes_out_afterwards() {
    let env = env().await;
    let rcpt = fresh_mailbox("outage");
    let n = 20;
    for i in 0..n {
        queue(&env, "ANNA", ANNA, &rcpt, &format!("outage {i}")).await;
    }
    env.emu.faults().fail_next(1_000_000);
    let outbox = Outbox::new(env.store.clone(), config());
    let (tx, rx) = watch::channel(false);
    let run = {
        let outbox = outbox.clone();
        tokio::spawn(async move { outbox.run(rx, true).await })
    };
    let outage = Duration::from_secs(60);
    let outage_started = std::time::Instant::now();
    tokio::time::sleep(outage).await;
    let during = env.store.outbox_counts().await.unwrap();
    assert_eq!(
        during.get("sent"),
        None,
        "nothing can be sent without a token: {during:?}"
    );
    assert_eq!(
        during.get("failed"),
        None,
        "an outage is not permanent: {during:?}"
    );
    env.emu.faults().fail_next(0);
    env.emu.faults().reset();
    let stats = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the queue drains after the outage")
        .unwrap()
        .unwrap();
    drop(tx);
    assert_eq!(stats.sent, n, "{stats:?}");
    assert!(stats.retried > 0, "the outage was noticed: {stats:?}");
    wait_for_count(&env.emu, &rcpt, n as u32, Duration::from_secs(20)).await;
    // A little longer, so that a late duplicate would be counted too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = inbox_subjects(&env.emu, &rcpt).await;
    let total: u32 = got.values().sum();
    eprintln!(
        "[outage] token endpoint 503 for {:.0} s; {n} queued, {} sent, {} retries, {total} delivered, drained {:.1} s after the outage",
        outage.as_secs_f64(),
        stats.sent,
        stats.retried,
        outage_started.elapsed().as_secs_f64() - outage.as_secs_f64()
    );
    for i in 0..n {
        assert_eq!(
            got.get(&format!("outage {i}")),
            Some(&1),
            "each message delivered exactly once: {got:?}"
        );
    }
    assert_eq!(total, n as u32, "nothing else delivered: {got:?}");
}
