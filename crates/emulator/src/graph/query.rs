//! OData query options on messages: `$select`, `$filter`, `$orderby`, `$top`, and the opaque
//! `$skiptoken` of next links.
//!
//! Only what mail clients use is understood: `$filter` on `receivedDateTime` (eq/ge/gt/le/lt),
//! `isRead` and `hasAttachments` (eq/ne), `internetMessageId` (eq/ne with a quoted string),
//! joined by `and`; `$orderby` on `receivedDateTime`.
//! Anything else gets Graph's 400, so a client relying on more fails here as it would fail
//! against Graph for a typo, rather than silently getting unfiltered results.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::reply::ApiError;
use super::store::StoredMessage;
use kurir_graph::codes;

/// Property names of `microsoft.graph.message` a `$select` may name.
pub const MESSAGE_PROPERTIES: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "uniqueBody",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
    "internetMessageHeaders",
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cmp {
    Eq,
    Ne,
    Ge,
    Gt,
    Le,
    Lt,
}

#[derive(Clone, Debug)]
enum Pred {
    Received(Cmp, OffsetDateTime),
    IsRead(Cmp, bool),
    HasAttachments(Cmp, bool),
    InternetMessageId(Cmp, String),
}

/// Parsed list options.
#[derive(Clone, Debug)]
pub struct ListOptions {
    pub select: Option<Vec<String>>,
    pub top: usize,
    filter: Vec<Pred>,
    pub descending: bool,
}

fn filter_error(detail: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        codes::INVALID_URL_QUERY_FILTER,
        format!("The query filter contains one or more invalid nodes. ({detail})"),
    )
}

/// Parses `$select` into property names, refusing unknown ones as Graph does.
pub fn parse_select(raw: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(raw) = raw.filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(p) = MESSAGE_PROPERTIES
            .iter()
            .find(|p| p.eq_ignore_ascii_case(name))
        else {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "RequestBroker--ParseUri",
                format!(
                    "Could not find a property named '{name}' on type 'microsoft.graph.message'."
                ),
            ));
        };
        out.push(p.to_string());
    }
    Ok(Some(out))
}

/// Keeps `@odata.*` annotations, `id` and the selected properties.
pub fn apply_select(mut v: Value, select: &Option<Vec<String>>) -> Value {
    if let (Some(sel), Value::Object(map)) = (select, &mut v) {
        map.retain(|k, _| k.starts_with('@') || k == "id" || sel.iter().any(|s| s == k));
    }
    v
}

fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    // Form decoding turns an unescaped '+' of an offset into a space; undo that.
    let s = s.trim().trim_matches('\'').replace(' ', "+");
    if let Ok(t) = OffsetDateTime::parse(&s, &Rfc3339) {
        return Some(t);
    }
    let date = time::Date::parse(
        &s,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()?;
    Some(date.midnight().assume_utc())
}

fn parse_filter(raw: &str) -> Result<Vec<Pred>, ApiError> {
    let mut out = Vec::new();
    let lower = raw.to_ascii_lowercase();
    let mut clauses = Vec::new();
    let mut start = 0;
    while let Some(pos) = lower[start..].find(" and ") {
        clauses.push(&raw[start..start + pos]);
        start += pos + 5;
    }
    clauses.push(&raw[start..]);
    for clause in clauses {
        if let Some(p) = internet_message_id(clause)? {
            out.push(p);
            continue;
        }
        let parts: Vec<&str> = clause.split_whitespace().collect();
        let [field, op, value] = parts.as_slice() else {
            return Err(filter_error(clause.trim()));
        };
        let cmp = match op.to_ascii_lowercase().as_str() {
            "eq" => Cmp::Eq,
            "ne" => Cmp::Ne,
            "ge" => Cmp::Ge,
            "gt" => Cmp::Gt,
            "le" => Cmp::Le,
            "lt" => Cmp::Lt,
            _ => return Err(filter_error(op)),
        };
        let boolean = |v: &str| match v.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(filter_error(v)),
        };
        let pred = match field.to_ascii_lowercase().as_str() {
            "receiveddatetime" => Pred::Received(
                cmp,
                parse_datetime(value).ok_or_else(|| filter_error(value))?,
            ),
            "isread" if matches!(cmp, Cmp::Eq | Cmp::Ne) => Pred::IsRead(cmp, boolean(value)?),
            "hasattachments" if matches!(cmp, Cmp::Eq | Cmp::Ne) => {
                Pred::HasAttachments(cmp, boolean(value)?)
            }
            _ => return Err(filter_error(field)),
        };
        out.push(pred);
    }
    Ok(out)
}

