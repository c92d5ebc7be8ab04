//! From raw MIME to the metadata Kurir records (mail-parser 0.11), and the rules for what is not
//! an e-mail message at all.
//!
//! mail-parser is lenient by design: bad encodings, 8-bit headers and truncated multiparts still
//! parse, and that is what we want — an odd but readable message should reach the ERP. Only input
//! with nothing of an e-mail in it (empty, or no header fields) is refused here; the caller
//! quarantines it with the reason.

use mail_parser::{Message, MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};

use kurir_store::messages::AttachmentInfo;

/// What the store keeps about a message besides its raw MIME.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub message_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
    pub date: Option<String>,
    pub attachments: Vec<AttachmentInfo>,
}

/// Longest header value kept in metadata (the raw MIME keeps everything).
const MAX_FIELD: usize = 998;

fn clip(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).collect();
    if clean.len() <= MAX_FIELD {
        return clean;
    }
    let mut end = MAX_FIELD;
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    clean[..end].to_owned()
}

const STANDARD_FIELDS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Received",
    "Return-Path",
    "Sender",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "Delivered-To",
];

/// Hex SHA-256 of the raw bytes.
pub fn content_hash(raw: &[u8]) -> String {
    hex::encode(Sha256::digest(raw))
}

/// Parses `raw`; `Err` carries the reason it is not a message, for the quarantine record.
pub fn parse(raw: &[u8]) -> Result<Message<'_>, String> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err("the message is empty (0 bytes of content)".into());
    }
    let msg = MessageParser::default().parse(raw).ok_or_else(|| {
        "the content has no header fields (no MIME structure found), so it is not an e-mail message"
            .to_owned()
    })?;
    // Garbage can look like "Name: value" lines by chance; real mail always has at least one
    // of the standard fields (a server adds Received/Return-Path even when a sender adds none).
    let known = msg.headers().iter().any(|h| {
        STANDARD_FIELDS
            .iter()
            .any(|f| h.name().eq_ignore_ascii_case(f))
    });
    if !known {
        return Err("the content has no recognisable e-mail header field (From, To, Subject, Date, Message-ID, Received…), so it is not an e-mail message".into());
    }
    Ok(msg)
}

/// The metadata of a parsed message.
pub fn meta(msg: &Message<'_>) -> Meta {
    let addrs = |a: Option<&mail_parser::Address<'_>>| {
        a.map(|a| {
            a.iter()
                .filter_map(|x| x.address())
                .map(clip)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty())
    };
    Meta {
        message_id: msg
            .message_id()
            .map(normalize_message_id)
            .filter(|s| !s.is_empty()),
        from: addrs(msg.from()),
        to: addrs(msg.to()),
        subject: msg.subject().map(clip),
        date: msg.date().map(|d| d.to_rfc3339()),
        attachments: attachments(msg),
    }
}

/// Message-IDs compare case-sensitively in the local part but are often re-cased in transit; we
/// strip the angle brackets and whitespace only, as servers do.
pub fn normalize_message_id(id: &str) -> String {
    clip(
        id.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim(),
    )
}

fn attachments(msg: &Message<'_>) -> Vec<AttachmentInfo> {
    msg.attachments()
        .map(|p| AttachmentInfo {
            name: p.attachment_name().map(clip),
            content_type: p
                .content_type()
                .map(|c| match c.subtype() {
                    Some(s) => format!("{}/{}", c.ctype(), s),
                    None => c.ctype().to_owned(),
                })
                .unwrap_or_else(|| {
                    if p.is_message() {
                        "message/rfc822".into()
                    } else {
                        "application/octet-stream".into()
                    }
                })
                .to_ascii_lowercase(),
            size: p.len() as u64,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_headerless_input_is_refused_with_a_reason() {
        assert!(parse(b"").unwrap_err().contains("empty"));
        assert!(parse(b"\r\n\r\n").unwrap_err().contains("empty"));
    }

    #[test]
    fn metadata_of_a_plain_message() {
        let raw = b"From: A <a@example.com>\r\nTo: b@example.com, c@example.com\r\nSubject: Hi\r\nMessage-ID: <x1@example.com>\r\nDate: Tue, 1 Jul 2025 10:00:00 +0000\r\n\r\nbody\r\n";
        let msg = parse(raw).unwrap();
        let m = meta(&msg);
        assert_eq!(m.message_id.as_deref(), Some("x1@example.com"));
        assert_eq!(m.from.as_deref(), Some("a@example.com"));
        assert_eq!(m.to.as_deref(), Some("b@example.com, c@example.com"));
        assert_eq!(m.subject.as_deref(), Some("Hi"));
        assert_eq!(m.date.as_deref(), Some("2025-07-01T10:00:00Z"));
        assert!(m.attachments.is_empty());
    }
}
