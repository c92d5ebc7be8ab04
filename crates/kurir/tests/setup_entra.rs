//! `kurir setup entra` with the real binary against the Entra + Graph emulator (issue #17.1):
//! from a data directory that knows only the tenant (and, since this is not Microsoft's cloud,
//! where the emulator is), an administrator's device-code sign-in — approved here as the admin
//! would approve it in a browser — leaves a Kurir that sends and takes in mail through Graph,
//! with no Entra value typed by hand; running it again changes nothing; the same run as a user
//! without a directory role stops with the role that is needed.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::daemon::{emulator_folder, ok_db};
use common::ok;
use kurir_emulator::{Emulator, EmulatorConfig, RunningEmulator, demo};
use serde_json::Value;

/// Points a fresh data directory at the emulator: the tenant and the emulator's endpoints only.
fn point_at_emulator(dir: &Path, emu: &RunningEmulator) {
    let base = emu.base_url();
    ok(
        dir,
        &[
            "settings",
            "set",
            &format!("tenant_id={}", demo::TENANT_ID),
            "allow_custom_endpoints=true",
            &format!("authority={base}"),
            &format!("graph_endpoint={base}"),
            &format!("ca_file={}", emu.ca_path().display()),
        ],
    );
}

/// Runs `kurir setup entra ARGS`, approving its device code as `user`; (exit code, stdout,
/// stderr).
fn setup_as(dir: &Path, emu: &RunningEmulator, user: &str, args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kurir"))
        .args(["setup", "entra"])
        .args(args)
        .env("KURIR_DATA_DIR", dir)
        .env_remove("KURIR_MASTER_KEY")
        .env_remove("KURIR_DATABASE_URL")
        .env_remove("KURIR_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no device code prompt: {seen}"
        );
        seen.push_str(&line);
        if let Some(rest) = line.split("enter the code ").nth(1) {
            let code = rest.split_whitespace().next().unwrap();
            emu.approve_device_code(code, user).unwrap();
            break;
        }
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        seen + &rest,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_entra_leaves_a_kurir_that_sends_and_takes_in_mail_and_a_rerun_changes_nothing() {
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    point_at_emulator(&dir, &emu);

    let (code, out, err) = setup_as(
        &dir,
        &emu,
        demo::ADMIN_USER,
        &["--json", "--mailbox", demo::M2M_MAILBOX],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let s = &v["setup"];
    assert_eq!(s["created_application"], true, "{s}");
    assert_eq!(s["created_service_principal"], true);
    // A certificate rolls itself with a proof of possession: no Application.ReadWrite.OwnedBy,
    // no owner (least privilege).
    assert_eq!(
        s["granted"],
        serde_json::json!(["Mail.ReadWrite", "Mail.Send"])
    );
    assert_eq!(s["owner_added"], false);
    // The recommended credential: a certificate made here, its public part uploaded.
    assert!(s["new_certificate"].is_array(), "{s}");
    assert!(s["new_secret"].is_null(), "{s}");
    assert!(!out.contains("PRIVATE KEY") && !err.contains("PRIVATE KEY"));
    let store = kurir_store::open_store(&dir, None).await.unwrap();
    {
        let snap = store.snapshot().await.unwrap();
        let sys = snap.resolve(&kurir_settings::Scope::System);
        assert_eq!(sys.get("auth_flow"), Some("certificate"));
        assert_eq!(sys.get("certificate_id"), s["new_certificate"][0].as_str());
        assert!(
            sys.get("certificate")
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert_eq!(sys.get("rotate_secret"), Some("true"));
        assert!(sys.get("client_secret").is_none(), "no secret was made");
    }
    assert_eq!(s["settings_changed"], true);
    let ps = s["powershell"].as_array().unwrap();
    assert!(
        ps.iter().any(|l| l.as_str().unwrap().starts_with(&format!(
            "New-ServicePrincipal -AppId {} -ObjectId {}",
            s["app_id"].as_str().unwrap(),
            s["service_principal_id"].as_str().unwrap()
        ))),
        "{ps:?}"
    );
    assert!(err.contains("signed in as admin@"), "{err}");
    // The secret never reaches the output.
    let shown = ok(&dir, &["settings", "show"]);
    assert!(shown.contains(s["app_id"].as_str().unwrap()), "{shown}");
    let check = &v["check"]["steps"];
    let token_step = check
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["id"] == "token" || st["title"].as_str().unwrap_or("").contains("oken"))
        .unwrap_or_else(|| panic!("{check}"));
    assert_eq!(token_step["status"], "ok", "{token_step}");

    // The app's token carries exactly the granted roles.
    let t: Value = serde_json::from_str(&ok(&dir, &["token", "--json"])).unwrap();
    let roles: Vec<&str> = t["roles"]
        .as_array()
        .unwrap_or_else(|| panic!("{t}"))
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(roles, ["Mail.ReadWrite", "Mail.Send"]);

    // Mail works end to end with nothing about Entra typed by hand.
    ok(&dir, &["users", "add", "ANNA", "--email", demo::USER]);
    ok(
        &dir,
        &[
            "send",
            "--as",
            "ANNA",
            "--to",
            demo::USER2,
            "--subject",
            "after the set-up",
            "--wait",
        ],
    );
    let inbox = emulator_folder(&emu, demo::USER2, "inbox").await;
    assert!(
        inbox.iter().any(|m| m["subject"] == "after the set-up"),
        "{inbox:?}"
    );
    ok_db(
        &dir,
        None,
        &[
            "accounts",
            "add",
            "Inkorg",
            "--type",
            "general",
            "--mailbox",
            demo::M2M_MAILBOX,
            "--protocol",
            "graph",
        ],
        &[],
    );
    emu.put_mail(
        demo::M2M_MAILBOX,
        None,
        b"From: a@b.example\r\nTo: m2m@kurirdemo.onmicrosoft.com\r\nSubject: in\r\n\r\nx\r\n"
            .to_vec(),
    )
    .unwrap();
    ok(&dir, &["fetch", "--account", "Inkorg"]);
    assert_eq!(store.count_messages("Inkorg").await.unwrap().stored, 1);

    // Least privilege (issue #17.2): what the set-up granted is exactly what ANNA (Graph
    // sendMail), the Graph account and rotation need: nothing missing, nothing extra.
    let permissions = |account: &str| {
        let out = common::kurir(&dir)
            .args(["check", "--json", "--account", account])
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "permissions")
            .cloned()
            .unwrap_or_else(|| panic!("{report}"))
    };
    let p = permissions("Inkorg");
    assert_eq!(
        (&p["status"], &p["detail"]),
        (
            &Value::from("ok"),
            &Value::from("Needed and granted: Mail.ReadWrite, Mail.Send.")
        ),
        "{p}"
    );
    // An IMAP account needs IMAP.AccessAsApp, which a Graph-only set-up did not grant: the
    // step fails and says how to grant it.
    ok(
        &dir,
        &[
            "accounts",
            "add",
            "Imap",
            "--type",
            "general",
            "--mailbox",
            demo::M2M_MAILBOX,
            "--protocol",
            "imap",
        ],
    );
    ok(
        &dir,
        &[
            "settings",
            "set",
            "--account",
            "Imap",
            "imap_host=127.0.0.1",
        ],
    );
    let p = permissions("Imap");
    assert_eq!(p["status"], "failed", "{p}");
    assert!(
        p["detail"].as_str().unwrap().ends_with(
            "Missing: IMAP.AccessAsApp (Office 365 Exchange Online), needed by account:Imap."
        ),
        "{p}"
    );
    assert!(
        p["fix"]
            .as_str()
            .unwrap()
            .starts_with("Run `kurir setup entra`"),
        "{p}"
    );
    ok(&dir, &["accounts", "remove", "Imap"]);

    // Again: everything is found and reused; nothing changes.
    let before = ok(&dir, &["settings", "export"]);
    let (code, out, err) = setup_as(&dir, &emu, demo::ADMIN_USER, &["--json", "--no-check"]);
    assert_eq!(code, 0, "{err}");
    let again: Value = serde_json::from_str(&out).unwrap();
    let a = &again["setup"];
    assert_eq!(
        (
            &a["created_application"],
            &a["created_service_principal"],
            &a["owner_added"],
            &a["settings_changed"]
        ),
        (
            &Value::Bool(false),
            &Value::Bool(false),
            &Value::Bool(false),
            &Value::Bool(false)
        ),
        "{a}"
    );
    assert_eq!(a["granted"], serde_json::json!([]));
    assert!(a["new_secret"].is_null());
    assert_eq!(a["app_id"], s["app_id"]);
    assert_eq!(
        ok(&dir, &["settings", "export"]),
        before,
        "a re-run changes nothing"
    );
    std::thread::sleep(Duration::from_millis(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_entra_as_a_user_without_the_role_says_which_role_and_writes_nothing() {
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    point_at_emulator(&dir, &emu);
    let before = ok(&dir, &["settings", "export"]);
    let (code, _, err) = setup_as(&dir, &emu, demo::USER, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("may not register applications")
            && err.contains("Application Administrator")
            && err.contains("Authorization_RequestDenied"),
        "{err}"
    );
    assert_eq!(ok(&dir, &["settings", "export"]), before);
}

/// Rotation (issue #17.3): by hand, and by `kurir serve` before expiry while mail flows both
/// ways. The emulator caps new secrets at 90 seconds (as a tenant's app management policy
/// would cap them at months) and access tokens at 10 seconds, so every send and fetch needs a
/// token from whatever secret is stored at that moment: serve must rotate several times, each
/// time before the stored secret expires, with no failed send or fetch, and must remove every
/// replaced secret after the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_secret_is_rotated_by_hand_and_by_serve_before_a_short_lifetime_ends_with_no_failed_send_or_fetch()
 {
    use kurir_store::KurirStore;
    use secrecy::ExposeSecret;
    const LIFETIME: Duration = Duration::from_secs(90);
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    emu.faults().set_secret_lifetime(LIFETIME);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    point_at_emulator(&dir, &emu);
    let (code, _, err) = setup_as(
        &dir,
        &emu,
        demo::ADMIN_USER,
        &["--no-check", "--credential", "secret"],
    );
    assert_eq!(code, 0, "{err}");
    let store = kurir_store::open_store(&dir, None).await.unwrap();
    let secret = |store: std::sync::Arc<dyn KurirStore>| async move {
        store
            .reveal(&kurir_settings::Scope::System, "client_secret")
            .await
            .unwrap()
            .unwrap()
            .expose_secret()
            .to_owned()
    };
    let system = |store: std::sync::Arc<dyn KurirStore>, key: &'static str| async move {
        store
            .snapshot()
            .await
            .unwrap()
            .system
            .get(key)
            .map(|v| v.display())
    };
    let app_id = system(store.clone(), "client_id").await.unwrap();
    // The set-up stores the instant Graph gave, not only the day.
    let expires = system(store.clone(), "client_secret_expires")
        .await
        .unwrap();
    let at = kurir_settings::expiry(&expires).unwrap();
    let left = at - time::OffsetDateTime::now_utc();
    assert!(
        left <= time::Duration::seconds(91) && left > time::Duration::seconds(30),
        "{expires}"
    );
    let token_with = |value: String| {
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).unwrap())
            .build()
            .unwrap();
        let url = format!("{}/{}/oauth2/v2.0/token", emu.base_url(), demo::TENANT_ID);
        let app_id = app_id.clone();
        async move {
            let v: Value = http
                .post(url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", app_id.as_str()),
                    ("client_secret", value.as_str()),
                    ("scope", "https://graph.microsoft.com/.default"),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }
    };

    // By hand, old secret removed at once.
    let first = secret(store.clone()).await;
    let r: Value = serde_json::from_str(&ok(
        &dir,
        &["credential", "rotate", "--grace-hours", "0", "--json"],
    ))
    .unwrap();
    assert_eq!(r["old_removed"], true, "{r}");
    let second = secret(store.clone()).await;
    assert_ne!(first, second);
    assert!(token_with(second.clone()).await["access_token"].is_string());
    let refused = token_with(first).await;
    assert!(
        refused["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215"),
        "{refused}"
    );
    let second_expires = kurir_settings::expiry(
        &system(store.clone(), "client_secret_expires")
            .await
            .unwrap(),
    )
    .unwrap();

    // By kurir serve, while ANNA's mail is sent and the M2M mailbox is read, each needing a
    // fresh token every 10 seconds.
    emu.faults().set_token_lifetime(Duration::from_secs(10));
    ok(&dir, &["users", "add", "ANNA", "--email", demo::USER]);
    ok(
        &dir,
        &[
            "accounts",
            "add",
            "Inkorg",
            "--type",
            "general",
            "--mailbox",
            demo::M2M_MAILBOX,
            "--protocol",
            "graph",
        ],
    );
    ok(
        &dir,
        &["settings", "set", "rotate_secret=true", "rotate_before=60s"],
    );
    ok(
        &dir,
        &[
            "settings",
            "set",
            "--account",
            "Inkorg",
            "poll_interval=10s",
        ],
    );
    let mut d = common::daemon::Daemon::serve(
        "rotate",
        &dir,
        None,
        &[
            "--upkeep-tick",
            "1",
            "--rotation-grace-secs",
            "5",
            "--rotation-secret-days",
            "700",
        ],
    );
    // Mail both ways, a message each way every two seconds, until the secret stored when serve
    // started has been expired for a while.
    let t0 = std::time::Instant::now();
    let mut i = 0;
    let mut seen_secrets = vec![second.clone()];
    while time::OffsetDateTime::now_utc() < second_expires + time::Duration::seconds(20) {
        common::daemon::queue_outgoing_range(&*store, i..i + 1).await;
        common::daemon::put_incoming(&emu, i..i + 1);
        i += 1;
        let now = secret(store.clone()).await;
        if !seen_secrets.contains(&now) {
            seen_secrets.push(now);
        }
        assert!(t0.elapsed() < Duration::from_secs(200));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // Everything sent and taken in, the last replaced secret removed.
    loop {
        let sent = common::daemon::outbox_states(&*store).await.1;
        let stored = store.count_messages("Inkorg").await.unwrap().stored;
        let retired = system(store.clone(), "retired_secret_id").await;
        if sent == i && stored as usize == i && retired.is_none() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(240),
            "sent {sent}/{i}, stored {stored}/{i}, retired secret {retired:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(d.sigterm().success());
    let rotations = d.log_count("client secret rotated");
    assert!(
        rotations >= 2 && seen_secrets.len() > 2,
        "serve rotated {rotations} times; secrets seen {}",
        seen_secrets.len()
    );
    assert!(d.logged(&["is removed"]));
    assert!(
        !d.logged(&["intake failed"])
            && !d.logged(&["cannot take in mail"])
            && !d.logged(&["rotation failed"]),
        "no fetch and no rotation failed"
    );
    let failed = store
        .outbox_list(&kurir_store::outbox::OutboxFilter {
            state: Some(kurir_store::outbox::OutgoingState::Failed),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        failed.is_empty(),
        "no send failed during the rotations: {failed:?}"
    );
    // Only the stored secret works; every replaced one is gone from the registration.
    let current = secret(store.clone()).await;
    assert!(token_with(current.clone()).await["access_token"].is_string());
    for old in seen_secrets.iter().filter(|s| **s != current) {
        assert!(
            token_with(old.clone()).await["error_description"]
                .as_str()
                .unwrap()
                .starts_with("AADSTS7000215"),
            "a replaced secret still signs in"
        );
    }
    common::daemon::assert_outgoing_delivered_once(&emu, i).await;
}

/// The certificate credential rotated (issue #17.3): the app adds a new certificate with
/// `addKey` and a proof signed by the stored one, proves it with a token, stores it, and removes
/// the old one with `removeKey`; the old certificate no longer signs in, mail still goes out, and
/// the private keys never appear in any output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_is_rotated_with_a_proof_of_possession_and_the_old_one_removed() {
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    point_at_emulator(&dir, &emu);
    let (code, _, err) = setup_as(&dir, &emu, demo::ADMIN_USER, &["--no-check"]);
    assert_eq!(code, 0, "{err}");
    let store = kurir_store::open_store(&dir, None).await.unwrap();
    let system = |key: &'static str| {
        let store = store.clone();
        async move {
            store
                .snapshot()
                .await
                .unwrap()
                .system
                .get(key)
                .map(|v| v.display())
        }
    };
    let (first_pem, first_id) = (
        system("certificate").await.unwrap(),
        system("certificate_id").await.unwrap(),
    );
    let out = ok(
        &dir,
        &["credential", "rotate", "--grace-hours", "0", "--json"],
    );
    assert!(!out.contains("PRIVATE KEY"), "{out}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["old_removed"], true, "{r}");
    assert_eq!(r["rotated"]["retired_secret_id"], first_id.as_str(), "{r}");
    let (second_pem, second_id) = (
        system("certificate").await.unwrap(),
        system("certificate_id").await.unwrap(),
    );
    assert_ne!(first_pem, second_pem);
    assert_eq!(r["rotated"]["new_secret_id"], second_id.as_str());
    assert!(system("retired_secret_id").await.is_none());
    // The registration holds only the new certificate, and Kurir signs in and sends with it.
    let app = emu
        .fixture()
        .apps
        .iter()
        .find(|a| a.display_name == "Kurir (Monitor ERP e-mail)")
        .cloned()
        .unwrap();
    let ids: Vec<String> = app
        .key_credentials
        .iter()
        .map(|k| k.id.to_string())
        .collect();
    assert_eq!(ids, [second_id]);
    let t: Value = serde_json::from_str(&ok(&dir, &["token", "--json"])).unwrap();
    assert!(t["roles"].is_array(), "{t}");
    ok(&dir, &["users", "add", "ANNA", "--email", demo::USER]);
    ok(
        &dir,
        &[
            "send",
            "--as",
            "ANNA",
            "--to",
            demo::USER2,
            "--subject",
            "after the rotation",
            "--wait",
        ],
    );
    // The old certificate no longer signs in: Kurir with its settings put back is refused.
    ok(
        &dir,
        &["settings", "set", &format!("certificate={first_pem}")],
    );
    let out = common::kurir(&dir)
        .args(["token", "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AADSTS700027") || err.contains("AADSTS"),
        "{err}"
    );
}
