//! Every quarantine reason intake gives, in English (what is stored with the message, and what
//! the API and the CLI show) and Swedish (what the admin UI shows in Swedish). Both languages
//! live here, beside the functions the handlers and the pipeline build the reasons with, so a new
//! reason cannot be added in one language only: [`swedish`] recognises each English form and
//! the tests check every one of them.
//!
//! Stored reasons stay English text (rows written by earlier versions included); the Swedish is
//! derived when a page is shown. A part that comes from elsewhere (an XML checker's finding, an
//! operating-system error) is kept as it is.

pub const EMPTY: &str = "the message is empty (0 bytes of content)";
const EMPTY_SV: &str = "meddelandet är tomt (0 byte innehåll)";

pub const NOT_EMAIL: &str = "the content has no recognisable e-mail header field (From, To, Subject, Date, Message-ID, Received…), so it is not an e-mail message";
const NOT_EMAIL_SV: &str = "innehållet har inget igenkännbart fält i e-posthuvudet (From, To, Subject, Date, Message-ID, Received…), så det är inte ett e-postmeddelande";

pub const PARSER_FAILED: &str = "the MIME parser failed on this message";
const PARSER_FAILED_SV: &str = "MIME-tolken misslyckades med det här meddelandet";

pub const NO_XML: &str = "a Monitor-to-Monitor message must carry an XML business document, and this one has none; ask the sender to send it from Monitor again, or check that the account's type is right";
const NO_XML_SV: &str = "ett Monitor-till-Monitor-meddelande måste innehålla ett XML-affärsdokument, och det här har inget; be avsändaren skicka det från Monitor igen, eller kontrollera att kontots typ är rätt";

pub const NO_INVOICE: &str = "a supplier-invoice message must carry a PDF or XML invoice, and this one has none; ask the supplier to attach the invoice, or register it by hand";
const NO_INVOICE_SV: &str = "ett meddelande med leverantörsfaktura måste innehålla en faktura som PDF eller XML, och det här har ingen; be leverantören bifoga fakturan, eller registrera den för hand";

/// An attachment named or typed as `kind` (`XML`, `PDF`) whose content is not.
pub fn not_really(name: &str, kind: &str) -> String {
    let article = if kind == "PDF" { "a " } else { "" };
    format!(
        "the attachment '{name}' is named or typed as {kind} but its content is not {article}{kind}; ask the sender to send the document again"
    )
}

/// An XML document the safety check refused (`why`: the check's finding).
pub fn unsafe_xml(name: &str, why: &str) -> String {
    format!(
        "the XML attachment '{name}' is not handed to the ERP: {why}. Ask the sender to export the document from Monitor again"
    )
}

/// A document that cannot be a file in the import folder (`why`: the system's error).
pub fn unwritable(kind: &str, name: &str, why: &str) -> String {
    format!(
        "the {kind} document '{name}' cannot be written to the import folder ({why}); the message is kept in quarantine. Save the document from the message by hand, or ask the sender to send it again with a shorter, plainer attachment name"
    )
}

/// The text between `start` and `end` when `s` is exactly `start…end`.
fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    s.strip_prefix(start)?.strip_suffix(end)
}

/// The Swedish form of a reason intake gave; `None` for text it did not give (then the English
/// is shown as it is).
pub fn swedish(reason: &str) -> Option<String> {
    for (en, sv) in [
        (EMPTY, EMPTY_SV),
        (NOT_EMAIL, NOT_EMAIL_SV),
        (PARSER_FAILED, PARSER_FAILED_SV),
        (NO_XML, NO_XML_SV),
        (NO_INVOICE, NO_INVOICE_SV),
    ] {
        if reason == en {
            return Some(sv.to_owned());
        }
    }
    for kind in ["XML", "PDF"] {
        let article = if kind == "PDF" { "a " } else { "" };
        if let Some(name) = between(
            reason,
            "the attachment '",
            &format!(
                "' is named or typed as {kind} but its content is not {article}{kind}; ask the sender to send the document again"
            ),
        ) {
            return Some(format!(
                "bilagan '{name}' har namn eller typ som {kind} men innehållet är inte {kind}; be avsändaren skicka dokumentet igen"
            ));
        }
    }
    if let Some(rest) = between(
        reason,
        "the XML attachment '",
        ". Ask the sender to export the document from Monitor again",
    ) && let Some((name, why)) = rest.split_once("' is not handed to the ERP: ")
    {
        return Some(format!(
            "XML-bilagan '{name}' lämnas inte till affärssystemet: {why}. Be avsändaren exportera dokumentet från Monitor igen"
        ));
    }
    if let Some(rest) = between(
        reason,
        "the ",
        "); the message is kept in quarantine. Save the document from the message by hand, or ask the sender to send it again with a shorter, plainer attachment name",
    ) && let Some((kind, rest)) = rest.split_once(" document '")
        && let Some((name, why)) = rest.split_once("' cannot be written to the import folder (")
    {
        return Some(format!(
            "{kind}-dokumentet '{name}' kan inte skrivas till importmappen ({why}); meddelandet ligger kvar i karantän. Spara dokumentet från meddelandet för hand, eller be avsändaren skicka det igen med ett kortare, enklare bilagenamn"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quarantine reasons stayed English in the Swedish UI: every reason intake gives has its
    /// Swedish form, names and findings carried over.
    #[test]
    fn every_quarantine_reason_has_a_swedish_form() {
        for fixed in [EMPTY, NOT_EMAIL, PARSER_FAILED, NO_XML, NO_INVOICE] {
            let sv = swedish(fixed).unwrap_or_else(|| panic!("no Swedish for {fixed}"));
            assert_ne!(sv, fixed);
        }
        let sv = swedish(&not_really("order 1.xml", "XML")).unwrap();
        assert!(
            sv.starts_with("bilagan 'order 1.xml' har namn eller typ som XML"),
            "{sv}"
        );
        let sv = swedish(&not_really("f.pdf", "PDF")).unwrap();
        assert!(sv.contains("'f.pdf'") && sv.contains("PDF"), "{sv}");
        let sv = swedish(&unsafe_xml("a.xml", "it declares a DOCTYPE")).unwrap();
        assert!(
            sv.starts_with(
                "XML-bilagan 'a.xml' lämnas inte till affärssystemet: it declares a DOCTYPE."
            ),
            "{sv}"
        );
        let sv = swedish(&unwritable("pdf", "x.pdf", "File name too long")).unwrap();
        assert!(
            sv.starts_with(
                "pdf-dokumentet 'x.pdf' kan inte skrivas till importmappen (File name too long)"
            ),
            "{sv}"
        );
        assert_eq!(swedish("something else"), None);
    }
}
