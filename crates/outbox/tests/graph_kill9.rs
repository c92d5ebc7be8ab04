//! Crash safety on the Graph route (issue 12.6): durably queued messages, the real `kurir
//! outbox run` killed with SIGKILL at random moments mid-batch and restarted until the queue is
//! empty, at the default concurrency. The emulator runs in this test process, so it survives
//! the kills; deliveries are counted in the recipient's Inbox over Graph.
//!
//! - With saveToSentItems on, a retry of a message whose outcome is unknown first looks it up
//!   in Sent Items by its Message-ID: 0 duplicates.
//! - With it off there is nothing to look up; the final Graph request is gated one message at
//!   a time until its outcome is recorded: at most 1 duplicate per kill.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{graph_reader, kurir_binary};
use kurir_emulator::demo;
use kurir_graph::MessageQuery;
use kurir_outbox::{Draft, compose};
use kurir_store::OutboxStore;
use kurir_store::outbox::NewOutgoing;
use rand::Rng;
use secrecy::ExposeSecret;

const N: usize = 400;
const KILLS: u32 = 5;
const SENDER: &str = demo::USER;
const RCPT: &str = demo::USER2;

/// Kills `kurir outbox run` KILLS times mid-batch, lets it finish, and returns
/// (duplicates, missing) among the N messages.
async fn sigkill_graph_batch(save_to_sent_items: bool) -> (i64, usize, u32) {
    let bin = tokio::task::block_in_place(kurir_binary);
    let common::GraphEnv {
        data,
        emu,
        store,
        tmp: _tmp,
    } = common::graph_env().await;
    let tag = format!(
        "gk9-{}-{}",
        if save_to_sent_items {
            "saved"
        } else {
            "unsaved"
        },
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let mut batch = Vec::new();
    for i in 0..N {
        let subject = format!("{tag} #{i}");
        let c = compose(&Draft {
            from: SENDER.into(),
            to: vec![RCPT.into()],
            subject: subject.clone(),
            text: Some(format!("message {i}\r\n")),
            ..Draft::default()
        })
        .unwrap();
        batch.push(NewOutgoing {
            sender_user: "ADELE".into(),
            origin: "test".into(),
            from: Some(SENDER.into()),
            recipients: c.recipients,
            subject: Some(subject),
            message_id: Some(c.message_id),
            raw: c.raw,
        });
    }
    store.enqueue_many(batch).await.unwrap();
    // Each Graph request held a little, so that kills land while sends are in flight.
    emu.graph_faults().set_latency(Duration::from_millis(15));

    let started = Instant::now();
    let mut kills = 0u32;
    let mut runs = 0u32;
    loop {
        let counts = store.outbox_counts().await.unwrap();
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
        let mut args = vec![
            "outbox",
            "run",
            "--until-empty",
            "--rate-per-minute",
            "0",
            "--lease-secs",
            "3",
            "--via",
            "graph",
        ];
        if !save_to_sent_items {
            args.push("--no-save-to-sent-items");
        }
        let mut child = tokio::process::Command::new(&bin)
            .args(&args)
            .env_remove("KURIR_OUTBOX_CONCURRENCY")
            .env("KURIR_DATA_DIR", &data)
            .env("KURIR_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kurir starts");
        if kills < KILLS {
            let after = Duration::from_millis(rand::rng().random_range(400..2000));
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

    let (graph, token) = graph_reader(&emu).await;
    let list = graph
        .list_messages(
            token.expose_secret(),
            RCPT,
            "inbox",
            &MessageQuery {
                select: vec!["subject".into()],
                top: Some(1000),
                ..MessageQuery::default()
            },
        )
        .await
        .expect("listing the Inbox");
    let mut got = std::collections::BTreeMap::<String, u32>::new();
    for m in list {
        *got.entry(m.subject.unwrap_or_default()).or_insert(0) += 1;
    }
    let total: u32 = got.values().sum();
    let missing = (0..N)
        .filter(|i| !got.contains_key(&format!("{tag} #{i}")))
        .count();
    let duplicates = total as i64 - (N - missing) as i64;
    eprintln!(
        "[graph kill9] saveToSentItems={save_to_sent_items}: {N} messages, {runs} runs, {kills} SIGKILLs, {total} delivered, {missing} missing, {duplicates} duplicates, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!(counts.get("sent").copied(), Some(N as u64), "{counts:?}");
    emu.shutdown().await;
    (duplicates, missing, kills)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_sigkill_with_sent_items_copy_sends_no_duplicates() {
    let (duplicates, missing, kills) = sigkill_graph_batch(true).await;
    assert_eq!(missing, 0, "messages lost");
    assert!(kills > 0, "the run was killed at least once");
    assert_eq!(duplicates, 0, "{duplicates} duplicates for {kills} kills");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_sigkill_without_sent_items_copy_duplicates_at_most_one_per_kill() {
    let (duplicates, missing, kills) = sigkill_graph_batch(false).await;
    assert_eq!(missing, 0, "messages lost");
    assert!(kills > 0, "the run was killed at least once");
    assert!(
        duplicates <= kills as i64,
        "{duplicates} duplicates for {kills} kills"
    );
}
