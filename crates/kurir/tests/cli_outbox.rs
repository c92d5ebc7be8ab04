//! `kurir send` (queue only) and `kurir outbox list|show|cancel` end to end with the real
//! binary: what the queue shows, in text and JSON, and that no secret ever appears in it.
//! Nothing is sent (no `--wait`, no `outbox run`), so no emulator or mail server is needed.

use serde_json::Value;

mod common;
use common::{kurir, ok, refused, set_secret};

const SECRET: &str = "kUr~7Q.cli_outbox_SecretValue-9fJ2xLw9pZ4tN6vB";

fn setup(dir: &std::path::Path) {
    ok(
        dir,
        &[
            "settings",
            "set",
            "method=exchange-online",
            "client_id=3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            "tenant_id=contoso.onmicrosoft.com",
            "auth_flow=client-secret",
            "client_secret_expires=2027-06-30",
        ],
    );
    set_secret(dir, &[], "client_secret", SECRET);
    ok(
        dir,
        &["users", "add", "ANNA", "--email", "anna@contoso.com"],
    );
}

/// Every output must be free of the client secret.
fn no_secret(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the secret: {text}");
    assert!(
        !text.contains("SecretValue"),
        "{what} shows part of the secret: {text}"
    );
}

#[test]
fn queued_messages_are_listed_and_shown_without_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir);
    let body = dir.join("body.txt");
    std::fs::write(&body, "Hello Bob,\nyour order 4711 has shipped.\n").unwrap();
    let body = body.to_str().unwrap();

    let out = ok(
        dir,
        &[
            "send",
            "--as",
            "anna",
            "--to",
            "bob@example.com",
            "--subject",
            "Order 4711",
            "--body-file",
            body,
        ],
    );
    assert!(out.contains("Queued message 1"), "{out}");
    no_secret("send", &out);
    let out = ok(
        dir,
        &[
            "send",
            "--as",
            "ANNA",
            "--to",
            "carl@example.com",
            "--cc",
            "dora@example.com",
            "--bcc",
            "audit@contoso.com",
            "--subject",
            "Invoice 99",
            "--body-file",
            body,
        ],
    );
    assert!(out.contains("Queued message 2"), "{out}");

    // list: newest first, one row each, and the totals.
    let list = ok(dir, &["outbox", "list"]);
    no_secret("outbox list", &list);
    let lines: Vec<&str> = list.lines().collect();
    assert!(
        lines[0].contains("STATE") && lines[0].contains("SUBJECT"),
        "{list}"
    );
    assert!(
        lines[1].contains("queued") && lines[1].contains("Invoice 99"),
        "{list}"
    );
    assert!(
        lines[1].contains("carl@example.com,dora@example.com,audit@contoso.com"),
        "all envelope recipients: {list}"
    );
    assert!(
        lines[2].contains("ANNA")
            && lines[2].contains("bob@example.com")
            && lines[2].contains("Order 4711"),
        "{list}"
    );
    assert!(list.contains("In total: 2 queued"), "{list}");

    let json: Value = serde_json::from_str(&ok(dir, &["outbox", "list", "--json"])).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["id"], 1);
    assert_eq!(rows[1]["state"], "queued");
    assert_eq!(rows[1]["sender_user"], "ANNA");
    assert_eq!(rows[1]["from"], "anna@contoso.com");
    assert_eq!(rows[1]["attempts"], 0);
    let filtered = ok(dir, &["outbox", "list", "--state", "sent"]);
    assert!(filtered.contains("The outbox is empty."), "{filtered}");

    // show: everything about one message.
    let show = ok(dir, &["outbox", "show", "1"]);
    no_secret("outbox show", &show);
    for needle in [
        "Message 1: queued",
        "sending user  ANNA",
        "came from     cli",
        "From          anna@contoso.com",
        "recipients    bob@example.com",
        "subject       Order 4711",
        "attempts      0",
        "next attempt",
    ] {
        assert!(show.contains(needle), "'{needle}' in: {show}");
    }
    assert!(show.contains("Message-ID    <"), "{show}");
    let json: Value = serde_json::from_str(&ok(dir, &["outbox", "show", "2", "--json"])).unwrap();
    assert_eq!(json["subject"], "Invoice 99");
    assert_eq!(
        json["recipients"],
        serde_json::json!(["carl@example.com", "dora@example.com", "audit@contoso.com"])
    );
    assert!(json["last_error"].is_null());
    no_secret("outbox show --json", &json.to_string());

    let raw = ok(dir, &["outbox", "show", "1", "--raw"]);
    no_secret("outbox show --raw", &raw);
    assert!(raw.contains("Subject: Order 4711"), "{raw}");
    assert!(raw.contains("From: anna@contoso.com"), "{raw}");
    assert!(raw.contains("your order 4711 has shipped"), "{raw}");

    refused(dir, &["outbox", "show", "99"], "there is no message 99");

    // cancel: shown as cancelled, and cannot be cancelled twice.
    let out = ok(dir, &["outbox", "cancel", "2"]);
    assert!(out.contains("Message 2 is cancelled"), "{out}");
    assert!(ok(dir, &["outbox", "show", "2"]).contains("Message 2: cancelled"));
    refused(dir, &["outbox", "cancel", "2"], "cannot be cancelled");
    let list = ok(dir, &["outbox", "list"]);
    assert!(
        list.contains("1 cancelled") && list.contains("1 queued"),
        "{list}"
    );

    // Nothing about the secret on stderr either.
    let out = kurir(dir).args(["outbox", "show", "1"]).output().unwrap();
    no_secret("stderr", &String::from_utf8_lossy(&out.stderr));
}
