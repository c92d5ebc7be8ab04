//! The REST API and the web UI's security over real HTTP: the real `kurir serve` binary on a
//! temporary data directory, with a real Entra emulator for Test connection.
//!
//! Covers: API keys (missing, wrong, revoked), the settings round trip with sources and masked
//! secrets, refused values changing nothing, Test connection explaining AADSTS7000215 in both
//! languages, the OpenAPI document matching the routes, the login form, CSRF on every form,
//! logout, metrics, and a clean stop on SIGTERM; the outbox (list, show, retry, cancel),
//! incoming messages (paging, raw MIME), the import queue, account health and the
//! outbox-failing alarm, with data put into the store directly.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::ok;
use common::web::{ADMIN_PASSWORD, client, provision, sign_in};
use reqwest::StatusCode;
use serde_json::{Value, json};

const WRONG_SECRET: &str = "kUr~8Q.wrong_SecretValue-7fJ2xLw9pZ4tN6vB1mC3";

/// A running `kurir serve`; stopped with SIGTERM when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        Server::start_with(dir, &[])
    }

    fn start_with(dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kurir"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("KURIR_DATA_DIR", dir)
            .env_remove("KURIR_MASTER_KEY")
            .env_remove("KURIR_DATABASE_URL")
            .env_remove("KURIR_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kurir serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("kurir serve prints its JSON line");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        Server {
            child,
            url: v["listen"].as_str().unwrap().to_owned(),
        }
    }

    fn sigterm(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test]
