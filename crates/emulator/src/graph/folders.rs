//! Mail folders: `GET mailFolders`, `GET mailFolders/{id}`, `…/childFolders` (list and
//! create; 409 `ErrorFolderExists` on a duplicate name, compared case-insensitively as
//! Exchange does).

use axum::http::StatusCode;
use kurir_graph::{NewMailFolder, Page, codes};

use super::reply::{ApiError, ApiResult, Reply};
use super::store::Folder;
use super::{GraphState, Req, Target, context, with_mailbox};

fn page(req: &Req, t: &Target, value: Vec<kurir_graph::MailFolder>, ctx: &str) -> Reply {
    Reply::json(
        StatusCode::OK,
        Page {
            context: Some(context(req, t, ctx)),
            value,
            next_link: None,
            delta_link: None,
        },
    )
}

/// The top-level folders (children of the root), as `GET /users/{id}/mailFolders` lists them.
pub fn list_top(graph: &GraphState, req: &Req, t: &Target) -> ApiResult {
    with_mailbox(graph, t, false, |mb| {
        let root = mb.root_id();
        let value = mb
            .children(&root)
            .into_iter()
            .map(|f| mb.folder_json(f))
            .collect();
        Ok(page(req, t, value, "mailFolders"))
    })
}

pub fn get(graph: &GraphState, req: &Req, t: &Target, folder: &str) -> ApiResult {
    with_mailbox(graph, t, false, |mb| {
        let f = mb.folder(folder).ok_or_else(ApiError::item_not_found)?;
        let mut v = serde_json::to_value(mb.folder_json(f)).map_err(ApiError::internal)?;
        v["@odata.context"] = context(req, t, "mailFolders/$entity").into();
        Ok(Reply::json(StatusCode::OK, v))
    })
}

pub fn list_children(graph: &GraphState, req: &Req, t: &Target, folder: &str) -> ApiResult {
    with_mailbox(graph, t, false, |mb| {
        let parent = mb
            .folder(folder)
            .ok_or_else(ApiError::item_not_found)?
            .id
            .clone();
        let value = mb
            .children(&parent)
            .into_iter()
            .map(|f| mb.folder_json(f))
            .collect();
        Ok(page(
            req,
            t,
            value,
            &format!("mailFolders('{parent}')/childFolders"),
        ))
    })
}

/// Creates a folder under `parent` (the root when `None`).
pub fn create(graph: &GraphState, req: &Req, t: &Target, parent: Option<&str>) -> ApiResult {
    let body: NewMailFolder = req.json()?;
    let name = body.display_name.trim().to_string();
    if name.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_REQUEST,
            "The folder displayName must not be empty.",
        ));
    }
    with_mailbox(graph, t, true, |mb| {
        let parent_id = match parent {
            Some(p) => mb
                .folder(p)
                .ok_or_else(ApiError::item_not_found)?
                .id
                .clone(),
            None => mb.root_id(),
        };
        if mb
            .children(&parent_id)
            .iter()
            .any(|f| f.display_name.eq_ignore_ascii_case(&name))
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                codes::FOLDER_EXISTS,
                "A folder with the specified name already exists.",
            ));
        }
        let folder = Folder {
            id: super::store::new_item_id("AAMkAF"),
            display_name: name,
            parent_id: Some(parent_id),
            well_known: None,
        };
        let json = mb.folder_json(&folder);
        mb.folders.push(folder);
        let mut v = serde_json::to_value(json).map_err(ApiError::internal)?;
        v["@odata.context"] = context(req, t, "mailFolders/$entity").into();
        Ok(Reply::json(StatusCode::CREATED, v))
    })
}
