//! The transports: how messages come off a mail server. The pipeline only knows [`Transport`];
//! adding a protocol means adding a module here, nothing in the pipeline changes.
//!
//! The contract that makes exactly-once possible: `list` never changes the server; `fetch` never
//! changes it either (IMAP uses `BODY.PEEK`); only `finish` does (move, or DELE), and the pipeline
//! calls it only after the messages are durably recorded; `commit` makes finished steps final
//! (POP3's DELE takes effect at QUIT).

pub mod graph;
pub mod imap;
pub(crate) mod imap_fetch;
pub mod pop3;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::IntakeError;
pub use crate::auth::Mechanism;

/// A message in the source folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Stable id on the server: `imap:<UIDVALIDITY>:<UID>`, `pop3:<UIDL>`, `graph:<id>`.
    pub server_id: String,
    /// Size in bytes when the server says it up front (IMAP RFC822.SIZE, POP3 LIST).
    pub size: Option<u64>,
}

/// Where a finished message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Processed,
    Quarantine,
}

/// A fetched message's raw MIME: in memory, or — when large — in a spool file under the data
/// dir, written as it arrived so the whole message never sat in memory.
#[derive(Debug)]
pub enum Spooled {
    Memory(Vec<u8>),
    File { path: PathBuf, size: u64 },
}

impl Spooled {
    pub fn size(&self) -> u64 {
        match self {
            Spooled::Memory(v) => v.len() as u64,
            Spooled::File { size, .. } => *size,
        }
    }
}

/// One fetched message.
#[derive(Debug)]
pub struct Fetched {
    pub server_id: String,
    pub body: Spooled,
}

/// Messages larger than this are streamed to a spool file instead of memory.
pub const LARGE_MESSAGE: u64 = 8 * 1024 * 1024;

/// Where spool files go and how the pipeline names them.
#[derive(Debug, Clone)]
pub struct SpoolDir(pub PathBuf);

impl SpoolDir {
    pub fn new_file(&self) -> Result<(PathBuf, tokio::fs::File), IntakeError> {
        std::fs::create_dir_all(&self.0)
            .map_err(|e| IntakeError::disk("create the spool directory", &self.0, e))?;
        let name = format!("{:016x}.part", rand::random::<u64>());
        let path = self.0.join(name);
        let file = std::fs::File::create(&path)
            .map_err(|e| IntakeError::disk("create a spool file", &path, e))?;
        Ok((path, tokio::fs::File::from_std(file)))
    }
}

#[async_trait]
pub trait Transport: Send {
    /// `imap`, `pop3` or `graph` (logs, health records).
    fn protocol(&self) -> &'static str;

    /// Connects (again) if needed and lists the source folder. Changes nothing on the server.
    async fn list(&mut self) -> Result<Vec<Listed>, IntakeError>;

    /// Fetches these messages (from the last `list`), in any order. Changes nothing on the server.
    async fn fetch(
        &mut self,
        ids: &[Listed],
        spool: &SpoolDir,
    ) -> Result<Vec<Fetched>, IntakeError>;

    /// Moves these messages to the processed or quarantine folder (creating it), or deletes
    /// them where the protocol has no folders (POP3).
    async fn finish(&mut self, server_ids: &[String], to: Destination) -> Result<(), IntakeError>;

    /// A second, independent transport on the same account and source folder (its own
    /// connection, made when first used) for the server-side steps, so the moves of one batch
    /// overlap the fetch of the next. `None`: the pipeline finishes on this transport between
    /// batches (POP3, whose DELE only takes effect at its own session's QUIT).
    fn mover(&self) -> Option<Box<dyn Transport>> {
        None
    }

    /// Makes the finished steps final (POP3: QUIT). Default: they already are.
    async fn commit(&mut self) -> Result<(), IntakeError> {
        Ok(())
    }

    /// Waits until new mail may have arrived, at most `max`. Default: sleeps; IMAP uses IDLE.
    async fn wait_for_mail(&mut self, max: Duration) -> Result<(), IntakeError> {
        tokio::time::sleep(max).await;
        Ok(())
    }

    /// Closes the connection politely (LOGOUT/QUIT), ignoring errors.
    async fn close(&mut self) {}
}

/// Host, port and TLS trust for IMAP/POP3.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub ca_file: Option<PathBuf>,
    /// The mailbox address (`user=` in XOAUTH2, the mailbox an app token opens).
    pub mailbox: String,
    /// Preferred SASL mechanism; falls back to the other if the server lacks it.
    pub mechanism: Mechanism,
}
