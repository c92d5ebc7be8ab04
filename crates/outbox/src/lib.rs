//! Outgoing mail for Kurir.
//!
//! - [`submission`]: the one way to queue mail ([`Submitter::queue`]): the sender checked, the
//!   messages committed (fsync'd) in one transaction, the workers woken.
//! - [`worker::Outbox`]: the durable outbox's workers: they lease, send, retry with backoff
//!   honouring `Retry-After`, and stop on permanent errors with the explanation kept.
//! - [`sender`]: the sending user's effective settings decide method, flow, credentials and
//!   From; WEBSHOP is a user like any other.
//! - Transports: [`graph`] (Microsoft Graph sendMail, upload sessions for big attachments) and
//!   [`smtp`] (lettre: XOAUTH2 for Exchange Online, or a classic server), with per-mailbox limits
//!   from [`throttle`].
//! - [`listener`]: an SMTP submission listener for legacy components such as the webshop.
//! - [`compose`]: building MIME with lettre's `Message` builder.
//! - [`error::SendError`]: what went wrong, whether retrying helps, and what to do.

// A `SendError` carries everything the administrator is told (Graph's code, message, advice and
// request-id); it is returned once per network round trip, so its size costs nothing.
#![allow(clippy::result_large_err)]

pub mod compose;
pub mod error;
pub mod graph;
pub mod listener;
pub mod login_throttle;
pub mod sender;
pub mod smtp;
pub mod submission;
pub mod throttle;
pub mod worker;

pub use compose::{Composed, Draft, FileAttachment, compose};
pub use error::SendError;
pub use listener::{ListenerConfig, ListenerError, ListenerTls};
pub use sender::{ExchangeTransport, Route, SYSTEM_SENDER, Sender, WEBSHOP_SCOPE};
pub use submission::{Content, Queued, SendAs, Submission, SubmitError, Submitter};
pub use worker::{Outbox, OutboxConfig, RunStats};
