//! `kurir serve`: the long-running service. One process runs
//! - the HTTP server: admin web UI, REST API, `/healthz`, `/metrics` (kurir-web);
//! - the intake: one scheduler per incoming-mail account (IMAP IDLE / poll / backoff), started,
//!   restarted and stopped as the accounts' settings change;
//! - the outbox workers, which send what `kurir send`, the REST API and the listener queue;
//! - the SMTP submission listener for legacy components (the webshop), once it has a login.
//!
//! Once listening it prints ONE JSON line on stdout (`{"listen": "http://127.0.0.1:8025", …}`)
//! so scripts and tests can find the ports when `--listen` used port 0; logs go to stderr.
//!
//! Several instances may share one PostgreSQL database (`--database-url`): the outbox's leases
//! give them disjoint messages, and each incoming-mail account is taken in by one instance at a
//! time, the one holding its account lease in the store (renewed every third of
//! [`ACCOUNT_LEASE_TTL`]; an instance that dies leaves a lease that expires, and another takes
//! the account over).
//!
//! Shutdown (SIGTERM, Ctrl-C): the web server answers the requests in flight; every intake pass
//! and every send in flight finishes (its outcome committed) — bounded by `--shutdown-grace`,
//! after which what is still running is abandoned *safely*: an intake batch not committed is
//! taken in again at the next start (exactly once: deduplicated by server id), and an unsent
//! message's lease expires so the next start sends it.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use kurir_intake::auth::Mechanism;
use kurir_outbox::{ListenerConfig, Outbox, listener};
use kurir_settings::{Scope, SettingsSnapshot};
use kurir_store::KurirStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::outbox::WorkerArgs;
use super::{Place, open_store};
use crate::fail::bad;

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
    /// A host name users reach the web UI by (a reverse proxy's public name), besides IP
    /// addresses and `localhost`. Requests with any other `Host` header get 421: a
    /// DNS-rebinding web page cannot reach the UI or API through a browser. Repeatable; env
    /// KURIR_ALLOWED_HOSTS takes a comma-separated list.
    #[arg(
        long = "allowed-host",
        env = "KURIR_ALLOWED_HOSTS",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub allowed_hosts: Vec<String>,
    /// Log as JSON lines (for a log collector) instead of text.
    #[arg(long, env = "KURIR_LOG_JSON")]
    pub log_json: bool,
    /// Address of the SMTP submission listener, or `off`. It opens once a login exists
    /// (`kurir listener users add WEBSHOP`): without one it could accept nothing.
    #[arg(
        long,
        env = "KURIR_SMTP_LISTEN",
        default_value = "127.0.0.1:2587",
        value_name = "ADDR|off"
    )]
    pub smtp_listen: String,
    /// Do not take in incoming mail in this process (e.g. another instance does).
    #[arg(long)]
    pub no_intake: bool,
    /// Do not send the outbox in this process.
    #[arg(long)]
    pub no_outbox: bool,
    /// Seconds to let intake passes and sends in flight finish on shutdown.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub shutdown_grace: u64,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

/// The logging defaults of `kurir serve`: a service logs what it does (info) by default, where
/// a CLI command stays quiet (warn).
pub fn log_defaults(log_json: bool, verbose: u8) -> (&'static str, bool) {
    let filter = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    (filter, log_json)
}

pub async fn run(place: &Place, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(place).await?;
    if store.list_admins().await?.is_empty() {
        tracing::warn!(
            "no admin user yet: nobody can sign in to the web UI until you run `kurir admin users add NAME`"
        );
    }
    let service = Service::start(&place.data_dir, store, &args).await?;
    // Listening for the stop signal before the ready line: see shutdown_signal.
    let stop = shutdown_signal();
    service.print_line(serde_json::json!({}))?;
    stop.await;
    service.stop().await
}

/// A running service: what `kurir serve` and `kurir demo` start.
pub struct Service {
    pub web_addr: SocketAddr,
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

