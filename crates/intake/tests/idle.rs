//! IMAP IDLE against the real Dovecot stack with short-lived tokens from the emulator: the idle
//! ends (and the next pass signs in with a new token) before the token expires, and a message
//! that arrives while idling is taken in at once.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kurir_intake::pipeline::Quiet;
use kurir_intake::transport::Mechanism;

/// Far shorter than Entra's hour, so the test sees several lifetimes.
const TOKEN_LIFETIME: Duration = Duration::from_secs(12);

#[tokio::test(flavor = "multi_thread")]
async fn idle_re_authenticates_before_the_token_expires_and_wakes_for_new_mail() {
    let env = env().await;
    env.emu.faults().set_token_lifetime(TOKEN_LIFETIME);
    let mailbox = fresh_mailbox("idle");
    let data = tempfile::tempdir().unwrap();
    let spec = env.spec("Idle", "general", &mailbox, true, Mechanism::XOAuth2);
    let store = open_store(data.path()).await;
    let intake = spec.intake(data.path().to_owned(), store.clone());
    let mut transport = spec.transport(env.app_tokens(&mailbox)).unwrap();

    // Signed in, nothing there yet. (The token is obtained after this instant.)
    let signed_in = Instant::now();
    let first = intake.pass(transport.as_mut(), &mut Quiet).await.unwrap();
    assert_eq!(first.listed, 0);
    let tokens_at_start = env.emu.token_requests();

    // Nothing arrives: asked to wait a minute, the idle still ends before the 12 s token
    // expires (a tenth of its life before), instead of holding a session whose token is dead.
    let t = Instant::now();
    transport
        .wait_for_mail(Duration::from_secs(60))
        .await
        .unwrap();
    let idled = t.elapsed();
    assert!(
        signed_in.elapsed() < TOKEN_LIFETIME,
        "the idle ended {:?} after sign-in, past the token's {TOKEN_LIFETIME:?}",
        signed_in.elapsed()
    );
    assert!(
        idled >= Duration::from_secs(5),
        "the idle ended after only {idled:?} although the token had most of its life left"
    );

    // The next pass signs in again, with a new token.
    let again = intake.pass(transport.as_mut(), &mut Quiet).await.unwrap();
    assert_eq!(again.listed, 0);
    assert!(
        env.emu.token_requests() > tokens_at_start,
        "a new token was requested for the new session ({} before, {} now)",
        tokens_at_start,
        env.emu.token_requests()
    );

    // A message arriving during the idle wakes it at once and is taken in.
    let rcpt = mailbox.clone();
    let delivery = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        deliver(&rcpt, &[plain_message(1, "idle", 500)]).await;
        Instant::now()
    });
    transport
        .wait_for_mail(Duration::from_secs(60))
        .await
        .unwrap();
    let woke = Instant::now();
    let delivered = delivery.await.unwrap();
    let summary = intake.pass(transport.as_mut(), &mut Quiet).await.unwrap();
    let taken = Instant::now();
    assert_eq!(summary.stored, 1, "{summary:?}");
    assert!(
        woke.saturating_duration_since(delivered) < Duration::from_secs(2),
        "IDLE woke {:?} after the delivery",
        woke.saturating_duration_since(delivered)
    );
    eprintln!(
        "idle without mail ended after {idled:?} (token lifetime {TOKEN_LIFETIME:?}); new mail woke it {:?} after delivery and was stored {:?} after delivery",
        woke.saturating_duration_since(delivered),
        taken.saturating_duration_since(delivered)
    );
    assert_eq!(count(&mailbox, "INBOX"), 0);
    assert_eq!(count(&mailbox, "Processed"), 1);
    transport.close().await;
}
