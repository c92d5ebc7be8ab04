//! `POST …/messages/{id}/move` `{"destinationId"}`: 201 with the moved message, which has a
//! new id, as in Exchange, unless the request says `Prefer: IdType="ImmutableId"`;
//! `POST …/messages/{id}/copy` `{"destinationId"}`: 201 with the copy (always a new id).
//!
//! Clients that remember message ids across a move break on exactly this; keeping the rule
//! makes the emulator catch them.

use axum::http::StatusCode;
use kurir_graph::MoveRequest;

use super::reply::{ApiError, ApiResult};
use super::store::Mailbox;
use super::{GraphState, Req, Target, message_entity, with_mailbox};

/// The destination folder's id, after checking that message `id` exists.
fn destination(mb: &Mailbox, id: &str, body: &MoveRequest) -> Result<String, ApiError> {
    if !mb.messages.contains_key(id) {
        return Err(ApiError::item_not_found());
    }
    Ok(mb
        .folder(&body.destination_id)
        .ok_or_else(ApiError::item_not_found)?
        .id
        .clone())
}

pub fn move_message(graph: &GraphState, req: &Req, t: &Target, id: &str) -> ApiResult {
    let body: MoveRequest = req.json()?;
    let keep_id = req.prefers("IdType=\"ImmutableId\"");
    with_mailbox(graph, t, true, |mb| {
        let dest = destination(mb, id, &body)?;
        let new_id = mb
            .move_message(id, &dest, keep_id)
            .ok_or_else(ApiError::item_not_found)?;
        let mut reply = message_entity(mb, req, t, &new_id, StatusCode::CREATED)?;
        if keep_id {
            reply = reply.header("preference-applied", "IdType=\"ImmutableId\"");
        }
        Ok(reply)
    })
}

/// <https://learn.microsoft.com/en-us/graph/api/message-copy>
pub fn copy_message(graph: &GraphState, req: &Req, t: &Target, id: &str) -> ApiResult {
    let body: MoveRequest = req.json()?;
    with_mailbox(graph, t, true, |mb| {
        let dest = destination(mb, id, &body)?;
        let new_id = mb
            .copy_message(id, &dest)
            .ok_or_else(ApiError::item_not_found)?;
        message_entity(mb, req, t, &new_id, StatusCode::CREATED)
    })
}
