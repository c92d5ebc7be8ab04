//! The real `kurir` binary in a temporary data directory: the seed's whole scenario configured
//! from the command line, every kind of bad input refused with exit status 2 and one line, and
//! secrets kept out of output and off the disk in plaintext.

use std::path::Path;

use serde_json::Value;

mod common;
use common::{kurir, ok, ok_stdin, refused};

const CLIENT: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const ANNA_TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const SECRET: &str = "Xy8Q~TheClientSecretValueNeverShown_9cdef";
const PASSWORD: &str = "Sommar-2026-Lösenord!";

fn show_json(dir: &Path, scope: &[&str]) -> Value {
    let mut args = vec!["settings", "show", "--json"];
    args.extend_from_slice(scope);
    serde_json::from_str(&ok(dir, &args)).unwrap()
}

fn field<'a>(v: &'a Value, k: &str) -> (&'a Value, &'a str) {
    (&v[k]["value"], v[k]["source"].as_str().unwrap())
}

fn configure_seed_scenario(dir: &Path) {
    ok(
        dir,
        &[
            "settings",
            "set",
            "method=exchange-online",
            &format!("client_id={CLIENT}"),
            &format!("tenant_id={TENANT}"),
            "auth_flow=client-secret",
            "client_secret_expires=2099-01-01",
        ],
    );
    ok_stdin(
        dir,
        &["settings", "set", "--secret-stdin", "client_secret"],
        &format!("{SECRET}\n"),
    );
    ok(
        dir,
        &["users", "add", "ANNA", "--email", "anna@contoso.com"],
    );
    ok(
        dir,
        &[
            "settings",
            "set",
            "--user",
            "anna",
            &format!("tenant_id={ANNA_TENANT}"),
        ],
    );
    ok(
        dir,
        &["users", "add", "WEBSHOP", "--email", "webshop@contoso.com"],
    );
    ok(
        dir,
        &[
            "settings",
            "set",
            "--user",
            "WEBSHOP",
            "auth_flow=username-password",
            "exchange_username=webshop@contoso.com",
        ],
    );
    let out = kurir(dir)
        .args([
            "settings",
            "set",
            "--user",
            "WEBSHOP",
            "--secret-env",
            "exchange_password=WEBSHOP_PW",
        ])
        .env("WEBSHOP_PW", PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(
        dir,
        &[
            "accounts",
            "add",
            "Monitor-to-Monitor",
            "--type",
            "monitor-to-monitor",
            "--mailbox",
            "m2m@contoso.com",
        ],
    );
    ok(
        dir,
        &[
            "settings",
            "set",
            "--webshop",
            "method=according-to-user-settings",
        ],
    );
}

#[test]
fn the_seed_scenario_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    configure_seed_scenario(dir);

    let system = show_json(dir, &[]);
    assert_eq!(
        field(&system, "method"),
        (&Value::from("exchange-online"), "system")
    );
    assert_eq!(field(&system, "client_secret").1, "system");
    assert_eq!(system["client_secret"]["value"], "••••cdef");
    assert_eq!(
        field(&system, "authority"),
        (&Value::from("https://login.microsoftonline.com"), "default")
    );

    let anna = show_json(dir, &["--user", "ANNA"]);
    assert_eq!(
        field(&anna, "tenant_id"),
        (&Value::from(ANNA_TENANT), "user")
    );
    assert_eq!(field(&anna, "client_id"), (&Value::from(CLIENT), "system"));
    assert_eq!(
        field(&anna, "email"),
        (&Value::from("anna@contoso.com"), "user")
    );

    let webshop_user = show_json(dir, &["--user", "WEBSHOP"]);
    assert_eq!(
        field(&webshop_user, "auth_flow"),
        (&Value::from("username-password"), "user")
    );
    assert_eq!(field(&webshop_user, "exchange_password").1, "user");
    assert_eq!(webshop_user["exchange_password"]["value"], "••••ord!");

    let account = show_json(dir, &["--account", "Monitor-to-Monitor"]);
    for k in [
        "method",
        "client_id",
        "tenant_id",
        "auth_flow",
        "client_secret",
    ] {
        assert_eq!(field(&account, k).1, "system", "account inherits {k}");
    }
    assert_eq!(
        field(&account, "type"),
        (&Value::from("monitor-to-monitor"), "account")
    );
    assert_eq!(
        field(&account, "processed_folder"),
        (&Value::from("Processed"), "default")
    );

    let webshop = show_json(dir, &["--webshop"]);
    assert_eq!(
        field(&webshop, "webshop_method"),
        (&Value::from("according-to-user-settings"), "webshop")
    );
    assert_eq!(webshop["sends_as"]["value"], "WEBSHOP");
    assert_eq!(
        field(&webshop, "auth_flow"),
        (&Value::from("username-password"), "user")
    );
    assert_eq!(
        field(&webshop, "exchange_username"),
        (&Value::from("webshop@contoso.com"), "user")
    );

    // Everything valid.
    let out = ok(dir, &["settings", "validate", "--all"]);
    assert!(out.contains("No problems found."), "{out}");

    // Unset: back to inherited.
    ok(dir, &["settings", "unset", "--user", "ANNA", "tenant_id"]);
    assert_eq!(
        field(&show_json(dir, &["--user", "ANNA"]), "tenant_id"),
        (&Value::from(TENANT), "system")
    );

    // The human table names sources too.
    let table = ok(dir, &["settings", "show", "--user", "WEBSHOP"]);
    assert!(
        table.contains("Användarnamn (Exchange)") && table.contains("user WEBSHOP"),
        "{table}"
    );

    // Listings.
    let users: Value = serde_json::from_str(&ok(dir, &["users", "list", "--json"])).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 2);
    let accounts = ok(dir, &["accounts", "list"]);
    assert!(
        accounts.contains("Monitor-to-Monitor") && accounts.contains("m2m@contoso.com"),
        "{accounts}"
    );
}

