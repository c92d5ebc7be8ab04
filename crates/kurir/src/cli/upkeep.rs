//! `kurir purge`, `kurir backup`, `kurir restore`: keeping a data directory for years.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use kurir_service::upkeep::retention_of;

use super::{Place, open_store};

#[derive(Args, Debug)]
pub struct PurgeArgs {
    /// Only count what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The archive to write (.tar.gz); must not exist yet, and not be in the data directory.
    pub file: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// An archive `kurir backup` wrote.
    pub file: PathBuf,
    #[arg(long)]
    pub json: bool,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub async fn purge(place: &Place, args: PurgeArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(place).await?;
    let snap = store.snapshot().await?;
    let retention = retention_of(&snap);
    let r = store.purge(&retention, args.dry_run).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let days = |d: std::time::Duration| d.as_secs() / 86_400;
    println!(
        "Retention (keep_raw_mail {}d, keep_import_documents {}d, keep_sent_mail {}d, keep_records {}d) {verb}:",
        days(retention.raw_mail),
        days(retention.import_documents),
        days(retention.sent_mail),
        days(retention.records)
    );
    println!(
        "  original of incoming messages  {:>8}  ({})",
        r.raw_messages,
        mib(r.raw_bytes)
    );
    println!(
        "  acknowledged import documents  {:>8}  ({})",
        r.import_documents,
        mib(r.import_bytes)
    );
    println!(
        "  content of sent mail           {:>8}  ({})",
        r.sent_messages,
        mib(r.sent_bytes)
    );
    println!("  message records                {:>8}", r.message_records);
    println!("  outbox records                 {:>8}", r.outbox_records);
    if !args.dry_run {
        println!("  files removed                  {:>8}", r.files_removed);
    }
    println!(
        "Never removed: quarantined messages nobody has handled, documents the ERP has not acknowledged, mail not yet sent."
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn backup(place: &Place, args: BackupArgs) -> anyhow::Result<ExitCode> {
    if place.database_url.is_some() {
        return Err(kurir_store::StoreError::NotWithPostgres("kurir backup").into());
    }
    let store = open_store(place).await?;
    let data_dir = std::path::absolute(&place.data_dir)?;
    let file = std::path::absolute(&args.file)?;
    let r = kurir_service::backup::backup(&data_dir, &*store, &file).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "Backup written: {} ({}): {} messages, {} outbox entries, {} files.",
            r.archive.display(),
            mib(r.bytes),
            r.manifest.messages,
            r.manifest.outbox_entries,
            r.manifest.files
        );
        for f in &r.vanished {
            println!("  note: {f} was removed by retention while the backup ran");
        }
    }
    eprintln!(
        "The master key is NOT in the backup: it is in {} (fingerprint {}). Keep a copy of it separately from the backups; a restore needs it.",
        r.key_location, r.manifest.key_fingerprint
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(place: &Place, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let r =
        kurir_service::backup::restore(&args.file, &place.data_dir, place.database_url.as_deref())
            .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "Restored {} into {}: {} messages, {} outbox entries, {} files (backup of {}, Kurir {}).",
            args.file.display(),
            r.data_dir.display(),
            r.manifest.messages,
            r.manifest.outbox_entries,
            r.files,
            r.manifest.created_at,
            r.manifest.kurir_version
        );
    }
    Ok(ExitCode::SUCCESS)
}
