//! Kurir's HTTP side: the admin web UI, the REST API, Test connection, alarms, `/healthz` and
//! Prometheus `/metrics`.
//!
//! It is a library so that `kurir serve` can run it in the same process as the intake
//! schedulers, the outbox workers and the SMTP listener: build an [`AppState`], bind with
//! [`bind`], and run [`serve`] with a shutdown future; or take [`router`] and mount it yourself.
//!
//! Layout: `ops/` what a request does (change settings, add or remove a user or an account,
//! retry or cancel an outgoing message, read a raw message, account health), shared by the two
//! surfaces: `ui/` the HTML pages, one file per page group (askama templates in `templates/`,
//! checked at compile time), and `api/` the JSON API (documented in `openapi.json`, checked
//! against the router by a test). `auth.rs` sessions, CSRF and API keys; `check/` Test
//! connection, one file per step, with `probe.rs` for IMAP/POP3/SMTP; `alarms.rs`, `metrics.rs`,
//! `i18n.rs` (Swedish and English).
//!
//! The UI listens on loopback by default: it administers mail credentials, so exposing it is a
//! decision: give it a certificate (`tls.rs`, HTTPS with rustls) or put it behind a TLS reverse
//! proxy and pass `secure_cookies`.

// Handlers and their helpers return `Result<_, Response>`: the error IS the answer to send
// (axum's own pattern), built once per failed request, so its size does not matter.
#![allow(clippy::result_large_err)]

pub mod alarms;
pub mod api;
pub mod auth;
pub mod check;
pub mod i18n;
pub mod metrics;
pub mod ops;
mod probe;
pub mod tls;
pub mod ui;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kurir_store::KurirStore;
use metrics_exporter_prometheus::PrometheusHandle;

/// How the web server runs.
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// Mark cookies `Secure`: set when users reach Kurir over HTTPS (a TLS reverse proxy).
    pub secure_cookies: bool,
    /// How long a sign-in lasts.
    pub session_ttl: time::Duration,
    /// Host names (without port) requests may be addressed to besides IP literals and
    /// `localhost`: the public name of a reverse proxy in front of Kurir. Any other `Host` is
    /// refused, so a DNS-rebinding page (evil.example resolving to 127.0.0.1) cannot use a
    /// browser to reach the UI or API.
    pub allowed_hosts: Vec<String>,
    /// HTTPS with this certificate (cookies are then always `Secure`).
    pub tls: Option<tls::TlsFiles>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8025)),
            secure_cookies: false,
            session_ttl: time::Duration::hours(8),
            allowed_hosts: Vec::new(),
            tls: None,
        }
    }
}

/// What every handler shares.
pub struct AppState {
    pub store: Arc<dyn KurirStore>,
    /// The one way to queue mail (wakes this process's outbox workers, if it runs them).
    pub submitter: kurir_outbox::Submitter,
    pub config: WebConfig,
    pub metrics: PrometheusHandle,
    /// API keys already verified with argon2, by SHA-256 of the presented token → key id. A
    /// hit is re-checked against the database (cheap) so revocation takes effect at once.
    pub(crate) verified_keys: Mutex<HashMap<String, String>>,
    /// Bounds password guessing on `POST /login` and API keys (shared with the SMTP listener's
    /// AUTH when both run in one process: one budget of argon2 verifications per process).
    pub throttle: Arc<kurir_outbox::login_throttle::LoginThrottle>,
    /// The Entra set-up the wizard page runs (`kurir_service` hands it in; absent, the page
    /// says the service must run it).
    pub entra_setup: std::sync::OnceLock<Arc<dyn ui::setup::EntraSetup>>,
    /// The wizard's set-up in progress or last finished.
    pub(crate) setup_job: Mutex<Option<Arc<ui::setup::SetupJob>>>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn KurirStore>,
        config: WebConfig,
        submitter: kurir_outbox::Submitter,
    ) -> Arc<AppState> {
        Arc::new(AppState {
            store,
            submitter,
            config,
            metrics: metrics::install(),
            verified_keys: Mutex::new(HashMap::new()),
            throttle: kurir_outbox::login_throttle::LoginThrottle::shared(),
            entra_setup: std::sync::OnceLock::new(),
            setup_job: Mutex::new(None),
        })
    }
}