#[test]
fn secrets_never_appear_in_output_or_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    configure_seed_scenario(dir);
    let mut everything = String::new();
    for args in [
        vec!["settings", "show"],
        vec!["settings", "show", "--json"],
        vec!["settings", "show", "--webshop", "--json"],
        vec!["settings", "export", "--include-secrets"],
        vec!["settings", "export"],
        vec!["users", "list", "--json"],
    ] {
        everything.push_str(&ok(dir, &args));
    }
    assert!(!everything.contains(SECRET) && !everything.contains(PASSWORD));
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for s in [SECRET, PASSWORD] {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "plaintext secret on disk"
            );
        }
    }
    // A secret on the command line is refused without echoing it.
    let err = refused(
        dir,
        &["settings", "set", &format!("client_secret={SECRET}")],
        "is a secret and is not accepted on the command line",
    );
    assert!(!err.contains(SECRET));
    refused(
        dir,
        &[
            "settings",
            "set",
            "--user",
            "WEBSHOP",
            "exchange_password=hunter2",
        ],
        "--secret-stdin exchange_password",
    );
    // No terminal to prompt on: say how else to give it.
    refused(
        dir,
        &["settings", "set", "client_secret"],
        "no terminal to prompt on",
    );
}

#[test]
fn bad_values_are_refused_with_a_reason_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["users", "add", "ANNA"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "settings",
                "set",
                "client_id=3f2504e0-4f89-11d3-9a0c-0305e82c330",
            ],
            "is not a GUID",
        ),
        (
            &["settings", "set", "tenant_id=common"],
            "multi-tenant alias",
        ),
        (
            &["settings", "set", "tenant_id=contoso"],
            "neither a GUID nor a domain",
        ),
        (
            &["settings", "set", "method=exchange"],
            "is not one of: exchange-online, smtp, none",
        ),
        (
            &["settings", "set", "auth_flow=oauth"],
            "client-secret, username-password, certificate",
        ),
        (
            &["settings", "set", "client_secret_expires=31/12/2026"],
            "YYYY-MM-DD",
        ),
        (
            &["settings", "set", "authority=http://login.example.com"],
            "plain http",
        ),
        (&["settings", "set", "imap_port=99999"], "not a port number"),
        (
            &["settings", "set", "--user", "ANNA", "email=anna"],
            "not an e-mail address",
        ),
        (
            &["settings", "set", "no_such_key=1"],
            "unknown setting 'no_such_key'",
        ),
        (
            &["settings", "set", "mailbox=a@b.se"],
            "cannot be set on the system",
        ),
        (
            &[
                "settings",
                "set",
                "--user",
                "OLLE",
                "email=olle@contoso.com",
            ],
            "there is no user OLLE",
        ),
        (
            &["settings", "show", "--account", "Nope"],
            "there is no incoming-mail account 'Nope'",
        ),
        (&["users", "add", "ANNA"], "already exists"),
        (&["users", "add", "AN NA"], "is not a user code"),
        (
            &["accounts", "add", "X", "--protocol", "ews"],
            "is not one of: graph, imap, pop3",
        ),
        (
            &["settings", "set", "--webshop", "method=sometimes"],
            "according-to-user-settings",
        ),
    ];
    for (args, needle) in cases {
        refused(dir, args, needle);
    }
    let id = "0a1b2c3d-1111-2222-3333-444455556666";
    let out = kurir(dir)
        .args(["settings", "set", "--secret-stdin", "client_secret"])
        .write_stdin(id)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret's ID"));
    // One bad value in a command: nothing from that command is written.
    refused(
        dir,
        &[
            "settings",
            "set",
            &format!("client_id={CLIENT}"),
            "tenant_id=common",
        ],
        "multi-tenant alias",
    );
    assert_eq!(show_json(dir, &[])["client_id"]["value"], Value::Null);
}

