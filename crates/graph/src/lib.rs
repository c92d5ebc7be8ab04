//! Microsoft Graph mail for Kurir.
//!
//! Two halves that must agree on every field name, which is why they live together:
//!
//! - [`types`]: the subset of Graph's mail resources Kurir uses (messages, mail folders,
//!   collection pages, sendMail, upload sessions, `$batch`, Graph's error body) as serde
//!   structs. Kurir's own client and the offline emulator (`kurir-emulator`) both use them,
//!   so the emulator cannot drift from what the client parses.
//! - [`GraphClient`]: a small client on reqwest for the intake and outbox: folders, listing
//!   with paging, delta, raw MIME, move, mark read, delete, sendMail (MIME and JSON), drafts
//!   and large attachments through upload sessions. Errors are a [`GraphError`] that says
//!   whether to retry and what to fix.
//!
//! Graph's own SDKs are not used: the Rust one is dormant, and a dozen endpoints with exact
//! error handling are easier to own than to wrap.

pub mod client;
pub mod error;
pub mod types;

pub use client::{
    DeltaPage, DeltaStart, GraphClient, MessageQuery, RetryPolicy, UPLOAD_CHUNK_QUANTUM,
    UPLOAD_MAX_CHUNK,
};
pub use error::GraphError;
pub use types::*;
