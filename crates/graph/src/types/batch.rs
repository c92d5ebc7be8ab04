//! JSON batching: `POST /v1.0/$batch` with up to 20 requests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most requests one batch may carry.
pub const MAX_BATCH_REQUESTS: usize = 20;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchRequest {
    pub requests: Vec<BatchRequestItem>,
}

/// One request inside a batch; `url` is relative to the version (`/users/x/messages`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRequestItem {
    pub id: String,
    pub method: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    pub responses: Vec<BatchResponseItem>,
}

/// One answer; a non-JSON body (e.g. `$value`) comes base64-encoded as a JSON string.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchResponseItem {
    pub id: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}
