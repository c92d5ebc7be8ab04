//! Request bodies of sendMail (JSON form), move and patch.

use serde::{Deserialize, Deserializer, Serialize};

use super::message::{Message, SingleValueExtendedProperty};

/// `POST /users/{id}/sendMail` in its JSON form. (The MIME form is the base64 of the whole
/// message as `text/plain`; see `GraphClient::send_mime`.)
///
/// Graph reads action parameters case-insensitively and Microsoft's SDKs send them in
/// PascalCase (`Message`, `SaveToSentItems`, `DestinationId`), so both spellings are read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMailRequest {
    #[serde(alias = "Message")]
    pub message: Message,
    /// Microsoft's own examples send this as the string `"false"`, so both forms are read.
    #[serde(
        default,
        alias = "SaveToSentItems",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_bool"
    )]
    pub save_to_sent_items: Option<bool>,
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Text(String),
    }
    match Option::<B>::deserialize(d)? {
        None => Ok(None),
        Some(B::Bool(b)) => Ok(Some(b)),
        Some(B::Text(t)) => match t.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            other => Err(serde::de::Error::custom(format!(
                "saveToSentItems must be true or false, not '{other}'"
            ))),
        },
    }
}

/// `POST …/messages/{id}/move` (and `/copy`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveRequest {
    /// A folder id or a well-known name (`archive`, `deleteditems`, …).
    #[serde(alias = "DestinationId")]
    pub destination_id: String,
}

/// `PATCH …/messages/{id}`: the properties Kurir changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_read: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// MAPI properties by tag, e.g. `Boolean 0x0E01` ([`DELETE_AFTER_SUBMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_value_extended_properties: Option<Vec<SingleValueExtendedProperty>>,
}

/// PidTagDeleteAfterSubmit (PR_DELETE_AFTER_SUBMIT, 0x0E01, boolean): "If this property is
/// set to 0x01, the message is deleted after the message is sent" — a sent draft then keeps no
/// copy in Sent Items, which is what sendMail's `saveToSentItems: false` does for a draft
/// ([MS-OXOMSG] 3.3.5.1.3,
/// <https://learn.microsoft.com/en-us/openspecs/exchange_server_protocols/ms-oxomsg/9b23dc42-c17b-4944-ba0e-a70ec9f90d64>).
pub const DELETE_AFTER_SUBMIT: &str = "Boolean 0x0E01";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_to_sent_items_reads_microsofts_string_form() {
        let r: SendMailRequest =
            serde_json::from_str(r#"{"message":{"subject":"x"},"saveToSentItems":"false"}"#)
                .unwrap();
        assert_eq!(r.save_to_sent_items, Some(false));
        let r: SendMailRequest =
            serde_json::from_str(r#"{"message":{},"saveToSentItems":true}"#).unwrap();
        assert_eq!(r.save_to_sent_items, Some(true));
        let r: SendMailRequest = serde_json::from_str(r#"{"message":{}}"#).unwrap();
        assert_eq!(r.save_to_sent_items, None);
        // The SDKs' PascalCase action parameters.
        let r: SendMailRequest =
            serde_json::from_str(r#"{"Message":{"subject":"s"},"SaveToSentItems":false}"#).unwrap();
        assert_eq!(r.message.subject.as_deref(), Some("s"));
        assert_eq!(r.save_to_sent_items, Some(false));
        let m: MoveRequest = serde_json::from_str(r#"{"DestinationId":"archive"}"#).unwrap();
        assert_eq!(m.destination_id, "archive");
        assert!(
            serde_json::from_str::<SendMailRequest>(r#"{"message":{},"saveToSentItems":"no"}"#)
                .is_err()
        );
    }
}