/// The whole HTTP surface.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_page))
        .merge(api::routes())
        .merge(ui::routes())
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(count_requests))
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .with_state(state)
}

/// Binds the listener (port 0 picks a free port; the caller can read it back).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer address feeds the per-IP login throttle.
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// [`serve`] over HTTPS: connections from a [`tls::TlsListener`].
pub async fn serve_tls(
    listener: tls::TlsListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // `tap_io` is what gives a listener of our own axum's ConnectInfo<SocketAddr> (its
    // `Connected` impl for the peer address of a tapped listener).
    axum::serve(
        listener.tap_io(|_| {}),
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Today's date (UTC) for expiry checks.
pub fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// Up or down, nothing else: it answers without login, so it names no account, user, secret
/// expiry or database detail (the reason for "down" is in the log; the details are on the
/// signed-in pages and behind an API key at `/metrics` and `/api/v1/health`).
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    // Healthy means the database answers: everything else Kurir does depends on it.
    let (status, body) = match state.store.snapshot().await {
        Ok(_) => (axum::http::StatusCode::OK, r#"{"status":"ok"}"#),
        Err(e) => {
            tracing::error!(error = %e, "/healthz: the database does not answer");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                r#"{"status":"error"}"#,
            )
        }
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Prometheus metrics carry account names, user codes and secret expiry, so a scraper needs an
/// API key (`Authorization: Bearer kurir_…`, Prometheus' `authorization` scrape setting).
async fn metrics_page(State(state): State<Arc<AppState>>, _caller: auth::ApiCaller) -> Response {
    // Alarm gauges are computed at scrape time so they are never stale.
    let now = time::OffsetDateTime::now_utc();
    if let Ok((snap, alarms)) = alarms::current(&*state.store, now, i18n::Lang::En).await {
        alarms::export_metrics(&snap, &alarms, now.date());
    }
    metrics::export_store(&*state.store).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn count_requests(req: Request, next: Next) -> Response {
    let start = Instant::now();
    // Only the methods Kurir serves become labels; anything a client invents is `other`, so
    // requests cannot create series without bound.
    let method = metrics::method_label(req.method());
    // The route pattern, not the path: `/users/{code}` keeps the label set small.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    ::metrics::counter!(metrics::HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    ::metrics::histogram!(metrics::HTTP_DURATION, "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}

/// Refuses a request whose `Host` is not this server's: an IP literal (the bind address or any
/// address of the machine: a DNS-rebinding page cannot make a browser send one for its own
/// origin), `localhost`, or a name in [`WebConfig::allowed_hosts`]. 421 Misdirected Request,
/// with the fix.
async fn check_host(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
    match host {
        Some(h) if host_allowed(&h, &state.config.allowed_hosts) => next.run(req).await,
        _ => (
            axum::http::StatusCode::MISDIRECTED_REQUEST,
            "This Kurir does not answer to that host name. If users reach it by this name \
             (a reverse proxy), start it with --allowed-host NAME (env KURIR_ALLOWED_HOSTS).\n",
        )
            .into_response(),
    }
}

/// Whether a `Host` header value names this server (see [`check_host`]).
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => match rest.split_once(']') {
            Some((v6, port))
                if port.is_empty() || port.strip_prefix(':').is_some_and(valid_port) =>
            {
                return v6.parse::<std::net::Ipv6Addr>().is_ok();
            }
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((n, port)) if valid_port(port) => n,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || allowed
            .iter()
            .any(|a| a.trim_end_matches('.').eq_ignore_ascii_case(&name))
}

fn valid_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    // No inline script or style anywhere, so the policy can be strict.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn host_names_of_this_server_are_allowed_others_not() {
        let allowed = vec!["kurir.contoso.com".to_owned()];
        for h in [
            "127.0.0.1:8025",
            "127.0.0.1",
            "[::1]:8025",
            "localhost:8025",
            "LOCALHOST",
            "10.1.2.3:80",
            "kurir.contoso.com",
            "Kurir.Contoso.com:443",
        ] {
            assert!(host_allowed(h, &allowed), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:8025",
            "127.0.0.1.evil.example",
            "localhost.evil.example:8025",
            "kurir.contoso.com.evil.example",
            "[::1",
            "127.0.0.1:80x",
            "",
        ] {
            assert!(!host_allowed(h, &allowed), "{h}");
        }
    }
}
