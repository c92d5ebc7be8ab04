//! The SMTP submission listener's life in the service: it opens once a login exists.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kurir_outbox::{ListenerConfig, Outbox, listener};
use kurir_store::KurirStore;
use tokio::sync::watch;

/// The SMTP listener: opens (once) when the first login exists, then serves until stop.
pub(crate) async fn run(
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
