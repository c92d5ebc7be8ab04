//! The mail store: mailboxes, folders and messages, kept in memory and written through to
//! `{state_dir}/graph/` so a demo survives a restart.
//!
//! Layout on disk: `store.json` holds mailboxes, folders and message metadata; each message's
//! MIME is its own file `blobs/{key}.eml` (written once; the key never changes, while the
//! Graph id changes on move), so a metadata update never rewrites big messages.
//!
//! Every change bumps the mailbox's sequence number and stamps it on the message; a message
//! leaving a folder leaves a tombstone. Delta queries are answers to "what has a sequence
//! number above the one in the delta token", which is how Exchange's sync state behaves from
//! the outside.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kurir_graph::{EmailAddress, MailFolder, Message, Recipient};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::mime::{self, ParsedMime};

/// Standard folders every mailbox has: (well-known name, display name).
pub const STANDARD_FOLDERS: &[(&str, &str)] = &[
    ("inbox", "Inbox"),
    ("drafts", "Drafts"),
    ("sentitems", "Sent Items"),
    ("deleteditems", "Deleted Items"),
    ("outbox", "Outbox"),
    ("junkemail", "Junk Email"),
    ("archive", "Archive"),
];

/// A store that could not be read or written, with what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {path}: {source}; check that the state dir is writable")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the mail store {path} is corrupt ({detail}); delete the state dir's graph/ directory to start with empty mailboxes"
    )]
    Corrupt { path: PathBuf, detail: String },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Folder {
    pub id: String,
    pub display_name: String,
    pub parent_id: Option<String>,
    pub well_known: Option<String>,
}

/// An attachment uploaded into a draft through an upload session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingAttachment {
    pub name: String,
    pub content_type: String,
    pub blob: String,
    /// An inline attachment (`isInline`) and its Content-ID (`contentId`), from the upload
    /// session's attachmentItem.
    #[serde(default)]
    pub is_inline: bool,
    #[serde(default)]
    pub content_id: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredMessage {
    /// The Graph id (changes when the message moves, unless immutable ids were asked for).
    pub id: String,
    /// File name of the MIME blob; never changes.
    pub blob: String,
    pub folder_id: String,
    pub is_read: bool,
    pub is_draft: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub received: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub modified: OffsetDateTime,
    pub change_key: String,
    pub seq: u64,
    #[serde(default)]
    pub attachments: Vec<PendingAttachment>,
    /// PidTagDeleteAfterSubmit (`Boolean 0x0E01`) set on a draft: sending it keeps no copy in
    /// Sent Items.
    #[serde(default)]
    pub delete_after_submit: bool,
    /// Set with PATCH: `categories`, `flag.flagStatus`, `importance` (none: Graph's defaults).
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub flag_status: Option<String>,
    #[serde(default)]
    pub importance: Option<String>,
    #[serde(skip)]
    pub raw: Arc<Vec<u8>>,
    #[serde(skip)]
    pub parsed: ParsedMime,
}

/// A message that left a folder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tombstone {
    pub folder_id: String,
    pub id: String,
    pub seq: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mailbox {
    pub address: String,
    pub display_name: String,
    pub object_id: Uuid,
    pub tenant_id: Uuid,
    pub folders: Vec<Folder>,
    pub messages: BTreeMap<String, StoredMessage>,
    pub seq: u64,
    #[serde(default)]
    pub tombstones: Vec<Tombstone>,
}

/// Random id in the style of Exchange's REST ids (`AAMkAG…`), URL-safe.
pub fn new_item_id(prefix: &str) -> String {
    let mut b = [0u8; 36];
    rand::rng().fill_bytes(&mut b);
    format!("{prefix}{}AAA", URL_SAFE_NO_PAD.encode(b))
}

fn change_key() -> String {
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    format!("CQAAABYAAA{}", URL_SAFE_NO_PAD.encode(b))
}

/// Graph dates have whole seconds.
pub fn now() -> OffsetDateTime {
    let n = OffsetDateTime::now_utc();
    n.replace_nanosecond(0).unwrap_or(n)
}

