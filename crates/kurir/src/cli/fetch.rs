//! `kurir fetch [--account NAME] [--watch]`: take in incoming mail.
//!
//! Without `--watch`: one pass per account (all accounts, or the one named), with a progress bar
//! on a terminal and a summary per account; exit status 1 if any account failed (its health
//! record says why). With `--watch`: keeps every account's mail moving (IMAP IDLE, the poll
//! interval, backoff on failures) until Ctrl-C.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use kurir_intake::auth::Mechanism;
use kurir_intake::{PassSummary, Progress};
use kurir_settings::{SettingsSnapshot, normalize_account_name};
use kurir_store::KurirStore;

use super::{Place, open_store};
use crate::fail::bad;

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Only this incoming-mail account (default: every account).
    #[arg(long, value_name = "NAME")]
    account: Option<String>,
    /// Keep running: IMAP IDLE or the poll interval, backoff on failures, until Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// SASL mechanism for IMAP/POP3 (the other one is used if the server lacks it).
    #[arg(long, value_enum, default_value = "xoauth2")]
    sasl: Sasl,
    /// The summary as JSON lines on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Sasl {
    Xoauth2,
    Oauthbearer,
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn listed(&mut self, total: u64) {
        self.0.set_length(total);
    }
    fn advanced(&mut self, n: u64) {
        self.0.inc(n);
    }
}

pub async fn run(place: &Place, args: FetchArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(place).await?;
    let snap = store.snapshot().await?;
    let names: Vec<String> = match &args.account {
        Some(a) => {
            let n = normalize_account_name(a).map_err(bad)?;
            if !snap.accounts.contains_key(&n) {
                return Err(bad(format!(
                    "there is no incoming-mail account '{n}'; list them with `kurir accounts list`"
                )));
            }
            vec![n]
        }
        None => snap.accounts.keys().cloned().collect(),
    };
    if names.is_empty() {
        return Err(bad(
            "there are no incoming-mail accounts; add one with `kurir accounts add NAME --type … --mailbox … --protocol imap|pop3|graph`",
        ));
    }
    let sasl = match args.sasl {
        Sasl::Xoauth2 => Mechanism::XOAuth2,
        Sasl::Oauthbearer => Mechanism::OAuthBearer,
    };
    if args.watch {
        return watch(&place.data_dir, store, &snap, &names, sasl).await;
    }
    let mut failed = 0;
    for name in &names {
        let (spec, mut transport) =
            match kurir_service::intake::prepare_account(&store, &snap, name, sasl).await {
                Ok(x) => x,
                Err(e) => {
                    let _ = store.record_pass(name, Err(format!("{e:#}"))).await;
                    if names.len() == 1 {
                        return Err(e);
                    }
                    eprintln!("kurir: {name}: {e:#}");
                    failed += 1;
                    continue;
                }
            };
        let mut intake = spec.intake(place.data_dir.clone(), store.clone());
        // Tuning knob (and used by the crash test to get many batch boundaries).
        if let Some(n) = std::env::var("KURIR_INTAKE_BATCH")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
        {
            intake.limits.messages = n;
        }
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} messages {per_sec} {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(name.clone());
        let mut progress = Bar(bar.clone());
        // The pass runs as a task on a runtime worker, not on the thread in `block_on`: a worker
        // waiting for the network parks in the I/O driver itself and polls the task as soon as
        // data arrives, where `block_on` has a worker take the event and wake the main thread
        // (two context switches per read instead of one).
        let pass = tokio::spawn(async move {
            let outcome = intake.pass(transport.as_mut(), &mut progress).await;
            transport.close().await;
            outcome
        });
        let outcome = match pass.await {
            Ok(outcome) => outcome,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        bar.finish_and_clear();
        match outcome {
            Ok(summary) => {
                store
                    .record_pass(name, Ok(summary.stored + summary.quarantined))
                    .await?;
                print_summary(&summary, args.json);
            }
            Err(e) => {
                store.record_pass(name, Err(e.to_string())).await?;
                eprintln!("kurir: {name}: {e}");
                failed += 1;
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_summary(s: &PassSummary, json: bool) {
    if json {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        v["seconds"] = serde_json::json!(s.elapsed.as_secs_f64());
        println!("{v}");
        return;
    }
    let secs = s.elapsed.as_secs_f64().max(0.001);
    let taken = s.stored + s.quarantined;
    println!(
        "{}: {} in the source folder via {}; {} stored, {} quarantined, {} duplicates, {} finished from an earlier run, {} documents queued for the ERP; {:.1} MB in {:.2} s ({:.0} msg/s)",
        s.account,
        s.listed,
        s.protocol,
        s.stored,
        s.quarantined,
        s.duplicates,
        s.finished_from_earlier,
        s.documents,
        s.bytes as f64 / 1e6,
        secs,
        taken as f64 / secs
    );
}

async fn watch(
    data_dir: &Path,
    store: Arc<dyn KurirStore>,
    snap: &SettingsSnapshot,
    names: &[String],
    sasl: Mechanism,
) -> anyhow::Result<ExitCode> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for name in names {
        let (spec, mut transport) =
            kurir_service::intake::prepare_account(&store, snap, name, sasl).await?;
        let mut intake = spec.intake(data_dir.to_owned(), store.clone());
        intake.stop = Some(stop_rx.clone());
        let poll: Duration = spec.poll_interval;
        let stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            kurir_intake::schedule::watch_account(&intake, transport.as_mut(), poll, stop).await;
        }));
    }
    eprintln!(
        "kurir: taking in mail for {} (Ctrl-C stops)",
        names.join(", ")
    );
    let _ = tokio::signal::ctrl_c().await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    Ok(ExitCode::SUCCESS)
}
