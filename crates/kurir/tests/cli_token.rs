//! `kurir token` end to end: the real binary runs `kurir emulator` (the offline Entra ID) as a
//! separate process over HTTPS, is configured like an admin would, and gets tokens with every
//! flow the settings offer; refusals come back as Kurir's explanations.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

use serde_json::Value;

mod common;
use common::{kurir, ok, set_secret};

struct Emulator {
    child: Child,
    info: Value,
    _state: tempfile::TempDir,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_emulator() -> Emulator {
    let state = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kurir"))
        .args(["emulator", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("emulator JSON line: {e}: {line}"));
    Emulator {
        child,
        info,
        _state: state,
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}"))
}

fn configure(dir: &Path, emu: &Value) {
    ok(
        dir,
        &[
            "settings",
            "set",
            "method=exchange-online",
            &format!("client_id={}", s(emu, "client_id")),
            &format!("tenant_id={}", s(emu, "tenant_domain")),
            // The emulator is not Microsoft's cloud: the server switch, set with the CLI.
            "allow_custom_endpoints=true",
            &format!("authority={}", s(emu, "base_url")),
            &format!("ca_file={}", s(emu, "ca_path")),
        ],
    );
    set_secret(dir, &[], "client_secret", s(emu, "client_secret"));
}

fn token_json(dir: &Path, args: &[&str]) -> Value {
    let mut a = vec!["token", "--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(dir, &a)).unwrap()
}

#[test]
fn every_flow_from_settings_yields_a_token() {
    let emu = start_emulator();
    let info = &emu.info;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    configure(dir, info);

    // Client secret, Graph and Exchange audiences.
    let t = token_json(dir, &[]);
    assert_eq!(
        (s(&t, "flow"), s(&t, "audience")),
        ("client-secret", "https://graph.microsoft.com")
    );
    assert!(
        t["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "Mail.Read"),
        "{t}"
    );
    assert!(
        t.get("access_token").is_none(),
        "no token without --show-token"
    );
    let t = token_json(dir, &["--resource", "exchange"]);
    assert!(
        s(&t, "audience").starts_with("https://outlook.office365.com"),
        "{t}"
    );

    // Username/password for WEBSHOP, the account inheriting the system's secret.
    let user = &info["user"];
    ok(
        dir,
        &["users", "add", "WEBSHOP", "--email", s(user, "username")],
    );
    ok(
        dir,
        &[
            "settings",
            "set",
            "--user",
            "WEBSHOP",
            "auth_flow=username-password",
            &format!("exchange_username={}", s(user, "username")),
        ],
    );
    set_secret(
        dir,
        &["--user", "WEBSHOP"],
        "exchange_password",
        s(user, "password"),
    );
    let t = token_json(dir, &["--webshop", "--resource", "exchange"]);
    assert_eq!(s(&t, "flow"), "username-password");
    assert_eq!(s(&t, "user"), s(user, "username"));
    assert!(s(&t, "scopes").contains("IMAP.AccessAsUser.All"), "{t}");
    ok(
        dir,
        &[
            "accounts",
            "add",
            "Monitor-to-Monitor",
            "--type",
            "monitor-to-monitor",
            "--mailbox",
            s(user, "username"),
        ],
    );
    assert_eq!(
        s(
            &token_json(dir, &["--account", "Monitor-to-Monitor"]),
            "flow"
        ),
        "client-secret"
    );

    // Certificate on user ANNA (cert as a file reference, key as a secret file).
    ok(
        dir,
        &["users", "add", "ANNA", "--email", s(user, "username")],
    );
    ok(
        dir,
        &[
            "settings",
            "set",
            "--user",
            "ANNA",
            "auth_flow=certificate",
            &format!("certificate=@{}", s(info, "certificate_path")),
        ],
    );
    let key_arg = format!("certificate_key={}", s(info, "private_key_path"));
    ok(
        dir,
        &[
            "settings",
            "set",
            "--user",
            "ANNA",
            "--secret-file",
            &key_arg,
        ],
    );
    let t = token_json(dir, &["--user", "ANNA"]);
    assert_eq!(s(&t, "flow"), "certificate");
    assert_eq!(s(&t, "audience"), "https://graph.microsoft.com");

    // --show-token prints a JWT.
    let t = token_json(dir, &["--show-token"]);
    assert_eq!(s(&t, "access_token").split('.').count(), 3);
}

#[test]
fn refusals_are_explained_in_english_and_swedish() {
    let emu = start_emulator();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    configure(dir, &emu.info);
    set_secret(
        dir,
        &[],
        "client_secret",
        "Wrong~SecretValue-0123456789abcdefghijk",
    );
    let out = kurir(dir).args(["token"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("AADSTS7000215") && err.contains("secret's ID instead of its Value"),
        "{err}"
    );
    assert!(err.contains("Trace ID:"), "{err}");
    assert!(
        !err.contains("Wrong~SecretValue"),
        "the secret is never echoed: {err}"
    );
    let out = kurir(dir).args(["token", "--lang", "sv"]).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("Klienthemlighet") && err.contains("Spårnings-ID"),
        "{err}"
    );

    // An unknown tenant.
    set_secret(dir, &[], "client_secret", s(&emu.info, "client_secret"));
    ok(
        dir,
        &[
            "settings",
            "set",
            "tenant_id=00000000-0000-0000-0000-00000000dead",
        ],
    );
    let out = kurir(dir).args(["token"]).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("AADSTS90002"), "{err}");

    // Incomplete settings never reach Entra: bad input.
    ok(dir, &["settings", "unset", "client_id"]);
    let out = kurir(dir).args(["token"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no Application (client) ID"));
}
