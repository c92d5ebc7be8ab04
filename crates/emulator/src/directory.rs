//! Microsoft Graph's directory objects, as far as registering and consenting an application
//! needs them (issue #17): applications, their service principals, app role assignments (admin
//! consent for application permissions), password credentials and owners.
//!
//! Followed, call by call (Microsoft Graph v1.0):
//! - `POST /applications`, `GET /applications?$filter=…`, `GET|PATCH|DELETE /applications/{id}`,
//!   `GET /applications(appId='…')`:
//!   <https://learn.microsoft.com/en-us/graph/api/application-post-applications>,
//!   <https://learn.microsoft.com/en-us/graph/api/application-list>
//! - `POST /applications/{id}/addPassword`, `…/removePassword`:
//!   <https://learn.microsoft.com/en-us/graph/api/application-addpassword>,
//!   <https://learn.microsoft.com/en-us/graph/api/application-removepassword>
//! - `POST /applications/{id}/owners/$ref`, `GET …/owners`:
//!   <https://learn.microsoft.com/en-us/graph/api/application-post-owners>
//! - `POST /servicePrincipals`, `GET /servicePrincipals?$filter=appId eq '…'`,
//!   `GET /servicePrincipals(appId='…')`:
//!   <https://learn.microsoft.com/en-us/graph/api/serviceprincipal-post-serviceprincipals>
//! - `POST|GET /servicePrincipals/{resource}/appRoleAssignedTo`,
//!   `POST|GET /servicePrincipals/{client}/appRoleAssignments`:
//!   <https://learn.microsoft.com/en-us/graph/api/serviceprincipal-post-approleassignedto>,
//!   <https://learn.microsoft.com/en-us/graph/permissions-grant-via-msgraph>
//!
//! Who may: a delegated caller needs the scope (`Application.ReadWrite.All`, for assignments
//! `AppRoleAssignment.ReadWrite.All`) AND a directory role that allows it (Global Administrator,
//! Cloud Application Administrator or Application Administrator for registrations; Global
//! Administrator or Privileged Role Administrator to grant application permissions of Microsoft
//! Graph and Exchange); anyone else gets 403 `Authorization_RequestDenied`, "Insufficient
//! privileges to complete the operation." An app-only caller with
//! `Application.ReadWrite.OwnedBy` may read and change the registrations it owns (its own, once
//! the set-up made its service principal an owner: credential rotation).
//!
//! Tokens follow the directory: a role granted here is in the next app-only token's `roles`.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entra::scope::{EXCHANGE_APP_ID, GRAPH_APP_ID};
use crate::fixture::{App, Fixture, KeyCredential, Secret, stable_id};
use crate::graph::Req;
use crate::graph::auth::{Caller, CallerKind};
use crate::graph::reply::{ApiError, ApiResult, Reply};
use crate::state::EmulatorState;

/// An application permission a resource publishes: (app role id, value, display name).
pub type AppRole = (Uuid, &'static str, &'static str);

const fn id(u: u128) -> Uuid {
    Uuid::from_u128(u)
}

/// Microsoft Graph's application permissions the set-up uses or checks, with their ids from
/// <https://learn.microsoft.com/en-us/graph/permissions-reference>.
pub static GRAPH_ROLES: &[AppRole] = &[
    (
        id(0x810c84a8_4a9e_49e6_bf7d_12d183f40d01),
        "Mail.Read",
        "Read mail in all mailboxes",
    ),
    (
        id(0xe2a3a72e_5f79_4c64_b1b1_878b674786c9),
        "Mail.ReadWrite",
        "Read and write mail in all mailboxes",
    ),
    (
        id(0xb633e1c5_b582_4048_a93e_9f11b44c7e96),
        "Mail.Send",
        "Send mail as any user",
    ),
    (
        id(0xdf021288_bdef_4463_88db_98f22de89214),
        "User.Read.All",
        "Read all users' full profiles",
    ),
    (
        id(0x18a4783c_866b_4cc7_a460_3d5e5662c884),
        "Application.ReadWrite.OwnedBy",
        "Manage apps that this app creates or owns",
    ),
    (
        id(0x1bfefb4e_e0b5_418b_a88f_73c46d2cc8e9),
        "Application.ReadWrite.All",
        "Read and write all applications",
    ),
];

