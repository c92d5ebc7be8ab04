//! Building a message (RFC 5322 MIME) with lettre's `Message` builder, and reading the envelope
//! back out of raw MIME.
//!
//! One builder serves both transports: the same bytes go to SMTP `DATA` and, base64-encoded, to
//! Graph's sendMail MIME form. Bcc is kept in the stored MIME because Graph takes recipients from
//! the headers; the SMTP transport removes the header before `DATA` ([`strip_bcc`]).

use std::path::Path;

use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};

use crate::error::SendError;

/// What `kurir send` (or the REST API) asks to send.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<FileAttachment>,
}

/// An attached file: its name (which also decides its content type) and its bytes. Composing
/// does no I/O, so files from disk (`kurir send --attach`) and bytes from a request (the REST
/// API) attach the same way.
#[derive(Debug, Clone)]
pub struct FileAttachment {
    pub name: String,
    pub content: Vec<u8>,
}

impl FileAttachment {
    /// Reads a file to attach under its own name.
    pub fn read(path: &Path) -> Result<FileAttachment, SendError> {
        let content = std::fs::read(path).map_err(|e| {
            SendError::Message(format!(
                "the attachment {} cannot be read ({e})",
                path.display()
            ))
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".into());
        Ok(FileAttachment { name, content })
    }
}

/// A built message ready to queue.
#[derive(Debug, Clone)]
pub struct Composed {
    pub raw: Vec<u8>,
    pub recipients: Vec<String>,
    pub message_id: String,
}

fn mailbox(addr: &str, what: &str) -> Result<Mailbox, SendError> {
    addr.trim()
        .parse::<Mailbox>()
        .map_err(|e| SendError::Message(format!("{what} address '{addr}' is not valid ({e})")))
}

/// A content type from the file extension; anything unknown is sent as octet-stream, which every
/// client can save.
fn content_type_for(path: &Path) -> ContentType {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mime = match ext.as_str() {
        "pdf" => "application/pdf",
        "xml" => "application/xml",
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "htm" | "html" => "text/html",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "zip" => "application/zip",
        "json" => "application/json",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        _ => "application/octet-stream",
    };
    ContentType::parse(mime).expect("the table holds valid content types")
}

/// Builds the message. Fails on a bad address, before anything is queued.
pub fn compose(d: &Draft) -> Result<Composed, SendError> {
    if d.to.is_empty() && d.cc.is_empty() && d.bcc.is_empty() {
        return Err(SendError::Message(
            "it has no recipients (give --to)".into(),
        ));
    }
    let from = mailbox(&d.from, "the From")?;
    let domain = from.email.domain().to_owned();
    let message_id = format!("<{}@{}>", uuid::Uuid::new_v4(), domain);
    let mut b = Message::builder()
        .from(from)
        .subject(d.subject.clone())
        .message_id(Some(message_id.clone()))
        .date_now()
        .user_agent(format!("Kurir/{}", env!("CARGO_PKG_VERSION")));
    let mut recipients = Vec::new();
    for a in &d.to {
        let m = mailbox(a, "To")?;
        recipients.push(m.email.to_string());
        b = b.to(m);
    }
    for a in &d.cc {
        let m = mailbox(a, "Cc")?;
        recipients.push(m.email.to_string());
        b = b.cc(m);
    }
    for a in &d.bcc {
        let m = mailbox(a, "Bcc")?;
        recipients.push(m.email.to_string());
        b = b.bcc(m);
    }
    if !d.bcc.is_empty() {
        b = b.keep_bcc();
    }
    let body = match (&d.text, &d.html) {
        (Some(t), Some(h)) => MultiPart::alternative_plain_html(t.clone(), h.clone()),
        (None, Some(h)) => MultiPart::mixed().singlepart(SinglePart::html(h.clone())),
        (Some(t), None) => MultiPart::mixed().singlepart(SinglePart::plain(t.clone())),
        (None, None) => MultiPart::mixed().singlepart(SinglePart::plain(String::new())),
    };
    let msg = if d.attachments.is_empty() {
        b.multipart(body)
    } else {
        let mut mixed = MultiPart::mixed().multipart(body);
        for a in &d.attachments {
            let ct = content_type_for(Path::new(&a.name));
            mixed = mixed.singlepart(Attachment::new(a.name.clone()).body(a.content.clone(), ct));
        }
        b.multipart(mixed)
    }
    .map_err(|e| SendError::Message(format!("it could not be built ({e})")))?;
    Ok(Composed {
        raw: msg.formatted(),
        recipients,
        message_id,
    })
}

/// Header facts of a raw message, for listing and for the Graph transport.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    pub from: Option<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
}

pub fn read_headers(raw: &[u8]) -> Headers {
    let Some(m) = mail_parser::MessageParser::default().parse_headers(raw) else {
        return Headers::default();
    };
    Headers {
        from: m
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::to_owned),
        subject: m.subject().map(str::to_owned),
        message_id: m.message_id().map(|id| format!("<{id}>")),
    }
}

