//! Incoming mail: exactly-once intake from IMAP (with IDLE), POP3 and Microsoft Graph, routed to
//! the ERP by account type.
//!
//! - [`transport`]: how messages come off a server, behind one trait ([`transport::Transport`]).
//! - [`pipeline`]: one pass — fetch, parse, handle, record in one transaction, then move. The
//!   order of these steps is what makes intake exactly-once under crashes; see its docs.
//! - [`handler`]: what an account type does with a message (Monitor-to-Monitor XML+PDF into the
//!   import queue, supplier invoices, general).
//! - [`schedule`]: poll interval, IDLE, backoff and the health record.
//! - [`auth`]: tokens (from kurir-entra) and the SASL strings that carry them.
//!
//! This crate never reads settings: the caller (the CLI, the daemon) resolves an account's
//! effective settings into an [`AccountSpec`] and a [`auth::TokenSource`].

pub mod auth;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod handler;
pub mod parse;
pub mod pipeline;
pub mod reasons;
pub mod schedule;
mod segment;
pub mod tls;
pub mod transport;
pub mod xml;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use error::IntakeError;
pub use pipeline::{BatchLimits, Intake, PassSummary, Progress, ReprocessOutcome};

use transport::graph::GraphTransport;
use transport::imap::{Folders, ImapTransport};
use transport::pop3::Pop3Transport;
use transport::{ServerConfig, Transport};

/// Which protocol an account reads with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    Imap { host: String, port: u16 },
    Pop3 { host: String, port: u16 },
    Graph { endpoint: String },
}

/// An incoming-mail account, resolved from settings.
#[derive(Debug, Clone)]
pub struct AccountSpec {
    pub name: String,
    /// `type`: monitor-to-monitor, supplier-invoices, general or free text.
    pub account_type: String,
    pub mailbox: String,
    pub protocol: Protocol,
    pub folders: Folders,
    pub poll_interval: Duration,
    pub ca_file: Option<PathBuf>,
    pub mechanism: auth::Mechanism,
}

impl AccountSpec {
    /// The account `name` as its effective settings describe it. A missing or malformed value
    /// is a [`IntakeError::Config`] that says which and how to set it.
    pub fn from_settings(
        name: &str,
        eff: &kurir_settings::Effective,
        mechanism: auth::Mechanism,
    ) -> Result<AccountSpec, IntakeError> {
        let problem = |problem: String| IntakeError::Config {
            account: name.to_owned(),
            problem,
        };
        let need = |k: &str| {
            eff.get(k).map(str::to_owned).ok_or_else(|| {
                problem(format!(
                    "{k} is not set; set it with `kurir settings set --account {name} {k}=…`"
                ))
            })
        };
        let port = |k: &str| {
            need(k)?;
            eff.port(k)
                .ok_or_else(|| problem(format!("{k} is not a port number")))
        };
        use kurir_settings::Protocol as P;
        let protocol = match eff.protocol() {
            Some(P::Imap) => Protocol::Imap {
                host: need("imap_host")?,
                port: port("imap_port")?,
            },
            Some(P::Pop3) => Protocol::Pop3 {
                host: need("pop3_host")?,
                port: port("pop3_port")?,
            },
            Some(P::Graph) => Protocol::Graph {
                endpoint: need("graph_endpoint")?,
            },
            None => {
                need("protocol")?;
                return Err(problem(format!(
                    "protocol is not one of {}",
                    P::ALL
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        };
        need("poll_interval")?;
        let poll_interval = eff
            .duration("poll_interval")
            .ok_or_else(|| problem("poll_interval is not a duration (e.g. 60s, 5m)".into()))?;
        Ok(AccountSpec {
            name: name.to_owned(),
            account_type: need("type")?,
            mailbox: need("mailbox")?,
            protocol,
            folders: Folders {
                source: need("source_folder")?,
                processed: need("processed_folder")?,
                quarantine: need("quarantine_folder")?,
            },
            poll_interval,
            ca_file: eff.get("ca_file").map(PathBuf::from),
            mechanism,
        })
    }

    /// The transport for this account.
    pub fn transport(
        &self,
        tokens: Arc<dyn auth::TokenSource>,
    ) -> Result<Box<dyn Transport>, IntakeError> {
        let server = |host: &str, port: u16| ServerConfig {
            host: host.to_owned(),
            port,
            ca_file: self.ca_file.clone(),
            mailbox: self.mailbox.clone(),
            mechanism: self.mechanism,
        };
        match &self.protocol {
            Protocol::Imap { host, port } => Ok(Box::new(ImapTransport::new(
                server(host, *port),
                self.folders.clone(),
                tokens,
            ))),
            Protocol::Pop3 { host, port } => {
                Ok(Box::new(Pop3Transport::new(server(host, *port), tokens)))
            }
            Protocol::Graph { endpoint } => {
                let ca = match &self.ca_file {
                    Some(p) => Some(std::fs::read_to_string(p).map_err(|e| IntakeError::Tls {
                        server: endpoint.clone(),
                        detail: format!("the Extra CA file {} cannot be read: {e}", p.display()),
                    })?),
                    None => None,
                };
                // Settings hold the Graph host (https://graph.microsoft.com); the API is /v1.0.
                let base = if endpoint.trim_end_matches('/').ends_with("/v1.0") {
                    endpoint.clone()
                } else {
                    format!("{}/v1.0", endpoint.trim_end_matches('/'))
                };
                Ok(Box::new(GraphTransport::new(
                    &base,
                    ca.as_deref(),
                    self.mailbox.clone(),
                    self.folders.clone(),
                    tokens,
                )?))
            }
        }
    }

    /// The pipeline for this account.
    pub fn intake(&self, data_dir: PathBuf, store: Arc<dyn kurir_store::MessageStore>) -> Intake {
        Intake::for_account(&self.name, &self.account_type, data_dir, store)
    }
}