    pub async fn start(
        data_dir: &Path,
        store: Arc<dyn KurirStore>,
        args: &ServeArgs,
    ) -> anyhow::Result<Service> {
        if !args.listen.ip().is_loopback() && !args.secure_cookies {
            tracing::warn!(
                listen = %args.listen,
                "the web UI is reachable from other machines over plain HTTP: put a TLS reverse proxy in front and pass --secure-cookies"
            );
        }
        let smtp_listen: Option<SocketAddr> = match args.smtp_listen.as_str() {
            "off" | "none" | "" => None,
            s => Some(s.parse().map_err(|_| {
                bad(format!(
                    "--smtp-listen {s}: not an address; give e.g. 127.0.0.1:2587, or off"
                ))
            })?),
        };
        let worker_cfg = args.worker.config()?;
        let config = kurir_web::WebConfig {
            listen: args.listen,
            secure_cookies: args.secure_cookies,
            session_ttl: time::Duration::hours(i64::from(args.session_hours.max(1))),
            allowed_hosts: args.allowed_hosts.clone(),
        };
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
        let web = {
            let mut stop = stop_rx.clone();
            tokio::spawn(kurir_web::serve(web_listener, state, async move {
                let _ = stop.wait_for(|s| *s).await;
            }))
        };
        tracing::info!(addr = %web_addr, "web UI and REST API listening");

        let mut workers = Vec::new();
        if !args.no_outbox {
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
                Some(listener::bind(&cfg).await?)
            };
            let store = store.clone();
            let outbox = outbox.clone();
            let stop = stop_rx.clone();
            workers.push((
                "smtp listener",
                tokio::spawn(run_listener(store, outbox, cfg, bound, smtp_tx, stop)),
            ));
        }
        if !args.no_intake {
            let store = store.clone();
            let stop = stop_rx.clone();
            let dir = data_dir.to_owned();
            workers.push(("intake", tokio::spawn(supervise_intake(dir, store, stop))));
        }
        Ok(Service {
            web_addr,
            data_dir: data_dir.to_owned(),
            smtp_addr,
            stop_tx,
            grace: Duration::from_secs(args.shutdown_grace),
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
        let addr = self.web_addr;
        let mut line = serde_json::json!({
            "listen": format!("http://{addr}"),
            "metrics": format!("http://{addr}/metrics"),
            "openapi": format!("http://{addr}/api/openapi.json"),
            "smtp": self.smtp_addr().map(|a| a.to_string()),
            "data_dir": self.data_dir,
            "store": self.backend,
            "instance": instance_id(),
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
    pub async fn stop(self) -> anyhow::Result<ExitCode> {
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
        Ok(ExitCode::SUCCESS)
    }
}

/// The SMTP listener: opens (once) when the first login exists, then serves until stop.
async fn run_listener(
    store: Arc<dyn KurirStore>,
    outbox: Arc<Outbox>,
    cfg: ListenerConfig,
    mut bound: Option<listener::Bound>,
    addr_tx: watch::Sender<Option<SocketAddr>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut told = false;
    while bound.is_none() {
        match store.list_listener_users().await {
            Ok(users) if !users.is_empty() => match listener::bind(&cfg).await {
                Ok(b) => bound = Some(b),
                Err(e) => {
                    if !told {
                        tracing::error!(error = %e, "the SMTP listener cannot open; retrying every 10 s");
                        told = true;
                    }
                }
            },
            Ok(_) => {
                if !told {
                    tracing::info!(
                        addr = %cfg.listen,
                        "the SMTP listener opens once it has a login: `kurir listener users add WEBSHOP`"
                    );
                    told = true;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the listener logins"),
        }
        if bound.is_some() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
    let bound = bound.expect("bound above");
    tracing::info!(addr = %bound.local_addr, "SMTP submission listener accepting mail");
    let _ = addr_tx.send(Some(bound.local_addr));
    listener::serve(bound, outbox, cfg, stop).await;
}

/// A running account scheduler and what it was started from.
struct Watcher {
    fingerprint: u64,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// How often the intake looks for added, changed and removed accounts.
const SETTINGS_POLL: Duration = Duration::from_secs(5);

/// How long an account lease lasts without renewal: an instance that dies (or loses the
/// database) keeps an account from the others at most this long. Renewed every third of it.
pub const ACCOUNT_LEASE_TTL: Duration = Duration::from_secs(30);

/// This process's name in account leases: host, pid and a random part (a pid can come again
/// after a restart, and containers often share a hostname).
pub fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(|| std::env::var("COMPUTERNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        format!(
            "{host}:{}:{:08x}",
            std::process::id(),
            rand::random::<u32>()
        )
    })
}

/// The supervisor's account leases: which accounts this instance holds, and which it has
/// already said another instance holds (said once per holder, not every poll).
struct Leases {
    holder: &'static str,
    ttl: Duration,
    held: std::collections::BTreeSet<String>,
    renewed: Instant,
    others: HashMap<String, String>,
}

impl Leases {
    fn new() -> Leases {
        Leases {
            holder: instance_id(),
            ttl: ACCOUNT_LEASE_TTL,
            held: Default::default(),
            renewed: Instant::now(),
            others: HashMap::new(),
        }
    }

    /// Takes (or renews) `account`'s lease: `false` when another instance holds it (said at
    /// info once per holder) or the store cannot be asked (a warning).
    async fn take(&mut self, store: &dyn KurirStore, account: &str) -> bool {
        match store
            .try_lease_account(account, self.holder, self.ttl)
            .await
        {
            Ok(true) => {
                if self.others.remove(account).is_some() {
                    tracing::info!(account = %account, instance = %self.holder, "account taken over by this instance");
                }
                self.held.insert(account.to_owned());
                true
            }
            Ok(false) => {
                self.held.remove(account);
                let other = match store.account_lease(account).await {
                    Ok(Some(l)) => l.holder,
                    Ok(None) => "unknown (its lease just ended)".to_owned(),
                    Err(e) => format!("unknown ({e})"),
                };
                if self.others.get(account) != Some(&other) {
                    tracing::info!(account = %account, holder = %other, "account {account} is taken in by instance {other}");
                    self.others.insert(account.to_owned(), other);
                }
                false
            }
            Err(e) => {
                self.held.remove(account);
                tracing::warn!(account = %account, error = %e, "cannot take the account lease; not taking in this account now");
                false
            }
        }
    }

    async fn release(&mut self, store: &dyn KurirStore, account: &str) {
        if self.held.remove(account)
            && let Err(e) = store.release_account(account, self.holder).await
        {
            tracing::warn!(account = %account, error = %e, "cannot release the account lease; it expires by itself");
        }
    }
}

/// Keeps one scheduler per incoming-mail account running with the account's current
/// settings: an account added in the UI starts within seconds, a changed one restarts with the
/// new settings, a removed one stops. An account whose settings are incomplete gets a health
/// record saying what to set, not a crash loop. A scheduler runs only while this instance
/// holds the account's lease: one taken by another instance is left to it, and a scheduler
/// whose lease cannot be renewed stops (the account goes to whoever holds it next).
async fn supervise_intake(
    data_dir: PathBuf,
    store: Arc<dyn KurirStore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut watchers: BTreeMap<String, Watcher> = BTreeMap::new();
    let mut reported: HashMap<String, (u64, String)> = HashMap::new();
    let mut leases = Leases::new();
    // Schedulers stopped for a lost lease, still finishing their pass.
    let mut stopping: Vec<(String, JoinHandle<()>)> = Vec::new();
    loop {
        if leases.renewed.elapsed() >= leases.ttl / 3 {
            leases.renewed = Instant::now();
            let running: Vec<String> = watchers.keys().cloned().collect();
            for name in running {
                if !leases.take(&*store, &name).await {
                    tracing::warn!(account = %name, "the account lease could not be renewed: stopping its intake");
                    if let Some(w) = watchers.remove(&name) {
                        let _ = w.stop.send(true);
                        stopping.push((name, w.task));
                    }
                }
            }
        }
        stopping.retain(|(_, t)| !t.is_finished());
        match store.snapshot().await {
            Ok(snap) => {
                reconcile(
                    &data_dir,
                    &store,
                    &snap,
                    &mut watchers,
                    &mut reported,
                    &mut leases,
                )
                .await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the settings; intake keeps its current accounts")
            }
        }
        let renew_in = (leases.ttl / 3).saturating_sub(leases.renewed.elapsed());
        tokio::select! {
            _ = tokio::time::sleep(SETTINGS_POLL.min(renew_in.max(Duration::from_millis(100)))) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    // Each scheduler finishes the pass in flight (its batch commits, its moves are done).
    for w in watchers.values() {
        let _ = w.stop.send(true);
    }
    let tasks = watchers
        .into_iter()
        .map(|(name, w)| (name, w.task))
        .chain(stopping);
    for (name, task) in tasks {
        if let Err(e) = task.await {
            tracing::warn!(account = %name, error = %e, "an intake scheduler ended abnormally");
        }
    }
    // Only now: another instance may take the accounts at once without overlapping a pass.
    let held: Vec<String> = leases.held.iter().cloned().collect();
    for name in held {
        leases.release(&*store, &name).await;
    }
    tracing::info!("intake stopped");
}

/// What a scheduler depends on: the account's effective settings as shown (secrets by their
/// mask and date, so a re-entered secret restarts it).
fn fingerprint(snap: &SettingsSnapshot, account: &str) -> u64 {
    let eff = snap.resolve(&Scope::Account(account.to_owned()));
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in &eff.fields {
        f.key.name.hash(&mut h);
        f.value.as_ref().map(|v| v.display()).hash(&mut h);
    }
    h.finish()
}

async fn reconcile(
    data_dir: &Path,
    store: &Arc<dyn KurirStore>,
    snap: &SettingsSnapshot,
    watchers: &mut BTreeMap<String, Watcher>,
    reported: &mut HashMap<String, (u64, String)>,
    leases: &mut Leases,
) {
    // Removed accounts.
    let gone: Vec<String> = watchers
        .keys()
        .filter(|n| !snap.accounts.contains_key(*n))
        .cloned()
        .collect();
    for name in gone {
        if let Some(w) = watchers.remove(&name) {
            tracing::info!(account = %name, "account removed: stopping its intake");
            let _ = w.stop.send(true);
            // Released when the pass in flight has finished.
            let store = store.clone();
            let holder = leases.holder;
            leases.held.remove(&name);
            tokio::spawn(async move {
                let _ = w.task.await;
                let _ = store.release_account(&name, holder).await;
            });
        }
    }
    leases.others.retain(|n, _| snap.accounts.contains_key(n));
    for name in snap.accounts.keys() {
        let fp = fingerprint(snap, name);
        if let Some(w) = watchers.get(name) {
            if w.fingerprint == fp && !w.task.is_finished() {
                continue;
            }
            tracing::info!(account = %name, "account settings changed: restarting its intake");
            let _ = w.stop.send(true);
            watchers.remove(name);
        }
        if let Some((rfp, _)) = reported.get(name)
            && *rfp == fp
        {
            // Already told the admin what is missing; nothing changed since.
            continue;
        }
        // Renewed while it runs (a restart for changed settings keeps it).
        if !leases.held.contains(name) && !leases.take(&**store, name).await {
            continue;
        }
        match super::fetch::prepare(store, snap, name, Mechanism::XOAuth2).await {
            Ok((spec, mut transport)) => {
                reported.remove(name);
                let mut intake = spec.intake(data_dir.to_owned(), store.clone());
                let poll = spec.poll_interval;
                let (tx, rx) = watch::channel(false);
                // Stopping (shutdown, changed settings, a lost lease) also ends a long pass
                // after the batches already fetched.
                intake.stop = Some(rx.clone());
                let account = name.clone();
                let task = tokio::spawn(async move {
                    kurir_intake::schedule::watch_account(&intake, transport.as_mut(), poll, rx)
                        .await;
                    tracing::debug!(account = %account, "intake scheduler ended");
                });
                tracing::info!(account = %name, protocol = ?spec.protocol, every = ?poll, "taking in mail");
                watchers.insert(
                    name.clone(),
                    Watcher {
                        fingerprint: fp,
                        stop: tx,
                        task,
                    },
                );
            }
            Err(e) => {
                let text = format!("{e:#}");
                tracing::warn!(account = %name, error = %text, "cannot take in mail for this account until its settings are fixed");
                let _ = store.record_pass(name, Err(text.clone())).await;
                reported.insert(name.clone(), (fp, text));
                leases.release(&**store, name).await;
            }
        }
    }
}

/// Resolves on SIGTERM (systemd, `kill`) or Ctrl-C.
///
/// The handlers are installed when this is *called*, not when the future is first polled:
/// `kurir serve` prints its ready line and only then waits, and a SIGTERM that arrives in
/// between (a service manager stopping it right after start) must mean "finish and exit 0",
/// not the default action that kills the process mid-write.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        match signals {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (term, int) => {
                let e = term.err().or(int.err()).expect("one of them failed");
                tracing::error!(error = %e, "cannot install the SIGTERM handler; stop with Ctrl-C");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        // Windows has no SIGTERM: Ctrl-C (and the service wrapper's console event) stops it.
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