/// The envelope recipients of a ready-made message: every address in To, Cc and Bcc, once
/// each (`kurir outbox submit`).
pub fn header_recipients(raw: &[u8]) -> Vec<String> {
    let Some(m) = mail_parser::MessageParser::default().parse_headers(raw) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for list in [m.to(), m.cc(), m.bcc()].into_iter().flatten() {
        for a in list.iter() {
            if let Some(addr) = a.address()
                && !out.iter().any(|o| o.eq_ignore_ascii_case(addr))
            {
                out.push(addr.to_owned());
            }
        }
    }
    out
}

/// The header block ends at the first empty line.
fn header_end(raw: &[u8]) -> usize {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 1))
        .unwrap_or(raw.len())
}

/// The message without its Bcc header (and its folded continuation lines), for SMTP `DATA`:
/// Bcc recipients are in the envelope and must not see each other.
pub fn strip_bcc(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    strip_fields(raw, &["bcc"])
}

/// The message without the top-level header fields named in `names` (lower case), folded
/// continuation lines included; borrowed when there is none.
fn strip_fields<'a>(raw: &'a [u8], names: &[&str]) -> std::borrow::Cow<'a, [u8]> {
    let end = header_end(raw);
    let head = &raw[..end];
    let named = |l: &[u8]| {
        names.iter().any(|n| {
            l.len() > n.len()
                && l[n.len()] == b':'
                && l[..n.len()].eq_ignore_ascii_case(n.as_bytes())
        })
    };
    if !head.split(|&c| c == b'\n').any(named) {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut skipping = false;
    for line in head.split_inclusive(|&c| c == b'\n') {
        let continuation = line.first().is_some_and(|c| *c == b' ' || *c == b'\t');
        if continuation && skipping {
            continue;
        }
        skipping = named(line);
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&raw[end..]);
    std::borrow::Cow::Owned(out)
}

/// The bare address of an envelope entry (`a@b`, `<a@b>` or `Name <a@b>`), lower-cased for
/// comparison.
fn envelope_key(entry: &str) -> String {
    let e = entry.trim();
    let inner = match (e.rfind('<'), e.rfind('>')) {
        (Some(a), Some(b)) if a < b => &e[a + 1..b],
        _ => e,
    };
    inner.trim().to_ascii_lowercase()
}

/// `Name <addr>` for a header, the name quoted or RFC 2047-encoded as needed.
fn format_mailbox(name: Option<&str>, addr: &str) -> String {
    use base64::Engine;
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None => addr.to_owned(),
        Some(n) if !n.is_ascii() => format!(
            "=?utf-8?B?{}?= <{addr}>",
            base64::engine::general_purpose::STANDARD.encode(n)
        ),
        Some(n)
            if n.chars()
                .all(|c| c.is_ascii_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c)) =>
        {
            format!("{n} <{addr}>")
        }
        Some(n) => format!(
            "\"{}\" <{addr}>",
            n.replace('\\', "\\\\").replace('"', "\\\"")
        ),
    }
}

