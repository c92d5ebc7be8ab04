//! `kurir emulator`: run the emulator from the command line.
//!
//! Once listening it prints ONE JSON line on stdout with everything a client or test needs
//! (URLs, demo credentials, CA and key paths) so scripts can read it without parsing logs;
//! logs go to stderr. It stops cleanly on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use crate::demo;
use crate::fixture::{CertificateSource, Fixture};
use crate::server::{Emulator, EmulatorConfig, resolve_relative};

/// Arguments of `kurir emulator`.
#[derive(clap::Args, Debug, Clone)]
pub struct EmulatorArgs {
    /// Address of the HTTPS listener (port 0 picks a free port). Any 127.x.y.z works on
    /// Linux, which lets several emulators each have their own :443.
    #[arg(long, default_value = "127.0.0.1:0", env = "KURIR_EMULATOR_LISTEN")]
    pub listen: SocketAddr,
    /// Fixture file (TOML, see docs/emulator.md); without it the demo tenant is served.
    #[arg(long, value_name = "FILE", env = "KURIR_EMULATOR_FIXTURE")]
    pub fixture: Option<PathBuf>,
    /// Directory for keys, CA and generated certificates (kept across restarts);
    /// default: a temporary directory removed at exit.
    #[arg(long, value_name = "DIR", env = "KURIR_EMULATOR_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Extra listener for MSAL's user realm lookup, which MSAL for Python makes on port 443
    /// of the authority's host (needed for ROPC through MSAL).
    #[arg(long, value_name = "PORT", env = "KURIR_EMULATOR_USERREALM_PORT")]
    pub userrealm_port: Option<u16>,
    /// Instead of running an emulator, act on a running one (e.g. `put-mail`).
    #[command(subcommand)]
    pub command: Option<crate::graph::cli::EmulatorCommand>,
}

pub async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    if let Some(cmd) = args.command {
        return crate::graph::cli::run(cmd, args.state_dir).await;
    }
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();

    let (fixture, is_demo) = match &args.fixture {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "cannot read the fixture {}; check --fixture",
                    path.display()
                )
            })?;
            let mut f = Fixture::from_toml(&text)
                .with_context(|| format!("fixture {} is not valid", path.display()))?;
            // Certificate paths in a fixture are relative to the fixture file.
            let base = path.parent().map(PathBuf::from).unwrap_or_default();
            for app in &mut f.apps {
                for c in &mut app.certificates {
                    if let CertificateSource::Path(p) = c {
                        *p = resolve_relative(&base, p);
                    }
                }
            }
            (f, false)
        }
        None => (Fixture::demo(), true),
    };
    let emu = Emulator::start(EmulatorConfig {
        listen: args.listen,
        fixture,
        state_dir: args.state_dir.clone(),
        userrealm_port: args.userrealm_port,
    })
    .await?;

    let keys = emu.signing_keys();
    let mut line = json!({
        "base_url": emu.base_url(),
        "ca_path": emu.ca_path(),
        "state_dir": emu.state_dir(),
        "userrealm_port": emu.userrealm_addr().map(|a| a.port()),
        "signing_keys": {
            "app_kid": keys.app_kid,
            "user_kid": keys.user_kid,
            "app_pub_pem_path": keys.app_pub_pem_path,
            "user_pub_pem_path": keys.user_pub_pem_path,
        },
        "tenants": emu.fixture().tenants.iter().map(|t| json!({"id": t.id.to_string(), "domains": t.domains})).collect::<Vec<_>>(),
    });
    if is_demo {
        let cert = emu.demo_certificate();
        line["authority"] = json!(format!("{}/{}", emu.base_url(), demo::TENANT_ID));
        line["tenant_id"] = json!(demo::TENANT_ID);
        line["tenant_domain"] = json!(demo::TENANT_DOMAIN);
        line["client_id"] = json!(demo::CLIENT_ID);
        // Printing the demo secret is this line's purpose: it is public demo data.
        line["client_secret"] = json!(demo::CLIENT_SECRET);
        line["certificate_path"] = json!(cert.as_ref().map(|c| c.certificate_path.clone()));
        line["private_key_path"] = json!(cert.as_ref().map(|c| c.private_key_path.clone()));
        line["certificate_thumbprint"] = json!(cert.as_ref().map(|c| c.thumbprint.clone()));
        line["user"] = json!({"username": demo::USER, "password": demo::PASSWORD});
    }
    let stop = stop_signal()?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }

    stop.await?;
    tracing::info!("shutting down");
    emu.shutdown().await;
    Ok(())
}

/// Installs the stop handlers now (before the ready line is printed: a SIGTERM right after it
/// must shut down cleanly, not take the default action) and returns the future that waits.
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot install the Ctrl-C handler")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        // Windows has no SIGTERM; Ctrl-C (a console close event) stops it.
        #[cfg(not(unix))]
        tokio::signal::ctrl_c()
            .await
            .context("cannot listen for Ctrl-C")?;
        Ok(())
    })
}
