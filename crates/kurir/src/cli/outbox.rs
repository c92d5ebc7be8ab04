//! `kurir outbox list|show|retry|cancel|run`: the durable queue of outgoing mail.
//!
//! `run` is the sender: it works through the queue with the same workers the daemon runs
//! (`--until-empty` for a one-off pass, e.g. from cron or a test). The worker options here are
//! shared by `kurir send --wait` and `kurir listener`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Subcommand, ValueEnum};
use kurir_outbox::{
    Content, ExchangeTransport, Outbox, SendAs, Submission, SubmitError, Submitter,
};
use kurir_store::KurirStore;
use kurir_store::outbox::{OutboxFilter, OutgoingMessage, OutgoingState};

use super::args::WorkerArgs;
use super::{Place, open_store};
use crate::fail::bad;

#[derive(Subcommand, Debug)]
pub enum OutboxCmd {
    /// List queued, sent and failed messages (newest first).
    List {
        /// Only messages in this state.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        /// Only messages of this sending user.
        #[arg(long, value_name = "CODE")]
        user: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Everything about one message: state, attempts, the last error and what to do.
    Show {
        id: i64,
        /// Print the raw MIME instead.
        #[arg(long)]
        raw: bool,
        #[arg(long)]
        json: bool,
    },
    /// Queue ready-made messages (.eml files, RFC 5322) in ONE durable commit, e.g. a batch
    /// from the ERP. Envelope recipients come from To, Cc and Bcc; the sending user's settings
    /// decide how they go out (the running service or `kurir outbox run` sends them).
    Submit {
        /// The Kurir user who sends them (ERP user code).
        #[arg(long = "as", value_name = "USER", required_unless_present = "webshop")]
        as_user: Option<String>,
        /// Send as the webshop.
        #[arg(long, conflicts_with = "as_user")]
        webshop: bool,
        /// .eml files, or directories whose .eml files are all queued.
        #[arg(required = true, value_name = "FILE|DIR")]
        paths: Vec<PathBuf>,
    },
    /// Send a failed (or waiting) message again now.
    Retry { id: i64 },
    /// Cancel a queued or failed message.
    Cancel { id: i64 },
    /// Send what is queued (the daemon does this continuously).
    Run {
        /// Stop when nothing is queued or being sent any more.
        #[arg(long)]
        until_empty: bool,
        #[command(flatten)]
        worker: WorkerArgs,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum StateArg {
    Queued,
    Sending,
    Sent,
    Failed,
    Cancelled,
}

impl From<StateArg> for OutgoingState {
    fn from(s: StateArg) -> Self {
        match s {
            StateArg::Queued => OutgoingState::Queued,
            StateArg::Sending => OutgoingState::Sending,
            StateArg::Sent => OutgoingState::Sent,
            StateArg::Failed => OutgoingState::Failed,
            StateArg::Cancelled => OutgoingState::Cancelled,
        }
    }
}

fn when(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

fn print_row(m: &OutgoingMessage) {
    println!(
        "{:>6}  {:<9}  {:<10}  {:>2}  {}  {}",
        m.id,
        m.state.as_str(),
        m.sender_user,
        m.attempts,
        m.recipients.join(","),
        m.subject.as_deref().unwrap_or("")
    );
}

pub async fn run(place: &Place, cmd: OutboxCmd) -> anyhow::Result<ExitCode> {
    let store = open_store(place).await?;
    match cmd {
        OutboxCmd::List {
            state,
            user,
            limit,
            json,
        } => {
            let list = store
                .outbox_list(&OutboxFilter {
                    state: state.map(Into::into),
                    sender_user: user.map(|u| u.to_ascii_uppercase()),
                    limit: Some(limit),
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("The outbox is empty.");
            } else {
                println!(
                    "{:>6}  {:<9}  {:<10}  {:>2}  TO  SUBJECT",
                    "ID", "STATE", "USER", "TRIES"
                );
                for m in &list {
                    print_row(m);
                }
                let counts = store.outbox_counts().await?;
                let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
                println!("In total: {}", summary.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
        OutboxCmd::Show { id, raw, json } => {
            if raw {
                let Some(bytes) = store.outbox_raw(id).await? else {
                    return Err(bad(format!(
                        "there is no message {id} in the outbox; see `kurir outbox list`"
                    )));
                };
                use std::io::Write;
                std::io::stdout().write_all(&bytes)?;
                return Ok(ExitCode::SUCCESS);
            }
            let Some(m) = store.outbox_get(id).await? else {
                return Err(bad(format!(
                    "there is no message {id} in the outbox; see `kurir outbox list`"
                )));
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("Message {}: {}", m.id, m.state);
            println!("  sending user  {}", m.sender_user);
            println!("  came from     {}", m.origin);
            println!("  From          {}", m.from.as_deref().unwrap_or("—"));
            println!("  recipients    {}", m.recipients.join(", "));
            println!("  subject       {}", m.subject.as_deref().unwrap_or("—"));
            println!("  Message-ID    {}", m.message_id.as_deref().unwrap_or("—"));
            println!("  size          {} bytes", m.size);
            println!("  queued at     {}", m.created_at);
            println!("  attempts      {}", m.attempts);
            match m.state {
                OutgoingState::Queued => println!("  next attempt  {}", when(m.next_attempt_at)),
                OutgoingState::Sending => println!(
                    "  leased until  {}",
                    m.leased_until.map(when).unwrap_or_default()
                ),
                OutgoingState::Sent => println!(
                    "  sent at       {} via {} ({})",
                    m.sent_at.as_deref().unwrap_or("?"),
                    m.via.as_deref().unwrap_or("?"),
                    m.server_reply.as_deref().unwrap_or("")
                ),
                _ => {}
            }
            if let Some(e) = &m.last_error {
                println!("  last error    {e}");
            }
            if m.state == OutgoingState::Failed {
                println!(
                    "Fix what the error names, then send it again with: kurir outbox retry {}",
                    m.id
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        OutboxCmd::Submit {
            as_user,
            webshop,
            paths,
        } => submit(store, as_user, webshop, paths).await,
        OutboxCmd::Retry { id } => {
            if store.outbox_retry(id).await? {
                println!(
                    "Message {id} is queued to be sent now (by the running Kurir service, or `kurir outbox run`)."
                );
                Ok(ExitCode::SUCCESS)
            } else {
                Err(bad(format!(
                    "message {id} cannot be retried: it does not exist or is sent, cancelled or being sent right now (see `kurir outbox show {id}`)"
                )))
            }
        }
        OutboxCmd::Cancel { id } => {
            if store.outbox_cancel(id).await? {
                println!("Message {id} is cancelled and will not be sent.");
                Ok(ExitCode::SUCCESS)
            } else {
                Err(bad(format!(
                    "message {id} cannot be cancelled: it does not exist or is already sent, cancelled or being sent (see `kurir outbox show {id}`)"
                )))
            }
        }
        OutboxCmd::Run {
            until_empty,
            worker,
        } => {
            let outbox = Outbox::new(store, worker.config()?);
            let stop = kurir_service::signal::stop_on_signal();
            let stats = outbox.run(stop, until_empty).await?;
            eprintln!(
                "kurir outbox: {} sent, {} to be retried, {} failed, {} deferred by the rate cap",
                stats.sent, stats.retried, stats.failed, stats.deferred
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `kurir outbox submit`: every file read and checked first, then one transaction.
async fn submit(
    store: Arc<dyn KurirStore>,
    as_user: Option<String>,
    webshop: bool,
    paths: Vec<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for p in &paths {
        if p.is_dir() {
            let mut in_dir: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| bad(format!("cannot read the directory {} ({e})", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x.eq_ignore_ascii_case("eml")))
                .collect();
            in_dir.sort();
            files.extend(in_dir);
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        return Err(bad("no .eml files to queue"));
    }
    let mut messages = Vec::with_capacity(files.len());
    for f in &files {
        let raw =
            std::fs::read(f).map_err(|e| bad(format!("cannot read {} ({e})", f.display())))?;
        // The recipients are the message's To, Cc and Bcc.
        messages.push(Content::Mime {
            raw,
            envelope: None,
        });
    }
    let n = messages.len();
    let submission = Submission {
        send_as: if webshop {
            SendAs::Webshop
        } else {
            SendAs::User(as_user.unwrap_or_default())
        },
        origin: "cli:submit".into(),
        transport: ExchangeTransport::Auto,
        queue_if_sender_cannot_send: false,
        messages,
    };
    let queued = match Submitter::new(store).queue(submission).await {
        Ok(q) => q,
        Err(SubmitError::Message { index, problem }) => {
            return Err(bad(format!(
                "{}: {problem}; nothing was queued",
                files[index].display()
            )));
        }
        Err(e) => return Err(crate::fail::submit_failed(e)),
    };
    println!(
        "Queued {n} message(s) as {} in one durable commit (ids {}–{}); the running Kurir service or `kurir outbox run` sends them.",
        queued.sender_user,
        queued.ids.first().copied().unwrap_or_default(),
        queued.ids.last().copied().unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
