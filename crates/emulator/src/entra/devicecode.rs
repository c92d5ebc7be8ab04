//! Device authorization grant: `POST /{tenant}/oauth2/v2.0/devicecode`, the polling side of
//! the token endpoint, and the test hooks that play the person at the browser.
//!
//! Nobody can open microsoft.com/devicelogin offline, so tests approve or decline a pending
//! code through [`approve`] / [`decline`] (Rust handle or `POST /_emulator/devicecode/…`).
//! MFA is not checked when redeeming: the second factor happens in the browser, which is
//! exactly why device code is the answer for MFA accounts that ROPC refuses.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::errors::{EntraError, RequestContext};
use super::token::{TokenRequest, check_user_can_sign_in, issue_user_tokens, random_token};
use super::{TenantSel, resolve_tenant, scope};
use crate::state::{DeviceCode, DeviceCodeStatus, EmulatorState, lock};

/// Entra's values: codes live 15 minutes and clients poll every 5 seconds.
const EXPIRES_IN: i64 = 900;
const INTERVAL: u64 = 5;
const VERIFICATION_URI: &str = "https://microsoft.com/devicelogin";

/// Why a test hook could not approve or decline a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceCodeHookError {
    #[error(
        "no pending device code has user code '{0}'; use the user_code from the /devicecode answer (codes are single-use and expire after 15 minutes)"
    )]
    UnknownUserCode(String),
    #[error("user '{0}' is not in the fixture; approve as one of its users (e.g. the demo user)")]
    UnknownUser(String),
    #[error(
        "user '{user}' belongs to another tenant than the one the device code was requested for; approve as a user of that tenant"
    )]
    WrongTenant { user: String },
    #[error("device code '{0}' has expired; start a new device flow")]
    Expired(String),
    #[error("device code '{0}' was already approved or declined")]
    AlreadyDecided(String),
}

pub async fn handle(
    State(state): State<Arc<EmulatorState>>,
    Path(tenant_segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = RequestContext::from_headers(&headers);
    state
        .counters
        .devicecode_requests
        .fetch_add(1, Ordering::SeqCst);
    let latency = state.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&body).into_owned().collect();
    match start(&state, &tenant_segment, &form) {
        Ok(v) => {
            let mut r = axum::Json(v).into_response();
            ctx.decorate(r.headers_mut());
            r
        }
        Err(e) => e.into_response_with(&ctx),
    }
}

fn start(
    state: &EmulatorState,
    tenant_segment: &str,
    form: &std::collections::HashMap<String, String>,
) -> Result<Value, EntraError> {
    let fixture = state.fixture();
    let sel = resolve_tenant(&fixture, tenant_segment)?;
    if matches!(sel, TenantSel::Consumers) {
        return Err(EntraError::UnsupportedOnCommon);
    }
    let client_id = form
        .get("client_id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| super::token::missing("client_id"))?;
    let unknown = || EntraError::UnknownApp {
        client_id: client_id.clone(),
        tenant: tenant_segment.to_string(),
    };
    let app = fixture.app(client_id).ok_or_else(unknown)?;
    if let TenantSel::Tenant(t) = sel
        && t.id != app.tenant_id
    {
        return Err(unknown());
    }
    let tenant_name = sel
        .tenant()
        .map_or(tenant_segment.to_string(), |t| t.display_name.clone());
    let scope = scope::parse(form.get("scope").map_or("", String::as_str), &tenant_name)?;
    let user_code = new_user_code();
    let device_code = format!("DAQABIQEAAAD{}", random_token(140));
    lock(&state.device_codes).insert(
        device_code.clone(),
        DeviceCode {
            device_code: device_code.clone(),
            user_code: user_code.clone(),
            client_id: app.client_id,
            tenant_id: sel.tenant().map(|t| t.id),
            scope,
            expires_at: OffsetDateTime::now_utc() + time::Duration::seconds(EXPIRES_IN),
            status: DeviceCodeStatus::Pending,
        },
    );
    Ok(json!({
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": VERIFICATION_URI,
        "expires_in": EXPIRES_IN,
        "interval": INTERVAL,
        "message": format!("To sign in, use a web browser to open the page {VERIFICATION_URI} and enter the code {user_code} to authenticate."),
    }))
}

/// Nine characters without look-alikes, like Entra's user codes.
fn new_user_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..9)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Token endpoint, `grant_type=urn:ietf:params:oauth:grant-type:device_code`.
pub fn redeem(req: &TokenRequest<'_>, sel: TenantSel<'_>) -> Result<Value, EntraError> {
    let code = req.param("device_code")?.to_string();
    let app = req.app(sel)?;
    let auth = req.authenticate(app, true)?;
    let state = req.state;
    let entry = {
        let mut codes = lock(&state.device_codes);
        let Some(entry) = codes.get(&code).cloned() else {
            return Err(EntraError::BadVerificationCode);
        };
        if entry.client_id != app.client_id {
            return Err(EntraError::BadVerificationCode);
        }
        if OffsetDateTime::now_utc() >= entry.expires_at {
            codes.remove(&code);
            return Err(EntraError::DeviceCodeExpired);
        }
        match entry.status {
            DeviceCodeStatus::Pending => return Err(EntraError::AuthorizationPending),
            DeviceCodeStatus::Declined => {
                codes.remove(&code);
                return Err(EntraError::AuthorizationDeclined);
            }
            DeviceCodeStatus::Approved { .. } => {
                codes.remove(&code);
                entry
            }
        }
    };
    let DeviceCodeStatus::Approved { user_id } = entry.status else {
        return Err(EntraError::BadVerificationCode);
    };
    let user = req
        .fixture
        .user_by_id(user_id)
        .ok_or(EntraError::BadVerificationCode)?;
    let tenant = req
        .fixture
        .tenant_by_id(user.tenant_id)
        .ok_or(EntraError::BadVerificationCode)?;
    check_user_can_sign_in(user)?;
    issue_user_tokens(req, tenant, app, auth, user, &entry.scope, &["pwd", "mfa"])
}

