//! The outbox: accepting messages durably and the workers that send them.
//!
//! [`crate::Submitter::queue`] returns only after the message's row has committed (fsync'd); everything
//! after that is the workers' job. A worker loop leases due messages (up to `concurrency` in
//! flight), sends each in its own task while renewing the lease, and records the outcome:
//! sent; a transient failure (SMTP 4xx, Graph 429/503, an Entra outage) is retried with
//! exponential backoff that honours `Retry-After`; a permanent one (5xx, AADSTS configuration
//! errors such as 7000215) stops with the explanation. A process killed mid-send loses nothing:
//! its leases expire and another run sends those messages again (at worst a duplicate, if the
//! server had already accepted one).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kurir_connect::StoreRefreshTokens;
use kurir_entra::{ClientConfig, TokenClient};
use kurir_settings::SettingsSnapshot;
use kurir_store::outbox::{Leased, Outcome, now_ms};
use kurir_store::{KurirStore, StoreError};
use rand::Rng;
use tokio::sync::{Mutex, Notify, watch};

use crate::submission::Submitter;
use tokio::task::JoinSet;

use crate::error::SendError;
use crate::graph::{GraphSender, Outgoing};
use crate::sender::{self, ExchangeTransport, Route, Sender};
use crate::smtp::{Gate, SmtpPool};
use crate::throttle::Throttle;

/// How the outbox behaves. The defaults are for Exchange Online in production.
#[derive(Clone)]
pub struct OutboxConfig {
    /// Messages in flight at once (across all mailboxes).
    pub concurrency: usize,
    /// How long a worker holds a message before another may take it; renewed while sending.
    pub lease: Duration,
    /// How often an idle worker looks for messages queued by another process (`kurir send`).
    pub idle_poll: Duration,
    /// Backoff after the first transient failure, doubled per attempt up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// A message still failing transiently after this long fails for good (like an MTA's
    /// maximal queue lifetime), so nothing waits forever unnoticed.
    pub max_age: Duration,
    /// Per-mailbox send rate cap (Exchange Online: 30 per minute); `None` for no cap.
    pub rate_per_minute: Option<u32>,
    /// Concurrent Graph requests per mailbox (Exchange: 4).
    pub graph_concurrency: usize,
    /// Graph sendMail: keep a copy in Sent Items.
    pub save_to_sent_items: bool,
    pub exchange_transport: ExchangeTransport,
    /// SMTP connections kept per server and login.
    pub smtp_pool_size: u32,
    pub smtp_timeout: Duration,
    /// The token client's network behaviour; the Extra CA comes from each user's settings.
    pub token: ClientConfig,
    /// How long resolved senders (settings) are reused before the settings are read again.
    pub settings_ttl: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            concurrency: 8,
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_secs(1),
            backoff_initial: Duration::from_secs(30),
            backoff_max: Duration::from_secs(30 * 60),
            max_age: Duration::from_secs(5 * 24 * 3600),
            rate_per_minute: Some(30),
            graph_concurrency: 4,
            save_to_sent_items: true,
            exchange_transport: ExchangeTransport::Auto,
            smtp_pool_size: 4,
            smtp_timeout: Duration::from_secs(60),
            token: ClientConfig::default(),
            settings_ttl: Duration::from_secs(5),
        }
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunStats {
    pub sent: u64,
    pub retried: u64,
    pub failed: u64,
    pub deferred: u64,
    /// Outcomes not recorded because the lease had been lost (the message was taken over).
    pub lost_leases: u64,
}

type SenderCache = HashMap<String, (Instant, Sender)>;

pub struct Outbox {
    store: Arc<dyn KurirStore>,
    cfg: OutboxConfig,
    smtp: SmtpPool,
    graph: GraphSender,
    throttle: Throttle,
    tokens: Mutex<HashMap<Option<String>, Arc<TokenClient>>>,
    snapshot: Mutex<Option<(Instant, Arc<SettingsSnapshot>)>>,
    senders: Mutex<SenderCache>,
    wake: Notify,
}

impl Outbox {
    pub fn new(store: Arc<dyn KurirStore>, cfg: OutboxConfig) -> Arc<Outbox> {
        Arc::new(Outbox {
            smtp: SmtpPool::new(cfg.smtp_pool_size, cfg.smtp_timeout),
            graph: GraphSender::new(cfg.save_to_sent_items),
            throttle: Throttle::new(cfg.rate_per_minute, cfg.graph_concurrency),
            store,
            cfg,
            tokens: Mutex::new(HashMap::new()),
            snapshot: Mutex::new(None),
            senders: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        })
    }

