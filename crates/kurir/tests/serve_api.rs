//! The REST API and the web UI's security over real HTTP: the real `kurir serve` binary on a
//! temporary data directory, with a real Entra emulator for Test connection.
//!
//! Covers: API keys (missing, wrong, revoked), the settings round trip with sources and masked
//! secrets, refused values changing nothing, Test connection explaining AADSTS7000215 in both
//! languages, the OpenAPI document matching the routes, the login form, CSRF on every form,
//! logout, metrics, and a clean stop on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{ok, ok_stdin};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "correct horse battery staple";
const WRONG_SECRET: &str = "kUr~8Q.wrong_SecretValue-7fJ2xLw9pZ4tN6vB1mC3";

/// A running `kurir serve`; stopped with SIGTERM when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kurir"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("KURIR_DATA_DIR", dir)
            .env_remove("KURIR_MASTER_KEY")
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

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Sets up an admin and an API key through the CLI; returns the key.
fn provision(dir: &Path) -> String {
    ok_stdin(
        dir,
        &["admin", "users", "add", "admin", "--password-stdin"],
        ADMIN_PASSWORD,
    );
    ok(dir, &["admin", "api-key", "create", "tests"])
        .trim()
        .to_owned()
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

    // Test connection against the emulator with a wrong secret: AADSTS7000215, explained.
    let emu = kurir_emulator::Emulator::start(kurir_emulator::EmulatorConfig::demo())
        .await
        .unwrap();
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
    let src = include_str!("../../web/src/api.rs");
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
