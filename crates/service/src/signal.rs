//! Stopping on SIGTERM (service managers, `kill`) or Ctrl-C.

use tokio::sync::watch;

/// Resolves on SIGTERM (systemd, `kill`) or Ctrl-C.
///
/// The handlers are installed when this is *called*, not when the future is first polled:
/// `kurir serve` prints its ready line and only then waits, and a SIGTERM that arrives in
/// between (a service manager stopping it right after start) must mean "finish and exit 0",
/// not the default action that kills the process mid-write.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        match signals {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (term, int) => {
                let e = term.err().or(int.err()).expect("one of them failed");
                tracing::error!(error = %e, "cannot install the SIGTERM handler; stop with Ctrl-C");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        // Windows has no SIGTERM: Ctrl-C (and the service wrapper's console event) stops it.
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A stop signal that turns true on Ctrl-C or SIGTERM.
pub fn stop_on_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let signal = shutdown_signal();
    tokio::spawn(async move {
        signal.await;
        let _ = tx.send(true);
    });
    rx
}
