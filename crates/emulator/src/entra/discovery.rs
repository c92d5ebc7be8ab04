//! OpenID Connect discovery, the signing keys (JWKS) and instance discovery.
//!
//! MSAL for Python reads `{authority}/v2.0/.well-known/openid-configuration` before anything
//! else and takes the token and device authorization endpoints from it, so the URLs here use
//! the host the client addressed (see [`super::external_base`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::errors::RequestContext;
use super::{TenantSel, external_base, resolve_tenant};
use crate::state::EmulatorState;

/// Microsoft's fixed tenant id of personal accounts, which `/consumers` stands for.
const CONSUMERS_TENANT_ID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// (path segment for endpoints, tenant id text for the issuer)
fn tenant_strings(sel: TenantSel<'_>, segment: &str) -> (String, String) {
    match sel {
        TenantSel::Tenant(t) => (t.id.to_string(), t.id.to_string()),
        TenantSel::Consumers => (segment.to_string(), CONSUMERS_TENANT_ID.to_string()),
        // The literal placeholder is what Entra publishes for the multi-tenant aliases.
        _ => (segment.to_string(), "{tenantid}".to_string()),
    }
}

pub async fn openid_configuration(
    State(state): State<Arc<EmulatorState>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ctx = RequestContext::from_headers(&headers);
    let fixture = state.fixture();
    let sel = match resolve_tenant(&fixture, &segment) {
        Ok(s) => s,
        Err(e) => return e.into_discovery_response(&ctx),
    };
    let base = external_base(&headers, &state);
    let (seg, tid) = tenant_strings(sel, &segment);
    let body = json!({
        "token_endpoint": format!("{base}/{seg}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{seg}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{tid}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{base}/{seg}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{seg}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{seg}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
            "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr",
            "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{base}/{seg}/kerberos"),
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    });
    let mut r = Json(body).into_response();
    ctx.decorate(r.headers_mut());
    r
}

pub async fn keys(
    State(state): State<Arc<EmulatorState>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ctx = RequestContext::from_headers(&headers);
    let fixture = state.fixture();
    let sel = match resolve_tenant(&fixture, &segment) {
        Ok(s) => s,
        Err(e) => return e.into_discovery_response(&ctx),
    };
    let base = external_base(&headers, &state);
    let (_, tid) = tenant_strings(sel, &segment);
    Json(state.keys.jwks(&format!("{base}/{tid}/v2.0"))).into_response()
}

/// `GET /common/discovery/instance?api-version=1.1&authorization_endpoint=…`: the
/// authority metadata MSAL libraries fetch when instance discovery is on.
pub async fn instance(
    State(state): State<Arc<EmulatorState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let base = external_base(&headers, &state);
    let host = base.trim_start_matches("https://").to_string();
    let tenant = query
        .get("authorization_endpoint")
        .and_then(|a| url::Url::parse(a).ok())
        .and_then(|u| u.path_segments()?.next().map(String::from))
        .unwrap_or_else(|| "common".to_string());
    Json(json!({
        "tenant_discovery_endpoint": format!("{base}/{tenant}/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": [{
            "preferred_network": host,
            "preferred_cache": host,
            "aliases": [host],
        }],
    }))
    .into_response()
}
