//! Who is asking: a signed-in admin (browser session cookie + CSRF token on every form) or a
//! script with an API key (`Authorization: Bearer kurir_…`).
//!
//! Cookies are `HttpOnly` (no script can read them), `SameSite=Strict` (no other site can make
//! the browser send them) and `Secure` when Kurir is reached over HTTPS. CSRF tokens are
//! checked on top of SameSite because an admin UI that changes mail credentials should not rely
//! on one browser feature alone.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::i18n::Lang;

pub const SESSION_COOKIE: &str = "kurir_session";
pub const LOGIN_CSRF_COOKIE: &str = "kurir_login_csrf";
pub const LANG_COOKIE: &str = "kurir_lang";

/// The value of cookie `name`, if the request has it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value with Kurir's attributes.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Compares without leaking through timing where the first difference is.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The page language: `?lang=` (the switch link), else the cookie, else the browser's
/// Accept-Language, else Swedish.
pub fn page_lang(parts: &Parts) -> Lang {
    let from_query = parts.uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Lang::parse(&v))
    });
    from_query
        .or_else(|| cookie(&parts.headers, LANG_COOKIE).and_then(|v| Lang::parse(&v)))
        .or_else(|| {
            let al = parts.headers.get(header::ACCEPT_LANGUAGE)?.to_str().ok()?;
            let first = al.split(',').next()?.split(';').next()?.trim();
            Lang::parse(first.split('-').next().unwrap_or(first))
        })
        .unwrap_or_default()
}

/// The language of the request, as an extractor.
pub struct PageLang(pub Lang);

impl<S: Send + Sync> FromRequestParts<S> for PageLang {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PageLang(page_lang(parts)))
    }
}

/// The client's address (the TCP peer; behind a reverse proxy that is the proxy, and the
/// per-name limits still apply). Unspecified when the router runs without connect info.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts)))
    }
}

fn client_ip(parts: &Parts) -> std::net::IpAddr {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

/// 429 Too Many Requests with `Retry-After`, for a refused password check.
pub fn throttled(refusal: kurir_outbox::login_throttle::Refusal, message: &str) -> Response {
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, message.to_owned()).into_response();
    if let Ok(v) = refusal.retry_after_secs().to_string().parse() {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// A signed-in admin. Without a live session, pages redirect to the login page.
#[derive(Debug, Clone)]
pub struct Admin {
    pub name: String,
    pub csrf: String,
    pub token: String,
}

impl Admin {
    /// Refuses a form whose CSRF token is not this session's.
    fn check_csrf(&self, presented: Option<&String>, lang: Lang) -> Result<(), Response> {
        match presented {
            Some(p) if same(p, &self.csrf) => Ok(()),
            _ => Err((StatusCode::FORBIDDEN, lang.texts().csrf_refused).into_response()),
        }
    }
}

/// A form a signed-in admin posted, with the session's CSRF token: the one place where every
/// state-changing form of the UI is checked, so a handler cannot forget it.
pub struct AdminForm {
    pub admin: Admin,
    pub lang: Lang,
    pub form: HashMap<String, String>,
}

impl FromRequest<Arc<AppState>> for AdminForm {
    type Rejection = Response;
    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let admin = Admin::from_request_parts(&mut parts, state).await?;
        let lang = page_lang(&parts);
        let Form(form) =
            Form::<HashMap<String, String>>::from_request(Request::from_parts(parts, body), state)
                .await
                .map_err(IntoResponse::into_response)?;
        admin.check_csrf(form.get("csrf"), lang)?;
        Ok(AdminForm { admin, lang, form })
    }
}

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = Response;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let to_login = || {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".into());
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("next", &next)
                .finish();
            Redirect::to(&format!("/login?{q}")).into_response()
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login());
        };
        match state.store.session(&token).await {
            Ok(Some(s)) => Ok(Admin {
                name: s.admin,
                csrf: s.csrf,
                token,
            }),
            Ok(None) => Err(to_login()),
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())
            }
        }
    }
}

/// A script calling the REST API with a valid key.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub key_name: String,
}

/// The JSON error every API refusal uses: what is wrong and what to do.
pub fn api_error(status: StatusCode, error: &str, fix: &str) -> Response {
    let mut resp = (status, axum::Json(json!({"error": error, "fix": fix}))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"kurir\""),
        );
    }
    resp
}

fn unauthorized(why: &str) -> Response {
    api_error(
        StatusCode::UNAUTHORIZED,
        why,
        "send 'Authorization: Bearer kurir_…' with a key created on the server by `kurir admin api-key create NAME`",
    )
}

impl FromRequestParts<Arc<AppState>> for ApiCaller {
    type Rejection = Response;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized("no API key"));
        };
        let Some(token) = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
        else {
            return Err(unauthorized(
                "the Authorization header is not 'Bearer <API key>'",
            ));
        };
        let fingerprint = hex::encode(Sha256::digest(token.as_bytes()));
        let cached = state
            .verified_keys
            .lock()
            .expect("the key cache lock is never poisoned: no code panics while holding it")
            .get(&fingerprint)
            .cloned();
        if let Some(id) = cached {
            match state.store.api_key_exists(&id).await {
                Ok(true) => {
                    return Ok(ApiCaller { key_name: id });
                }
                Ok(false) => {
                    state
                        .verified_keys
                        .lock()
                        .expect("never poisoned")
                        .remove(&fingerprint);
                    return Err(unauthorized("this API key was revoked"));
                }
                Err(e) => {
                    return Err(api_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &e.to_string(),
                        "check Kurir's database",
                    ));
                }
            }
        }
        // An unknown token costs an argon2 verification: bounded like a password.
        let attempt = match state.throttle.begin("api-key", client_ip(parts), "").await {
            Ok(a) => a,
            Err(refusal) => {
                let mut resp = api_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many attempts with wrong API keys from this address",
                    "wait for Retry-After seconds and use a valid key",
                );
                if let Ok(v) = refusal.retry_after_secs().to_string().parse() {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return Err(resp);
            }
        };
        let verified = state.store.verify_api_key(token).await;
        match &verified {
            Ok(Some(_)) => attempt.succeeded(),
            Ok(None) => attempt.failed(),
            Err(_) => drop(attempt),
        }
        match verified {
            Ok(Some(info)) => {
                state
                    .verified_keys
                    .lock()
                    .expect("never poisoned")
                    .insert(fingerprint, info.id.clone());
                Ok(ApiCaller {
                    key_name: info.name,
                })
            }
            Ok(None) => Err(unauthorized("the API key is not valid")),
            Err(e) => Err(api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
                "check Kurir's database",
            )),
        }
    }
}