#[test]
fn validation_names_the_field_the_level_and_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(
        dir,
        &[
            "settings",
            "set",
            "method=exchange-online",
            &format!("tenant_id={TENANT}"),
            "auth_flow=username-password",
        ],
    );
    ok(
        dir,
        &["users", "add", "WEBSHOP", "--email", "webshop@contoso.com"],
    );
    let out = kurir(dir)
        .args(["settings", "validate", "--user", "WEBSHOP"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Exchange Online: user WEBSHOP has no Application (client) ID (client_id). Fix: kurir settings set client_id="), "{text}");
    assert!(text.contains("username-password flow: user WEBSHOP has no Username (Exchange) (exchange_username). Fix: kurir settings set --user WEBSHOP exchange_username="), "{text}");
    assert!(
        text.contains("user WEBSHOP has no Password (Exchange)"),
        "{text}"
    );
    let out = kurir(dir)
        .args(["settings", "validate", "--all", "--json"])
        .output()
        .unwrap();
    let problems: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = problems
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["field"] == "exchange_username")
        .unwrap();
    assert_eq!(p["fix_at"], "user:WEBSHOP");
    assert_eq!(p["severity"], "error");
    // The webshop according to user settings without user WEBSHOP.
    ok(dir, &["users", "remove", "WEBSHOP"]);
    let out = kurir(dir)
        .args(["settings", "validate", "--webshop"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("there is no user WEBSHOP"));
}

#[test]
fn a_wrong_master_key_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key_a = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
    let key_b = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";
    let out = kurir(dir)
        .args(["settings", "set", "--secret-env", "client_secret=S"])
        .env("KURIR_MASTER_KEY", key_a)
        .env("S", SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kurir(dir)
        .args(["settings", "show"])
        .env("KURIR_MASTER_KEY", key_b)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("is not the key this data directory was encrypted with"),
        "{err}"
    );
    assert!(err.contains("KURIR_MASTER_KEY"), "{err}");
    // A key that is not a key at all is bad input.
    let out = kurir(dir)
        .args(["settings", "show"])
        .env("KURIR_MASTER_KEY", "hunter2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not 32 bytes"));
}

#[test]
fn export_and_import_move_settings_between_installations() {
    let a = tempfile::tempdir().unwrap();
    configure_seed_scenario(a.path());
    let without = a.path().join("without.toml");
    ok(
        a.path(),
        &["settings", "export", "-o", without.to_str().unwrap()],
    );
    let text = std::fs::read_to_string(&without).unwrap();
    assert!(
        text.contains("[account.Monitor-to-Monitor]") && !text.contains("sealed"),
        "{text}"
    );

    let b = tempfile::tempdir().unwrap();
    let out = ok(b.path(), &["settings", "import", without.to_str().unwrap()]);
    assert!(out.contains("2 users and 1 accounts"), "{out}");
    let webshop = show_json(b.path(), &["--webshop"]);
    assert_eq!(
        field(&webshop, "exchange_username"),
        (&Value::from("webshop@contoso.com"), "user")
    );
    assert_eq!(
        webshop["exchange_password"]["value"],
        Value::Null,
        "secrets stay behind"
    );

    // With secrets: only where the same master key is.
    let with = a.path().join("with.toml");
    ok(
        a.path(),
        &[
            "settings",
            "export",
            "--include-secrets",
            "-o",
            with.to_str().unwrap(),
        ],
    );
    refused(
        b.path(),
        &["settings", "import", with.to_str().unwrap()],
        "encrypted under another master key",
    );
    let c = tempfile::tempdir().unwrap();
    std::fs::copy(a.path().join("master.key"), c.path().join("master.key")).unwrap();
    ok(c.path(), &["settings", "import", with.to_str().unwrap()]);
    assert_eq!(
        show_json(c.path(), &[])["client_secret"]["value"],
        "••••cdef"
    );

    // Plaintext secrets in an import file are refused.
    let bad = a.path().join("bad.toml");
    std::fs::write(&bad, "format = 1\n[system]\nclient_secret = \"plain\"\n").unwrap();
    refused(
        b.path(),
        &["settings", "import", bad.to_str().unwrap()],
        "secret given in plain text",
    );
}
