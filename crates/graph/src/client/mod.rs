//! The Graph client: one reqwest client, the request/retry loop, and the operations split by
//! topic (`folders.rs`, `messages.rs`, `delta.rs`, `send.rs`).
//!
//! Every operation takes the bearer token and the mailbox (UPN or object id) as arguments
//! rather than holding them: the token rotates hourly and one Kurir instance serves several
//! mailboxes, so the caller (which owns the token cache) passes what is current.
//!
//! Retries live here and only here: 429 and 503 (and other 5xx, and network errors) are retried
//! a bounded number of times, waiting what `Retry-After` says (capped) or a short backoff.

mod delta;
mod directory;
mod folders;
mod messages;
mod send;

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::GraphError;
use crate::types::{ErrorBody, Page};

pub use delta::{DeltaPage, DeltaStart};
pub use messages::MessageQuery;
pub use send::{UPLOAD_CHUNK_QUANTUM, UPLOAD_MAX_CHUNK};

/// How often and how long to retry transient failures.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    /// Longest single wait, even if `Retry-After` asks for more (the caller's scheduler then
    /// sees the error and comes back later instead of pinning a worker).
    pub max_wait: Duration,
    /// Wait before the first retry when Graph gave no `Retry-After`; doubled each time.
    pub base_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            max_wait: Duration::from_secs(60),
            base_wait: Duration::from_millis(500),
        }
    }
}

/// A Microsoft Graph client (mail subset).
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    /// `https://graph.microsoft.com/v1.0` (or an emulator's), no trailing slash.
    base: Url,
    retry: RetryPolicy,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("base", &self.base.as_str())
            .field("retry", &self.retry)
            .finish()
    }
}

/// A request body, kept as bytes so a retry can send it again.
pub(crate) enum Body {
    None,
    Bytes {
        content_type: &'static str,
        data: Vec<u8>,
    },
}

impl Body {
    pub(crate) fn json<T: Serialize>(value: &T) -> Result<Body, GraphError> {
        let data = serde_json::to_vec(value)
            .map_err(|e| GraphError::Invalid(format!("cannot encode the request body: {e}")))?;
        Ok(Body::Bytes {
            content_type: "application/json",
            data,
        })
    }
}

/// One request as the retry loop sees it.
pub(crate) struct Call<'a> {
    pub method: Method,
    pub url: Url,
    /// `None` for upload session PUTs, whose URL carries its own credential.
    pub token: Option<&'a str>,
    pub body: Body,
    pub headers: Vec<(&'static str, String)>,
}

