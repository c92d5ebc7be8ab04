//! Messages: list with query options, get, raw MIME, mark read, move, delete.

use reqwest::Method;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{Body, Call, GraphClient, transport};
use crate::error::GraphError;
use crate::types::{Message, MoveRequest, PatchMessage};

/// Query options for listing messages. Empty fields are left to Graph's defaults.
#[derive(Clone, Debug, Default)]
pub struct MessageQuery {
    /// `$select` property names (`id` is always returned).
    pub select: Vec<String>,
    /// `$top`: page size, 1–1000 (Graph's default is 10).
    pub top: Option<u32>,
    /// `$filter`, e.g. `receivedDateTime ge 2024-05-01T00:00:00Z` or `isRead eq false`.
    pub filter: Option<String>,
    /// `$orderby`, e.g. `receivedDateTime asc`.
    pub order_by: Option<String>,
    /// Stop after this many messages (all pages otherwise).
    pub limit: Option<usize>,
    /// `$expand`, e.g. `singleValueExtendedProperties($filter=id eq 'Integer 0x0E08')`.
    pub expand: Option<String>,
}

impl MessageQuery {
    fn apply(&self, url: &mut url::Url) {
        let mut q = url.query_pairs_mut();
        if !self.select.is_empty() {
            q.append_pair("$select", &self.select.join(","));
        }
        if let Some(top) = self.top {
            q.append_pair("$top", &top.to_string());
        }
        if let Some(f) = &self.filter {
            q.append_pair("$filter", f);
        }
        if let Some(o) = &self.order_by {
            q.append_pair("$orderby", o);
        }
        if let Some(e) = &self.expand {
            q.append_pair("$expand", e);
        }
    }
}

impl GraphClient {
    /// Messages in a folder (id or well-known name), following `@odata.nextLink`.
    pub async fn list_messages(
        &self,
        token: &str,
        mailbox: &str,
        folder: &str,
        query: &MessageQuery,
    ) -> Result<Vec<Message>, GraphError> {
        let mut url = self.user_url(mailbox, &["mailFolders", folder, "messages"]);
        query.apply(&mut url);
        self.all_pages(token, url, Vec::new(), "the message list", query.limit)
            .await
    }

    /// One message's properties.
    pub async fn get_message(
        &self,
        token: &str,
        mailbox: &str,
        id: &str,
        select: &[&str],
    ) -> Result<Message, GraphError> {
        let mut url = self.user_url(mailbox, &["messages", id]);
        if !select.is_empty() {
            url.query_pairs_mut()
                .append_pair("$select", &select.join(","));
        }
        let call = Call {
            method: Method::GET,
            url,
            token: Some(token),
            body: Body::None,
            headers: Vec::new(),
        };
        self.json(&call, "a message").await
    }

    /// Streams the message's raw MIME (`$value`) into `out`; returns the byte count.
    ///
    /// Retries happen only before the first byte is written; if the connection breaks
    /// mid-way the error is returned and `out` holds a partial message the caller discards.
    pub async fn get_mime<W: AsyncWrite + Unpin>(
        &self,
        token: &str,
        mailbox: &str,
        id: &str,
        out: &mut W,
    ) -> Result<u64, GraphError> {
        let call = Call {
            method: Method::GET,
            url: self.user_url(mailbox, &["messages", id, "$value"]),
            token: Some(token),
            body: Body::None,
            headers: Vec::new(),
        };
        let mut resp = self.execute(&call).await?;
        let mut n = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            out.write_all(&chunk).await.map_err(GraphError::Write)?;
            n += chunk.len() as u64;
        }
        out.flush().await.map_err(GraphError::Write)?;
        Ok(n)
    }

    /// Sets or clears the read flag.
    pub async fn set_read(
        &self,
        token: &str,
        mailbox: &str,
        id: &str,
        is_read: bool,
    ) -> Result<(), GraphError> {
        let call = Call {
            method: Method::PATCH,
            url: self.user_url(mailbox, &["messages", id]),
            token: Some(token),
            body: Body::json(&PatchMessage {
                is_read: Some(is_read),
                ..PatchMessage::default()
            })?,
            headers: Vec::new(),
        };
        self.execute(&call).await.map(drop)
    }

    /// Moves a message to a folder (id or well-known name). Returns the moved message, whose
    /// id is NEW unless `immutable_ids` asks Graph for immutable ids (`Prefer:
    /// IdType="ImmutableId"`), in which case it keeps its id.
    pub async fn move_message(
        &self,
        token: &str,
        mailbox: &str,
        id: &str,
        destination: &str,
        immutable_ids: bool,
    ) -> Result<Message, GraphError> {
        let mut headers = Vec::new();
        if immutable_ids {
            headers.push(("Prefer", "IdType=\"ImmutableId\"".to_string()));
        }
        let call = Call {
            method: Method::POST,
            url: self.user_url(mailbox, &["messages", id, "move"]),
            token: Some(token),
            body: Body::json(&MoveRequest {
                destination_id: destination.to_string(),
            })?,
            headers,
        };
        self.json(&call, "the moved message").await
    }

    /// The messages in `folder` whose `internetMessageId` is `message_id` (`<…@…>`), e.g. to
    /// see whether a message was already sent (Sent Items). The id is an OData string literal:
    /// a single quote inside it is doubled
    /// (<https://learn.microsoft.com/en-us/graph/query-parameters#escaping-single-quotes>),
    /// and the whole `$filter` is percent-encoded as a query parameter.
    pub async fn find_by_internet_message_id(
        &self,
        token: &str,
        mailbox: &str,
        folder: &str,
        message_id: &str,
    ) -> Result<Vec<Message>, GraphError> {
        let query = MessageQuery {
            select: vec!["internetMessageId".into()],
            top: Some(10),
            filter: Some(format!(
                "internetMessageId eq '{}'",
                message_id.replace('\'', "''")
            )),
            limit: Some(10),
            ..MessageQuery::default()
        };
        self.list_messages(token, mailbox, folder, &query).await
    }

    /// Deletes a message (Exchange moves it to Deleted Items' recoverable items).
    pub async fn delete_message(
        &self,
        token: &str,
        mailbox: &str,
        id: &str,
    ) -> Result<(), GraphError> {
        let call = Call {
            method: Method::DELETE,
            url: self.user_url(mailbox, &["messages", id]),
            token: Some(token),
            body: Body::None,
            headers: Vec::new(),
        };
        self.execute(&call).await.map(drop)
    }
}
