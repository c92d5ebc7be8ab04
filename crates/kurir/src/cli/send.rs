//! `kurir send`: queue a message as a Kurir user (or the webshop) and optionally wait for it.
//!
//! The sender's effective settings are checked before anything is queued, so a user that cannot
//! send (method none, incomplete settings) is refused at once with the fix (exit status 2),
//! instead of a message failing later in the queue. The message is built with lettre's builder
//! and queued durably; `--wait` then sends it from this process and reports the outcome.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use kurir_outbox::{Content, FileAttachment, Outbox, SendAs, Submission, Submitter};
use kurir_store::outbox::OutgoingState;

use super::args::WorkerArgs;
use super::{Place, open_store};
use crate::fail::bad;

#[derive(Args, Debug)]
pub struct SendArgs {
    /// The Kurir user who sends (ERP user code, e.g. ANNA or WEBSHOP): their settings decide the
    /// mailbox, the authentication and the From address.
    #[arg(long = "as", value_name = "USER", required_unless_present = "webshop")]
    pub as_user: Option<String>,
    /// Send as the webshop (its method; according to user settings means as user WEBSHOP).
    #[arg(long, conflicts_with = "as_user")]
    pub webshop: bool,
    #[arg(long, value_name = "ADDRESS", required = true)]
    pub to: Vec<String>,
    #[arg(long, value_name = "ADDRESS")]
    pub cc: Vec<String>,
    #[arg(long, value_name = "ADDRESS")]
    pub bcc: Vec<String>,
    #[arg(long)]
    pub subject: String,
    /// Plain-text body from a file ("-" reads stdin).
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,
    /// HTML body from a file (with --body-file: both, as alternatives).
    #[arg(long, value_name = "FILE")]
    pub html_file: Option<PathBuf>,
    /// Attach a file (repeat for several; up to 150 MB each through Graph).
    #[arg(long, value_name = "FILE")]
    pub attach: Vec<PathBuf>,
    /// Send from this process now and wait for the outcome (else the running Kurir service or
    /// `kurir outbox run` sends it).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up waiting after this many seconds (the message stays queued).
    #[arg(long, default_value_t = 300)]
    pub wait_secs: u64,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

fn read_body(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        return Ok(s);
    }
    std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read {} ({e})", path.display())))
}

pub async fn run(place: &Place, args: SendArgs) -> anyhow::Result<ExitCode> {
    let config = args.worker.config()?;
    let store = open_store(place).await?;
    let mut attachments = Vec::new();
    for f in &args.attach {
        if !f.is_file() {
            return Err(bad(format!(
                "the attachment {} is not a readable file",
                f.display()
            )));
        }
        attachments.push(FileAttachment::read(f).map_err(|e| bad(e.to_string()))?);
    }
    let submission = Submission {
        send_as: if args.webshop {
            SendAs::Webshop
        } else {
            SendAs::User(args.as_user.clone().unwrap_or_default())
        },
        origin: "cli".into(),
        transport: config.exchange_transport,
        queue_if_sender_cannot_send: false,
        messages: vec![Content::Compose {
            to: args.to.clone(),
            cc: args.cc.clone(),
            bcc: args.bcc.clone(),
            subject: args.subject.clone(),
            text: args.body_file.as_deref().map(read_body).transpose()?,
            html: args.html_file.as_deref().map(read_body).transpose()?,
            attachments,
        }],
    };
    let queued = Submitter::new(store.clone())
        .queue(submission)
        .await
        .map_err(crate::fail::submit_failed)?;
    let id = queued.ids[0];
    let sender = queued
        .sender
        .as_ref()
        .expect("a sender that cannot send is refused here");
    println!(
        "Queued message {id} from {} (user {}, {:?}).",
        sender.from, queued.sender_user, sender.route
    );
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }

    let outbox = Outbox::new(store.clone(), config);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = {
        let outbox = outbox.clone();
        tokio::spawn(async move { outbox.run(stop_rx, false).await })
    };
    let started = Instant::now();
    let deadline = Duration::from_secs(args.wait_secs);
    let mut last_error: Option<String> = None;
    let result = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let m = store
            .outbox_get(id)
            .await?
            .expect("the queued message exists");
        if m.last_error != last_error {
            if let Some(e) = &m.last_error {
                eprintln!("attempt {}: {e}", m.attempts);
            }
            last_error = m.last_error.clone();
        }
        match m.state {
            OutgoingState::Sent | OutgoingState::Failed | OutgoingState::Cancelled => break m,
            _ if started.elapsed() > deadline => break m,
            _ => {}
        }
    };
    let _ = stop_tx.send(true);
    let _ = worker.await;
    match result.state {
        OutgoingState::Sent => {
            println!(
                "Sent message {id} via {}: {}",
                result.via.as_deref().unwrap_or("?"),
                result.server_reply.as_deref().unwrap_or("")
            );
            Ok(ExitCode::SUCCESS)
        }
        OutgoingState::Failed => {
            eprintln!(
                "kurir: message {id} failed: {}",
                result.last_error.as_deref().unwrap_or("unknown error")
            );
            Ok(ExitCode::from(1))
        }
        state => {
            eprintln!(
                "kurir: message {id} is still {state} after {} s; it stays queued (see `kurir outbox show {id}`)",
                args.wait_secs
            );
            Ok(ExitCode::from(1))
        }
    }
}
