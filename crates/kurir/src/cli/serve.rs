//! `kurir serve`: the long-running service. For now its HTTP side — the admin web UI, the REST
//! API, `/healthz` and `/metrics` (kurir-web); the intake schedulers, outbox workers and SMTP
//! listener join the same process here.
//!
//! Once listening it prints ONE JSON line on stdout (`{"listen": "http://127.0.0.1:8025", …}`)
//! so scripts and tests can find the port when `--listen` used port 0; logs go to stderr. It
//! stops on SIGTERM or Ctrl-C after the requests in flight are answered.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use kurir_store::AdminStore;

use super::open_store;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address of the web UI and REST API. Loopback by default: the UI administers mail
    /// credentials, so reaching it from other machines should be a decision (use a TLS reverse
    /// proxy and --secure-cookies).
    #[arg(long, env = "KURIR_LISTEN", default_value = "127.0.0.1:8025")]
    pub listen: SocketAddr,
    /// Users reach Kurir over HTTPS (a TLS reverse proxy in front): mark cookies Secure.
    #[arg(long, env = "KURIR_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// How long a web sign-in lasts, in hours.
    #[arg(long, default_value_t = 8, value_name = "HOURS")]
    pub session_hours: u16,
    /// Log as JSON lines (for a log collector) instead of text.
    #[arg(long, env = "KURIR_LOG_JSON")]
    pub log_json: bool,
}

/// The logging defaults of `kurir serve`: a service logs what it does (info) by default, where
/// a CLI command stays quiet (warn).
pub fn log_defaults(args: &ServeArgs, verbose: u8) -> (&'static str, bool) {
    let filter = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    (filter, args.log_json)
}

pub async fn run(data_dir: &Path, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let store = Arc::new(open_store(data_dir).await?);
    if store.list_admins().await?.is_empty() {
        tracing::warn!(
            "no admin user yet: nobody can sign in to the web UI until you run `kurir admin users add NAME`"
        );
    }
    if !args.listen.ip().is_loopback() && !args.secure_cookies {
        tracing::warn!(
            listen = %args.listen,
            "the web UI is reachable from other machines over plain HTTP: put a TLS reverse proxy in front and pass --secure-cookies"
        );
    }
    let config = kurir_web::WebConfig {
        listen: args.listen,
        secure_cookies: args.secure_cookies,
        session_ttl: time::Duration::hours(i64::from(args.session_hours.max(1))),
    };
    let listener = kurir_web::bind(config.listen).await.with_context(|| {
        format!(
            "cannot listen on {}: is another Kurir (or another program) using that port? Choose another with --listen",
            config.listen
        )
    })?;
    let addr = listener.local_addr()?;
    let state = kurir_web::AppState::new(store, config);
    {
        use std::io::Write;
        let line = serde_json::json!({
            "listen": format!("http://{addr}"),
            "metrics": format!("http://{addr}/metrics"),
            "openapi": format!("http://{addr}/api/openapi.json"),
            "data_dir": data_dir,
        });
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    tracing::info!(%addr, "web UI and REST API listening");
    kurir_web::serve(listener, state, shutdown_signal())
        .await
        .context("the web server failed")?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM (systemd, `kill`) or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot install the SIGTERM handler; stop with Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
