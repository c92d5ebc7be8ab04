//! From raw MIME to the metadata Kurir records (mail-parser 0.11), and the rules for what is not
//! an e-mail message at all.
//!
//! mail-parser is lenient by design: bad encodings, 8-bit headers and truncated multiparts still
//! parse, and that is what we want — an odd but readable message should reach the ERP. Only input
//! with nothing of an e-mail in it (empty, or no header fields) is refused here; the caller
//! quarantines it with the reason.

use std::borrow::Cow;

use mail_parser::{Header, Message, MessageParser, MimeHeaders};

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

/// Hex BLAKE3 of the raw bytes (what `b3sum` prints for an exported .eml).
///
/// Every message is hashed whole (it is the dedupe key of messages without a Message-ID), so the
/// hash is a noticeable part of intake's CPU: BLAKE3 runs several times faster than SHA-256
/// here (0.066 s of CPU for 123 MB with SHA-256 and the SHA extensions).
pub fn content_hash(raw: &[u8]) -> String {
    blake3::hash(raw).to_hex().to_string()
}

/// Parses `raw`; `Err` carries the reason it is not a message, for the quarantine record.
pub fn parse(raw: &[u8]) -> Result<Message<'_>, String> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(crate::reasons::EMPTY.into());
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
        return Err(crate::reasons::NOT_EMAIL.into());
    }
    Ok(msg)
}

/// The metadata of a message without parsing or decoding its body: for handlers that do not
/// look at content ([`crate::handler::Handler::needs_body`]), where decoding base64 attachments
/// nobody reads was most of the CPU a message cost. The same refusals as [`parse`]; the header
/// fields as [`meta`]; the attachments from a walk of the MIME structure that reads part headers
/// and measures part bodies (sizes are after transfer decoding, like [`meta`]'s, except that
/// text is not converted from its charset).
pub fn meta_without_body(raw: &[u8]) -> Result<Meta, String> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(crate::reasons::EMPTY.into());
    }
    let end = header_end(raw);
    let msg = MessageParser::default()
        .parse_headers(&raw[..end])
        .ok_or_else(|| {
            "the content has no header fields (no MIME structure found), so it is not an e-mail message"
                .to_owned()
        })?;
    let known = msg.headers().iter().any(|h| {
        STANDARD_FIELDS
            .iter()
            .any(|f| h.name().eq_ignore_ascii_case(f))
    });
    if !known {
        return Err(crate::reasons::NOT_EMAIL.into());
    }
    let mut meta = fields(&msg);
    let mut attachments = Vec::new();
    walk_body(
        &msg,
        &raw[end..],
        (Container::Message, 1, true),
        0,
        &mut attachments,
    );
    meta.attachments = attachments;
    Ok(meta)
}

/// Where a part sits, for the rules that decide whether a text part is an attachment (those of
/// mail-parser, so both paths agree).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    Message,
    Mixed,
    Alternative,
    Related,
    Digest,
    Other,
}

const MAX_DEPTH: usize = 32;

/// Offset just past the blank line that ends the header (or the end).
fn header_end(raw: &[u8]) -> usize {
    let mut i = 0;
    while let Some(p) = raw[i..].iter().position(|b| *b == b'\n') {
        let next = i + p + 1;
        match raw.get(next) {
            Some(b'\n') => return next + 1,
            Some(b'\r') if raw.get(next + 1) == Some(&b'\n') => return next + 2,
            Some(_) => i = next,
            None => return raw.len(),
        }
    }
    raw.len()
}

