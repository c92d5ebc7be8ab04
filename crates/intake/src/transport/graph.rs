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
//! - Memory: Graph v1.0 has no size property on a message, so the listing asks for the MAPI
//!   property `PR_MESSAGE_SIZE` (`$expand=singleValueExtendedProperties(…)`, see
//!   [`kurir_graph::PR_MESSAGE_SIZE`]) and the pipeline bounds batches by bytes with it, as it
//!   does with IMAP's RFC822.SIZE. That size is Exchange's store size, close to but not the
//!   MIME's length, so it only plans: what a download keeps in memory is bounded by the bytes
//!   actually received. A body stays in memory only while it is at most
//!   [`INLINE_MAX`](crate::pipeline::INLINE_MAX) (larger ones get a file of their own in the
//!   store anyway) and the batch's [`BATCH_MEMORY`] budget lasts; otherwise it streams into a
//!   spool file, which the pipeline renames into the store without reading it into memory. At
//!   most 4 downloads are in flight. (Exchange's limit is 150 MB per message.)

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use kurir_graph::{GraphClient, GraphError, MessageQuery};
use secrecy::ExposeSecret;
use tokio::io::AsyncWrite;

use super::imap::Folders;
use super::{Destination, Fetched, Listed, SpoolDir, Spooled, Transport};
use crate::IntakeError;
use crate::auth::TokenSource;
use crate::pipeline::INLINE_MAX;

/// A body larger than this goes to a spool file: the store keeps such a message in a file of
/// its own, so the spool file simply becomes that file.
const INLINE_LIMIT: u64 = INLINE_MAX;

/// Exchange's MailboxConcurrency limit per app and mailbox.
pub const MAX_CONCURRENT: usize = 4;

/// Bytes of small bodies one fetched batch may keep in memory; the rest of the batch streams
/// into spool files. The pipeline holds at most two batches (one being stored while the next is
/// fetched), so small mail costs at most twice this.
pub const BATCH_MEMORY: u64 = 8 * 1024 * 1024;

