//! The command line: argument definitions and dispatch. Each command group has its own file.

mod accounts;
mod admin;
mod args;
mod assign;
mod check;
pub mod config;
mod credential;
mod demo;
mod fetch;
mod listener;
mod messages;
mod outbox;
mod output;
mod send;
pub mod serve;
mod settings;
mod setup;
mod token;
mod upkeep;
mod users;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use kurir_settings::{Scope, normalize_account_name, normalize_user_code};
use kurir_store::KurirStore;

use crate::fail::bad;

#[derive(Parser, Debug)]
#[command(
    name = "kurir",
    version,
    about = "E-mail for the ERP through Microsoft Exchange Online with OAuth 2.0 / Microsoft Entra ID",
    long_about = "Kurir gives an ERP and its webshop e-mail through Microsoft Exchange Online with OAuth 2.0 (Microsoft Entra ID): the e-mail settings of the ERP (system settings, users such as WEBSHOP, incoming-mail accounts, the webshop), tokens from Entra ID, incoming and outgoing mail.\n\nStart with `kurir settings show`, then `kurir settings keys` for every setting."
)]
pub struct Cli {
    /// Where Kurir keeps its database and master key file. By default the platform's place for
    /// a service's state: $STATE_DIRECTORY under systemd, %ProgramData%\Kurir on Windows,
    /// /var/lib/kurir as root, else ~/.local/share/kurir.
    #[arg(
        long,
        global = true,
        env = "KURIR_DATA_DIR",
        default_value_os_t = kurir_service::paths::default_data_dir()
    )]
    pub data_dir: PathBuf,

    /// PostgreSQL instead of the SQLite database in the data directory
    /// (postgres://user@host:5432/database): several `kurir serve` on one database share the
    /// work. Every instance needs the same master key (KURIR_MASTER_KEY, or the same master.key
    /// in each data directory); the data directory still holds the import queue and the
    /// listener's TLS files. Put a password in KURIR_DATABASE_URL or PGPASSWORD, not here.
    #[arg(
        long,
        global = true,
        env = "KURIR_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,

    /// The service's own options (kurir.toml: listen addresses, data directory, database URL,
    /// the web UI's certificate, the SMTP listener). Default: /etc/kurir/kurir.toml
    /// (%ProgramData%\Kurir\kurir.toml on Windows), if it exists. Flags and KURIR_… variables
    /// override what it says.
    #[arg(long, global = true, env = "KURIR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Whether --data-dir / KURIR_DATA_DIR (or the config file) gave the data directory (the
    /// demo then uses it instead of its own directory).
    #[arg(skip)]
    pub data_dir_explicit: bool,

    /// The config file as loaded ([`config::apply`]).
    #[arg(skip)]
    pub config_file: Option<kurir_service::config::Loaded>,

    /// Where each option's value comes from (flag, environment, file, default).
    #[arg(skip)]
    pub sources: std::collections::BTreeMap<String, &'static str>,

    /// More log output on stderr (-v, -vv); KURIR_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show, change, validate, export and import the e-mail settings.
    #[command(subcommand)]
    Settings(settings::SettingsCmd),
    /// ERP users (Användare) with e-mail settings of their own, such as WEBSHOP.
    #[command(subcommand)]
    Users(users::UsersCmd),
    /// Incoming-mail accounts (Inställningar för inkommande e-post), e.g. Monitor-to-Monitor.
    #[command(subcommand)]
    Accounts(accounts::AccountsCmd),
    /// Get an access token from Entra ID with the effective settings and show what it allows.
    Token(token::TokenArgs),
    /// Take in incoming mail (IMAP, POP3, Graph): one pass, or --watch to keep going.
    Fetch(fetch::FetchArgs),
    /// What intake stored: messages, the ERP's import queue, each account's health.
    #[command(subcommand)]
    Messages(messages::MessagesCmd),
    /// Run the offline emulator of Microsoft Entra ID (like Azurite for Azure Storage): the demo
    /// and the tests run against it. Without --fixture it serves a ready demo tenant and prints
    /// one JSON line with everything needed to try it (URL, tenant, client, secret, CA).
    Emulator(kurir_emulator::cli::EmulatorArgs),
    /// Queue a message as a Kurir user (or the webshop); --wait sends it now.
    Send(send::SendArgs),
    /// The outgoing-mail queue: list, show, retry, cancel, run.
    #[command(subcommand)]
    Outbox(outbox::OutboxCmd),
    /// SMTP submission listener for legacy components such as the webshop (and its logins).
    Listener(listener::ListenerArgs),
    /// Run the service: the admin web UI, the REST API, /healthz and /metrics.
    Serve(serve::ServeArgs),
    /// Test connection: settings → token → mailbox → IMAP/POP3/SMTP → folders, each step ok or
    /// what to fix.
    Check(check::CheckArgs),
    /// Set Kurir up in Microsoft Entra ID: `kurir setup entra` registers the app, grants
    /// consent, adds its credential and writes the settings (an administrator signs in once).
    #[command(subcommand)]
    Setup(setup::SetupCmd),
    /// The app's credential in Entra ID: `kurir credential rotate` replaces the client secret.
    #[command(subcommand)]
    Credential(credential::CredentialCmd),
    /// The service's own configuration (kurir.toml): check it, or show what is in effect.
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Admin users of the web UI and API keys of the REST API.
    #[command(subcommand)]
    Admin(admin::AdminCmd),
    /// Remove what the retention settings (keep_raw_mail, keep_import_documents,
    /// keep_sent_mail, keep_records) let go; `kurir serve` does it daily. Never removes what
    /// is not processed, acknowledged or sent.
    Purge(upkeep::PurgeArgs),
    /// Write a consistent backup (.tar.gz) of the data directory while Kurir runs: the
    /// database, raw mail, import folders. Not the master key: keep that separately.
    Backup(upkeep::BackupArgs),
    /// Restore a backup into an empty data directory (the master key must be in place).
    Restore(upkeep::RestoreArgs),
    /// The whole product against the built-in emulator: the seed's settings, mail coming in
    /// and going out, the web UI (prints its URL and a login). --check: one round trip, exit 0/1.
    Demo(demo::DemoArgs),
}

