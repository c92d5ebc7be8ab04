//! Delta queries on a folder's messages: the cheap way to poll a mailbox.
//!
//! The first round lists everything and ends in a `@odata.deltaLink`; keep that link (it is
//! the sync state) and start the next round from it to get only what changed, including
//! `@removed` entries for messages deleted or moved out of the folder.

use reqwest::Method;

use super::{Body, Call, GraphClient};
use crate::error::GraphError;
use crate::types::{Message, Page};

/// Where a delta round starts.
#[derive(Clone, Debug)]
pub enum DeltaStart {
    /// A first sync of `folder`: `$select` properties and a page size (`Prefer:
    /// odata.maxpagesize`); `None` lets Graph choose.
    Initial {
        folder: String,
        select: Vec<String>,
        max_page_size: Option<u32>,
    },
    /// The `@odata.deltaLink` the previous round ended with.
    Link(String),
}

/// The result of a delta round (all pages followed).
#[derive(Clone, Debug, Default)]
pub struct DeltaPage {
    /// New or changed messages.
    pub messages: Vec<Message>,
    /// Ids of messages that left the folder (deleted or moved away).
    pub removed: Vec<String>,
    /// Start the next round here.
    pub delta_link: String,
}

impl GraphClient {
    /// Runs one delta round, following every `@odata.nextLink` to the `@odata.deltaLink`.
    pub async fn delta(
        &self,
        token: &str,
        mailbox: &str,
        start: &DeltaStart,
    ) -> Result<DeltaPage, GraphError> {
        let mut headers = Vec::new();
        let mut url = match start {
            DeltaStart::Initial {
                folder,
                select,
                max_page_size,
            } => {
                let mut url = self.user_url(mailbox, &["mailFolders", folder, "messages", "delta"]);
                if !select.is_empty() {
                    url.query_pairs_mut()
                        .append_pair("$select", &select.join(","));
                }
                if let Some(n) = max_page_size {
                    headers.push(("Prefer", format!("odata.maxpagesize={n}")));
                }
                url
            }
            DeltaStart::Link(link) => self.follow(link)?,
        };
        let mut out = DeltaPage::default();
        loop {
            let call = Call {
                method: Method::GET,
                url,
                token: Some(token),
                body: Body::None,
                headers: headers.clone(),
            };
            let page: Page<Message> = self.json(&call, "a delta page").await?;
            for m in page.value {
                if m.is_removed() {
                    out.removed.push(m.id().to_string());
                } else {
                    out.messages.push(m);
                }
            }
            match (page.next_link, page.delta_link) {
                (Some(next), _) => url = self.follow(&next)?,
                (None, Some(delta)) => {
                    out.delta_link = delta;
                    return Ok(out);
                }
                (None, None) => {
                    return Err(GraphError::Decode {
                        what: "a delta page",
                        detail: "neither @odata.nextLink nor @odata.deltaLink".into(),
                    });
                }
            }
        }
    }
}
