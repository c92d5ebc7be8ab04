//! `POST /{tenant}/oauth2/v2.0/token`: client credentials, password (ROPC), device code
//! redemption and refresh, and the minting of Microsoft-shaped tokens.
//!
//! Access tokens are v1.0 tokens as Graph and Exchange Online receive them even from the v2.0
//! endpoint (`iss` = `https://sts.windows.net/{tid}/`, `ver` 1.0). App-only tokens are signed
//! with the app key and delegated ones with the user key (see `keys.rs` for why).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde_json::{Value, json};
use sha2::Digest;
use time::OffsetDateTime;
use uuid::Uuid;

use super::client_auth::{ClientAuth, Credentials, authenticate};
use super::errors::{EntraError, RequestContext};
use super::scope::{self, GRAPH_APP_ID, Resource, ScopeRequest};
use super::{TenantSel, devicecode, external_base, resolve_tenant};
use crate::fixture::{App, Tenant, User};
use crate::keys::TokenKind;
use crate::state::{EmulatorState, RefreshGrant, lock};

pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// One token request, parsed once and handed to the grant.
pub struct TokenRequest<'a> {
    pub state: &'a EmulatorState,
    /// The directory when the request came in (one snapshot for the whole request).
    pub fixture: Arc<crate::fixture::Fixture>,
    pub form: HashMap<String, String>,
    pub creds: Credentials,
    pub base: String,
    pub tenant_segment: String,
    pub host: Option<String>,
}