async fn api_keys_settings_round_trip_and_check() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = provision(dir);
    assert!(key.starts_with("kurir_"), "{key}");
    let srv = Server::start(dir);
    let c = client();
    let api = |p: &str| format!("{}{p}", srv.url);

    // Unauthorised: no key, a wrong key, a key that is not a key.
    let r = c.get(api("/api/v1/system/settings")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    let body: Value = r.json().await.unwrap();
    assert!(
        body["fix"]
            .as_str()
            .unwrap()
            .contains("kurir admin api-key create")
    );
    let forged = format!("{}x", &key[..key.len() - 1]);
    for bad in [forged.as_str(), "kurir_nonsense", "admin:password"] {
        let r = c
            .get(api("/api/v1/users"))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{bad}");
    }

    // Set system values, a secret among them.
    let r = c
        .patch(api("/api/v1/system/settings"))
        .bearer_auth(&key)
        .json(&json!({"set": {
            "method": "exchange-online",
            "client_id": "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            "tenant_id": "contoso.onmicrosoft.com",
            "client_secret": WRONG_SECRET,
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(!text.contains(WRONG_SECRET), "secret echoed: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["client_id"]["value"],
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    );
    assert_eq!(v["client_id"]["source"], "system");
    assert_eq!(v["client_secret"]["secret"], true);
    assert_eq!(v["client_secret"]["value"], "••••1mC3");

    // A user inherits, overrides, and inherits again.
    let r = c
        .post(api("/api/v1/users"))
        .bearer_auth(&key)
        .json(&json!({"code": "anna", "email": "anna@contoso.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .post(api("/api/v1/users"))
        .bearer_auth(&key)
        .json(&json!({"code": "ANNA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let get_user = || async {
        c.get(api("/api/v1/users/ANNA/settings"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let v = get_user().await;
    assert_eq!(v["tenant_id"]["source"], "system");
    assert_eq!(v["email"]["source"], "user");
    let r = c
        .patch(api("/api/v1/users/ANNA/settings"))
        .bearer_auth(&key)
        .json(&json!({"set": {"tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v = get_user().await;
    assert_eq!(v["tenant_id"]["source"], "user");
    assert_eq!(
        v["tenant_id"]["value"],
        "72f988bf-86f1-41af-91ab-2d7cd011db47"
    );
    let r = c
        .patch(api("/api/v1/users/ANNA/settings"))
        .bearer_auth(&key)
        .json(&json!({"unset": ["tenant_id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(get_user().await["tenant_id"]["source"], "system");

    // One refused value changes nothing, and says which field and why.
    let r = c
        .patch(api("/api/v1/system/settings"))
        .bearer_auth(&key)
        .json(&json!({"set": {"tenant_id": "common", "client_id": "11111111-2222-3333-4444-555555555555"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert!(body["fields"]["tenant_id"].is_string(), "{body}");
    let v: Value = c
        .get(api("/api/v1/system/settings"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["client_id"]["value"],
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    );
    let r = c
        .get(api("/api/v1/users/NOBODY/settings"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Problems and alarms (an expired secret date).
    let r = c
        .patch(api("/api/v1/system/settings"))
        .bearer_auth(&key)
        .json(&json!({"set": {"client_secret_expires": "2020-01-31"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let alarms: Value = c
        .get(api("/api/v1/alarms"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alarms[0]["kind"], "client_secret_expired", "{alarms}");
    assert_eq!(alarms[0]["subject"], "system");
    let problems: Value = c
        .get(api("/api/v1/problems"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        problems
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["field"] == "client_secret_expires"),
        "{problems}"
    );

    // Test connection against the emulator with a wrong secret: AADSTS7000215, explained. The
    // emulator is not Microsoft's cloud: the server switch, set with the CLI (never the API).
    let emu = kurir_emulator::Emulator::start(kurir_emulator::EmulatorConfig::demo())
        .await
        .unwrap();
    ok(dir, &["settings", "set", "allow_custom_endpoints=true"]);
    let r = c
        .patch(api("/api/v1/system/settings"))
        .bearer_auth(&key)
        .json(&json!({
            "set": {
                "client_id": kurir_emulator::demo::CLIENT_ID,
                "tenant_id": kurir_emulator::demo::TENANT_ID,
                "authority": emu.base_url(),
                "ca_file": emu.ca_path().to_string_lossy(),
            },
            "unset": ["client_secret_expires"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    for (lang, needle) in [("en", "secret"), ("sv", "hemlighet")] {
        let report: Value = c
            .post(api(&format!("/api/v1/users/ANNA/check?lang={lang}")))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(report["ok"], false, "{report}");
        let steps = report["steps"].as_array().unwrap();
        assert_eq!(steps[0]["id"], "settings");
        assert_eq!(steps[0]["status"], "ok", "{report}");
        assert_eq!(steps[1]["id"], "token");
        assert_eq!(steps[1]["status"], "failed");
        assert_eq!(steps[1]["aadsts"], 7000215);
        let detail = format!("{} {}", steps[1]["detail"], steps[1]["fix"]).to_lowercase();
        assert!(detail.contains(needle), "{lang}: {detail}");
        assert!(
            steps[1]["trace_id"].is_string(),
            "Microsoft's ids kept: {report}"
        );
        assert_eq!(steps[2]["status"], "not_run", "{report}");
        assert!(!report.to_string().contains(WRONG_SECRET));
    }

    // The metrics saw all of it.
    let m = c
        .get(api("/metrics"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("kurir_token_requests_total{outcome=\"AADSTS7000215\"} 2"),
        "{m}"
    );
    assert!(m.contains("kurir_http_requests_total{method=\"PATCH\",route=\"/api/v1/users/{code}/settings\",status=\"200\"} 2"), "{m}");
    assert!(
        m.contains("kurir_alarms{kind=\"client_secret_expired\"} 0"),
        "{m}"
    );

    // Revoking a key works at once, even for a key the server has cached.
    ok(dir, &["admin", "api-key", "revoke", "tests"]);
    let r = c
        .get(api("/api/v1/users"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    emu.shutdown().await;
}

#[tokio::test]
async fn openapi_documents_exactly_the_routes() {
    let tmp = tempfile::tempdir().unwrap();
    let key = provision(tmp.path());
    let srv = Server::start(tmp.path());
    let c = client();
    let doc: Value = c
        .get(format!("{}/api/openapi.json", srv.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    // Every route in the source is documented …
    let src = [
        include_str!("../../web/src/api/mod.rs"),
        include_str!("../../web/src/api/mail.rs"),
    ]
    .concat();
    let mut in_source = Vec::new();
    for part in src.split('"').skip(1).step_by(2) {
        if part.starts_with("/api/") {
            in_source.push(part.to_owned());
        }
    }
    assert!(in_source.len() >= 15, "{in_source:?}");
    for p in &in_source {
        assert!(
            paths.contains_key(p),
            "{p} is served but not in openapi.json"
        );
    }
    // … and every documented operation is served (a 404 must be ours, with a JSON error).
    let mut n = 0;
    for (path, ops) in paths {
        assert!(in_source.contains(path), "{path} documented but not routed");
        for method in ops.as_object().unwrap().keys() {
            let url = format!(
                "{}{}",
                srv.url,
                path.replace("{code}", "NOBODY")
                    .replace("{name}", "Nothing")
                    .replace("{id}", "999999")
            );
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = c
                .request(m, &url)
                .bearer_auth(&key)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body = r.text().await.unwrap();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            if status == StatusCode::NOT_FOUND {
                assert!(body.contains("\"error\""), "{method} {path}: unrouted 404");
            }
            n += 1;
        }
    }
    assert!(n >= 20, "{n} operations");
}

/// Every state-changing form of the UI refuses a wrong CSRF token.
#[tokio::test]
async fn every_ui_form_refuses_a_post_without_the_sessions_csrf_token() {
    // Each form handler used to check the token itself (eight hand-written checks); now the
    // AdminForm extractor does it for all of them. Every state-changing route is tried with a
    // valid session and a wrong token, and must refuse with 403 and change nothing.
    let tmp = tempfile::tempdir().unwrap();
    provision(tmp.path());
    ok(tmp.path(), &["users", "add", "ANNA"]);
    ok(
        tmp.path(),
        &["accounts", "add", "Inkorg", "--type", "general"],
    );
    let srv = Server::start(tmp.path());
    let c = client();
    let (session, _csrf) = sign_in(&c, &srv.url).await;
    for path in [
        "/logout",
        "/system",
        "/system/check",
        "/users",
        "/users/ANNA",
        "/users/ANNA/check",
        "/users/ANNA/remove",
        "/accounts",
        "/accounts/Inkorg",
        "/accounts/Inkorg/check",
        "/accounts/Inkorg/remove",
        "/webshop",
        "/webshop/check",
        "/outbox/1/retry",
        "/outbox/1/cancel",
    ] {
        let r = c
            .post(format!("{}{path}", srv.url))
            .header("cookie", &session)
            .form(&[("csrf", "not-the-token"), ("code", "EVE"), ("name", "Evil")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "POST {path}");
    }
    let users = ok(tmp.path(), &["users", "list"]);
    assert!(users.contains("ANNA") && !users.contains("EVE"), "{users}");
    let accounts = ok(tmp.path(), &["accounts", "list"]);
    assert!(
        accounts.contains("Inkorg") && !accounts.contains("Evil"),
        "{accounts}"
    );
}

/// The login form, CSRF on every form, the session cookie's attributes, logout, SIGTERM.
#[tokio::test]
async fn login_csrf_and_logout() {
    let tmp = tempfile::tempdir().unwrap();
    provision(tmp.path());
    let mut srv = Server::start(tmp.path());
    let c = client();
    let url = |p: &str| format!("{}{p}", srv.url);

    let r = c.get(url("/system")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=%2Fsystem");

    let r = c.get(url("/login")).send().await.unwrap();
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let login_csrf = set
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let html = r.text().await.unwrap();
    assert!(html.contains(&login_csrf));
    assert!(html.contains("Logga in"), "Swedish by default");

    let form = |user: &str, pw: &str, csrf: &str| {
        vec![
            ("username", user.to_owned()),
            ("password", pw.to_owned()),
            ("csrf", csrf.to_owned()),
            ("next", "/system".to_owned()),
        ]
    };
    // A login without the matching CSRF cookie is refused (login CSRF).
    let r = c
        .post(url("/login"))
        .form(&form("admin", ADMIN_PASSWORD, &login_csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let cookie_hdr = format!("kurir_login_csrf={login_csrf}");
    let r = c
        .post(url("/login"))
        .header("cookie", &cookie_hdr)
        .form(&form("admin", "wrong password!!", &login_csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login?error=1")
    );
    let r = c
        .post(url("/login"))
        .header("cookie", &cookie_hdr)
        .form(&form("admin", ADMIN_PASSWORD, &login_csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/system");
    let session_set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("kurir_session="))
        .expect("session cookie");
    assert!(session_set.contains("HttpOnly") && session_set.contains("SameSite=Strict"));
    let session = session_set.split(';').next().unwrap().to_owned();

    let r = c
        .get(url("/system?lang=en"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("System settings") && html.contains("Program-ID (klient)"));
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();

    // Every form needs the session's CSRF token.
    let change = |csrf: &str| {
        vec![
            ("csrf", csrf.to_owned()),
            ("v:tenant_id", "contoso.onmicrosoft.com".to_owned()),
        ]
    };
    for forged in ["", "0000", &csrf[..csrf.len() - 1]] {
        let r = c
            .post(url("/system"))
            .header("cookie", &session)
            .form(&change(forged))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "csrf '{forged}'");
    }
    for path in ["/users", "/accounts", "/system/check", "/logout"] {
        let r = c
            .post(url(path))
            .header("cookie", &session)
            .form(&[("code", "X"), ("name", "X")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} without CSRF");
    }
    let r = c
        .post(url("/system"))
        .header("cookie", &session)
        .form(&change(&csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let shown = ok(tmp.path(), &["settings", "show", "--json"]);
    let v: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["tenant_id"]["value"], "contoso.onmicrosoft.com");

    // A refused value is shown beside its field and changes nothing.
    let r = c
        .post(url("/system"))
        .header("cookie", &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("v:tenant_id", "common"),
            ("v:client_id", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("field-error"));
    let v: Value = serde_json::from_str(&ok(tmp.path(), &["settings", "show", "--json"])).unwrap();
    assert_eq!(v["tenant_id"]["value"], "contoso.onmicrosoft.com");
    assert_eq!(v["client_id"]["value"], Value::Null);

    // Logout ends the session on the server, not just in the browser.
    let r = c
        .post(url("/logout"))
        .header("cookie", &session)
        .form(&[("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = c
        .get(url("/system"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "session still valid after logout"
    );

    let status = srv.sigterm();
    assert!(
        status.success(),
        "kurir serve stops cleanly on SIGTERM: {status}"
    );
}

/// The ERP's contract over HTTP (issue #16.5): a cursor feed of the import queue and of the
/// messages that never skips or repeats, a claim per consumer that expires, an ack that needs
/// the claim, and an acknowledged entry that is never offered again.
#[tokio::test]
async fn the_erp_follows_the_feeds_and_claims_and_acknowledges_imports_over_http() {
    use kurir_store::MessageStore;
    use kurir_store::messages::MessageStatus;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = provision(dir);
    ok(
        dir,
        &[
            "accounts",
            "add",
            "M2M",
            "--type",
            "monitor-to-monitor",
            "--mailbox",
            "m2m@contoso.com",
        ],
    );
    let store = kurir_store::SqliteStore::open(dir).await.unwrap();
    let batch = (1..=3)
        .map(|n| {
            let raw = format!("Message-ID: <{n}@supplier.test>\r\n\r\norder {n}\r\n");
            incoming(n, MessageStatus::Stored, raw.as_bytes())
        })
        .collect();
    store.record_batch("M2M", batch).await.unwrap();
    let staged = store.staged_imports("M2M").await.unwrap();
    let ids: Vec<i64> = staged.iter().map(|e| e.id).collect();
    store.mark_imports_ready(&ids).await.unwrap();

    let mut srv = Server::start_with(dir, &["--no-intake", "--no-outbox"]);
    let c = client();
    let get = |p: String| {
        let req = c.get(format!("{}{p}", srv.url)).bearer_auth(&key);
        async move {
            let r = req.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let post = |p: String, body: Value| {
        let req = c
            .post(format!("{}{p}", srv.url))
            .bearer_auth(&key)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let id_list = |v: &Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect()
    };

    // The feed, two at a time from the last id seen: every entry once, in order.
    let (_, page1) = get("/api/v1/imports?after=0&limit=2".into()).await;
    let last = id_list(&page1)[1];
    let (_, page2) = get(format!("/api/v1/imports?after={last}&limit=2")).await;
    assert_eq!([id_list(&page1), id_list(&page2)].concat(), ids);
    let (_, msgs) = get("/api/v1/messages?after=0".into()).await;
    let first = msgs[0]["id"].as_i64().unwrap();
    let (_, rest) = get(format!("/api/v1/messages?after={first}")).await;
    assert_eq!(rest.as_array().unwrap().len(), 2, "{rest}");

    // Worker A claims the first entry; worker B is told it is taken, and until when.
    let (st, a) = post(
        format!("/api/v1/imports/{}/claim", ids[0]),
        json!({"ttl_secs": 60}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{a}");
    let token = a["claim"].as_str().unwrap().to_owned();
    assert!(a["claimed_until"].as_str().unwrap().contains('T'), "{a}");
    let (st, b) = post(format!("/api/v1/imports/{}/claim", ids[0]), json!({})).await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("claimed by another"),
        "{b}"
    );
    let (_, pending) = get("/api/v1/imports?pending=true".into()).await;
    assert_eq!(id_list(&pending), ids[1..]);

    // Only the claim acks; an ack is idempotent; the entry is never offered again.
    let (st, _) = post(
        format!("/api/v1/imports/{}/ack", ids[0]),
        json!({"claim": "not-mine"}),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    for _ in 0..2 {
        let (st, v) = post(
            format!("/api/v1/imports/{}/ack", ids[0]),
            json!({"claim": token}),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["state"], "picked_up");
    }
    let (st, v) = post(format!("/api/v1/imports/{}/claim", ids[0]), json!({})).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(v["error"].as_str().unwrap().contains("acknowledged"), "{v}");
    let (_, pending) = get("/api/v1/imports?pending=true".into()).await;
    assert!(!id_list(&pending).contains(&ids[0]));
    let (_, all) = get("/api/v1/imports".into()).await;
    assert_eq!(all[0]["state"], "picked_up");
    assert!(all[0]["acked_at"].is_string(), "{all}");

    // Bad input: a ttl out of range, an unknown entry.
    let (st, _) = post(
        format!("/api/v1/imports/{}/claim", ids[1]),
        json!({"ttl_secs": 0}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = post("/api/v1/imports/999999/claim".into(), json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(srv.sigterm().success());
}

const M2M_RAW: &[u8] = b"From: orders@supplier.test\r\nTo: m2m@contoso.com\r\nSubject: Order 1001\r\nMessage-ID: <order-1001@supplier.test>\r\n\r\n(the XML and PDF parts)\r\n";

fn incoming(
    n: u32,
    status: kurir_store::messages::MessageStatus,
    raw: &[u8],
) -> kurir_store::messages::NewMessage {
    use kurir_store::messages::{AttachmentInfo, MessageStatus, NewImport, NewMessage, RawMime};
    let ok = status == MessageStatus::Stored;
    NewMessage {
        server_id: format!("graph:msg-{n}"),
        dedupe_key: format!("mid:{n}@supplier.test"),
        message_id: Some(format!("{n}@supplier.test")),
        content_hash: format!("{n:064}"),
        status,
        reason: (!ok).then(|| {
            "a Monitor-to-Monitor message must carry an XML business document, and this one has none"
                .to_owned()
        }),
        handler: "monitor-to-monitor".into(),
        from: Some("orders@supplier.test".into()),
        to: Some("m2m@contoso.com".into()),
        subject: Some(if ok { "Order 1001" } else { "Hello" }.into()),
        date: Some("2026-06-01T10:00:00Z".into()),
        size: raw.len() as u64,
        attachments: if ok {
            vec![
                AttachmentInfo {
                    name: Some("order-1001.xml".into()),
                    content_type: "application/xml".into(),
                    size: 2048,
                },
                AttachmentInfo {
                    name: Some("order-1001.pdf".into()),
                    content_type: "application/pdf".into(),
                    size: 40960,
                },
            ]
        } else {
            Vec::new()
        },
        raw: RawMime::Inline(raw.to_vec()),
        imports: if ok {
            vec![NewImport {
                kind: "xml".into(),
                file_name: format!("{n}-order-1001.xml"),
                content_type: Some("application/xml".into()),
                size: 2048,
            }]
        } else {
            Vec::new()
        },
    }
}

/// The mail side of the API and the pages: outgoing messages in every state (put into the store
/// the way the workers leave them), incoming messages with a quarantined one, an account that
/// fails, over real HTTP against `kurir serve --no-intake --no-outbox` (nothing moves by itself).
#[tokio::test]
async fn outbox_incoming_imports_health_and_the_outbox_alarm() {
    use kurir_store::messages::MessageStatus;
    use kurir_store::outbox::{NewOutgoing, Outcome, now_ms};
    use kurir_store::{MessageStore, OutboxStore};

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = provision(dir);
    ok(
        dir,
        &["users", "add", "ANNA", "--email", "anna@contoso.com"],
    );
    ok(
        dir,
        &[
            "accounts",
            "add",
            "M2M",
            "--type",
            "monitor-to-monitor",
            "--mailbox",
            "m2m@contoso.com",
        ],
    );
    let store = kurir_store::SqliteStore::open(dir).await.unwrap();
    let out = |subject: &str| {
        NewOutgoing {
        sender_user: "ANNA".into(),
        origin: "cli".into(),
        from: Some("anna@contoso.com".into()),
        recipients: vec!["customer@example.test".into()],
        subject: Some(subject.into()),
        message_id: Some(format!("<{subject}@contoso.com>")),
        raw: format!("From: anna@contoso.com\r\nTo: customer@example.test\r\nSubject: {subject}\r\n\r\nHi\r\n").into_bytes(),
    }
    };
    let failed = store.enqueue(out("Invoice 17")).await.unwrap();
    let sent = store.enqueue(out("Invoice 18")).await.unwrap();
    let queued = store.enqueue(out("Invoice 19")).await.unwrap();
    let leased = store.lease_due(now_ms(), 60_000, 2).await.unwrap();
    assert_eq!(
        leased.iter().map(|l| l.message.id).collect::<Vec<_>>(),
        [failed, sent]
    );
    let explained =
        "AADSTS7000215: Invalid client secret provided. Fix: paste the secret's Value, not its ID";
    assert!(
        store
            .finish(
                failed,
                &leased[0].lease_token,
                Outcome::Failed {
                    error: explained.into()
                }
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .finish(
                sent,
                &leased[1].lease_token,
                Outcome::Sent {
                    via: "graph".into(),
                    reply: "202 Accepted".into()
                }
            )
            .await
            .unwrap()
    );
    let ids = store
        .record_batch(
            "M2M",
            vec![
                incoming(1, MessageStatus::Stored, M2M_RAW),
                incoming(
                    2,
                    MessageStatus::Quarantined,
                    b"Subject: Hello\r\n\r\nno XML\r\n",
                ),
            ],
        )
        .await
        .unwrap();
    let (stored_id, quarantined_id) = (ids[0].id(), ids[1].id());
    store.record_pass("M2M", Ok(2)).await.unwrap();
    store
        .record_pass(
            "Leverantörsfakturor",
            Err("AADSTS7000222: the client secret expired. Fix: create a new one".into()),
        )
        .await
        .unwrap();

    let srv = Server::start_with(dir, &["--no-intake", "--no-outbox"]);
    let c = client();
    let get = |p: &str| {
        let req = c.get(format!("{}{p}", srv.url)).bearer_auth(&key);
        async move { req.send().await.unwrap() }
    };
    let post = |p: &str| {
        let req = c.post(format!("{}{p}", srv.url)).bearer_auth(&key);
        async move { req.send().await.unwrap() }
    };

    // The outbox, filtered, and one message.
    let all: Value = get("/api/v1/outbox").await.json().await.unwrap();
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    let f: Value = get("/api/v1/outbox?state=failed&user=anna")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(f.as_array().unwrap().len(), 1, "{f}");
    assert_eq!(f[0]["id"], failed);
    assert_eq!(f[0]["last_error"], explained);
    assert_eq!(
        get("/api/v1/outbox?state=lost").await.status(),
        StatusCode::BAD_REQUEST
    );
    let m: Value = get(&format!("/api/v1/outbox/{sent}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["state"], "sent");
    assert_eq!(m["via"], "graph");
    assert_eq!(m["attempts"], 1);
    let r = get("/api/v1/outbox/999999").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("no outgoing message 999999")
    );

    // The failed message is an alarm, in the API and in the metrics.
    let alarms: Value = get("/api/v1/alarms").await.json().await.unwrap();
    let outbox_alarm = alarms
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "outbox_failing")
        .unwrap_or_else(|| panic!("{alarms}"));
    assert_eq!(outbox_alarm["subject"], "user:ANNA");
    assert_eq!(outbox_alarm["severity"], "error");
    let sv: Value = get("/api/v1/alarms?lang=sv").await.json().await.unwrap();
    assert!(
        sv.to_string().contains("utgående meddelande misslyckades"),
        "{sv}"
    );
    let metrics = get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("kurir_alarms{kind=\"outbox_failing\"} 1"),
        "{metrics}"
    );

    // Account health: per account and per sender.
    let h: Value = get("/api/v1/account-health").await.json().await.unwrap();
    let acc = |name: &str| {
        h["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["account"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{h}"))
    };
    let m2m = acc("M2M");
    assert_eq!(m2m["last_24h_stored"], 1, "{h}");
    assert_eq!(m2m["last_24h_quarantined"], 1);
    assert_eq!(m2m["error_is_current"], false);
    assert!(m2m["last_success"].is_string());
    let bad = acc("Leverantörsfakturor");
    assert_eq!(bad["error_is_current"], true);
    assert_eq!(bad["failures_in_a_row"], 1);
    assert!(
        bad["last_error"]
            .as_str()
            .unwrap()
            .contains("AADSTS7000222")
    );
    assert!(bad["last_success"].is_null());
    let anna = &h["senders"][0];
    assert_eq!(
        (
            anna["user"].as_str(),
            anna["failed"].as_u64(),
            anna["waiting"].as_u64(),
            anna["sent"].as_u64()
        ),
        (Some("ANNA"), Some(1), Some(1), Some(1)),
        "{h}"
    );

    // Retry and cancel: only queued or failed messages.
    let r = post(&format!("/api/v1/outbox/{failed}/retry")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let m: Value = r.json().await.unwrap();
    assert_eq!(
        (m["state"].as_str(), m["attempts"].as_u64()),
        (Some("queued"), Some(0)),
        "{m}"
    );
    let r = post(&format!("/api/v1/outbox/{sent}/retry")).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.unwrap().contains("is sent"));
    let r = post(&format!("/api/v1/outbox/{queued}/cancel")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "cancelled");
    assert_eq!(
        post(&format!("/api/v1/outbox/{queued}/cancel"))
            .await
            .status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        post("/api/v1/outbox/999999/retry").await.status(),
        StatusCode::NOT_FOUND
    );
    let alarms: Value = get("/api/v1/alarms").await.json().await.unwrap();
    assert!(
        !alarms.to_string().contains("outbox_failing"),
        "retried: {alarms}"
    );

    // Incoming messages: paging, one message with its import entry, the raw MIME.
    let page1: Value = get("/api/v1/messages?account=M2M&limit=1")
        .await
        .json()
        .await
        .unwrap();
    let page2: Value = get("/api/v1/messages?account=M2M&limit=1&offset=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page1[0]["id"], quarantined_id, "newest first");
    assert_eq!(page2[0]["id"], stored_id);
    assert_eq!(page2.as_array().unwrap().len(), 1);
    let q: Value = get("/api/v1/messages?status=quarantined")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(q.as_array().unwrap().len(), 1);
    assert!(q[0]["reason"].as_str().unwrap().contains("XML"));
    let m: Value = get(&format!("/api/v1/messages/{stored_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["attachments"][1]["name"], "order-1001.pdf");
    assert_eq!(m["imports"][0]["kind"], "xml");
    assert_eq!(m["imports"][0]["state"], "staged");
    assert_eq!(m["server_ids"][0], "graph:msg-1");
    let r = get(&format!("/api/v1/messages/{stored_id}/raw")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "message/rfc822");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".eml")
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), M2M_RAW);
    assert_eq!(
        get("/api/v1/messages/999999").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get("/api/v1/messages/x/raw").await.status(),
        StatusCode::NOT_FOUND
    );
    // A staged entry (its file not in the import folder yet) is not offered to the ERP.
    let imports: Value = get("/api/v1/imports?account=M2M")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(imports.as_array().unwrap().len(), 0, "{imports}");
    let staged = store.staged_imports("M2M").await.unwrap();
    store
        .mark_imports_ready(&staged.iter().map(|e| e.id).collect::<Vec<_>>())
        .await
        .unwrap();
    let imports: Value = get("/api/v1/imports?account=M2M")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(imports.as_array().unwrap().len(), 1);
    assert_eq!(imports[0]["message"], stored_id);
    let r = c
        .get(format!("{}/api/v1/outbox", srv.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The pages: behind the sign-in (the raw download too), Retry/Cancel need the CSRF token.
    let r = c
        .get(format!("{}/incoming/{stored_id}/raw", srv.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (session, csrf) = sign_in(&c, &srv.url).await;
    let page = |p: &str| {
        let req = c.get(format!("{}{p}", srv.url)).header("cookie", &session);
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.text().await.unwrap()
        }
    };
    let html = page("/outbox?lang=en").await;
    assert!(
        html.contains("Invoice 17") && html.contains("Sending user"),
        "{html}"
    );
    let html = page("/outbox").await;
    assert!(html.contains("<h1>Utkorg</h1>") && html.contains("Avsändande användare"));
    let html = page(&format!("/outbox/{sent}?lang=en")).await;
    assert!(
        html.contains("202 Accepted") && html.contains("Subject</th><td>Invoice 18"),
        "{html}"
    );
    let html = page("/incoming?account=M2M&lang=en").await;
    assert!(
        html.contains("Order 1001") && html.contains("order-1001.xml"),
        "{html}"
    );
    let html = page(&format!("/incoming/{stored_id}")).await;
    assert!(
        html.contains("Ladda ner original (.eml)")
            && html.contains(&format!("{stored_id}-order-1001.xml"))
    );
    let html = page("/quarantine?lang=en").await;
    assert!(
        html.contains("must carry an XML") && !html.contains("Order 1001"),
        "{html}"
    );
    let html = page("/health").await;
    assert!(
        html.contains("Kontohälsa") && html.contains("AADSTS7000222"),
        "{html}"
    );
    let html = page("/incoming/imports").await;
    assert!(
        // Marked ready above, when the API test made the entry available to the ERP.
        html.contains("Importkö") && html.contains("Klar för import"),
        "{html}"
    );
    let r = c
        .get(format!("{}/incoming/{stored_id}/raw", srv.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), M2M_RAW);
    let r = c
        .post(format!("{}/outbox/{failed}/cancel", srv.url))
        .header("cookie", &session)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(format!("{}/outbox/{failed}/cancel", srv.url))
        .header("cookie", &session)
        .form(&[("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"],
        format!("/outbox/{failed}?done=cancelled").as_str()
    );
    let r = c
        .post(format!("{}/outbox/{failed}/retry", srv.url))
        .header("cookie", &session)
        .form(&[("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["location"],
        format!("/outbox/{failed}?done=refused").as_str()
    );
    let m: Value = get(&format!("/api/v1/outbox/{failed}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["state"], "cancelled");
}

/// The login form's CSRF cookie value (a fresh one per GET /login).
async fn login_csrf(c: &reqwest::Client, base: &str) -> String {
    let r = c.get(format!("{base}/login")).send().await.unwrap();
    r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

async fn post_login(c: &reqwest::Client, base: &str, pw: &str) -> reqwest::Response {
    let csrf = login_csrf(c, base).await;
    c.post(format!("{base}/login"))
        .header("cookie", format!("kurir_login_csrf={csrf}"))
        .form(&[
            ("username", "admin"),
            ("password", pw),
            ("csrf", &csrf),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap()
}

/// 13.2: every wrong password cost an argon2id check, without limit. After the free failures
/// the sign-in is refused with 429 and Retry-After — even with the right password — without
/// checking it, and it works again once the lockout has passed.
#[tokio::test]
async fn login_brute_force_is_throttled_with_429() {
    let tmp = tempfile::tempdir().unwrap();
    provision(tmp.path());
    let srv = Server::start(tmp.path());
    let c = client();
    for i in 0..5 {
        let r = post_login(&c, &srv.url, &format!("guess number {i}")).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "attempt {i}");
        assert!(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login?error=1"),
            "attempt {i} is a plain failure"
        );
    }
    let r = post_login(&c, &srv.url, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=2).contains(&wait),
        "the first lockout is short: {wait}"
    );
    let text = r.text().await.unwrap();
    assert!(text.contains("inloggningar"), "Swedish by default: {text}");

    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    let r = post_login(&c, &srv.url, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/", "signed in after the lockout");
}

/// 13.3: the method of any request (and 404s) became a metric label, so a client could create
/// series without bound. Invented methods are counted as `other`, unknown paths as
/// `unmatched`; neither string reaches /metrics.
#[tokio::test]
async fn unknown_methods_and_paths_do_not_create_metric_series() {
    let tmp = tempfile::tempdir().unwrap();
    let key = provision(tmp.path());
    let srv = Server::start(tmp.path());
    let c = client();
    for i in 0..20 {
        let method = reqwest::Method::from_bytes(format!("XSERIES{i}").as_bytes()).unwrap();
        c.request(method, format!("{}/no-such-page-{i}", srv.url))
            .send()
            .await
            .unwrap();
        let method = reqwest::Method::from_bytes(format!("YSERIES{i}").as_bytes()).unwrap();
        c.request(method, format!("{}/system", srv.url))
            .send()
            .await
            .unwrap();
    }
    let m = c
        .get(format!("{}/metrics", srv.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!m.contains("SERIES"), "no invented method as a label: {m}");
    assert!(!m.contains("no-such-page"), "no raw path as a label: {m}");
    let other_unmatched = m
        .lines()
        .find(|l| {
            l.starts_with("kurir_http_requests_total{")
                && l.contains("method=\"other\"")
                && l.contains("route=\"unmatched\"")
        })
        .unwrap_or_else(|| panic!("the requests are counted as other/unmatched: {m}"));
    assert!(other_unmatched.ends_with(" 20"), "{other_unmatched}");
}

/// 13.9: /healthz answers without login, so it says up or down and nothing else.
#[tokio::test]
async fn healthz_shows_no_account_names_without_login() {
    let tmp = tempfile::tempdir().unwrap();
    provision(tmp.path());
    common::ok(
        tmp.path(),
        &[
            "accounts",
            "add",
            "Secret-Account-Name",
            "--type",
            "monitor-to-monitor",
            "--mailbox",
            "m2m@contoso.com",
        ],
    );
    common::ok(
        tmp.path(),
        &["users", "add", "ZORRO", "--email", "zorro@contoso.com"],
    );
    let srv = Server::start(tmp.path());
    let r = client()
        .get(format!("{}/healthz", srv.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"status": "ok"}));
}

/// 13.9: /metrics carries account names, user codes and secret expiry: without an API key
/// (or with a wrong one) it answers 401 and shows none of them.
#[tokio::test]
async fn metrics_require_api_key() {
    let tmp = tempfile::tempdir().unwrap();
    let key = provision(tmp.path());
    common::ok(
        tmp.path(),
        &["users", "add", "ZORRO", "--email", "zorro@contoso.com"],
    );
    let srv = Server::start(tmp.path());
    let c = client();
    let url = format!("{}/metrics", srv.url);
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body = r.text().await.unwrap();
    // The refusal names the key format (`kurir_…`), never a metric, an account or a user.
    for leak in [
        "kurir_http_requests_total",
        "# TYPE",
        "ZORRO",
        "m2m@contoso.com",
    ] {
        assert!(!body.contains(leak), "the 401 shows {leak:?}: {body}");
    }
    let r = c
        .get(&url)
        .bearer_auth("kurir_nope_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c.get(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("kurir_http_requests_total")
    );
}

/// 13.9: a DNS-rebinding page (evil.example resolving to 127.0.0.1) makes the browser send
/// `Host: evil.example`: refused with 421. The bind address, loopback names and the names
/// given with --allowed-host are served.
#[tokio::test]
async fn unexpected_host_header_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    provision(tmp.path());
    let srv = Server::start_with(tmp.path(), &["--allowed-host", "kurir.contoso.com"]);
    let c = client();
    let port = srv.url.rsplit(':').next().unwrap().to_owned();
    for host in [
        "evil.example",
        &format!("evil.example:{port}"),
        "127.0.0.1.evil.example",
    ] {
        for path in ["/healthz", "/login", "/api/v1/system/settings"] {
            let r = c
                .get(format!("{}{path}", srv.url))
                .header("host", host)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST, "{host} {path}");
            assert!(r.text().await.unwrap().contains("--allowed-host"));
        }
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "kurir.contoso.com".to_owned(),
    ] {
        let r = c
            .get(format!("{}/healthz", srv.url))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{host}");
    }
}
