//! `kurir credential rotate`: replace the client secret or certificate now (what `kurir serve` does by itself
//! before expiry when `rotate_secret=true`), see [`kurir_service::rotation`].

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{Place, open_store};
use crate::fail::bad;

#[derive(Subcommand, Debug)]
pub enum CredentialCmd {
    /// Add a new client secret (or certificate) to the app, switch to it once Entra ID accepts it, and remove the
    /// old one after the grace period (0: at once). Needs the app to own its registration with
    /// Application.ReadWrite.OwnedBy (`kurir setup entra` arranges it).
    Rotate(RotateArgs),
}

#[derive(Args, Debug)]
pub struct RotateArgs {
    /// Hours until the old secret is removed (services that cached it switch meanwhile).
    #[arg(long, default_value_t = 1, value_name = "HOURS")]
    grace_hours: u64,
    /// Days the new secret lives (at most 730).
    #[arg(long, default_value_t = 365, value_name = "DAYS")]
    secret_days: u32,
    #[arg(long)]
    json: bool,
}

pub async fn run(place: &Place, cmd: CredentialCmd) -> anyhow::Result<ExitCode> {
    let CredentialCmd::Rotate(args) = cmd;
    let store = open_store(place).await?;
    let grace = Duration::from_secs(args.grace_hours * 3600);
    let r = kurir_service::rotation::rotate(&store, args.secret_days, grace)
        .await
        .map_err(|e| match e {
            kurir_service::rotation::RotationError::Store(e) => anyhow::Error::from(e),
            e => bad(e.to_string()),
        })?;
    let removed = if args.grace_hours == 0 {
        kurir_service::rotation::remove_retired(&store)
            .await
            .map_err(|e| bad(e.to_string()))?
    } else {
        false
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"rotated": r, "old_removed": removed})
            )?
        );
    } else {
        println!(
            "New credential {} in use (expires {}).",
            r.new_secret_id, r.expires
        );
        match (&r.retired_secret_id, removed) {
            (Some(old), true) => println!("The old credential {old} is removed."),
            (Some(old), false) => println!(
                "The old credential {old} is removed after {} (by kurir serve, or the next kurir credential rotate).",
                r.remove_after
            ),
            (None, _) => println!(
                "The old secret's id was not known (set up before client_secret_id was kept); remove it in the Entra admin center."
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
