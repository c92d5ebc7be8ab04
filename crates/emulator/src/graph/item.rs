//! One message: `GET …/messages/{id}` (with `$select`, `$expand=attachments`), `GET …/$value`
//! (the stored MIME, byte for byte), `PATCH` (`isRead`, `categories`, `flag`, `importance`,
//! PidTagDeleteAfterSubmit as a legacy extended property; a draft's subject, body and
//! recipients), `DELETE` (204: to Deleted Items, from there for good).

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
        let mut v = apply_select(v, &select);
        if req.q("expand").is_some_and(|e| {
            e.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("attachments"))
        }) {
            let atts = super::attachments::of(graph, m)?;
            v["attachments"] = atts.iter().map(|a| a.json(m, true)).collect();
        }
        Ok(Reply::json(StatusCode::OK, v))
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

/// A legacy extended property id: `<Type> 0x<tag>` or `<Type> {<guid>} Name|Id <x>`
/// (<https://learn.microsoft.com/en-us/graph/api/resources/singlevaluelegacyextendedproperty>).
/// Graph refuses anything else with 400.
fn extended_property_tag(id: &str) -> Result<Option<u16>, ApiError> {
    const TYPES: &[&str] = &[
        "Binary",
        "Boolean",
        "CLSID",
        "Currency",
        "Double",
        "Float",
        "Integer",
        "Long",
        "Object",
        "Short",
        "String",
        "SystemTime",
    ];
    let bad = || {
        ApiError::bad_request(format!(
            "The extended property id '{id}' is not valid: use '<Type> 0x<tag>' or '<Type> {{<guid>}} Name <name>'."
        ))
    };
    let mut it = id.split_whitespace();
    let (Some(ty), Some(rest)) = (it.next(), it.next()) else {
        return Err(bad());
    };
    if !TYPES.iter().any(|t| t.eq_ignore_ascii_case(ty)) {
        return Err(bad());
    }
    if let Some(hex) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
        if it.next().is_some() {
            return Err(bad());
        }
        return u16::from_str_radix(hex, 16).map(Some).map_err(|_| bad());
    }
    match (it.next(), it.next()) {
        (Some(k), Some(_)) if rest.starts_with('{') && (k == "Name" || k == "Id") => Ok(None),
        _ => Err(bad()),
    }
}

/// The properties a PATCH may change
/// (<https://learn.microsoft.com/en-us/graph/api/message-update>): on any message `isRead`,
/// `categories`, `flag`, `importance` and legacy extended properties; on a draft also its
/// `subject`, `body` and recipients (its MIME is rebuilt). Another property of the message
/// type is read-only here and refused, an unknown one refused as Graph refuses it.
const WRITABLE: &[&str] = &[
    "isRead",
    "categories",
    "flag",
    "importance",
    "singleValueExtendedProperties",
    "subject",
    "body",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
];
const DRAFT_ONLY: &[&str] = &[
    "subject",
    "body",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
];

