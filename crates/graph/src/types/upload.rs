//! Upload sessions for attachments from 3 MB up to 150 MB.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What is being uploaded (`attachmentType` is always `file` for Kurir).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentItem {
    pub attachment_type: String,
    pub name: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_inline: Option<bool>,
    /// The Content-ID an inline image is referred to by (`cid:` in the HTML), without `<>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_id: Option<String>,
}

impl AttachmentItem {
    /// A file attachment of `size` bytes.
    pub fn file(name: impl Into<String>, size: u64, content_type: Option<String>) -> Self {
        AttachmentItem {
            attachment_type: "file".into(),
            name: name.into(),
            size,
            content_type,
            is_inline: None,
            content_id: None,
        }
    }
}

/// Body of `POST …/attachments/createUploadSession`. Microsoft's documentation writes
/// `AttachmentItem`, the SDKs `attachmentItem`: both are read, the documented one is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUploadSessionRequest {
    #[serde(rename = "AttachmentItem", alias = "attachmentItem")]
    pub attachment_item: AttachmentItem,
}

/// A created upload session. `upload_url` carries its own credential: PUT to it WITHOUT an
/// Authorization header.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadSession {
    pub upload_url: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::types::datetime::option"
    )]
    pub expiration_date_time: Option<OffsetDateTime>,
    #[serde(default)]
    pub next_expected_ranges: Vec<String>,
}

impl std::fmt::Debug for UploadSession {
    // The URL's query is a bearer credential for the attachment: keep it out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self.upload_url.split('?').next().unwrap_or_default();
        f.debug_struct("UploadSession")
            .field("upload_url", &format_args!("{url}?<redacted>"))
            .field("expiration_date_time", &self.expiration_date_time)
            .field("next_expected_ranges", &self.next_expected_ranges)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_upload_credential() {
        let s = UploadSession {
            upload_url: "https://h/api/v2.0/x?authtoken=SECRET".into(),
            expiration_date_time: None,
            next_expected_ranges: vec!["0-".into()],
        };
        let d = format!("{s:?}");
        assert!(!d.contains("SECRET"), "{d}");
        assert!(d.contains("https://h/api/v2.0/x"));
    }

    #[test]
    fn reads_both_spellings_of_attachment_item() {
        for key in ["AttachmentItem", "attachmentItem"] {
            let body =
                format!(r#"{{"{key}":{{"attachmentType":"file","name":"a.bin","size":5}}}}"#);
            let r: CreateUploadSessionRequest = serde_json::from_str(&body).unwrap();
            assert_eq!(r.attachment_item.size, 5);
        }
    }
}
