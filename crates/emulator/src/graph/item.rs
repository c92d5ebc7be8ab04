//! One message: `GET …/messages/{id}` (with `$select`), `GET …/$value` (the stored MIME,
//! byte for byte), `PATCH` (`isRead`, `categories`), `DELETE` (204).

use axum::http::StatusCode;
use kurir_graph::PatchMessage;

use super::query::{apply_select, parse_select};
use super::reply::{ApiError, ApiResult, Reply, ReplyBody};
use super::{GraphState, Req, Target, context, with_mailbox};

pub fn get(graph: &GraphState, req: &Req, t: &Target, id: &str) -> ApiResult {
    let select = parse_select(req.q("select"))?;
    with_mailbox(graph, t, false, |mb| {
        let m = mb.messages.get(id).ok_or_else(ApiError::item_not_found)?;
        let mut v = serde_json::to_value(mb.message_json(m)).map_err(ApiError::internal)?;
        v["@odata.context"] = context(req, t, "messages/$entity").into();
        Ok(Reply::json(StatusCode::OK, apply_select(v, &select)))
    })
}

pub fn mime(graph: &GraphState, t: &Target, id: &str) -> ApiResult {
    with_mailbox(graph, t, false, |mb| {
        let m = mb.messages.get(id).ok_or_else(ApiError::item_not_found)?;
        let mut raw = m.raw.clone();
        if !m.attachments.is_empty() {
            // A draft with uploaded attachments: its MIME includes them, as Exchange's would.
            raw = std::sync::Arc::new(super::send::draft_mime_with(graph, m)?);
        }
        Ok(Reply {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: ReplyBody::Bytes {
                content_type: "text/plain",
                data: raw,
            },
        })
    })
}

pub fn patch(graph: &GraphState, req: &Req, t: &Target, id: &str) -> ApiResult {
    let body: PatchMessage = req.json()?;
    with_mailbox(graph, t, true, |mb| {
        let m = mb
            .messages
            .get_mut(id)
            .ok_or_else(ApiError::item_not_found)?;
        if let Some(r) = body.is_read {
            m.is_read = r;
        }
        mb.touch(id);
        let m = mb.messages.get(id).ok_or_else(ApiError::item_not_found)?;
        let mut v = serde_json::to_value(mb.message_json(m)).map_err(ApiError::internal)?;
        v["@odata.context"] = context(req, t, "messages/$entity").into();
        Ok(Reply::json(StatusCode::OK, v))
    })
}

pub fn delete(graph: &GraphState, t: &Target, id: &str) -> ApiResult {
    with_mailbox(graph, t, true, |mb| {
        mb.remove(id).ok_or_else(ApiError::item_not_found)?;
        Ok(Reply::empty(StatusCode::NO_CONTENT))
    })
}
