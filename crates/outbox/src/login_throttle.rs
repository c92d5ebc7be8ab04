//! Password-guessing limits for every place that checks a password with argon2id: the web
//! UI's `POST /login`, API keys, and the SMTP listener's `AUTH`.
//!
//! Each verification costs tens of milliseconds of CPU and 19 MiB of memory (argon2id's
//! defaults), so without a bound a client could exhaust the machine and guess passwords at the
//! speed of the CPU. [`LoginThrottle`] gives
//! - per client address and per login name, a few free failures, then a lockout that doubles
//!   with each further failure (1 s, 2 s, 4 s … at most 15 min) and is forgotten after a quiet
//!   period or a successful sign-in;
//! - a bound on verifications running at once (a semaphore), with a short wait for a slot;
//! - a bound on the number of addresses and names it remembers (the oldest quiet ones go first).
//!
//! It lives beside the SMTP listener, its first user, and the web crate (which depends on this
//! one) uses the same: one process has one CPU budget, so `kurir serve` shares one
//! [`LoginThrottle::shared`] between the listener's AUTH and the web sign-in. (It is not
//! storage: the counts live in memory.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// The limits; [`ThrottleConfig::default`] is what Kurir runs with.
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Failures per address or name before lockouts start.
    pub free_failures: u32,
    /// The first lockout; each further failure doubles it.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Failures older than this (with no lockout running) are forgotten.
    pub forget_after: Duration,
    /// Addresses and names remembered at most.
    pub max_keys: usize,
    /// Password verifications running at once.
    pub max_concurrent: usize,
    /// How long an attempt waits for a verification slot before it is answered "busy".
    pub queue_wait: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            free_failures: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(15 * 60),
            max_keys: 10_000,
            max_concurrent: 4,
            queue_wait: Duration::from_secs(5),
        }
    }
}

/// Why an attempt was not let through to the password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures from this address or for this name: try again after the wait.
    LockedOut { retry_after: Duration },
    /// Too many verifications already running: try again shortly.
    Busy,
}

impl Refusal {
    /// Whole seconds for a `Retry-After` header (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Refusal::LockedOut { retry_after } => retry_after.as_secs_f64().ceil().max(1.0) as u64,
            Refusal::Busy => 1,
        }
    }
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// See the module documentation.
pub struct LoginThrottle {
    cfg: ThrottleConfig,
    keys: Mutex<HashMap<String, Entry>>,
    slots: Semaphore,
}

/// A password check let through: hold it while verifying, then report the outcome.
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    keys: [String; 2],
    _slot: SemaphorePermit<'a>,
}

impl Attempt<'_> {
    /// The password was right: forget this address's and name's failures.
    pub fn succeeded(self) {
        let mut map = self.throttle.lock();
        for k in &self.keys {
            map.remove(k);
        }
    }

    /// The password was wrong: count it, and lock out when the free failures are used up.
    pub fn failed(self) {
        let cfg = &self.throttle.cfg;
        let now = Instant::now();
        let mut map = self.throttle.lock();
        for k in &self.keys {
            if !map.contains_key(k) {
                self.throttle.make_room(&mut map, now);
            }
            let e = map.entry(k.clone()).or_insert(Entry {
                failures: 0,
                last: now,
                locked_until: None,
            });
            e.failures = e.failures.saturating_add(1);
            e.last = now;
            if e.failures >= cfg.free_failures {
                let doublings = (e.failures - cfg.free_failures).min(20);
                let delay = cfg
                    .base_delay
                    .saturating_mul(1u32 << doublings)
                    .min(cfg.max_delay);
                e.locked_until = Some(now + delay);
                // One line per lockout (attempts refused during it are not logged: that would
                // be the flood). `{:?}` escapes the name: it is client input.
                tracing::warn!(
                    key = ?k,
                    failures = e.failures,
                    locked_secs = delay.as_secs_f64(),
                    "too many failed sign-ins: locked out"
                );
            }
        }
    }
}

impl LoginThrottle {
    pub fn new(cfg: ThrottleConfig) -> LoginThrottle {
        LoginThrottle {
            slots: Semaphore::new(cfg.max_concurrent.max(1)),
            keys: Mutex::new(HashMap::new()),
            cfg,
        }
    }

    /// The process's throttle with the default limits.
    pub fn shared() -> Arc<LoginThrottle> {
        static SHARED: OnceLock<Arc<LoginThrottle>> = OnceLock::new();
        SHARED
            .get_or_init(|| Arc::new(LoginThrottle::new(ThrottleConfig::default())))
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.keys
            .lock()
            .expect("the throttle lock is never poisoned: nothing panics while holding it")
    }

