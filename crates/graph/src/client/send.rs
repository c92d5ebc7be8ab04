//! Sending: sendMail (MIME and JSON forms), drafts, and large attachments through upload
//! sessions.
//!
//! Graph refuses requests over 4 MB, so a message with big attachments is built in steps:
//! create a draft, add each attachment, then send the draft. An attachment of 3 MB or more goes
//! through an upload session, PUT in chunks (no Authorization header: the upload URL carries its
//! own credential); a smaller one in one `POST …/attachments`, because Graph refuses upload
//! sessions for it (`ErrorAttachmentSizeShouldNotBeLessThanMinimumSize`,
//! <https://learn.microsoft.com/en-us/graph/outlook-large-attachments>).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::{Body, Call, GraphClient, transport};
use crate::error::GraphError;
use crate::types::{
    AttachmentItem, CreateUploadSessionRequest, INLINE_ATTACHMENT_LIMIT, MAX_ATTACHMENT_BYTES,
    MAX_REQUEST_BYTES, Message, PatchMessage, SendMailRequest, SingleValueExtendedProperty,
    UploadSession,
};

/// Upload chunks must be multiples of 320 KiB (except the last).
pub const UPLOAD_CHUNK_QUANTUM: usize = 320 * 1024;
/// The largest chunk that is a multiple of 320 KiB and within Graph's 4 MB request limit.
pub const UPLOAD_MAX_CHUNK: usize =
    (MAX_REQUEST_BYTES / UPLOAD_CHUNK_QUANTUM) * UPLOAD_CHUNK_QUANTUM;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadProgress {
    #[serde(default)]
    next_expected_ranges: Vec<String>,
}

impl GraphClient {
    /// `sendMail` with a complete MIME message (base64 of the bytes as `text/plain`).
    /// Graph stores a copy in Sent Items.
    pub async fn send_mime(
        &self,
        token: &str,
        mailbox: &str,
        mime: &[u8],
    ) -> Result<(), GraphError> {
        let data = mime_body(mime)?;
        let call = Call {
            method: Method::POST,
            url: self.user_url(mailbox, &["sendMail"]),
            token: Some(token),
            body: Body::Bytes {
                content_type: "text/plain",
                data,
            },
            headers: Vec::new(),
        };
        self.execute(&call).await.map(drop)
    }

    /// `sendMail` in its JSON form.
    pub async fn send_json(
        &self,
        token: &str,
        mailbox: &str,
        request: &SendMailRequest,
    ) -> Result<(), GraphError> {
        let call = Call {
            method: Method::POST,
            url: self.user_url(mailbox, &["sendMail"]),
            token: Some(token),
            body: Body::json(request)?,
            headers: Vec::new(),
        };
        self.execute(&call).await.map(drop)
    }

    /// Creates a draft in Drafts from a MIME message; returns it (with its id).
    pub async fn create_draft_mime(
        &self,
        token: &str,
        mailbox: &str,
        mime: &[u8],
    ) -> Result<Message, GraphError> {
        let call = Call {
            method: Method::POST,
            url: self.user_url(mailbox, &["messages"]),
            token: Some(token),
            body: Body::Bytes {
                content_type: "text/plain",
                data: mime_body(mime)?,
            },
            headers: Vec::new(),
        };
        self.json(&call, "the created draft").await
    }

    /// Creates a draft from a JSON message.
    pub async fn create_draft_json(
        &self,
        token: &str,
        mailbox: &str,
        message: &Message,
    ) -> Result<Message, GraphError> {
        let call = Call {
            method: Method::POST,
            url: self.user_url(mailbox, &["messages"]),
            token: Some(token),
            body: Body::json(message)?,
            headers: Vec::new(),
        };
        self.json(&call, "the created draft").await
    }

    /// Opens an upload session for one attachment of a draft.
    pub async fn create_upload_session(
        &self,
        token: &str,
        mailbox: &str,
        message_id: &str,
        item: &AttachmentItem,
    ) -> Result<UploadSession, GraphError> {
        if item.size > MAX_ATTACHMENT_BYTES {
            return Err(GraphError::Invalid(format!(
                "attachment '{}' is {} bytes; Exchange Online accepts at most 150 MB",
                item.name, item.size
            )));
        }
        let call = Call {
            method: Method::POST,
            url: self.user_url(
                mailbox,
                &["messages", message_id, "attachments", "createUploadSession"],
            ),
            token: Some(token),
            body: Body::json(&CreateUploadSessionRequest {
                attachment_item: item.clone(),
            })?,
            headers: Vec::new(),
        };
        self.json(&call, "the upload session").await
    }

