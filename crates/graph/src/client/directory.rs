//! The directory calls of Kurir's Entra set-up (`kurir setup entra`) and of credential rotation:
//! find or create the registration and its service principal, grant application permissions,
//! add and remove client secrets, owners. Each follows the Graph v1.0 page cited on its type in
//! `types/directory.rs` and in the emulator's `directory.rs`.

use reqwest::Method;
use serde_json::json;

use super::{Body, Call, GraphClient};
use crate::error::GraphError;
use crate::types::{
    AppRoleAssignment, Application, KeyCredential, PasswordCredential, ServicePrincipal,
};

/// A quoted OData string literal (`'` doubled).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl GraphClient {
    /// The registrations named `display_name` in the signed-in tenant.
    pub async fn applications_named(
        &self,
        token: &str,
        display_name: &str,
    ) -> Result<Vec<Application>, GraphError> {
        let mut url = self.api_url(&["applications"]);
        url.query_pairs_mut().append_pair(
            "$filter",
            &format!("displayName eq {}", literal(display_name)),
        );
        self.all_pages(token, url, Vec::new(), "the application list", None)
            .await
    }

    /// The registration with client id `app_id`, if any.
    pub async fn application_by_app_id(
        &self,
        token: &str,
        app_id: &str,
    ) -> Result<Option<Application>, GraphError> {
        let mut url = self.api_url(&["applications"]);
        url.query_pairs_mut()
            .append_pair("$filter", &format!("appId eq {}", literal(app_id)));
        let list: Vec<Application> = self
            .all_pages(token, url, Vec::new(), "the application list", None)
            .await?;
        Ok(list.into_iter().next())
    }

    /// Registers a single-tenant app with the permissions it will be granted listed as
    /// `requiredResourceAccess` (what the portal's API permissions page shows).
    pub async fn create_application(
        &self,
        token: &str,
        display_name: &str,
        required_resource_access: serde_json::Value,
    ) -> Result<Application, GraphError> {
        let call = Call {
            method: Method::POST,
            url: self.api_url(&["applications"]),
            token: Some(token),
            body: Body::json(&json!({
                "displayName": display_name,
                "signInAudience": "AzureADMyOrg",
                "requiredResourceAccess": required_resource_access,
            }))?,
            headers: Vec::new(),
        };
        self.json(&call, "the created application").await
    }

    /// The service principal of `app_id` in the tenant (a resource's, such as Microsoft
    /// Graph's, or a registration's), if any.
    pub async fn service_principal(
        &self,
        token: &str,
        app_id: &str,
    ) -> Result<Option<ServicePrincipal>, GraphError> {
        let mut url = self.api_url(&["servicePrincipals"]);
        url.query_pairs_mut()
            .append_pair("$filter", &format!("appId eq {}", literal(app_id)));
        let list: Vec<ServicePrincipal> = self
            .all_pages(token, url, Vec::new(), "the service principal list", None)
            .await?;
        Ok(list.into_iter().next())
    }

    pub async fn create_service_principal(
        &self,
        token: &str,
        app_id: &str,
    ) -> Result<ServicePrincipal, GraphError> {
        let call = Call {
            method: Method::POST,
            url: self.api_url(&["servicePrincipals"]),
            token: Some(token),
            body: Body::json(&json!({"appId": app_id}))?,
            headers: Vec::new(),
        };
        self.json(&call, "the created service principal").await
    }

    /// The application permissions granted to service principal `principal_id`.
    pub async fn app_role_assignments(
        &self,
        token: &str,
        principal_id: &str,
    ) -> Result<Vec<AppRoleAssignment>, GraphError> {
        let url = self.api_url(&["servicePrincipals", principal_id, "appRoleAssignments"]);
        self.all_pages(token, url, Vec::new(), "the app role assignments", None)
            .await
    }

    /// Grants an application permission (admin consent for one app role).
    pub async fn grant_app_role(
        &self,
        token: &str,
        grant: &AppRoleAssignment,
    ) -> Result<AppRoleAssignment, GraphError> {
        let call = Call {
            method: Method::POST,
            url: self.api_url(&["servicePrincipals", &grant.resource_id, "appRoleAssignedTo"]),
            token: Some(token),
            body: Body::json(grant)?,
            headers: Vec::new(),
        };
        self.json(&call, "the app role assignment").await
    }

    /// Adds a client secret; its value is in this answer only (`secret_text`).
    pub async fn add_password(
        &self,
        token: &str,
        application_id: &str,
        display_name: &str,
        end: time::OffsetDateTime,
    ) -> Result<PasswordCredential, GraphError> {
        let end = end
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| GraphError::Invalid(format!("an expiry Graph cannot take: {e}")))?;
        let call = Call {
            method: Method::POST,
            url: self.api_url(&["applications", application_id, "addPassword"]),
            token: Some(token),
            body: Body::json(&json!({
                "passwordCredential": {"displayName": display_name, "endDateTime": end}
            }))?,
            headers: Vec::new(),
        };
        self.json(&call, "the new client secret").await
    }

    /// Replaces the registration's certificates (`PATCH /applications/{id}` with
    /// `keyCredentials`, <https://learn.microsoft.com/en-us/graph/api/application-update>):
    /// how the first certificate gets there (`addKey` needs one already). `certificate_der_b64`
    /// is the public certificate only.
    pub async fn set_certificate(
        &self,
        token: &str,
        application_id: &str,
        display_name: &str,
        certificate_der_b64: &str,
        key_id: Option<&str>,
    ) -> Result<(), GraphError> {
        let mut cred = json!({
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
            "displayName": display_name,
            "key": certificate_der_b64,
        });
        // The caller names the key id, since PATCH answers 204 with no body to read it from.
        if let Some(id) = key_id {
            cred["keyId"] = json!(id);
        }
        let call = Call {
            method: Method::PATCH,
            url: self.api_url(&["applications", application_id]),
            token: Some(token),
            body: Body::json(&json!({"keyCredentials": [cred]}))?,
            headers: Vec::new(),
        };
        self.execute(&call).await.map(|_| ())
    }

    /// Adds a certificate with a proof of possession of a registered one (`addKey`,
    /// <https://learn.microsoft.com/en-us/graph/api/application-addkey>): how an app rolls its
    /// own certificate.
    pub async fn add_key(
        &self,
        token: &str,
        application_id: &str,
        display_name: &str,
        certificate_der_b64: &str,
        proof: &str,
    ) -> Result<KeyCredential, GraphError> {
        let call = Call {
            method: Method::POST,
            url: self.api_url(&["applications", application_id, "addKey"]),
            token: Some(token),
            body: Body::json(&json!({
                "keyCredential": {
                    "type": "AsymmetricX509Cert",
                    "usage": "Verify",
                    "displayName": display_name,
                    "key": certificate_der_b64,
                },
                "passwordCredential": null,
                "proof": proof,
            }))?,
            headers: Vec::new(),
        };
        self.json(&call, "the new key credential").await
    }

    /// Removes a certificate (`removeKey`,
    /// <https://learn.microsoft.com/en-us/graph/api/application-removekey>).
    pub async fn remove_key(
        &self,
        token: &str,
        application_id: &str,
        key_id: &str,
        proof: &str,
    ) -> Result<(), GraphError> {
        let call = Call {
            method: Method::POST,
            url: self.api_url(&["applications", application_id, "removeKey"]),
            token: Some(token),
            body: Body::json(&json!({"keyId": key_id, "proof": proof}))?,
            headers: Vec::new(),
        };
        self.execute(&call).await.map(|_| ())
    }

    pub async fn remove_password(
        &self,
        token: &str,
        application_id: &str,
        key_id: &str,
    ) -> Result<(), GraphError> {
        let call = Call {
            method: Method::POST,
            url: self.api_url(&["applications", application_id, "removePassword"]),
            token: Some(token),
            body: Body::json(&json!({"keyId": key_id}))?,
            headers: Vec::new(),
        };
        self.execute(&call).await.map(|_| ())
    }

    /// The object ids of a registration's owners.
    pub async fn application_owners(
        &self,
        token: &str,
        application_id: &str,
    ) -> Result<Vec<String>, GraphError> {
        #[derive(serde::Deserialize)]
        struct Obj {
            id: String,
        }
        let url = self.api_url(&["applications", application_id, "owners"]);
        let list: Vec<Obj> = self
            .all_pages(token, url, Vec::new(), "the owners", None)
            .await?;
        Ok(list.into_iter().map(|o| o.id).collect())
    }

    /// Makes a directory object (a user, or the app's own service principal) an owner.
    pub async fn add_application_owner(
        &self,
        token: &str,
        application_id: &str,
        object_id: &str,
    ) -> Result<(), GraphError> {
        let call = Call {
            method: Method::POST,
            url: self.api_url(&["applications", application_id, "owners", "$ref"]),
            token: Some(token),
            body: Body::json(&json!({
                "@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{object_id}")
            }))?,
            headers: Vec::new(),
        };
        self.execute(&call).await.map(|_| ())
    }
}
