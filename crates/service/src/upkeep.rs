//! What keeps `kurir serve` fit to run unattended for years (issue #16):
//! - **retention**: the purge ([`kurir_store::LifecycleStore::purge`]) at start and then daily;
//! - **alarm notifications**: each new alarm is sent to the administrator (the system setting
//!   `alarm_email`, through Kurir's own outbox as the system sender, and/or `alarm_webhook` as
//!   JSON), repeated at most daily while it lasts, and a "resolved" notice when it clears;
//! - **the ERP webhook** (`erp_webhook`): a POST when new messages or import documents are there,
//!   so the ERP fetches them through the cursor feeds at once instead of polling;
//! - **credential rotation** (`rotate_secret`): the client secret replaced before it expires, the
//!   old one removed after a grace period ([`crate::rotation`]).
//!
//! Webhook calls are signed when `webhook_secret` is set: `X-Kurir-Signature: sha256=<hex
//! HMAC-SHA256 of the body>`. Delivery is at least once (a timeout after the receiver got it
//! sends it again); the ERP webhook only says *that* there is something new, the feeds say what.
//!
//! With several instances on one PostgreSQL database each runs this loop; a notice can then go
//! out twice, never not at all.

use std::sync::Arc;
use std::time::Duration;

use kurir_outbox::{Submission, Submitter};
use kurir_settings::{Scope, SettingsSnapshot};
use kurir_store::lifecycle::{NotifiedAlarm, Retention};
use kurir_store::messages::MessageFilter;
use kurir_store::{KurirStore, StoreError};
use kurir_web::alarms::{Alarm, AlarmSeverity};
use kurir_web::i18n::Lang;
use secrecy::ExposeSecret;
use serde_json::json;
use tokio::sync::watch;

/// How often upkeep looks (alarms, the ERP webhook) and purges.
#[derive(Debug, Clone, Copy)]
pub struct UpkeepConfig {
    /// Alarms are computed and the ERP feeds looked at this often.
    pub tick: Duration,
    /// The purge runs at start and then this often.
    pub purge_every: Duration,
    /// A notified alarm that lasts is sent again after this long.
    pub repeat_after: Duration,
    /// After a rotation, the old client secret is removed this much later (services that
    /// cached it switch meanwhile).
    pub rotation_grace: Duration,
    /// How long a rotated-in client secret lives.
    pub rotation_secret_days: u32,
}

impl Default for UpkeepConfig {
    fn default() -> Self {
        UpkeepConfig {
            tick: Duration::from_secs(15),
            purge_every: Duration::from_secs(24 * 3600),
            repeat_after: Duration::from_secs(24 * 3600),
            rotation_grace: Duration::from_secs(3600),
            rotation_secret_days: 365,
        }
    }
}

/// How long a webhook receiver gets to answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// After a notice could go nowhere (no default sender, receiver down), try again this much later.
const NOTIFY_RETRY: Duration = Duration::from_secs(15 * 60);

/// The retention the system settings ask for (defaults for what is unset).
pub fn retention_of(snap: &SettingsSnapshot) -> Retention {
    let eff = snap.resolve(&Scope::System);
    let d = Retention::default();
    Retention {
        raw_mail: eff.duration("keep_raw_mail").unwrap_or(d.raw_mail),
        import_documents: eff
            .duration("keep_import_documents")
            .unwrap_or(d.import_documents),
        sent_mail: eff.duration("keep_sent_mail").unwrap_or(d.sent_mail),
        records: eff.duration("keep_records").unwrap_or(d.records),
    }
}

/// Runs until `stop` turns true.
pub async fn run(
    store: Arc<dyn KurirStore>,
    submitter: Submitter,
    config: UpkeepConfig,
    mut stop: watch::Receiver<bool>,
) {
    let http = match reqwest::Client::builder().timeout(WEBHOOK_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "upkeep cannot make an HTTP client; webhooks are off");
            reqwest::Client::new()
        }
    };
    let mut upkeep = Upkeep {
        store,
        submitter,
        http,
        config,
        notify_failed_at: None,
        rotation_failed_at: None,
    };
    let mut next_purge = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_purge {
            next_purge += config.purge_every;
            upkeep.purge().await;
        }
        if let Err(e) = upkeep.alarms().await {
            tracing::warn!(error = %e, "alarm notifications: the store failed; trying again shortly");
        }
        upkeep.rotation().await;
        if let Err(e) = upkeep.erp_webhook().await {
            tracing::warn!(error = %e, "the ERP webhook: the store failed; trying again shortly");
        }
        tokio::select! {
            _ = tokio::time::sleep(config.tick) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

struct Upkeep {
    store: Arc<dyn KurirStore>,
    submitter: Submitter,
    http: reqwest::Client,
    config: UpkeepConfig,
    notify_failed_at: Option<tokio::time::Instant>,
    /// After a failed rotation, the next try waits (the alarm about the expiry stays).
    rotation_failed_at: Option<tokio::time::Instant>,
}

/// After a rotation failed, try again this much later.
const ROTATION_RETRY: Duration = Duration::from_secs(3600);

fn now_text() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formatting")
}

