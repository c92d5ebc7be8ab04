//! The one thing every flow does: POST a form to Entra and read a JSON answer, retrying what is
//! worth retrying.
//!
//! Kept apart from the flows so that the retry rules (which errors, how long, `Retry-After`) and
//! the error classification live in exactly one place.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::config::{ClientConfig, RetryPolicy};
use crate::error::{EntraError, EntraErrorBody, TransportProblem};

/// A form field value; secrets are only exposed while the body is encoded.
pub(crate) enum Value {
    Plain(String),
    Secret(SecretString),
}

pub(crate) type Form = Vec<(&'static str, Value)>;

/// HTTP Basic client authentication (`client_secret_basic`).
pub(crate) struct BasicAuth<'a> {
    pub client_id: &'a str,
    pub secret: &'a SecretString,
}

pub(crate) struct Http {
    client: reqwest::Client,
    retry: RetryPolicy,
}

impl Http {
    pub(crate) fn new(cfg: &ClientConfig) -> Result<Http, EntraError> {
        let mut b = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            .user_agent(cfg.user_agent.clone())
            // Entra never redirects a token POST; following one could send secrets elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(false);
        if let Some(pem) = &cfg.extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| EntraError::Config {
                    setting: "extra_ca",
                    problem: "Extra CA-certifikat is not a PEM certificate; use the CA file itself (e.g. the emulator's ca.pem), starting with -----BEGIN CERTIFICATE-----".into(),
                })?;
            b = b.tls_certs_merge(certs);
        }
        if let Some(proxy) = &cfg.proxy {
            let p = reqwest::Proxy::all(proxy).map_err(|_| EntraError::Config {
                setting: "proxy",
                problem: "the proxy is not a valid URL; use e.g. http://proxy.example:3128".into(),
            })?;
            b = b.proxy(p);
        }
        let client = b.build().map_err(|e| EntraError::Config {
            setting: "extra_ca",
            problem: format!(
                "the HTTPS client could not be set up ({}); check Extra CA-certifikat",
                error_chain(&e)
            ),
        })?;
        Ok(Http {
            client,
            retry: cfg.retry.clone(),
        })
    }

    /// POSTs `form` to `endpoint` and parses a successful answer as `T`, retrying transient
    /// failures according to the policy. The last error is returned when retries run out.
    pub(crate) async fn post_form<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        form: &Form,
        basic: Option<&BasicAuth<'_>>,
    ) -> Result<T, EntraError> {
        let started = Instant::now();
        let mut attempt = 1u32;
        loop {
            let (result, retry_after) = self.post_once(endpoint, form, basic).await;
            count_request(&result);
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_retryable() || attempt >= self.retry.max_attempts {
                return Err(err);
            }
            let delay = retry_after.unwrap_or_else(|| backoff(&self.retry, attempt));
            // Checked: the delay is the server's word (Retry-After), even if clamped.
            if started
                .elapsed()
                .checked_add(delay)
                .is_none_or(|end| end > self.retry.max_total)
            {
                tracing::warn!(
                    endpoint,
                    attempt,
                    "giving up: the next retry would exceed the retry time budget"
                );
                return Err(err);
            }
            tracing::warn!(
                endpoint,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %err,
                "token request failed transiently; retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn post_once<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        form: &Form,
        basic: Option<&BasicAuth<'_>>,
    ) -> (Result<T, EntraError>, Option<Duration>) {
        let mut req = self
            .client
            .post(endpoint)
            .header("Accept", "application/json")
            .form(&FormRef(form));
        if let Some(b) = basic {
            // RFC 6749 §2.3.1: form-urlencode id and secret before Basic (what MSAL does);
            // matters for secrets with '~' or '+', which Entra generates.
            let raw = format!(
                "{}:{}",
                form_encode(b.client_id),
                form_encode(b.secret.expose_secret())
            );
            let mut v = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(raw)))
                .expect("base64 is a valid header value");
            v.set_sensitive(true);
            req = req.header(AUTHORIZATION, v);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return (Err(transport_error(endpoint, &e)), None),
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => return (Err(transport_error(endpoint, &e)), None),
        };
        if status.is_success() {
            let parsed =
                serde_json::from_str::<T>(&text).map_err(|e| EntraError::UnexpectedResponse {
                    endpoint: endpoint.to_owned(),
                    status: status.as_u16(),
                    detail: describe_json_error(&e),
                });
            return (parsed, None);
        }
        let err = match EntraErrorBody::parse(&text) {
            Some(body) => EntraError::Rejected {
                endpoint: endpoint.to_owned(),
                status: status.as_u16(),
                body: Box::new(body),
            },
            None => EntraError::UnexpectedResponse {
                endpoint: endpoint.to_owned(),
                status: status.as_u16(),
                detail: format!("the body is not an Entra error: {}", excerpt(&text)),
            },
        };
        (Err(err), retry_after)
    }
}