impl GraphClient {
    /// A client for `base_url` (`https://graph.microsoft.com/v1.0`, or the emulator's
    /// `https://127.0.0.1:PORT/v1.0`), trusting `extra_ca_pem` in addition to the system roots.
    pub fn new(
        base_url: &str,
        extra_ca_pem: Option<&str>,
        timeout: Duration,
    ) -> Result<GraphClient, GraphError> {
        let base = Url::parse(base_url.trim_end_matches('/')).map_err(|_| GraphError::Config {
            setting: "graph_base_url",
            problem: format!("'{base_url}' is not a URL; use https://graph.microsoft.com/v1.0"),
        })?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "https" | "http") {
            return Err(GraphError::Config {
                setting: "graph_base_url",
                problem: format!(
                    "'{base_url}' is not an http(s) URL; use https://graph.microsoft.com/v1.0"
                ),
            });
        }
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(30)))
            .user_agent(concat!("Kurir/", env!("CARGO_PKG_VERSION")))
            // A redirect could carry the bearer token to another host; Graph never redirects
            // the calls made here.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| GraphError::Config {
                    setting: "extra_ca",
                    problem: "not a PEM certificate; give the CA file itself (-----BEGIN CERTIFICATE-----), e.g. the emulator's ca.pem".into(),
                })?;
            b = b.tls_certs_merge(certs);
        }
        let http = b.build().map_err(|e| GraphError::Config {
            setting: "extra_ca",
            problem: format!("the HTTPS client could not be set up: {e}"),
        })?;
        Ok(GraphClient {
            http,
            base,
            retry: RetryPolicy::default(),
        })
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> GraphClient {
        self.retry = retry;
        self
    }

    /// The base URL (`…/v1.0`).
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// `{base}/users/{mailbox}/{rest…}`, each segment percent-encoded.
    pub(crate) fn user_url(&self, mailbox: &str, rest: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            let mut seg = url.path_segments_mut().expect("checked in new()");
            seg.pop_if_empty().push("users").push(mailbox);
            seg.extend(rest);
        }
        url
    }

    pub(crate) fn api_url(&self, rest: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new()")
            .pop_if_empty()
            .extend(rest);
        url
    }

    /// Checks that a link Graph handed back (`@odata.nextLink`) points at the same origin as
    /// the base URL before the bearer token is sent to it.
    pub(crate) fn follow(&self, link: &str) -> Result<Url, GraphError> {
        let url = Url::parse(link).map_err(|_| GraphError::Decode {
            what: "a page link",
            detail: "not a URL".into(),
        })?;
        if url.origin() != self.base.origin() {
            return Err(GraphError::Decode {
                what: "a page link",
                detail: format!(
                    "it points at {} instead of {}; the Graph base URL may be wrong",
                    url.origin().ascii_serialization(),
                    self.base.origin().ascii_serialization()
                ),
            });
        }
        Ok(url)
    }

    /// Sends `call`, retrying transient failures; returns the successful response.
    pub(crate) async fn execute(&self, call: &Call<'_>) -> Result<reqwest::Response, GraphError> {
        let mut attempt = 0u32;
        loop {
            let result = self.execute_once(call).await;
            let err = match result {
                Ok(r) => return Ok(r),
                Err(e) => e,
            };
            if !err.is_transient() || attempt >= self.retry.max_retries {
                return Err(err);
            }
            let backoff = self.retry.base_wait * 2u32.saturating_pow(attempt);
            let wait = err
                .retry_after()
                .unwrap_or(backoff)
                .min(self.retry.max_wait);
            tracing::debug!(
                method = %call.method,
                path = call.url.path(),
                status = ?err.status(),
                wait_ms = wait.as_millis() as u64,
                "Graph request failed transiently; retrying"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn execute_once(&self, call: &Call<'_>) -> Result<reqwest::Response, GraphError> {
        let mut req = self.http.request(call.method.clone(), call.url.clone());
        if let Some(token) = call.token {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in &call.headers {
            req = req.header(*name, value);
        }
        match &call.body {
            Body::None => {
                if matches!(call.method, Method::POST | Method::PUT | Method::PATCH) {
                    req = req.header(reqwest::header::CONTENT_LENGTH, "0");
                }
            }
            Body::Bytes { content_type, data } => {
                req = req.header(CONTENT_TYPE, *content_type).body(data.clone());
            }
        }
        let resp = req.send().await.map_err(transport)?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(service_error(resp).await)
    }

    /// Sends `call` and parses the JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        what: &'static str,
    ) -> Result<T, GraphError> {
        let resp = self.execute(call).await?;
        let bytes = resp.bytes().await.map_err(transport)?;
        serde_json::from_slice(&bytes).map_err(|e| GraphError::Decode {
            what,
            detail: e.to_string(),
        })
    }

    /// Reads every page of a collection, following `@odata.nextLink`.
    pub(crate) async fn all_pages<T: DeserializeOwned>(
        &self,
        token: &str,
        first: Url,
        headers: Vec<(&'static str, String)>,
        what: &'static str,
        limit: Option<usize>,
    ) -> Result<Vec<T>, GraphError> {
        let mut out = Vec::new();
        let mut url = first;
        loop {
            let call = Call {
                method: Method::GET,
                url,
                token: Some(token),
                body: Body::None,
                headers: headers.clone(),
            };
            let page: Page<T> = self.json(&call, what).await?;
            out.extend(page.value);
            if limit.is_some_and(|l| out.len() >= l) {
                out.truncate(limit.unwrap_or(usize::MAX));
                return Ok(out);
            }
            match page.next_link {
                Some(link) => url = self.follow(&link)?,
                None => return Ok(out),
            }
        }
    }
}

pub(crate) fn transport(e: reqwest::Error) -> GraphError {
    // reqwest's Display includes the URL; ours carry no secrets in URLs except upload
    // sessions, so strip it to be safe.
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    GraphError::Transport {
        timeout: e.is_timeout(),
        detail,
    }
}

/// The longest `Retry-After` taken at its word: the value is the server's (or a proxy's), and
/// it travels on to the outbox, which schedules the next attempt with it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// `Retry-After` in seconds (what Graph sends), at most [`MAX_RETRY_AFTER`]; a number too
/// large for 64 bits is as large as can be.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = v.parse::<u64>().unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

async fn service_error(resp: reqwest::Response) -> GraphError {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let header_request_id = resp
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = resp.bytes().await.unwrap_or_default();
    let parsed: Option<ErrorBody> = serde_json::from_slice(&body).ok();
    let (code, message, inner_id) = match parsed {
        Some(b) => (
            b.error.code,
            b.error.message,
            b.error.inner_error.and_then(|i| i.request_id),
        ),
        None => (
            String::new(),
            status.canonical_reason().unwrap_or_default().to_string(),
            None,
        ),
    };
    GraphError::Service {
        status: status.as_u16(),
        code,
        message,
        request_id: header_request_id.or(inner_id),
        retry_after: retry_after.or(if status == StatusCode::TOO_MANY_REQUESTS {
            Some(Duration::from_secs(1))
        } else {
            None
        }),
    }
}
