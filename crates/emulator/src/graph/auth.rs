//! Who is calling and what may they touch: validation of the bearer tokens the emulator
//! itself issued, then Graph's and Exchange's authorisation rules.
//!
//! Token checks, in Graph's order: signature by one of the emulator's keys, lifetime
//! (`exp`/`nbf`, no leeway: tests shorten lifetimes to provoke expiry), audience (Graph's URI
//! or app id; an Outlook or IMAP token gets Graph's "Invalid audience."), issuer (a tenant of
//! the fixture).
//!
//! Authorisation: app-only tokens (`idtyp` = app) need the role in `roles`; delegated tokens
//! the permission in `scp` and may only touch the signed-in user's own mailbox. On top, like
//! an Exchange application access policy, an app may be limited to a list of mailboxes in
//! the fixture (`mailbox_access`).

use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use kurir_graph::{GRAPH_APP_ID, GRAPH_RESOURCE};
use serde::Deserialize;
use uuid::Uuid;

use super::reply::ApiError;
use super::store::Mailbox;
use crate::state::EmulatorState;

/// What an endpoint needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    Read,
    ReadWrite,
    Send,
}

impl Permission {
    /// Whether a granted permission name covers this need (ReadWrite implies Read).
    fn granted_by(self, name: &str) -> bool {
        let n = name.to_ascii_lowercase();
        match self {
            Permission::Read => matches!(n.as_str(), "mail.read" | "mail.readwrite"),
            Permission::ReadWrite => n == "mail.readwrite",
            Permission::Send => n == "mail.send",
        }
    }
}

#[derive(Clone, Debug)]
pub enum CallerKind {
    /// App-only (client credentials).
    App { roles: Vec<String> },
    /// Delegated: a signed-in user.
    User { oid: Uuid, scopes: Vec<String> },
}

/// A validated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub app_id: Uuid,
    pub tenant_id: Uuid,
    pub kind: CallerKind,
}

#[derive(Deserialize)]
struct Claims {
    aud: Option<String>,
    iss: Option<String>,
    tid: Option<String>,
    appid: Option<String>,
    idtyp: Option<String>,
    oid: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    scp: Option<String>,
}

fn invalid() -> ApiError {
    ApiError::unauthorized("Access token validation failure.")
}

/// Validates the `Authorization: Bearer …` header.
pub fn authenticate(state: &EmulatorState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("Access token is empty."))?;
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| ApiError::unauthorized("Invalid JWT token. The token is malformed."))?;
    let keys = &state.keys;
    let key = [&keys.app, &keys.user]
        .into_iter()
        .find(|k| header.kid.as_deref() == Some(k.kid.as_str()))
        .ok_or_else(invalid)?;
    let decoding =
        DecodingKey::from_rsa_pem(key.public_pem.as_bytes()).map_err(ApiError::internal)?;
    let mut v = Validation::new(Algorithm::RS256);
    v.leeway = 0;
    v.validate_aud = false;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp"]);
    let data = jsonwebtoken::decode::<Claims>(token, &decoding, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::ExpiredSignature => {
                ApiError::unauthorized("Lifetime validation failed, the token is expired.")
            }
            ErrorKind::ImmatureSignature => {
                ApiError::unauthorized("Lifetime validation failed, the token is not yet valid.")
            }
            _ => invalid(),
        }
    })?;
    let c = data.claims;
    let aud = c.aud.unwrap_or_default();
    let aud_ok = aud
        .trim_end_matches('/')
        .eq_ignore_ascii_case(GRAPH_RESOURCE)
        || aud.eq_ignore_ascii_case(GRAPH_APP_ID);
    if !aud_ok {
        return Err(ApiError::unauthorized(
            "Access token validation failure. Invalid audience.",
        ));
    }
    let tenant_id = c
        .tid
        .as_deref()
        .and_then(|t| Uuid::parse_str(t).ok())
        .filter(|t| state.fixture().tenant_by_id(*t).is_some())
        .filter(|t| c.iss.as_deref() == Some(format!("https://sts.windows.net/{t}/").as_str()))
        .ok_or_else(|| {
            ApiError::unauthorized("Access token validation failure. Invalid issuer.")
        })?;
    let app_id = c
        .appid
        .as_deref()
        .and_then(|a| Uuid::parse_str(a).ok())
        .ok_or_else(invalid)?;
    let kind = if c.idtyp.as_deref() == Some("app") {
        CallerKind::App { roles: c.roles }
    } else {
        CallerKind::User {
            oid: c
                .oid
                .as_deref()
                .and_then(|o| Uuid::parse_str(o).ok())
                .ok_or_else(invalid)?,
            scopes: c
                .scp
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        }
    };
    Ok(Caller {
        app_id,
        tenant_id,
        kind,
    })
}

/// Whether `caller` may do `need` on `mailbox`.
pub fn authorize(
    state: &EmulatorState,
    caller: &Caller,
    mailbox: &Mailbox,
    need: Permission,
) -> Result<(), ApiError> {
    match &caller.kind {
        CallerKind::App { roles } => {
            if !roles.iter().any(|r| need.granted_by(r)) {
                return Err(ApiError::access_denied());
            }
            let fixture = state.fixture();
            let policy = fixture
                .app(&caller.app_id.to_string())
                .and_then(|a| a.mailbox_access.as_ref());
            if let Some(allowed) = policy
                && !allowed
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&mailbox.address))
            {
                return Err(ApiError::blocked_by_policy());
            }
            Ok(())
        }
        CallerKind::User { oid, scopes } => {
            if !scopes.iter().any(|s| need.granted_by(s)) || *oid != mailbox.object_id {
                return Err(ApiError::access_denied());
            }
            Ok(())
        }
    }
}
