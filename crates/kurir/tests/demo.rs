//! `kurir demo` through the real binary: `--check` (the CI round trip), the running demo with
//! mail flowing in and out, and the demo refusing a data directory with real settings.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{kurir, ok};
use serde_json::Value;

#[test]
fn demo_check_does_a_full_round_trip() {
    let out = Command::new(env!("CARGO_BIN_EXE_kurir"))
        .args(["demo", "--check"])
        .env_remove("KURIR_DATA_DIR")
        .env_remove("KURIR_MASTER_KEY")
        .env_remove("KURIR_DATABASE_URL")
        .env_remove("KURIR_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kurir demo --check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "ok    web UI answers /healthz",
        "ok    the seed's settings are complete and valid",
        "ok    WEBSHOP's message sent through Graph sendMail",
        "ok    taken in by the Monitor-to-Monitor account (stored once)",
        "ok    XML order and PDF in the ERP's import queue",
        "ok    moved to the Processed folder on the server",
        "ok    /metrics counts the messages",
    ] {
        assert!(stdout.contains(step), "missing step '{step}' in:\n{stdout}");
    }
    assert!(stdout.contains("demo check passed"), "{stdout}");
}

#[test]
fn demo_refuses_a_data_dir_with_real_settings() {
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["settings", "set", "method=exchange-online"]);
    let out = kurir(tmp.path()).args(["demo"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the demo rewrites settings"),
        "says why and what to do: {stderr}"
    );
    // Nothing was changed: the setting is still the only one.
    let shown = ok(tmp.path(), &["settings", "show", "--json"]);
    assert!(!shown.contains("kurirdemo"), "{shown}");
}

/// The running demo: its JSON line gives a login that works, and mail comes in and goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_the_ui_and_mail_flows() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kurir"))
        .args(["demo", "--listen", "127.0.0.1:0", "--every", "1"])
        .env("KURIR_DATA_DIR", tmp.path())
        .env_remove("KURIR_MASTER_KEY")
        .env_remove("KURIR_DATABASE_URL")
        .env_remove("KURIR_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let base = info["listen"].as_str().unwrap().to_owned();
    let password = info["admin"]["password"].as_str().unwrap().to_owned();
    assert_eq!(info["admin"]["username"], "admin");
    assert!(password.len() >= 16);

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Sign in with the printed login: the login form's CSRF cookie and field, then the form.
    let r = http.get(format!("{base}/login")).send().await.unwrap();
    let login_csrf = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let r = http
        .post(format!("{base}/login"))
        .header("cookie", format!("kurir_login_csrf={login_csrf}"))
        .form(&[
            ("username", "admin"),
            ("password", password.as_str()),
            ("csrf", login_csrf.as_str()),
            ("next", "/users"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["location"],
        "/users",
        "the printed login signs in"
    );
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("kurir_session="))
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = http
        .get(format!("{base}/users"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("WEBSHOP") && page.contains("ANNA"), "{page}");

    // /metrics needs an API key: made on the server, as a Prometheus operator would.
    let out = Command::new(env!("CARGO_BIN_EXE_kurir"))
        .args(["admin", "api-key", "create", "prometheus"])
        .env("KURIR_DATA_DIR", tmp.path())
        .env_remove("KURIR_MASTER_KEY")
        .env_remove("KURIR_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(
        r.status(),
        reqwest::StatusCode::UNAUTHORIZED,
        "/metrics without a key"
    );

    // Mail in (demo mail + an order a second) and out (the webshop, ANNA).
    let t0 = Instant::now();
    let (mut inbound, mut outbound) = (0.0, 0.0);
    while t0.elapsed() < Duration::from_secs(60) {
        let text = http
            .get(format!("{base}/metrics"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let sum = |name: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        inbound = sum("kurir_messages_in_total{");
        outbound = sum("kurir_messages_out_total{");
        if inbound >= 5.0 && outbound >= 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let text = http
        .get(format!("{base}/metrics"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("kurir_token_requests_total{outcome=\"ok\"}"),
        "token requests are counted: {text}"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(
        inbound >= 5.0 && outbound >= 2.0,
        "mail flows: {inbound} in, {outbound} out"
    );
    assert!(status.success(), "the demo stops cleanly on SIGTERM");
}
