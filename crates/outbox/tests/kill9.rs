//! Crash safety: 2,000 durably queued messages, the real `kurir outbox run` killed with SIGKILL
//! at random moments and restarted until the queue is empty. Every message must arrive (counted
//! in the mailbox over IMAP). A duplicate happens only for a message the server accepted just
//! before a kill but whose "sent" had not been recorded yet. The worker records each outcome
//! the moment the server accepts (a cheap, not fsync'd commit on its own connection), so that
//! window is a fraction of a millisecond per message, and even at the DEFAULT concurrency (8
//! messages in flight) duplicates stay ≤ kills. (Before: fsync'd outcome commits contending
//! for SQLite's write lock gave 37 duplicates for 5 kills at concurrency 8.)

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use kurir_outbox::{Draft, compose};
use kurir_store::OutboxStore;
use kurir_store::outbox::NewOutgoing;
use rand::Rng;

const N: usize = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_sending_loses_nothing() {
    let env = env().await;
    let bin = tokio::task::block_in_place(kurir_binary);
    let rcpt = fresh_mailbox("kill9");
    let tag = &rcpt[6..16];

    // Queue in batches of 100 per durable commit.
    let mut batch = Vec::new();
    for i in 0..N {
        let subject = format!("kill9 {tag} #{i}");
        let c = compose(&Draft {
            from: ANNA.into(),
            to: vec![rcpt.clone()],
            subject: subject.clone(),
            text: Some(format!("message {i}\r\n")),
            ..Draft::default()
        })
        .unwrap();
        batch.push(NewOutgoing {
            sender_user: "ANNA".into(),
            origin: "test".into(),
            from: Some(ANNA.into()),
            recipients: c.recipients,
            subject: Some(subject),
            message_id: Some(c.message_id),
            raw: c.raw,
        });
        if batch.len() == 100 {
            env.store
                .enqueue_many(std::mem::take(&mut batch))
                .await
                .unwrap();
        }
    }

    let started = Instant::now();
    let mut kills = 0u32;
    let mut runs = 0u32;
    loop {
        let counts = env.store.outbox_counts().await.unwrap();
        let open = counts.get("queued").copied().unwrap_or(0)
            + counts.get("sending").copied().unwrap_or(0);
        if open == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the queue did not drain in 10 minutes: {counts:?}"
        );
        runs += 1;
        let mut child = tokio::process::Command::new(&bin)
            .args([
                "outbox",
                "run",
                "--until-empty",
                "--rate-per-minute",
                "0",
                "--lease-secs",
                "3",
            ])
            // The default concurrency: not overridden by the environment either.
            .env_remove("KURIR_OUTBOX_CONCURRENCY")
            .env("KURIR_DATA_DIR", &env.data_dir)
            .env("KURIR_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kurir starts");
        // The first five runs are killed at a random moment; then it may finish.
        if kills < 5 {
            let after = Duration::from_millis(rand::rng().random_range(300..2500));
            tokio::select! {
                _ = tokio::time::sleep(after) => {
                    child.kill().await.expect("SIGKILL");
                    kills += 1;
                }
                _ = child.wait() => {}
            }
        } else {
            let status = child.wait().await.unwrap();
            assert!(status.success(), "kurir outbox run exited with {status}");
        }
    }

    let got = wait_for_count(&env.emu, &rcpt, N as u32, Duration::from_secs(60)).await;
    let total: u32 = got.values().sum();
    let missing: Vec<usize> = (0..N)
        .filter(|i| !got.contains_key(&format!("kill9 {tag} #{i}")))
        .collect();
    let duplicates = total as i64 - (N - missing.len()) as i64;
    eprintln!(
        "[kill9] default concurrency: {N} queued, {runs} runs, {kills} SIGKILLs, {total} delivered, {} missing, {duplicates} duplicates, {:.1} s",
        missing.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(missing.is_empty(), "messages lost: {missing:?}");
    assert!(
        duplicates <= kills as i64,
        "{duplicates} duplicates for {kills} kills"
    );
    let counts = env.store.outbox_counts().await.unwrap();
    assert_eq!(counts.get("sent").copied(), Some(N as u64), "{counts:?}");
}