/// Office 365 Exchange Online's application permissions for the mail protocols. Their ids in
/// Microsoft's tenants could not be confirmed from a Microsoft page here, so the emulator derives
/// stable ids of its own (the same in every run): clients must look an app role up by its
/// `value` in the resource's service principal (`GET /servicePrincipals?$filter=appId eq
/// '00000002-0000-0ff1-ce00-000000000000'`, `appRoles`), as Microsoft's own guidance does,
/// never hard-code an id.
pub fn exchange_roles() -> &'static [AppRole] {
    static ROLES: std::sync::OnceLock<Vec<AppRole>> = std::sync::OnceLock::new();
    ROLES.get_or_init(|| {
        ["IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp"]
            .into_iter()
            .map(|v| (stable_id("exchange-app-role", v), v, v))
            .collect()
    })
}

/// The resource applications whose service principals every tenant has.
fn resources() -> [(Uuid, &'static str, &'static [AppRole]); 2] {
    [
        (GRAPH_APP_ID, "Microsoft Graph", GRAPH_ROLES),
        (
            EXCHANGE_APP_ID,
            "Office 365 Exchange Online",
            exchange_roles(),
        ),
    ]
}

/// A resource's service principal object id in a tenant.
fn resource_sp_id(tenant: Uuid, app_id: Uuid) -> Uuid {
    stable_id("resource-service-principal", &format!("{tenant}/{app_id}"))
}

/// An app role assignment's id (stable: the same grant always has the same id).
fn assignment_id(principal: Uuid, resource_app: Uuid, role: &str) -> String {
    let u = stable_id(
        "app-role-assignment",
        &format!("{principal}/{resource_app}/{role}"),
    );
    // Graph's assignment ids are base64url strings, not GUIDs.
    base64_url(u.as_bytes())
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn denied() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        format!(
            "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
}

/// What a call needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Read,
    /// Create or change a registration, its credentials, owners or service principal.
    WriteApps,
    /// Grant an application permission (admin consent).
    Grant,
}

const APP_ADMIN_ROLES: &[&str] = &[
    "Global Administrator",
    "Cloud Application Administrator",
    "Application Administrator",
];
const GRANT_ROLES: &[&str] = &["Global Administrator", "Privileged Role Administrator"];

/// Whether `caller` may do `need`, on `target` (a registration) when the call is about one.
fn allowed(fixture: &Fixture, caller: &Caller, need: Need, target: Option<&App>) -> bool {
    match &caller.kind {
        CallerKind::User { oid, scopes } => {
            let has = |s: &str| scopes.iter().any(|x| x.eq_ignore_ascii_case(s));
            let scope_ok = match need {
                Need::Read => {
                    has("Application.Read.All")
                        || has("Application.ReadWrite.All")
                        || has("Directory.Read.All")
                }
                Need::WriteApps => has("Application.ReadWrite.All"),
                Need::Grant => has("AppRoleAssignment.ReadWrite.All"),
            };
            let roles = fixture
                .user_by_id(*oid)
                .map(|u| u.directory_roles.as_slice())
                .unwrap_or_default();
            let in_role = |list: &[&str]| {
                roles
                    .iter()
                    .any(|r| list.iter().any(|l| l.eq_ignore_ascii_case(r)))
            };
            let role_ok = match need {
                // Any member may read registrations (the portal shows them to everyone).
                Need::Read => true,
                Need::WriteApps => in_role(APP_ADMIN_ROLES),
                Need::Grant => in_role(GRANT_ROLES),
            };
            scope_ok && role_ok
        }
        CallerKind::App { roles } => {
            let has = |s: &str| roles.iter().any(|x| x == s);
            if has("Application.ReadWrite.All") && need != Need::Grant {
                return true;
            }
            if need == Need::Grant {
                return has("AppRoleAssignment.ReadWrite.All");
            }
            // OwnedBy: only registrations whose owners include the caller's service principal.
            let me = fixture
                .apps
                .iter()
                .find(|a| a.client_id == caller.app_id)
                .map(|a| a.service_principal_id);
            has("Application.ReadWrite.OwnedBy")
                && match target {
                    Some(app) => me.is_some_and(|sp| app.owners.contains(&sp)),
                    None => need == Need::Read,
                }
        }
    }
}

fn application_json(a: &App, base: &str) -> Value {
    json!({
        "@odata.context": format!("{base}/v1.0/$metadata#applications/$entity"),
        "id": a.object_id.to_string(),
        "appId": a.client_id.to_string(),
        "displayName": a.display_name,
        "signInAudience": "AzureADMyOrg",
        "createdDateTime": rfc3339(a.created),
        "publisherDomain": Value::Null,
        "isFallbackPublicClient": a.public_client,
        "requiredResourceAccess": a.required_resource_access,
        // Secrets are never returned: only their ids, names, dates and hint.
        "passwordCredentials": a.secrets.iter().map(password_json).collect::<Vec<_>>(),
        // Certificates: the public part's metadata; `key` is never returned.
        "keyCredentials": a.key_credentials.iter().map(key_json).collect::<Vec<_>>(),
    })
}

