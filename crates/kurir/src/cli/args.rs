//! Arguments several commands share: how the outbox's workers send (`kurir serve`, `kurir
//! outbox run`, `kurir send --wait`, `kurir listener`, `kurir demo`).

use std::time::Duration;

use clap::{Args, ValueEnum};
use kurir_outbox::{ExchangeTransport, OutboxConfig};

use crate::fail::bad;

#[derive(ValueEnum, Debug, Clone, Copy, Default)]
pub enum ViaArg {
    /// Graph sendMail, unless the user's smtp_host is set explicitly (then SMTP XOAUTH2).
    #[default]
    Auto,
    Graph,
    Smtp,
}

/// How the sending workers behave.
#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// Messages sent at the same time.
    #[arg(long, default_value_t = 8, env = "KURIR_OUTBOX_CONCURRENCY")]
    pub concurrency: usize,
    /// Per-mailbox cap in messages per minute (Exchange Online allows 30); 0 = no cap.
    #[arg(long, default_value_t = 30, env = "KURIR_OUTBOX_RATE_PER_MINUTE")]
    pub rate_per_minute: u32,
    /// Seconds a worker holds a message before another process may take it over.
    #[arg(long, default_value_t = 60, env = "KURIR_OUTBOX_LEASE_SECS")]
    pub lease_secs: u64,
    /// Seconds before the first retry after a temporary failure (doubled each time, max 30 min).
    #[arg(long, default_value_t = 30, env = "KURIR_OUTBOX_BACKOFF_SECS")]
    pub backoff_secs: u64,
    /// Exchange Online transport for users with method exchange-online.
    #[arg(long, value_enum, default_value_t = ViaArg::Auto, env = "KURIR_OUTBOX_VIA")]
    pub via: ViaArg,
    /// Graph sendMail: do not keep a copy in Sent Items.
    #[arg(long)]
    pub no_save_to_sent_items: bool,
    /// Seconds between idle looks for mail queued by another process (`kurir send`, another
    /// instance); what is queued in this process (REST API, SMTP listener) wakes the workers
    /// at once.
    #[arg(long, default_value_t = 1, env = "KURIR_OUTBOX_IDLE_POLL_SECS")]
    pub idle_poll_secs: u64,
}

impl WorkerArgs {
    pub fn config(&self) -> anyhow::Result<OutboxConfig> {
        if self.concurrency == 0 {
            return Err(bad("--concurrency must be at least 1"));
        }
        if self.lease_secs < 3 {
            return Err(bad(
                "--lease-secs must be at least 3 (the lease is renewed every third of it)",
            ));
        }
        Ok(OutboxConfig {
            concurrency: self.concurrency,
            rate_per_minute: (self.rate_per_minute > 0).then_some(self.rate_per_minute),
            lease: Duration::from_secs(self.lease_secs),
            backoff_initial: Duration::from_secs(self.backoff_secs.max(1)),
            exchange_transport: match self.via {
                ViaArg::Auto => ExchangeTransport::Auto,
                ViaArg::Graph => ExchangeTransport::Graph,
                ViaArg::Smtp => ExchangeTransport::Smtp,
            },
            save_to_sent_items: !self.no_save_to_sent_items,
            idle_poll: Duration::from_secs(self.idle_poll_secs.max(1)),
            ..OutboxConfig::default()
        })
    }
}
