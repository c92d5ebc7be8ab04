//! The gate in front of the ERP's XML parser: every XML document Kurir puts into the import queue
//! is well-formed, has no DOCTYPE (so no entity declarations and no external DTD — billion laughs
//! and XXE never reach the ERP) and stays within bounds of size, node count and depth.
//!
//! A Monitor-to-Monitor document (and a Svefaktura/PEPPOL invoice) needs neither a DOCTYPE nor
//! entities, so refusing them costs nothing legitimate. The check uses roxmltree with DTDs off:
//! it refuses any `<!DOCTYPE` before looking at it, and checks well-formedness (matching tags,
//! attribute syntax, names, characters, references to predefined entities only).

/// Larger than any business document; the message's own size limit is usually lower.
pub const MAX_BYTES: usize = 64 * 1024 * 1024;
/// Elements, attributes' owners, text and comments together. An order with a thousand lines
/// has tens of thousands; the tree roxmltree builds costs tens of bytes per node.
pub const MAX_NODES: u32 = 1_000_000;
/// Nesting deeper than any schema Monitor or PEPPOL uses; deeper is an attack on recursive
/// parsers downstream.
pub const MAX_DEPTH: usize = 256;

/// Ok when the document may be handed to the ERP; otherwise why not (for the quarantine reason).
pub fn check(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() > MAX_BYTES {
        return Err(format!(
            "it is {} bytes, more than the {MAX_BYTES} bytes Kurir accepts for an XML document",
            bytes.len()
        ));
    }
    let text = decode(bytes)?;
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        entity_resolver: None,
    };
    let doc = roxmltree::Document::parse_with_options(&text, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => "it has a DOCTYPE (a DTD, entity declarations or a reference to an external DTD); a business document needs none, and such declarations are how billion-laughs and XXE attacks reach an XML parser".to_owned(),
        roxmltree::Error::NodesLimitReached => {
            format!("it has more than {MAX_NODES} nodes")
        }
        other => format!("it is not well-formed XML ({other})"),
    })?;
    // Nodes come in document order, a parent before its children: one pass gives each
    // element's depth from its parent's.
    let mut depths: Vec<u16> = Vec::new();
    for node in doc.root().descendants() {
        let depth = match node.parent() {
            Some(p) => {
                depths.get(p.id().get_usize()).copied().unwrap_or(0) + u16::from(node.is_element())
            }
            None => 0,
        };
        if usize::from(depth) > MAX_DEPTH {
            return Err(format!("its elements nest deeper than {MAX_DEPTH} levels"));
        }
        let i = node.id().get_usize();
        if depths.len() <= i {
            depths.resize(i + 1, 0);
        }
        depths[i] = depth;
    }
    Ok(())
}

/// The document as text for the check. UTF-8 (with or without a BOM) as it is; UTF-16 by its
/// BOM; any other (ASCII-compatible) encoding such as ISO-8859-1 or windows-1252 byte for byte
/// as Latin-1: the markup is ASCII in all of them and no multi-byte sequence of those encodings
/// contains `<`, `>`, `&` or a quote, so well-formedness is judged the same.
fn decode(bytes: &[u8]) -> Result<std::borrow::Cow<'_, str>, String> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return std::str::from_utf8(rest)
            .map(std::borrow::Cow::Borrowed)
            .map_err(|e| format!("it starts with a UTF-8 byte order mark but is not UTF-8 ({e})"));
    }
    let utf16 = |be: bool| {
        let units: Vec<u16> = bytes[2..]
            .chunks(2)
            .map(|c| {
                let pair = [c[0], *c.get(1).unwrap_or(&0)];
                if be {
                    u16::from_be_bytes(pair)
                } else {
                    u16::from_le_bytes(pair)
                }
            })
            .collect();
        String::from_utf16(&units)
            .map(std::borrow::Cow::Owned)
            .map_err(|_| "it starts with a UTF-16 byte order mark but is not UTF-16".to_owned())
    };
    if bytes.starts_with(b"\xFF\xFE") {
        return utf16(false);
    }
    if bytes.starts_with(b"\xFE\xFF") {
        return utf16(true);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(std::borrow::Cow::Borrowed(s)),
        Err(_) => Ok(std::borrow::Cow::Owned(
            bytes.iter().map(|b| char::from(*b)).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Order xmlns="urn:monitor:m2m"><Header><OrderNo>4711</OrderNo><Buyer>Kund &amp; Co</Buyer></Header>
<Rows><Row No="1"><Part>A-1</Part><Qty>2</Qty></Row></Rows></Order>"#;

    #[test]
    fn a_plain_order_passes() {
        check(ORDER.as_bytes()).unwrap();
        check(format!("\u{FEFF}{ORDER}").as_bytes()).unwrap();
        // ISO-8859-1 with 8-bit characters (Ö as 0xD6).
        let latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Order><Buyer>\xD6rebro AB</Buyer></Order>";
        check(latin1).unwrap();
        // UTF-16LE with a BOM.
        let mut utf16 = vec![0xFF, 0xFE];
        for u in "<?xml version=\"1.0\" encoding=\"UTF-16\"?><Order>Ö</Order>".encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        check(&utf16).unwrap();
    }

    #[test]
    fn billion_laughs_is_refused() {
        let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Order>&lol3;</Order>"#;
        assert!(check(bomb.as_bytes()).unwrap_err().contains("DOCTYPE"));
    }

    #[test]
    fn external_dtd_and_even_an_empty_doctype_are_refused() {
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE Order [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Order>&xxe;</Order>"#;
        assert!(check(xxe.as_bytes()).unwrap_err().contains("DOCTYPE"));
        let external = r#"<?xml version="1.0"?><!DOCTYPE Order SYSTEM "http://attacker.example/o.dtd"><Order/>"#;
        assert!(check(external.as_bytes()).unwrap_err().contains("DOCTYPE"));
        let empty = r#"<!DOCTYPE Order><Order/>"#;
        assert!(check(empty.as_bytes()).unwrap_err().contains("DOCTYPE"));
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in [
            "<Order><Row></Order>",
            "<Order>",
            "<Order a=\"1\" a=\"2\"/>",
            "<Order>&undefined;</Order>",
            "<Order/><Second/>",
            "<Order>\u{1}</Order>",
            "",
        ] {
            let e = check(bad.as_bytes()).unwrap_err();
            assert!(e.contains("not well-formed"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(check(deep.as_bytes()).unwrap_err().contains("nest"));
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        check(ok.as_bytes()).unwrap();
        let huge = vec![b' '; MAX_BYTES + 1];
        assert!(check(&huge).unwrap_err().contains("bytes"));
    }
}