fn key_json(k: &KeyCredential) -> Value {
    use base64::Engine;
    let c = &k.certificate;
    let at = |t: i64| {
        OffsetDateTime::from_unix_timestamp(t)
            .map(rfc3339)
            .unwrap_or_default()
    };
    json!({
        // Binary in Graph's schema, so base64; the portal puts the SHA-1 thumbprint here
        // (unverified: Kurir matches certificates by keyId, never by this field).
        "customKeyIdentifier": base64::engine::general_purpose::STANDARD.encode(&c.sha1),
        "displayName": k.display_name,
        "endDateTime": at(c.not_after),
        "key": Value::Null,
        "keyId": k.id.to_string(),
        "startDateTime": at(c.not_before),
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
    })
}

/// A `keyCredential` in a request: `type` AsymmetricX509Cert, `usage` Verify, `key` the
/// certificate's DER in base64 (the public part only).
fn key_from_request(v: &Value) -> Result<KeyCredential, ApiError> {
    use base64::Engine;
    if v["type"].as_str() != Some("AsymmetricX509Cert") || v["usage"].as_str() != Some("Verify") {
        return Err(bad(
            "keyCredential must have type 'AsymmetricX509Cert' and usage 'Verify'.",
        ));
    }
    let key = v["key"]
        .as_str()
        .ok_or_else(|| bad("Property key is required for a new keyCredential."))?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map_err(|_| bad("Property key must be the certificate in base64."))?;
    let certificate = crate::keys::RegisteredCertificate::from_der(&der)
        .map_err(|e| bad(format!("Invalid certificate: {e}")))?;
    Ok(KeyCredential {
        id: v["keyId"]
            .as_str()
            .and_then(|k| Uuid::parse_str(k).ok())
            .unwrap_or_else(Uuid::new_v4),
        display_name: v["displayName"].as_str().map(str::to_owned),
        certificate,
    })
}

/// The proof of possession `addKey` and `removeKey` demand: a JWT signed with one of the app's
/// valid certificates, `aud` 00000002-0000-0000-c000-000000000000, `iss` the application's
/// object id, `exp` at most 10 minutes after `nbf`
/// (<https://learn.microsoft.com/en-us/graph/application-rollkey-prooftoken>). The error's
/// code and text are unverified.
fn verify_proof(state: &EmulatorState, app: &App, proof: Option<&str>) -> Result<(), ApiError> {
    use base64::Engine;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let fail = |why: &str| {
        bad(format!(
            "Proof of possession token validation failed: {why}."
        ))
    };
    let proof = proof.ok_or_else(|| fail("the proof is missing"))?;
    let header = jsonwebtoken::decode_header(proof).map_err(|_| fail("not a JWT"))?;
    let thumb = header
        .x5t
        .as_deref()
        .ok_or_else(|| fail("the header has no x5t"))?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(thumb.trim_end_matches('='))
        .unwrap_or_default();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let cert = state
        .app_certificates
        .get(&app.client_id)
        .into_iter()
        .flatten()
        .chain(app.key_credentials.iter().map(|k| &k.certificate))
        .filter(|c| c.not_after > now)
        .find(|c| c.sha1 == raw)
        .ok_or_else(|| fail("it is not signed with a valid certificate of the application"))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(fail("it must be signed with RS256"));
    }
    let mut v = Validation::new(header.alg);
    v.set_audience(&["00000002-0000-0000-c000-000000000000"]);
    v.set_issuer(&[app.object_id.to_string()]);
    v.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
    v.leeway = 0;
    #[derive(serde::Deserialize)]
    struct Times {
        nbf: i64,
        exp: i64,
    }
    let t = jsonwebtoken::decode::<Times>(
        proof,
        &DecodingKey::from_rsa_der(&cert.pkcs1_public_key),
        &v,
    )
    .map_err(|e| fail(&e.to_string()))?
    .claims;
    if t.exp - t.nbf > 600 {
        return Err(fail("exp must be at most 10 minutes after nbf"));
    }
    Ok(())
}

fn password_json(s: &Secret) -> Value {
    json!({
        "customKeyIdentifier": Value::Null,
        "displayName": s.display_name,
        "endDateTime": rfc3339(s.expires),
        "hint": s.value.chars().take(3).collect::<String>(),
        "keyId": s.id.to_string(),
        "secretText": Value::Null,
        "startDateTime": s.start.map(rfc3339),
    })
}