/// Which subject a settings command is about; none of the flags means the system settings.
#[derive(Args, Debug, Clone, Default)]
#[group(multiple = false)]
pub struct ScopeArgs {
    /// A user (ERP user code, e.g. ANNA or WEBSHOP).
    #[arg(long, value_name = "CODE")]
    pub user: Option<String>,
    /// An incoming-mail account by name.
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// The webshop (Webbshop Administration).
    #[arg(long)]
    pub webshop: bool,
}

impl ScopeArgs {
    pub fn scope(&self) -> anyhow::Result<Scope> {
        Ok(if let Some(u) = &self.user {
            Scope::User(normalize_user_code(u).map_err(bad)?)
        } else if let Some(a) = &self.account {
            Scope::Account(normalize_account_name(a).map_err(bad)?)
        } else if self.webshop {
            Scope::Webshop
        } else {
            Scope::System
        })
    }
}

/// Where the store is: the data directory (the SQLite database unless a PostgreSQL URL is
/// given; the master key file, the import queue and the listener's TLS files either way).
#[derive(Debug, Clone)]
pub struct Place {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
}

pub async fn open_store(place: &Place) -> anyhow::Result<Arc<dyn KurirStore>> {
    Ok(kurir_store::open_store(&place.data_dir, place.database_url.as_deref()).await?)
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let place = Place {
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone().filter(|u| !u.trim().is_empty()),
    };
    match cli.command {
        Command::Settings(cmd) => settings::run(&place, cmd).await,
        Command::Users(cmd) => users::run(&place, cmd).await,
        Command::Accounts(cmd) => accounts::run(&place, cmd).await,
        Command::Token(args) => token::run(&place, args).await,
        Command::Fetch(args) => fetch::run(&place, args).await,
        Command::Messages(cmd) => messages::run(&place, cmd).await,
        Command::Serve(args) => serve::run(&place, args).await,
        Command::Check(args) => check::run(&place, args).await,
        Command::Setup(cmd) => setup::run(&place, cmd).await,
        Command::Credential(cmd) => credential::run(&place, cmd).await,
        Command::Config(cmd) => {
            let loaded = cli.config_file.clone().unwrap_or_default();
            config::run(&place, &loaded, &cli.sources, cmd).await
        }
        Command::Admin(cmd) => admin::run(&place, cmd).await,
        Command::Demo(args) => demo::run(&place, cli.data_dir_explicit, args).await,
        Command::Send(args) => send::run(&place, args).await,
        Command::Outbox(cmd) => outbox::run(&place, cmd).await,
        Command::Listener(args) => listener::run(&place, args).await,
        Command::Purge(args) => upkeep::purge(&place, args).await,
        Command::Backup(args) => upkeep::backup(&place, args).await,
        Command::Restore(args) => upkeep::restore(&place, args).await,
        Command::Emulator(args) => {
            kurir_emulator::cli::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Today's date for expiry checks.
pub fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}
