//! Exchange's mailbox concurrency limit and injectable faults for Graph requests.
//!
//! Exchange allows 4 concurrent requests per app and mailbox; the 5th gets 429
//! `ApplicationThrottled`. The emulator counts requests in flight per (app, mailbox) the same
//! way, so a client that fans out too far sees the real error. Faults (latency, the next N
//! requests answering 429, 503 or 401, dropped connections) are shared by the Rust handle and
//! `/_emulator/graph/faults`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::state::lock;

/// Exchange Online's concurrent request limit per app and mailbox.
pub const MAILBOX_CONCURRENCY: u32 = 4;

/// Injectable Graph faults.
#[derive(Debug, Default)]
pub struct GraphFaults {
    latency_ms: AtomicU64,
    throttle_next: AtomicU32,
    unavailable_next: AtomicU32,
    drop_next: AtomicU32,
    unauthorized_next: AtomicU32,
    upload_sessions_unavailable_next: AtomicU32,
    retry_after_secs: AtomicU64,
}

/// The fault knobs as JSON (`/_emulator/graph/faults`); omitted fields keep their value.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphFaultSettings {
    pub latency_ms: Option<u64>,
    /// The next N Graph requests answer 429 ApplicationThrottled.
    pub throttle_next: Option<u32>,
    /// The next N Graph requests answer 503.
    pub unavailable_next: Option<u32>,
    /// The next N Graph requests get their connection closed without an answer.
    pub drop_next: Option<u32>,
    /// The next N Graph requests answer 401 InvalidAuthenticationToken, as Graph does for a
    /// token that was revoked or expired in flight.
    #[serde(default)]
    pub unauthorized_next: Option<u32>,
    /// The next N createUploadSession requests answer 503 (a large send fails after its
    /// draft was made).
    #[serde(default)]
    pub upload_sessions_unavailable_next: Option<u32>,
    /// `Retry-After` seconds on injected and concurrency 429s and 503s (default 1).
    pub retry_after_secs: Option<u64>,
}

/// What the next request should suffer.
pub enum Injected {
    Throttle(u64),
    Unavailable(u64),
    Drop,
    Unauthorized,
}

fn take(n: &AtomicU32) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

impl GraphFaults {
    pub fn apply(&self, s: &GraphFaultSettings) {
        if let Some(v) = s.latency_ms {
            self.latency_ms.store(v, Ordering::SeqCst);
        }
        if let Some(v) = s.throttle_next {
            self.throttle_next.store(v, Ordering::SeqCst);
        }
        if let Some(v) = s.unavailable_next {
            self.unavailable_next.store(v, Ordering::SeqCst);
        }
        if let Some(v) = s.drop_next {
            self.drop_next.store(v, Ordering::SeqCst);
        }
        if let Some(v) = s.unauthorized_next {
            self.unauthorized_next.store(v, Ordering::SeqCst);
        }
        if let Some(v) = s.upload_sessions_unavailable_next {
            self.upload_sessions_unavailable_next
                .store(v, Ordering::SeqCst);
        }
        if let Some(v) = s.retry_after_secs {
            self.retry_after_secs.store(v, Ordering::SeqCst);
        }
    }
    pub fn settings(&self) -> GraphFaultSettings {
        GraphFaultSettings {
            latency_ms: Some(self.latency_ms.load(Ordering::SeqCst)),
            throttle_next: Some(self.throttle_next.load(Ordering::SeqCst)),
            unavailable_next: Some(self.unavailable_next.load(Ordering::SeqCst)),
            drop_next: Some(self.drop_next.load(Ordering::SeqCst)),
            unauthorized_next: Some(self.unauthorized_next.load(Ordering::SeqCst)),
            upload_sessions_unavailable_next: Some(
                self.upload_sessions_unavailable_next.load(Ordering::SeqCst),
            ),
            retry_after_secs: Some(self.retry_after()),
        }
    }
    /// Delays every Graph request (while it holds its concurrency slot).
    pub fn set_latency(&self, d: Duration) {
        self.latency_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }
    /// The next `n` Graph requests answer 429 with `Retry-After: retry_after_secs`.
    pub fn throttle_next(&self, n: u32) {
        self.throttle_next.store(n, Ordering::SeqCst);
    }
    /// The next `n` Graph requests answer 503 with `Retry-After`.
    pub fn unavailable_next(&self, n: u32) {
        self.unavailable_next.store(n, Ordering::SeqCst);
    }
    /// The next `n` Graph requests have their connection closed without an answer.
    pub fn drop_next(&self, n: u32) {
        self.drop_next.store(n, Ordering::SeqCst);
    }
    /// The next `n` Graph requests answer 401 InvalidAuthenticationToken.
    pub fn unauthorized_next(&self, n: u32) {
        self.unauthorized_next.store(n, Ordering::SeqCst);
    }
    /// The next `n` createUploadSession requests answer 503 with `Retry-After`.
    pub fn upload_sessions_unavailable_next(&self, n: u32) {
        self.upload_sessions_unavailable_next
            .store(n, Ordering::SeqCst);
    }
    /// Consumes one pending createUploadSession failure.
    pub fn take_upload_session_failure(&self) -> Option<u64> {
        take(&self.upload_sessions_unavailable_next).then(|| self.retry_after())
    }
    pub fn set_retry_after(&self, secs: u64) {
        self.retry_after_secs.store(secs, Ordering::SeqCst);
    }
    pub fn retry_after(&self) -> u64 {
        match self.retry_after_secs.load(Ordering::SeqCst) {
            0 => 1,
            s => s,
        }
    }
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::SeqCst))
    }
    pub fn reset(&self) {
        self.apply(&GraphFaultSettings {
            latency_ms: Some(0),
            throttle_next: Some(0),
            unavailable_next: Some(0),
            drop_next: Some(0),
            unauthorized_next: Some(0),
            upload_sessions_unavailable_next: Some(0),
            retry_after_secs: Some(0),
        });
    }
    /// Consumes one pending fault, drops first (they are the rarest and most specific).
    pub fn take(&self) -> Option<Injected> {
        if take(&self.drop_next) {
            Some(Injected::Drop)
        } else if take(&self.unauthorized_next) {
            Some(Injected::Unauthorized)
        } else if take(&self.throttle_next) {
            Some(Injected::Throttle(self.retry_after()))
        } else if take(&self.unavailable_next) {
            Some(Injected::Unavailable(self.retry_after()))
        } else {
            None
        }
    }
}

