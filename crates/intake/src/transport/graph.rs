//! Microsoft Graph (REST) on kurir-graph's `GraphClient`: list the source folder (following
//! `@odata.nextLink`), `GET …/$value` for the MIME, `POST …/move` to the processed or quarantine
//! folder (created under the mailbox root when missing).
//!
//! - Identity: `graph:<id>`. A move gives the message a new id; the old one is what we recorded,
//!   and a message that comes back (moved back by a user) is recognised by its Message-ID.
//! - Throttling: the client honours 429/503 `Retry-After`; we never run more than 4 requests at
//!   once per mailbox, Exchange's documented MailboxConcurrency limit, so we do not cause them.
//! - A 404 on fetch or move means someone else moved or deleted the message in between: nothing
//!   to take in, nothing to move.
//! - Graph gives no size before the download, so a message's MIME is streamed into memory; at
//!   most 4 downloads are in flight. (Exchange's limit is 150 MB per message.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use kurir_graph::{GraphClient, GraphError, MessageQuery};
use secrecy::ExposeSecret;

use super::imap::Folders;
use super::{Destination, Fetched, Listed, SpoolDir, Spooled, Transport};
use crate::IntakeError;
use crate::auth::TokenSource;

/// Exchange's MailboxConcurrency limit per app and mailbox.
pub const MAX_CONCURRENT: usize = 4;

/// Folder names Graph knows in every language.
const WELL_KNOWN: &[&str] = &[
    "inbox",
    "archive",
    "deleteditems",
    "drafts",
    "junkemail",
    "sentitems",
    "outbox",
];

pub struct GraphTransport {
    client: GraphClient,
    mailbox: String,
    folders: Folders,
    tokens: Arc<dyn TokenSource>,
    /// Display name → folder id, for folders resolved or created.
    folder_ids: HashMap<String, String>,
}

impl GraphTransport {
    pub fn new(
        base_url: &str,
        ca_pem: Option<&str>,
        mailbox: String,
        folders: Folders,
        tokens: Arc<dyn TokenSource>,
    ) -> Result<Self, IntakeError> {
        let client = GraphClient::new(base_url, ca_pem, Duration::from_secs(120))
            .map_err(|e| graph_err("setup", e))?;
        Ok(GraphTransport {
            client,
            mailbox,
            folders,
            tokens,
            folder_ids: HashMap::new(),
        })
    }

    async fn token(&self) -> Result<String, IntakeError> {
        Ok(self
            .tokens
            .bearer()
            .await?
            .secret
            .expose_secret()
            .to_owned())
    }

    /// A folder reference Graph accepts: a well-known name as is, else the id of the child of
    /// the mailbox root with that display name (created when `create`).
    async fn folder(&mut self, name: &str, create: bool) -> Result<String, IntakeError> {
        let lower = name.to_ascii_lowercase();
        if WELL_KNOWN.contains(&lower.as_str()) {
            return Ok(lower);
        }
        if let Some(id) = self.folder_ids.get(&lower) {
            return Ok(id.clone());
        }
        let token = self.token().await?;
        let folder = if create {
            self.client
                .find_or_create_child_folder(&token, &self.mailbox, "msgfolderroot", name)
                .await
                .map_err(|e| folder_err(&self.mailbox, name, e))?
        } else {
            self.client
                .list_child_folders(&token, &self.mailbox, "msgfolderroot")
                .await
                .map_err(|e| folder_err(&self.mailbox, name, e))?
                .into_iter()
                .find(|f| f.display_name.eq_ignore_ascii_case(name))
                .ok_or_else(|| IntakeError::Folder {
                    mailbox: self.mailbox.clone(),
                    folder: name.to_owned(),
                    detail: "there is no folder by that name at the top of the mailbox".into(),
                })?
        };
        self.folder_ids.insert(lower, folder.id.clone());
        Ok(folder.id)
    }
}

fn graph_err(operation: &str, e: GraphError) -> IntakeError {
    IntakeError::Graph {
        operation: operation.to_owned(),
        transient: e.is_transient(),
        detail: e.to_string(),
    }
}

fn folder_err(mailbox: &str, folder: &str, e: GraphError) -> IntakeError {
    if e.is_transient() {
        return graph_err("folder lookup", e);
    }
    IntakeError::Folder {
        mailbox: mailbox.to_owned(),
        folder: folder.to_owned(),
        detail: e.to_string(),
    }
}

#[async_trait]
impl Transport for GraphTransport {
    fn protocol(&self) -> &'static str {
        "graph"
    }

    async fn list(&mut self) -> Result<Vec<Listed>, IntakeError> {
        let source = self.folders.source.clone();
        let folder = self.folder(&source, false).await?;
        let token = self.token().await?;
        let query = MessageQuery {
            select: vec!["id".into()],
            top: Some(100),
            order_by: Some("receivedDateTime".into()),
            ..Default::default()
        };
        let messages = self
            .client
            .list_messages(&token, &self.mailbox, &folder, &query)
            .await
            .map_err(|e| graph_err("list of the source folder", e))?;
        Ok(messages
            .into_iter()
            .filter_map(|m| m.id)
            .map(|id| Listed {
                server_id: format!("graph:{id}"),
                size: None,
            })
            .collect())
    }

    async fn fetch(
        &mut self,
        ids: &[Listed],
        _spool: &SpoolDir,
    ) -> Result<Vec<Fetched>, IntakeError> {
        let token = self.token().await?;
        let client = &self.client;
        let mailbox = &self.mailbox;
        let results: Vec<Result<Option<Fetched>, IntakeError>> = stream::iter(ids.to_vec())
            .map(|l| {
                let token = token.clone();
                async move {
                    let Some(id) = l.server_id.strip_prefix("graph:") else {
                        return Ok(None);
                    };
                    let mut body = Vec::new();
                    match client.get_mime(&token, mailbox, id, &mut body).await {
                        Ok(_) => Ok(Some(Fetched {
                            server_id: l.server_id.clone(),
                            body: Spooled::Memory(body),
                        })),
                        Err(e) if e.is_not_found() => Ok(None),
                        Err(e) => Err(graph_err("download of a message ($value)", e)),
                    }
                }
            })
            .buffer_unordered(MAX_CONCURRENT)
            .collect()
            .await;
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            if let Some(f) = r? {
                out.push(f);
            }
        }
        Ok(out)
    }

    async fn finish(&mut self, server_ids: &[String], to: Destination) -> Result<(), IntakeError> {
        if server_ids.is_empty() {
            return Ok(());
        }
        let name = match to {
            Destination::Processed => self.folders.processed.clone(),
            Destination::Quarantine => self.folders.quarantine.clone(),
        };
        let dest = self.folder(&name, true).await?;
        let token = self.token().await?;
        let client = &self.client;
        let mailbox = &self.mailbox;
        let results: Vec<Result<(), IntakeError>> = stream::iter(server_ids.to_vec())
            .map(|sid| {
                let (token, dest) = (token.clone(), dest.clone());
                async move {
                    let Some(id) = sid.strip_prefix("graph:") else {
                        return Ok(());
                    };
                    match client.move_message(&token, mailbox, id, &dest, false).await {
                        Ok(_) => Ok(()),
                        // Already moved (a killed pass moved it) or deleted by someone.
                        Err(e) if e.is_not_found() => Ok(()),
                        Err(e) => Err(graph_err("move to the processed/quarantine folder", e)),
                    }
                }
            })
            .buffer_unordered(MAX_CONCURRENT)
            .collect()
            .await;
        results.into_iter().collect()
    }
}