    /// Uploads `data` into a session in chunks of at most [`UPLOAD_MAX_CHUNK`] bytes (all but
    /// the last a multiple of 320 KiB), without an Authorization header.
    pub async fn upload_attachment(
        &self,
        session: &UploadSession,
        data: &[u8],
    ) -> Result<(), GraphError> {
        let url = url::Url::parse(&session.upload_url).map_err(|_| GraphError::Decode {
            what: "the upload session",
            detail: "uploadUrl is not a URL".into(),
        })?;
        let total = data.len();
        if total == 0 {
            return Err(GraphError::Invalid("an attachment cannot be empty".into()));
        }
        let mut start = 0usize;
        while start < total {
            let end = (start + UPLOAD_MAX_CHUNK).min(total);
            let call = Call {
                method: Method::PUT,
                url: url.clone(),
                token: None,
                body: Body::Bytes {
                    content_type: "application/octet-stream",
                    data: data[start..end].to_vec(),
                },
                headers: vec![(
                    "Content-Range",
                    format!("bytes {start}-{}/{total}", end - 1),
                )],
            };
            let resp = self.execute(&call).await?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(transport)?;
            if status == StatusCode::CREATED {
                return Ok(());
            }
            // 200 means "more please"; trust the server's idea of where to continue.
            let progress: UploadProgress =
                serde_json::from_slice(&body).map_err(|e| GraphError::Decode {
                    what: "an upload chunk answer",
                    detail: e.to_string(),
                })?;
            start = match progress.next_expected_ranges.first() {
                Some(r) => r
                    .split('-')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| GraphError::Decode {
                        what: "an upload chunk answer",
                        detail: format!("nextExpectedRanges '{r}' is not a byte range"),
                    })?,
                None => end,
            };
        }
        Ok(())
    }

    /// Marks a draft so that sending it keeps no copy in Sent Items (PidTagDeleteAfterSubmit,
    /// see [`crate::DELETE_AFTER_SUBMIT`]): a draft has no `saveToSentItems` of its own.
    pub async fn set_delete_after_submit(
        &self,
        token: &str,
        mailbox: &str,
        id: &str,
    ) -> Result<(), GraphError> {
        let call = Call {
            method: Method::PATCH,
            url: self.user_url(mailbox, &["messages", id]),
            token: Some(token),
            body: Body::json(&PatchMessage {
                single_value_extended_properties: Some(vec![SingleValueExtendedProperty {
                    id: crate::types::DELETE_AFTER_SUBMIT.into(),
                    value: "true".into(),
                }]),
                ..PatchMessage::default()
            })?,
            headers: Vec::new(),
        };
        self.execute(&call).await.map(drop)
    }

    /// Sends a draft.
    pub async fn send_draft(&self, token: &str, mailbox: &str, id: &str) -> Result<(), GraphError> {
        let call = Call {
            method: Method::POST,
            url: self.user_url(mailbox, &["messages", id, "send"]),
            token: Some(token),
            body: Body::None,
            headers: Vec::new(),
        };
        self.execute(&call).await.map(drop)
    }

    /// Attaches a file to a draft the way Graph takes it for its size: under
    /// [`INLINE_ATTACHMENT_LIMIT`] in one `POST …/attachments` (`fileAttachment` with
    /// `contentBytes`), from there on through an upload session.
    pub async fn attach(
        &self,
        token: &str,
        mailbox: &str,
        message_id: &str,
        item: &AttachmentItem,
        data: &[u8],
    ) -> Result<(), GraphError> {
        if (data.len() as u64) >= INLINE_ATTACHMENT_LIMIT {
            let session = self
                .create_upload_session(token, mailbox, message_id, item)
                .await?;
            return self.upload_attachment(&session, data).await;
        }
        let mut body = serde_json::json!({
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": item.name,
            "contentBytes": STANDARD.encode(data),
        });
        if let Some(ct) = &item.content_type {
            body["contentType"] = ct.clone().into();
        }
        if let Some(inline) = item.is_inline {
            body["isInline"] = inline.into();
        }
        if let Some(cid) = &item.content_id {
            body["contentId"] = cid.clone().into();
        }
        let call = Call {
            method: Method::POST,
            url: self.user_url(mailbox, &["messages", message_id, "attachments"]),
            token: Some(token),
            body: Body::json(&body)?,
            headers: Vec::new(),
        };
        self.execute(&call).await.map(drop)
    }

    /// Sends a MIME message with attachments too big for one request: draft from `mime`, each
    /// attachment added ([`Self::attach`]), then send.
    pub async fn send_with_large_attachments(
        &self,
        token: &str,
        mailbox: &str,
        mime: &[u8],
        attachments: &[(AttachmentItem, &[u8])],
    ) -> Result<(), GraphError> {
        let draft = self.create_draft_mime(token, mailbox, mime).await?;
        for (item, data) in attachments {
            self.attach(token, mailbox, draft.id(), item, data).await?;
        }
        self.send_draft(token, mailbox, draft.id()).await
    }
}

fn mime_body(mime: &[u8]) -> Result<Vec<u8>, GraphError> {
    let data = STANDARD.encode(mime).into_bytes();
    if data.len() > MAX_REQUEST_BYTES {
        return Err(GraphError::Invalid(format!(
            "the message is {} bytes as base64, over Graph's 4 MB request limit; send big attachments through an upload session (send_with_large_attachments)",
            data.len()
        )));
    }
    Ok(data)
}