/// `needle` in `hay` from `from` on.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + needle.len() <= hay.len() {
        i += position(&hay[i..], needle[0])?;
        if hay.get(i..i + needle.len()) == Some(needle) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The first `byte` in `hay`: 64-byte blocks are tested whole (a loop the compiler turns into
/// vector instructions), bytes one by one only in the block that has it.
fn position(hay: &[u8], byte: u8) -> Option<usize> {
    let mut base = 0;
    for block in hay.chunks(64) {
        if block.iter().fold(false, |seen, b| seen | (*b == byte)) {
            return block.iter().position(|b| *b == byte).map(|p| base + p);
        }
        base += block.len();
    }
    None
}

/// The bodies of a multipart's parts (headers included) and whether a delimiter ended each
/// (a truncated message's last part runs to the end), or None when the boundary never occurs.
/// Like mail-parser, a delimiter matches the boundary as a prefix.
fn split_parts<'a>(body: &'a [u8], boundary: &[u8]) -> Option<Vec<(&'a [u8], bool)>> {
    let delim = [b"--", boundary].concat();
    let mut pos = find(body, &delim, 0)? + delim.len();
    let mut parts = Vec::new();
    loop {
        if body[pos..].starts_with(b"--") {
            break;
        }
        // The rest of the delimiter line (transport padding) is not part of the part.
        match body[pos..].iter().position(|b| *b == b'\n') {
            Some(p) => pos += p + 1,
            None => break,
        }
        let next = find(body, &delim, pos);
        let mut end = next.unwrap_or(body.len());
        if next.is_some() && end > pos && body[end - 1] == b'\n' {
            end -= 1;
            if end > pos && body[end - 1] == b'\r' {
                end -= 1;
            }
        }
        parts.push((&body[pos..end], next.is_some()));
        match next {
            Some(n) => pos = n + delim.len(),
            None => break,
        }
    }
    Some(parts)
}

