//! `kurir messages list|show|export|imports|health`: what intake stored, the import queue the ERP
//! picks documents up from, and each account's health record.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use kurir_settings::normalize_account_name;
use kurir_store::messages::{MessageFilter, MessageStatus};

use kurir_store::KurirStore;
use kurir_web::ops::{ActionDone, OpError, QuarantineAction, quarantine_action};

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
    /// Run the account's handler again on a quarantined message (e.g. after its type was
    /// changed); the result replaces the quarantine state.
    Reprocess { id: i64 },
    /// Mark a quarantined message handled, with a note saying what was done.
    Handle {
        id: i64,
        #[arg(long)]
        note: String,
    },
    /// Forward a quarantined message (attached as .eml) to an address through the outbox, sent
    /// as Kurir itself from the Default sender address.
    Forward {
        id: i64,
        #[arg(long, value_name = "ADDRESS")]
        to: String,
    },
    /// Delete a quarantined message: its record and its raw MIME.
    Delete { id: i64 },
    /// Who did what to which message (quarantine actions), newest first.
    Audit {
        /// Only this message's entries.
        id: Option<i64>,
        #[arg(long, default_value = "50")]
        limit: u32,
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
                if let Some(h) = &m.handled {
                    println!("  handled      {} by {}: {}", h.at, h.by, h.note);
                }
                if let Some(at) = &m.raw_purged_at {
                    println!("  original     removed by retention (keep_raw_mail) {at}");
                }
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
            let Some(raw) = store.raw_message(id).await? else {
                return Err(match store.message(id).await? {
                    Some(m) if m.raw_purged_at.is_some() => bad(format!(
                        "the original of message {id} was removed by retention (keep_raw_mail) on {}; its details remain (`kurir messages show {id}`)",
                        m.raw_purged_at.unwrap_or_default()
                    )),
                    _ => bad(format!(
                        "there is no stored message {id}; list them with `kurir messages list`"
                    )),
                });
            };
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
        MessagesCmd::Reprocess { id } => {
            return quarantine(&store, id, QuarantineAction::Reprocess).await;
        }
        MessagesCmd::Handle { id, note } => {
            return quarantine(&store, id, QuarantineAction::MarkHandled { note }).await;
        }
        MessagesCmd::Forward { id, to } => {
            return quarantine(&store, id, QuarantineAction::Forward { to }).await;
        }
        MessagesCmd::Delete { id } => {
            return quarantine(&store, id, QuarantineAction::Delete).await;
        }
        MessagesCmd::Audit { id, limit, json } => {
            let subject = id.map(|id| format!("message:{id}"));
            let log = store.audit_log(subject.as_deref(), limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&log)?);
            } else if log.is_empty() {
                println!("Nothing in the audit trail.");
            } else {
                for e in log {
                    println!(
                        "{}  {:<14} {:<14} {:<20} {}",
                        e.at,
                        e.action,
                        e.subject,
                        e.actor,
                        e.detail.as_deref().unwrap_or("")
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

/// Who runs a CLI command, for the audit trail: `cli:<the OS user>`.
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

async fn quarantine(
    store: &std::sync::Arc<dyn KurirStore>,
    id: i64,
    action: QuarantineAction,
) -> anyhow::Result<ExitCode> {
    let submitter = kurir_outbox::Submitter::new(store.clone());
    match quarantine_action(store, &submitter, id, action, &cli_actor()).await {
        Ok(done) => {
            match done {
                ActionDone::Stored { documents } => println!(
                    "Message {id} reprocessed: taken in, {documents} document(s) in the import folder."
                ),
                ActionDone::StillQuarantined { reason } => {
                    println!("Message {id} reprocessed: still quarantined: {reason}")
                }
                ActionDone::MarkedHandled => println!("Message {id} marked handled."),
                ActionDone::Forwarded { outbox_id } => println!(
                    "Message {id} forwarded: outbox entry {outbox_id} (`kurir serve` sends it; see `kurir outbox show {outbox_id}`)."
                ),
                ActionDone::Deleted => println!("Message {id} deleted."),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(OpError::Store(e)) => Err(e.into()),
        Err(e) => Err(bad(e.to_string())),
    }
}
