//! `kurir serve`: the long-running service ([`kurir_service::Service`]) from the command line.
//! Once listening it prints ONE JSON line on stdout (`{"listen": "http://127.0.0.1:8025", …}`)
//! so scripts and tests can find the ports when `--listen` used port 0; logs go to stderr.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use kurir_service::signal::shutdown_signal;
use kurir_service::{Service, ServiceConfig};

use super::args::WorkerArgs;
use super::{Place, open_store};
use crate::fail::bad;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address of the web UI and REST API. Loopback by default: the UI administers mail
    /// credentials, so reaching it from other machines should be a decision (use a TLS reverse
    /// proxy and --secure-cookies).
    #[arg(long, env = "KURIR_LISTEN", default_value = "127.0.0.1:8025")]
    pub listen: SocketAddr,
    /// The web UI's certificate (PEM chain): with --tls-key, the UI and the API speak HTTPS
    /// themselves (rustls), and cookies are Secure.
    #[arg(long, env = "KURIR_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM, unencrypted; readable by Kurir's user only).
    #[arg(long, env = "KURIR_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Users reach Kurir over HTTPS (a TLS reverse proxy in front): mark cookies Secure.
    #[arg(long, env = "KURIR_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// How long a web sign-in lasts, in hours.
    #[arg(long, default_value_t = 8, value_name = "HOURS")]
    pub session_hours: u16,
    /// A host name users reach the web UI by (a reverse proxy's public name), besides IP
    /// addresses and `localhost`. Requests with any other `Host` header get 421: a
    /// DNS-rebinding web page cannot reach the UI or API through a browser. Repeatable; env
    /// KURIR_ALLOWED_HOSTS takes a comma-separated list.
    #[arg(
        long = "allowed-host",
        env = "KURIR_ALLOWED_HOSTS",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub allowed_hosts: Vec<String>,
    /// Log as JSON lines (for a log collector) instead of text.
    #[arg(long, env = "KURIR_LOG_JSON")]
    pub log_json: bool,
    /// Address of the SMTP submission listener, or `off`. It opens once a login exists
    /// (`kurir listener users add WEBSHOP`): without one it could accept nothing.
    #[arg(
        long,
        env = "KURIR_SMTP_LISTEN",
        default_value = "127.0.0.1:2587",
        value_name = "ADDR|off"
    )]
    pub smtp_listen: String,
    /// Do not take in incoming mail in this process (e.g. another instance does).
    #[arg(long)]
    pub no_intake: bool,
    /// Do not send the outbox in this process.
    #[arg(long)]
    pub no_outbox: bool,
    /// Do not run upkeep in this process: retention's purge, alarm notifications, the ERP
    /// webhook.
    #[arg(long)]
    pub no_upkeep: bool,
    /// How often retention purges, in hours (also once at start).
    #[arg(long, default_value_t = 24, value_name = "HOURS")]
    pub purge_every_hours: u64,
    /// How often alarms and the ERP feeds are looked at, in seconds.
    #[arg(long, default_value_t = 15, value_name = "SECS", hide = true)]
    pub upkeep_tick: u64,
    /// Seconds between switching to a rotated client secret and removing the old one.
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    pub rotation_grace_secs: u64,
    /// Days a rotated-in client secret lives (at most 730).
    #[arg(long, default_value_t = 365, value_name = "DAYS")]
    pub rotation_secret_days: u32,
    /// After how many seconds a lasting alarm is notified again (a day).
    #[arg(long, default_value_t = 86_400, value_name = "SECS", hide = true)]
    pub alarm_repeat_secs: u64,
    /// Seconds to let intake passes and sends in flight finish on shutdown.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub shutdown_grace: u64,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

/// The logging defaults of `kurir serve`: a service logs what it does (info) by default, where
/// a CLI command stays quiet (warn).
pub fn log_defaults(log_json: bool, verbose: u8) -> (&'static str, bool) {
    let filter = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    (filter, log_json)
}

pub async fn run(place: &Place, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(place).await?;
    if store.list_admins().await?.is_empty() {
        tracing::warn!(
            "no admin user yet: nobody can sign in to the web UI until you run `kurir admin users add NAME`"
        );
    }
    let service = Service::start(&place.data_dir, store, args.config()?).await?;
    // Listening for the stop signal before the ready line: see shutdown_signal.
    let stop = shutdown_signal();
    service.print_line(serde_json::json!({}))?;
    stop.await;
    service.stop().await?;
    Ok(ExitCode::SUCCESS)
}

impl ServeArgs {
    /// The service configuration these arguments ask for.
    pub fn config(&self) -> anyhow::Result<ServiceConfig> {
        let smtp_listen = match self.smtp_listen.as_str() {
            "off" | "none" | "" => None,
            s => Some(s.parse().map_err(|_| {
                bad(format!(
                    "--smtp-listen {s}: not an address; give e.g. 127.0.0.1:2587, or off"
                ))
            })?),
        };
        Ok(ServiceConfig {
            web: kurir_web::WebConfig {
                listen: self.listen,
                secure_cookies: self.secure_cookies,
                session_ttl: time::Duration::hours(i64::from(self.session_hours.max(1))),
                allowed_hosts: self.allowed_hosts.clone(),
                tls: match (&self.tls_cert, &self.tls_key) {
                    (Some(cert), Some(key)) => Some(kurir_web::tls::TlsFiles {
                        cert: cert.clone(),
                        key: key.clone(),
                    }),
                    (None, None) => None,
                    _ => {
                        return Err(bad(
                            "give both the web UI's certificate and its key (web.tls_cert and web.tls_key, or --tls-cert and --tls-key)",
                        ));
                    }
                },
            },
            smtp_listen,
            outbox: self.worker.config()?,
            run_outbox: !self.no_outbox,
            run_intake: !self.no_intake,
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            upkeep: (!self.no_upkeep).then(|| kurir_service::upkeep::UpkeepConfig {
                tick: Duration::from_secs(self.upkeep_tick.max(1)),
                purge_every: Duration::from_secs(self.purge_every_hours.max(1) * 3600),
                repeat_after: Duration::from_secs(self.alarm_repeat_secs.max(1)),
                rotation_grace: Duration::from_secs(self.rotation_grace_secs),
                rotation_secret_days: self.rotation_secret_days,
            }),
        })
    }
}
