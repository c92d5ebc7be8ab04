//! `microsoft.graph.message` and the small types inside it (recipients, body, attachments).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// An e-mail address as Graph writes it inside a recipient.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// `{"emailAddress":{"name","address"}}`, Graph's recipient.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub email_address: EmailAddress,
}

impl Recipient {
    /// A recipient with just an address.
    pub fn address(address: impl Into<String>) -> Recipient {
        Recipient {
            email_address: EmailAddress {
                name: None,
                address: Some(address.into()),
            },
        }
    }
}

/// `text` or `html`; Graph accepts either case on input (`Text`, `HTML`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyType {
    #[serde(alias = "Text", alias = "TEXT")]
    Text,
    #[serde(alias = "Html", alias = "HTML")]
    Html,
}

/// A message body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemBody {
    pub content_type: BodyType,
    #[serde(default)]
    pub content: String,
}

/// `flag` on a message (only its status is kept).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowupFlag {
    pub flag_status: String,
}

/// A `microsoft.graph.fileAttachment` inside a JSON message (sendMail, draft creation).
/// `content_bytes` is base64; Graph limits inline attachments to 3 MB.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_inline: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_bytes: Option<String>,
}

impl Attachment {
    pub const FILE_TYPE: &'static str = "#microsoft.graph.fileAttachment";
}

/// A single-value MAPI ("extended") property of an item; `value` is always a string, also for
/// numbers. <https://learn.microsoft.com/en-us/graph/api/resources/singlevaluelegacyextendedproperty>
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SingleValueExtendedProperty {
    pub id: String,
    pub value: String,
}

/// `PidTagMessageSize` (PR_MESSAGE_SIZE, 0x0E08, PT_LONG): the item's size in the mailbox store,
/// in bytes. Graph v1.0 has no size property on a message; this is the documented way to get
/// one in a listing (<https://learn.microsoft.com/en-us/graph/api/singlevaluelegacyextendedproperty-get>,
/// <https://learn.microsoft.com/en-us/office/client-developer/outlook/mapi/pidtagmessagesize-canonical-property>).
/// It is close to, not exactly, the length of the MIME (`$value`): use it to plan, never to trust.
pub const PR_MESSAGE_SIZE: &str = "Integer 0x0E08";

/// A mail message. In a delta page a deleted item is only `id` + `@removed`.
///
/// Graph v1.0 has no message size property (only the MAPI extended property
/// `PR_MESSAGE_SIZE`); the size of a message is the length of its `$value`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_type: Option<String>,
    #[serde(
        rename = "@odata.etag",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "@removed", default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<crate::types::collection::Removed>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::types::datetime::option"
    )]
    pub created_date_time: Option<OffsetDateTime>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::types::datetime::option"
    )]
    pub last_modified_date_time: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::types::datetime::option"
    )]
    pub received_date_time: Option<OffsetDateTime>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::types::datetime::option"
    )]
    pub sent_date_time: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_attachments: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_preview: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_folder_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_read: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_draft: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<ItemBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Recipient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Recipient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_recipients: Option<Vec<Recipient>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cc_recipients: Option<Vec<Recipient>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bcc_recipients: Option<Vec<Recipient>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Vec<Recipient>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<FollowupFlag>,
    /// MAPI properties asked for with
    /// `$expand=singleValueExtendedProperties($filter=id eq '…')`, e.g. [`PR_MESSAGE_SIZE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_value_extended_properties: Option<Vec<SingleValueExtendedProperty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<Attachment>>,
}

impl Message {
    /// `PR_MESSAGE_SIZE` when the listing asked for it (Graph answers with the id normalised,
    /// e.g. `Integer 0xe08`, so ids are compared by type and number).
    pub fn mapi_size(&self) -> Option<u64> {
        self.single_value_extended_properties
            .as_ref()?
            .iter()
            .find(|p| same_property_id(&p.id, PR_MESSAGE_SIZE))
            .and_then(|p| p.value.trim().parse::<u64>().ok())
    }

    /// The id, or "" for a message Graph sent without one (never happens for stored items).
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }
    /// Whether this delta entry reports the message as gone from the folder.
    pub fn is_removed(&self) -> bool {
        self.removed.is_some()
    }
}

/// Whether two MAPI property ids (`Integer 0x0E08`, `integer 0xe08`) name the same property.
pub fn same_property_id(a: &str, b: &str) -> bool {
    fn norm(s: &str) -> Option<(String, u32)> {
        let (ty, tag) = s.trim().split_once(' ')?;
        let tag = tag.trim();
        let hex = tag.strip_prefix("0x").or_else(|| tag.strip_prefix("0X"))?;
        Some((ty.to_ascii_lowercase(), u32::from_str_radix(hex, 16).ok()?))
    }
    matches!((norm(a), norm(b)), (Some(x), Some(y)) if x == y)
}
