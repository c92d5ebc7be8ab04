//! Graph's directory objects as far as registering and consenting an app needs them: the
//! application (registration), its service principal, app roles, app role assignments and
//! password credentials (<https://learn.microsoft.com/en-us/graph/api/resources/application>,
//! <https://learn.microsoft.com/en-us/graph/api/resources/serviceprincipal>,
//! <https://learn.microsoft.com/en-us/graph/api/resources/approleassignment>,
//! <https://learn.microsoft.com/en-us/graph/api/resources/passwordcredential>).

use serde::{Deserialize, Serialize};

/// An app registration.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// The object id (`/applications/{id}`).
    pub id: String,
    /// The client id.
    pub app_id: String,
    pub display_name: Option<String>,
    #[serde(default)]
    pub password_credentials: Vec<PasswordCredential>,
    #[serde(default)]
    pub key_credentials: Vec<KeyCredential>,
}

/// A certificate credential as Graph lists it (the public key itself is never returned).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyCredential {
    pub key_id: String,
    pub display_name: Option<String>,
    pub end_date_time: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// A client secret as Graph lists it; `secret_text` only in `addPassword`'s answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordCredential {
    pub key_id: String,
    pub display_name: Option<String>,
    pub end_date_time: Option<String>,
    pub hint: Option<String>,
    pub secret_text: Option<String>,
}

/// An enterprise application (service principal).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    pub id: String,
    pub app_id: String,
    pub display_name: Option<String>,
    #[serde(default)]
    pub app_roles: Vec<AppRole>,
}

/// An application permission a resource publishes.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRole {
    pub id: String,
    pub value: Option<String>,
}

/// A granted application permission (admin consent).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRoleAssignment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub principal_id: String,
    pub resource_id: String,
    pub app_role_id: String,
}