fn app_roles_json(roles: &[AppRole]) -> Vec<Value> {
    roles
        .iter()
        .map(|(id, value, name)| {
            json!({
                "allowedMemberTypes": ["Application"],
                "description": name,
                "displayName": name,
                "id": id.to_string(),
                "isEnabled": true,
                "origin": "Application",
                "value": value,
            })
        })
        .collect()
}

fn sp_json(a: &App) -> Value {
    json!({
        "id": a.service_principal_id.to_string(),
        "appId": a.client_id.to_string(),
        "displayName": a.display_name,
        "accountEnabled": !a.disabled,
        "servicePrincipalType": "Application",
        "appOwnerOrganizationId": a.tenant_id.to_string(),
        "appRoles": [],
    })
}

fn resource_sp_json(tenant: Uuid, app_id: Uuid, name: &str, roles: &[AppRole]) -> Value {
    json!({
        "id": resource_sp_id(tenant, app_id).to_string(),
        "appId": app_id.to_string(),
        "displayName": name,
        "accountEnabled": true,
        "servicePrincipalType": "Application",
        "appOwnerOrganizationId": "f8cdef31-a31e-4b4a-93e4-5f571e91255a",
        "appRoles": app_roles_json(roles),
    })
}

/// A service principal in the caller's tenant: a resource's, or an app's.
enum Principal<'a> {
    Resource(Uuid, &'static str, &'static [AppRole]),
    App(&'a App),
}

fn find_sp<'a>(f: &'a Fixture, tenant: Uuid, key: &str) -> Option<Principal<'a>> {
    let by_app_id = key
        .strip_prefix("(appId='")
        .or_else(|| key.strip_prefix("(appid='"))
        .and_then(|k| k.strip_suffix("')"));
    for (app_id, name, roles) in resources() {
        let hit = match by_app_id {
            Some(a) => a.eq_ignore_ascii_case(&app_id.to_string()),
            None => key.eq_ignore_ascii_case(&resource_sp_id(tenant, app_id).to_string()),
        };
        if hit {
            return Some(Principal::Resource(app_id, name, roles));
        }
    }
    f.apps
        .iter()
        .filter(|a| a.tenant_id == tenant && a.has_service_principal)
        .find(|a| match by_app_id {
            Some(k) => k.eq_ignore_ascii_case(&a.client_id.to_string()),
            None => key.eq_ignore_ascii_case(&a.service_principal_id.to_string()),
        })
        .map(Principal::App)
}

fn find_app<'a>(f: &'a Fixture, tenant: Uuid, key: &str) -> Option<&'a App> {
    let by_app_id = key
        .strip_prefix("(appId='")
        .or_else(|| key.strip_prefix("(appid='"))
        .and_then(|k| k.strip_suffix("')"));
    f.apps
        .iter()
        .filter(|a| a.tenant_id == tenant)
        .find(|a| match by_app_id {
            Some(k) => k.eq_ignore_ascii_case(&a.client_id.to_string()),
            None => key.eq_ignore_ascii_case(&a.object_id.to_string()),
        })
}

/// `displayName eq 'X'` / `appId eq 'X'`: the filters the set-up uses to find what exists.
fn filter_of(req: &Req) -> Result<Option<(String, String)>, ApiError> {
    let Some(f) = req.q("filter") else {
        return Ok(None);
    };
    let (prop, rest) = f.trim().split_once(" eq ").ok_or_else(|| {
        bad(format!(
            "Unsupported or invalid query filter clause specified: '{f}'"
        ))
    })?;
    let value = rest
        .trim()
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .ok_or_else(|| bad(format!("Invalid filter clause: '{f}'")))?;
    Ok(Some((prop.trim().to_owned(), value.replace("''", "'"))))
}

fn body(req: &Req) -> Result<Value, ApiError> {
    if req.body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| bad(format!("Invalid JSON in the request body: {e}")))
}

fn list(base: &str, what: &str, items: Vec<Value>) -> Reply {
    Reply::json(
        StatusCode::OK,
        json!({"@odata.context": format!("{base}/v1.0/$metadata#{what}"), "value": items}),
    )
}

