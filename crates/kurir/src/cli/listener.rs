//! `kurir listener`: the SMTP submission listener for legacy components (the webshop), with the
//! outbox workers that send what it accepts; `kurir listener users add|remove|list` manages its
//! local logins (passwords from a prompt or stdin, stored as argon2id hashes).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kurir_outbox::{ListenerConfig, ListenerTls, Outbox, listener};
use kurir_settings::normalize_user_code;
use secrecy::{ExposeSecret, SecretString};

use super::args::WorkerArgs;
use super::{Place, open_store};
use crate::fail::bad;
use kurir_service::signal::stop_on_signal;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ListenerArgs {
    #[command(subcommand)]
    pub cmd: Option<ListenerCmd>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum ListenerCmd {
    /// Local logins of the listener.
    #[command(subcommand)]
    Users(UsersCmd),
}

#[derive(Subcommand, Debug)]
pub enum UsersCmd {
    /// Add (or change the password of) a login; prompts for the password.
    Add {
        /// The login name the component uses (e.g. WEBSHOP).
        name: String,
        /// The Kurir user whose settings send its mail (default: the same name).
        #[arg(long = "as", value_name = "USER")]
        as_user: Option<String>,
        /// Read the password from the first line of stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    Remove {
        name: String,
    },
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:2587", env = "KURIR_LISTENER_ADDR")]
    pub listen: SocketAddr,
    /// A PEM certificate chain for STARTTLS (default: one Kurir generates, with a CA in
    /// <data-dir>/listener-tls/ca.pem for clients to trust).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest message in MB.
    #[arg(long, default_value_t = 35)]
    pub max_size_mb: usize,
    /// Require STARTTLS before AUTH even on loopback.
    #[arg(long)]
    pub require_tls: bool,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

pub async fn run(place: &Place, args: ListenerArgs) -> anyhow::Result<ExitCode> {
    match args.cmd {
        Some(ListenerCmd::Users(cmd)) => users(place, cmd).await,
        None => serve(place, args.run).await,
    }
}

async fn users(place: &Place, cmd: UsersCmd) -> anyhow::Result<ExitCode> {
    let store = open_store(place).await?;
    match cmd {
        UsersCmd::Add {
            name,
            as_user,
            password_stdin,
        } => {
            let name = normalize_user_code(&name).map_err(bad)?;
            let user = normalize_user_code(as_user.as_deref().unwrap_or(&name)).map_err(bad)?;
            let snap = store.snapshot().await?;
            if !snap.users.contains_key(&user) {
                return Err(bad(format!(
                    "there is no Kurir user {user} to send as; add it first with `kurir users add {user} --email …`"
                )));
            }
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                SecretString::from(line.trim_end_matches(['\r', '\n']).to_owned())
            } else {
                let p =
                    rpassword::prompt_password(format!("Password for listener login {name}: "))?;
                let again = rpassword::prompt_password("Again: ")?;
                if p != again {
                    return Err(bad("the two passwords differ; run the command again"));
                }
                SecretString::from(p)
            };
            if password.expose_secret().len() < 12 {
                return Err(bad(
                    "the password is too short: use at least 12 characters (e.g. `openssl rand -base64 18`)",
                ));
            }
            store.set_listener_user(&name, &user, &password).await?;
            println!(
                "Listener login {name} sends as Kurir user {user}. Configure the component with SMTP AUTH user {name}, port of `kurir listener` (default 127.0.0.1:2587), STARTTLS."
            );
            Ok(ExitCode::SUCCESS)
        }
        UsersCmd::Remove { name } => {
            let name = normalize_user_code(&name).map_err(bad)?;
            if store.remove_listener_user(&name).await? {
                println!("Removed listener login {name}.");
                Ok(ExitCode::SUCCESS)
            } else {
                Err(bad(format!(
                    "there is no listener login {name}; see `kurir listener users list`"
                )))
            }
        }
        UsersCmd::List { json } => {
            let list = store.list_listener_users().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("No listener logins yet. Add one with: kurir listener users add WEBSHOP");
            } else {
                for u in list {
                    println!(
                        "{:<12} sends as {:<12} created {}  last login {}",
                        u.name,
                        u.kurir_user,
                        u.created_at,
                        u.last_login.as_deref().unwrap_or("never")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(place: &Place, args: RunArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(place).await?;
    let outbox = Outbox::new(store, args.worker.config()?);
    let mut cfg = ListenerConfig::loopback(&place.data_dir);
    cfg.listen = args.listen;
    cfg.max_size = args.max_size_mb * 1024 * 1024;
    cfg.auth_without_tls = !args.require_tls && args.listen.ip().is_loopback();
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        cfg.tls = ListenerTls::Files { cert, key };
    }
    let bound = listener::bind(&cfg).await?;
    // One JSON line on stdout, like `kurir emulator`, so scripts learn the port and CA.
    println!(
        "{}",
        serde_json::json!({
            "listen": bound.local_addr.to_string(),
            "ca_path": bound.ca_path,
        })
    );
    let stop = stop_on_signal();
    let worker = {
        let outbox = outbox.clone();
        let stop = stop.clone();
        tokio::spawn(async move { outbox.run(stop, false).await })
    };
    listener::serve(bound, outbox, cfg, stop).await;
    let stats = worker.await??;
    eprintln!(
        "kurir listener: stopped; {} sent, {} to be retried, {} failed",
        stats.sent, stats.retried, stats.failed
    );
    Ok(ExitCode::SUCCESS)
}
