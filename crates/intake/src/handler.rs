//! Routing by account type: what happens to a message once it is parsed.
//!
//! A [`Handler`] looks at a parsed message and returns the documents the ERP should import, or a
//! reason to quarantine it. Handlers never touch the network or the store; the pipeline writes
//! their documents into the import queue in the same transaction as the message. Adding an
//! account type means adding a handler here and a line in [`handler_for`]; transports are not
//! involved.

use std::borrow::Cow;
use std::sync::Arc;

use mail_parser::{Message, MessagePart, MimeHeaders};

/// A document for the ERP's import queue.
#[derive(Debug, Clone)]
pub struct Document<'a> {
    /// `xml` or `pdf` (what the ERP's import looks at).
    pub kind: &'static str,
    /// The attachment's own name made safe for the import folder ([`document_file_name`]):
    /// one plain file name of at most [`MAX_DOCUMENT_NAME_BYTES`] bytes ending in `.{kind}`.
    pub name: String,
    pub content_type: Option<String>,
    pub bytes: Cow<'a, [u8]>,
}

/// Why a message cannot be handled (it is quarantined with this text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub String);

pub trait Handler: Send + Sync {
    /// The account type this handles, recorded with each message.
    fn name(&self) -> &str;
    fn handle<'a>(&self, msg: &'a Message<'a>) -> Result<Vec<Document<'a>>, Rejection>;
    /// Whether `handle` looks at the body. When not, the pipeline skips the full MIME parse
    /// (decoding every attachment) and takes the metadata from headers and the part structure.
    fn needs_body(&self) -> bool {
        true
    }
}

/// The handler for an account's `type` setting; unknown (free-text) types keep messages like
/// `general`.
pub fn handler_for(account_type: &str) -> Arc<dyn Handler> {
    match account_type {
        "monitor-to-monitor" => Arc::new(MonitorToMonitor),
        "supplier-invoices" => Arc::new(SupplierInvoices),
        other => Arc::new(General(other.to_owned())),
    }
}

/// `general` (and free-text types): the message itself is what is kept; nothing to extract.
pub struct General(pub String);

impl Handler for General {
    fn name(&self) -> &str {
        if self.0.is_empty() {
            "general"
        } else {
            &self.0
        }
    }
    fn handle<'a>(&self, _msg: &'a Message<'a>) -> Result<Vec<Document<'a>>, Rejection> {
        Ok(Vec::new())
    }
    fn needs_body(&self) -> bool {
        false
    }
}

/// Monitor-to-Monitor: business documents (orders, order confirmations, delivery notes, invoices)
/// sent by another Monitor ERP as XML, often with a PDF of the same document beside it. The XML
/// is what the ERP imports, so a message without one cannot be handled.
pub struct MonitorToMonitor;

impl Handler for MonitorToMonitor {
    fn name(&self) -> &str {
        "monitor-to-monitor"
    }
    fn handle<'a>(&self, msg: &'a Message<'a>) -> Result<Vec<Document<'a>>, Rejection> {
        let docs = documents(msg, msg.raw_message(), 0)?;
        if !docs.iter().any(|d| d.kind == "xml") {
            return Err(Rejection(crate::reasons::NO_XML.into()));
        }
        Ok(docs)
    }
}

/// Supplier invoices: PDF and/or XML (e.g. Svefaktura/PEPPOL BIS) invoices for the ERP's
/// invoice registration.
pub struct SupplierInvoices;

impl Handler for SupplierInvoices {
    fn name(&self) -> &str {
        "supplier-invoices"
    }
    fn handle<'a>(&self, msg: &'a Message<'a>) -> Result<Vec<Document<'a>>, Rejection> {
        let docs = documents(msg, msg.raw_message(), 0)?;
        if docs.is_empty() {
            return Err(Rejection(crate::reasons::NO_INVOICE.into()));
        }
        Ok(docs)
    }
}

/// Forwarded messages nest; deeper than this is not a business document but a loop.
const MAX_NESTING: usize = 4;