impl Mailbox {
    pub fn new(address: &str, display_name: &str, object_id: Uuid, tenant_id: Uuid) -> Mailbox {
        let stable = |name: &str| {
            let d = uuid::Uuid::new_v5(
                &Uuid::NAMESPACE_URL,
                format!(
                    "kurir-emulator:folder:{}:{name}",
                    address.to_ascii_lowercase()
                )
                .as_bytes(),
            );
            format!("AAMkAF{}AAA", URL_SAFE_NO_PAD.encode(d.as_bytes()))
        };
        let root = stable("msgfolderroot");
        let mut folders = vec![Folder {
            id: root.clone(),
            display_name: "Top of Information Store".into(),
            parent_id: None,
            well_known: Some("msgfolderroot".into()),
        }];
        for (wk, name) in STANDARD_FOLDERS {
            folders.push(Folder {
                id: stable(wk),
                display_name: name.to_string(),
                parent_id: Some(root.clone()),
                well_known: Some(wk.to_string()),
            });
        }
        Mailbox {
            address: address.to_string(),
            display_name: display_name.to_string(),
            object_id,
            tenant_id,
            folders,
            messages: BTreeMap::new(),
            seq: 0,
            tombstones: Vec::new(),
        }
    }

    pub fn as_recipient(&self) -> Recipient {
        Recipient {
            email_address: EmailAddress {
                name: Some(self.display_name.clone()),
                address: Some(self.address.clone()),
            },
        }
    }

    pub fn domain(&self) -> &str {
        self.address
            .rsplit_once('@')
            .map_or("localhost", |(_, d)| d)
    }

    /// A folder by id or well-known name (case-insensitive, as Graph accepts them).
    pub fn folder(&self, id_or_name: &str) -> Option<&Folder> {
        let lower = id_or_name.to_ascii_lowercase();
        self.folders
            .iter()
            .find(|f| f.id == id_or_name || f.well_known.as_deref() == Some(lower.as_str()))
    }

    /// A folder by id, well-known name or display name (any depth), for the test API.
    pub fn folder_loose(&self, key: &str) -> Option<&Folder> {
        self.folder(key).or_else(|| {
            self.folders
                .iter()
                .find(|f| f.display_name.eq_ignore_ascii_case(key))
        })
    }

    pub fn root_id(&self) -> String {
        self.folder("msgfolderroot")
            .map(|f| f.id.clone())
            .unwrap_or_default()
    }

    pub fn children(&self, parent_id: &str) -> Vec<&Folder> {
        self.folders
            .iter()
            .filter(|f| f.parent_id.as_deref() == Some(parent_id))
            .collect()
    }

    pub fn folder_json(&self, f: &Folder) -> MailFolder {
        let in_folder = self.messages.values().filter(|m| m.folder_id == f.id);
        let (total, unread) =
            in_folder.fold((0, 0), |(t, u), m| (t + 1, u + i32::from(!m.is_read)));
        MailFolder {
            id: f.id.clone(),
            display_name: f.display_name.clone(),
            parent_folder_id: f.parent_id.clone(),
            child_folder_count: self.children(&f.id).len() as i32,
            unread_item_count: unread,
            total_item_count: total,
            is_hidden: Some(false),
            well_known_name: f.well_known.clone(),
        }
    }