fn find_pending<'a>(
    codes: &'a mut std::collections::HashMap<String, DeviceCode>,
    user_code: &str,
) -> Result<&'a mut DeviceCode, DeviceCodeHookError> {
    let wanted = user_code.trim().to_ascii_uppercase();
    let entry = codes
        .values_mut()
        .find(|c| c.user_code == wanted)
        .ok_or_else(|| DeviceCodeHookError::UnknownUserCode(user_code.to_string()))?;
    if OffsetDateTime::now_utc() >= entry.expires_at {
        return Err(DeviceCodeHookError::Expired(user_code.to_string()));
    }
    if entry.status != DeviceCodeStatus::Pending {
        return Err(DeviceCodeHookError::AlreadyDecided(user_code.to_string()));
    }
    Ok(entry)
}

/// Plays the user who signs in at the verification page and accepts.
pub fn approve(
    state: &EmulatorState,
    user_code: &str,
    username: &str,
) -> Result<(), DeviceCodeHookError> {
    let fixture = state.fixture();
    let user = fixture
        .user(username)
        .ok_or_else(|| DeviceCodeHookError::UnknownUser(username.to_string()))?;
    let mut codes = lock(&state.device_codes);
    let entry = find_pending(&mut codes, user_code)?;
    if entry.tenant_id.is_some_and(|t| t != user.tenant_id) {
        return Err(DeviceCodeHookError::WrongTenant {
            user: username.to_string(),
        });
    }
    entry.status = DeviceCodeStatus::Approved {
        user_id: user.object_id,
    };
    Ok(())
}

/// Plays the user who declines at the verification page.
pub fn decline(state: &EmulatorState, user_code: &str) -> Result<(), DeviceCodeHookError> {
    let mut codes = lock(&state.device_codes);
    find_pending(&mut codes, user_code)?.status = DeviceCodeStatus::Declined;
    Ok(())
}

/// Pending user codes (for people driving the demo by hand).
pub fn pending(state: &EmulatorState) -> Vec<Value> {
    let now = OffsetDateTime::now_utc();
    lock(&state.device_codes)
        .values()
        .filter(|c| c.status == DeviceCodeStatus::Pending && c.expires_at > now)
        .map(|c| json!({"user_code": c.user_code, "client_id": c.client_id.to_string(), "scope": c.scope.raw}))
        .collect()
}

/// Makes a pending code expire now, to exercise `expired_token` without waiting 15 minutes.
pub fn expire(state: &EmulatorState, user_code: &str) -> Result<(), DeviceCodeHookError> {
    let mut codes = lock(&state.device_codes);
    let wanted = user_code.trim().to_ascii_uppercase();
    let entry = codes
        .values_mut()
        .find(|c| c.user_code == wanted)
        .ok_or_else(|| DeviceCodeHookError::UnknownUserCode(user_code.to_string()))?;
    entry.expires_at = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    Ok(())
}
