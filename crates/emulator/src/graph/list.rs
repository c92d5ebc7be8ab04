//! Listing messages: `GET …/mailFolders/{folder}/messages` and `GET …/messages`, with
//! `$select`, `$top` (default 10), `$skip`, `$count=true` (`@odata.count`), `$filter`,
//! `$orderby` (default newest first), `$search` (subject, body, sender; not together with
//! `$filter` or `$orderby`, which Graph refuses:
//! <https://learn.microsoft.com/en-us/graph/search-query-parameter#using-search-on-message-collections>),
//! `$expand=attachments`, and paging by an opaque `$skiptoken` in `@odata.nextLink`.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::query::{ListOptions, apply_select, next_query, parse_skiptoken, skiptoken};
use super::reply::{ApiError, ApiResult, Reply};
use super::{GraphState, Req, Target, context, with_mailbox};

pub fn list(graph: &GraphState, req: &Req, t: &Target, folder: Option<&str>) -> ApiResult {
    let opts = ListOptions::parse(req, 10)?;
    let expand = parse_expand(req.q("expand"))?;
    let expand_size = expand == Expand::Size;
    let search = search_terms(req)?;
    let count = match req.q("count").map(str::trim) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "Invalid $count value '{v}': use true or false."
            )));
        }
    };
    // A next link's skiptoken is absolute (it already counts $skip, which the link keeps).
    let offset = match (req.q("skiptoken"), req.q("skip")) {
        (Some(tok), _) => parse_skiptoken(tok)?,
        (None, Some(n)) => n.trim().parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!("Invalid $skip value '{n}': use a whole number."))
        })?,
        (None, None) => 0,
    };
    with_mailbox(graph, t, false, |mb| {
        let folder_id = match folder {
            Some(f) => Some(
                mb.folder(f)
                    .ok_or_else(ApiError::item_not_found)?
                    .id
                    .clone(),
            ),
            None => None,
        };
        let mut hits: Vec<_> = mb
            .messages
            .values()
            .filter(|m| folder_id.as_ref().is_none_or(|f| &m.folder_id == f))
            .filter(|m| opts.matches(m))
            .filter(|m| search.as_ref().is_none_or(|s| found(m, s)))
            .collect();
        opts.sort(&mut hits);
        let total = hits.len();
        let value: Vec<Value> = hits
            .into_iter()
            .skip(offset)
            .take(opts.top)
            .map(|m| {
                let mut v = apply_select(
                    serde_json::to_value(mb.message_json(m)).unwrap_or(Value::Null),
                    &opts.select,
                );
                if expand_size {
                    // Exchange reports the id normalised (lower-case hex, no leading zero).
                    v["singleValueExtendedProperties"] =
                        json!([{ "id": "Integer 0xe08", "value": m.raw.len().to_string() }]);
                }
                if expand == Expand::Attachments
                    && let Ok(atts) = super::attachments::of(graph, m)
                {
                    v["attachments"] = atts.iter().map(|a| a.json(m, true)).collect();
                }
                v
            })
            .collect();
        let next = offset + value.len();
        let path = match &folder_id {
            Some(f) => format!("users/{}/mailFolders/{f}/messages", t.mailbox),
            None => format!("users/{}/messages", t.mailbox),
        };
        let mut body = json!({
            "@odata.context": context(req, t, match folder_id { Some(_) => "mailFolders/messages", None => "messages" }),
            "value": value,
        });
        if count {
            body["@odata.count"] = total.into();
        }
        if next < total {
            body["@odata.nextLink"] = req
                .link(&format!(
                    "{path}?{}",
                    next_query(req, "skiptoken", &skiptoken(next))
                ))
                .into();
        }
        Ok(Reply::json(StatusCode::OK, body))
    })
}

/// What `$expand` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expand {
    Nothing,
    /// `PR_MESSAGE_SIZE` through `singleValueExtendedProperties`.
    Size,
    Attachments,
}

/// `$search="…"`: the words, lower case; refused together with `$filter` or `$orderby`.
fn search_terms(req: &Req) -> Result<Option<Vec<String>>, ApiError> {
    let Some(raw) = req.q("search").map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if req.q("filter").is_some() || req.q("orderby").is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidUrlQuery",
            "The query parameter '$search' is not supported with '$filter' or '$orderby'.",
        ));
    }
    let text = raw.trim_matches('"');
    Ok(Some(
        text.split_whitespace().map(|w| w.to_lowercase()).collect(),
    ))
}

/// Every word in the subject, the body or the sender (as Exchange's search, without its
/// stemming and property syntax).
fn found(m: &super::store::StoredMessage, words: &[String]) -> bool {
    let p = &m.parsed;
    let from = p
        .from
        .as_ref()
        .map(|r| {
            format!(
                "{} {}",
                r.email_address.name.as_deref().unwrap_or_default(),
                r.email_address.address.as_deref().unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let body = p
        .body
        .as_ref()
        .map(|b| b.content.as_str())
        .unwrap_or_default();
    let hay = format!("{} {} {from}", p.subject, body).to_lowercase();
    words.iter().all(|w| hay.contains(w.as_str()))
}

/// `$expand=singleValueExtendedProperties($filter=id eq '…')`: the one expansion the emulator
/// knows. Returns whether `PR_MESSAGE_SIZE` was asked for (the only MAPI property it keeps; any
/// other id expands to nothing, as Exchange does for a property an item lacks). Anything else
/// is refused with Graph's error for an unknown navigation property.
fn parse_expand(raw: Option<&str>) -> Result<Expand, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(Expand::Nothing);
    };
    if raw.eq_ignore_ascii_case("attachments") {
        return Ok(Expand::Attachments);
    }
    let refuse = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "RequestBroker--ParseUri",
            format!("Could not find a property named '{raw}' on type 'microsoft.graph.message'."),
        )
    };
    let (name, rest) = raw.split_once('(').unwrap_or((raw, ""));
    if !name
        .trim()
        .eq_ignore_ascii_case("singleValueExtendedProperties")
    {
        return Err(refuse());
    }
    let filter = rest.trim_end_matches(')').trim();
    let Some(cond) = filter.strip_prefix("$filter=") else {
        return Err(refuse());
    };
    let Some((lhs, id)) = cond.split_once(" eq ") else {
        return Err(refuse());
    };
    if !lhs.trim().eq_ignore_ascii_case("id") {
        return Err(refuse());
    }
    let id = id.trim().trim_matches('\'');
    Ok(
        if kurir_graph::same_property_id(id, kurir_graph::PR_MESSAGE_SIZE) {
            Expand::Size
        } else {
            Expand::Nothing
        },
    )
}
