//! `microsoft.graph.mailFolder` and the well-known folder names.

use serde::{Deserialize, Serialize};

/// Well-known folder names Graph accepts in place of a folder id, in every mailbox language.
pub const WELL_KNOWN_FOLDERS: &[&str] = &[
    "msgfolderroot",
    "inbox",
    "drafts",
    "sentitems",
    "deleteditems",
    "outbox",
    "junkemail",
    "archive",
];

/// A mail folder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailFolder {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_folder_id: Option<String>,
    #[serde(default)]
    pub child_folder_count: i32,
    #[serde(default)]
    pub unread_item_count: i32,
    #[serde(default)]
    pub total_item_count: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_hidden: Option<bool>,
    /// Graph only returns it when asked for (`$select=wellKnownName`, beta); the emulator
    /// always includes it for its own folders to make tests readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub well_known_name: Option<String>,
}

/// Body of `POST …/childFolders`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewMailFolder {
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_hidden: Option<bool>,
}
