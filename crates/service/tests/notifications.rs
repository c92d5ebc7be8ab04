//! Alarm notifications and the ERP webhook (issue #16.3 and #16.5) end to end: Kurir's upkeep
//! loop and its outbox workers in this process, sending through the REAL Postfix (SMTP XOAUTH2
//! with a token from the Entra emulator) as the system sender; the notices are read back from
//! the administrator's mailbox over IMAPS from the REAL Dovecot. The webhooks go to a real HTTP
//! receiver here, which checks their HMAC signatures.

#[path = "../../outbox/tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use kurir_service::upkeep::{UpkeepConfig, signature};
use kurir_settings::Scope;
use kurir_store::messages::{MessageStatus, NewMessage, RawMime};
use kurir_store::{Change, KurirStore, NewValue};
use secrecy::SecretString;
use serde_json::Value;

const HOOK_SECRET: &str = "hook-secret-for-the-test";

/// Every call the receiver got: (when, body).
type Calls = Arc<Mutex<Vec<(Instant, Value)>>>;

async fn receiver() -> (String, Calls) {
    let calls: Calls = Arc::default();
    let sink = calls.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let sig = headers
                    .get("x-kurir-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                assert_eq!(sig, signature(HOOK_SECRET, &body), "the body is signed");
                let v: Value = serde_json::from_slice(&body).unwrap();
                sink.lock().unwrap().push((Instant::now(), v));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

fn events(calls: &Calls, event: &str) -> Vec<Value> {
    timed(calls, event).into_iter().map(|(_, v)| v).collect()
}

fn timed(calls: &Calls, event: &str) -> Vec<(Instant, Value)> {
    calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, v)| v["event"] == event)
        .cloned()
        .collect()
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn plain(k: &str, v: impl Into<String>) -> Change {
    Change::Set(k.into(), NewValue::Plain(v.into()))
}

fn date_in(days: i64) -> String {
    (time::OffsetDateTime::now_utc().date() + time::Duration::days(days)).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_reaches_the_admin_by_mail_and_webhook_once_again_daily_and_when_resolved() {
    let env = common::env().await;
    let store: Arc<dyn KurirStore> = env.store.clone();
    let (hook, calls) = receiver().await;
    let sender = common::fresh_mailbox("kurir-system");
    let admin = common::fresh_mailbox("admin");
    store
        .apply(
            &Scope::System,
            vec![
                plain("default_sender", sender.clone()),
                plain("alarm_email", admin.clone()),
                plain("alarm_webhook", hook.clone()),
                plain("erp_webhook", hook.clone()),
                plain("alarm_language", "sv"),
                Change::Set(
                    "webhook_secret".into(),
                    NewValue::Secret(SecretString::from(HOOK_SECRET.to_owned())),
                ),
                // Ten days left: a warning.
                plain("client_secret_expires", date_in(10)),
            ],
        )
        .await
        .unwrap();

    let outbox = kurir_outbox::Outbox::new(
        store.clone(),
        kurir_outbox::OutboxConfig {
            rate_per_minute: None,
            backoff_initial: Duration::from_millis(500),
            token: common::fast_token_config(),
            ..kurir_outbox::OutboxConfig::default()
        },
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let workers = {
        let outbox = outbox.clone();
        let stop = stop.clone();
        tokio::spawn(async move { outbox.run(stop, false).await })
    };
    let upkeep = tokio::spawn(kurir_service::upkeep::run(
        store.clone(),
        outbox.submitter(),
        UpkeepConfig {
            tick: Duration::from_millis(200),
            purge_every: Duration::from_secs(86_400),
            repeat_after: Duration::from_secs(3),
            ..UpkeepConfig::default()
        },
        stop,
    ));

    // New: once to the webhook, once by mail, in Swedish.
    wait_until("the alarm at the webhook", Duration::from_secs(20), || {
        !events(&calls, "alarm").is_empty()
    })
    .await;
    let alarm = &events(&calls, "alarm")[0];
    assert_eq!(alarm["kind"], "client_secret_expiring", "{alarm}");
    assert_eq!(alarm["severity"], "warning");
    assert_eq!(alarm["language"], "sv");
    assert!(
        alarm["message"]
            .as_str()
            .unwrap()
            .contains("Klienthemligheten går ut"),
        "{alarm}"
    );
    let inbox = common::wait_for_count(&env.emu, &admin, 1, Duration::from_secs(30)).await;
    assert!(
        inbox.contains_key("Kurir: 1 larm"),
        "the notice arrived through Postfix and Dovecot: {inbox:?}"
    );
    let sent = store
        .outbox_list(&kurir_store::outbox::OutboxFilter::default())
        .await
        .unwrap();
    assert!(
        sent.iter()
            .all(|m| m.sender_user == kurir_outbox::SYSTEM_SENDER && m.origin == "alarm"),
        "sent as Kurir itself"
    );
    // Not again at every look (every 200 ms here): only after the repeat interval (3 s here,
    // a day in service).
    wait_until("a reminder", Duration::from_secs(15), || {
        !events(&calls, "alarm_repeated").is_empty()
    })
    .await;
    // Resolved: the new expiry date is far away.
    store
        .apply(
            &Scope::System,
            vec![plain("client_secret_expires", date_in(700))],
        )
        .await
        .unwrap();
    wait_until("the resolved notice", Duration::from_secs(10), || {
        !events(&calls, "resolved").is_empty()
    })
    .await;
    let resolved = &events(&calls, "resolved")[0];
    assert_eq!(
        resolved["key"], "client_secret_expiring/system",
        "{resolved}"
    );
    let first = timed(&calls, "alarm");
    assert_eq!(first.len(), 1, "a new alarm is notified once");
    let mut at = first[0].0;
    let reminders = timed(&calls, "alarm_repeated");
    for (when, _) in &reminders {
        assert!(
            *when - at >= Duration::from_millis(2900),
            "a reminder only after the repeat interval, not at every look"
        );
        at = *when;
    }
    // Every notice went by mail too: new, reminders, resolved. New and reminders say
    // "Kurir: 1 larm"; the resolved notice's subject is RFC 2047-encoded ("åtgärdade").
    let n = 2 + reminders.len() as u32;
    let inbox = common::wait_for_count(&env.emu, &admin, n, Duration::from_secs(30)).await;
    assert_eq!(inbox.get("Kurir: 1 larm"), Some(&(n - 1)), "{inbox:?}");
    assert_eq!(inbox.values().sum::<u32>(), n, "{inbox:?}");
    assert!(store.notified_alarms().await.unwrap().is_empty());

    // The ERP webhook: it started after what was there; a new message is announced once.
    let raw = b"From: orders@supplier.test\r\nSubject: order\r\n\r\nbody\r\n".to_vec();
    let recorded = store
        .record_batch(
            "M2M",
            vec![NewMessage {
                server_id: "graph:hook-1".into(),
                dedupe_key: "blake3:hook-1".into(),
                message_id: None,
                content_hash: "hook-1".into(),
                status: MessageStatus::Stored,
                reason: None,
                handler: "general".into(),
                from: Some("orders@supplier.test".into()),
                to: None,
                subject: Some("order".into()),
                date: None,
                size: raw.len() as u64,
                attachments: Vec::new(),
                raw: RawMime::Inline(raw),
                imports: Vec::new(),
            }],
        )
        .await
        .unwrap();
    wait_until("the ERP webhook", Duration::from_secs(10), || {
        !events(&calls, "new_items").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let announced = events(&calls, "new_items");
    assert_eq!(announced.len(), 1, "announced once: {announced:?}");
    assert_eq!(announced[0]["messages"][0]["id"], recorded[0].id());
    assert_eq!(
        announced[0]["feeds"]["messages"],
        "/api/v1/messages?after=0"
    );

    let _ = stop_tx.send(true);
    upkeep.await.unwrap();
    let _ = workers.await;
}
