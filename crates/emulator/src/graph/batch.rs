//! `POST /v1.0/$batch`: up to 20 requests in one round trip.
//!
//! Each inner request runs through [`super::dispatch`] exactly like a standalone one (its own
//! token check, authorisation and mailbox concurrency slot), which is why a batch of 20
//! requests on one mailbox gets some 429s: Graph behaves that way. Requests without
//! `dependsOn` run concurrently; a request runs after the ones it depends on, and gets 424
//! Failed Dependency when one of them failed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kurir_graph::batch::MAX_BATCH_REQUESTS;
use kurir_graph::{BatchRequest, BatchRequestItem, BatchResponse, BatchResponseItem, codes};
use serde_json::Value;

use super::reply::{ApiError, ApiResult, Reply, ReplyBody};
use super::{Req, dispatch};
use crate::state::EmulatorState;

pub async fn handle(state: Arc<EmulatorState>, req: &Req) -> ApiResult {
    let batch: BatchRequest = req.json()?;
    if batch.requests.is_empty() {
        return Err(ApiError::bad_request(
            "Invalid batch payload format: no requests.",
        ));
    }
    if batch.requests.len() > MAX_BATCH_REQUESTS {
        return Err(ApiError::bad_request(format!(
            "Too many requests in a batch: {} (the maximum is {MAX_BATCH_REQUESTS}).",
            batch.requests.len()
        )));
    }
    let ids: HashSet<&str> = batch.requests.iter().map(|r| r.id.as_str()).collect();
    if ids.len() != batch.requests.len() {
        return Err(ApiError::bad_request("Batch request ids must be unique."));
    }
    for r in &batch.requests {
        for d in r.depends_on.iter().flatten() {
            if !ids.contains(d.as_str()) || d == &r.id {
                return Err(ApiError::bad_request(format!(
                    "Request '{}' depends on '{d}', which is not another request of this batch.",
                    r.id
                )));
            }
        }
    }

    let mut done: HashMap<String, BatchResponseItem> = HashMap::new();
    let mut pending: Vec<&BatchRequestItem> = batch.requests.iter().collect();
    while !pending.is_empty() {
        let (ready, waiting): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|r| r.depends_on.iter().flatten().all(|d| done.contains_key(d)));
        if ready.is_empty() {
            return Err(ApiError::bad_request(
                "The dependsOn chain of this batch has a cycle.",
            ));
        }
        let mut set = tokio::task::JoinSet::new();
        for r in ready {
            let failed = r
                .depends_on
                .iter()
                .flatten()
                .any(|d| done.get(d).is_some_and(|x| x.status >= 400));
            if failed {
                let reply = ApiError::new(
                    StatusCode::FAILED_DEPENDENCY,
                    codes::FAILED_DEPENDENCY,
                    "The request was not run because a request it depends on failed.",
                )
                .into_reply(&req.request_id, req.client_request_id());
                done.insert(r.id.clone(), to_item(&r.id, reply));
                continue;
            }
            let inner = match inner_request(req, r) {
                Ok(inner) => inner,
                Err(e) => {
                    let reply = e.into_reply(&req.request_id, req.client_request_id());
                    done.insert(r.id.clone(), to_item(&r.id, reply));
                    continue;
                }
            };
            let id = r.id.clone();
            let fut = dispatch(state.clone(), inner);
            set.spawn(async move { (id, fut.await) });
        }
        while let Some(joined) = set.join_next().await {
            let (id, reply) = joined.map_err(ApiError::internal)?;
            done.insert(id.clone(), to_item(&id, reply));
        }
        pending = waiting;
    }
    let responses = batch
        .requests
        .iter()
        .filter_map(|r| done.remove(&r.id))
        .collect();
    Ok(Reply::json(StatusCode::OK, BatchResponse { responses }))
}

fn inner_request(outer: &Req, r: &BatchRequestItem) -> Result<Req, ApiError> {
    let method = Method::from_bytes(r.method.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| ApiError::bad_request(format!("'{}' is not an HTTP method.", r.method)))?;
    let url = r.url.trim();
    let url = url
        .strip_prefix(&format!("{}/v1.0", outer.base))
        .unwrap_or(url);
    let url = url.trim_start_matches('/');
    let url = url.strip_prefix("v1.0/").unwrap_or(url);
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (url, None),
    };
    if path.eq_ignore_ascii_case("$batch") {
        return Err(ApiError::bad_request(
            "A batch cannot contain another batch.",
        ));
    }
    let mut headers = HeaderMap::new();
    for (k, v) in r.headers.iter().flatten() {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.insert(k, v);
        }
    }
    // Inner requests are authorised with the batch's own token.
    if let Some(auth) = outer.headers.get("authorization") {
        headers.insert("authorization", auth.clone());
    }
    let body = match &r.body {
        None => Bytes::new(),
        // The MIME form of sendMail in a batch: the base64 text as a JSON string.
        Some(Value::String(s)) => Bytes::from(s.clone().into_bytes()),
        Some(v) => Bytes::from(serde_json::to_vec(v).map_err(ApiError::internal)?),
    };
    let mut inner = Req::new(method, path, query, headers, body, outer.base.clone());
    inner.request_id = outer.request_id.clone();
    Ok(inner)
}

fn to_item(id: &str, reply: Reply) -> BatchResponseItem {
    let mut headers: std::collections::BTreeMap<String, String> = reply
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let body = match reply.body {
        ReplyBody::Empty => None,
        ReplyBody::Json(v) => {
            headers.insert("content-type".into(), "application/json".into());
            Some(v)
        }
        ReplyBody::Bytes { content_type, data } => {
            headers.insert("content-type".into(), content_type.into());
            Some(Value::String(STANDARD.encode(data.as_slice())))
        }
    };
    BatchResponseItem {
        id: id.to_string(),
        status: reply.status.as_u16(),
        headers,
        body,
    }
}
