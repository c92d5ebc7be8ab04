//! Keeping an account's mail moving for years: a pass, then wait (IMAP IDLE wakes up at once
//! when mail arrives; otherwise the poll interval), and on failure back off — quickly retried
//! when the cause is passing (network, server busy, Entra unavailable), slowly when an admin has
//! to act (a rejected token, a missing folder). Every pass leaves a health record.

use std::time::Duration;

use tokio::sync::watch;

use crate::pipeline::{Intake, Progress, Quiet};
use crate::transport::Transport;

/// Backoff after `failures` failures in a row.
pub fn backoff(failures: u32, transient: bool) -> Duration {
    if !transient {
        // An admin has to change something; retrying often only fills logs (and, for Entra,
        // risks locking the account).
        return Duration::from_secs(15 * 60);
    }
    let secs = 5u64.saturating_mul(1u64 << failures.min(8).saturating_sub(1));
    // Jitter keeps many accounts that failed together from retrying together.
    let jitter = rand::random::<u64>() % (secs / 5 + 1);
    Duration::from_secs((secs + jitter).min(10 * 60))
}

/// Runs passes for one account until `stop` becomes true.
pub async fn watch_account(
    intake: &Intake,
    transport: &mut dyn Transport,
    poll_interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    while !*stop.borrow() {
        let mut quiet = Quiet;
        let progress: &mut dyn Progress = &mut quiet;
        let wait = match intake.pass(transport, progress).await {
            Ok(summary) => {
                failures = 0;
                let n = summary.stored + summary.quarantined;
                if n > 0 {
                    tracing::info!(account = %intake.account, stored = summary.stored, quarantined = summary.quarantined, "took in mail");
                }
                let _ = intake.store.record_pass(&intake.account, Ok(n)).await;
                None
            }
            Err(e) => {
                failures += 1;
                // Same name as kurir-web's FAILURES (a no-op without a recorder).
                metrics::counter!("kurir_failures_total", "component" => "intake", "reason" => e.reason())
                    .increment(1);
                let wait = backoff(failures, e.is_transient());
                tracing::warn!(account = %intake.account, error = %e, retry_in = ?wait, "intake failed");
                let _ = intake
                    .store
                    .record_pass(&intake.account, Err(e.to_string()))
                    .await;
                transport.close().await;
                Some(wait)
            }
        };
        match wait {
            Some(wait) => {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            }
            None => {
                tokio::select! {
                    r = transport.wait_for_mail(poll_interval) => {
                        if let Err(e) = r {
                            // The next pass reconnects; only note it.
                            tracing::debug!(account = %intake.account, error = %e, "waiting for mail ended early");
                            transport.close().await;
                        }
                    }
                    _ = stop.changed() => {}
                }
            }
        }
    }
    transport.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1, true) >= Duration::from_secs(5));
        assert!(backoff(1, true) <= Duration::from_secs(6));
        assert!(backoff(3, true) >= Duration::from_secs(20));
        assert_eq!(backoff(30, true), Duration::from_secs(600));
        assert_eq!(backoff(1, false), Duration::from_secs(900));
    }
}
