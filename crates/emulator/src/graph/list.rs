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
        // Ties (same second) keep arrival order, so paging is stable.
        hits.sort_by(|a, b| {
            a.received
                .cmp(&b.received)
                .then(a.created.cmp(&b.created))
                .then(a.seq.cmp(&b.seq))
        });
        if opts.descending {
            hits.reverse();
        }
        let total = hits.len();
        let value: Vec<Value> = hits
            .into_iter()
            .skip(offset)
            .take(opts.top)
            .map(|m| {
                apply_select(
                    serde_json::to_value(mb.message_json(m)).unwrap_or(Value::Null),
                    &opts.select,
                )
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
