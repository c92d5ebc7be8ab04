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
    /// The attachment's own name, cleaned for the file system.
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
        let docs = documents(msg, 0)?;
        if !docs.iter().any(|d| d.kind == "xml") {
            return Err(Rejection(
                "a Monitor-to-Monitor message must carry an XML business document, and this one has none; ask the sender to send it from Monitor again, or check that the account's type is right".into(),
            ));
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
        let docs = documents(msg, 0)?;
        if docs.is_empty() {
            return Err(Rejection(
                "a supplier-invoice message must carry a PDF or XML invoice, and this one has none; ask the supplier to attach the invoice, or register it by hand".into(),
            ));
        }
        Ok(docs)
    }
}

/// Forwarded messages nest; deeper than this is not a business document but a loop.
const MAX_NESTING: usize = 4;

/// XML and PDF attachments, including those inside attached (forwarded) messages.
fn documents<'a>(msg: &'a Message<'a>, depth: usize) -> Result<Vec<Document<'a>>, Rejection> {
    let mut out = Vec::new();
    for part in msg.attachments() {
        if let Some(inner) = part.message() {
            if depth < MAX_NESTING {
                out.extend(documents(inner, depth + 1)?);
            }
            continue;
        }
        let Some(kind) = kind_of(part) else { continue };
        let bytes = part.contents();
        if kind == "xml" && !looks_like_xml(bytes) {
            return Err(Rejection(format!(
                "the attachment '{}' is named or typed as XML but its content is not XML; ask the sender to send the document again",
                part.attachment_name().unwrap_or("(unnamed)")
            )));
        }
        if kind == "pdf" && !bytes.starts_with(b"%PDF-") {
            return Err(Rejection(format!(
                "the attachment '{}' is named or typed as PDF but its content is not a PDF; ask the sender to send the document again",
                part.attachment_name().unwrap_or("(unnamed)")
            )));
        }
        let ext = kind;
        let name = part
            .attachment_name()
            .map(clean_name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("document.{ext}"));
        out.push(Document {
            kind,
            name,
            content_type: part.content_type().map(|c| {
                format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")).to_ascii_lowercase()
            }),
            bytes: Cow::Borrowed(bytes),
        });
    }
    Ok(out)
}

fn kind_of(part: &MessagePart<'_>) -> Option<&'static str> {
    let name = part.attachment_name().unwrap_or("").to_ascii_lowercase();
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

/// A file-system-safe version of an attachment name: no path, no control or reserved
/// characters (Windows shares included, since the ERP often reads the folder over SMB).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_name_strips_paths_and_reserved_characters() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\x\\order?.xml"), "order_.xml");
        assert_eq!(clean_name(".hidden.pdf"), "hidden.pdf");
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
