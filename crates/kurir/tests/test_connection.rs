//! Test connection (`kurir check`, the UI's button, `POST …/check`) step by step against the
//! Entra + Graph emulator: every step of the Graph path in order, the texts in both languages,
//! and a missing mailbox explained with the later steps not run. It pins the step files of
//! kurir-web's `check/` (one file per step, texts in the translation tables).

mod common;

use common::daemon::{emulator_world, ok_db};
use common::kurir;
use kurir_emulator::{Emulator, EmulatorConfig, demo};
use serde_json::Value;

fn check(dir: &std::path::Path, args: &[&str]) -> (bool, Value) {
    let out = kurir(dir)
        .args(["check", "--json"])
        .args(args)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "kurir check {args:?} printed no report ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

/// (id, status, detail) of every step.
fn steps(report: &Value) -> Vec<(String, String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let f = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
            (f("id"), f("status"), f("detail"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_walks_every_graph_step_in_both_languages() {
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    emulator_world(dir, None, &emu, "Inkorg");

    // A Graph account: settings, token, mailbox and folders ok; IMAP and SMTP do not apply.
    let (ok, report) = check(dir, &["--account", "Inkorg"]);
    assert!(ok, "{report}");
    let s = steps(&report);
    let ids: Vec<&str> = s.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["settings", "token", "mailbox", "imap", "smtp", "folders"],
        "{report}"
    );
    let status: Vec<&str> = s.iter().map(|(_, st, _)| st.as_str()).collect();
    assert_eq!(
        status,
        ["ok", "ok", "ok", "skipped", "skipped", "ok"],
        "{report}"
    );
    assert_eq!(s[0].2, "Authentication flow: client-secret", "{report}");
    assert!(s[1].2.starts_with("Token for "), "{report}");
    assert!(
        s[2].2
            .starts_with(&format!("{}: Inbox reached (", demo::M2M_MAILBOX)),
        "{report}"
    );
    assert!(s[5].2.starts_with("Inbox: exists"), "{report}");

    // The same in Swedish, from the Swedish table.
    let (_, report) = check(dir, &["--account", "Inkorg", "--lang", "sv"]);
    let s = steps(&report);
    assert_eq!(report["steps"][0]["title"], "Inställningarna är kompletta");
    assert_eq!(s[0].2, "Autentiseringsflöde: client-secret", "{report}");
    assert!(s[2].2.contains(": Inkorgen nåddes ("), "{report}");
    assert!(s[5].2.starts_with("Inbox: finns"), "{report}");

    // A mailbox the tenant does not have: the mailbox step says so with the fix, and the
    // folder step is not run (its outcome would say nothing).
    ok_db(
        dir,
        None,
        &[
            "settings",
            "set",
            "--account",
            "Inkorg",
            "mailbox=nobody@kurirdemo.onmicrosoft.com",
        ],
        &[],
    );
    let (ok, report) = check(dir, &["--account", "Inkorg"]);
    assert!(!ok, "a failed step fails the check: {report}");
    let s = steps(&report);
    assert_eq!(s[2].1, "failed", "{report}");
    assert!(
        s[2].2.contains("there is no such mailbox in the tenant"),
        "{report}"
    );
    assert!(
        report["steps"][2]["fix"]
            .as_str()
            .unwrap()
            .contains("Check the address"),
        "{report}"
    );
    assert_eq!(s[5].1, "not_run", "{report}");

    // A user sends: its SMTP step runs (a warning here: nothing listens on the SMTP port, and
    // Graph can still send), and folders do not apply.
    ok_db(
        dir,
        None,
        &[
            "settings",
            "set",
            "--user",
            "ANNA",
            "smtp_host=127.0.0.1",
            "smtp_port=9",
        ],
        &[],
    );
    let (ok, report) = check(dir, &["--user", "ANNA"]);
    assert!(ok, "a warning does not fail the check: {report}");
    let s = steps(&report);
    let ids: Vec<&str> = s.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["settings", "token", "mailbox", "smtp", "folders"],
        "{report}"
    );
    assert_eq!(s[2].1, "ok", "{report}");
    assert_eq!(s[3].1, "warning", "{report}");
    assert!(
        report["steps"][3]["fix"]
            .as_str()
            .unwrap()
            .contains("Check the server and port"),
        "{report}"
    );
    assert_eq!(s[4].1, "skipped", "{report}");
    emu.shutdown().await;
}
