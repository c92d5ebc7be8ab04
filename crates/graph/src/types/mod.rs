//! Graph's mail resources as serde structs, named and shaped as Graph sends them (camelCase,
//! `@odata.*` annotations). Every field a `$select` can leave out is an `Option`, so the same
//! struct reads a full and a trimmed message.
//!
//! One file per resource family: `message.rs`, `folder.rs`, `collection.rs` (pages, delta),
//! `send.rs` (sendMail, drafts, move, patch), `upload.rs` (upload sessions), `batch.rs`,
//! `error.rs` (Graph's error body and the codes Kurir meets).

pub mod batch;
pub mod collection;
pub mod directory;
pub mod error;
pub mod folder;
pub mod message;
pub mod send;
pub mod upload;

pub use batch::{BatchRequest, BatchRequestItem, BatchResponse, BatchResponseItem};
pub use collection::{Page, Removed};
pub use directory::{
    AppRole, AppRoleAssignment, Application, KeyCredential, PasswordCredential, ServicePrincipal,
};
pub use error::{ErrorBody, ErrorDetail, InnerError, codes};
pub use folder::{MailFolder, NewMailFolder, WELL_KNOWN_FOLDERS};
pub use message::{
    Attachment, BodyType, EmailAddress, FollowupFlag, ItemBody, Message, PR_MESSAGE_SIZE,
    Recipient, SingleValueExtendedProperty, same_property_id,
};
pub use send::{DELETE_AFTER_SUBMIT, MoveRequest, PatchMessage, SendMailRequest};
pub use upload::{AttachmentItem, CreateUploadSessionRequest, UploadSession};

/// Graph's application id; tokens for Graph carry it or `https://graph.microsoft.com` as `aud`.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Graph's resource URI, the `aud` of tokens requested with `https://graph.microsoft.com/.default`.
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
/// The `.default` scope for app-only and delegated Graph tokens.
pub const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";
/// Graph's request size limit (sendMail, draft creation, each upload chunk).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Largest attachment an upload session accepts (Exchange Online's ceiling).
pub const MAX_ATTACHMENT_BYTES: u64 = 150 * 1024 * 1024;
/// Above this, Microsoft says to use an upload session rather than inline `contentBytes`.
pub const INLINE_ATTACHMENT_LIMIT: u64 = 3 * 1024 * 1024;

/// Graph writes date-times as RFC 3339 in UTC (`2024-05-01T08:30:00Z`).
pub(crate) mod datetime {
    pub use time::serde::rfc3339::option;
}
