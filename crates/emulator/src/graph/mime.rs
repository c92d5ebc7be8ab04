//! MIME in and out of the mail store: parsing stored messages into Graph properties
//! (mail-parser), building MIME from Graph's JSON form, and the small header surgery Exchange
//! does on submission (adding Date / Message-ID / From, dropping Bcc from delivered copies,
//! wrapping uploaded attachments into a draft).
//!
//! The stored bytes are what `$value` returns, byte for byte: only submission rewrites them,
//! as Exchange does.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kurir_graph::{BodyType, EmailAddress, ItemBody, Message, Recipient};
use mail_parser::{Address, MessageParser};
use time::OffsetDateTime;

/// Graph properties derived from a message's MIME.
#[derive(Clone, Debug, Default)]
pub struct ParsedMime {
    pub subject: String,
    pub from: Option<Recipient>,
    pub sender: Option<Recipient>,
    pub to: Vec<Recipient>,
    pub cc: Vec<Recipient>,
    pub bcc: Vec<Recipient>,
    pub reply_to: Vec<Recipient>,
    pub internet_message_id: Option<String>,
    pub sent: Option<OffsetDateTime>,
    pub has_attachments: bool,
    pub body: Option<ItemBody>,
    pub body_preview: String,
}

fn recipients(a: Option<&Address<'_>>) -> Vec<Recipient> {
    a.map(|a| {
        a.iter()
            .filter(|x| x.address().is_some())
            .map(|x| Recipient {
                email_address: EmailAddress {
                    name: x.name().map(str::to_string),
                    address: x.address().map(str::to_string),
                },
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Parses raw MIME; a message mail-parser cannot read still gets stored, with empty fields.
///
/// A panic inside the parser counts as "cannot read": mail-parser 0.11.9 has a
/// `debug_assert!` that hostile input reaches (found by `scripts/fuzz`, see
/// crates/intake/tests/fuzz-findings/), and one message must never take the emulator's
/// handler, or a test's `put_mail`, down with it.
pub fn parse(raw: &[u8]) -> ParsedMime {
    std::panic::catch_unwind(|| parse_readable(raw)).unwrap_or_default()
}

fn parse_readable(raw: &[u8]) -> ParsedMime {
    let Some(m) = MessageParser::default().parse(raw) else {
        return ParsedMime::default();
    };
    let (body, text) = if let Some(html) = m
        .body_html(0)
        .filter(|_| m.html_body_count() > 0 && m.text_body_count() == 0)
    {
        let t = m.body_text(0).map(|c| c.into_owned()).unwrap_or_default();
        (
            Some(ItemBody {
                content_type: BodyType::Html,
                content: html.into_owned(),
            }),
            t,
        )
    } else {
        let t = m.body_text(0).map(|c| c.into_owned()).unwrap_or_default();
        (
            Some(ItemBody {
                content_type: BodyType::Text,
                content: t.clone(),
            }),
            t,
        )
    };
    // Graph's bodyPreview: the first 255 characters of the text, whitespace collapsed.
    let preview: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(255)
        .collect();
    ParsedMime {
        subject: m.subject().unwrap_or_default().to_string(),
        from: recipients(m.from()).into_iter().next(),
        sender: recipients(m.sender()).into_iter().next(),
        to: recipients(m.to()),
        cc: recipients(m.cc()),
        bcc: recipients(m.bcc()),
        reply_to: recipients(m.reply_to()),
        internet_message_id: m.message_id().map(|id| format!("<{id}>")),
        sent: m
            .date()
            .and_then(|d| OffsetDateTime::from_unix_timestamp(d.to_timestamp()).ok()),
        has_attachments: m.attachment_count() > 0,
        body,
        body_preview: preview,
    }
}

/// Splits raw MIME into its header block (with the final line break) and body.
fn split(raw: &[u8]) -> (&[u8], &[u8]) {
    for (i, w) in raw.windows(4).enumerate() {
        if w == b"\r\n\r\n" {
            return (&raw[..i + 2], &raw[i + 4..]);
        }
    }
    for (i, w) in raw.windows(2).enumerate() {
        if w == b"\n\n" {
            return (&raw[..i + 1], &raw[i + 2..]);
        }
    }
    (raw, b"")
}

/// Header fields as (name, full raw field including folded continuation lines).
fn fields(head: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in head.split_inclusive(|&b| b == b'\n') {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t')
            && let Some(last) = out.last_mut()
        {
            last.1.extend_from_slice(line);
            continue;
        }
        let name = line
            .iter()
            .position(|&b| b == b':')
            .map(|p| {
                String::from_utf8_lossy(&line[..p])
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        out.push((name, line.to_vec()));
    }
    out
}

fn has_header(raw: &[u8], name: &str) -> bool {
    let (head, _) = split(raw);
    fields(head).iter().any(|(n, _)| n == name)
}

/// Removes every field called `name` (lower case) from the top-level header.
pub fn strip_header(raw: &[u8], name: &str) -> Vec<u8> {
    let (head, body) = split(raw);
    let sep: &[u8] = if head.ends_with(b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    };
    let mut out = Vec::with_capacity(raw.len());
    for (n, f) in fields(head) {
        if n != name {
            out.extend_from_slice(&f);
        }
    }
    out.extend_from_slice(sep);
    out.extend_from_slice(body);
    out
}

/// What Exchange adds on submission when the client left it out: Date, Message-ID and From
/// (the sending mailbox).
pub fn complete_for_submission(raw: &[u8], from: &str, from_name: &str, domain: &str) -> Vec<u8> {
    let mut prefix = String::new();
    if !has_header(raw, "from") {
        prefix.push_str(&format!("From: {} <{from}>\r\n", encode_word(from_name)));
    }
    if !has_header(raw, "date") {
        prefix.push_str(&format!("Date: {}\r\n", rfc2822(OffsetDateTime::now_utc())));
    }
    if !has_header(raw, "message-id") {
        prefix.push_str(&format!("Message-ID: {}\r\n", new_message_id(domain)));
    }
    let mut out = prefix.into_bytes();
    out.extend_from_slice(raw);
    out
}

/// A Message-ID in Exchange's style.
pub fn new_message_id(domain: &str) -> String {
    format!(
        "<{}@{}>",
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .to_ascii_uppercase(),
        domain
    )
}

pub fn rfc2822(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default()
}

/// RFC 2047 encoded-word for non-ASCII header text.
fn encode_word(s: &str) -> String {
    if s.is_ascii() {
        s.to_string()
    } else {
        format!("=?utf-8?B?{}?=", STANDARD.encode(s.as_bytes()))
    }
}

fn format_recipients(list: &[Recipient]) -> String {
    list.iter()
        .filter_map(|r| {
            let a = r.email_address.address.as_deref()?;
            Some(match r.email_address.name.as_deref() {
                Some(n) if !n.is_empty() => format!("{} <{a}>", encode_word(n)),
                _ => a.to_string(),
            })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn base64_lines(data: &[u8]) -> String {
    let b64 = STANDARD.encode(data);
    let mut out = String::with_capacity(b64.len() + b64.len() / 76 * 2 + 2);
    for chunk in b64.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

/// A decoded attachment to put into MIME.
pub struct MimeAttachment {
    pub name: String,
    pub content_type: String,
    pub data: Vec<u8>,
    /// `Content-Disposition: inline` with this `Content-ID` (without `<>`), as Exchange
    /// writes an attachment with `isInline` and `contentId`.
    pub inline: bool,
    pub content_id: Option<String>,
}

/// Builds MIME from Graph's JSON message form (sendMail / draft creation).
pub fn build_from_json(
    msg: &Message,
    from: &Recipient,
    attachments: &[MimeAttachment],
    domain: &str,
) -> Vec<u8> {
    let mut h = String::new();
    let from = msg.from.as_ref().unwrap_or(from);
    h.push_str(&format!(
        "From: {}\r\n",
        format_recipients(std::slice::from_ref(from))
    ));
    for (name, list) in [
        ("To", &msg.to_recipients),
        ("Cc", &msg.cc_recipients),
        ("Bcc", &msg.bcc_recipients),
        ("Reply-To", &msg.reply_to),
    ] {
        if let Some(list) = list.as_ref().filter(|l| !l.is_empty()) {
            h.push_str(&format!("{name}: {}\r\n", format_recipients(list)));
        }
    }
    h.push_str(&format!(
        "Subject: {}\r\n",
        encode_word(msg.subject.as_deref().unwrap_or_default())
    ));
    h.push_str(&format!("Date: {}\r\n", rfc2822(OffsetDateTime::now_utc())));
    h.push_str(&format!("Message-ID: {}\r\n", new_message_id(domain)));
    h.push_str("MIME-Version: 1.0\r\n");
    let (ctype, content) = match &msg.body {
        Some(b) => (
            if b.content_type == BodyType::Html {
                "text/html"
            } else {
                "text/plain"
            },
            b.content.as_str(),
        ),
        None => ("text/plain", ""),
    };
    let body_part = format!(
        "Content-Type: {ctype}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
        base64_lines(content.as_bytes())
    );
    let mut out = h.into_bytes();
    if attachments.is_empty() {
        out.extend_from_slice(body_part.as_bytes());
        return out;
    }
    let boundary = format!("_kurir_emulator_{}", uuid::Uuid::new_v4().simple());
    out.extend_from_slice(
        format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\n")
            .as_bytes(),
    );
    out.extend_from_slice(body_part.as_bytes());
    append_attachment_parts(&mut out, &boundary, attachments);
    out
}

fn append_attachment_parts(out: &mut Vec<u8>, boundary: &str, attachments: &[MimeAttachment]) {
    for a in attachments {
        let name = encode_word(&a.name).replace('"', "'");
        let disposition = if a.inline { "inline" } else { "attachment" };
        let cid = a
            .content_id
            .as_deref()
            .map(|c| format!("Content-ID: <{c}>\r\n"))
            .unwrap_or_default();
        out.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Type: {}; name=\"{name}\"\r\nContent-Disposition: {disposition}; filename=\"{name}\"\r\n{cid}Content-Transfer-Encoding: base64\r\n\r\n",
                a.content_type
            )
            .as_bytes(),
        );
        out.extend_from_slice(base64_lines(&a.data).as_bytes());
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
}

/// Wraps a message and extra attachments into `multipart/mixed`: the top-level header stays,
/// the original content (with its Content-* fields) becomes the first part. This is what the
/// draft's MIME looks like after attachments were added through upload sessions.
pub fn add_attachments(raw: &[u8], attachments: &[MimeAttachment]) -> Vec<u8> {
    if attachments.is_empty() {
        return raw.to_vec();
    }
    let (head, body) = split(raw);
    let mut top = Vec::new();
    let mut content = Vec::new();
    for (name, f) in fields(head) {
        if name.starts_with("content-") {
            content.extend_from_slice(&f);
        } else if name != "mime-version" && !name.is_empty() {
            top.extend_from_slice(&f);
        }
    }
    if content.is_empty() {
        content.extend_from_slice(b"Content-Type: text/plain; charset=us-ascii\r\n");
    }
    let boundary = format!("_kurir_emulator_{}", uuid::Uuid::new_v4().simple());
    let mut out = top;
    out.extend_from_slice(
        format!(
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(&content);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    append_attachment_parts(&mut out, &boundary, attachments);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &[u8] = b"From: Alice <alice@example.com>\r\nTo: Bob <bob@example.com>, carol@example.com\r\nBcc: dave@example.com\r\nSubject: =?utf-8?B?w4VyZW5kZQ==?=\r\nMessage-ID: <abc@example.com>\r\nDate: Wed, 01 May 2024 08:30:00 +0000\r\n\r\nHello\r\n  world\r\n";

    #[test]
    fn parses_graph_properties() {
        let p = parse(RAW);
        assert_eq!(p.subject, "Årende");
        assert_eq!(
            p.from.unwrap().email_address.address.as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(p.to.len(), 2);
        assert_eq!(p.bcc.len(), 1);
        assert_eq!(p.internet_message_id.as_deref(), Some("<abc@example.com>"));
        assert_eq!(p.sent.unwrap().unix_timestamp(), 1714552200);
        assert_eq!(p.body_preview, "Hello world");
        assert!(!p.has_attachments);
    }

    #[test]
    fn strips_bcc_and_keeps_the_rest_byte_exact() {
        let out = strip_header(RAW, "bcc");
        let expected: Vec<u8> = String::from_utf8_lossy(RAW)
            .replace("Bcc: dave@example.com\r\n", "")
            .into_bytes();
        assert_eq!(out, expected);
    }

    #[test]
    fn adds_attachments_as_multipart() {
        let out = add_attachments(
            RAW,
            &[MimeAttachment {
                name: "big.bin".into(),
                content_type: "application/octet-stream".into(),
                data: vec![7u8; 1000],
                inline: false,
                content_id: None,
            }],
        );
        let m = MessageParser::default().parse(&out).unwrap();
        assert_eq!(m.subject(), Some("Årende"));
        assert_eq!(m.attachment_count(), 1);
        assert_eq!(m.attachment(0).unwrap().contents(), &[7u8; 1000][..]);
        assert!(m.body_text(0).unwrap().contains("Hello"));
    }
}
