//! `kurir accounts add|list|remove`: incoming-mail accounts (Inställningar för inkommande e-post).
//! Their Exchange settings inherit the system settings unless set on the account.

use std::process::ExitCode;

use clap::Subcommand;
use kurir_settings::{Level, Scope, Severity, key, normalize_account_name, parse_value};
use kurir_store::{Change, NewValue};

use super::{Place, open_store, today};
use crate::fail::bad;

#[derive(Subcommand, Debug)]
pub enum AccountsCmd {
    /// Add an incoming-mail account.
    ///
    /// Example: kurir accounts add Monitor-to-Monitor --type monitor-to-monitor --mailbox m2m@contoso.com
    Add {
        name: String,
        /// monitor-to-monitor, supplier-invoices, general, or your own type name.
        #[arg(long = "type", value_name = "TYPE")]
        account_type: Option<String>,
        /// The mailbox address the account reads.
        #[arg(long)]
        mailbox: Option<String>,
        /// graph, imap or pop3 (default graph).
        #[arg(long)]
        protocol: Option<String>,
        /// More account settings as KEY=VALUE (source_folder, processed_folder, quarantine_folder,
        /// poll_interval, visible_to, or any Exchange setting to override).
        #[arg(value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// List accounts with type, mailbox, protocol and effective flow.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove an account and every setting written for it.
    Remove { name: String },
}

pub async fn run(place: &Place, cmd: AccountsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AccountsCmd::Add {
            name,
            account_type,
            mailbox,
            protocol,
            settings,
        } => {
            let name = normalize_account_name(&name).map_err(bad)?;
            let scope = Scope::Account(name.clone());
            let mut changes = Vec::new();
            for (k, v) in [
                ("type", account_type),
                ("mailbox", mailbox),
                ("protocol", protocol),
            ] {
                if let Some(v) = v {
                    let value = parse_value(key(k).expect("account key"), Level::Account, &v)?;
                    changes.push(Change::Set(k.into(), NewValue::Plain(value)));
                }
            }
            if !settings.is_empty() {
                changes.extend(super::assign::collect_changes(
                    &scope,
                    &settings,
                    None,
                    &[],
                    &[],
                )?);
            }
            let store = open_store(place).await?;
            store.add_account_with(&name, changes).await?;
            println!(
                "Added incoming-mail account {name}; its Exchange settings inherit the system settings."
            );
            let problems = store.snapshot().await?.validate(&scope, today());
            for p in problems {
                println!("  {p}");
            }
            Ok(ExitCode::SUCCESS)
        }
        AccountsCmd::List { json } => {
            let store = open_store(place).await?;
            let snap = store.snapshot().await?;
            let mut rows = Vec::new();
            for name in snap.accounts.keys() {
                let scope = Scope::Account(name.clone());
                let eff = snap.resolve(&scope);
                let errors = snap
                    .validate(&scope, today())
                    .iter()
                    .filter(|p| p.severity == Severity::Error)
                    .count();
                rows.push(serde_json::json!({
                    "name": name,
                    "type": eff.get("type"),
                    "mailbox": eff.get("mailbox"),
                    "protocol": eff.get("protocol"),
                    "auth_flow": eff.get("auth_flow"),
                    "poll_interval": eff.get("poll_interval"),
                    "errors": errors,
                }));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                println!(
                    "No incoming-mail accounts yet. Add one with: kurir accounts add Monitor-to-Monitor --type monitor-to-monitor --mailbox m2m@your-domain"
                );
            } else {
                println!(
                    "{:24} {:20} {:32} {:9} {:18} ERRORS",
                    "NAME", "TYPE", "MAILBOX", "PROTOCOL", "FLOW"
                );
                for r in rows {
                    println!(
                        "{:24} {:20} {:32} {:9} {:18} {}",
                        r["name"].as_str().unwrap_or_default(),
                        r["type"].as_str().unwrap_or("—"),
                        r["mailbox"].as_str().unwrap_or("—"),
                        r["protocol"].as_str().unwrap_or("—"),
                        r["auth_flow"].as_str().unwrap_or("—"),
                        r["errors"]
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AccountsCmd::Remove { name } => {
            let name = normalize_account_name(&name).map_err(bad)?;
            let store = open_store(place).await?;
            store.remove_account(&name).await?;
            println!("Removed incoming-mail account {name} and its settings.");
            Ok(ExitCode::SUCCESS)
        }
    }
}