    pub fn store(&self) -> &Arc<dyn KurirStore> {
        &self.store
    }

    /// The way to queue mail in this process: it checks senders with these workers' cached
    /// settings and wakes them at once.
    pub fn submitter(self: &Arc<Self>) -> Submitter {
        Submitter::of(self.clone())
    }

    /// Something was queued in this process: look at the queue now.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// The settings snapshot, re-read at most every `settings_ttl`.
    pub async fn settings(&self) -> Result<Arc<SettingsSnapshot>, StoreError> {
        let mut guard = self.snapshot.lock().await;
        if let Some((at, snap)) = guard.as_ref()
            && at.elapsed() < self.cfg.settings_ttl
        {
            return Ok(snap.clone());
        }
        let snap = Arc::new(self.store.snapshot().await?);
        *guard = Some((Instant::now(), snap.clone()));
        Ok(snap)
    }

    pub(crate) async fn sender_for(&self, user: &str) -> Result<Sender, SendError> {
        if let Some((at, s)) = self.senders.lock().await.get(user)
            && at.elapsed() < self.cfg.settings_ttl
        {
            return Ok(s.clone());
        }
        let snap = self
            .settings()
            .await
            .map_err(|e| SendError::Settings(e.to_string()))?;
        let s = sender::resolve(&self.store, &snap, user, self.cfg.exchange_transport).await?;
        self.senders
            .lock()
            .await
            .insert(user.to_owned(), (Instant::now(), s.clone()));
        Ok(s)
    }

    /// One token client per Extra CA: the cache (and single flight) lives in the client.
    pub async fn token_client(&self, ca_pem: Option<&str>) -> Result<Arc<TokenClient>, SendError> {
        let key = ca_pem.map(str::to_owned);
        let mut map = self.tokens.lock().await;
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let mut cfg = self.cfg.token.clone();
        if key.is_some() {
            cfg.extra_ca_pem = key.clone();
        }
        let client = TokenClient::new(cfg)
            .map_err(|e| SendError::Settings(e.to_string()))?
            .with_refresh_store(Arc::new(StoreRefreshTokens(self.store.clone())));
        let client = Arc::new(client);
        map.insert(key, client.clone());
        Ok(client)
    }

