//! Kurir's HTTP side: the admin web UI, the REST API, Test connection, alarms, `/healthz` and
//! Prometheus `/metrics`.
//!
//! It is a library so that `kurir serve` can run it in the same process as the intake
//! schedulers, the outbox workers and the SMTP listener: build an [`AppState`], bind with
//! [`bind`], and run [`serve`] with a shutdown future; or take [`router`] and mount it yourself.
//!
//! Layout: `ui.rs` the HTML pages (askama templates in `templates/`, checked at compile time),
//! `api.rs` the JSON API (documented in `openapi.json`, checked against the router by a test),
//! `auth.rs` sessions, CSRF and API keys, `check.rs` Test connection with `probe.rs` for
//! IMAP/POP3/SMTP, `mail.rs` the pages of the outbox, incoming mail, quarantine and account
//! health, `alarms.rs`, `metrics.rs`, `i18n.rs` (Swedish and English).
//!
//! The UI listens on loopback by default: it administers mail credentials, so exposing it is a
//! decision (put it behind a TLS reverse proxy and pass `secure_cookies`).

pub mod alarms;
pub mod api;
pub mod auth;
pub mod check;
mod edit;
pub mod i18n;
pub mod mail;
pub mod metrics;
mod probe;
pub mod send;
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
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8025)),
            secure_cookies: false,
            session_ttl: time::Duration::hours(8),
        }
    }
}

/// What every handler shares.
pub struct AppState {
    pub store: Arc<dyn KurirStore>,
    pub config: WebConfig,
    pub metrics: PrometheusHandle,
    /// API keys already verified with argon2, by SHA-256 of the presented token → key id. A
    /// hit is re-checked against the database (cheap) so revocation takes effect at once.
    pub(crate) verified_keys: Mutex<HashMap<String, String>>,
}

impl AppState {
    pub fn new(store: Arc<dyn KurirStore>, config: WebConfig) -> Arc<AppState> {
        Arc::new(AppState {
            store,
            config,
            metrics: metrics::install(),
            verified_keys: Mutex::new(HashMap::new()),
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
        .merge(mail::routes())
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(count_requests))
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
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Today's date (UTC) for expiry checks.
pub fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    // Healthy means the database answers: everything else Kurir does depends on it.
    match state.store.snapshot().await {
        Ok(_) => (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"status":"ok"}"#,
        )
            .into_response(),
        Err(e) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "error", "error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn metrics_page(State(state): State<Arc<AppState>>) -> Response {
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
    let method = req.method().to_string();
    // The route pattern, not the path: `/users/{code}` keeps the label set small.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    ::metrics::counter!(metrics::HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    ::metrics::histogram!(metrics::HTTP_DURATION, "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
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
