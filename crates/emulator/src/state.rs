//! The running emulator's shared state: directory, keys, grants in flight, counters, faults.
//!
//! Handlers of every endpoint (Entra today, Graph later) receive one `Arc<EmulatorState>`.
//! Mutable parts are small maps behind `std::sync::Mutex`: no lock is held across an await.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::entra::scope::ScopeRequest;
use crate::fixture::Fixture;
use crate::keys::{RegisteredCertificate, SigningKeys};

/// Default access token lifetime, as Entra reports it (`expires_in` 3599).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3599);
/// Default refresh token lifetime (Entra: 90 days of inactivity).
pub const DEFAULT_REFRESH_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

/// Fault injection knobs, shared by the Rust handle and the `/_emulator/faults` endpoint.
#[derive(Debug, Default)]
pub struct Faults {
    latency_ms: AtomicU64,
    fail_next: AtomicU32,
    token_lifetime_secs: AtomicU64,
    refresh_lifetime_secs: AtomicU64,
    secret_lifetime_secs: AtomicU64,
}

impl Faults {
    /// Delays every token and device code answer by `d`.
    pub fn set_latency(&self, d: Duration) {
        self.latency_ms
            .store(d.as_millis().min(u64::MAX as u128) as u64, Ordering::SeqCst);
    }
    /// Makes the next `n` token requests answer 503 `temporarily_unavailable`.
    pub fn fail_next(&self, n: u32) {
        self.fail_next.store(n, Ordering::SeqCst);
    }
    /// Sets the lifetime of access (and id) tokens issued from now on.
    pub fn set_token_lifetime(&self, d: Duration) {
        self.token_lifetime_secs
            .store(d.as_secs().max(1), Ordering::SeqCst);
    }
    /// Sets the lifetime of refresh tokens issued from now on (to provoke AADSTS700082).
    pub fn set_refresh_token_lifetime(&self, d: Duration) {
        self.refresh_lifetime_secs
            .store(d.as_secs().max(1), Ordering::SeqCst);
    }
    /// Caps the lifetime of client secrets added from now on (`addPassword`), as a tenant's
    /// app management policy limits it (Microsoft Graph `appManagementPolicy`,
    /// `passwordCredentials` restriction `passwordLifetime`); tests shorten it to minutes to see
    /// rotation happen before expiry.
    pub fn set_secret_lifetime(&self, d: Duration) {
        self.secret_lifetime_secs
            .store(d.as_secs().max(1), Ordering::SeqCst);
    }
    /// The cap on new client secrets' lifetime, if any.
    pub fn secret_lifetime(&self) -> Option<Duration> {
        match self.secret_lifetime_secs.load(Ordering::SeqCst) {
            0 => None,
            s => Some(Duration::from_secs(s)),
        }
    }
    /// Back to no latency, no failures, default lifetimes.
    pub fn reset(&self) {
        self.latency_ms.store(0, Ordering::SeqCst);
        self.fail_next.store(0, Ordering::SeqCst);
        self.token_lifetime_secs.store(0, Ordering::SeqCst);
        self.refresh_lifetime_secs.store(0, Ordering::SeqCst);
        self.secret_lifetime_secs.store(0, Ordering::SeqCst);
    }
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::SeqCst))
    }
    pub fn pending_failures(&self) -> u32 {
        self.fail_next.load(Ordering::SeqCst)
    }
    pub fn token_lifetime(&self) -> Duration {
        match self.token_lifetime_secs.load(Ordering::SeqCst) {
            0 => DEFAULT_TOKEN_LIFETIME,
            s => Duration::from_secs(s),
        }
    }
    pub fn refresh_token_lifetime(&self) -> Duration {
        match self.refresh_lifetime_secs.load(Ordering::SeqCst) {
            0 => DEFAULT_REFRESH_LIFETIME,
            s => Duration::from_secs(s),
        }
    }
    /// Consumes one injected failure if any is pending.
    pub(crate) fn take_failure(&self) -> bool {
        self.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Request counters for tests that check caching (e.g. "one token request for 50 sends").
#[derive(Debug, Default)]
pub struct Counters {
    pub token_requests: AtomicU64,
    pub devicecode_requests: AtomicU64,
    /// Token requests by (client id, scope as sent).
    pub by_client_scope: Mutex<BTreeMap<(String, String), u64>>,
}

impl Counters {
    pub fn reset(&self) {
        self.token_requests.store(0, Ordering::SeqCst);
        self.devicecode_requests.store(0, Ordering::SeqCst);
        lock(&self.by_client_scope).clear();
    }
}

/// Where a device code stands.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceCodeStatus {
    Pending,
    Approved { user_id: Uuid },
    Declined,
}

/// A device authorization in flight.
#[derive(Debug, Clone)]
pub struct DeviceCode {
    pub device_code: String,
    pub user_code: String,
    pub client_id: Uuid,
    /// The tenant named in the URL, if it named one (not common/organizations).
    pub tenant_id: Option<Uuid>,
    pub scope: ScopeRequest,
    pub expires_at: OffsetDateTime,
    pub status: DeviceCodeStatus,
}

/// What a refresh token stands for.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub client_id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// Everything the handlers share.
pub struct EmulatorState {
    /// The directory: the fixture, and what Graph's directory API changed in it since (apps
    /// registered, secrets added, permissions granted). Read as a snapshot ([`Self::fixture`]);
    /// a change replaces the whole snapshot, so a request never sees half of one.
    pub(crate) directory: std::sync::RwLock<std::sync::Arc<Fixture>>,
    pub keys: SigningKeys,
    /// Registered certificates per app (from the fixture and generated ones).
    pub app_certificates: HashMap<Uuid, Vec<RegisteredCertificate>>,
    pub faults: Faults,
    pub counters: Counters,
    pub device_codes: Mutex<HashMap<String, DeviceCode>>,
    pub refresh_tokens: Mutex<HashMap<String, RefreshGrant>>,
    /// Refresh tokens that were rotated away or revoked: using one gives AADSTS70008.
    pub spent_refresh_tokens: Mutex<HashSet<String>>,
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    /// Graph mail: mailboxes, throttling, faults, upload and delta sessions.
    pub graph: crate::graph::GraphState,
}

/// Locks a mutex, recovering from poisoning: the maps stay consistent even if a handler
/// panicked, since each update is a single insert or remove.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EmulatorState {
    /// The directory as it is now.
    pub fn fixture(&self) -> std::sync::Arc<Fixture> {
        self.directory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes the directory: `change` works on a copy that replaces it when it returns `Ok`.
    pub(crate) fn change_directory<T, E>(
        &self,
        change: impl FnOnce(&mut Fixture) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut guard = self.directory.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**guard).clone();
        let out = change(&mut next)?;
        *guard = std::sync::Arc::new(next);
        Ok(out)
    }

    pub fn reset(&self) {
        self.faults.reset();
        self.graph.faults.reset();
        self.counters.reset();
        lock(&self.device_codes).clear();
        lock(&self.refresh_tokens).clear();
        lock(&self.spent_refresh_tokens).clear();
    }

    /// Revokes every refresh token of a user (all users if `None`); returns how many.
    pub fn revoke_refresh_tokens(&self, user_id: Option<Uuid>) -> usize {
        let mut map = lock(&self.refresh_tokens);
        let doomed: Vec<String> = map
            .iter()
            .filter(|(_, g)| user_id.is_none_or(|u| g.user_id == u))
            .map(|(k, _)| k.clone())
            .collect();
        let mut spent = lock(&self.spent_refresh_tokens);
        for k in &doomed {
            map.remove(k);
            spent.insert(k.clone());
        }
        doomed.len()
    }
}