/// Every request that reached (or tried to reach) the token endpoint, for the Prometheus
/// counter `kurir_token_requests_total{outcome}`: `ok`, the AADSTS code, or the error kind.
/// The `metrics` facade does nothing unless the process installed a recorder (`kurir serve`).
fn count_request<T>(result: &Result<T, EntraError>) {
    let outcome = match result {
        Ok(_) => "ok".to_owned(),
        Err(e) => match e.aadsts_code() {
            Some(code) => format!("AADSTS{code}"),
            None => match e {
                EntraError::Rejected { status, .. }
                | EntraError::UnexpectedResponse { status, .. } => format!("http_{status}"),
                _ => "network".to_owned(),
            },
        },
    };
    metrics::counter!("kurir_token_requests_total", "outcome" => outcome).increment(1);
}

/// Serialises the form, exposing secrets only into the request body.
struct FormRef<'a>(&'a Form);

impl serde::Serialize for FormRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (k, v) in self.0 {
            let v: &str = match v {
                Value::Plain(p) => p,
                Value::Secret(x) => x.expose_secret(),
            };
            seq.serialize_element(&(k, v))?;
        }
        seq.end()
    }
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Exponential backoff with "equal jitter": half the delay fixed, half random, so that many
/// Kurir instances hit by the same outage do not retry in lockstep.
fn backoff(p: &RetryPolicy, attempt: u32) -> Duration {
    let exp = p
        .initial_backoff
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(p.max_backoff);
    let half = exp / 2;
    let jitter_ms = rand::rng().random_range(0..=half.as_millis().min(u64::MAX as u128) as u64);
    half + Duration::from_millis(jitter_ms)
}

/// The longest `Retry-After` taken at its word. The header is the server's (or a proxy's)
/// value; a day is far beyond any retry budget, so a larger one means the same: give up now.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// `Retry-After` in seconds, or an HTTP date; at most [`MAX_RETRY_AFTER`]. A number too large
/// for 64 bits is as large as can be.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let when =
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (when - time::OffsetDateTime::now_utc()).whole_seconds();
    Some(Duration::from_secs(secs.max(0) as u64).min(MAX_RETRY_AFTER))
}

fn transport_error(endpoint: &str, e: &reqwest::Error) -> EntraError {
    let host = reqwest::Url::parse(endpoint)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| u.port().map_or(h.to_owned(), |p| format!("{h}:{p}")))
        })
        .unwrap_or_else(|| endpoint.to_owned());
    let detail = error_chain(e);
    let lower = detail.to_ascii_lowercase();
    let problem = if e.is_timeout() {
        TransportProblem::Timeout
    } else if lower.contains("dns") || lower.contains("lookup") || lower.contains("name or service")
    {
        TransportProblem::Dns
    } else if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("unknownissuer")
    {
        TransportProblem::Tls
    } else if e.is_connect() {
        TransportProblem::Connect
    } else {
        TransportProblem::Other
    };
    EntraError::Transport {
        host,
        problem,
        detail,
    }
}

/// The error and its causes; reqwest's top-level message alone ("error sending request") says
/// nothing an admin can act on.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// Never echo serde's "invalid type: string \"…\"", which could quote a token.
fn describe_json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    if msg.starts_with("missing field") {
        format!("the answer is not a valid token response ({msg})")
    } else {
        format!(
            "the answer is not a valid token response (malformed JSON at line {} column {})",
            e.line(),
            e.column()
        )
    }
}

/// The start of a non-JSON error body (a proxy's HTML page), on one line.
fn excerpt(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if one_line.trim().is_empty() {
        "(empty)".into()
    } else {
        one_line.trim().to_owned()
    }
}

/// Entra sends numbers; the v1 endpoint and some proxies send numeric strings.
pub(crate) fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| serde::de::Error::custom("expected a non-negative integer")),
        serde_json::Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom("expected a number")),
        _ => Err(serde::de::Error::custom("expected a number")),
    }
}

pub(crate) fn lenient_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => Ok(n.as_u64()),
        Some(serde_json::Value::String(s)) => Ok(s.trim().parse().ok()),
        Some(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            max_total: Duration::from_secs(10),
        };
        for _ in 0..50 {
            let d1 = backoff(&p, 1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = backoff(&p, 3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d9 = backoff(&p, 9);
            assert!(d9 >= Duration::from_millis(500) && d9 <= Duration::from_millis(1000));
        }
        assert!(backoff(&p, 40) <= Duration::from_millis(1000));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            parse_retry_after("18446744073709551615"),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999"),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn json_errors_never_quote_values() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            access_token: u32,
        }
        let e = serde_json::from_str::<T>(r#"{"access_token":"eyJsecret"}"#).unwrap_err();
        assert!(!describe_json_error(&e).contains("eyJsecret"));
        let e = serde_json::from_str::<T>(r#"{}"#).unwrap_err();
        assert!(describe_json_error(&e).contains("access_token"));
    }

    #[test]
    fn basic_auth_values_are_form_encoded() {
        assert_eq!(form_encode("kUr~8Q.a+b c"), "kUr%7E8Q.a%2Bb+c");
    }
}
