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
    assert_eq!(
        s["granted"],
        serde_json::json!([
            "Mail.ReadWrite",
            "Mail.Send",
            "Application.ReadWrite.OwnedBy"
        ])
    );
    assert_eq!(s["owner_added"], true);
    assert!(s["new_secret"].is_array(), "{s}");
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
    assert_eq!(
        roles,
        [
            "Mail.ReadWrite",
            "Mail.Send",
            "Application.ReadWrite.OwnedBy"
        ]
    );

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
    let store = kurir_store::open_store(&dir, None).await.unwrap();
    assert_eq!(store.count_messages("Inkorg").await.unwrap().stored, 1);

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

/// Rotation (issue #17.3): by hand, and by `kurir serve` before expiry while mail flows; the new
/// secret is proven before it is stored, the old one stops working once removed, and nothing
/// fails in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_secret_is_rotated_by_hand_and_by_serve_with_no_failed_send() {
    use kurir_store::KurirStore;
    use secrecy::ExposeSecret;
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    point_at_emulator(&dir, &emu);
    let (code, _, err) = setup_as(&dir, &emu, demo::ADMIN_USER, &["--no-check"]);
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
    let app_id = store
        .snapshot()
        .await
        .unwrap()
        .system
        .get("client_id")
        .map(|v| v.display())
        .unwrap();
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

    // By kurir serve: due (expiry within rotate_before), while ANNA's mail is being sent.
    ok(&dir, &["users", "add", "ANNA", "--email", demo::USER]);
    ok(
        &dir,
        &[
            "settings",
            "set",
            "rotate_secret=true",
            "rotate_before=500d",
        ],
    );
    common::daemon::queue_outgoing(&*store, 20).await;
    let mut d = common::daemon::Daemon::serve(
        "rotate",
        &dir,
        None,
        &[
            "--upkeep-tick",
            "1",
            "--rotation-grace-secs",
            "2",
            "--rotation-secret-days",
            "700",
        ],
    );
    let t0 = std::time::Instant::now();
    loop {
        let snap = store.snapshot().await.unwrap();
        let rotated = secret(store.clone()).await != second;
        let retired_gone = snap.system.get("retired_secret_id").is_none();
        let sent = common::daemon::outbox_states(&*store).await.1;
        if rotated && retired_gone && sent == 20 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "rotated {rotated}, old removed {retired_gone}, sent {sent}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(d.sigterm().success());
    assert!(d.logged(&["client secret rotated"]));
    assert!(d.logged(&["is removed"]));
    let failed = store
        .outbox_list(&kurir_store::outbox::OutboxFilter {
            state: Some(kurir_store::outbox::OutgoingState::Failed),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        failed.is_empty(),
        "no send failed during the rotation: {failed:?}"
    );
    let third = secret(store.clone()).await;
    assert!(token_with(third).await["access_token"].is_string());
    assert!(
        token_with(second).await["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215")
    );
    common::daemon::assert_outgoing_delivered_once(&emu, 20).await;
}