    /// Lets a password check for `name` (in `realm`, e.g. `web` or `smtp`) from `ip` through,
    /// or says why not. Waits up to `queue_wait` for a verification slot.
    pub async fn begin(&self, realm: &str, ip: IpAddr, name: &str) -> Result<Attempt<'_>, Refusal> {
        let keys = [ip_key(ip), name_key(realm, name)];
        let now = Instant::now();
        {
            let map = self.lock();
            let wait = keys
                .iter()
                .filter_map(|k| map.get(k)?.locked_until)
                .filter(|until| *until > now)
                .map(|until| until - now)
                .max();
            if let Some(retry_after) = wait {
                return Err(Refusal::LockedOut { retry_after });
            }
        }
        match tokio::time::timeout(self.cfg.queue_wait, self.slots.acquire()).await {
            Ok(Ok(slot)) => Ok(Attempt {
                throttle: self,
                keys,
                _slot: slot,
            }),
            // Timed out, or (never: it is not closed) the semaphore closed.
            _ => Err(Refusal::Busy),
        }
    }

    /// How many addresses and names are remembered (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    /// Keeps the map under `max_keys` before an insert: first forget quiet entries, then the
    /// one with the oldest failure.
    fn make_room(&self, map: &mut HashMap<String, Entry>, now: Instant) {
        if map.len() < self.cfg.max_keys {
            return;
        }
        let forget = self.cfg.forget_after;
        map.retain(|_, e| {
            e.locked_until.is_some_and(|u| u > now) || now.duration_since(e.last) < forget
        });
        while map.len() >= self.cfg.max_keys.max(1) {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.last)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
    }
}

/// IPv6 clients usually own a whole /64, so that is one address here.
fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let s = v6.segments();
                format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Names compare without case and are cut to a sane length (they are client input).
fn name_key(realm: &str, name: &str) -> String {
    let name: String = name.trim().chars().take(128).collect();
    format!("{realm}:{}", name.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(max_concurrent: usize) -> ThrottleConfig {
        ThrottleConfig {
            free_failures: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            forget_after: Duration::from_secs(60),
            max_keys: 100,
            max_concurrent,
            queue_wait: Duration::from_millis(200),
        }
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    #[tokio::test]
    async fn failures_lock_out_with_growing_delay_and_success_forgets() {
        let t = LoginThrottle::new(quick(4));
        for _ in 0..3 {
            t.begin("web", IP, "admin").await.unwrap().failed();
        }
        let Err(Refusal::LockedOut { retry_after: first }) = t.begin("web", IP, "admin").await
        else {
            panic!("the 4th attempt must be locked out");
        };
        assert!(first <= Duration::from_millis(200), "{first:?}");
        // Another name from the same address is locked out too (per IP) ...
        assert!(t.begin("web", IP, "other").await.is_err());
        // ... and the same name from another address (per name).
        let other_ip: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(t.begin("web", other_ip, "ADMIN").await.is_err());
        tokio::time::sleep(first).await;
        t.begin("web", IP, "admin").await.unwrap().failed();
        let Err(Refusal::LockedOut {
            retry_after: second,
        }) = t.begin("web", IP, "admin").await
        else {
            panic!("locked out again");
        };
        assert!(second > Duration::from_millis(200), "doubled: {second:?}");
        tokio::time::sleep(second).await;
        t.begin("web", IP, "admin").await.unwrap().succeeded();
        assert_eq!(t.tracked(), 0);
        assert!(t.begin("web", IP, "admin").await.is_ok());
    }

    #[tokio::test]
    async fn password_verifications_are_bounded_by_the_semaphore() {
        let t = LoginThrottle::new(quick(2));
        let a = t.begin("web", IP, "a").await.unwrap();
        let b = t.begin("smtp", IP, "b").await.unwrap();
        // Two checks are running: a third waits for a slot, then is answered "busy".
        let started = Instant::now();
        assert_eq!(t.begin("web", IP, "c").await.err(), Some(Refusal::Busy));
        assert!(started.elapsed() >= Duration::from_millis(200));
        drop(a);
        let c = t.begin("web", IP, "c").await.expect("a slot is free again");
        c.succeeded();
        b.succeeded();
    }

    #[tokio::test]
    async fn tracked_addresses_and_names_are_capped() {
        let t = LoginThrottle::new(quick(4));
        for i in 0..1000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.begin("web", ip, &format!("user{i}"))
                .await
                .unwrap()
                .failed();
            assert!(t.tracked() <= 100, "{} keys", t.tracked());
        }
    }
}