fn age(rfc3339: &str) -> Duration {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| time::OffsetDateTime::now_utc() - t)
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or(Duration::MAX)
}

fn alarm_key(a: &Alarm) -> String {
    let kind = serde_json::to_value(a.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    format!("{kind}/{}", a.subject)
}

impl Upkeep {
    async fn rotation(&mut self) {
        if self
            .rotation_failed_at
            .is_some_and(|at| at.elapsed() < ROTATION_RETRY)
        {
            return;
        }
        let result = async {
            if crate::rotation::due(&self.store).await? {
                crate::rotation::rotate(
                    &self.store,
                    self.config.rotation_secret_days,
                    self.config.rotation_grace,
                )
                .await?;
            }
            crate::rotation::remove_retired(&self.store).await
        }
        .await;
        match result {
            Ok(_) => self.rotation_failed_at = None,
            Err(e) => {
                tracing::warn!(error = %e, "client secret rotation failed; the current secret stays in use and the expiry alarm stays; tried again in an hour");
                self.rotation_failed_at = Some(tokio::time::Instant::now());
            }
        }
    }

    async fn purge(&self) {
        let retention = match self.store.snapshot().await {
            Ok(snap) => retention_of(&snap),
            Err(e) => {
                tracing::warn!(error = %e, "retention: the settings could not be read; the purge waits for its next turn");
                return;
            }
        };
        match self.store.purge(&retention, false).await {
            Ok(r) => tracing::info!(
                raw_messages = r.raw_messages,
                raw_bytes = r.raw_bytes,
                import_documents = r.import_documents,
                sent_messages = r.sent_messages,
                message_records = r.message_records,
                outbox_records = r.outbox_records,
                files_removed = r.files_removed,
                "retention: purged what the keep_* settings let go"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "retention: the purge failed; it runs again at its next turn (nothing unprocessed is ever removed)")
            }
        }
    }

    async fn alarms(&mut self) -> Result<(), StoreError> {
        if self
            .notify_failed_at
            .is_some_and(|at| at.elapsed() < NOTIFY_RETRY)
        {
            return Ok(());
        }
        let snap = self.store.snapshot().await?;
        let eff = snap.resolve(&Scope::System);
        let email = eff.get("alarm_email").map(str::to_owned);
        let hook = eff.get("alarm_webhook").map(str::to_owned);
        if email.is_none() && hook.is_none() {
            return Ok(());
        }
        let lang = eff
            .get("alarm_language")
            .and_then(Lang::parse)
            .unwrap_or(Lang::Sv);
        let (_, current) =
            kurir_web::alarms::current(&*self.store, time::OffsetDateTime::now_utc(), lang).await?;
        let notified = self.store.notified_alarms().await?;
        let mut raised = Vec::new();
        for a in &current {
            let key = alarm_key(a);
            match notified.iter().find(|n| n.key == key) {
                None => raised.push((key, a, false)),
                Some(n) if age(&n.last_sent) >= self.config.repeat_after => {
                    raised.push((key, a, true))
                }
                Some(_) => {}
            }
        }
        let resolved: Vec<&NotifiedAlarm> = notified
            .iter()
            .filter(|n| !current.iter().any(|a| alarm_key(a) == n.key))
            .collect();
        if raised.is_empty() && resolved.is_empty() {
            return Ok(());
        }
        let secret = self.webhook_secret().await;
        let mut delivered = true;
        if let Some(url) = &hook {
            for (key, a, repeat) in &raised {
                let body = json!({
                    "event": if *repeat { "alarm_repeated" } else { "alarm" },
                    "key": key,
                    "kind": a.kind,
                    "severity": a.severity,
                    "subject": a.subject,
                    "message": a.message,
                    "fix": a.fix,
                    "language": lang.code(),
                });
                delivered &= self.post(url, &body, secret.as_deref()).await;
            }
            for n in &resolved {
                let body = json!({
                    "event": "resolved",
                    "key": n.key,
                    "severity": n.severity,
                    "message": n.message,
                    "first_seen": n.first_seen,
                    "language": lang.code(),
                });
                delivered &= self.post(url, &body, secret.as_deref()).await;
            }
        }
        if let Some(to) = &email {
            let (subject, text) = notice_text(lang, &raised, &resolved);
            let queued = self
                .submitter
                .queue(Submission::from_system(
                    "alarm".into(),
                    to,
                    subject,
                    text,
                    Vec::new(),
                ))
                .await;
            match queued {
                Ok(q) => {
                    tracing::info!(outbox_id = q.ids[0], to = %to, raised = raised.len(), resolved = resolved.len(), "alarm notice queued")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "an alarm notice could not be queued; it is tried again in 15 minutes");
                    delivered = false;
                }
            }
        }
        if !delivered {
            self.notify_failed_at = Some(tokio::time::Instant::now());
            return Ok(());
        }
        self.notify_failed_at = None;
        let now = now_text();
        for (key, a, _) in &raised {
            let first_seen = notified
                .iter()
                .find(|n| &n.key == key)
                .map(|n| n.first_seen.clone())
                .unwrap_or_else(|| now.clone());
            self.store
                .save_notified_alarm(&NotifiedAlarm {
                    key: key.clone(),
                    severity: severity_text(a.severity).into(),
                    message: a.message.clone(),
                    first_seen,
                    last_sent: now.clone(),
                })
                .await?;
        }
        for n in resolved {
            self.store.forget_notified_alarm(&n.key).await?;
        }
        Ok(())
    }

    async fn webhook_secret(&self) -> Option<String> {
        match self.store.reveal(&Scope::System, "webhook_secret").await {
            Ok(s) => s.map(|s| s.expose_secret().to_owned()),
            Err(e) => {
                tracing::warn!(error = %e, "the webhook secret could not be read; webhook calls go unsigned this time");
                None
            }
        }
    }

    /// POSTs `body`; `true` when the receiver answered 2xx.
    async fn post(&self, url: &str, body: &serde_json::Value, secret: Option<&str>) -> bool {
        let bytes = serde_json::to_vec(body).expect("JSON of a value");
        let mut req = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("user-agent", concat!("Kurir/", env!("CARGO_PKG_VERSION")));
        if let Some(secret) = secret {
            req = req.header("x-kurir-signature", signature(secret, &bytes));
        }
        match req.body(bytes).send().await {
            Ok(r) if r.status().is_success() => true,
            Ok(r) => {
                tracing::warn!(url = %url, status = %r.status(), "a webhook receiver refused the call; it is sent again later");
                false
            }
            Err(e) => {
                tracing::warn!(url = %url, error = %e, "a webhook receiver could not be reached; the call is sent again later");
                false
            }
        }
    }

    /// Tells the ERP's webhook about messages and import documents newer than what it was last
    /// told. The first time, it starts from what is there now (the ERP reads history through
    /// the feeds, not the webhook).
    async fn erp_webhook(&self) -> Result<(), StoreError> {
        let snap = self.store.snapshot().await?;
        let Some(url) = snap
            .resolve(&Scope::System)
            .get("erp_webhook")
            .map(str::to_owned)
        else {
            return Ok(());
        };
        let filter = MessageFilter {
            limit: 100,
            ..Default::default()
        };
        let last_message = self.store.webhook_cursor("messages").await?;
        let last_import = self.store.webhook_cursor("imports").await?;
        let messages = self
            .store
            .messages_after(&filter, last_message.unwrap_or(0))
            .await?;
        let imports = self
            .store
            .imports_after(None, last_import.unwrap_or(0), 100, false)
            .await?;
        let newest_message = messages.last().map(|m| m.id);
        let newest_import = imports.last().map(|e| e.id);
        if last_message.is_none() || last_import.is_none() {
            // First run: start from here, quietly.
            let head_m = self.head("messages", newest_message, last_message).await?;
            let head_i = self.head("imports", newest_import, last_import).await?;
            tracing::info!(
                message = head_m,
                import = head_i,
                "the ERP webhook starts after the newest message and import document"
            );
            return Ok(());
        }
        if messages.is_empty() && imports.is_empty() {
            return Ok(());
        }
        let body = json!({
            "event": "new_items",
            "messages": messages.iter().map(|m| json!({"id": m.id, "account": m.account, "status": m.status})).collect::<Vec<_>>(),
            "imports": imports.iter().map(|e| json!({"id": e.id, "account": e.account, "file_name": e.file_name, "kind": e.kind})).collect::<Vec<_>>(),
            "feeds": {
                "messages": format!("/api/v1/messages?after={}", last_message.unwrap_or(0)),
                "imports": format!("/api/v1/imports?after={}", last_import.unwrap_or(0)),
            },
        });
        let secret = self.webhook_secret().await;
        if self.post(&url, &body, secret.as_deref()).await {
            if let Some(id) = newest_message {
                self.store.set_webhook_cursor("messages", id).await?;
            }
            if let Some(id) = newest_import {
                self.store.set_webhook_cursor("imports", id).await?;
            }
        }
        Ok(())
    }

    /// Sets a feed's first cursor to its newest id (paging to the end).
    async fn head(
        &self,
        feed: &str,
        mut newest: Option<i64>,
        known: Option<i64>,
    ) -> Result<i64, StoreError> {
        if let Some(k) = known {
            return Ok(k);
        }
        loop {
            let after = newest.unwrap_or(0);
            let next = if feed == "messages" {
                let filter = MessageFilter {
                    limit: 1000,
                    ..Default::default()
                };
                self.store
                    .messages_after(&filter, after)
                    .await?
                    .last()
                    .map(|m| m.id)
            } else {
                self.store
                    .imports_after(None, after, 1000, false)
                    .await?
                    .last()
                    .map(|e| e.id)
            };
            match next {
                Some(id) => newest = Some(id),
                None => break,
            }
        }
        let id = newest.unwrap_or(0);
        self.store.set_webhook_cursor(feed, id).await?;
        Ok(id)
    }
}