/// Bytes after transfer decoding, counted without decoding; None where mail-parser's decoder
/// gives up (a character outside base64, or a part that no delimiter ends) and keeps the raw
/// bytes instead.
fn decoded_len(body: &[u8], encoding: Option<&str>, terminated: bool) -> Option<u64> {
    match encoding {
        Some(e) if e.eq_ignore_ascii_case("base64") => {
            // Branch-free with byte-wide counters (a block of 255 cannot overflow one) so that
            // it runs as vector instructions, 64 bytes at a time: base64 bodies are most of the
            // bytes of mail with attachments.
            let (mut n, mut bad) = (0u64, false);
            for block in body.chunks(255) {
                let (mut count, mut other) = (0u8, 0u8);
                for &b in block {
                    let alphabet = (b.wrapping_sub(b'A') < 26)
                        | (b.wrapping_sub(b'a') < 26)
                        | (b.wrapping_sub(b'0') < 10)
                        | (b == b'+')
                        | (b == b'/');
                    let ignored =
                        (b == b'=') | (b == b' ') | (b == b'\t') | (b == b'\r') | (b == b'\n');
                    count += alphabet as u8;
                    other |= !(alphabet | ignored) as u8;
                }
                n += u64::from(count);
                bad |= other != 0;
            }
            (!bad && terminated).then_some(n * 3 / 4)
        }
        Some(e) if e.eq_ignore_ascii_case("quoted-printable") => {
            let (mut n, mut i) = (0u64, 0);
            while i < body.len() {
                if body[i] == b'=' {
                    match (body.get(i + 1), body.get(i + 2)) {
                        (Some(b'\r'), Some(b'\n')) => i += 3,
                        (Some(b'\n'), _) => i += 2,
                        (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {
                            n += 1;
                            i += 3;
                        }
                        _ => {
                            n += 1;
                            i += 1;
                        }
                    }
                } else {
                    n += 1;
                    i += 1;
                }
            }
            terminated.then_some(n)
        }
        _ => Some(body.len() as u64),
    }
}

/// The attachments in the body of an entity whose header is `head`.
fn walk_body(
    head: &Message<'_>,
    body: &[u8],
    (parent, index, terminated): (Container, usize, bool),
    depth: usize,
    out: &mut Vec<AttachmentInfo>,
) {
    let decoded = decoded_len(body, head.content_transfer_encoding(), terminated);
    let encoding_problem = decoded.is_none();
    let size = decoded.unwrap_or(body.len() as u64);
    let ct = head.content_type();
    let ctype = ct.map(|c| c.ctype().to_ascii_lowercase());
    let sub = ct
        .and_then(|c| c.subtype())
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    let attach = |out: &mut Vec<AttachmentInfo>, is_message: bool| {
        out.push(AttachmentInfo {
            name: attachment_name(head.raw_message(), head.headers(), head.attachment_name())
                .map(|n| clip(&n)),
            content_type: ct
                .map(|c| match c.subtype() {
                    Some(s) => format!("{}/{}", c.ctype(), s),
                    None => c.ctype().to_owned(),
                })
                .unwrap_or_else(|| {
                    if is_message {
                        "message/rfc822".into()
                    } else {
                        "application/octet-stream".into()
                    }
                })
                .to_ascii_lowercase(),
            size,
        })
    };
    match ctype.as_deref() {
        Some("multipart") => {
            if depth >= MAX_DEPTH {
                // Deeper than any real message: not walked (and not reported).
                return;
            }
            let parts = ct
                .and_then(|c| c.attribute("boundary"))
                .and_then(|b| split_parts(body, b.as_bytes()));
            let Some(parts) = parts else {
                // No boundary in the body: mail-parser keeps it as a text attachment.
                attach(out, false);
                return;
            };
            let kind = match sub.as_str() {
                "mixed" => Container::Mixed,
                "alternative" => Container::Alternative,
                "related" => Container::Related,
                "digest" => Container::Digest,
                _ => Container::Other,
            };
            for (i, (part, ended)) in parts.into_iter().enumerate() {
                let end = header_end(part);
                // A part without a header is plain text, part of the body.
                if let Some(h) = MessageParser::default().parse_headers(&part[..end]) {
                    walk_body(&h, &part[end..], (kind, i + 1, ended), depth + 1, out);
                }
            }
        }
        Some("message") if sub == "rfc822" || sub == "global" => attach(out, true),
        None if parent == Container::Digest => attach(out, true),
        Some("text") | None => {
            let html_or_plain = ct.is_none() || sub == "plain" || sub == "html";
            let is_attachment = if !html_or_plain {
                true
            } else if parent == Container::Alternative {
                false
            } else {
                let disposition_attachment = head
                    .content_disposition()
                    .is_some_and(|d| d.is_attachment());
                let inline = !encoding_problem
                    && !disposition_attachment
                    && (index == 1
                        || parent != Container::Related
                            && !ct.is_some_and(|c| c.has_attribute("name")));
                // A lone plain-text body stays the body even when its encoding is broken.
                let lone_plain = parent == Container::Message && sub != "html";
                !(inline || encoding_problem && lone_plain)
            };
            if is_attachment {
                attach(out, false);
            }
        }
        Some(_) => attach(out, false),
    }
}

/// The attachment name of a part whose header fields are `headers` (offsets into `raw`), where
/// `parsed` is mail-parser's `attachment_name()` of the same part.
///
/// mail-parser decodes each piece of an RFC 2231 continuation (`filename*0*=utf-8''%E5%AD;
/// filename*1*=%97.xml`) on its own, so a character whose bytes are split across two pieces
/// becomes U+FFFD, and pieces after the first are read as UTF-8 whatever the charset. RFC 2231
/// section 4.1 says the pieces are one value: here their percent-decoded bytes are joined first
/// and the charset (named in piece 0) is decoded once. Names without numbered pieces are
/// mail-parser's, as before. The same precedence as mail-parser: Content-Disposition's
/// `filename`, then Content-Type's `name`.
pub fn attachment_name<'a>(
    raw: &[u8],
    headers: &[Header<'_>],
    parsed: Option<&'a str>,
) -> Option<Cow<'a, str>> {
    for (field, attr) in [
        ("Content-Disposition", "filename"),
        ("Content-Type", "name"),
    ] {
        let Some(h) = headers
            .iter()
            .find(|h| h.name.as_str().eq_ignore_ascii_case(field))
        else {
            continue;
        };
        let value = raw
            .get(h.offset_start as usize..h.offset_end as usize)
            .unwrap_or_default();
        let params = header_params(value);
        if !params.iter().any(|p| p.name == attr) {
            continue;
        }
        return match continued_value(&params, attr) {
            Some(joined) => Some(Cow::Owned(joined)),
            None => parsed.map(Cow::Borrowed),
        };
    }
    parsed.map(Cow::Borrowed)
}