/// The roles `app` holds on every resource, as assignments.
fn assignments_of(a: &App) -> Vec<Value> {
    let mut out = Vec::new();
    for (resource, name, roles) in resources() {
        for value in a
            .application_permissions
            .get(&resource)
            .into_iter()
            .flatten()
        {
            let Some((role_id, _, _)) = roles.iter().find(|(_, v, _)| v == value) else {
                continue;
            };
            out.push(json!({
                "id": assignment_id(a.service_principal_id, resource, value),
                "appRoleId": role_id.to_string(),
                "createdDateTime": rfc3339(a.created),
                "principalDisplayName": a.display_name,
                "principalId": a.service_principal_id.to_string(),
                "principalType": "ServicePrincipal",
                "resourceDisplayName": name,
                "resourceId": resource_sp_id(a.tenant_id, resource).to_string(),
            }));
        }
    }
    out
}

/// Handles `/v1.0/applications…` and `/v1.0/servicePrincipals…`.
pub(crate) fn handle(state: &Arc<EmulatorState>, req: &Req, caller: &Caller) -> ApiResult {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let fixture = state.fixture();
    let tenant = caller.tenant_id;
    let base = req.base.as_str();
    let m = &req.method;
    match segs.as_slice() {
        ["applications"] if *m == Method::GET => {
            if !allowed(&fixture, caller, Need::Read, None) {
                return Err(denied());
            }
            let filter = filter_of(req)?;
            let items = fixture
                .apps
                .iter()
                .filter(|a| a.tenant_id == tenant)
                .filter(|a| match &filter {
                    None => true,
                    Some((p, v)) if p.eq_ignore_ascii_case("displayName") => a.display_name == *v,
                    Some((p, v)) if p.eq_ignore_ascii_case("appId") => {
                        a.client_id.to_string().eq_ignore_ascii_case(v)
                    }
                    Some(_) => false,
                })
                .filter(|a| allowed(&fixture, caller, Need::Read, Some(a)))
                .map(|a| application_json(a, base))
                .collect();
            Ok(list(base, "applications", items))
        }
        ["applications"] if *m == Method::POST => {
            if !allowed(&fixture, caller, Need::WriteApps, None) {
                return Err(denied());
            }
            let b = body(req)?;
            let name = b["displayName"]
                .as_str()
                .unwrap_or_default()
                .trim()
                .to_owned();
            if name.is_empty() {
                return Err(bad("Property displayName is required."));
            }
            let audience = b["signInAudience"].as_str().unwrap_or("AzureADMyOrg");
            if audience != "AzureADMyOrg" {
                return Err(bad(format!(
                    "The emulator registers single-tenant apps only (AzureADMyOrg), not {audience}."
                )));
            }
            let required = b
                .get("requiredResourceAccess")
                .cloned()
                .unwrap_or_else(|| json!([]));
            let app = App {
                client_id: Uuid::new_v4(),
                display_name: name,
                tenant_id: tenant,
                service_principal_id: Uuid::new_v4(),
                secrets: Vec::new(),
                certificates: Vec::new(),
                generate_certificate: false,
                public_client: false,
                application_permissions: Default::default(),
                delegated_permissions: Default::default(),
                admin_consent: true,
                mailbox_access: None,
                disabled: false,
                object_id: Uuid::new_v4(),
                owners: match &caller.kind {
                    // The portal makes the creating user an owner; so does Graph.
                    CallerKind::User { oid, .. } => vec![*oid],
                    CallerKind::App { .. } => Vec::new(),
                },
                required_resource_access: required,
                has_service_principal: false,
                key_credentials: Vec::new(),
                created: OffsetDateTime::now_utc(),
            };
            let reply = application_json(&app, base);
            state.change_directory(|f| {
                f.apps.push(app);
                Ok::<_, ApiError>(())
            })?;
            Ok(Reply::json(StatusCode::CREATED, reply))
        }
        ["applications", key] | ["applications", key, ..]
            if key.starts_with("(appId=")
                || key.starts_with("(appid=")
                || Uuid::parse_str(key).is_ok() =>
        {
            application_call(state, req, caller, &fixture, key, &segs[2..])
        }
        ["servicePrincipals"] if *m == Method::GET => {
            if !allowed(&fixture, caller, Need::Read, None) {
                return Err(denied());
            }
            let filter = filter_of(req)?;
            let mut items: Vec<Value> = resources()
                .into_iter()
                .map(|(id, name, roles)| resource_sp_json(tenant, id, name, roles))
                .collect();
            items.extend(
                fixture
                    .apps
                    .iter()
                    .filter(|a| a.tenant_id == tenant && a.has_service_principal)
                    .map(sp_json),
            );
            items.retain(|sp| match &filter {
                None => true,
                Some((p, v)) => sp
                    .get(p.as_str())
                    .and_then(Value::as_str)
                    .is_some_and(|x| x.eq_ignore_ascii_case(v)),
            });
            Ok(list(base, "servicePrincipals", items))
        }
        ["servicePrincipals"] if *m == Method::POST => {
            if !allowed(&fixture, caller, Need::WriteApps, None) {
                return Err(denied());
            }
            let b = body(req)?;
            let app_id = b["appId"].as_str().unwrap_or_default().to_owned();
            let out = state.change_directory(|f| {
                let app = f
                    .apps
                    .iter_mut()
                    .find(|a| a.tenant_id == tenant && a.client_id.to_string().eq_ignore_ascii_case(&app_id))
                    .ok_or_else(|| {
                        bad(format!(
                            "The appId '{app_id}' of the service principal does not reference a valid application object."
                        ))
                    })?;
                if app.has_service_principal {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "Request_MultipleObjectsWithSameKeyValue",
                        "The service principal cannot be created, updated, or restored because the service principal name is already in use.",
                    ));
                }
                app.has_service_principal = true;
                Ok(sp_json(app))
            })?;
            Ok(Reply::json(StatusCode::CREATED, out))
        }
        ["servicePrincipals", key, rest @ ..] => {
            let sp = find_sp(&fixture, tenant, key).ok_or_else(|| not_found(key))?;
            principal_call(state, req, caller, &fixture, sp, rest)
        }
        _ => Err(ApiError::resource_not_found(
            segs.first().copied().unwrap_or_default(),
        )),
    }
}