fn severity_text(s: AlarmSeverity) -> &'static str {
    match s {
        AlarmSeverity::Warning => "warning",
        AlarmSeverity::Error => "error",
    }
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// The e-mail notice of one round: its subject and text, in the alarm language.
fn notice_text(
    lang: Lang,
    raised: &[(String, &Alarm, bool)],
    resolved: &[&NotifiedAlarm],
) -> (String, String) {
    let errors = raised
        .iter()
        .filter(|(_, a, _)| a.severity == AlarmSeverity::Error)
        .count();
    let plural = |n: usize, one: &'static str, many: &'static str| if n == 1 { one } else { many };
    let subject = match (raised.len(), resolved.len(), lang) {
        (0, n, Lang::Sv) => format!("Kurir: {n} larm åtgärdade"),
        (0, n, Lang::En) => format!("Kurir: {n} {} resolved", plural(n, "alarm", "alarms")),
        (n, _, Lang::Sv) if errors > 0 => format!("Kurir: {n} larm ({errors} fel)"),
        (n, _, Lang::En) if errors > 0 => format!(
            "Kurir: {n} {} ({errors} {})",
            plural(n, "alarm", "alarms"),
            plural(errors, "error", "errors")
        ),
        (n, _, Lang::Sv) => format!("Kurir: {n} larm"),
        (n, _, Lang::En) => format!("Kurir: {n} {}", plural(n, "alarm", "alarms")),
    };
    let mut text = String::new();
    for (_, a, repeat) in raised {
        let tag = match (a.severity, repeat) {
            (AlarmSeverity::Error, false) => lang.pick("FEL", "ERROR"),
            (AlarmSeverity::Warning, false) => lang.pick("VARNING", "WARNING"),
            (_, true) => lang.pick("PÅMINNELSE", "REMINDER"),
        };
        text.push_str(&format!(
            "{tag}: {}\n  {}: {}\n\n",
            a.message,
            lang.pick("Åtgärd", "Fix"),
            a.fix
        ));
    }
    for n in resolved {
        text.push_str(&format!(
            "{}: {}\n\n",
            lang.pick("ÅTGÄRDAT", "RESOLVED"),
            n.message
        ));
    }
    text.push_str(lang.pick(
        "Kurir skickar ett larm en gång, påminner högst en gång per dygn medan det varar och meddelar när det är åtgärdat. Larmadressen ändras i Systeminställningar (alarm_email).\n",
        "Kurir sends an alarm once, reminds at most daily while it lasts and tells when it is resolved. The alarm address is changed in the system settings (alarm_email).\n",
    ));
    (subject, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature a receiver checks: RFC 4231 test case 2 ("Jefe").
    #[test]
    fn webhook_calls_are_signed_with_hmac_sha256_of_the_body() {
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn retention_defaults_to_90_days_of_content_and_two_years_of_records() {
        let snap = SettingsSnapshot::default();
        let r = retention_of(&snap);
        assert_eq!(r.raw_mail, Duration::from_secs(90 * 86_400));
        assert_eq!(r.records, Duration::from_secs(730 * 86_400));
    }
}
