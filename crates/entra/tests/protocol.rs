//! Wire-level behaviour the emulator does not provoke: `slow_down` and `authorization_pending`
//! timing, `bad_verification_code`, 429 with `Retry-After`, proxy HTML pages, and the exact
//! form and header of HTTP Basic client authentication. A scripted plain-http server on
//! loopback answers each request with the next canned response and records what it received.
//! Plus a custom emulator fixture for a confidential (non-public) app.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use kurir_emulator::{Emulator, EmulatorConfig, Fixture};
use kurir_entra::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct Canned {
    status: u16,
    headers: Vec<(&'static str, String)>,
    content_type: &'static str,
    body: String,
}

fn json(status: u16, body: serde_json::Value) -> Canned {
    Canned {
        status,
        headers: vec![],
        content_type: "application/json",
        body: body.to_string(),
    }
}

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: String,
    form: Vec<(String, String)>,
    at: Instant,
}

impl Received {
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Script {
    base: String,
    received: Arc<Mutex<Vec<Received>>>,
}

/// Serves `responses` in order, one per connection (`Connection: close`).
async fn script(responses: Vec<Canned>) -> Script {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let queue = Arc::new(Mutex::new(VecDeque::from(responses)));
    let rec = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let header_end = loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i + 4);
                }
            };
            let Some(header_end) = header_end else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < header_end + len {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = &buf[header_end..];
            rec.lock().unwrap().push(Received {
                path: head
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .split(' ')
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned(),
                headers: head.clone(),
                form: url::form_urlencoded::parse(body).into_owned().collect(),
                at: Instant::now(),
            });
            let Some(c) = queue.lock().unwrap().pop_front() else {
                return;
            };
            let mut out = format!(
                "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
                c.status,
                c.content_type,
                c.body.len()
            );
            for (k, v) in &c.headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&c.body);
            let _ = sock.write_all(out.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    Script { base, received }
}

impl Script {
    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn request(&self, credential: Credential, scope: Scope) -> TokenRequest {
        TokenRequest {
            authority: Authority::url(&self.base).unwrap(),
            tenant: "contoso.onmicrosoft.com".into(),
            client_id: "client-1".into(),
            credential,
            scope,
            user: None,
        }
    }
}

fn client(retry: RetryPolicy) -> TokenClient {
    TokenClient::new(ClientConfig {
        retry,
        timeout: Duration::from_secs(20),
        ..ClientConfig::default()
    })
    .unwrap()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        max_total: Duration::from_secs(10),
    }
}