fn application_call(
    state: &Arc<EmulatorState>,
    req: &Req,
    caller: &Caller,
    fixture: &Fixture,
    key: &str,
    rest: &[&str],
) -> ApiResult {
    let tenant = caller.tenant_id;
    let base = req.base.as_str();
    let app = find_app(fixture, tenant, key).ok_or_else(|| not_found(key))?;
    let object_id = app.object_id;
    let need = if req.method == Method::GET {
        Need::Read
    } else {
        Need::WriteApps
    };
    // "An application does not need any specific permission to roll its own keys"
    // (addKey/removeKey): the proof of possession is the authorization.
    let rolls_own_key = matches!(rest, [a] if a.eq_ignore_ascii_case("addKey") || a.eq_ignore_ascii_case("removeKey"))
        && matches!(caller.kind, CallerKind::App { .. })
        && caller.app_id == app.client_id;
    if !rolls_own_key && !allowed(fixture, caller, need, Some(app)) {
        return Err(denied());
    }
    fn change<'f>(f: &'f mut Fixture, object_id: Uuid, key: &str) -> Result<&'f mut App, ApiError> {
        f.apps
            .iter_mut()
            .find(|a| a.object_id == object_id)
            .ok_or_else(|| not_found(key))
    }
    match (&req.method, rest) {
        (&Method::GET, []) => Ok(Reply::json(StatusCode::OK, application_json(app, base))),
        (&Method::PATCH, []) => {
            let b = body(req)?;
            state.change_directory(|f| {
                let a = change(f, object_id, key)?;
                if let Some(n) = b["displayName"].as_str() {
                    a.display_name = n.to_owned();
                }
                if let Some(r) = b.get("requiredResourceAccess") {
                    a.required_resource_access = r.clone();
                }
                // The collection is replaced: an entry naming an existing keyId without a key
                // keeps that certificate, an entry with a key adds one, the rest go.
                if let Some(list) = b.get("keyCredentials") {
                    let list = list
                        .as_array()
                        .ok_or_else(|| bad("Property keyCredentials must be an array."))?;
                    let mut next = Vec::new();
                    for v in list {
                        let existing = v["keyId"]
                            .as_str()
                            .and_then(|k| Uuid::parse_str(k).ok())
                            .and_then(|id| a.key_credentials.iter().find(|k| k.id == id));
                        match (existing, v["key"].is_null()) {
                            (Some(k), true) => next.push(k.clone()),
                            (_, false) => next.push(key_from_request(v)?),
                            (None, true) => {
                                return Err(bad(
                                    "Property key is required for a new keyCredential.",
                                ));
                            }
                        }
                    }
                    a.key_credentials = next;
                }
                Ok::<_, ApiError>(())
            })?;
            Ok(Reply::empty(StatusCode::NO_CONTENT))
        }
        (&Method::DELETE, []) => {
            state.change_directory(|f| {
                f.apps.retain(|a| a.object_id != object_id);
                Ok::<_, ApiError>(())
            })?;
            Ok(Reply::empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, [action]) if action.eq_ignore_ascii_case("addPassword") => {
            let b = body(req)?;
            let pc = &b["passwordCredential"];
            let now = OffsetDateTime::now_utc();
            // Graph's default lifetime is two years; the maximum too, for new secrets.
            let end = match pc["endDateTime"].as_str() {
                Some(t) => OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| bad(format!("Invalid endDateTime '{t}'.")))?,
                None => now + time::Duration::days(730),
            };
            if end <= now {
                return Err(bad("Key credential end date is invalid."));
            }
            let end = match state.faults.secret_lifetime() {
                Some(cap) => end.min(now + cap),
                None => end,
            };
            let secret = Secret {
                id: Uuid::new_v4(),
                // Entra secrets are 40 characters with a 3-character hint and a `~`.
                value: format!("{}~{}", random(3), random(36)),
                expires: end,
                display_name: pc["displayName"].as_str().map(str::to_owned),
                start: Some(now),
            };
            let mut out = password_json(&secret);
            out["secretText"] = json!(secret.value);
            out["@odata.context"] = json!(format!(
                "{base}/v1.0/$metadata#microsoft.graph.passwordCredential"
            ));
            state.change_directory(|f| {
                change(f, object_id, key)?.secrets.push(secret);
                Ok::<_, ApiError>(())
            })?;
            Ok(Reply::json(StatusCode::OK, out))
        }
        (&Method::POST, [action]) if action.eq_ignore_ascii_case("addKey") => {
            let b = body(req)?;
            verify_proof(state, app, b["proof"].as_str())?;
            let cred = KeyCredential {
                id: Uuid::new_v4(),
                ..key_from_request(&b["keyCredential"])?
            };
            let mut out = key_json(&cred);
            out["@odata.context"] = json!(format!(
                "{base}/v1.0/$metadata#microsoft.graph.keyCredential"
            ));
            state.change_directory(|f| {
                change(f, object_id, key)?
                    .key_credentials
                    .push(cred.clone());
                Ok::<_, ApiError>(())
            })?;
            Ok(Reply::json(StatusCode::OK, out))
        }
        (&Method::POST, [action]) if action.eq_ignore_ascii_case("removeKey") => {
            let b = body(req)?;
            verify_proof(state, app, b["proof"].as_str())?;
            let key_id = b["keyId"]
                .as_str()
                .and_then(|k| Uuid::parse_str(k).ok())
                .ok_or_else(|| bad("Property keyId is required."))?;
            state.change_directory(|f| {
                let a = change(f, object_id, key)?;
                let before = a.key_credentials.len();
                a.key_credentials.retain(|k| k.id != key_id);
                if a.key_credentials.len() == before {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "Request_ResourceNotFound",
                        format!("No key credential found with keyId {key_id}."),
                    ));
                }
                Ok(())
            })?;
            Ok(Reply::empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, [action]) if action.eq_ignore_ascii_case("removePassword") => {
            let b = body(req)?;
            let key_id = b["keyId"]
                .as_str()
                .and_then(|k| Uuid::parse_str(k).ok())
                .ok_or_else(|| bad("Property keyId is required."))?;
            state.change_directory(|f| {
                let a = change(f, object_id, key)?;
                let before = a.secrets.len();
                a.secrets.retain(|s| s.id != key_id);
                if a.secrets.len() == before {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "Request_ResourceNotFound",
                        format!("No password credential found with keyId {key_id}."),
                    ));
                }
                Ok(())
            })?;
            Ok(Reply::empty(StatusCode::NO_CONTENT))
        }
        (&Method::GET, [owners]) if owners.eq_ignore_ascii_case("owners") => {
            let items = app
                .owners
                .iter()
                .map(|o| {
                    match fixture.user_by_id(*o) {
                        Some(u) => json!({"@odata.type": "#microsoft.graph.user", "id": o.to_string(), "userPrincipalName": u.upn, "displayName": u.display_name}),
                        None => json!({"@odata.type": "#microsoft.graph.servicePrincipal", "id": o.to_string()}),
                    }
                })
                .collect();
            Ok(list(base, "directoryObjects", items))
        }
        (&Method::POST, [owners, r]) if owners.eq_ignore_ascii_case("owners") && *r == "$ref" => {
            let b = body(req)?;
            let target = b["@odata.id"]
                .as_str()
                .and_then(|u| u.rsplit('/').next())
                .and_then(|id| Uuid::parse_str(id).ok())
                .ok_or_else(|| bad("Property @odata.id is required: https://graph.microsoft.com/v1.0/directoryObjects/{id}"))?;
            let known = fixture.user_by_id(target).is_some()
                || fixture
                    .apps
                    .iter()
                    .any(|a| a.service_principal_id == target && a.has_service_principal);
            if !known {
                return Err(not_found(&target.to_string()));
            }
            state.change_directory(|f| {
                let a = change(f, object_id, key)?;
                if a.owners.contains(&target) {
                    return Err(bad("One or more added object references already exist for the following modified properties: 'owners'."));
                }
                a.owners.push(target);
                Ok(())
            })?;
            Ok(Reply::empty(StatusCode::NO_CONTENT))
        }
        _ => Err(ApiError::resource_not_found(
            rest.last().copied().unwrap_or(key),
        )),
    }
}

