//! Collection pages (`value` + `@odata.nextLink` / `@odata.deltaLink`) and delta removals.

use serde::{Deserialize, Serialize};

/// One page of a collection. Links are opaque: follow them as given, never build them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    #[serde(
        rename = "@odata.context",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub context: Option<String>,
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(
        rename = "@odata.nextLink",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub next_link: Option<String>,
    #[serde(
        rename = "@odata.deltaLink",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub delta_link: Option<String>,
}

/// `"@removed": {"reason": "deleted" | "changed"}` on a delta entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub reason: String,
}