/// `$expand` that makes the listing carry each message's `PR_MESSAGE_SIZE`.
fn size_expansion() -> String {
    format!(
        "singleValueExtendedProperties($filter=id eq '{}')",
        kurir_graph::PR_MESSAGE_SIZE
    )
}

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
        source: Box::new(e),
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
        kurir_settings::Protocol::Graph.as_str()
    }

    async fn list(&mut self) -> Result<Vec<Listed>, IntakeError> {
        let source = self.folders.source.clone();
        let folder = self.folder(&source, false).await?;
        let token = self.token().await?;
        let query = MessageQuery {
            select: vec!["id".into()],
            top: Some(100),
            order_by: Some("receivedDateTime".into()),
            expand: Some(size_expansion()),
            ..Default::default()
        };
        let messages = self
            .client
            .list_messages(&token, &self.mailbox, &folder, &query)
            .await
            .map_err(|e| graph_err("list of the source folder", e))?;
        Ok(messages
            .into_iter()
            .filter_map(|m| {
                let size = m.mapi_size();
                m.id.map(|id| Listed {
                    server_id: format!("graph:{id}"),
                    size,
                })
            })
            .collect())
    }

    async fn fetch(
        &mut self,
        ids: &[Listed],
        spool: &SpoolDir,
    ) -> Result<Vec<Fetched>, IntakeError> {
        let token = self.token().await?;
        let client = &self.client;
        let mailbox = &self.mailbox;
        let budget = &AtomicU64::new(BATCH_MEMORY);
        let results: Vec<Result<Option<Fetched>, IntakeError>> = stream::iter(ids.to_vec())
            .map(|l| {
                let token = token.clone();
                async move {
                    let Some(id) = l.server_id.strip_prefix("graph:") else {
                        return Ok(None);
                    };
                    // A body the listing says is large goes to disk from its first byte:
                    // buffering its head in memory first would only be copied out again.
                    let limit = match l.size {
                        Some(size) if size > INLINE_LIMIT => 0,
                        _ => INLINE_LIMIT,
                    };
                    let mut body = SpillWriter::new(budget, spool, limit);
                    match client.get_mime(&token, mailbox, id, &mut body).await {
                        Ok(_) => Ok(Some(Fetched {
                            server_id: l.server_id.clone(),
                            body: body.finish(),
                        })),
                        // A spool file that could not be made or written: the disk's fault.
                        Err(_) if body.disk_error.is_some() => {
                            Err(body.disk_error.take().expect("checked"))
                        }
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

/// Where a downloading body is: in memory while it is small and the batch's budget allows,
/// then in a spool file (what was in memory written first).
enum Sink {
    Memory(Vec<u8>),
    /// Moving the in-memory head into the new spool file; `done` bytes of `head` written.
    Spilling {
        path: PathBuf,
        file: tokio::fs::File,
        head: Vec<u8>,
        done: usize,
    },
    File {
        path: PathBuf,
        file: tokio::fs::File,
    },
    Finished,
}

/// An [`AsyncWrite`] for one `$value` download that keeps at most `limit` bytes (and no more
/// than the batch's shared `budget` allows) in memory and streams the rest into a spool file.
/// A writer dropped before [`SpillWriter::finish`] removes its spool file (a broken download).
struct SpillWriter<'a> {
    sink: Sink,
    size: u64,
    /// Bytes of the batch's memory budget this body holds.
    reserved: u64,
    budget: &'a AtomicU64,
    spool: &'a SpoolDir,
    limit: u64,
    /// Why the spool file failed, to report as a disk error rather than a Graph one.
    disk_error: Option<IntakeError>,
}

impl<'a> SpillWriter<'a> {
    fn new(budget: &'a AtomicU64, spool: &'a SpoolDir, limit: u64) -> Self {
        SpillWriter {
            sink: Sink::Memory(Vec::new()),
            size: 0,
            reserved: 0,
            budget,
            spool,
            limit,
            disk_error: None,
        }
    }

    /// Takes `n` bytes of the batch's budget, if there are that many left.
    fn reserve(&mut self, n: u64) -> bool {
        let ok = self
            .budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(n)
            })
            .is_ok();
        if ok {
            self.reserved += n;
        }
        ok
    }

    fn release(&mut self) {
        self.budget.fetch_add(self.reserved, Ordering::AcqRel);
        self.reserved = 0;
    }

    /// The downloaded body (after `get_mime` flushed it).
    fn finish(mut self) -> Spooled {
        match std::mem::replace(&mut self.sink, Sink::Finished) {
            Sink::Memory(v) => {
                // The budget stays taken: the body is part of the batch until it is stored.
                self.reserved = 0;
                Spooled::Memory(v)
            }
            Sink::File { path, .. } | Sink::Spilling { path, .. } => Spooled::File {
                path,
                size: self.size,
            },
            Sink::Finished => Spooled::Memory(Vec::new()),
        }
    }

    /// Writes the in-memory head into the spool file, as far as the file accepts now.
    fn poll_spill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.sink {
                Sink::Spilling {
                    file, head, done, ..
                } => {
                    if *done == head.len() {
                        let Sink::Spilling { path, file, .. } =
                            std::mem::replace(&mut self.sink, Sink::Finished)
                        else {
                            unreachable!()
                        };
                        self.sink = Sink::File { path, file };
                        self.release();
                        continue;
                    }
                    let n = ready!(Pin::new(file).poll_write(cx, &head[*done..]))?;
                    if n == 0 {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    *done += n;
                }
                _ => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl AsyncWrite for SpillWriter<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_spill(cx))?;
        if matches!(this.sink, Sink::Memory(_)) {
            let n = buf.len() as u64;
            if this.size + n <= this.limit && this.reserve(n) {
                if let Sink::Memory(v) = &mut this.sink {
                    v.extend_from_slice(buf);
                }
                this.size += n;
                return Poll::Ready(Ok(buf.len()));
            }
            // Too large for memory, or the batch's budget is spent: on to disk.
            let Sink::Memory(head) = std::mem::replace(&mut this.sink, Sink::Finished) else {
                unreachable!("checked above")
            };
            let (path, file) = match this.spool.new_file() {
                Ok(x) => x,
                Err(e) => {
                    this.disk_error = Some(e);
                    return Poll::Ready(Err(io::Error::other("the spool file could not be made")));
                }
            };
            this.sink = Sink::Spilling {
                path,
                file,
                head,
                done: 0,
            };
            ready!(this.poll_spill(cx))?;
        }
        match &mut this.sink {
            Sink::File { file, .. } => {
                let n = ready!(Pin::new(file).poll_write(cx, buf))?;
                this.size += n as u64;
                Poll::Ready(Ok(n))
            }
            // poll_spill only returns Ready once the head is written and the sink is a file.
            _ => Poll::Ready(Err(io::Error::other("the download was already finished"))),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_spill(cx))?;
        match &mut this.sink {
            Sink::File { file, .. } => Pin::new(file).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl Drop for SpillWriter<'_> {
    fn drop(&mut self) {
        if let Sink::File { path, .. } | Sink::Spilling { path, .. } = &self.sink {
            let _ = std::fs::remove_file(path);
        }
        // A body that failed half-way gives its memory back to the batch.
        self.release();
    }
}
