//! Staying inside Exchange Online's limits, per mailbox.
//!
//! Exchange allows about 30 messages a minute per mailbox and Graph 4 concurrent requests per
//! app and mailbox; going over earns 429s and, for SMTP, temporary blocks of the mailbox. Kurir
//! keeps under both on its own side: a sliding one-minute window of send times per mailbox
//! ([`Throttle::reserve`]) and a semaphore of 4 per mailbox for Graph requests
//! ([`Throttle::graph_permit`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const WINDOW: Duration = Duration::from_secs(60);

pub struct Throttle {
    per_minute: Option<u32>,
    graph_concurrency: usize,
    sends: Mutex<HashMap<String, VecDeque<Instant>>>,
    graph: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Throttle {
    /// `per_minute = None` (or 0) means no rate cap, e.g. for a local test server.
    pub fn new(per_minute: Option<u32>, graph_concurrency: usize) -> Throttle {
        Throttle {
            per_minute: per_minute.filter(|n| *n > 0),
            graph_concurrency: graph_concurrency.max(1),
            sends: Mutex::new(HashMap::new()),
            graph: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one send slot for `mailbox` now, or says how long until one frees up.
    pub fn reserve(&self, mailbox: &str) -> Result<(), Duration> {
        let Some(cap) = self.per_minute else {
            return Ok(());
        };
        let now = Instant::now();
        let mut map = self.sends.lock().expect("throttle lock is never poisoned");
        let q = map.entry(mailbox.to_owned()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        if (q.len() as u32) < cap {
            q.push_back(now);
            Ok(())
        } else {
            let oldest = *q.front().expect("a full window has entries");
            Err(WINDOW - now.duration_since(oldest))
        }
    }

    /// Gives back a slot taken by [`Throttle::reserve`] for a message that was not sent after
    /// all (it failed before reaching the server).
    pub fn release(&self, mailbox: &str) {
        if self.per_minute.is_none() {
            return;
        }
        let mut map = self.sends.lock().expect("throttle lock is never poisoned");
        if let Some(q) = map.get_mut(mailbox) {
            q.pop_back();
        }
    }

    /// One of the (default 4) concurrent Graph requests allowed for `mailbox`.
    pub async fn graph_permit(&self, mailbox: &str) -> OwnedSemaphorePermit {
        let sem = {
            let mut map = self.graph.lock().expect("throttle lock is never poisoned");
            map.entry(mailbox.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.graph_concurrency)))
                .clone()
        };
        sem.acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_caps_each_mailbox_on_its_own() {
        let t = Throttle::new(Some(3), 4);
        for _ in 0..3 {
            assert!(t.reserve("a@x").is_ok());
        }
        let wait = t.reserve("a@x").unwrap_err();
        assert!(wait > Duration::from_secs(59) && wait <= WINDOW, "{wait:?}");
        assert!(
            t.reserve("b@x").is_ok(),
            "another mailbox has its own window"
        );
        t.release("a@x");
        assert!(
            t.reserve("a@x").is_ok(),
            "a released slot can be taken again"
        );
        assert!(Throttle::new(None, 4).reserve("a@x").is_ok());
    }

    #[tokio::test]
    async fn at_most_n_graph_requests_per_mailbox() {
        let t = Throttle::new(None, 2);
        let _a = t.graph_permit("m").await;
        let _b = t.graph_permit("m").await;
        let third = tokio::time::timeout(Duration::from_millis(50), t.graph_permit("m")).await;
        assert!(third.is_err(), "a third concurrent request must wait");
        let other = tokio::time::timeout(Duration::from_millis(50), t.graph_permit("n")).await;
        assert!(other.is_ok());
    }
}
