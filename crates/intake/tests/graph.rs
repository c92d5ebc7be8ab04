//! Graph intake against the emulator's Graph mail (no Dovecot involved): list with paging,
//! `$value`, move into the processed folder it creates (131 messages: two pages of 100), quarantine, a second pass that finds
//! nothing, and throttling (429 with Retry-After) absorbed without losing a message.

mod common;

use std::sync::Arc;

use kurir_emulator::graph::faults::GraphFaultSettings;
use kurir_emulator::{Emulator, EmulatorConfig, demo};
use kurir_entra::{Authority, ClientConfig, Cloud, Credential, TokenClient, TokenRequest};
use kurir_graph::GraphClient;
use kurir_intake::auth::{EntraTokens, Mechanism, TokenSource};
use kurir_intake::pipeline::Quiet;
use kurir_intake::transport::imap::Folders;
use kurir_intake::{AccountSpec, Protocol};
use kurir_store::MessageStore;
use secrecy::ExposeSecret;

fn graph_tokens(emu: &kurir_emulator::RunningEmulator) -> Arc<EntraTokens> {
    let client = TokenClient::new(ClientConfig {
        extra_ca_pem: Some(emu.ca_pem()),
        ..ClientConfig::default()
    })
    .unwrap();
    Arc::new(EntraTokens {
        client: Arc::new(client),
        request: TokenRequest {
            authority: Authority::url(&emu.base_url()).unwrap(),
            tenant: demo::TENANT_ID.into(),
            client_id: demo::CLIENT_ID.into(),
            credential: Credential::ClientSecret {
                secret: demo::CLIENT_SECRET.to_owned().into(),
                basic_auth: false,
            },
            scope: kurir_entra::Scope::graph_app(Cloud::Global),
            user: None,
        },
        mailbox: demo::M2M_MAILBOX.into(),
    })
}

/// Messages per folder display name, as Graph reports them.
async fn folder_counts(
    emu: &kurir_emulator::RunningEmulator,
    tokens: &EntraTokens,
) -> Vec<(String, i32)> {
    let client = GraphClient::new(
        &format!("{}/v1.0", emu.base_url()),
        Some(&emu.ca_pem()),
        std::time::Duration::from_secs(30),
    )
    .unwrap();
    let token = tokens.bearer().await.unwrap();
    client
        .list_child_folders(
            token.secret.expose_secret(),
            demo::M2M_MAILBOX,
            "msgfolderroot",
        )
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.display_name, f.total_item_count))
        .collect()
}

fn count_of(counts: &[(String, i32)], name: &str) -> i32 {
    counts
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c)| *c)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn graph_takes_in_moves_and_quarantines_with_throttling() {
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let n = 130;
    let xml = b"<?xml version=\"1.0\"?><Order><No>1</No></Order>".to_vec();
    for i in 0..n {
        let raw = common::with_attachments(
            &format!("graph-{i}@partner.example"),
            &format!("Order {i}"),
            &[("order.xml", "application/xml", &xml)],
        );
        emu.put_mail(demo::M2M_MAILBOX, None, raw).unwrap();
    }
    emu.put_mail(
        demo::M2M_MAILBOX,
        None,
        common::plain_message(1, "noxml", 100),
    )
    .unwrap();
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), emu.ca_pem()).unwrap();
    let spec = AccountSpec {
        name: "Graph-M2M".into(),
        account_type: "monitor-to-monitor".into(),
        mailbox: demo::M2M_MAILBOX.into(),
        protocol: Protocol::Graph {
            endpoint: emu.base_url(),
        },
        folders: Folders {
            source: "Inbox".into(),
            processed: "Processed".into(),
            quarantine: "Quarantine".into(),
        },
        poll_interval: std::time::Duration::from_secs(60),
        ca_file: Some(ca.path().to_owned()),
        mechanism: Mechanism::XOAuth2,
    };
    let tokens = graph_tokens(&emu);
    let data = tempfile::tempdir().unwrap();
    let store = common::open_store(data.path()).await;
    let intake = spec.intake(data.path().to_owned(), store.clone());
    let mut transport = spec.transport(tokens.clone()).unwrap();
    let summary = intake
        .pass(transport.as_mut(), &mut Quiet)
        .await
        .unwrap_or_else(|e| panic!("Graph intake failed: {e}"));
    assert_eq!(summary.listed, n + 1, "{summary:?}");
    assert_eq!((summary.stored, summary.quarantined), (n, 1), "{summary:?}");
    assert_eq!(summary.documents, n);
    let counts = folder_counts(&emu, &tokens).await;
    assert_eq!(count_of(&counts, "Inbox"), 0, "{counts:?}");
    assert_eq!(count_of(&counts, "Processed"), n as i32, "{counts:?}");
    assert_eq!(count_of(&counts, "Quarantine"), 1, "{counts:?}");
    let c = store.count_messages("Graph-M2M").await.unwrap();
    assert_eq!((c.stored, c.quarantined, c.pending_server_steps), (n, 1, 0));

    // Nothing new; then more mail while Graph throttles the next requests.
    let again = intake.pass(transport.as_mut(), &mut Quiet).await.unwrap();
    assert_eq!((again.listed, again.stored), (0, 0));
    for i in 0..10 {
        let raw = common::with_attachments(
            &format!("graph-late-{i}@partner.example"),
            "late",
            &[("order.xml", "application/xml", &xml)],
        );
        emu.put_mail(demo::M2M_MAILBOX, None, raw).unwrap();
    }
    emu.graph_faults().apply(&GraphFaultSettings {
        throttle_next: Some(3),
        retry_after_secs: Some(1),
        ..Default::default()
    });
    let late = intake.pass(transport.as_mut(), &mut Quiet).await.unwrap();
    assert_eq!(
        late.stored, 10,
        "throttled requests are retried after Retry-After: {late:?}"
    );
    assert_eq!(
        emu.graph_faults().settings().throttle_next.unwrap_or(0),
        0,
        "the 429s were served"
    );
    let c = store.count_messages("Graph-M2M").await.unwrap();
    assert_eq!(c.stored, n + 10);
}