    /// Runs the workers until `stop` turns true, or — with `until_empty` — until no message is
    /// queued or being sent any more (failed ones stay failed).
    pub async fn run(
        self: &Arc<Self>,
        mut stop: watch::Receiver<bool>,
        until_empty: bool,
    ) -> Result<RunStats, StoreError> {
        let mut stats = RunStats::default();
        let mut tasks: JoinSet<TaskEnd> = JoinSet::new();
        let lease_ms = self.cfg.lease.as_millis() as i64;
        loop {
            if *stop.borrow() {
                break;
            }
            while let Some(end) = tasks.try_join_next() {
                account(&mut stats, end);
            }
            let free = self.cfg.concurrency.saturating_sub(tasks.len());
            let mut leased_any = false;
            if free > 0 {
                let batch = self
                    .store
                    .lease_due(now_ms(), lease_ms, free as u32)
                    .await?;
                leased_any = !batch.is_empty();
                for leased in batch {
                    let me = self.clone();
                    tasks.spawn(async move { me.send_leased(leased).await });
                }
            }
            if leased_any && tasks.len() < self.cfg.concurrency {
                continue;
            }
            if until_empty && tasks.is_empty() && self.store.next_due().await?.is_none() {
                break;
            }
            // Sleep until something can change: a task ends, a message is submitted here, the
            // next queued message is due, or the idle poll (another process may have queued).
            let mut sleep_for = self.cfg.idle_poll;
            if free > 0
                && !leased_any
                && let Some(due) = self.store.next_due().await?
            {
                let until = Duration::from_millis((due - now_ms()).max(0) as u64);
                sleep_for = sleep_for.min(until.max(Duration::from_millis(5)));
            }
            tokio::select! {
                Some(end) = tasks.join_next(), if !tasks.is_empty() => account(&mut stats, end),
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep_for) => {}
                _ = stop.changed() => {}
            }
        }
        // Let what is in flight finish (bounded by the SMTP/Graph timeouts); anything cut off
        // later simply has its lease expire.
        while let Some(end) = tasks.join_next().await {
            account(&mut stats, end);
        }
        Ok(stats)
    }

    /// Sends one leased message, renewing the lease meanwhile, and records the outcome.
    async fn send_leased(self: Arc<Self>, leased: Leased) -> TaskOutcome {
        let id = leased.message.id;
        let token = leased.lease_token.clone();
        let renew_every = self.cfg.lease / 3;
        let heartbeat = async {
            loop {
                tokio::time::sleep(renew_every).await;
                let until = now_ms() + self.cfg.lease.as_millis() as i64;
                match self.store.renew_lease(id, &token, until).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(id, error = %e, "could not renew a lease"),
                }
            }
        };
        // `_gate`: an SMTP message past its point of no return (or a Graph send without a Sent
        // Items copy to check on retry) holds it until its outcome is recorded below (see
        // `smtp` and `graph`), so a kill duplicates at most one message.
        let (outcome, _gate) = tokio::select! {
            o = self.attempt(&leased) => o,
            _ = heartbeat => {
                tracing::warn!(id, "lost the lease while sending; another worker has the message");
                return TaskOutcome::Lost;
            }
        };
        let kind = match &outcome {
            Outcome::Sent { .. } => TaskOutcome::Sent,
            Outcome::Retry { .. } => TaskOutcome::Retried,
            Outcome::Defer { .. } => TaskOutcome::Deferred,
            Outcome::Failed { .. } => TaskOutcome::Failed,
        };
        match &outcome {
            Outcome::Sent { via, .. } => {
                tracing::info!(id, user = %leased.message.sender_user, via, "sent")
            }
            Outcome::Retry { error, .. } => {
                tracing::warn!(id, user = %leased.message.sender_user, %error, "will retry")
            }
            Outcome::Failed { error } => {
                tracing::error!(id, user = %leased.message.sender_user, %error, "failed for good")
            }
            Outcome::Defer { .. } => {}
        }
        // Recording the outcome must not be lost to a passing database hiccup.
        for _ in 0..5 {
            match self.store.finish(id, &token, outcome.clone()).await {
                Ok(true) => return kind,
                Ok(false) => return TaskOutcome::Lost,
                Err(e) => {
                    tracing::warn!(id, error = %e, "could not record the outcome; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        TaskOutcome::Lost
    }

    async fn attempt(&self, leased: &Leased) -> (Outcome, Option<Gate>) {
        let m = &leased.message;
        let sender = match self.sender_for(&m.sender_user).await {
            Ok(s) => s,
            Err(e) => return (self.failure(leased, e), None),
        };
        let mailbox = sender.mailbox_key();
        if let Err(wait) = self.throttle.reserve(&mailbox) {
            let at = now_ms() + wait.as_millis() as i64 + 10;
            return (Outcome::Defer { at }, None);
        }
        let tokens = match self.token_client(sender.ca_pem.as_deref()).await {
            Ok(t) => t,
            Err(e) => return (self.failure(leased, e), None),
        };
        let result = match &sender.route {
            Route::Graph { .. } => {
                let _permit = self.throttle.graph_permit(&mailbox).await;
                self.graph
                    .send(
                        &tokens,
                        &sender,
                        Outgoing {
                            raw: &leased.raw,
                            recipients: &m.recipients,
                            message_id: m.message_id.as_deref(),
                            // `attempts` counts this one: an earlier attempt may have been
                            // sent by a process that died before recording it.
                            retry: m.attempts > 1,
                        },
                    )
                    .await
            }
            Route::SmtpOauth { .. } | Route::SmtpClassic { .. } => {
                self.smtp
                    .send(&tokens, &sender, &m.recipients, &leased.raw)
                    .await
            }
        };
        let e = match result {
            Ok((reply, gate)) => {
                let via = sender.route.kind().to_owned();
                return (Outcome::Sent { via, reply }, gate);
            }
            Err(e) => e,
        };
        if matches!(e, SendError::Token { .. } | SendError::Settings(_)) {
            // Nothing reached Exchange: the slot is still free.
            self.throttle.release(&mailbox);
        }
        // A refused token may just be stale (revoked, or expired in flight): fetch a new one
        // next time, and only call it permanent when fresh tokens are refused too.
        let stale = match (&e, &sender.route) {
            (
                SendError::Smtp {
                    code: Some(535), ..
                },
                Route::SmtpOauth { token, .. },
            ) => Some(token),
            (SendError::Graph { status: 401, .. }, Route::Graph { token, .. }) => Some(token),
            _ => None,
        };
        if let Some(token) = stale {
            let _ = tokens.forget(token).await;
            if m.attempts < 3 {
                count_failure(&e);
                return (self.retry(leased, &e, e.to_string()), None);
            }
        }
        (self.failure(leased, e), None)
    }

    fn failure(&self, leased: &Leased, e: SendError) -> Outcome {
        count_failure(&e);
        let text = e.to_string();
        if e.is_permanent() {
            return Outcome::Failed { error: text };
        }
        self.retry(leased, &e, text)
    }

    fn retry(&self, leased: &Leased, e: &SendError, text: String) -> Outcome {
        let age = age_of(&leased.message.created_at);
        if age > self.cfg.max_age {
            return Outcome::Failed {
                error: format!(
                    "gave up after {} attempts over {} hours; the last error: {text}",
                    leased.message.attempts,
                    age.as_secs() / 3600
                ),
            };
        }
        let exp = leased.message.attempts.saturating_sub(1).min(20);
        let base = self
            .cfg
            .backoff_initial
            .saturating_mul(1u32 << exp.min(16))
            .min(self.cfg.backoff_max);
        // ±20 % jitter so that many messages failing together do not retry in lockstep.
        let jitter = rand::rng().random_range(0.8..1.2);
        let mut wait = base.mul_f64(jitter);
        if let Some(ra) = e.retry_after() {
            // The server's word: a day at most, whatever it says.
            wait = wait.max(ra.min(MAX_RETRY_AFTER));
        }
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        Outcome::Retry {
            at: now_ms().saturating_add(wait_ms),
            error: text,
        }
    }
}

/// The longest wait a server's `Retry-After` can impose on one message.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Every failed attempt, for `kurir_failures_total{component="outbox",reason}` (the same name
/// as kurir-web's FAILURES; a no-op without a recorder).
fn count_failure(e: &SendError) {
    metrics::counter!("kurir_failures_total", "component" => "outbox", "reason" => e.reason())
        .increment(1);
}

fn age_of(created_at: &str) -> Duration {
    time::OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339)
        .map(|t| {
            let d = time::OffsetDateTime::now_utc() - t;
            Duration::from_secs(d.whole_seconds().max(0) as u64)
        })
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy)]
enum TaskOutcome {
    Sent,
    Retried,
    Deferred,
    Failed,
    Lost,
}

