//! `GET …/mailFolders/{folder}/messages/delta`: initial sync, paging by `$skiptoken`
//! (`@odata.nextLink`), and incremental rounds from a `$deltatoken` (`@odata.deltaLink`) that
//! report new and changed messages and `@removed` entries for messages that left the folder.
//!
//! A round is a snapshot: its entries are fixed when the round starts and kept server-side
//! under the skiptoken, so paging cannot skip or repeat items while the folder changes. The
//! delta token itself is stateless (folder, sequence number, `$select`), so it survives an
//! emulator restart like a real sync state survives a Graph outage.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kurir_graph::codes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::query::{ListOptions, apply_select, parse_select};
use super::reply::{ApiError, ApiResult, Reply};
use super::{GraphState, Req, Target, context, with_mailbox};
use crate::state::lock;

/// Default delta page size when the client does not say `Prefer: odata.maxpagesize`.
const DEFAULT_PAGE: usize = 10;

#[derive(Clone, Debug)]
enum Entry {
    Item(String),
    Removed(String),
}

/// A round in progress.
#[derive(Clone, Debug)]
pub struct DeltaSession {
    mailbox: String,
    folder_id: String,
    entries: Vec<Entry>,
    pos: usize,
    page: usize,
    select: Option<Vec<String>>,
    final_seq: u64,
}

#[derive(Serialize, Deserialize)]
struct DeltaToken {
    f: String,
    s: u64,
    #[serde(default)]
    sel: Option<Vec<String>>,
}

fn sync_state_gone() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        codes::SYNC_STATE_NOT_FOUND,
        "The sync state is not found or has expired; start a new delta query without a token.",
    )
}

pub fn delta(graph: &GraphState, req: &Req, t: &Target, folder: &str) -> ApiResult {
    let page_size = req
        .max_page_size()
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_PAGE);
    let session = if let Some(tok) = req.q("skiptoken") {
        let s = lock(&graph.delta_sessions)
            .remove(tok)
            .ok_or_else(sync_state_gone)?;
        if s.mailbox != t.mailbox {
            return Err(sync_state_gone());
        }
        s
    } else {
        start_round(graph, req, t, folder, page_size)?
    };
    render_page(graph, req, t, session)
}

fn start_round(
    graph: &GraphState,
    req: &Req,
    t: &Target,
    folder: &str,
    page: usize,
) -> Result<DeltaSession, ApiError> {
    let token = match req.q("deltatoken") {
        Some(tok) => Some(
            URL_SAFE_NO_PAD
                .decode(tok)
                .ok()
                .and_then(|b| serde_json::from_slice::<DeltaToken>(&b).ok())
                .ok_or_else(sync_state_gone)?,
        ),
        None => None,
    };
    with_mailbox(graph, t, false, |mb| {
        let folder_id = mb
            .folder(folder)
            .ok_or_else(ApiError::item_not_found)?
            .id
            .clone();
        let (entries, select) = match token {
            Some(tok) => {
                if tok.f != folder_id {
                    return Err(sync_state_gone());
                }
                let mut changed: Vec<_> = mb
                    .messages
                    .values()
                    .filter(|m| m.folder_id == folder_id && m.seq > tok.s)
                    .collect();
                changed.sort_by_key(|m| m.seq);
                let mut entries: Vec<Entry> = mb
                    .tombstones
                    .iter()
                    .filter(|x| x.folder_id == folder_id && x.seq > tok.s)
                    .filter(|x| {
                        mb.messages
                            .get(&x.id)
                            .is_none_or(|m| m.folder_id != folder_id)
                    })
                    .map(|x| Entry::Removed(x.id.clone()))
                    .collect();
                entries.extend(changed.into_iter().map(|m| Entry::Item(m.id.clone())));
                (entries, tok.sel)
            }
            None => {
                // Options count on the first call only; $filter may only bound receivedDateTime.
                let select = parse_select(req.q("select"))?;
                let opts = ListOptions::parse(req, 10)?;
                let mut all: Vec<_> = mb
                    .messages
                    .values()
                    .filter(|m| m.folder_id == folder_id && opts.matches(m))
                    .collect();
                all.sort_by(|a, b| a.received.cmp(&b.received).then(a.seq.cmp(&b.seq)));
                (
                    all.into_iter().map(|m| Entry::Item(m.id.clone())).collect(),
                    select,
                )
            }
        };
        Ok(DeltaSession {
            mailbox: t.mailbox.clone(),
            folder_id,
            entries,
            pos: 0,
            page,
            select,
            final_seq: mb.seq,
        })
    })
}

fn removed(id: &str) -> Value {
    json!({"@odata.type": "#microsoft.graph.message", "id": id, "@removed": {"reason": "deleted"}})
}

fn render_page(graph: &GraphState, req: &Req, t: &Target, mut s: DeltaSession) -> ApiResult {
    let end = (s.pos + s.page).min(s.entries.len());
    let value: Vec<Value> = with_mailbox(graph, t, false, |mb| {
        Ok(s.entries[s.pos..end]
            .iter()
            .map(|e| match e {
                Entry::Removed(id) => removed(id),
                Entry::Item(id) => match mb.messages.get(id).filter(|m| m.folder_id == s.folder_id)
                {
                    Some(m) => {
                        let mut v = serde_json::to_value(mb.message_json(m)).unwrap_or(Value::Null);
                        v["@odata.type"] = "#microsoft.graph.message".into();
                        apply_select(v, &s.select)
                    }
                    // Left the folder after the round started: report it gone.
                    None => removed(id),
                },
            })
            .collect())
    })?;
    s.pos = end;
    let base_path = format!(
        "users/{}/mailFolders/{}/messages/delta",
        t.mailbox, s.folder_id
    );
    let mut body = json!({
        "@odata.context": context(req, t, "mailFolders/messages"),
        "value": value,
    });
    if s.pos < s.entries.len() {
        let tok = super::store::new_item_id("");
        body["@odata.nextLink"] = req.link(&format!("{base_path}?%24skiptoken={tok}")).into();
        lock(&graph.delta_sessions).insert(tok, s.clone());
    } else {
        let tok = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&DeltaToken {
                f: s.folder_id.clone(),
                s: s.final_seq,
                sel: s.select.clone(),
            })
            .map_err(ApiError::internal)?,
        );
        body["@odata.deltaLink"] = req.link(&format!("{base_path}?%24deltatoken={tok}")).into();
    }
    Ok(Reply::json(StatusCode::OK, body).header(
        "preference-applied",
        format!("odata.maxpagesize={}", s.page),
    ))
}