pub async fn handle(
    State(state): State<Arc<EmulatorState>>,
    Path(tenant_segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = RequestContext::from_headers(&headers);
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let creds = Credentials::collect(
        &form,
        headers.get("authorization").and_then(|v| v.to_str().ok()),
    );
    state.counters.token_requests.fetch_add(1, Ordering::SeqCst);
    {
        let key = (
            creds.client_id.clone().unwrap_or_default(),
            form.get("scope").cloned().unwrap_or_default(),
        );
        *lock(&state.counters.by_client_scope)
            .entry(key)
            .or_default() += 1;
    }
    let latency = state.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if state.faults.take_failure() {
        return EntraError::TemporarilyUnavailable.into_response_with(&ctx);
    }
    let req = TokenRequest {
        fixture: state.fixture(),
        state: &state,
        form,
        creds,
        base: external_base(&headers, &state),
        tenant_segment,
        host: headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(String::from),
    };
    match process(&req) {
        Ok(body) => {
            let mut response = axum::Json(body).into_response();
            ctx.decorate(response.headers_mut());
            response
        }
        Err(e) => {
            tracing::debug!(code = e.code(), "token request refused");
            e.into_response_with(&ctx)
        }
    }
}

fn process(req: &TokenRequest<'_>) -> Result<Value, EntraError> {
    let sel = resolve_tenant(&req.fixture, &req.tenant_segment)?;
    let grant = req
        .form
        .get("grant_type")
        .filter(|g| !g.is_empty())
        .ok_or_else(|| missing("grant_type"))?;
    if req.creds.client_id.is_none() {
        return Err(missing("client_id"));
    }
    match grant.as_str() {
        "client_credentials" => client_credentials(req, sel),
        "password" => password(req, sel),
        DEVICE_CODE_GRANT => devicecode::redeem(req, sel),
        "refresh_token" => refresh(req, sel),
        other => Err(EntraError::UnsupportedGrantType {
            grant_type: other.to_string(),
        }),
    }
}

pub fn missing(name: &str) -> EntraError {
    EntraError::MissingParameter {
        name: name.to_string(),
    }
}

impl TokenRequest<'_> {
    pub fn param(&self, name: &str) -> Result<&str, EntraError> {
        self.form
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing(name))
    }

    /// The app named by `client_id`, which must be registered in the addressed tenant
    /// (apps are single-tenant here); the aliases accept an app from any tenant.
    pub fn app(&self, sel: TenantSel<'_>) -> Result<&App, EntraError> {
        let client_id = self.creds.client_id.clone().unwrap_or_default();
        let unknown = || EntraError::UnknownApp {
            client_id: client_id.clone(),
            tenant: self.tenant_segment.clone(),
        };
        let app = self.fixture.app(&client_id).ok_or_else(unknown)?;
        match sel {
            TenantSel::Tenant(t) if t.id != app.tenant_id => Err(unknown()),
            _ if app.disabled => Err(EntraError::AppDisabled {
                client_id: app.client_id.to_string(),
                app_name: app.display_name.clone(),
            }),
            _ => Ok(app),
        }
    }

    pub fn authenticate(&self, app: &App, public_allowed: bool) -> Result<ClientAuth, EntraError> {
        authenticate(self.state, app, &self.creds, public_allowed, &|aud| {
            self.assertion_audience_ok(aud)
        })
    }

    /// Whether a client assertion's `aud` names this token endpoint: Microsoft's current form
    /// `…/{tenant}/oauth2/v2.0/token`, the older `…/{tenant}/v2.0` (and v1 `…/oauth2/token`),
    /// on any host that refers to this emulator.
    fn assertion_audience_ok(&self, aud: &str) -> bool {
        let Ok(url) = url::Url::parse(aud) else {
            return false;
        };
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let request_host = self
            .host
            .as_deref()
            .map(|h| {
                h.rsplit_once(':').map_or(h, |(name, port)| {
                    if port.chars().all(|c| c.is_ascii_digit()) {
                        name
                    } else {
                        h
                    }
                })
            })
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'));
        let host_ok = host.eq_ignore_ascii_case("localhost")
            || host.eq_ignore_ascii_case("login.microsoftonline.com")
            || request_host.is_some_and(|r| r.eq_ignore_ascii_case(host))
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() || ip == self.state.listen.ip());
        if !host_ok {
            return false;
        }
        let segments: Vec<&str> = url.path().trim_matches('/').split('/').collect();
        let path_ok = matches!(
            segments.as_slice(),
            [_, "oauth2", "v2.0", "token"] | [_, "v2.0"] | [_, "oauth2", "token"]
        );
        if !path_ok {
            return false;
        }
        let same_tenant = |a: &str, b: &str| {
            if a.eq_ignore_ascii_case(b) {
                return true;
            }
            let fixture = &self.fixture;
            matches!((fixture.tenant(a), fixture.tenant(b)), (Some(x), Some(y)) if x.id == y.id)
        };
        same_tenant(segments[0], &self.tenant_segment)
    }
}

fn client_credentials(req: &TokenRequest<'_>, sel: TenantSel<'_>) -> Result<Value, EntraError> {
    // App-only tokens are always for one directory: Entra refuses the aliases.
    let Some(tenant) = sel.tenant() else {
        return Err(EntraError::NoTenantInformation);
    };
    let app = req.app(sel)?;
    let auth = req.authenticate(app, false)?;
    let raw_scope = req.form.get("scope").cloned().unwrap_or_default();
    let parsed = scope::parse(&raw_scope, &tenant.display_name)?;
    let rs = match parsed.resource {
        Some(rs) if rs.default && rs.permissions.is_empty() => rs,
        _ => {
            return Err(EntraError::ScopeWithoutDefault {
                scope: raw_scope.trim().to_string(),
            });
        }
    };
    // Without admin consent Entra still issues the token, just without roles: that is
    // what makes Exchange answer "token contains no permissions" later.
    let roles: Vec<String> = if app.admin_consent {
        app.application_permissions
            .get(&rs.resource.app_id)
            .cloned()
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let lifetime = req.state.faults.token_lifetime().as_secs() as i64;
    let sts = format!("https://sts.windows.net/{}/", tenant.id);
    let mut claims = json!({
        "aud": rs.audience,
        "iss": sts,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "aio": random_token(48),
        "app_displayname": app.display_name,
        "appid": app.client_id.to_string(),
        "appidacr": auth.appidacr(),
        "idp": sts,
        "idtyp": "app",
        "oid": app.service_principal_id.to_string(),
        "rh": random_token(40),
        "sub": app.service_principal_id.to_string(),
        "tid": tenant.id.to_string(),
        "uti": random_token(22),
        "ver": "1.0",
    });
    if !roles.is_empty() {
        claims["roles"] = json!(roles);
    }
    let access_token = sign(req, TokenKind::App, &claims)?;
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    }))
}

