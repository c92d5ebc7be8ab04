//! Kurir's service: what `kurir serve` (and `kurir demo`) run. One process runs
//! - the HTTP server: admin web UI, REST API, `/healthz`, `/metrics` (kurir-web);
//! - the intake: one scheduler per incoming-mail account (IMAP IDLE / poll / backoff), started,
//!   restarted and stopped as the accounts' settings change;
//! - the outbox workers, which send what `kurir send`, the REST API and the listener queue;
//! - the SMTP submission listener for legacy components (the webshop), once it has a login;
//! - upkeep: retention's daily purge, alarm notifications and the ERP webhook ([`upkeep`]).
//!
//! Once listening it prints ONE JSON line on stdout (`{"listen": "http://127.0.0.1:8025", …}`)
//! so scripts and tests can find the ports when `--listen` used port 0; logs go to stderr.
//!
//! Several instances may share one PostgreSQL database (`KURIR_DATABASE_URL`): the outbox's leases
//! give them disjoint messages, and each incoming-mail account is taken in by one instance at a
//! time, the one holding its account lease in the store (renewed every third of
//! [`intake::ACCOUNT_LEASE_TTL`]; an instance that dies leaves a lease that expires, and another takes
//! the account over).
//!
//! Shutdown (SIGTERM, Ctrl-C): the web server answers the requests in flight; every intake pass
//! and every send in flight finishes (its outcome committed) — bounded by [`ServiceConfig::shutdown_grace`],
//! after which what is still running is abandoned *safely*: an intake batch not committed is
//! taken in again at the next start (exactly once: deduplicated by server id), and an unsent
//! message's lease expires so the next start sends it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kurir_outbox::{ListenerConfig, Outbox, OutboxConfig};
use kurir_store::KurirStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod backup;
pub mod certificate;
pub mod config;
pub mod intake;
mod listener;
pub mod paths;
pub mod rotation;
pub mod setup;
pub mod signal;
pub mod upkeep;

/// What a service runs, already validated (the CLI turns its arguments into this).
#[derive(Clone)]
pub struct ServiceConfig {
    /// The web UI and REST API.
    pub web: kurir_web::WebConfig,
    /// The SMTP submission listener's address; `None`: no listener.
    pub smtp_listen: Option<SocketAddr>,
    /// How the outbox's workers send.
    pub outbox: OutboxConfig,
    /// Send the outbox in this process.
    pub run_outbox: bool,
    /// Take in incoming mail in this process.
    pub run_intake: bool,
    /// How long intake passes and sends in flight may finish on shutdown.
    pub shutdown_grace: Duration,
    /// Retention, alarm notifications and the ERP webhook (`None`: not in this process).
    pub upkeep: Option<upkeep::UpkeepConfig>,
}

/// A running service: what `kurir serve` and `kurir demo` start.
pub struct Service {
    pub web_addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    data_dir: PathBuf,
    smtp_addr: watch::Receiver<Option<SocketAddr>>,
    stop_tx: watch::Sender<bool>,
    grace: Duration,
    web: JoinHandle<std::io::Result<()>>,
    workers: Vec<(&'static str, JoinHandle<()>)>,
    backend: &'static str,
    submitter: kurir_outbox::Submitter,
}

impl Service {
    /// The way to queue mail into this service (wakes its outbox workers).
    pub fn submitter(&self) -> kurir_outbox::Submitter {
        self.submitter.clone()
    }

