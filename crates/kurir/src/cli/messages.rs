//! `kurir messages list|show|export|imports|health`: what intake stored, the import queue the ERP
//! picks documents up from, and each account's health record.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use kurir_settings::normalize_account_name;
use kurir_store::messages::{MessageFilter, MessageStatus};

use super::{Place, open_store};
use crate::fail::bad;

#[derive(Subcommand, Debug)]
pub enum MessagesCmd {
    /// Stored messages, newest first.
    List {
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
        /// stored or quarantined.
        #[arg(long)]
        status: Option<String>,
        /// At most this many (0 = all).
        #[arg(long, default_value = "50")]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// One message's metadata, server ids, attachments and quarantine reason.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// The raw MIME of a message (.eml) to stdout or a file.
    Export {
        id: i64,
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// The import queue: documents extracted for the ERP.
    Imports {
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Each account's last success, last error (explained) and failures in a row.
    Health {
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn account(a: Option<String>) -> anyhow::Result<Option<String>> {
    a.map(|a| normalize_account_name(&a).map_err(bad))
        .transpose()
}

pub async fn run(place: &Place, cmd: MessagesCmd) -> anyhow::Result<ExitCode> {
    let store = open_store(place).await?;
    match cmd {
        MessagesCmd::List {
            account: a,
            status,
            limit,
            json,
        } => {
            let status = match status.as_deref() {
                None => None,
                Some(s) => Some(MessageStatus::parse(s).ok_or_else(|| {
                    bad(format!("unknown status '{s}'; use stored or quarantined"))
                })?),
            };
            let list = store
                .list_messages(&MessageFilter {
                    account: account(a)?,
                    status,
                    limit,
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("No messages stored.");
            } else {
                for m in list {
                    println!(
                        "{:>6}  {:<11} {:<20} {:<30} {}",
                        m.id,
                        m.status.as_str(),
                        m.account,
                        m.from.as_deref().unwrap_or("—"),
                        m.subject.as_deref().unwrap_or("(no subject)")
                    );
                }
            }
        }
        MessagesCmd::Show { id, json } => {
            let m = store.message(id).await?.ok_or_else(|| {
                bad(format!(
                    "there is no stored message {id}; list them with `kurir messages list`"
                ))
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                println!("Message {}  ({})", m.id, m.status.as_str());
                if let Some(r) = &m.reason {
                    println!("  reason       {r}");
                }
                println!("  account      {} (handled as {})", m.account, m.handler);
                println!("  message-id   {}", m.message_id.as_deref().unwrap_or("—"));
                if let Some(n) = m.same_message_id_as {
                    println!("               a different message with the same Message-ID as #{n}");
                }
                println!("  from         {}", m.from.as_deref().unwrap_or("—"));
                println!("  to           {}", m.to.as_deref().unwrap_or("—"));
                println!("  subject      {}", m.subject.as_deref().unwrap_or("—"));
                println!("  date         {}", m.date.as_deref().unwrap_or("—"));
                println!("  size         {} bytes, blake3 {}", m.size, m.content_hash);
                println!("  received     {}", m.received_at);
                println!("  server ids   {}", m.server_ids.join(", "));
                for a in &m.attachments {
                    println!(
                        "  attachment   {} ({}, {} bytes)",
                        a.name.as_deref().unwrap_or("(unnamed)"),
                        a.content_type,
                        a.size
                    );
                }
            }
        }
        MessagesCmd::Export { id, out } => {
            let raw = store.raw_message(id).await?.ok_or_else(|| {
                bad(format!(
                    "there is no stored message {id}; list them with `kurir messages list`"
                ))
            })?;
            let bytes = raw.read(&place.data_dir).map_err(|e| {
                anyhow::anyhow!(
                    "the raw message of {id} cannot be read from the data directory ({e}); restore the data directory from a backup"
                )
            })?;
            let mut reader = std::io::Cursor::new(bytes);
            match out {
                Some(path) => {
                    let mut f = std::fs::File::create(&path)?;
                    std::io::copy(&mut reader, &mut f)?;
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut lock = stdout.lock();
                    std::io::copy(&mut reader, &mut lock)?;
                    lock.flush()?;
                }
            }
        }
        MessagesCmd::Imports { account: a, json } => {
            let a = account(a)?;
            let list = store.list_imports(a.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("The import queue is empty.");
            } else {
                for e in list {
                    println!(
                        "{:>6}  {:<7} {:<4} msg {:<6} {}/import/{}/{}",
                        e.id,
                        e.state,
                        e.kind,
                        e.message,
                        place.data_dir.display(),
                        // The account's own directory (assigned at its first pass).
                        e.dir.as_deref().unwrap_or(&e.account),
                        e.file_name
                    );
                }
            }
        }
        MessagesCmd::Health { account: a, json } => {
            let a = account(a)?;
            let list = store.health(a.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("No intake has run yet; run `kurir fetch`.");
            } else {
                for h in list {
                    println!("{}", h.account);
                    println!(
                        "  last success  {}",
                        h.last_success.as_deref().unwrap_or("never")
                    );
                    println!("  taken in      {} messages", h.taken_in_total);
                    if let Some(err) = &h.last_error {
                        println!(
                            "  last error    {} ({} failure(s) in a row)",
                            h.last_error_at.as_deref().unwrap_or(""),
                            h.failures
                        );
                        println!("                {err}");
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
