//! Prometheus metrics at `/metrics`, and the hooks the rest of Kurir feeds them through.
//!
//! The `metrics` facade is process-global: kurir-entra (token requests), the outbox workers and
//! the intake schedulers (failures by reason) count with the `metrics` macros under the names
//! below, and the mail totals, queue depth and last fetch are read from the store at scrape time
//! ([`export_store`]); this module owns the names so that dashboards and alerts have one place
//! to look them up.
//!
//! Labels carry account names, user codes and reasons, never addresses' passwords, tokens or
//! message contents.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "kurir_http_requests_total";
pub const HTTP_DURATION: &str = "kurir_http_request_duration_seconds";
/// Counted by kurir-entra at each request to the token endpoint (same name).
pub const TOKEN_REQUESTS: &str = "kurir_token_requests_total";
pub const MESSAGES_IN: &str = "kurir_messages_in_total";
pub const MESSAGES_OUT: &str = "kurir_messages_out_total";
/// Counted by the outbox workers and intake schedulers (same name).
pub const FAILURES: &str = "kurir_failures_total";
pub const QUEUE_DEPTH: &str = "kurir_queue_depth";
pub const LAST_FETCH: &str = "kurir_last_successful_fetch_timestamp_seconds";
pub const ALARMS: &str = "kurir_alarms";
pub const SECRET_DAYS_LEFT: &str = "kurir_client_secret_days_left";
pub const CERTIFICATE_DAYS_LEFT: &str = "kurir_certificate_days_left";
pub const CHECKS: &str = "kurir_connection_tests_total";
pub const STORAGE_BYTES: &str = "kurir_storage_bytes";
pub const STORAGE_MESSAGES: &str = "kurir_storage_messages";

/// Installs the Prometheus recorder once per process and returns its handle; later calls (a
/// second server in the same process, tests) get the same handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(HTTP_DURATION.into()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ],
                )
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder already installed (an embedding program chose its own) is fine:
            // our handle then renders only what reaches it, and the embedder's wins.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests served, by method, route and status"
    );
    metrics::describe_histogram!(HTTP_DURATION, metrics::Unit::Seconds, "HTTP request time");
    metrics::describe_counter!(
        TOKEN_REQUESTS,
        "Token requests to Entra ID, by outcome (ok, or the AADSTS code / error)"
    );
    metrics::describe_counter!(MESSAGES_IN, "Messages taken in, by account");
    metrics::describe_counter!(MESSAGES_OUT, "Messages sent, by sender");
    metrics::describe_counter!(FAILURES, "Failures, by component and reason");
    metrics::describe_gauge!(QUEUE_DEPTH, "Messages waiting, by queue");
    metrics::describe_gauge!(
        LAST_FETCH,
        "Unix time of the last successful fetch, by account"
    );
    metrics::describe_gauge!(ALARMS, "Open alarms, by kind and severity");
    metrics::describe_gauge!(
        SECRET_DAYS_LEFT,
        "Days until the client secret expires (negative: expired), by subject"
    );
    metrics::describe_gauge!(
        CERTIFICATE_DAYS_LEFT,
        "Days until the certificate expires (negative: expired), by subject"
    );
    metrics::describe_counter!(CHECKS, "Test connection runs, by subject kind and outcome");
    metrics::describe_gauge!(
        STORAGE_BYTES,
        metrics::Unit::Bytes,
        "Bytes kept, by account (raw incoming mail, import documents) and for the outbox"
    );
    metrics::describe_gauge!(
        STORAGE_MESSAGES,
        "Incoming message records kept, by account (retention removes them after keep_records)"
    );
}

/// The `method` label of an HTTP request: one of the methods Kurir's routes use (and HEAD and
/// OPTIONS, which axum answers for them), else `other` — never the client's own string.
pub fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// How many messages wait in `queue` (e.g. `outbox`, `import`).
pub fn queue_depth(queue: &str, depth: u64) {
    metrics::gauge!(QUEUE_DEPTH, "queue" => queue.to_owned()).set(depth as f64);
}

/// `account` was read successfully at `unix_seconds`.
pub fn last_successful_fetch(account: &str, unix_seconds: i64) {
    metrics::gauge!(LAST_FETCH, "account" => account.to_owned()).set(unix_seconds as f64);
}

/// One Test connection run.
pub fn checks(scope: &kurir_settings::Scope, ok: bool) {
    let kind = kurir_settings::keys::level_name(scope.level());
    let outcome = if ok { "ok" } else { "failed" };
    metrics::counter!(CHECKS, "subject" => kind, "outcome" => outcome).increment(1);
}

/// Sets the mail counters and gauges from the database (called when `/metrics` is scraped).
///
/// The database, not in-process counting, is the source: `kurir fetch`, `kurir send` and other
/// Kurir instances on the same database do work too, and a restart must not reset a counter
/// that dashboards compute rates from (Prometheus handles resets, but a total that matches the
/// UI is easier to trust).
pub async fn export_store(store: &dyn kurir_store::KurirStore) {
    if let Ok(health) = store.health(None).await {
        for h in &health {
            metrics::counter!(MESSAGES_IN, "account" => h.account.clone())
                .absolute(h.taken_in_total);
            if let Some(t) = h.last_success.as_deref().and_then(unix_seconds) {
                last_successful_fetch(&h.account, t);
            }
            metrics::gauge!("kurir_intake_failures_in_a_row", "account" => h.account.clone())
                .set(f64::from(h.failures));
        }
    }
    if let Ok(counts) = store.outbox_counts_by_sender().await {
        let mut waiting = 0;
        let mut failed = 0;
        for ((sender, state), n) in &counts {
            match state.as_str() {
                "sent" => metrics::counter!(MESSAGES_OUT, "sender" => sender.clone()).absolute(*n),
                "queued" | "sending" => waiting += n,
                "failed" => failed += n,
                _ => {}
            }
        }
        queue_depth("outbox", waiting);
        metrics::gauge!("kurir_outbox_failed", "queue" => "outbox").set(failed as f64);
    }
    // One series per account that has mail (the accounts are the administrator's, so the label
    // is bounded like the other account labels).
    if let Ok((accounts, outbox)) = store.storage_use().await {
        for u in &accounts {
            metrics::gauge!(STORAGE_BYTES, "account" => u.account.clone(), "kind" => "raw")
                .set(u.raw_bytes as f64);
            metrics::gauge!(STORAGE_BYTES, "account" => u.account.clone(), "kind" => "import")
                .set(u.import_bytes as f64);
            metrics::gauge!(STORAGE_MESSAGES, "account" => u.account.clone())
                .set(u.messages as f64);
        }
        metrics::gauge!(STORAGE_BYTES, "account" => "", "kind" => "outbox")
            .set(outbox.bytes as f64);
    }
}

fn unix_seconds(rfc3339: &str) -> Option<i64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}
