//! Issue #13.1, "write-only secrets can be read back": whoever can edit settings through the
//! REST API or the web UI must not be able to point `authority` (or Graph, IMAP, POP3, SMTP) at
//! a host of their own and have Test connection or a token fetch post the client secret there.
//!
//! With method exchange-online, secrets go only to the selected cloud's endpoints; anything else
//! needs the server switch `allow_custom_endpoints`, which only the command line on the server
//! writes. Through the real `kurir` binary and its HTTP API, with a local TCP listener standing
//! in for the attacker's host: it records whether anything ever connected.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::daemon::Daemon;
use common::web::{client, provision, sign_in};
use common::{kurir, ok, set_secret};
use kurir_emulator::demo;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "kUr~8Q.the_WriteOnly-Secret_7fJ2xLw9pZ4tN6vB1mC3";

/// A host of the attacker's: counts every TCP connection made to it.
struct Trap {
    url: String,
    connections: Arc<AtomicUsize>,
}

impl Trap {
    fn start() -> Trap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                seen.fetch_add(1, Ordering::SeqCst);
                drop(conn);
            }
        });
        Trap { url, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// The system settings of the emulator's demo tenant, but with `authority` left to the caller.
fn exchange_settings(dir: &Path, extra: &[&str]) {
    let mut args = vec![
        "settings".to_owned(),
        "set".to_owned(),
        "method=exchange-online".to_owned(),
        format!("client_id={}", demo::CLIENT_ID),
        format!("tenant_id={}", demo::TENANT_ID),
        "auth_flow=client-secret".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(dir, &args);
    set_secret(dir, &[], "client_secret", SECRET);
}

async fn page(c: &reqwest::Client, base: &str, path: &str, session: &str) -> String {
    let r = c
        .get(format!("{base}{path}?lang=en"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_authority_is_refused_over_the_api_without_the_server_switch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = provision(dir);
    let trap = Trap::start();
    let mut serve = Daemon::serve("serve", dir, None, &[]);
    let base = serve.url().to_owned();
    let c = client();
    let api = |p: &str| format!("{base}{p}");
    let settings = || async {
        c.get(api("/api/v1/system/settings"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };

    // A custom authority with the secret in the same request: refused, nothing stored.
    let r = c
        .patch(api("/api/v1/system/settings"))
        .bearer_auth(&key)
        .json(&json!({"set": {
            "method": "exchange-online",
            "client_id": demo::CLIENT_ID,
            "tenant_id": demo::TENANT_ID,
            "authority": trap.url,
            "client_secret": SECRET,
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    let why = body["fields"]["authority"].as_str().unwrap_or_default();
    assert!(
        why.contains("not an endpoint of the selected cloud global")
            && why.contains("kurir settings set allow_custom_endpoints=true"),
        "{body}"
    );
    assert!(
        body["fix"]
            .as_str()
            .unwrap()
            .contains("kurir settings set allow_custom_endpoints=true"),
        "{body}"
    );
    let s = settings().await;
    assert_eq!(s["authority"]["source"], "default", "{s}");
    assert_eq!(s["method"]["source"], "default", "nothing was changed: {s}");
    assert!(s["client_secret"]["value"].is_null(), "{s}");
    // The switch shows, off by default.
    assert_eq!(s["allow_custom_endpoints"]["value"], "false", "{s}");

    // The switch itself cannot be written (or removed) through the API.
    for body in [
        json!({"set": {"allow_custom_endpoints": "true"}}),
        json!({"unset": ["allow_custom_endpoints"]}),
    ] {
        let r = c
            .patch(api("/api/v1/system/settings"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["fields"]["allow_custom_endpoints"]
                .as_str()
                .unwrap_or_default()
                .contains("kurir settings set allow_custom_endpoints=true"),
            "{v}"
        );
    }
    assert_eq!(settings().await["allow_custom_endpoints"]["value"], "false");

    // Valid Exchange Online settings are accepted; a custom endpoint on an account or a user is
    // refused the same way (SMTP on a user, Graph on a new account).
    let r = c
        .patch(api("/api/v1/system/settings"))
        .bearer_auth(&key)
        .json(&json!({"set": {
            "method": "exchange-online",
            "client_id": demo::CLIENT_ID,
            "tenant_id": demo::TENANT_ID,
            "client_secret": SECRET,
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    ok(dir, &["users", "add", "ANNA", "--email", demo::USER]);
    let r = c
        .patch(api("/api/v1/users/ANNA/settings"))
        .bearer_auth(&key)
        .json(&json!({"set": {"smtp_host": "127.0.0.1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = r.json().await.unwrap();
    assert!(v["fields"]["smtp_host"].is_string(), "{v}");
    let r = c
        .post(api("/api/v1/accounts"))
        .bearer_auth(&key)
        .json(&json!({"name": "Orders", "mailbox": demo::M2M_MAILBOX,
            "settings": {"graph_endpoint": trap.url}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = c
        .get(api("/api/v1/accounts/Orders/settings"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "the account was not added"
    );

    // The web UI: no notice, the switch is not a form field, and the form refuses the value.
    let (session, csrf) = sign_in(&c, &base).await;
    let system = page(&c, &base, "/system", &session).await;
    assert!(!system.contains("id=\"custom-endpoints\""));
    assert!(!system.contains("v:allow_custom_endpoints"));
    let r = c
        .post(format!("{base}/system?lang=en"))
        .header("cookie", &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("v:authority", trap.url.as_str()),
            ("v:allow_custom_endpoints", "true"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("not an endpoint of the selected cloud"),
        "{html}"
    );
    let s = settings().await;
    assert_eq!(s["authority"]["source"], "default", "{s}");
    assert_eq!(s["allow_custom_endpoints"]["value"], "false", "{s}");
    assert_eq!(
        trap.connections(),
        0,
        "nothing ever went to the custom host"
    );

    // The switch, set on the server with the command line: every page says it is in force, and
    // the API now takes the emulator as authority; Test connection gets a token from it.
    let emu = kurir_emulator::Emulator::start(kurir_emulator::EmulatorConfig::demo())
        .await
        .unwrap();
    ok(dir, &["settings", "set", "allow_custom_endpoints=true"]);
    for path in ["/", "/system", "/users"] {
        let html = page(&c, &base, path, &session).await;
        assert!(
            html.contains("id=\"custom-endpoints\"")
                && html.contains("Custom endpoints are allowed on this server"),
            "{path}: {html}"
        );
    }
    let r = c
        .get(format!("{base}/?lang=sv"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Egna adresser är tillåtna på den här servern")
    );
    let r = c
        .patch(api("/api/v1/system/settings"))
        .bearer_auth(&key)
        .json(&json!({"set": {
            "authority": emu.base_url(),
            "graph_endpoint": emu.base_url(),
            "ca_file": emu.ca_path().to_string_lossy(),
            "client_secret": demo::CLIENT_SECRET,
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let report: Value = c
        .post(api("/api/v1/users/ANNA/check?lang=en"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps[0]["status"], "ok", "{report}");
    assert_eq!(steps[1]["id"], "token");
    assert_eq!(steps[1]["status"], "ok", "{report}");
    assert!(serve.sigterm().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_never_posts_the_secret_to_a_custom_authority() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = provision(dir);
    let trap = Trap::start();
    // Written where it can still be written: on the server, or a database edited by hand. Saving
    // is not the only gate: using the settings is refused too.
    exchange_settings(dir, &[&format!("authority={}", trap.url)]);
    ok(dir, &["users", "add", "ANNA", "--email", demo::USER]);
    ok(
        dir,
        &[
            "accounts",
            "add",
            "Orders",
            "--type",
            "general",
            "--mailbox",
            demo::M2M_MAILBOX,
            "--protocol",
            "graph",
        ],
    );

    // The daemon (its intake polls the account, its outbox is idle) and Test connection.
    let mut serve = Daemon::serve("serve", dir, None, &[]);
    let c = client();
    for (path, lang, needle) in [
        (
            "/api/v1/users/ANNA/check",
            "en",
            "not an endpoint of the selected cloud",
        ),
        (
            "/api/v1/system/check",
            "sv",
            "inte är en adress i det valda molnet",
        ),
        (
            "/api/v1/accounts/Orders/check",
            "en",
            "not an endpoint of the selected cloud",
        ),
    ] {
        let report: Value = c
            .post(format!("{}{path}?lang={lang}", serve.url()))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            trap.connections(),
            0,
            "{path} contacted the custom host: {report}"
        );
        assert_eq!(report["ok"], false, "{report}");
        let steps = report["steps"].as_array().unwrap();
        assert_eq!(steps[0]["id"], "settings");
        assert_eq!(steps[0]["status"], "failed", "{report}");
        assert!(
            steps[0]["detail"].as_str().unwrap().contains(needle),
            "{report}"
        );
        assert!(
            steps[0]["fix"]
                .as_str()
                .unwrap()
                .contains("kurir settings set allow_custom_endpoints=true"),
            "{report}"
        );
        assert_eq!(steps[1]["id"], "token");
        assert_eq!(steps[1]["status"], "not_run", "{report}");
    }

    // The command line: a settings error (exit 2, one line), not a network failure to retry.
    for args in [
        &["token"][..],
        &["token", "--user", "ANNA"],
        &["fetch", "--account", "Orders"],
    ] {
        let out = kurir(dir).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "kurir {args:?}: {stderr}");
        assert!(
            stderr.contains("not an endpoint of the selected cloud")
                && stderr.contains("kurir settings set allow_custom_endpoints=true"),
            "kurir {args:?}: {stderr}"
        );
    }
    assert_eq!(
        trap.connections(),
        0,
        "the command line contacted the custom host"
    );
    let out = kurir(dir).args(["settings", "validate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "an error");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shown.contains("allow_custom_endpoints=true"), "{shown}");
    let out = kurir(dir)
        .args(["check", "--user", "ANNA"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("allow_custom_endpoints=true"));

    // Give the daemon's intake a few polls' time, then: nothing ever connected to the host.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        trap.connections(),
        0,
        "the secret's would-be recipient was never contacted"
    );
    assert!(serve.sigterm().success());

    // The control: with the switch on (set with the CLI), the same settings do go to the host;
    // so the zero above is the refusal, not a listener nobody could reach.
    ok(dir, &["settings", "set", "allow_custom_endpoints=true"]);
    let out = kurir(dir).args(["token"]).output().unwrap();
    assert!(!out.status.success());
    assert!(trap.connections() > 0, "the token request reached the host");
}
