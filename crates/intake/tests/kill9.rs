//! Crash safety of the real `kurir fetch` binary: it is killed with SIGKILL at random moments
//! while taking in a mailbox of 2,000 messages from the real Dovecot stack, and restarted until a
//! run completes. Afterwards: 2,000 messages stored, no duplicates, none left in the source
//! folder, and the processed folder holds exactly the 2,000.

mod common;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use kurir_store::MessageStore;
use kurir_store::messages::MessageFilter;

const MESSAGES: usize = 2000;

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_points_then_every_message_is_stored_exactly_once() {
    let env = env().await;
    let bin = tokio::task::block_in_place(kurir_bin);
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let mailbox = fresh_mailbox("kill9");

    ok(
        &bin,
        d,
        &[
            "settings",
            "set",
            "method=exchange-online",
            &format!("client_id={}", kurir_emulator::demo::CLIENT_ID),
            &format!("tenant_id={}", kurir_emulator::demo::TENANT_ID),
            "auth_flow=client-secret",
            // The emulator and the local IMAP server are not Microsoft's cloud.
            "allow_custom_endpoints=true",
            &format!("authority={}", env.emu.base_url()),
            &format!("ca_file={}", env.ca_bundle.display()),
        ],
    );
    ok(
        &bin,
        d,
        &[
            "settings",
            "set",
            "--secret-env",
            "client_secret=KURIR_TEST_SECRET",
        ],
    );
    ok(
        &bin,
        d,
        &[
            "accounts",
            "add",
            "Kill9",
            "--type",
            "general",
            "--mailbox",
            &mailbox,
            "--protocol",
            "imap",
            &format!("imap_host={HOST}"),
            &format!("imap_port={IMAPS_PORT}"),
        ],
    );

    let msgs: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|i| plain_message(i, "kill9", 200 + (i * 7919) % 12000))
        .collect();
    let t = Instant::now();
    deliver(&mailbox, &msgs).await;
    eprintln!(
        "seeded {MESSAGES} messages over LMTP in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(count(&mailbox, "INBOX"), MESSAGES as u64);

    // Small batches make more commit/move boundaries for the kills to land between.
    let mut kills = 0;
    let mut runs = 0;
    let mut finished = false;
    while !finished {
        runs += 1;
        assert!(runs < 200, "kurir fetch never finished");
        let mut child = kurir(&bin, d)
            .args(["fetch", "--account", "Kill9"])
            .env("KURIR_INTAKE_BATCH", "20")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // After 30 kills, let it finish. (A run gets up to 100 ms: intake is fast enough that
        // with longer runs the mailbox is empty after a dozen kills.)
        let deadline = if kills < 30 {
            Some(Instant::now() + Duration::from_millis(5 + rand::random::<u64>() % 100))
        } else {
            None
        };
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                assert!(status.success(), "kurir fetch failed by itself: {err}");
                finished = true;
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    eprintln!("kurir fetch killed {kills} times, {runs} runs in all");
    assert!(
        kills >= 10,
        "the test must actually interrupt intake ({kills} kills)"
    );

    let store = open_store(d).await;
    let counts = store.count_messages("Kill9").await.unwrap();
    let all = store
        .list_messages(&MessageFilter {
            account: Some("Kill9".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: HashSet<String> = all.iter().filter_map(|m| m.message_id.clone()).collect();
    let expected: HashSet<String> = (0..MESSAGES)
        .map(|i| format!("kill9.{i}@kurir.test"))
        .collect();
    assert_eq!(all.len(), MESSAGES, "exactly {MESSAGES} rows");
    assert_eq!(
        ids, expected,
        "every message once, no duplicates, none missing"
    );
    assert_eq!((counts.stored, counts.quarantined), (MESSAGES as u64, 0));
    assert_eq!(
        counts.pending_server_steps, 0,
        "every server-side move confirmed"
    );
    assert_eq!(
        count(&mailbox, "INBOX"),
        0,
        "nothing left in the source folder"
    );
    assert_eq!(
        count(&mailbox, "Processed"),
        MESSAGES as u64,
        "no message moved twice or lost"
    );
}