fn password(req: &TokenRequest<'_>, sel: TenantSel<'_>) -> Result<Value, EntraError> {
    if matches!(sel, TenantSel::Common | TenantSel::Consumers) {
        return Err(EntraError::UnsupportedOnCommon);
    }
    let username = req.param("username")?;
    let password = req.param("password")?;
    let app = req.app(sel)?;
    let auth = req.authenticate(app, true)?;
    let fixture = &req.fixture;
    // /organizations finds the home tenant from the user's domain, like home realm discovery.
    let tenant = match sel {
        TenantSel::Tenant(t) => t,
        _ => {
            let domain = username
                .rsplit_once('@')
                .map(|(_, d)| d)
                .unwrap_or_default();
            fixture
                .tenant(domain)
                .ok_or_else(|| EntraError::UnknownUser {
                    tenant: domain.to_string(),
                })?
        }
    };
    if app.tenant_id != tenant.id {
        return Err(EntraError::UnknownApp {
            client_id: app.client_id.to_string(),
            tenant: tenant.primary_domain().to_string(),
        });
    }
    let scope = scope::parse(
        req.form.get("scope").map_or("", String::as_str),
        &tenant.display_name,
    )?;
    let user = fixture
        .user(username)
        .filter(|u| u.tenant_id == tenant.id)
        .ok_or_else(|| EntraError::UnknownUser {
            tenant: tenant.primary_domain().to_string(),
        })?;
    if user.locked {
        return Err(EntraError::UserLocked);
    }
    if user.password != password {
        return Err(EntraError::BadPassword);
    }
    check_user_can_sign_in(user)?;
    let resource_id = scope
        .resource
        .as_ref()
        .map_or(GRAPH_APP_ID, |r| r.resource.app_id)
        .to_string();
    // ROPC cannot do the interactive second factor, so MFA policies end it here.
    if user.mfa_required {
        return Err(EntraError::MfaRequired {
            resource: resource_id,
        });
    }
    if user.mfa_registration_required {
        return Err(EntraError::MfaEnrollmentRequired {
            resource: resource_id,
        });
    }
    issue_user_tokens(req, tenant, app, auth, user, &scope, &["pwd"])
}

/// Account state checks that apply to every delegated grant.
pub fn check_user_can_sign_in(user: &User) -> Result<(), EntraError> {
    if user.locked {
        return Err(EntraError::UserLocked);
    }
    if user.disabled {
        return Err(EntraError::UserDisabled);
    }
    if user.password_expired {
        return Err(EntraError::PasswordExpired);
    }
    if user.conditional_access_blocked {
        return Err(EntraError::ConditionalAccessBlocked);
    }
    Ok(())
}

