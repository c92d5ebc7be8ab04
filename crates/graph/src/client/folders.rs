//! Mail folders (list, list children, create, find-or-create) and `$batch`.

use reqwest::Method;

use super::{Body, Call, GraphClient};
use crate::error::GraphError;
use crate::types::{MailFolder, NewMailFolder, codes};

impl GraphClient {
    /// The mailbox's top-level folders (children of `msgfolderroot`).
    pub async fn list_folders(
        &self,
        token: &str,
        mailbox: &str,
    ) -> Result<Vec<MailFolder>, GraphError> {
        let mut url = self.user_url(mailbox, &["mailFolders"]);
        url.query_pairs_mut().append_pair("$top", "100");
        self.all_pages(token, url, Vec::new(), "the folder list", None)
            .await
    }

    /// Child folders of `parent` (an id or a well-known name such as `inbox`).
    pub async fn list_child_folders(
        &self,
        token: &str,
        mailbox: &str,
        parent: &str,
    ) -> Result<Vec<MailFolder>, GraphError> {
        let mut url = self.user_url(mailbox, &["mailFolders", parent, "childFolders"]);
        url.query_pairs_mut().append_pair("$top", "100");
        self.all_pages(token, url, Vec::new(), "the child folder list", None)
            .await
    }

    /// Creates a child folder; fails with 409 `ErrorFolderExists` if the name is taken.
    pub async fn create_child_folder(
        &self,
        token: &str,
        mailbox: &str,
        parent: &str,
        display_name: &str,
    ) -> Result<MailFolder, GraphError> {
        let call = Call {
            method: Method::POST,
            url: self.user_url(mailbox, &["mailFolders", parent, "childFolders"]),
            token: Some(token),
            body: Body::json(&NewMailFolder {
                display_name: display_name.to_string(),
                is_hidden: None,
            })?,
            headers: Vec::new(),
        };
        self.json(&call, "the created folder").await
    }

    /// The child folder named `display_name` (case-insensitive, as Exchange compares),
    /// created if missing. A 409 from a concurrent creator is resolved by listing again.
    pub async fn find_or_create_child_folder(
        &self,
        token: &str,
        mailbox: &str,
        parent: &str,
        display_name: &str,
    ) -> Result<MailFolder, GraphError> {
        let find = |list: Vec<MailFolder>| {
            list.into_iter()
                .find(|f| f.display_name.eq_ignore_ascii_case(display_name))
        };
        if let Some(f) = find(self.list_child_folders(token, mailbox, parent).await?) {
            return Ok(f);
        }
        match self
            .create_child_folder(token, mailbox, parent, display_name)
            .await
        {
            Ok(f) => Ok(f),
            Err(e) if e.status() == Some(409) || e.code() == Some(codes::FOLDER_EXISTS) => {
                find(self.list_child_folders(token, mailbox, parent).await?).ok_or(e)
            }
            Err(e) => Err(e),
        }
    }
}

impl GraphClient {
    /// `POST /$batch`: up to 20 requests in one round trip. Inner failures (including 429
    /// per inner request and 424 for failed dependencies) are in the answer, not an `Err`.
    pub async fn batch(
        &self,
        token: &str,
        request: &crate::types::BatchRequest,
    ) -> Result<crate::types::BatchResponse, GraphError> {
        if request.requests.len() > crate::types::batch::MAX_BATCH_REQUESTS {
            return Err(GraphError::Invalid(format!(
                "a batch holds at most 20 requests, not {}; split it",
                request.requests.len()
            )));
        }
        let call = Call {
            method: Method::POST,
            url: self.api_url(&["$batch"]),
            token: Some(token),
            body: Body::json(request)?,
            headers: Vec::new(),
        };
        self.json(&call, "the batch answer").await
    }
}
