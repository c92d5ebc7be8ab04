//! OData query options on messages: `$select`, `$filter`, `$orderby`, `$top`, and the opaque
//! `$skiptoken` of next links.
//!
//! Only what mail clients use is understood: `$filter` on `receivedDateTime` and
//! `sentDateTime` (eq/ge/gt/le/lt), `isRead` and `hasAttachments` (eq/ne), and the strings
//! `internetMessageId`, `subject` and `from/emailAddress/address` (eq/ne with a quoted
//! string), joined by `and`; `$orderby` on those dates, `subject` and
//! `from/emailAddress/address` (one or more, `asc`/`desc`).
//! Anything else gets Graph's 400, so a client relying on more fails here as it would fail
//! against Graph for a typo, rather than silently getting unfiltered results. Graph's rule for
//! the two together is kept too (400 `InefficientFilter`): every `$orderby` property must
//! appear in `$filter`, in the same order, before any other
//! (<https://learn.microsoft.com/en-us/graph/api/user-list-messages#using-filter-and-orderby-in-the-same-query>).

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

/// A property `$filter` and `$orderby` understand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prop {
    Received,
    Sent,
    IsRead,
    HasAttachments,
    InternetMessageId,
    Subject,
    FromAddress,
}

impl Prop {
    fn parse(name: &str) -> Option<Prop> {
        Some(match name.to_ascii_lowercase().as_str() {
            "receiveddatetime" => Prop::Received,
            "sentdatetime" => Prop::Sent,
            "isread" => Prop::IsRead,
            "hasattachments" => Prop::HasAttachments,
            "internetmessageid" => Prop::InternetMessageId,
            "subject" => Prop::Subject,
            "from/emailaddress/address" => Prop::FromAddress,
            _ => return None,
        })
    }

    fn is_text(self) -> bool {
        matches!(
            self,
            Prop::InternetMessageId | Prop::Subject | Prop::FromAddress
        )
    }
}

#[derive(Clone, Debug)]
enum Literal {
    Time(OffsetDateTime),
    Bool(bool),
    Text(String),
}

#[derive(Clone, Debug)]
struct Pred {
    prop: Prop,
    cmp: Cmp,
    value: Literal,
}

/// Parsed list options.
#[derive(Clone, Debug)]
pub struct ListOptions {
    pub select: Option<Vec<String>>,
    pub top: usize,
    filter: Vec<Pred>,
    /// `$orderby`: (property, descending); empty = newest first.
    order: Vec<(Prop, bool)>,
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
        let c = clause.trim();
        let (field, rest) = c
            .split_once(char::is_whitespace)
            .ok_or_else(|| filter_error(c))?;
        let (op, value) = rest
            .trim_start()
            .split_once(char::is_whitespace)
            .ok_or_else(|| filter_error(c))?;
        let value = value.trim();
        let prop = Prop::parse(field).ok_or_else(|| filter_error(field))?;
        let cmp = match op.to_ascii_lowercase().as_str() {
            "eq" => Cmp::Eq,
            "ne" => Cmp::Ne,
            "ge" => Cmp::Ge,
            "gt" => Cmp::Gt,
            "le" => Cmp::Le,
            "lt" => Cmp::Lt,
            _ => return Err(filter_error(op)),
        };
        let value = match prop {
            Prop::Received | Prop::Sent => {
                Literal::Time(parse_datetime(value).ok_or_else(|| filter_error(value))?)
            }
            Prop::IsRead | Prop::HasAttachments if matches!(cmp, Cmp::Eq | Cmp::Ne) => {
                match value.to_ascii_lowercase().as_str() {
                    "true" => Literal::Bool(true),
                    "false" => Literal::Bool(false),
                    _ => return Err(filter_error(value)),
                }
            }
            p if p.is_text() && matches!(cmp, Cmp::Eq | Cmp::Ne) => {
                Literal::Text(string_literal(value)?)
            }
            _ => return Err(filter_error(c)),
        };
        out.push(Pred { prop, cmp, value });
    }
    Ok(out)
}

/// An OData string literal: quoted with single quotes, a single quote inside doubled
/// (<https://learn.microsoft.com/en-us/graph/query-parameters#escaping-single-quotes>);
/// an unquoted value or a lone quote inside is refused, as Graph does.
fn string_literal(v: &str) -> Result<String, ApiError> {
    let inner = v
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .filter(|_| v.len() >= 2)
        .ok_or_else(|| filter_error(v))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '\'' && chars.next() != Some('\'') {
            return Err(filter_error(v));
        }
        out.push(ch);
    }
    Ok(out)
}

