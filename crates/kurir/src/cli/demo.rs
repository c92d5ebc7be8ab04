//! `kurir demo`: the whole product on a fresh machine, against the built-in emulator of
//! Microsoft Entra ID and Exchange Online (Graph mail). The scenario is kurir-demo's; this file
//! parses the arguments and prints the banner and the check's steps.
//!
//! The demo owns its data directory (default `./kurir-demo`, never the service's default data
//! directory): it rewrites the settings at every start because the emulator's port changes.
//!
//! `kurir demo --check` does one full round trip in a fresh temporary directory and exits 0 or 1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use kurir_demo::{ADMIN, Demo, GENERAL_ACCOUNT, M2M_ACCOUNT, StepOutcome, traffic};
use kurir_emulator::demo as d;
use kurir_service::signal::shutdown_signal;

use super::Place;
use crate::fail::bad;

/// The demo's own data directory when `--data-dir` is not given.
pub const DEMO_DIR: &str = "./kurir-demo";

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Do one full round trip (send → deliver → take in → import queue) in a fresh temporary
    /// directory and exit 0 if it worked, 1 if not. For CI.
    #[arg(long)]
    pub check: bool,
    /// Address of the web UI.
    #[arg(long, default_value = "127.0.0.1:8025")]
    pub listen: SocketAddr,
    /// Seconds between new demo messages (an incoming order; the webshop's confirmation);
    /// 0 = only the mail put in at the start.
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    pub every: u64,
    /// Seconds `--check` waits for the round trip.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub timeout: u64,
}

pub async fn run(place: &Place, explicit_dir: bool, args: DemoArgs) -> anyhow::Result<ExitCode> {
    if place.database_url.is_some() {
        // The demo writes its scenario into the settings: never into a shared database.
        return Err(bad(
            "the demo keeps its own SQLite database; run it without --database-url / KURIR_DATABASE_URL",
        ));
    }
    let data_dir = place.data_dir.as_path();
    if args.check {
        return check(explicit_dir.then_some(data_dir), &args).await;
    }
    let dir = if explicit_dir {
        data_dir.to_owned()
    } else {
        PathBuf::from(DEMO_DIR)
    };
    let demo = start(&dir, args.listen).await?;
    let password = demo.admin_password.clone();
    let url = format!("http://{}", demo.service.web_addr);
    // Listening for the stop signal before the ready line (see shutdown_signal).
    let stop = shutdown_signal();
    demo.service.print_line(serde_json::json!({
        "demo": true,
        "admin": {"username": ADMIN, "password": password},
        "emulator": demo.emulator.base_url(),
    }))?;
    eprintln!(
        "\n  Kurir demo is running.\n\n  Web UI:    {url}\n  Sign in:   {ADMIN} / {password}\n  Data:      {}\n  Emulator:  {} (Entra ID + Exchange Online mail, demo tenant {})\n\n  Settings as in the seed: system settings (client secret), users ANNA and WEBSHOP, incoming-mail\n  accounts {M2M_ACCOUNT} and {GENERAL_ACCOUNT}, the webshop according to user settings.\n  {}\n  Ctrl-C stops.\n",
        dir.display(),
        demo.emulator.base_url(),
        d::TENANT_DOMAIN,
        if args.every > 0 {
            format!(
                "Every {} s more mail: an order arrives for {M2M_ACCOUNT}, the webshop (WEBSHOP) confirms an order, or ANNA sends a purchase order.",
                args.every
            )
        } else {
            "No further mail is generated (--every 0).".to_owned()
        },
    );
    let traffic = (args.every > 0).then(|| {
        let submitter = demo.service.submitter();
        let emulator = demo.emulator.clone();
        let dir = dir.clone();
        let every = Duration::from_secs(args.every);
        tokio::spawn(async move { traffic(submitter, emulator, dir, every).await })
    });
    stop.await;
    if let Some(t) = traffic {
        t.abort();
    }
    demo.stop().await?;
    Ok(ExitCode::SUCCESS)
}

/// `kurir demo --check`: one full round trip, each step printed, exit 0/1.
async fn check(dir: Option<&Path>, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let temp;
    let dir: PathBuf = match dir {
        Some(d) => d.to_owned(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("kurir-demo-check-")
                .tempdir()?;
            temp.path().to_owned()
        }
    };
    let started = Instant::now();
    let demo = start(&dir, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let outcome = kurir_demo::round_trip(
        &demo,
        &dir,
        Duration::from_secs(args.timeout),
        &mut print_step,
    )
    .await;
    let _ = demo.stop().await;
    match outcome {
        Ok(()) => {
            println!(
                "demo check passed in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("demo check FAILED: {e:#}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Starts the demo; a directory with settings the demo did not write is bad input (exit 2).
async fn start(dir: &Path, listen: SocketAddr) -> anyhow::Result<Demo> {
    Demo::start(dir, listen)
        .await
        .map_err(|e| match e.downcast::<kurir_demo::NotADemoDir>() {
            Ok(not_demo) => bad(not_demo.to_string()),
            Err(e) => e,
        })
}

fn print_step(step: StepOutcome<'_>) {
    match step {
        StepOutcome::Ok { name, took } => println!("ok    {name} ({:.1} s)", took.as_secs_f64()),
        StepOutcome::TimedOut { name } => println!("FAIL  {name}: timed out"),
        StepOutcome::Failed { name, error } => println!("FAIL  {name}: {error:#}"),
    }
}