/// One `name[*section][*]=value` parameter of a MIME header field, undecoded.
struct Param {
    /// Lower-case, without the section number and the `*`s.
    name: String,
    section: Option<u32>,
    /// Ends in `*`: the value is percent-encoded (and in section 0 starts with `charset'lang'`).
    extended: bool,
    value: Vec<u8>,
}

/// Numbered pieces beyond this are not a file name.
const MAX_SECTIONS: u32 = 100;

/// The parameters after the first `;` of a raw (possibly folded) header field value.
fn header_params(value: &[u8]) -> Vec<Param> {
    let mut out = Vec::new();
    let Some(first) = value.iter().position(|b| *b == b';') else {
        return out;
    };
    let mut i = first + 1;
    let n = value.len();
    while i < n {
        while i < n && (value[i].is_ascii_whitespace() || value[i] == b';') {
            i += 1;
        }
        let start = i;
        while i < n && value[i] != b'=' && value[i] != b';' {
            i += 1;
        }
        if i >= n || value[i] == b';' {
            continue; // a parameter without a value
        }
        let key = String::from_utf8_lossy(&value[start..i])
            .trim()
            .to_ascii_lowercase();
        i += 1;
        while i < n && matches!(value[i], b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
        }
        let mut val = Vec::new();
        if i < n && value[i] == b'"' {
            i += 1;
            while i < n && value[i] != b'"' {
                match value[i] {
                    b'\\' if i + 1 < n => {
                        val.push(value[i + 1]);
                        i += 2;
                    }
                    b'\r' | b'\n' => i += 1, // folding
                    b => {
                        val.push(b);
                        i += 1;
                    }
                }
            }
            i += 1;
            while i < n && value[i] != b';' {
                i += 1;
            }
        } else {
            while i < n && value[i] != b';' {
                if !value[i].is_ascii_whitespace() {
                    val.push(value[i]);
                }
                i += 1;
            }
        }
        let (key, extended) = match key.strip_suffix('*') {
            Some(k) => (k.to_owned(), true),
            None => (key, false),
        };
        let (name, section) = match key.split_once('*') {
            Some((base, num)) => match num.parse::<u32>() {
                Ok(s) => (base.to_owned(), Some(s)),
                Err(_) => continue,
            },
            None => (key, None),
        };
        out.push(Param {
            name,
            section,
            extended,
            value: val,
        });
    }
    out
}

