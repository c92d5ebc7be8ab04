//! Microsoft Entra ID v2.0 endpoints: one file per endpoint or grant.
//!
//! The router here only wires paths; each handler resolves the `{tenant}` path segment the way
//! Entra does (GUID, verified domain, or one of the `common` / `organizations` / `consumers`
//! aliases) and answers errors with [`errors::EntraError`].

pub mod client_auth;
pub mod devicecode;
pub mod discovery;
pub mod errors;
pub mod scope;
pub mod token;
pub mod userrealm;

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use uuid::Uuid;

use crate::fixture::{Fixture, Tenant};
use crate::state::EmulatorState;
use errors::EntraError;

pub fn router() -> Router<Arc<EmulatorState>> {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token::handle))
        .route("/{tenant}/oauth2/v2.0/devicecode", post(devicecode::handle))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(discovery::keys))
        .route("/common/discovery/instance", get(discovery::instance))
        .route("/common/userrealm/{username}", get(userrealm::handle))
}

/// The `{tenant}` segment of a request, resolved.
#[derive(Debug, Clone, Copy)]
pub enum TenantSel<'a> {
    Tenant(&'a Tenant),
    Common,
    Organizations,
    Consumers,
}

impl<'a> TenantSel<'a> {
    pub fn tenant(&self) -> Option<&'a Tenant> {
        match self {
            TenantSel::Tenant(t) => Some(t),
            _ => None,
        }
    }
}

fn looks_like_domain(s: &str) -> bool {
    s.contains('.')
        && !s.starts_with('.')
        && !s.ends_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// Resolves `{tenant}` as Entra does: unknown GUIDs and unknown domains are 90002, anything
/// that is neither a GUID nor a DNS name is 900023.
pub fn resolve_tenant<'a>(
    fixture: &'a Fixture,
    segment: &str,
) -> Result<TenantSel<'a>, EntraError> {
    match segment.to_ascii_lowercase().as_str() {
        "common" => return Ok(TenantSel::Common),
        "organizations" => return Ok(TenantSel::Organizations),
        "consumers" => return Ok(TenantSel::Consumers),
        _ => {}
    }
    if Uuid::parse_str(segment).is_ok() || looks_like_domain(segment) {
        fixture
            .tenant(segment)
            .map(TenantSel::Tenant)
            .ok_or_else(|| EntraError::TenantNotFound {
                tenant: segment.to_string(),
            })
    } else {
        Err(EntraError::TenantInvalid {
            tenant: segment.to_string(),
        })
    }
}

/// `https://{Host}` as the client addressed us, so URLs we hand out (discovery, audiences)
/// use the same host form (localhost, 127.0.0.x, …) the client trusts.
pub fn external_base(headers: &HeaderMap, state: &EmulatorState) -> String {
    match headers.get("host").and_then(|h| h.to_str().ok()) {
        Some(host) if !host.is_empty() => format!("https://{host}"),
        _ => format!("https://{}", state.listen),
    }
}