    /// Starts everything `config` asks for on `store`; `data_dir` holds the local files (the
    /// import queue, spool, the listener's TLS key).
    pub async fn start(
        data_dir: &Path,
        store: Arc<dyn KurirStore>,
        config: ServiceConfig,
    ) -> anyhow::Result<Service> {
        let ServiceConfig {
            web: config,
            smtp_listen,
            outbox: worker_cfg,
            run_outbox,
            run_intake,
            shutdown_grace,
            upkeep: upkeep_config,
        } = config;
        let mut config = config;
        // With its own certificate the UI is HTTPS: its cookies never travel in the clear.
        let tls = match &config.tls {
            Some(files) => {
                config.secure_cookies = true;
                let cfg = kurir_web::tls::server_config(files)?;
                if let Some(day) = kurir_web::tls::not_after(files) {
                    let left = (day - time::OffsetDateTime::now_utc().date()).whole_days();
                    if left < 30 {
                        tracing::warn!(certificate = %files.cert.display(), expires = %day, days_left = left, "the web UI's certificate expires soon (or has expired); replace it");
                    }
                }
                Some(cfg)
            }
            None => None,
        };
        if !config.listen.ip().is_loopback() && !config.secure_cookies {
            tracing::warn!(
                listen = %config.listen,
                "the web UI is reachable from other machines over plain HTTP: give it a certificate (web.tls_cert / --tls-cert) or put a TLS reverse proxy in front and pass --secure-cookies"
            );
        }
        let web_listener = kurir_web::bind(config.listen).await.with_context(|| {
            format!(
                "cannot listen on {}: is another Kurir (or another program) using that port? Choose another with --listen",
                config.listen
            )
        })?;
        let web_addr = web_listener.local_addr()?;
        let (stop_tx, stop_rx) = watch::channel(false);

        let outbox = Outbox::new(store.clone(), worker_cfg);
        let state = kurir_web::AppState::new(store.clone(), config, outbox.submitter());
        let _ = state.entra_setup.set(Arc::new(setup::WebSetup));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let web = {
            let mut stop = stop_rx.clone();
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            match tls {
                Some(cfg) => tokio::spawn(kurir_web::serve_tls(
                    kurir_web::tls::TlsListener::new(web_listener, cfg)?,
                    state,
                    shutdown,
                )),
                None => tokio::spawn(kurir_web::serve(web_listener, state, shutdown)),
            }
        };
        tracing::info!(addr = %web_addr, scheme, "web UI and REST API listening");

        let mut workers = Vec::new();
        if run_outbox {
            let outbox = outbox.clone();
            let stop = stop_rx.clone();
            workers.push((
                "outbox",
                tokio::spawn(async move {
                    match outbox.run(stop, false).await {
                        Ok(s) => tracing::info!(
                            sent = s.sent,
                            retried = s.retried,
                            failed = s.failed,
                            "outbox workers stopped"
                        ),
                        Err(e) => tracing::error!(error = %e, "the outbox workers stopped on a database error"),
                    }
                }),
            ));
            tracing::info!("outbox workers running");
        }
        let (smtp_tx, smtp_addr) = watch::channel(None);
        if let Some(addr) = smtp_listen {
            let mut cfg = ListenerConfig::loopback(data_dir);
            cfg.listen = addr;
            cfg.auth_without_tls = addr.ip().is_loopback();
            // Bind now when a login exists, so a port in use stops the start with a clear error
            // rather than a log line nobody reads.
            let bound = if store.list_listener_users().await?.is_empty() {
                None
            } else {
                Some(kurir_outbox::listener::bind(&cfg).await?)
            };
            let store = store.clone();
            let outbox = outbox.clone();
            let stop = stop_rx.clone();
            workers.push((
                "smtp listener",
                tokio::spawn(listener::run(store, outbox, cfg, bound, smtp_tx, stop)),
            ));
        }
        if let Some(cfg) = upkeep_config {
            let store = store.clone();
            let stop = stop_rx.clone();
            workers.push((
                "upkeep",
                tokio::spawn(upkeep::run(store, outbox.submitter(), cfg, stop)),
            ));
        }
        if run_intake {
            let store = store.clone();
            let stop = stop_rx.clone();
            let dir = data_dir.to_owned();
            workers.push(("intake", tokio::spawn(intake::supervise(dir, store, stop))));
        }
        Ok(Service {
            web_addr,
            scheme,
            data_dir: data_dir.to_owned(),
            smtp_addr,
            stop_tx,
            grace: shutdown_grace,
            web,
            workers,
            backend: store.backend(),
            submitter: outbox.submitter(),
        })
    }

    pub fn smtp_addr(&self) -> Option<SocketAddr> {
        *self.smtp_addr.borrow()
    }

    /// Prints the one JSON line (ports, paths) with `extra` merged in.
    pub fn print_line(&self, extra: serde_json::Value) -> anyhow::Result<()> {
        use std::io::Write;
        let (addr, scheme) = (self.web_addr, self.scheme);
        let mut line = serde_json::json!({
            "listen": format!("{scheme}://{addr}"),
            "metrics": format!("{scheme}://{addr}/metrics"),
            "openapi": format!("{scheme}://{addr}/api/openapi.json"),
            "smtp": self.smtp_addr().map(|a| a.to_string()),
            "data_dir": self.data_dir,
            "store": self.backend,
            "instance": intake::instance_id(),
        });
        if let (Some(l), serde_json::Value::Object(e)) = (line.as_object_mut(), extra) {
            l.extend(e);
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(())
    }

    /// Stops everything: new work is refused at once, work in flight gets the grace period.
    pub async fn stop(self) -> anyhow::Result<()> {
        tracing::info!(
            grace_secs = self.grace.as_secs(),
            "shutting down: finishing the requests, intake passes and sends in flight"
        );
        let _ = self.stop_tx.send(true);
        let deadline = tokio::time::Instant::now() + self.grace;
        for (name, task) in self.workers {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
                tracing::warn!(
                    component = name,
                    "did not finish within the shutdown grace; what it was doing is left for the next start (nothing is lost)"
                );
            }
        }
        match tokio::time::timeout_at(deadline + Duration::from_secs(5), self.web).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(e).context("the web server failed"),
            Ok(Err(e)) => return Err(e).context("the web server task failed"),
            Err(_) => tracing::warn!("the web server did not finish its requests in time"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}
