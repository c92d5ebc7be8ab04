//! The intake in the service: one scheduler per incoming-mail account, started, restarted and
//! stopped as the accounts' settings change, each only while this instance holds the
//! account's lease in the store.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kurir_connect::{Resource, token_client, token_request};
use kurir_intake::auth::{EntraTokens, Mechanism};
use kurir_intake::{AccountSpec, Protocol};
use kurir_settings::{Scope, SettingsSnapshot};
use kurir_store::KurirStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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
pub async fn supervise(
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
        match prepare_account(store, snap, name, Mechanism::XOAuth2).await {
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

/// The account's spec and transport (with its token source), ready for a pass.
pub async fn prepare_account(
    store: &Arc<dyn KurirStore>,
    snap: &SettingsSnapshot,
    name: &str,
    sasl: Mechanism,
) -> anyhow::Result<(AccountSpec, Box<dyn kurir_intake::transport::Transport>)> {
    let scope = Scope::Account(name.to_owned());
    let eff = snap.resolve(&scope);
    let spec = AccountSpec::from_settings(name, &eff, sasl)?;
    let resource = match spec.protocol {
        Protocol::Graph { .. } => Resource::Graph,
        _ => Resource::Exchange,
    };
    let (eff, request) = token_request(&**store, snap, &scope, resource).await?;
    let client = Arc::new(token_client(&eff, store.clone())?);
    let tokens = Arc::new(EntraTokens {
        client,
        request,
        mailbox: spec.mailbox.clone(),
    });
    let transport = spec.transport(tokens)?;
    Ok((spec, transport))
}