    fn bump(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Adds a message to a folder; returns its id.
    pub fn insert(
        &mut self,
        folder_id: &str,
        raw: Vec<u8>,
        received: OffsetDateTime,
        is_read: bool,
        is_draft: bool,
    ) -> String {
        let seq = self.bump();
        let id = new_item_id("AAMkAG");
        let parsed = mime::parse(&raw);
        let m = StoredMessage {
            id: id.clone(),
            blob: Uuid::new_v4().simple().to_string(),
            folder_id: folder_id.to_string(),
            is_read,
            is_draft,
            received,
            created: received,
            modified: received,
            change_key: change_key(),
            seq,
            attachments: Vec::new(),
            delete_after_submit: false,
            categories: Vec::new(),
            flag_status: None,
            importance: None,
            raw: Arc::new(raw),
            parsed,
        };
        self.messages.insert(id.clone(), m);
        id
    }

    /// Replaces a draft's MIME (a PATCH of its subject, body or recipients); the bytes get a new
    /// blob, written at the next save.
    pub fn rewrite(&mut self, id: &str, raw: Vec<u8>) {
        if let Some(m) = self.messages.get_mut(id) {
            m.blob = Uuid::new_v4().simple().to_string();
            m.parsed = mime::parse(&raw);
            m.raw = Arc::new(raw);
        }
        self.touch(id);
    }

    /// A copy of a message in another folder (new id; flags and categories kept).
    pub fn copy_message(&mut self, id: &str, dest_id: &str) -> Option<String> {
        let src = self.messages.get(id)?.clone();
        let new_id = self.insert(
            dest_id,
            src.raw.as_ref().clone(),
            src.received,
            src.is_read,
            src.is_draft,
        );
        if let Some(m) = self.messages.get_mut(&new_id) {
            m.categories = src.categories;
            m.flag_status = src.flag_status;
            m.importance = src.importance;
            m.attachments = src.attachments;
        }
        Some(new_id)
    }

    /// Marks a message changed (new change key and sequence number).
    pub fn touch(&mut self, id: &str) {
        let seq = self.bump();
        if let Some(m) = self.messages.get_mut(id) {
            m.seq = seq;
            m.modified = now();
            m.change_key = change_key();
        }
    }

    /// Moves a message; returns its id afterwards (new unless `keep_id`).
    pub fn move_message(&mut self, id: &str, dest_id: &str, keep_id: bool) -> Option<String> {
        let mut m = self.messages.remove(id)?;
        let seq = self.bump();
        self.tombstones.push(Tombstone {
            folder_id: m.folder_id.clone(),
            id: m.id.clone(),
            seq,
        });
        if !keep_id {
            m.id = new_item_id("AAMkAG");
        }
        m.folder_id = dest_id.to_string();
        m.seq = seq;
        m.modified = now();
        m.change_key = change_key();
        let new_id = m.id.clone();
        self.messages.insert(new_id.clone(), m);
        Some(new_id)
    }

    pub fn remove(&mut self, id: &str) -> Option<StoredMessage> {
        let m = self.messages.remove(id)?;
        let seq = self.bump();
        self.tombstones.push(Tombstone {
            folder_id: m.folder_id.clone(),
            id: m.id.clone(),
            seq,
        });
        Some(m)
    }

    /// The message as Graph shows it (all default properties).
    pub fn message_json(&self, m: &StoredMessage) -> Message {
        let p = &m.parsed;
        let from = p
            .from
            .clone()
            .or_else(|| m.is_draft.then(|| self.as_recipient()));
        Message {
            odata_type: None,
            etag: Some(format!("W/\"{}\"", m.change_key)),
            id: Some(m.id.clone()),
            removed: None,
            created_date_time: Some(m.created),
            last_modified_date_time: Some(m.modified),
            change_key: Some(m.change_key.clone()),
            categories: Some(m.categories.clone()),
            received_date_time: Some(m.received),
            sent_date_time: if m.is_draft {
                None
            } else {
                p.sent.or(Some(m.received))
            },
            has_attachments: Some(p.has_attachments || !m.attachments.is_empty()),
            internet_message_id: p.internet_message_id.clone(),
            subject: Some(p.subject.clone()),
            body_preview: Some(p.body_preview.clone()),
            importance: Some(m.importance.clone().unwrap_or_else(|| "normal".into())),
            parent_folder_id: Some(m.folder_id.clone()),
            conversation_id: Some(conversation_id(&p.subject)),
            is_read: Some(m.is_read),
            is_draft: Some(m.is_draft),
            body: p.body.clone(),
            sender: p.sender.clone().or_else(|| from.clone()),
            from,
            to_recipients: Some(p.to.clone()),
            cc_recipients: Some(p.cc.clone()),
            bcc_recipients: Some(p.bcc.clone()),
            reply_to: Some(p.reply_to.clone()),
            flag: Some(kurir_graph::FollowupFlag {
                flag_status: m.flag_status.clone().unwrap_or_else(|| "notFlagged".into()),
            }),
            attachments: None,
            single_value_extended_properties: None,
        }
    }
}

/// Exchange threads by normalised subject; a hash of it is a fair stand-in.
fn conversation_id(subject: &str) -> String {
    let mut s = subject.trim();
    loop {
        let lower = s.to_ascii_lowercase();
        let Some(rest) = ["re:", "fw:", "fwd:", "sv:", "vb:"]
            .iter()
            .find_map(|p| lower.starts_with(p).then(|| &s[p.len()..]))
        else {
            break;
        };
        s = rest.trim_start();
    }
    let d = Uuid::new_v5(&Uuid::NAMESPACE_URL, s.as_bytes());
    format!("AAQkAG{}", URL_SAFE_NO_PAD.encode(d.as_bytes()))
}

/// All mailboxes, keyed by lower-case address.
pub struct MailStore {
    pub mailboxes: BTreeMap<String, Mailbox>,
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    mailboxes: BTreeMap<String, Mailbox>,
}

impl MailStore {
    /// Whether `state_dir` holds mail from an earlier run.
    pub fn exists_in(state_dir: &Path) -> bool {
        state_dir.join("graph").exists()
    }

