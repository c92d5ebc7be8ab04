//! `POST /api/v1/outbox` over real HTTP against the real `kurir serve`, whose outbox workers
//! send through the Graph emulator: a built message with an attachment and a ready MIME
//! message are queued (202), sent and delivered; bad requests are refused with what to do.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::daemon::{Daemon, emulator_folder, emulator_system_settings};
use common::ok;
use kurir_emulator::demo;
use kurir_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_send_queues_and_the_daemon_delivers() {
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    emulator_system_settings(dir, None, &emu);
    ok(dir, &["users", "add", "ANNA", "--email", demo::USER]);
    ok(dir, &["users", "add", "NOMAIL"]);
    ok(dir, &["settings", "set", "--user", "NOMAIL", "method=none"]);
    let key = ok(dir, &["admin", "api-key", "create", "erp"])
        .trim()
        .to_owned();

    let mut serve = Daemon::serve("serve", dir, None, &[]);
    let url = serve.url().to_owned();
    let http = reqwest::Client::new();
    let post = |body: Value, key: Option<&str>| {
        let mut r = http.post(format!("{url}/api/v1/outbox")).json(&body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };

    // Refusals first: nothing queued by any of them.
    let r = post(
        json!({"as": "ANNA", "to": [demo::USER2], "subject": "x"}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let cases = [
        (
            json!({"to": [demo::USER2], "subject": "x"}),
            StatusCode::BAD_REQUEST,
            "\"as\" is missing",
        ),
        (
            json!({"as": "ANNA", "to": [demo::USER2]}),
            StatusCode::BAD_REQUEST,
            "\"subject\" is missing",
        ),
        (
            json!({"as": "ANNA", "to": ["not an address"], "subject": "x"}),
            StatusCode::BAD_REQUEST,
            "cannot be sent",
        ),
        (
            json!({"as": "ANNA", "to": [demo::USER2], "subject": "x", "attachments": [{"name": "a.pdf", "content_base64": "***"}]}),
            StatusCode::BAD_REQUEST,
            "not base64",
        ),
        (
            json!({"as": "ANNA", "mime_base64": STANDARD.encode("Subject: x\r\n\r\nbody")}),
            StatusCode::BAD_REQUEST,
            "no recipients",
        ),
        (
            json!({"as": "NOMAIL", "to": [demo::USER2], "subject": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot send",
        ),
        (
            json!({"as": "ANNA", "to": [demo::USER2], "subject": "x", "password": "y"}),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
    ];
    for (body, status, needle) in cases {
        let r = post(body.clone(), Some(&key)).await.unwrap();
        assert_eq!(r.status(), status, "{body}");
        let v: Value = r.json().await.unwrap();
        let text = v.to_string();
        assert!(
            v["error"].as_str().unwrap_or_default().contains(needle),
            "{body}: {text}"
        );
        assert!(
            v["fix"].as_str().is_some_and(|f| !f.is_empty()),
            "says what to do: {text}"
        );
        assert!(!text.contains(demo::CLIENT_SECRET));
    }

    // A built message with an attachment, and a ready MIME message.
    let pdf = b"%PDF-1.4\n% Kurir API test\n".to_vec();
    let r = post(
        json!({
            "as": "ANNA",
            "to": [demo::USER2],
            "subject": "API order 1",
            "text": "Hej!",
            "attachments": [{"name": "../order-1.pdf", "content_base64": STANDARD.encode(&pdf)}],
        }),
        Some(&key),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["sender_user"], "ANNA");
    assert_eq!(first["from"], demo::USER);
    let mime = format!(
        "From: {}\r\nTo: {}\r\nSubject: API order 2\r\n\r\nfrom the ERP's own MIME\r\n",
        demo::USER,
        demo::USER2
    );
    let r = post(
        json!({"as": "ANNA", "to": [demo::USER2], "mime_base64": STANDARD.encode(mime)}),
        Some(&key),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let second: Value = r.json().await.unwrap();
    assert!(
        second["message_id"].as_str().is_some(),
        "a Message-ID was added: {second}"
    );

    // The daemon sends both.
    for m in [&first, &second] {
        let id = m["id"].as_i64().unwrap();
        let t0 = Instant::now();
        loop {
            let v: Value = http
                .get(format!("{url}/api/v1/outbox/{id}"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["state"] == "sent" {
                assert_eq!(v["via"], "graph");
                break;
            }
            assert!(v["state"] != "failed", "{v}");
            assert!(t0.elapsed() < Duration::from_secs(30), "not sent: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let msgs = emulator_folder(&emu, demo::USER2, "inbox").await;
    let order1 = msgs
        .iter()
        .find(|m| m["subject"] == "API order 1")
        .expect("API order 1 delivered");
    assert_eq!(order1["hasAttachments"], true);
    assert!(msgs.iter().any(|m| m["subject"] == "API order 2"));
    assert_eq!(msgs.len(), 2, "each delivered once: {msgs:?}");

    assert!(serve.sigterm().success());
    emu.shutdown().await;
}

/// The emulator, a data directory with its system settings, ANNA (adele.vance) and an API key.
async fn anna_with_an_api_key() -> (RunningEmulator, tempfile::TempDir, String) {
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    emulator_system_settings(tmp.path(), None, &emu);
    ok(tmp.path(), &["users", "add", "ANNA", "--email", demo::USER]);
    let key = ok(tmp.path(), &["admin", "api-key", "create", "erp"])
        .trim()
        .to_owned();
    (emu, tmp, key)
}

/// What the REST API queues wakes the daemon's outbox workers at once. Before, the API wrote
/// into the store past `Outbox::submit`, so the message waited for the workers' idle look at
/// the queue: here two minutes, so a send within 15 s proves the wake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_submission_wakes_the_outbox_workers() {
    let (emu, tmp, key) = anna_with_an_api_key().await;
    let dir = tmp.path();
    let mut serve = Daemon::serve("serve", dir, None, &["--idle-poll-secs", "120"]);
    let url = serve.url().to_owned();
    // Let the workers find the queue empty and settle into their idle wait.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t0 = Instant::now();
    let r = reqwest::Client::new()
        .post(format!("{url}/api/v1/outbox"))
        .bearer_auth(&key)
        .json(&json!({"as": "ANNA", "to": [demo::USER2], "subject": "woken", "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    loop {
        let msgs = emulator_folder(&emu, demo::USER2, "inbox").await;
        if msgs.iter().any(|m| m["subject"] == "woken") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the API's message waited for the idle poll instead of waking the workers"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(serve.sigterm().success());
    emu.shutdown().await;
}

/// A send the daemon cannot make (a wrong client secret: AADSTS7000215) fails for good with the
/// explanation, and `/metrics` counts the failure by component and reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_send_is_explained_and_counted_by_reason() {
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    emulator_system_settings(dir, None, &emu);
    ok(dir, &["users", "add", "ANNA", "--email", demo::USER]);
    common::set_secret(
        dir,
        &["--user", "ANNA"],
        "client_secret",
        "kUr~8Q.wrong_SecretValue-7fJ2xLw9pZ4tN6vB1mC3",
    );
    let key = ok(dir, &["admin", "api-key", "create", "erp"])
        .trim()
        .to_owned();
    let mut serve = Daemon::serve("serve", dir, None, &[]);
    let url = serve.url().to_owned();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{url}/api/v1/outbox"))
        .bearer_auth(&key)
        .json(&json!({"as": "ANNA", "to": [demo::USER2], "subject": "never sent", "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let t0 = Instant::now();
    let failed = loop {
        let v: Value = http
            .get(format!("{url}/api/v1/outbox/{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["state"] == "failed" {
            break v;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "not failed: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        failed["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("AADSTS7000215")),
        "{failed}"
    );
    let metrics = http
        .get(format!("{url}/metrics"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("kurir_failures_total{")
                && l.contains("component=\"outbox\"")
                && l.contains("reason=\"token\"")),
        "failures are counted by component and reason: {metrics}"
    );
    assert!(serve.sigterm().success());
    emu.shutdown().await;
}

/// Issue 12.4: a ready MIME message posted with envelope recipients beside it is delivered to
/// the envelope, not to the addresses in its header. The header names the M2M mailbox (To),
/// the envelope Megan (`to`) and Adele (`bcc`): Megan and Adele receive it, M2M nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_mime_send_delivers_to_envelope_not_headers() {
    let (emu, tmp, key) = anna_with_an_api_key().await;
    let dir = tmp.path();
    let mut serve = Daemon::serve("serve", dir, None, &[]);
    let url = serve.url().to_owned();
    let http = reqwest::Client::new();

    let mime = format!(
        "From: {}\r\nTo: {}\r\nSubject: API envelope\r\n\r\nonly the envelope counts\r\n",
        demo::USER,
        demo::M2M_MAILBOX
    );
    let r = http
        .post(format!("{url}/api/v1/outbox"))
        .bearer_auth(&key)
        .json(&json!({
            "as": "ANNA",
            "to": [demo::USER2],
            "bcc": [demo::USER],
            "mime_base64": STANDARD.encode(mime),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let queued: Value = r.json().await.unwrap();
    let id = queued["id"].as_i64().unwrap();
    let t0 = Instant::now();
    loop {
        let v: Value = http
            .get(format!("{url}/api/v1/outbox/{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["state"] == "sent" {
            assert_eq!(v["via"], "graph");
            break;
        }
        assert!(v["state"] != "failed", "{v}");
        assert!(t0.elapsed() < Duration::from_secs(30), "not sent: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let count = |msgs: &[Value]| {
        msgs.iter()
            .filter(|m| m["subject"] == "API envelope")
            .count()
    };
    let megan = emulator_folder(&emu, demo::USER2, "inbox").await;
    assert_eq!(
        count(&megan),
        1,
        "the envelope's \"to\" received it: {megan:?}"
    );
    let adele = emulator_folder(&emu, demo::USER, "inbox").await;
    assert_eq!(
        count(&adele),
        1,
        "the envelope's \"bcc\" received it: {adele:?}"
    );
    let m2m = emulator_folder(&emu, demo::M2M_MAILBOX, "inbox").await;
    assert_eq!(
        count(&m2m),
        0,
        "the address only in the header received nothing: {m2m:?}"
    );
    assert!(serve.sigterm().success());
    emu.shutdown().await;
}