/// Requests in flight per (app, mailbox).
#[derive(Debug, Default, Clone)]
pub struct Throttle {
    inflight: Arc<Mutex<HashMap<(Uuid, String), u32>>>,
    /// The most requests one (app, mailbox) had in flight at once, per mailbox (admitted ones).
    peak: Arc<Mutex<HashMap<String, u32>>>,
}

/// What Graph mail requests the emulator served, for tests that check a client's behaviour
/// (`RunningEmulator::graph_counters`, `GET /_emulator/graph/counters`).
#[derive(Debug, Default)]
pub struct GraphCounters {
    pub send_mail: AtomicU64,
    pub drafts_created: AtomicU64,
    pub drafts_sent: AtomicU64,
    pub upload_sessions: AtomicU64,
    pub upload_chunks: AtomicU64,
    /// 429 ApplicationThrottled for a fifth concurrent request on a mailbox.
    pub concurrency_throttled: AtomicU64,
    /// Injected faults answered (429, 503, dropped connections).
    pub injected: AtomicU64,
}

/// A snapshot of [`GraphCounters`] with the peak concurrency per mailbox.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GraphCounterSnapshot {
    pub send_mail: u64,
    pub drafts_created: u64,
    pub drafts_sent: u64,
    pub upload_sessions: u64,
    pub upload_chunks: u64,
    pub concurrency_throttled: u64,
    pub injected: u64,
    /// Lower-case mailbox → the most requests (of one app) in flight on it at once.
    pub peak_concurrency: std::collections::BTreeMap<String, u32>,
}

impl GraphCounters {
    pub fn snapshot(&self, throttle: &Throttle) -> GraphCounterSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::SeqCst);
        GraphCounterSnapshot {
            send_mail: l(&self.send_mail),
            drafts_created: l(&self.drafts_created),
            drafts_sent: l(&self.drafts_sent),
            upload_sessions: l(&self.upload_sessions),
            upload_chunks: l(&self.upload_chunks),
            concurrency_throttled: l(&self.concurrency_throttled),
            injected: l(&self.injected),
            peak_concurrency: lock(&throttle.peak)
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }
    pub fn reset(&self, throttle: &Throttle) {
        for a in [
            &self.send_mail,
            &self.drafts_created,
            &self.drafts_sent,
            &self.upload_sessions,
            &self.upload_chunks,
            &self.concurrency_throttled,
            &self.injected,
        ] {
            a.store(0, Ordering::SeqCst);
        }
        lock(&throttle.peak).clear();
    }
}

/// A held concurrency slot; released on drop.
pub struct Slot {
    inflight: Arc<Mutex<HashMap<(Uuid, String), u32>>>,
    key: (Uuid, String),
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = lock(&self.inflight);
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

impl Throttle {
    /// Takes a slot, or `None` if the app already has 4 requests in flight on the mailbox.
    pub fn acquire(&self, app: Uuid, mailbox: &str) -> Option<Slot> {
        let key = (app, mailbox.to_ascii_lowercase());
        let mut map = lock(&self.inflight);
        let n = map.entry(key.clone()).or_default();
        if *n >= MAILBOX_CONCURRENCY {
            return None;
        }
        *n += 1;
        let now = *n;
        let mut peak = lock(&self.peak);
        let p = peak.entry(key.1.clone()).or_default();
        *p = (*p).max(now);
        drop(peak);
        Some(Slot {
            inflight: self.inflight.clone(),
            key,
        })
    }
}