    /// Loads `{state_dir}/graph/store.json` if present (re-reading every blob), else empty.
    pub fn load(state_dir: &Path) -> Result<MailStore, StoreError> {
        let dir = state_dir.join("graph");
        let path = dir.join("store.json");
        let mut store = MailStore {
            mailboxes: BTreeMap::new(),
            dir,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(store),
            Err(source) => {
                return Err(StoreError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        let disk: OnDisk = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        store.mailboxes = disk.mailboxes;
        for mb in store.mailboxes.values_mut() {
            for m in mb.messages.values_mut() {
                let p = store.dir.join("blobs").join(format!("{}.eml", m.blob));
                let raw = std::fs::read(&p).map_err(|source| StoreError::Io {
                    action: "read",
                    path: p.clone(),
                    source,
                })?;
                m.parsed = mime::parse(&raw);
                m.raw = Arc::new(raw);
            }
        }
        Ok(store)
    }

    pub fn blob_path(&self, key: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{key}.eml"))
    }

    /// Writes metadata and any blob not yet on disk. Called after every change, under the
    /// store lock, so the files always match a state the API showed.
    pub fn save(&self) -> Result<(), StoreError> {
        let blobs = self.dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(|source| StoreError::Io {
            action: "create",
            path: blobs.clone(),
            source,
        })?;
        for mb in self.mailboxes.values() {
            for m in mb.messages.values() {
                let p = self.blob_path(&m.blob);
                if !p.exists() {
                    std::fs::write(&p, m.raw.as_slice()).map_err(|source| StoreError::Io {
                        action: "write",
                        path: p.clone(),
                        source,
                    })?;
                }
            }
        }
        let path = self.dir.join("store.json");
        let tmp = self.dir.join("store.json.tmp");
        let text = serde_json::to_vec(&OnDisk {
            mailboxes: self.mailboxes.clone(),
        })
        .map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        std::fs::write(&tmp, text).map_err(|source| StoreError::Io {
            action: "write",
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(|source| StoreError::Io {
            action: "replace",
            path,
            source,
        })
    }

    /// Writes an attachment blob (upload sessions) and returns its key.
    pub fn write_blob(&self, data: &[u8]) -> Result<String, StoreError> {
        let key = Uuid::new_v4().simple().to_string();
        let blobs = self.dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(|source| StoreError::Io {
            action: "create",
            path: blobs.clone(),
            source,
        })?;
        let p = self.blob_path(&key);
        std::fs::write(&p, data).map_err(|source| StoreError::Io {
            action: "write",
            path: p,
            source,
        })?;
        Ok(key)
    }

    pub fn read_blob(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let p = self.blob_path(key);
        std::fs::read(&p).map_err(|source| StoreError::Io {
            action: "read",
            path: p,
            source,
        })
    }

    /// A mailbox by address or object id.
    pub fn find(&self, key: &str) -> Option<&Mailbox> {
        let lower = key.to_ascii_lowercase();
        if let Some(m) = self.mailboxes.get(&lower) {
            return Some(m);
        }
        let id = Uuid::parse_str(key).ok()?;
        self.mailboxes.values().find(|m| m.object_id == id)
    }

    pub fn get_mut(&mut self, address: &str) -> Option<&mut Mailbox> {
        self.mailboxes.get_mut(&address.to_ascii_lowercase())
    }
}