/// `internetMessageId eq '<…>'` (or `ne`): the value is an OData string literal, quoted
/// with single quotes, a single quote inside doubled
/// (<https://learn.microsoft.com/en-us/graph/query-parameters#escaping-single-quotes>);
/// an unquoted value or a lone quote inside is refused, as Graph does.
fn internet_message_id(clause: &str) -> Result<Option<Pred>, ApiError> {
    let c = clause.trim();
    let Some((field, rest)) = c.split_once(char::is_whitespace) else {
        return Ok(None);
    };
    if !field.eq_ignore_ascii_case("internetMessageId") {
        return Ok(None);
    }
    let rest = rest.trim_start();
    let (op, value) = rest
        .split_once(char::is_whitespace)
        .ok_or_else(|| filter_error(c))?;
    let cmp = match op.to_ascii_lowercase().as_str() {
        "eq" => Cmp::Eq,
        "ne" => Cmp::Ne,
        _ => return Err(filter_error(op)),
    };
    let v = value.trim();
    let inner = v
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .filter(|_| v.len() >= 2)
        .ok_or_else(|| filter_error(v))?;
    // Every quote inside must be doubled.
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '\'' && chars.next() != Some('\'') {
            return Err(filter_error(v));
        }
        out.push(ch);
    }
    Ok(Some(Pred::InternetMessageId(cmp, out)))
}

fn compare<T: PartialOrd>(cmp: Cmp, a: T, b: T) -> bool {
    match cmp {
        Cmp::Eq => a == b,
        Cmp::Ne => a != b,
        Cmp::Ge => a >= b,
        Cmp::Gt => a > b,
        Cmp::Le => a <= b,
        Cmp::Lt => a < b,
    }
}

impl ListOptions {
    /// Parses the list options of a request. `default_top` is Graph's page size for the
    /// collection (10 for messages).
    pub fn parse(req: &super::Req, default_top: usize) -> Result<ListOptions, ApiError> {
        let select = parse_select(req.q("select"))?;
        let top = match req.q("top") {
            None => default_top,
            Some(t) => match t.trim().parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid $top value '{t}': it must be a number from 1 to 1000."
                    )));
                }
            },
        };
        let filter = match req.q("filter") {
            Some(f) if !f.trim().is_empty() => parse_filter(f)?,
            _ => Vec::new(),
        };
        let descending = match req.q("orderby").map(|o| o.trim().to_ascii_lowercase()) {
            None => true,
            Some(o) => {
                let mut it = o.split_whitespace();
                match (it.next(), it.next(), it.next()) {
                    (Some("receiveddatetime"), None | Some("asc"), None) => false,
                    (Some("receiveddatetime"), Some("desc"), None) => true,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "The $orderby '{o}' is not supported here; use receivedDateTime asc or desc."
                        )));
                    }
                }
            }
        };
        Ok(ListOptions {
            select,
            top,
            filter,
            descending,
        })
    }

    pub fn matches(&self, m: &StoredMessage) -> bool {
        self.filter.iter().all(|p| match p {
            Pred::Received(c, t) => compare(*c, m.received, *t),
            Pred::IsRead(c, b) => compare(*c, m.is_read, *b),
            Pred::InternetMessageId(c, id) => compare(
                *c,
                m.parsed.internet_message_id.as_deref() == Some(id.as_str()),
                true,
            ),
            Pred::HasAttachments(c, b) => compare(
                *c,
                m.parsed.has_attachments || !m.attachments.is_empty(),
                *b,
            ),
        })
    }
}

/// An opaque `$skiptoken` holding an offset.
pub fn skiptoken(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("kurir-skip:{offset}"))
}

pub fn parse_skiptoken(t: &str) -> Result<usize, ApiError> {
    URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("kurir-skip:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| {
            ApiError::bad_request("The $skiptoken is not valid; follow @odata.nextLink as given.")
        })
}

/// The query string of a next link: the request's options without `$skiptoken`, plus a new one.
pub fn next_query(req: &super::Req, token_name: &str, token: &str) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &req.query {
        if k != "skiptoken" && k != "deltatoken" {
            q.append_pair(&format!("${k}"), v);
        }
    }
    q.append_pair(&format!("${token_name}"), token);
    q.finish()
}