/// The message as Microsoft Graph must get it so that exactly the envelope recipients receive
/// it.
///
/// Graph has no envelope of its own: sendMail and a sent draft deliver to the To, Cc and Bcc
/// of the message. The envelope (the listener's `RCPT TO`, the API's `to/cc/bcc`, what
/// `kurir send` composed) is what decides who receives, on every route, so the header is
/// made to say the same: To and Cc keep those of their addresses that are in the envelope
/// (with their display names, so recipients see the header as the sender wrote it), header
/// addresses that are not in the envelope are dropped, and envelope recipients that are in
/// neither To nor Cc go into Bcc, which Graph does not show to the other recipients (exactly
/// like SMTP, where an envelope-only recipient is not visible in the header either). A message
/// whose To/Cc/Bcc already name exactly the envelope is passed on byte for byte.
pub fn envelope_view<'a>(raw: &'a [u8], envelope: &[String]) -> std::borrow::Cow<'a, [u8]> {
    let Some(m) = mail_parser::MessageParser::default().parse_headers(raw) else {
        return std::borrow::Cow::Borrowed(raw);
    };
    let wanted: Vec<(String, &str)> = {
        let mut v: Vec<(String, &str)> = Vec::new();
        for e in envelope {
            let k = envelope_key(e);
            if !k.is_empty() && !v.iter().any(|(o, _)| *o == k) {
                v.push((k, e.trim()));
            }
        }
        v
    };
    let list = |a: Option<&mail_parser::Address<'_>>| -> Vec<(Option<String>, String)> {
        a.map(|a| {
            a.iter()
                .filter_map(|x| {
                    x.address()
                        .map(|ad| (x.name().map(str::to_owned), ad.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
    };
    let (to, cc, bcc) = (list(m.to()), list(m.cc()), list(m.bcc()));
    let mut in_header: Vec<String> = to
        .iter()
        .chain(&cc)
        .chain(&bcc)
        .map(|(_, a)| a.to_ascii_lowercase())
        .collect();
    in_header.sort();
    in_header.dedup();
    let mut in_envelope: Vec<String> = wanted.iter().map(|(k, _)| k.clone()).collect();
    in_envelope.sort();
    if in_header == in_envelope {
        return std::borrow::Cow::Borrowed(raw);
    }
    let is_wanted = |a: &str| wanted.iter().any(|(k, _)| k.eq_ignore_ascii_case(a));
    let mut shown: Vec<String> = Vec::new();
    let mut keep = |l: &[(Option<String>, String)]| -> Vec<String> {
        let mut out = Vec::new();
        for (n, a) in l {
            let k = a.to_ascii_lowercase();
            if is_wanted(a) && !shown.contains(&k) {
                shown.push(k);
                out.push(format_mailbox(n.as_deref(), a));
            }
        }
        out
    };
    let new_to = keep(&to);
    let new_cc = keep(&cc);
    let new_bcc: Vec<String> = wanted
        .iter()
        .filter(|(k, _)| !shown.contains(k))
        .map(|(k, _)| k.clone())
        .collect();
    let stripped = strip_fields(raw, &["to", "cc", "bcc"]);
    let end = header_end(&stripped);
    let mut out = Vec::with_capacity(stripped.len() + 256);
    out.extend_from_slice(&stripped[..end]);
    for (name, l) in [("To", new_to), ("Cc", new_cc), ("Bcc", new_bcc)] {
        if !l.is_empty() {
            // One address per folded line keeps every line far below 998 octets.
            out.extend_from_slice(format!("{name}: {}\r\n", l.join(",\r\n ")).as_bytes());
        }
    }
    out.extend_from_slice(&stripped[end..]);
    std::borrow::Cow::Owned(out)
}

/// Adds `Message-ID` and `Date` when a legacy client left them out (Exchange would add its
/// own, but then the queue could not show what was sent).
pub fn ensure_ids(raw: Vec<u8>, domain: &str) -> (Vec<u8>, Option<String>) {
    let h = read_headers(&raw);
    let end = header_end(&raw);
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let has_date = head.starts_with("date:") || head.contains("\ndate:");
    if h.message_id.is_some() && has_date {
        return (raw, h.message_id);
    }
    let mut extra = String::new();
    let mut id = h.message_id.clone();
    if id.is_none() {
        let new = format!("<{}@{}>", uuid::Uuid::new_v4(), domain);
        extra.push_str(&format!("Message-ID: {new}\r\n"));
        id = Some(new);
    }
    if !has_date {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap_or_default();
        extra.push_str(&format!("Date: {now}\r\n"));
    }
    let mut out = extra.into_bytes();
    out.extend_from_slice(&raw);
    (out, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_keeps_bcc_for_graph_and_strip_removes_it_for_smtp() {
        let c = compose(&Draft {
            from: "anna@example.com".into(),
            to: vec!["a@example.com".into()],
            bcc: vec!["hidden@example.com".into()],
            subject: "Order 4711".into(),
            text: Some("Hej".into()),
            ..Draft::default()
        })
        .unwrap();
        assert_eq!(c.recipients, ["a@example.com", "hidden@example.com"]);
        let text = String::from_utf8_lossy(&c.raw).into_owned();
        assert!(text.contains("Bcc: hidden@example.com"), "{text}");
        let stripped = strip_bcc(&c.raw);
        let s = String::from_utf8_lossy(&stripped);
        assert!(!s.to_ascii_lowercase().contains("bcc:"), "{s}");
        assert!(s.contains("Subject: Order 4711"));
        assert_eq!(
            read_headers(&c.raw).message_id.as_deref(),
            Some(&*c.message_id)
        );
    }

    #[test]
    fn envelope_view_names_exactly_the_envelope_recipients() {
        let raw: &[u8] = b"From: a@x.example\r\nTo: Bob <bob@x.example>, carol@x.example\r\nCc: dave@x.example\r\nBcc: eve@x.example\r\nSubject: s\r\n\r\nbody\r\n";
        let env = [
            "BOB@x.example".to_owned(),
            "Erin <erin@x.example>".to_owned(),
        ];
        let v = envelope_view(raw, &env);
        let m = mail_parser::MessageParser::default().parse(&v).unwrap();
        let addrs = |a: Option<&mail_parser::Address<'_>>| -> Vec<String> {
            a.map(|a| {
                a.iter()
                    .filter_map(|x| x.address().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
        };
        assert_eq!(addrs(m.to()), ["bob@x.example"]);
        assert_eq!(m.to().unwrap().first().unwrap().name(), Some("Bob"));
        assert!(addrs(m.cc()).is_empty());
        assert_eq!(addrs(m.bcc()), ["erin@x.example"]);
        assert_eq!(m.subject(), Some("s"));
        assert!(v.ends_with(b"\r\n\r\nbody\r\n"));
        // Headers that already say exactly the envelope stay byte for byte.
        let same = [
            "bob@x.example",
            "carol@x.example",
            "DAVE@x.example",
            "eve@x.example",
        ]
        .map(str::to_owned);
        assert!(matches!(
            envelope_view(raw, &same),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn ensure_ids_adds_only_what_is_missing() {
        let (raw, id) = ensure_ids(b"From: a@b.c\r\nSubject: x\r\n\r\nbody\r\n".to_vec(), "b.c");
        let s = String::from_utf8(raw).unwrap();
        assert!(s.starts_with("Message-ID: <"), "{s}");
        assert!(s.contains("\r\nDate: "), "{s}");
        assert!(id.unwrap().ends_with("@b.c>"));
        let full = b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <x@y>\r\n\r\nb".to_vec();
        assert_eq!(ensure_ids(full.clone(), "b.c").0, full);
    }
}
