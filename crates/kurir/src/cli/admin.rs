//! `kurir admin users add|list|passwd|remove` and `kurir admin api-key create|list|revoke`: who
//! may use the web UI and the REST API.
//!
//! Passwords come from a hidden prompt or stdin (`--password-stdin`), never from the command
//! line (shell history, `ps`). An API key is printed once, at creation; only its argon2 hash is
//! kept, so a lost key is revoked and replaced, not recovered.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use secrecy::{ExposeSecret, SecretString};

use super::{Place, open_store};
use crate::fail::bad;

#[derive(Subcommand, Debug)]
pub enum AdminCmd {
    /// Local admin users of the web UI.
    #[command(subcommand)]
    Users(AdminUsersCmd),
    /// API keys for the REST API (Authorization: Bearer kurir_…).
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCmd),
}

#[derive(Subcommand, Debug)]
pub enum AdminUsersCmd {
    /// Add an admin; the password is prompted for (twice), or read from stdin.
    Add {
        name: String,
        /// Read the password from standard input (one line) instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (signs the admin out everywhere).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    List,
    /// Remove an admin and end their sessions.
    Remove {
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApiKeyCmd {
    /// Create a key and print it once.
    Create {
        name: String,
    },
    List,
    /// Revoke a key by name or id; requests with it fail at once.
    Revoke {
        name: String,
    },
}

/// Admin names: what people type at the login form; short and without surprises.
fn admin_name(raw: &str) -> anyhow::Result<String> {
    let name = raw.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err(bad(format!(
            "'{raw}' is not a usable admin name: letters, digits, '.', '_', '-', '@', at most 64, e.g. anna or anna@contoso.com"
        )));
    }
    Ok(name.to_owned())
}

/// Twelve characters is the floor: the UI controls mail credentials for the whole company.
const MIN_PASSWORD: usize = 12;

fn read_password(from_stdin: bool) -> anyhow::Result<SecretString> {
    let pw = if from_stdin {
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .context("reading the password from standard input")?;
        let line = buf.lines().next().unwrap_or_default().to_owned();
        SecretString::from(line)
    } else {
        if !std::io::stdin().is_terminal() {
            return Err(bad(
                "there is no terminal to prompt for the password on; pipe it with --password-stdin",
            ));
        }
        let a = rpassword::prompt_password("Password: ").context("reading the password")?;
        let b = rpassword::prompt_password("Again: ").context("reading the password")?;
        if a != b {
            return Err(bad("the two passwords differ; nothing was changed"));
        }
        SecretString::from(a)
    };
    if pw.expose_secret().chars().count() < MIN_PASSWORD {
        return Err(bad(format!(
            "the password is shorter than {MIN_PASSWORD} characters; choose a longer one (a passphrase of a few words is easy to type and hard to guess)"
        )));
    }
    Ok(pw)
}

pub async fn run(place: &Place, cmd: AdminCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCmd::Users(AdminUsersCmd::Add {
            name,
            password_stdin,
        }) => {
            let name = admin_name(&name)?;
            let pw = read_password(password_stdin)?;
            let store = open_store(place).await?;
            if !store.add_admin(&name, &pw).await? {
                return Err(bad(format!(
                    "admin {name} already exists; change the password with `kurir admin users passwd {name}`"
                )));
            }
            println!(
                "Added admin {name}. Sign in to the web UI started by `kurir serve` (http://127.0.0.1:8025 by default)."
            );
        }
        AdminCmd::Users(AdminUsersCmd::Passwd {
            name,
            password_stdin,
        }) => {
            let name = admin_name(&name)?;
            let pw = read_password(password_stdin)?;
            let store = open_store(place).await?;
            if !store.set_admin_password(&name, &pw).await? {
                return Err(bad(format!(
                    "there is no admin {name}; list them with `kurir admin users list`"
                )));
            }
            println!("New password set for {name}; their web sessions were ended.");
        }
        AdminCmd::Users(AdminUsersCmd::List) => {
            let store = open_store(place).await?;
            let admins = store.list_admins().await?;
            if admins.is_empty() {
                println!("No admins yet. Add one with: kurir admin users add NAME");
            }
            for a in admins {
                println!(
                    "{:24} created {}  last sign-in {}",
                    a.name,
                    a.created_at,
                    a.last_login.as_deref().unwrap_or("never")
                );
            }
        }
        AdminCmd::Users(AdminUsersCmd::Remove { name }) => {
            let name = admin_name(&name)?;
            let store = open_store(place).await?;
            if !store.remove_admin(&name).await? {
                return Err(bad(format!("there is no admin {name}")));
            }
            println!("Removed admin {name} and ended their sessions.");
        }
        AdminCmd::ApiKey(ApiKeyCmd::Create { name }) => {
            let name = admin_name(&name)?;
            let store = open_store(place).await?;
            let Some(key) = store.create_api_key(&name).await? else {
                return Err(bad(format!(
                    "an API key named {name} exists; revoke it first (`kurir admin api-key revoke {name}`) or choose another name"
                )));
            };
            // The only time the key exists in the clear: stdout, for the caller to store.
            println!("{}", key.token.expose_secret());
            eprintln!(
                "API key {name} created (id {}). It is shown only this once: store it now. Use it as 'Authorization: Bearer <key>'.",
                key.info.id
            );
        }
        AdminCmd::ApiKey(ApiKeyCmd::List) => {
            let store = open_store(place).await?;
            let keys = store.list_api_keys().await?;
            if keys.is_empty() {
                println!("No API keys. Create one with: kurir admin api-key create NAME");
            }
            for k in keys {
                println!(
                    "{:24} id {}  created {}  last used {}",
                    k.name,
                    k.id,
                    k.created_at,
                    k.last_used.as_deref().unwrap_or("never")
                );
            }
        }
        AdminCmd::ApiKey(ApiKeyCmd::Revoke { name }) => {
            let store = open_store(place).await?;
            if !store.revoke_api_key(name.trim()).await? {
                return Err(bad(format!(
                    "there is no API key {name}; list them with `kurir admin api-key list`"
                )));
            }
            println!("Revoked API key {name}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
