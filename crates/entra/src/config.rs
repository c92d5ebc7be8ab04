//! How the token client behaves on the network: trust, timeouts, retries and the cache margin.
//!
//! The defaults are for production (a sign-in service on the internet, a service that must not
//! give up on a short outage); tests shorten them.

use std::time::Duration;

/// Retries of one token request on transient failures (5xx, 429, timeouts, connection errors,
/// `temporarily_unavailable`). Exponential backoff with jitter, bounded both in attempts and in
/// total time so that a caller waiting for a token is never stuck for long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (1 = no retries).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further retry.
    pub initial_backoff: Duration,
    /// Upper bound for one computed backoff delay (a `Retry-After` may be longer).
    pub max_backoff: Duration,
    /// No retry is started if it would end later than this after the first attempt began.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(15),
            max_total: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }
}

/// Configuration of a [`crate::TokenClient`].
#[derive(Clone)]
pub struct ClientConfig {
    /// An extra CA certificate (or several) in PEM to trust besides the system's roots: the
    /// emulator's CA, or the CA of a TLS-inspecting proxy.
    pub extra_ca_pem: Option<String>,
    /// Limit for one HTTP request, from connecting to the last byte of the answer.
    pub timeout: Duration,
    /// Limit for establishing the TCP + TLS connection.
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    /// A cached token is renewed this long before it expires, or at 10 % of its lifetime before,
    /// whichever is smaller (short-lived test tokens would otherwise never be cached).
    pub refresh_margin: Duration,
    /// An HTTP(S) proxy URL for all requests, e.g. `http://proxy.example:3128`.
    pub proxy: Option<String>,
    /// Sent as `User-Agent`, so that Entra sign-in logs show which program asked.
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            extra_ca_pem: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            refresh_margin: Duration::from_secs(300),
            proxy: None,
            user_agent: concat!("Kurir/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The proxy URL may carry a password.
        f.debug_struct("ClientConfig")
            .field("extra_ca_pem", &self.extra_ca_pem.as_ref().map(|_| "[pem]"))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("refresh_margin", &self.refresh_margin)
            .field("proxy", &self.proxy.as_ref().map(|_| "[set]"))
            .field("user_agent", &self.user_agent)
            .finish()
    }
}