fn refresh(req: &TokenRequest<'_>, sel: TenantSel<'_>) -> Result<Value, EntraError> {
    let token = req.param("refresh_token")?.to_string();
    let app = req.app(sel)?;
    let auth = req.authenticate(app, true)?;
    let state = req.state;
    // Taken out of the map now so two concurrent redemptions cannot both succeed; put back
    // if the request fails for a reason that is not the token's fault.
    let grant = lock(&state.refresh_tokens).remove(&token);
    let Some(grant) = grant else {
        if lock(&state.spent_refresh_tokens).contains(&token) {
            return Err(EntraError::RefreshTokenRevoked);
        }
        return Err(EntraError::MalformedGrant);
    };
    let now = OffsetDateTime::now_utc();
    if now >= grant.expires_at {
        lock(&state.spent_refresh_tokens).insert(token);
        return Err(EntraError::RefreshTokenExpired {
            issued: super::errors::format_timestamp(grant.issued_at),
            inactive: humanize(now - grant.issued_at).to_string(),
        });
    }
    let result = (|| {
        if grant.client_id != app.client_id {
            return Err(EntraError::MalformedGrant);
        }
        let tenant = req
            .fixture
            .tenant_by_id(grant.tenant_id)
            .ok_or(EntraError::MalformedGrant)?;
        if let TenantSel::Tenant(t) = sel
            && t.id != tenant.id
        {
            return Err(EntraError::MalformedGrant);
        }
        let user = req
            .fixture
            .user_by_id(grant.user_id)
            .ok_or(EntraError::MalformedGrant)?;
        if user.disabled {
            return Err(EntraError::UserDisabled);
        }
        if user.conditional_access_blocked {
            return Err(EntraError::ConditionalAccessBlocked);
        }
        let scope = scope::parse(
            req.form.get("scope").map_or("", String::as_str),
            &tenant.display_name,
        )?;
        issue_user_tokens(req, tenant, app, auth, user, &scope, &["pwd"])
    })();
    match &result {
        Ok(_) => {
            lock(&state.spent_refresh_tokens).insert(token);
        }
        Err(_) => {
            lock(&state.refresh_tokens).insert(token, grant);
        }
    }
    result
}

