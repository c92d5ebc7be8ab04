//! Two `kurir serve` on one PostgreSQL database share the work: the account lease lets exactly
//! one of them take in the Graph account, the outbox's leases give them disjoint messages.
//!
//! The real binary runs twice, each instance with its own data directory (the same master key
//! file copied into both, as the docs say) and `KURIR_DATABASE_URL` pointing at a fresh schema
//! in the database `test` on 127.0.0.1:5432 (`KURIR_TEST_POSTGRES_URL` overrides the URL),
//! against the Entra + Graph emulator in this test process. 100 incoming messages wait in one
//! Graph account and 60 outgoing messages are queued; afterwards every incoming message is
//! stored exactly once, the source folder is empty, every outgoing message is delivered exactly
//! once, and only the lease holder took in the account. Then the holder stops (releasing the
//! lease) and the other instance takes the account over and takes in what arrives next.
//! Without PostgreSQL the test fails with a message saying so; it never skips.

mod common;

use std::time::{Duration, Instant};

use common::daemon::{
    Daemon, assert_outgoing_delivered_once, emulator_folder, emulator_world, outbox_states,
    put_incoming, queue_outgoing,
};
use common::pg::Schema;

use kurir_emulator::demo;
use kurir_emulator::{Emulator, EmulatorConfig};
use kurir_store::KurirStore;
use kurir_store::messages::MessageFilter;

const INCOMING: usize = 100;
const OUTGOING: usize = 60;
/// Put into the mailbox after the lease holder has stopped: the other instance takes them in.
const LATE: usize = 20;
const ACCOUNT: &str = "Inkorg";

/// Sent messages in the outbox.
async fn sent(store: &dyn KurirStore) -> usize {
    outbox_states(store).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_instances_on_one_postgres_database_share_the_work() {
    let schema = Schema::create().await;
    let url = schema.kurir_url();
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let (tmp_a, tmp_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (dir_a, dir_b) = (tmp_a.path(), tmp_b.path());
    emulator_world(dir_a, Some(&url), &emu, ACCOUNT);
    // One database, one master key: the second instance gets a copy of the key file.
    std::fs::copy(dir_a.join("master.key"), dir_b.join("master.key")).unwrap();

    put_incoming(&emu, 0..INCOMING);
    // Queued as `kurir send` queues, through the same database.
    let store = kurir_store::open_store(dir_a, Some(&url)).await.unwrap();
    assert_eq!(store.backend(), "postgres");
    queue_outgoing(&*store, OUTGOING).await;
    // Some Graph latency, so both instances' outbox workers find work to lease.
    emu.graph_faults().set_latency(Duration::from_millis(20));

    let mut a = Daemon::serve("a", dir_a, Some(&url), &[]);
    let mut b = Daemon::serve("b", dir_b, Some(&url), &[]);
    for i in [&a, &b] {
        assert_eq!(
            i.line["store"], "postgres",
            "instance {}: {}",
            i.name, i.line
        );
    }
    assert_ne!(a.instance_id(), b.instance_id());

    let t0 = Instant::now();
    let mut holder = None;
    loop {
        let c = store.count_messages(ACCOUNT).await.unwrap();
        let s = sent(&*store).await;
        if holder.is_none() {
            holder = store
                .account_lease(ACCOUNT)
                .await
                .unwrap()
                .map(|l| l.holder);
        }
        // Both instances have looked at the account once the one without the lease said so.
        let other_told = [&a, &b]
            .iter()
            .any(|i| i.logged(&["is taken in by instance"]));
        if c.stored as usize >= INCOMING
            && c.pending_server_steps == 0
            && s >= OUTGOING
            && other_told
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "not done within 90 s: {c:?}, {s} of {OUTGOING} sent, lease holder {holder:?}, the other instance said it is taken: {other_told}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "both instances: everything done in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // The account's lease is held by one of the two instances, and only that one took it in.
    let lease = store
        .account_lease(ACCOUNT)
        .await
        .unwrap()
        .expect("the account is leased while the instances run");
    let (taker, other) = if lease.holder == a.instance_id() {
        (&a, &b)
    } else {
        assert_eq!(
            lease.holder,
            b.instance_id(),
            "the lease holder is one of the two instances"
        );
        (&b, &a)
    };
    assert!(
        taker.logged(&["taking in mail", ACCOUNT]),
        "the lease holder ({}) took in the account",
        taker.name
    );
    assert!(
        !other.logged(&["taking in mail", ACCOUNT]),
        "the other instance ({}) never took in the account",
        other.name
    );
    let told = format!("account {ACCOUNT} is taken in by instance {}", lease.holder);
    assert!(
        other.logged(&[&told]),
        "the other instance ({}) said who takes in the account: {told}",
        other.name
    );
    eprintln!(
        "instance {} ({}) took in {ACCOUNT}; instance {} left it alone",
        taker.name, lease.holder, other.name
    );

    // The holder stops: it releases the lease, and the other instance takes the account over
    // (within one settings poll, not after the lease's 30 s) and takes in what comes next.
    let (taker_id, other_id) = (
        taker.instance_id().to_owned(),
        other.instance_id().to_owned(),
    );
    let (taker, other) = if taker_id == a.instance_id() {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert!(
        taker.sigterm().success(),
        "instance {} exits cleanly on SIGTERM",
        taker.name
    );
    let after = store.account_lease(ACCOUNT).await.unwrap();
    assert!(
        after.as_ref().is_none_or(|l| l.holder == other_id),
        "the stopped instance released its lease: {after:?}"
    );
    put_incoming(&emu, INCOMING..INCOMING + LATE);
    let t1 = Instant::now();
    loop {
        let c = store.count_messages(ACCOUNT).await.unwrap();
        let holder = store
            .account_lease(ACCOUNT)
            .await
            .unwrap()
            .map(|l| l.holder);
        if c.stored as usize >= INCOMING + LATE
            && c.pending_server_steps == 0
            && holder.as_deref() == Some(other_id.as_str())
        {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(40),
            "instance {} did not take over the account within 40 s: {c:?}, lease holder {holder:?}",
            other.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "instance {} took the account over in {:.1} s (stopped: {taker_id})",
        other.name,
        t1.elapsed().as_secs_f64()
    );
    assert!(
        other.logged(&["taking in mail", ACCOUNT]),
        "instance {} took in the account after the takeover",
        other.name
    );
    assert!(
        other.sigterm().success(),
        "instance {} exits cleanly on SIGTERM",
        other.name
    );
    assert_eq!(
        store.account_lease(ACCOUNT).await.unwrap(),
        None,
        "the lease is released on shutdown"
    );

    let stored = store
        .list_messages(&MessageFilter {
            account: Some(ACCOUNT.into()),
            limit: 0,
            ..MessageFilter::default()
        })
        .await
        .unwrap();
    let mut ids: Vec<_> = stored.iter().filter_map(|m| m.message_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        stored.len(),
        INCOMING + LATE,
        "each incoming message stored once"
    );
    assert_eq!(ids.len(), INCOMING + LATE, "no Message-ID stored twice");
    assert!(
        emulator_folder(&emu, demo::M2M_MAILBOX, "inbox")
            .await
            .is_empty(),
        "the source folder is empty"
    );
    assert_outgoing_delivered_once(&emu, OUTGOING).await;
    emu.shutdown().await;
}