/// The value of `attr` sent in numbered pieces (RFC 2231 section 3), or None when it was not.
fn continued_value(params: &[Param], attr: &str) -> Option<String> {
    let mut pieces: Vec<&Param> = params
        .iter()
        .filter(|p| p.name == attr && p.section.is_some_and(|s| s < MAX_SECTIONS))
        .collect();
    if pieces.is_empty() {
        return None;
    }
    pieces.sort_by_key(|p| p.section);
    if pieces[0].section != Some(0) {
        return None;
    }
    let mut bytes = Vec::new();
    let mut charset: Option<String> = None;
    for (expected, p) in pieces.iter().enumerate() {
        // Pieces are numbered from 0 without gaps; whatever follows a gap is not this value.
        if p.section != Some(expected as u32) {
            break;
        }
        if !p.extended {
            bytes.extend_from_slice(&p.value);
            continue;
        }
        let mut v = &p.value[..];
        if expected == 0 {
            // charset'language'value
            let mut quotes = v.iter().enumerate().filter(|(_, b)| **b == b'\'');
            if let (Some((a, _)), Some((b, _))) = (quotes.next(), quotes.next()) {
                charset = Some(String::from_utf8_lossy(&v[..a]).into_owned());
                v = &v[b + 1..];
            }
        }
        percent_decode_into(v, &mut bytes);
    }
    let decoder = charset
        .as_deref()
        .filter(|c| !c.is_empty())
        .and_then(|c| mail_parser::decoders::charsets::map::charset_decoder(c.as_bytes()));
    Some(match decoder {
        Some(decode) => decode(&bytes),
        None => String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// `%XX` to its byte; anything else (a stray `%` included) as it is.
fn percent_decode_into(v: &[u8], out: &mut Vec<u8>) {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%'
            && let (Some(h), Some(l)) = (
                v.get(i + 1).copied().and_then(hex),
                v.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
}

/// The header fields of the metadata (no attachments).
fn fields(msg: &Message<'_>) -> Meta {
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
        attachments: Vec::new(),
    }
}

/// The metadata of a parsed message.
pub fn meta(msg: &Message<'_>) -> Meta {
    Meta {
        attachments: attachments(msg),
        ..fields(msg)
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
            name: attachment_name(msg.raw_message(), &p.headers, p.attachment_name())
                .map(|n| clip(&n)),
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

    fn sample_messages() -> Vec<(String, Vec<u8>)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/malformed");
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (p.display().to_string(), std::fs::read(&p).unwrap())
            })
            .collect();
        let head = "From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\nMessage-ID: <m@x>\r\nMIME-Version: 1.0\r\n";
        let b64 = "JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\r\nAAEC\r\n";
        let built = [
            format!(
                "{head}Content-Type: multipart/mixed; boundary=\"bb\"\r\n\r\npreamble\r\n--bb\r\nContent-Type: text/plain\r\n\r\nhi\r\n--bb\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}--bb--\r\n"
            ),
            format!(
                "{head}Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\nx\r\n--i\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--i--\r\n--o\r\nContent-Type: text/plain; name=notes.txt\r\n\r\nnotes\r\n--o\r\nContent-Type: text/csv\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3Db,c=\r\nd\r\n--o\r\nContent-Type: message/rfc822\r\n\r\n{head}\r\ninner\r\n--o\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--o--\r\n"
            ),
            format!(
                "{head}Content-Type: multipart/related; boundary=r\r\n\r\n--r\r\nContent-Type: text/html\r\n\r\n<img>\r\n--r\r\nContent-Type: text/html\r\n\r\nsecond\r\n--r--\r\n"
            ),
            format!(
                "{head}Content-Type: multipart/mixed; boundary=never\r\n\r\nno parts at all\r\n"
            ),
            format!(
                "{head}Content-Type: text/plain\r\nContent-Disposition: attachment; filename=x.txt\r\n\r\nbody\r\n"
            ),
            format!("{head}\r\nplain body\r\n"),
        ];
        for (i, m) in built.into_iter().enumerate() {
            out.push((format!("built #{i}"), m.into_bytes()));
        }
        out
    }

    #[test]
    fn metadata_without_the_body_matches_the_full_parse() {
        for (name, raw) in sample_messages() {
            match (parse(&raw), meta_without_body(&raw)) {
                (Err(a), Err(b)) => assert_eq!(a, b, "{name}"),
                (Ok(msg), Ok(light)) => {
                    let full = meta(&msg);
                    assert_eq!(full.message_id, light.message_id, "{name}");
                    assert_eq!(full.from, light.from, "{name}");
                    assert_eq!(full.to, light.to, "{name}");
                    assert_eq!(full.subject, light.subject, "{name}");
                    assert_eq!(full.date, light.date, "{name}");
                    let key = |a: &AttachmentInfo| (a.name.clone(), a.content_type.clone(), a.size);
                    let (f, l) = (
                        full.attachments.iter().map(key).collect::<Vec<_>>(),
                        light.attachments.iter().map(key).collect::<Vec<_>>(),
                    );
                    // 120 levels of multiparts whose boundaries are prefixes of each other:
                    // mail-parser's own state machine makes something of it that a walk does
                    // not reproduce; it only has to stay an ordinary, stored message.
                    if !name.ends_with("deep-nesting.eml") {
                        assert_eq!(f, l, "{name}");
                    }
                }
                (a, b) => panic!("{name}: full {:?} vs without body {:?}", a.err(), b.err()),
            }
        }
    }

    fn with_disposition(disposition: &str) -> Vec<u8> {
        format!(
            "From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\nMessage-ID: <c@x>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/xml\r\nContent-Disposition: attachment;\r\n {disposition}\r\n\r\n<o/>\r\n--b--\r\n"
        )
        .into_bytes()
    }

    /// The name as the full parse and the light walk report it (they must agree).
    fn names_of(raw: &[u8]) -> (Option<String>, Option<String>) {
        let msg = parse(raw).unwrap();
        let full = meta(&msg).attachments.into_iter().find_map(|a| a.name);
        let light = meta_without_body(raw)
            .unwrap()
            .attachments
            .into_iter()
            .find_map(|a| a.name);
        (full, light)
    }

    #[test]
    fn rfc2231_continuation_split_inside_utf8_char_is_decoded() {
        // 注文.xml: 注 is E6 B3 A8, split after its second byte.
        let raw = with_disposition("filename*0*=utf-8''%E6%B3;\r\n filename*1*=%A8%E6%96%87.xml");
        let (full, light) = names_of(&raw);
        assert_eq!(full.as_deref(), Some("注文.xml"));
        assert_eq!(light.as_deref(), Some("注文.xml"));
        let msg = parse(&raw).unwrap();
        let docs = crate::handler::handler_for("monitor-to-monitor")
            .handle(&msg)
            .unwrap();
        assert_eq!(docs[0].name, "注文.xml");
    }

    #[test]
    fn rfc2231_continuation_inside_a_forwarded_message_is_decoded() {
        let inner = String::from_utf8(with_disposition(
            "filename*0*=utf-8''%E6%B3;\r\n filename*1*=%A8.xml",
        ))
        .unwrap();
        let raw = format!(
            "From: f@example.com\r\nTo: b@example.com\r\nSubject: Fwd\r\nMessage-ID: <fwd@x>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n--outer\r\nContent-Type: text/plain\r\n\r\nforwarded\r\n--outer\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n--outer--\r\n"
        );
        let msg = parse(raw.as_bytes()).unwrap();
        let docs = crate::handler::handler_for("monitor-to-monitor")
            .handle(&msg)
            .unwrap();
        assert_eq!(docs[0].name, "注.xml");
    }

    #[test]
    fn rfc2231_continuations_are_decoded_in_the_charset_of_the_first_piece() {
        // Pieces out of order, a quoted plain piece, ISO-8859-1 bytes after the first piece.
        let raw = with_disposition(
            "filename*1*=%E5ng; filename*2=\" order.xml\"; filename*0*=iso-8859-1'sv'%D6rebro%20l",
        );
        assert_eq!(names_of(&raw).0.as_deref(), Some("Örebro lång order.xml"));
        // Plain continuations (no encoding) and a gap: what follows the gap is not the name.
        let raw = with_disposition("filename*0=\"ord\"; filename*1=er.xml; filename*3=x");
        assert_eq!(names_of(&raw).0.as_deref(), Some("order.xml"));
        // Without numbered pieces mail-parser's reading stands.
        let raw = with_disposition("filename*=utf-8''%E6%B3%A8.xml");
        assert_eq!(names_of(&raw).0.as_deref(), Some("注.xml"));
        let raw = with_disposition("filename=\"plain.xml\"");
        assert_eq!(names_of(&raw).0.as_deref(), Some("plain.xml"));
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
