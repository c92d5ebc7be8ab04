//! Listing messages: `GET …/mailFolders/{folder}/messages` and `GET …/messages`, with
//! `$select`, `$top` (default 10), `$filter`, `$orderby` (default newest first) and paging by
//! an opaque `$skiptoken` in `@odata.nextLink`.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::query::{ListOptions, apply_select, next_query, parse_skiptoken, skiptoken};
use super::reply::{ApiError, ApiResult, Reply};
use super::{GraphState, Req, Target, context, with_mailbox};

pub fn list(graph: &GraphState, req: &Req, t: &Target, folder: Option<&str>) -> ApiResult {
    let opts = ListOptions::parse(req, 10)?;
    let expand_size = parse_expand(req.q("expand"))?;
    let offset = match req.q("skiptoken") {
        Some(tok) => parse_skiptoken(tok)?,
        None => 0,
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

/// `$expand=singleValueExtendedProperties($filter=id eq '…')`: the one expansion the emulator
/// knows. Returns whether `PR_MESSAGE_SIZE` was asked for (the only MAPI property it keeps; any
/// other id expands to nothing, as Exchange does for a property an item lacks). Anything else
/// is refused with Graph's error for an unknown navigation property.
fn parse_expand(raw: Option<&str>) -> Result<bool, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(false);
    };
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
    Ok(kurir_graph::same_property_id(
        id,
        kurir_graph::PR_MESSAGE_SIZE,
    ))
}
