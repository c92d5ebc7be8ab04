//! Signing in and out.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::{PageQuery, Shared, page, store_error};
use crate::auth::{
    AdminForm, LOGIN_CSRF_COOKIE, PageLang, SESSION_COOKIE, cookie, same, set_cookie,
};
use crate::i18n::Texts;
use crate::ops::FormMap;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginTpl {
    t: &'static Texts,
    lang: &'static str,
    other_lang: &'static str,
    csrf: String,
    next: String,
    failed: bool,
}

/// The first path segments of the pages a sign-in may continue to (see [`routes`] and
/// `mail::routes`); `""` is the overview at `/`.
const NEXT_PREFIXES: &[&str] = &[
    "",
    "system",
    "users",
    "accounts",
    "webshop",
    "outbox",
    "incoming",
    "quarantine",
    "health",
];

/// Only a local page of this UI may be redirected to after login (no open redirect).
///
/// Browsers are lenient about what a `Location` means: they drop tabs and newlines (so
/// `/\t/evil.example` becomes `//evil.example`, another site), treat `\` as `/`, and some decode
/// `%2F`/`%5C`. So the value is refused unless it — and its percent-decoded form — is a single
/// leading `/` followed by no second `/` at the start, no backslash, no control character or
/// whitespace, and its first segment is one of Kurir's pages. Anything else goes to `/`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if is_local_page(n) => n.to_owned(),
        _ => "/".to_owned(),
    }
}

/// `%XX` decoded (invalid escapes kept as they are), lossy UTF-8: only for checking.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_local_page(next: &str) -> bool {
    fn plain(p: &str) -> bool {
        p.starts_with('/')
            && !p.starts_with("//")
            && !p
                .chars()
                .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
    }
    if next.len() > 2048 || !plain(next) {
        return false;
    }
    let decoded = percent_decode(next);
    if !plain(&decoded)
        || decoded.contains("//")
        || decoded.contains("/../")
        || decoded.ends_with("/..")
    {
        return false;
    }
    let path = decoded.split(['?', '#']).next().unwrap_or("");
    let first = path[1..].split('/').next().unwrap_or("");
    NEXT_PREFIXES.contains(&first)
}

async fn login_page(
    State(state): State<Shared>,
    PageLang(lang): PageLang,
    Query(q): Query<PageQuery>,
) -> Response {
    // Login CSRF: a random value in a cookie and in the form must match (double submit), so
    // another site cannot sign the browser in as someone else.
    let csrf = kurir_store::web::random_hex(16);
    let mut resp = page(
        LoginTpl {
            t: lang.texts(),
            lang: lang.code(),
            other_lang: lang.other().code(),
            csrf: csrf.clone(),
            next: safe_next(q.next.as_deref()),
            failed: q.error.is_some(),
        },
        q.switched(),
        StatusCode::OK,
    );
    if let Ok(v) = set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600, state.config.secure_cookies).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

async fn login(
    State(state): State<Shared>,
    PageLang(lang): PageLang,
    crate::auth::ClientIp(ip): crate::auth::ClientIp,
    headers: axum::http::HeaderMap,
    Form(form): Form<FormMap>,
) -> Response {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    let given = form.get("csrf").cloned().unwrap_or_default();
    if expected.is_empty() || !same(&expected, &given) {
        return (StatusCode::FORBIDDEN, lang.texts().csrf_refused).into_response();
    }
    let name = form.get("username").map(|s| s.trim()).unwrap_or_default();
    let password = secrecy::SecretString::from(form.get("password").cloned().unwrap_or_default());
    let next = safe_next(form.get("next").map(String::as_str));
    let attempt = match state.throttle.begin("web", ip, name).await {
        Ok(a) => a,
        Err(refusal) => {
            return crate::auth::throttled(refusal, lang.texts().login_throttled);
        }
    };
    let verified = state.store.verify_admin(name, &password).await;
    match &verified {
        Ok(true) => attempt.succeeded(),
        Ok(false) => attempt.failed(),
        Err(_) => drop(attempt),
    }
    match verified {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(admin = ?name, %ip, "failed admin sign-in");
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("error", "1")
                .append_pair("next", &next)
                .finish();
            return Redirect::to(&format!("/login?{q}")).into_response();
        }
        Err(e) => return store_error(e),
    }
    let session = match state
        .store
        .create_session(name, state.config.session_ttl)
        .await
    {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    tracing::info!(admin = name, "admin signed in");
    use secrecy::ExposeSecret;
    let mut resp = Redirect::to(&next).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = set_cookie(
        SESSION_COOKIE,
        session.token.expose_secret(),
        state.config.session_ttl.whole_seconds(),
        state.config.secure_cookies,
    )
    .parse()
    {
        h.append(header::SET_COOKIE, v);
    }
    if let Ok(v) = set_cookie(LOGIN_CSRF_COOKIE, "", 0, state.config.secure_cookies).parse() {
        h.append(header::SET_COOKIE, v);
    }
    resp
}

async fn logout(State(state): State<Shared>, AdminForm { admin, .. }: AdminForm) -> Response {
    if let Err(e) = state.store.delete_session(&admin.token).await {
        return store_error(e);
    }
    let mut resp = Redirect::to("/login").into_response();
    if let Ok(v) = set_cookie(SESSION_COOKIE, "", 0, state.config.secure_cookies).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod next_tests {
    use super::safe_next;

    /// 13.5: `next=/%09/evil.example` (a tab) passed the old check, and browsers drop the tab
    /// and follow `//evil.example` — another site. Every hostile value goes to `/`.
    #[test]
    fn login_next_with_tab_is_not_an_open_redirect() {
        let hostile = [
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/ /evil.example",
            "/%09/evil.example",
            "/%0a/evil.example",
            "/%2F/evil.example",
            "/%2f%2fevil.example",
            "/%5Cevil.example",
            "/\\evil.example",
            "//evil.example",
            "///evil.example",
            "https://evil.example",
            "evil.example",
            "/\u{0}/evil.example",
            "/\u{a0}/evil.example",
            "/evil.example",
            "/system/../..//evil.example",
            "/%252F/evil.example/x",
            "",
        ];
        for h in hostile {
            assert_eq!(
                safe_next(Some(h)),
                "/",
                "{h:?} must not be a redirect target"
            );
        }
        assert_eq!(safe_next(None), "/");
        // Kurir's own pages still work, with their queries.
        for ok in [
            "/",
            "/system",
            "/users/ANNA",
            "/accounts/Monitor-to-Monitor?saved=1",
            "/outbox?state=failed",
            "/incoming/42",
            "/health",
        ] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
    }
}