/// XML and PDF attachments, including those inside attached (forwarded) messages. `raw` is the
/// whole message's bytes: mail-parser's header offsets of nested parts point into it.
fn documents<'a>(
    msg: &'a Message<'a>,
    raw: &[u8],
    depth: usize,
) -> Result<Vec<Document<'a>>, Rejection> {
    let mut out = Vec::new();
    for part in msg.attachments() {
        if let Some(inner) = part.message() {
            if depth < MAX_NESTING {
                out.extend(documents(inner, raw, depth + 1)?);
            }
            continue;
        }
        let sender_name = crate::parse::attachment_name(raw, &part.headers, part.attachment_name());
        let shown = sender_name
            .as_deref()
            .map(|n| visible_name(n).chars().take(200).collect::<String>())
            .unwrap_or_else(|| "(unnamed)".to_owned());
        let Some(kind) = kind_of(part, sender_name.as_deref()) else {
            continue;
        };
        let bytes = part.contents();
        if kind == "xml" && !looks_like_xml(bytes) {
            return Err(Rejection(crate::reasons::not_really(&shown, "XML")));
        }
        if kind == "xml" {
            // The ERP's XML parser is the target of entity bombs and XXE; Kurir is the gate.
            if let Err(why) = crate::xml::check(bytes) {
                return Err(Rejection(crate::reasons::unsafe_xml(&shown, &why)));
            }
        }
        if kind == "pdf" && !bytes.starts_with(b"%PDF-") {
            return Err(Rejection(crate::reasons::not_really(&shown, "PDF")));
        }
        out.push(Document {
            kind,
            name: document_file_name(sender_name.as_deref(), kind),
            content_type: part.content_type().map(|c| {
                format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")).to_ascii_lowercase()
            }),
            bytes: Cow::Borrowed(bytes),
        });
    }
    Ok(out)
}

/// `xml` or `pdf` by the attachment's name (as a file system would read it: controls and
/// invisible characters out, trailing dots and spaces dropped) or its content type.
fn kind_of(part: &MessagePart<'_>, name: Option<&str>) -> Option<&'static str> {
    let name = visible_name(name.unwrap_or(""))
        .trim_end_matches(['.', ' '])
        .to_ascii_lowercase();
    let (ctype, sub) = part
        .content_type()
        .map(|c| {
            (
                c.ctype().to_ascii_lowercase(),
                c.subtype().unwrap_or("").to_ascii_lowercase(),
            )
        })
        .unwrap_or_default();
    if name.ends_with(".xml") || sub == "xml" || sub.ends_with("+xml") {
        Some("xml")
    } else if name.ends_with(".pdf") || (ctype == "application" && sub == "pdf") {
        Some("pdf")
    } else {
        None
    }
}

fn looks_like_xml(bytes: &[u8]) -> bool {
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    b.iter()
        .find(|c| !c.is_ascii_whitespace())
        .is_some_and(|c| *c == b'<')
}

/// A file-system-safe version of a name: no path, no control or reserved characters (Windows
/// shares included, since the ERP often reads the folder over SMB). Used for account folders;
/// import documents are named by [`document_file_name`].
pub fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').to_owned();
    trimmed.chars().take(120).collect()
}

/// The import folder's name for the `index`th (from 0) document of the message whose content
/// hash is `hash`: unique per message and document, also where the file system ignores case, so
/// documents never overwrite each other whatever their own names; the same on a retried batch.
pub fn import_file_name(hash: &str, index: usize, name: &str) -> String {
    format!("{}-{:02}-{name}", &hash[..16], index + 1)
}

/// The longest document name, in bytes, extension included. The import file is
/// `{hash16}-{NN}-{name}`, so its whole name stays near 140 bytes: well under the 255 bytes
/// (ext4, XFS) and 255 UTF-16 units (NTFS, SMB) a file name may have, and short enough that the
/// ERP's path to it on Windows stays within MAX_PATH.
pub const MAX_DOCUMENT_NAME_BYTES: usize = 120;

/// Direction overrides, embeddings, isolates and marks (they make `order\u{202E}lmx.exe` show as
/// `orderexe.xml`), and zero-width characters: removed from names, never shown.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}' | '\u{FEFF}'
    )
}