type TaskEnd = TaskOutcome;

fn account(stats: &mut RunStats, end: Result<TaskEnd, tokio::task::JoinError>) {
    match end {
        Ok(TaskOutcome::Sent) => stats.sent += 1,
        Ok(TaskOutcome::Retried) => stats.retried += 1,
        Ok(TaskOutcome::Deferred) => stats.deferred += 1,
        Ok(TaskOutcome::Failed) => stats.failed += 1,
        Ok(TaskOutcome::Lost) => stats.lost_leases += 1,
        // A panicking task leaves its lease to expire; the message is sent again later.
        Err(e) => {
            tracing::error!(error = %e, "a send task ended abnormally");
            stats.lost_leases += 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kurir_store::outbox::NewOutgoing;
    use kurir_store::{OutboxStore, SqliteStore};

    /// Graph's `Retry-After` of u64::MAX seconds used to overflow (debug) or wrap into a time
    /// in the past (release: the message retried at once, hammering a throttling server).
    #[tokio::test]
    async fn huge_retry_after_is_clamped() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(tmp.path()).await.unwrap());
        store
            .enqueue(NewOutgoing {
                sender_user: "ANNA".into(),
                origin: "cli".into(),
                from: None,
                recipients: vec!["a@example.com".into()],
                subject: None,
                message_id: None,
                raw: b"Subject: x\r\n\r\nx\r\n".to_vec(),
            })
            .await
            .unwrap();
        let leased = store.lease_due(now_ms(), 60_000, 1).await.unwrap();
        let outbox = Outbox::new(store, OutboxConfig::default());
        for secs in [u64::MAX, i64::MAX as u64, 10 * 365 * 24 * 3600] {
            let e = SendError::Graph {
                url: "https://graph.microsoft.com/v1.0/users/a/sendMail".into(),
                status: 429,
                code: Some("TooManyRequests".into()),
                message: "throttled".into(),
                retry_after: Some(Duration::from_secs(secs)),
                advice: String::new(),
                request_id: None,
            };
            let before = now_ms();
            let Outcome::Retry { at, .. } = outbox.retry(&leased[0], &e, e.to_string()) else {
                panic!("a throttled message is retried");
            };
            let day = 24 * 3600 * 1000;
            assert!(
                at >= before + day - 1000 && at <= now_ms() + day,
                "retry after a day at most, not at {at} (now {before})"
            );
        }
    }
}