fn humanize(d: time::Duration) -> String {
    let secs = d.whole_seconds().max(0);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Issues the access token (+ id token, refresh token, client_info) of a delegated grant.
pub fn issue_user_tokens(
    req: &TokenRequest<'_>,
    tenant: &Tenant,
    app: &App,
    auth: ClientAuth,
    user: &User,
    scope: &ScopeRequest,
    amr: &[&str],
) -> Result<Value, EntraError> {
    let consent_missing = || EntraError::ConsentRequired {
        client_id: app.client_id.to_string(),
        app_name: app.display_name.clone(),
    };
    if !app.admin_consent {
        return Err(consent_missing());
    }
    let (audience, resource_app_id, permissions): (String, Uuid, Vec<String>) =
        match &scope.resource {
            Some(rs) => {
                let allowed = app
                    .delegated_permissions
                    .get(&rs.resource.app_id)
                    .cloned()
                    .unwrap_or_default();
                let mut granted = Vec::new();
                for p in &rs.permissions {
                    if !rs.resource.has_delegated(p) {
                        return Err(EntraError::ScopeNotOnResource {
                            app_name: app.display_name.clone(),
                            scope: p.clone(),
                            resource: rs.resource.app_id.to_string(),
                        });
                    }
                    let Some(found) = allowed.iter().find(|a| a.eq_ignore_ascii_case(p)) else {
                        return Err(consent_missing());
                    };
                    granted.push(found.clone());
                }
                if rs.default {
                    for a in &allowed {
                        if !granted.contains(a) {
                            granted.push(a.clone());
                        }
                    }
                    if granted.is_empty() {
                        return Err(consent_missing());
                    }
                }
                (rs.audience.clone(), rs.resource.app_id, granted)
            }
            None => (
                Resource::graph().identifiers[0].to_string(),
                GRAPH_APP_ID,
                Vec::new(),
            ),
        };
    let scp = if permissions.is_empty() {
        scope
            .oidc
            .iter()
            .filter(|s| *s != "offline_access")
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        permissions.join(" ")
    };
    // Graph scopes come back short ("Mail.Read"), other resources' fully qualified, as Entra
    // answers them; MSAL keys its cache on this string.
    let response_scope: Vec<String> = if resource_app_id == GRAPH_APP_ID {
        permissions.clone()
    } else {
        permissions
            .iter()
            .map(|p| format!("{audience}/{p}"))
            .collect()
    };
    let response_scope = if response_scope.is_empty() {
        scp.clone()
    } else {
        response_scope.join(" ")
    };

    let state = req.state;
    let now = OffsetDateTime::now_utc();
    let iat = now.unix_timestamp();
    let lifetime = state.faults.token_lifetime().as_secs() as i64;
    let sub = pairwise_sub(user.object_id, app.client_id);
    let (given, family) = split_name(&user.display_name);
    let claims = json!({
        "aud": audience,
        "iss": format!("https://sts.windows.net/{}/", tenant.id),
        "iat": iat,
        "nbf": iat,
        "exp": iat + lifetime,
        "acr": "1",
        "aio": random_token(48),
        "amr": amr,
        "app_displayname": app.display_name,
        "appid": app.client_id.to_string(),
        "appidacr": auth.appidacr(),
        "family_name": family,
        "given_name": given,
        "idtyp": "user",
        "ipaddr": "127.0.0.1",
        "name": user.display_name,
        "oid": user.object_id.to_string(),
        "rh": random_token(40),
        "scp": scp,
        "sub": sub,
        "tid": tenant.id.to_string(),
        "unique_name": user.upn,
        "upn": user.upn,
        "uti": random_token(22),
        "ver": "1.0",
    });
    let access_token = sign(req, TokenKind::User, &claims)?;
    let mut body = json!({
        "token_type": "Bearer",
        "scope": response_scope,
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    });
    if scope.wants("openid") {
        let id_claims = json!({
            "aud": app.client_id.to_string(),
            "iss": format!("{}/{}/v2.0", req.base, tenant.id),
            "iat": iat,
            "nbf": iat,
            "exp": iat + lifetime,
            "name": user.display_name,
            "oid": user.object_id.to_string(),
            "preferred_username": user.upn,
            "rh": random_token(40),
            "sub": sub,
            "tid": tenant.id.to_string(),
            "uti": random_token(22),
            "ver": "2.0",
        });
        body["id_token"] = json!(sign(req, TokenKind::User, &id_claims)?);
    }
    if req.form.get("client_info").map(String::as_str) == Some("1") {
        let info = json!({"uid": user.object_id.to_string(), "utid": tenant.id.to_string()});
        body["client_info"] = json!(URL_SAFE_NO_PAD.encode(info.to_string()));
    }
    if scope.wants("offline_access") {
        let token = format!("1.AXkA{}", random_token(300));
        let grant = RefreshGrant {
            client_id: app.client_id,
            tenant_id: tenant.id,
            user_id: user.object_id,
            issued_at: now,
            expires_at: now
                + time::Duration::seconds(state.faults.refresh_token_lifetime().as_secs() as i64),
        };
        lock(&state.refresh_tokens).insert(token.clone(), grant);
        body["refresh_token"] = json!(token);
    }
    Ok(body)
}

fn sign(req: &TokenRequest<'_>, kind: TokenKind, claims: &Value) -> Result<String, EntraError> {
    req.state.keys.sign(kind, claims).map_err(|e| {
        // Signing with keys loaded at start cannot fail short of a bug; answer as Entra does
        // for its own failures rather than dropping the connection.
        tracing::error!("token signing failed: {e}");
        EntraError::TemporarilyUnavailable
    })
}

/// Entra's `sub` is pairwise: stable per (user, app) and different across apps.
fn pairwise_sub(user: Uuid, app: Uuid) -> String {
    let digest = sha2::Sha256::digest(format!("{user}:{app}").as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..32])[..43].to_string()
}

fn split_name(display: &str) -> (String, String) {
    match display.split_once(' ') {
        Some((g, f)) => (g.to_string(), f.to_string()),
        None => (display.to_string(), String::new()),
    }
}

/// Random base64url text, for opaque ids (`uti`, `aio`) and refresh tokens.
pub fn random_token(len: usize) -> String {
    let mut bytes = vec![0u8; len.div_ceil(4) * 3];
    rand::rng().fill_bytes(&mut bytes);
    let mut s = URL_SAFE_NO_PAD.encode(&bytes);
    s.truncate(len);
    s
}