/// A name with invisible characters removed and control characters (NUL included) and line
/// separators replaced by `_`: what the name is before anything else is decided about it.
fn visible_name(name: &str) -> String {
    name.chars()
        .filter(|c| !is_invisible(*c))
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Device names Windows reserves in every folder, with any extension (`CON.xml` is the console).
fn is_windows_reserved(stem: &str) -> bool {
    let first = stem.split('.').next().unwrap_or("").trim_end_matches(' ');
    let upper = first.to_uppercase();
    matches!(
        upper.as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
    ) || ((upper.starts_with("COM") || upper.starts_with("LPT"))
        && upper.chars().count() == 4
        && upper
            .chars()
            .nth(3)
            .is_some_and(|d| d.is_ascii_digit() || matches!(d, '¹' | '²' | '³')))
}

/// The file name an import document gets from the sender's attachment name, for a document of
/// `kind` (`xml`/`pdf`). Everything a sender can put in a name is defused, in this order:
/// invisible and control characters first (so `invoice.pdf\0.exe` cannot hide a second
/// extension), then any path (`../../x`, `C:\x`, `/etc/x` keep only their last part), the
/// characters Windows refuses (`<>:"|?*`), leading dots (hidden files, `..`) and trailing dots
/// and spaces (Windows drops them, so the ERP would see another name). The extension is always
/// the document's kind: a sender's `.xml`/`.pdf` is kept (lower-cased), any other (or none) gets
/// `.{kind}` added after it. Windows device names (`CON`, `NUL`, `COM1`, … also with an
/// extension) get a `_` in front. The result is at most [`MAX_DOCUMENT_NAME_BYTES`] bytes, cut on
/// a character boundary before the extension. Names that differ only in case stay apart in the
/// import folder because the pipeline puts the message's hash and the document's index in front.
pub fn document_file_name(sender_name: Option<&str>, kind: &str) -> String {
    let visible = visible_name(sender_name.unwrap_or(""));
    let base = visible.rsplit(['/', '\\']).next().unwrap_or("");
    let replaced: String = base
        .chars()
        .map(|c| {
            if matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = replaced.trim_matches(|c: char| c == '.' || c.is_whitespace());
    let stem = match trimmed.rsplit_once('.') {
        Some((stem, ext)) if ext.eq_ignore_ascii_case(kind) => stem,
        _ => trimmed,
    };
    let stem = stem.trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    let mut stem = if stem.is_empty() {
        "document".to_owned()
    } else {
        stem.to_owned()
    };
    if is_windows_reserved(&stem) {
        stem.insert(0, '_');
    }
    let budget = MAX_DOCUMENT_NAME_BYTES - 1 - kind.len();
    if stem.len() > budget {
        let mut end = budget;
        while !stem.is_char_boundary(end) {
            end -= 1;
        }
        stem.truncate(end);
        let kept = stem
            .trim_end_matches(|c: char| c == '.' || c.is_whitespace())
            .len();
        stem.truncate(kept);
        if stem.is_empty() {
            stem.push_str("document");
        }
    }
    format!("{stem}.{kind}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_name_strips_paths_and_reserved_characters() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\x\\order?.xml"), "order_.xml");
        assert_eq!(clean_name(".hidden.pdf"), "hidden.pdf");
    }

    use std::path::Path;

    /// Names senders (and attackers) put on attachments.
    fn hostile_names() -> Vec<String> {
        let mut names: Vec<String> = [
            "..",
            ".",
            "...",
            "../../etc/passwd",
            "..\\..\\Windows\\win.ini",
            "/etc/passwd",
            "/",
            "C:\\Users\\Public\\order.xml",
            "C:order.xml",
            "\\\\server\\share\\order.pdf",
            "order.xml:stream",
            "a<b>c:d\"e|f?g*h.xml",
            "invoice.pdf\0.exe",
            "invoice.pdf\u{1}\u{7f}.exe",
            "order.xml\r\nX-Injected: 1",
            "order\u{202E}lmx.exe",
            "\u{2066}invoice\u{2069}\u{200E}\u{200F}.pdf",
            "order.xml. . .",
            "order.pdf   ",
            "order. .xml",
            "CON",
            "con.xml",
            "NUL.tar.pdf",
            "COM1.pdf",
            "lpt9.xml",
            "aux .xml",
            "COM\u{b9}.pdf",
            "Order.xml",
            "ORDER.XML",
            "order",
            "order.exe",
            "order.xml.exe",
            "order.PDF",
            "",
            " ",
            "\u{0}",
            "\u{feff}",
            ".hidden.xml",
            "\u{3000}全角スペース\u{3000}.xml",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        names.push("注".repeat(120) + ".xml");
        names.push("注".repeat(120));
        names.push("😀".repeat(120) + ".pdf");
        names.push("a".repeat(300) + ".xml");
        names.push("é".repeat(200) + "." + &"x".repeat(100));
        names.push("a".repeat(116) + "." + &"注".repeat(3) + ".pdf");
        names
    }

    fn assert_safe(name: &str, kind: &str, from: &str) {
        assert!(
            name.len() <= MAX_DOCUMENT_NAME_BYTES,
            "{from:?} -> {name:?}: {} bytes",
            name.len()
        );
        assert!(name.ends_with(&format!(".{kind}")), "{from:?} -> {name:?}");
        assert!(!name.starts_with('.'), "{from:?} -> {name:?}");
        let stem = &name[..name.len() - kind.len() - 1];
        assert!(!stem.is_empty(), "{from:?} -> {name:?}");
        assert!(
            !stem.ends_with(['.', ' ']) && !stem.starts_with(' '),
            "{from:?} -> {name:?}"
        );
        for c in name.chars() {
            assert!(
                !c.is_control() && !is_invisible(c) && !"/\\<>:\"|?*".contains(c),
                "{from:?} -> {name:?} has {c:?}"
            );
        }
        assert!(!is_windows_reserved(name), "{from:?} -> {name:?}");
    }

    #[test]
    fn hostile_names_become_safe_file_names_of_the_documents_kind() {
        let dir = tempfile::tempdir().unwrap();
        let hash = "0123456789abcdef0123456789abcdef";
        let mut written = Vec::new();
        for (i, raw) in hostile_names().iter().enumerate() {
            for kind in ["xml", "pdf"] {
                let name = document_file_name(Some(raw), kind);
                assert_safe(&name, kind, raw);
                // Idempotent: a safe name stays as it is.
                assert_eq!(document_file_name(Some(&name), kind), name);
                // The whole import name is a file the file system takes, inside the folder.
                let index = written.len();
                let file = import_file_name(hash, index, &name);
                assert!(file.len() < 160, "{file}");
                let path = dir.path().join(&file);
                assert_eq!(path.parent(), Some(dir.path()), "{raw:?}");
                std::fs::write(&path, format!("{i}{kind}")).unwrap();
                written.push(file);
            }
        }
        // Nothing overwrote anything, not even where case is ignored (Windows, macOS).
        let listed = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(listed, written.len());
        let folded: std::collections::HashSet<String> =
            written.iter().map(|f| f.to_lowercase()).collect();
        assert_eq!(folded.len(), written.len());
        assert_eq!(document_file_name(None, "xml"), "document.xml");
    }

    #[test]
    fn cjk_name_of_120_chars_is_cut_in_bytes_keeping_the_extension() {
        let raw = "注".repeat(120) + ".xml";
        let name = document_file_name(Some(&raw), "xml");
        // 3 bytes per character: 38 characters fit before ".xml" in 120 bytes.
        assert_eq!(name, "注".repeat(38) + ".xml");
        let emoji = document_file_name(Some(&("😀".repeat(120) + ".pdf")), "pdf");
        assert_eq!(emoji, "😀".repeat(29) + ".pdf");
    }

    #[test]
    fn nul_before_second_extension_never_lands_as_exe() {
        assert_eq!(
            document_file_name(Some("invoice.pdf\0.exe"), "pdf"),
            "invoice.pdf_.exe.pdf"
        );
        assert_eq!(
            document_file_name(Some("order.xml\0.exe"), "xml"),
            "order.xml_.exe.xml"
        );
    }

    #[test]
    fn trailing_dots_and_spaces_are_removed() {
        assert_eq!(
            document_file_name(Some("order.xml. . ."), "xml"),
            "order.xml"
        );
        assert_eq!(document_file_name(Some("order.pdf   "), "pdf"), "order.pdf");
        assert_eq!(document_file_name(Some("order . .xml"), "xml"), "order.xml");
        assert_eq!(document_file_name(Some("order..."), "pdf"), "order.pdf");
    }

    #[test]
    fn windows_reserved_names_are_neutralised() {
        assert_eq!(document_file_name(Some("CON"), "xml"), "_CON.xml");
        assert_eq!(document_file_name(Some("con.xml"), "xml"), "_con.xml");
        assert_eq!(
            document_file_name(Some("NUL.tar.pdf"), "pdf"),
            "_NUL.tar.pdf"
        );
        assert_eq!(document_file_name(Some("lpt9.xml"), "xml"), "_lpt9.xml");
        assert_eq!(document_file_name(Some("COM10.xml"), "xml"), "COM10.xml");
        assert_eq!(
            document_file_name(Some("console.xml"), "xml"),
            "console.xml"
        );
    }

    #[test]
    fn paths_and_bidi_overrides_are_removed() {
        assert_eq!(
            document_file_name(Some("../../etc/passwd"), "xml"),
            "passwd.xml"
        );
        assert_eq!(
            document_file_name(Some("C:\\x\\order?.xml"), "xml"),
            "order_.xml"
        );
        assert_eq!(
            document_file_name(Some("C:order.xml"), "xml"),
            "C_order.xml"
        );
        assert_eq!(document_file_name(Some(".."), "pdf"), "document.pdf");
        // Shown as "orderexe.xml" with the override; it is an .exe name turned into XML.
        assert_eq!(
            document_file_name(Some("order\u{202E}lmx.exe"), "xml"),
            "orderlmx.exe.xml"
        );
    }

    #[test]
    fn the_extension_is_always_the_documents_kind() {
        assert_eq!(document_file_name(Some("order"), "xml"), "order.xml");
        assert_eq!(
            document_file_name(Some("order.txt"), "xml"),
            "order.txt.xml"
        );
        assert_eq!(document_file_name(Some("ORDER.XML"), "xml"), "ORDER.xml");
        assert_eq!(document_file_name(Some("scan.xml"), "pdf"), "scan.xml.pdf");
    }

    fn message(parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
        use base64::Engine;
        let mut m = String::from(
            "From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\nMessage-ID: <h@x>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n",
        );
        for (disposition, ctype, bytes) in parts {
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            m.push_str(&format!(
                "--b\r\nContent-Type: {ctype}\r\nContent-Disposition: attachment; {disposition}\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n"
            ));
        }
        m.push_str("--b--\r\n");
        m.into_bytes()
    }

    const ORDER: &[u8] = b"<?xml version=\"1.0\"?><Order><No>1</No></Order>";

    #[test]
    fn hostile_names_in_real_messages_give_safe_documents() {
        let raw = message(&[
            (
                "filename*=utf-8''invoice.pdf%00.exe",
                "application/pdf",
                b"%PDF-1.4 x",
            ),
            ("filename=\"Order.xml\"", "application/xml", ORDER),
            ("filename=\"order.xml\"", "application/xml", ORDER),
            ("filename=\"../../etc/passwd\"", "text/xml", ORDER),
            (
                "filename=\"order.xml. . \"",
                "application/octet-stream",
                ORDER,
            ),
        ]);
        let msg = crate::parse::parse(&raw).unwrap();
        let docs = MonitorToMonitor.handle(&msg).unwrap();
        let names: Vec<&str> = docs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "invoice.pdf_.exe.pdf",
                "Order.xml",
                "order.xml",
                "passwd.xml",
                "order.xml"
            ]
        );
        // The trailing dots did not hide the .xml: typed octet-stream, it is still the XML.
        assert_eq!(docs[4].kind, "xml");
        let files: std::collections::HashSet<String> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| import_file_name("fedcba9876543210", i, &d.name).to_lowercase())
            .collect();
        assert_eq!(files.len(), docs.len(), "no two documents share a file");
        for f in &files {
            assert!(Path::new(f).file_name().is_some_and(|n| n == f.as_str()));
        }
    }

    #[test]
    fn dangerous_xml_is_rejected_with_the_reason_and_a_plain_order_passes() {
        let bomb = b"<?xml version=\"1.0\"?><!DOCTYPE o [<!ENTITY a \"aa\"><!ENTITY b \"&a;&a;&a;\">]><o>&b;</o>";
        let raw = message(&[("filename=order.xml", "application/xml", bomb)]);
        let msg = crate::parse::parse(&raw).unwrap();
        let why = MonitorToMonitor.handle(&msg).unwrap_err().0;
        assert!(
            why.contains("DOCTYPE") && why.contains("order.xml"),
            "{why}"
        );
        let raw = message(&[("filename=order.xml", "application/xml", b"<o><p></o>")]);
        let msg = crate::parse::parse(&raw).unwrap();
        let why = SupplierInvoices.handle(&msg).unwrap_err().0;
        assert!(why.contains("not well-formed"), "{why}");
        let raw = message(&[("filename=order.xml", "application/xml", ORDER)]);
        let msg = crate::parse::parse(&raw).unwrap();
        assert_eq!(MonitorToMonitor.handle(&msg).unwrap().len(), 1);
    }

    #[test]
    fn free_text_types_are_kept_like_general() {
        assert_eq!(handler_for("Reklamationer").name(), "Reklamationer");
        assert_eq!(
            handler_for("monitor-to-monitor").name(),
            "monitor-to-monitor"
        );
    }
}