/// `$orderby`: comma-separated `property [asc|desc]`.
fn parse_orderby(raw: &str) -> Result<Vec<(Prop, bool)>, ApiError> {
    let unsupported = || {
        ApiError::bad_request(format!(
            "The $orderby '{raw}' is not supported: order by receivedDateTime, sentDateTime, subject or from/emailAddress/address, asc or desc."
        ))
    };
    let mut out = Vec::new();
    for part in raw.split(',') {
        let mut it = part.split_whitespace();
        let prop = it.next().and_then(Prop::parse).ok_or_else(unsupported)?;
        if matches!(
            prop,
            Prop::IsRead | Prop::HasAttachments | Prop::InternetMessageId
        ) {
            return Err(unsupported());
        }
        let descending = match it.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => return Err(unsupported()),
        };
        if it.next().is_some() {
            return Err(unsupported());
        }
        out.push((prop, descending));
    }
    Ok(out)
}

/// Graph's rule for `$filter` with `$orderby`: the ordered properties come first in the filter,
/// in the same order.
fn inefficient(filter: &[Pred], order: &[(Prop, bool)]) -> bool {
    let mut first: Vec<Prop> = Vec::new();
    for p in filter {
        if !first.contains(&p.prop) {
            first.push(p.prop);
        }
    }
    !filter.is_empty()
        && (order.len() > first.len()
            || order
                .iter()
                .zip(&first)
                .any(|((ordered, _), filtered)| ordered != filtered))
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
        let order = match req.q("orderby").map(str::trim) {
            None | Some("") => Vec::new(),
            Some(o) => parse_orderby(o)?,
        };
        if inefficient(&filter, &order) {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                codes::INEFFICIENT_FILTER,
                "The restriction or sort order is too complex for this operation.",
            ));
        }
        Ok(ListOptions {
            select,
            top,
            filter,
            order,
        })
    }

    /// Sorts `hits` as `$orderby` asks (newest first without one); ties keep arrival order,
    /// so paging is stable.
    pub fn sort(&self, hits: &mut [&StoredMessage]) {
        use std::cmp::Ordering;
        let arrival = |a: &StoredMessage, b: &StoredMessage| {
            a.received
                .cmp(&b.received)
                .then(a.created.cmp(&b.created))
                .then(a.seq.cmp(&b.seq))
        };
        if self.order.is_empty() {
            hits.sort_by(|a, b| arrival(b, a));
            return;
        }
        hits.sort_by(|a, b| {
            let mut o = Ordering::Equal;
            for (prop, descending) in &self.order {
                let c = match prop {
                    Prop::Received => a.received.cmp(&b.received),
                    Prop::Sent => a.parsed.sent.cmp(&b.parsed.sent),
                    Prop::Subject => a.parsed.subject.cmp(&b.parsed.subject),
                    Prop::FromAddress => from_address(a).cmp(&from_address(b)),
                    _ => Ordering::Equal,
                };
                o = o.then(if *descending { c.reverse() } else { c });
            }
            // Ties keep arrival order in the direction of the first key.
            o.then(if self.order[0].1 {
                arrival(b, a)
            } else {
                arrival(a, b)
            })
        });
    }

    pub fn matches(&self, m: &StoredMessage) -> bool {
        self.filter.iter().all(|p| match (&p.prop, &p.value) {
            (Prop::Received, Literal::Time(t)) => compare(p.cmp, m.received, *t),
            (Prop::Sent, Literal::Time(t)) => m.parsed.sent.is_some_and(|s| compare(p.cmp, s, *t)),
            (Prop::IsRead, Literal::Bool(b)) => compare(p.cmp, m.is_read, *b),
            (Prop::HasAttachments, Literal::Bool(b)) => compare(
                p.cmp,
                m.parsed.has_attachments || !m.attachments.is_empty(),
                *b,
            ),
            (Prop::InternetMessageId, Literal::Text(v)) => compare(
                p.cmp,
                m.parsed.internet_message_id.as_deref() == Some(v.as_str()),
                true,
            ),
            // Graph compares these case-insensitively, as Exchange's restrictions do.
            (Prop::Subject, Literal::Text(v)) => {
                compare(p.cmp, m.parsed.subject.eq_ignore_ascii_case(v), true)
            }
            (Prop::FromAddress, Literal::Text(v)) => {
                compare(p.cmp, from_address(m).eq_ignore_ascii_case(v), true)
            }
            _ => false,
        })
    }
}

fn from_address(m: &StoredMessage) -> String {
    m.parsed
        .from
        .as_ref()
        .and_then(|r| r.email_address.address.clone())
        .unwrap_or_default()
        .to_ascii_lowercase()
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