pub fn patch(graph: &GraphState, req: &Req, t: &Target, id: &str) -> ApiResult {
    let raw: serde_json::Value = req.json()?;
    let Some(fields) = raw.as_object() else {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        ));
    };
    for k in fields.keys().filter(|k| !k.starts_with('@')) {
        if !WRITABLE.contains(&k.as_str()) {
            return Err(ApiError::bad_request(
                if super::query::MESSAGE_PROPERTIES.contains(&k.as_str()) {
                    format!("The property '{k}' is read-only and cannot be set.")
                } else {
                    format!("The property '{k}' does not exist on type 'microsoft.graph.message'.")
                },
            ));
        }
    }
    let body: PatchMessage = serde_json::from_value(raw.clone())
        .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
    let importance = match fields.get("importance") {
        None => None,
        Some(v) => match v.as_str().map(str::to_ascii_lowercase).as_deref() {
            Some(i @ ("low" | "normal" | "high")) => Some(i.to_owned()),
            _ => {
                return Err(ApiError::bad_request(
                    "importance must be low, normal or high.",
                ));
            }
        },
    };
    let flag_status = match fields.get("flag") {
        None => None,
        Some(f) => match f["flagStatus"].as_str() {
            Some(s @ ("notFlagged" | "flagged" | "complete")) => Some(s.to_owned()),
            _ => {
                return Err(ApiError::bad_request(
                    "flag.flagStatus must be notFlagged, flagged or complete.",
                ));
            }
        },
    };
    let content_change = DRAFT_ONLY.iter().any(|k| fields.contains_key(*k));
    let mut delete_after_submit = None;
    for p in body.single_value_extended_properties.iter().flatten() {
        if extended_property_tag(&p.id)? == Some(0x0E01) {
            if !p
                .id
                .split_whitespace()
                .next()
                .is_some_and(|t| t.eq_ignore_ascii_case("Boolean"))
            {
                return Err(ApiError::bad_request("Property 0x0E01 is a Boolean."));
            }
            delete_after_submit = Some(match p.value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "'{}' is not a Boolean value.",
                        p.value
                    )));
                }
            });
        }
    }
    with_mailbox(graph, t, true, |mb| {
        let draft = mb
            .messages
            .get(id)
            .ok_or_else(ApiError::item_not_found)?
            .is_draft;
        if content_change && !draft {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ErrorInvalidPropertyUpdateSentMessage",
                "Update operation is invalid for property of a sent message.",
            ));
        }
        if content_change {
            let current = mb.messages.get(id).ok_or_else(ApiError::item_not_found)?;
            let mut msg: serde_json::Value =
                serde_json::to_value(mb.message_json(current)).map_err(ApiError::internal)?;
            for k in DRAFT_ONLY {
                if let Some(v) = fields.get(*k) {
                    msg[*k] = v.clone();
                }
            }
            let msg: kurir_graph::Message = serde_json::from_value(msg)
                .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
            let rebuilt = super::mime::build_from_json(&msg, &mb.as_recipient(), &[], mb.domain());
            mb.rewrite(id, rebuilt);
        }
        let m = mb
            .messages
            .get_mut(id)
            .ok_or_else(ApiError::item_not_found)?;
        if let Some(r) = body.is_read {
            m.is_read = r;
        }
        if let Some(c) = &body.categories {
            m.categories = c.clone();
        }
        if let Some(f) = &flag_status {
            m.flag_status = Some(f.clone());
        }
        if let Some(i) = &importance {
            m.importance = Some(i.clone());
        }
        if let Some(d) = delete_after_submit {
            m.delete_after_submit = d;
        }
        mb.touch(id);
        super::message_entity(mb, req, t, id, StatusCode::OK)
    })
}

/// `DELETE …/messages/{id}`: like Outlook, Exchange moves the message to Deleted Items; only a
/// message already there leaves the mailbox's folders (to Recoverable Items, which Graph mail
/// does not show) (<https://learn.microsoft.com/en-us/graph/api/message-delete>).
pub fn delete(graph: &GraphState, req: &Req, t: &Target, id: &str) -> ApiResult {
    let keep_id = req.prefers("IdType=\"ImmutableId\"");
    with_mailbox(graph, t, true, |mb| {
        let folder = mb
            .messages
            .get(id)
            .ok_or_else(ApiError::item_not_found)?
            .folder_id
            .clone();
        let deleted_items = mb
            .folder("deleteditems")
            .map(|f| f.id.clone())
            .ok_or_else(|| ApiError::internal("the mailbox has no Deleted Items"))?;
        if folder == deleted_items {
            mb.remove(id).ok_or_else(ApiError::item_not_found)?;
        } else {
            mb.move_message(id, &deleted_items, keep_id)
                .ok_or_else(ApiError::item_not_found)?;
        }
        Ok(Reply::empty(StatusCode::NO_CONTENT))
    })
}
