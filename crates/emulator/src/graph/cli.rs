//! `kurir emulator put-mail --mailbox ADDR FILE.eml…`: puts messages into a mailbox of a
//! RUNNING emulator through its `/_emulator` API, for demos ("an order arrives").
//!
//! It finds the emulator through `{state_dir}/emulator.json`, which the emulator writes at
//! start (base URL and CA path), so `--state-dir` is all a demo script needs; `--url` and
//! `--ca` override it.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;

/// Subcommands of `kurir emulator`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum EmulatorCommand {
    /// Put .eml files into a mailbox of a running emulator (as delivered, unread mail).
    PutMail(PutMailArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct PutMailArgs {
    /// Mailbox address (a fixture user's UPN or a shared mailbox).
    #[arg(long, value_name = "ADDRESS")]
    pub mailbox: String,
    /// Folder: a well-known name (inbox, archive, …), a folder id or display name.
    #[arg(long, value_name = "FOLDER", default_value = "inbox")]
    pub folder: String,
    /// The running emulator's state dir (where it wrote emulator.json).
    #[arg(long, value_name = "DIR", env = "KURIR_EMULATOR_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The emulator's base URL (https://127.0.0.1:PORT), instead of reading the state dir.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The emulator's CA certificate (PEM), instead of reading the state dir.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// RFC 822 message files.
    #[arg(required = true, value_name = "FILE.eml")]
    pub files: Vec<PathBuf>,
}

#[derive(Deserialize)]
struct Discovery {
    base_url: String,
    ca_path: PathBuf,
}

/// Runs a `kurir emulator` subcommand.
pub async fn run(cmd: EmulatorCommand, parent_state_dir: Option<PathBuf>) -> anyhow::Result<()> {
    match cmd {
        EmulatorCommand::PutMail(args) => put_mail(args, parent_state_dir).await,
    }
}

async fn put_mail(args: PutMailArgs, parent_state_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let (url, ca) = match (args.url, args.ca) {
        (Some(u), Some(c)) => (u, c),
        (u, c) => {
            let Some(dir) = args.state_dir.or(parent_state_dir) else {
                bail!(
                    "put-mail needs to find the running emulator: pass --state-dir DIR (the emulator's --state-dir), or both --url and --ca"
                );
            };
            let path = dir.join("emulator.json");
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "cannot read {}; is an emulator running with --state-dir {}? Otherwise give --url and --ca",
                    path.display(),
                    dir.display()
                )
            })?;
            let d: Discovery = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not the emulator's discovery file; restart the emulator",
                    path.display()
                )
            })?;
            (u.unwrap_or(d.base_url), c.unwrap_or(d.ca_path))
        }
    };
    let pem = std::fs::read(&ca)
        .with_context(|| format!("cannot read the emulator CA {}; check --ca", ca.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .ok()
        .filter(|c| !c.is_empty())
        .with_context(|| {
            format!(
                "{} is not a PEM certificate; give the emulator's ca.pem",
                ca.display()
            )
        })?;
    let client = reqwest::Client::builder()
        .tls_certs_merge(certs)
        .build()
        .context("cannot set up the HTTPS client")?;
    let mut endpoint = url::Url::parse(url.trim_end_matches('/'))
        .with_context(|| format!("'{url}' is not a URL; use the emulator's base_url"))?;
    endpoint
        .path_segments_mut()
        .map_err(|_| anyhow::anyhow!("'{url}' cannot be a base URL"))?
        .extend(["_emulator", "mailboxes", &args.mailbox, "messages"]);
    endpoint
        .query_pairs_mut()
        .append_pair("folder", &args.folder);
    for file in &args.files {
        let raw = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let resp = client
            .post(endpoint.clone())
            .header("content-type", "message/rfc822")
            .body(raw)
            .send()
            .await
            .with_context(|| format!("cannot reach the emulator at {url}; is it running?"))?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!(
                "the emulator refused {}: {}",
                file.display(),
                body["message"].as_str().unwrap_or(status.as_str())
            );
        }
        println!(
            "{} -> {} {} ({})",
            file.display(),
            args.mailbox,
            args.folder,
            body["id"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}