fn token_body() -> serde_json::Value {
    serde_json::json!({"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"opaque-access-token"})
}

fn entra_error(error: &str, code: u32) -> serde_json::Value {
    serde_json::json!({
        "error": error,
        "error_description": format!("AADSTS{code}: scripted.\r\nTrace ID: tr\r\nCorrelation ID: co\r\nTimestamp: 2026-01-01 00:00:00Z"),
        "error_codes": [code], "trace_id": "tr", "correlation_id": "co", "timestamp": "2026-01-01 00:00:00Z"
    })
}

fn device_code_answer(interval: u64) -> Canned {
    json(
        200,
        serde_json::json!({"user_code":"ABCD2345","device_code":"dev-code-1","verification_uri":"https://microsoft.com/devicelogin","expires_in":"900","interval":interval,"message":"To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD2345 to authenticate."}),
    )
}

fn device_credential(prompts: Arc<Mutex<Vec<DeviceCodePrompt>>>) -> Credential {
    Credential::DeviceCode {
        prompt: Arc::new(move |p: &DeviceCodePrompt| prompts.lock().unwrap().push(p.clone())),
    }
}

#[tokio::test]
async fn device_code_polling_honours_interval_pending_and_slow_down() {
    let s = script(vec![
        device_code_answer(1),
        json(400, entra_error("authorization_pending", 70016)),
        json(400, entra_error("slow_down", 70016)),
        json(200, token_body()),
    ])
    .await;
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let t = client(fast_retry())
        .token(&s.request(
            device_credential(prompts.clone()),
            Scope::smtp_delegated(Cloud::Global),
        ))
        .await
        .unwrap();
    assert_eq!(t.grant, Grant::DeviceCode);
    assert_eq!(
        t.claims,
        TokenClaims::default(),
        "opaque tokens have no claims"
    );
    let prompts = prompts.lock().unwrap().clone();
    assert_eq!(prompts.len(), 1);
    assert_eq!(prompts[0].user_code, "ABCD2345");

    let r = s.received();
    assert_eq!(r.len(), 4);
    assert_eq!(r[0].path, "/contoso.onmicrosoft.com/oauth2/v2.0/devicecode");
    assert_eq!(
        r[0].field("scope"),
        Some("https://outlook.office.com/SMTP.Send offline_access")
    );
    for poll in &r[1..] {
        assert_eq!(poll.path, "/contoso.onmicrosoft.com/oauth2/v2.0/token");
        assert_eq!(
            poll.field("grant_type"),
            Some("urn:ietf:params:oauth:grant-type:device_code")
        );
        assert_eq!(poll.field("device_code"), Some("dev-code-1"));
        assert_eq!(poll.field("client_id"), Some("client-1"));
    }
    let gap = |a: usize, b: usize| r[b].at - r[a].at;
    assert!(
        gap(0, 1) >= Duration::from_secs(1),
        "first poll after the interval"
    );
    assert!(gap(1, 2) >= Duration::from_secs(1) && gap(1, 2) < Duration::from_secs(3));
    assert!(
        gap(2, 3) >= Duration::from_secs(6),
        "slow_down adds 5 s: {:?}",
        gap(2, 3)
    );
}

#[tokio::test]
async fn bad_verification_code_ends_the_sign_in_with_an_explanation() {
    let s = script(vec![
        device_code_answer(1),
        json(400, entra_error("bad_verification_code", 70018)),
    ])
    .await;
    let err = client(fast_retry())
        .token(&s.request(
            device_credential(Arc::default()),
            Scope::imap_delegated(Cloud::Global),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.aadsts_code(), Some(70018));
    let x = err.explain(Lang::Sv);
    assert!(x.is_catalogued());
    assert!(x.summary.contains("Enhetskoden kändes inte igen"), "{x}");
    assert_eq!(x.trace_id.as_deref(), Some("tr"));
    assert_eq!(s.received().len(), 2, "no retry of bad_verification_code");
}

#[tokio::test]
async fn throttling_honours_retry_after() {
    let mut throttled = json(429, entra_error("temporarily_unavailable", 90033));
    throttled.headers.push(("Retry-After", "1".into()));
    let s = script(vec![throttled, json(200, token_body())]).await;
    let secret = Credential::ClientSecret {
        secret: SecretString::from("s3cret~value"),
        basic_auth: false,
    };
    let t = client(fast_retry())
        .token(&s.request(secret, Scope::graph_app(Cloud::Global)))
        .await
        .unwrap();
    assert_eq!(t.secret.expose_secret(), "opaque-access-token");
    let r = s.received();
    assert_eq!(r.len(), 2);
    assert!(r[1].at - r[0].at >= Duration::from_secs(1));
}

#[tokio::test]
async fn retry_after_beyond_the_budget_gives_up_at_once() {
    let mut throttled = json(503, entra_error("temporarily_unavailable", 90033));
    throttled.headers.push(("Retry-After", "120".into()));
    let s = script(vec![throttled, json(200, token_body())]).await;
    let started = Instant::now();
    let err = client(fast_retry())
        .token(&s.request(
            Credential::ClientSecret {
                secret: SecretString::from("x"),
                basic_auth: false,
            },
            Scope::graph_app(Cloud::Global),
        ))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.is_transient());
    assert_eq!(s.received().len(), 1);
}

#[tokio::test]
async fn proxy_html_pages_are_unexpected_and_5xx_ones_retried() {
    let html = |status| Canned {
        status,
        headers: vec![],
        content_type: "text/html",
        body: "<html><body>Bad Gateway</body></html>".into(),
    };
    let s = script(vec![html(502), json(200, token_body())]).await;
    let cred = || Credential::ClientSecret {
        secret: SecretString::from("x"),
        basic_auth: false,
    };
    client(fast_retry())
        .token(&s.request(cred(), Scope::graph_app(Cloud::Global)))
        .await
        .unwrap();
    assert_eq!(s.received().len(), 2);

    let s = script(vec![html(403)]).await;
    let err = client(fast_retry())
        .token(&s.request(cred(), Scope::graph_app(Cloud::Global)))
        .await
        .unwrap_err();
    match &err {
        EntraError::UnexpectedResponse { status, detail, .. } => {
            assert_eq!(*status, 403);
            assert!(detail.contains("Bad Gateway"));
        }
        other => panic!("expected UnexpectedResponse, got {other}"),
    }
    assert!(err.is_permanent());

    let s = script(vec![json(200, serde_json::json!({"token_type":"Bearer"}))]).await;
    let err = client(fast_retry())
        .token(&s.request(cred(), Scope::graph_app(Cloud::Global)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("access_token"), "{err}");
}

#[tokio::test]
async fn secret_in_body_or_basic_header() {
    let secret = "kUr~8Q.a+b";
    let s = script(vec![json(200, token_body()), json(200, token_body())]).await;
    for basic_auth in [false, true] {
        client(fast_retry())
            .token(&s.request(
                Credential::ClientSecret {
                    secret: SecretString::from(secret),
                    basic_auth,
                },
                Scope::exchange_app(Cloud::Global),
            ))
            .await
            .unwrap();
    }
    let r = s.received();
    assert_eq!(r[0].field("client_secret"), Some(secret));
    assert_eq!(r[0].field("grant_type"), Some("client_credentials"));
    assert_eq!(
        r[0].field("scope"),
        Some("https://outlook.office365.com/.default")
    );
    assert!(!r[0].headers.to_ascii_lowercase().contains("authorization:"));

    assert_eq!(r[1].field("client_secret"), None);
    assert_eq!(r[1].field("client_id"), Some("client-1"));
    let auth = r[1]
        .headers
        .lines()
        .find_map(|l| l.strip_prefix("authorization: Basic "))
        .expect("a Basic header");
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .unwrap(),
    )
    .unwrap();
    let (id, sec) = decoded.split_once(':').unwrap();
    assert_eq!(id, "client-1");
    let sec: String = url::form_urlencoded::parse(format!("x={sec}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned();
    assert_eq!(sec, secret);
}

#[tokio::test]
async fn config_errors_are_caught_before_sending() {
    let s = script(vec![]).await;
    let empty_secret = s.request(
        Credential::ClientSecret {
            secret: SecretString::from(""),
            basic_auth: false,
        },
        Scope::graph_app(Cloud::Global),
    );
    let err = client(fast_retry()).token(&empty_secret).await.unwrap_err();
    assert!(
        matches!(
            err,
            EntraError::Config {
                setting: "client_secret",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("Klienthemlighet"));
    let no_client = TokenRequest {
        client_id: " ".into(),
        ..empty_secret.clone()
    };
    assert!(matches!(
        client(fast_retry()).token(&no_client).await.unwrap_err(),
        EntraError::Config {
            setting: "client_id",
            ..
        }
    ));
    assert!(matches!(
        TokenClient::new(ClientConfig {
            extra_ca_pem: Some("not pem".into()),
            ..ClientConfig::default()
        })
        .unwrap_err(),
        EntraError::Config {
            setting: "extra_ca",
            ..
        }
    ));
    assert!(s.received().is_empty());
}

/// A confidential app ("Allow public client flows" off): ROPC needs its secret, and without it
/// Entra answers AADSTS7000218.
#[tokio::test]
async fn confidential_app_needs_its_secret_for_ropc() {
    const TENANT: &str = "a1b2c3d4-0000-4000-8000-000000000001";
    const APP: &str = "a1b2c3d4-0000-4000-8000-000000000002";
    const SECRET: &str = "conf~Secret.Value-1234567890";
    const USER: &str = "svc@confidential.onmicrosoft.com";
    const PASSWORD: &str = "Svc-Passw0rd!";
    let fixture = Fixture::from_toml(&format!(
        r#"
[[tenants]]
id = "{TENANT}"
display_name = "Confidential"
domains = ["confidential.onmicrosoft.com"]

[[apps]]
client_id = "{APP}"
display_name = "Confidential app"
tenant = "{TENANT}"
public_client = false
admin_consent = true
secrets = [ {{ id = "a1b2c3d4-0000-4000-8000-000000000003", value = "{SECRET}", expires = 2099-01-01T00:00:00Z }} ]
[apps.delegated_permissions]
"https://outlook.office.com" = ["IMAP.AccessAsUser.All", "SMTP.Send"]

[[users]]
upn = "{USER}"
password = "{PASSWORD}"
"#
    ))
    .expect("valid fixture");
    let emu = Emulator::start(EmulatorConfig {
        fixture,
        ..EmulatorConfig::demo()
    })
    .await
    .unwrap();
    let c = TokenClient::new(ClientConfig {
        extra_ca_pem: Some(emu.ca_pem()),
        retry: fast_retry(),
        ..ClientConfig::default()
    })
    .unwrap();
    let req = |client_secret: Option<&str>| TokenRequest {
        authority: Authority::url(&emu.base_url()).unwrap(),
        tenant: TENANT.into(),
        client_id: APP.into(),
        credential: Credential::UsernamePassword {
            username: USER.into(),
            password: SecretString::from(PASSWORD),
            client_secret: client_secret.map(SecretString::from),
        },
        scope: Scope::imap_delegated(Cloud::Global),
        user: None,
    };
    let err = c.token(&req(None)).await.unwrap_err();
    assert_eq!(err.aadsts_code(), Some(7000218), "{err}");
    assert!(
        err.explain(Lang::Sv)
            .fix
            .contains("Tillåt offentliga klientflöden")
    );

    let t = c.token(&req(Some(SECRET))).await.unwrap();
    assert_eq!(t.grant, Grant::Password);
    assert_eq!(t.claims.user_name(), Some(USER));
}

/// A Retry-After beyond 64 bits of seconds (a hostile or broken server or proxy) used to
/// overflow the retry budget's arithmetic and panic the token request.
#[tokio::test]
async fn huge_retry_after_is_clamped() {
    for value in ["18446744073709551615", "99999999999999999999999999"] {
        let mut throttled = json(503, entra_error("temporarily_unavailable", 90033));
        throttled.headers.push(("Retry-After", value.into()));
        let s = script(vec![throttled, json(200, token_body())]).await;
        let started = Instant::now();
        let err = client(fast_retry())
            .token(&s.request(
                Credential::ClientSecret {
                    secret: SecretString::from("x"),
                    basic_auth: false,
                },
                Scope::graph_app(Cloud::Global),
            ))
            .await
            .unwrap_err();
        // Beyond the retry budget: given up at once, still transient (try again later).
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.is_transient(), "{err}");
        assert_eq!(s.received().len(), 1);
    }
}

/// An `expires_in` of u64::MAX used to overflow the expiry time and panic.
#[tokio::test]
async fn huge_expires_in_is_clamped() {
    for value in [
        serde_json::json!(18446744073709551615u64),
        serde_json::json!(9223372036854775807u64),
        serde_json::json!("18446744073709551615"),
    ] {
        let mut body = token_body();
        body["expires_in"] = value.clone();
        let s = script(vec![json(200, body)]).await;
        let before = time::OffsetDateTime::now_utc();
        let t = client(fast_retry())
            .token(&s.request(
                Credential::ClientSecret {
                    secret: SecretString::from("x"),
                    basic_auth: false,
                },
                Scope::graph_app(Cloud::Global),
            ))
            .await
            .unwrap_or_else(|e| panic!("expires_in {value}: {e}"));
        assert!(
            t.expires_at <= before + time::Duration::days(1) + time::Duration::minutes(1),
            "believed for at most a day: {}",
            t.expires_at
        );
        assert!(t.expires_at > before + time::Duration::hours(23));
    }
}