fn random(n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

fn principal_call(
    state: &Arc<EmulatorState>,
    req: &Req,
    caller: &Caller,
    fixture: &Fixture,
    sp: Principal<'_>,
    rest: &[&str],
) -> ApiResult {
    let tenant = caller.tenant_id;
    let base = req.base.as_str();
    match (&req.method, rest) {
        (&Method::GET, []) => {
            if !allowed(fixture, caller, Need::Read, None) {
                return Err(denied());
            }
            Ok(Reply::json(
                StatusCode::OK,
                match sp {
                    Principal::Resource(id, name, roles) => {
                        resource_sp_json(tenant, id, name, roles)
                    }
                    Principal::App(a) => sp_json(a),
                },
            ))
        }
        (&Method::GET, [nav])
            if nav.eq_ignore_ascii_case("appRoleAssignments")
                || nav.eq_ignore_ascii_case("appRoleAssignedTo") =>
        {
            if !allowed(fixture, caller, Need::Read, None) {
                return Err(denied());
            }
            let items: Vec<Value> = match (&sp, nav.eq_ignore_ascii_case("appRoleAssignments")) {
                (Principal::App(a), true) => assignments_of(a),
                (Principal::Resource(id, _, _), false) => fixture
                    .apps
                    .iter()
                    .filter(|a| a.tenant_id == tenant)
                    .flat_map(assignments_of)
                    .filter(|v| v["resourceId"] == resource_sp_id(tenant, *id).to_string())
                    .collect(),
                _ => Vec::new(),
            };
            Ok(list(base, "appRoleAssignments", items))
        }
        (&Method::POST, [nav])
            if nav.eq_ignore_ascii_case("appRoleAssignments")
                || nav.eq_ignore_ascii_case("appRoleAssignedTo") =>
        {
            if !allowed(fixture, caller, Need::Grant, None) {
                return Err(denied());
            }
            let b = body(req)?;
            let field = |k: &str| {
                b[k].as_str()
                    .and_then(|v| Uuid::parse_str(v).ok())
                    .ok_or_else(|| bad(format!("Property {k} is required and must be a GUID.")))
            };
            let (principal, resource, role_id) = (
                field("principalId")?,
                field("resourceId")?,
                field("appRoleId")?,
            );
            let (resource_app, resource_name, roles) = resources()
                .into_iter()
                .find(|(id, _, _)| resource_sp_id(tenant, *id) == resource)
                .ok_or_else(|| not_found(&resource.to_string()))?;
            let (_, value, _) = roles
                .iter()
                .find(|(id, _, _)| *id == role_id)
                .ok_or_else(|| bad("Permission being assigned was not found on application"))?;
            let out = state.change_directory(|f| {
                let app = f
                    .apps
                    .iter_mut()
                    .find(|a| {
                        a.tenant_id == tenant
                            && a.has_service_principal
                            && a.service_principal_id == principal
                    })
                    .ok_or_else(|| not_found(&principal.to_string()))?;
                let held = app.application_permissions.entry(resource_app).or_default();
                if held.iter().any(|v| v == value) {
                    return Err(bad(
                        "Permission being assigned already exists on the object",
                    ));
                }
                held.push((*value).to_owned());
                Ok(json!({
                    "@odata.context": format!("{base}/v1.0/$metadata#appRoleAssignments/$entity"),
                    "id": assignment_id(principal, resource_app, value),
                    "appRoleId": role_id.to_string(),
                    "createdDateTime": rfc3339(OffsetDateTime::now_utc()),
                    "principalDisplayName": app.display_name,
                    "principalId": principal.to_string(),
                    "principalType": "ServicePrincipal",
                    "resourceDisplayName": resource_name,
                    "resourceId": resource.to_string(),
                }))
            })?;
            Ok(Reply::json(StatusCode::CREATED, out))
        }
        _ => Err(ApiError::resource_not_found(
            rest.last().copied().unwrap_or_default(),
        )),
    }
}
