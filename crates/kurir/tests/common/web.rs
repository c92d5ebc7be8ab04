//! Helpers for the tests that use the web UI and the REST API of a running `kurir serve`.

use std::path::Path;

use reqwest::StatusCode;

use super::{ok, ok_stdin};

/// The password of the `admin` web login that [`provision`] creates.
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// An HTTP client that shows redirects instead of following them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Creates the web login `admin` and an API key; returns the key.
pub fn provision(dir: &Path) -> String {
    ok_stdin(
        dir,
        &["admin", "users", "add", "admin", "--password-stdin"],
        ADMIN_PASSWORD,
    );
    ok(dir, &["admin", "api-key", "create", "tests"])
        .trim()
        .to_owned()
}

/// Signs in through the login form; returns the session cookie and the page's CSRF token.
pub async fn sign_in(c: &reqwest::Client, base: &str) -> (String, String) {
    let r = c.get(format!("{base}/login")).send().await.unwrap();
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let login_csrf = set
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let r = c
        .post(format!("{base}/login"))
        .header("cookie", format!("kurir_login_csrf={login_csrf}"))
        .form(&[
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("csrf", &login_csrf),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("kurir_session="))
        .expect("session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = c
        .get(format!("{base}/"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    (session, csrf)
}
