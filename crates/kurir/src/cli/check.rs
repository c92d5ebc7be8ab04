//! `kurir check [--user CODE | --account NAME | --webshop]`: Test connection from the command
//! line, the same steps as the web UI's button (kurir-web's `check`): settings → token →
//! mailbox → IMAP/POP3/SMTP sign-in → folders, each ok or what to fix. Exit 0 when no step
//! failed, 1 otherwise.

use std::process::ExitCode;

use clap::Args;
use kurir_web::check::StepStatus;
use kurir_web::i18n::Lang;

use super::{Place, ScopeArgs, open_store};

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    scope: ScopeArgs,
    #[arg(long)]
    json: bool,
    /// Language of explanations: en or sv.
    #[arg(long, env = "KURIR_LANG", default_value = "en")]
    lang: String,
}

pub async fn run(place: &Place, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let lang = Lang::parse(&args.lang).unwrap_or(Lang::En);
    let scope = args.scope.scope()?;
    let store = open_store(place).await?;
    {
        super::assign::check_exists(&store.snapshot().await?, &scope)?;
    }
    let report = kurir_web::check::run(store, &scope, lang).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("Test connection: {}", lang.subject(&scope));
        for s in &report.steps {
            let mark = match s.status {
                StepStatus::Ok => "ok     ",
                StepStatus::Failed => "FAILED ",
                StepStatus::Warning => "warning",
                StepStatus::NotRun => "not run",
                StepStatus::Skipped => "n/a    ",
            };
            println!("  [{mark}] {}: {}", s.title, s.detail);
            if let Some(fix) = &s.fix {
                println!("            fix: {fix}");
            }
            if let Some(m) = &s.microsoft_message {
                println!("            Microsoft: {m}");
            }
            if let Some(t) = &s.trace_id {
                println!("            trace id: {t}");
            }
        }
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