/// Runs `kurir fetch --account NAME` to its end and returns its peak resident set (VmHWM, in
/// bytes) from the kernel's accounting of that one child (`wait4`), and its stderr.
#[cfg(target_os = "linux")]
/// Runs `kurir fetch` and returns its peak resident memory (the high-water mark of its own
/// address space, `VmHWM`) and its stderr.
///
/// Not `wait4`'s `ru_maxrss`: std spawns with `posix_spawn`, i.e. a vfork that shares this
/// test process's address space until `execve`, and Linux carries that address space's
/// high-water mark into the child's `ru_maxrss` at exec. The child would be charged with the
/// emulator's mailbox held in this process. So `/proc/<pid>/status` is polled instead; the
/// high-water mark only grows, and the last reading before exit is the peak (a process that
/// is exiting frees memory, it does not take more).
fn fetch_peak_rss(bin: &std::path::Path, data: &std::path::Path, account: &str) -> (u64, String) {
    use std::io::Read;
    let mut child = common::kurir(bin, data)
        .args(["fetch", "--account", account])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        // A zombie's status has no Vm lines; only readings of the live process count.
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let err = reader.join().unwrap();
    assert!(status.success(), "kurir fetch failed ({status}): {err}");
    assert!(peak_kib > 0, "no memory reading of kurir fetch");
    (peak_kib * 1024, err)
}

/// Issue 12.7: Graph intake kept every body of a batch in memory (batches bounded by count
/// only, because Graph lists no sizes), so a mailbox of large messages cost hundreds of MB.
/// Twelve ~16 MB messages (large enough that the fixed costs of a run, code pages and buffers, do not decide the ratio) are taken in by a real `kurir fetch`; its peak RSS above that of an
/// empty fetch must stay under three times the largest message.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn graph_intake_peak_memory_stays_under_three_times_largest_message() {
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let bin = tokio::task::block_in_place(common::kurir_bin);
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let base = emu.base_url();
    let ca = d.join("emulator-ca.pem");
    std::fs::write(&ca, emu.ca_pem()).unwrap();
    common::ok(
        &bin,
        d,
        &[
            "settings",
            "set",
            "method=exchange-online",
            &format!("client_id={}", demo::CLIENT_ID),
            &format!("tenant_id={}", demo::TENANT_ID),
            "auth_flow=client-secret",
            // The emulator is a custom endpoint: allowed by the server's own switch (13.1).
            "allow_custom_endpoints=true",
            &format!("authority={base}"),
            &format!("graph_endpoint={base}"),
            &format!("ca_file={}", ca.display()),
        ],
    );
    common::ok(
        &bin,
        d,
        &[
            "settings",
            "set",
            "--secret-env",
            "client_secret=KURIR_TEST_SECRET",
        ],
    );
    common::ok(
        &bin,
        d,
        &[
            "accounts",
            "add",
            "Big",
            "--type",
            "general",
            "--mailbox",
            demo::M2M_MAILBOX,
            "--protocol",
            "graph",
        ],
    );

    // Baseline: a pass over an empty source folder (token, listing, store, no message).
    let (baseline, _) = tokio::task::block_in_place(|| fetch_peak_rss(&bin, d, "Big"));

    const MESSAGES: usize = 12;
    let mut largest = 0u64;
    for i in 0..MESSAGES {
        // ~12 MB of incompressible bytes: ~16 MB of MIME once base64-encoded.
        let payload: Vec<u8> = (0..12_000_000u32 + i as u32 * 997)
            .map(|j| (j.wrapping_mul(2_654_435_761).rotate_left(i as u32 % 31) >> 13) as u8)
            .collect();
        let raw = common::with_attachments(
            &format!("big-{i}@partner.example"),
            &format!("Big {i}"),
            &[("scan.bin", "application/octet-stream", &payload)],
        );
        largest = largest.max(raw.len() as u64);
        emu.put_mail(demo::M2M_MAILBOX, None, raw).unwrap();
    }

    let (peak, err) = tokio::task::block_in_place(|| fetch_peak_rss(&bin, d, "Big"));
    let mb = |b: u64| b as f64 / 1_048_576.0;
    eprintln!(
        "graph intake of {MESSAGES} messages (largest {:.1} MB): peak RSS {:.1} MB, empty fetch {:.1} MB, difference {:.1} MB (limit 3x largest = {:.1} MB)",
        mb(largest),
        mb(peak),
        mb(baseline),
        mb(peak.saturating_sub(baseline)),
        mb(3 * largest)
    );

    let store = common::open_store(d).await;
    let c = store.count_messages("Big").await.unwrap();
    assert_eq!(
        (c.stored, c.quarantined, c.pending_server_steps),
        (MESSAGES as u64, 0, 0),
        "every message taken in: {err}"
    );
    assert!(
        peak.saturating_sub(baseline) < 3 * largest,
        "peak RSS {:.1} MB is {:.1} MB above an empty fetch ({:.1} MB): over 3x the largest message ({:.1} MB)",
        mb(peak),
        mb(peak.saturating_sub(baseline)),
        mb(baseline),
        mb(largest)
    );
}
