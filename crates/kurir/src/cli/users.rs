//! `kurir users add|list|remove`: the ERP users (Användare) with e-mail settings of their own.

use std::process::ExitCode;

use clap::Subcommand;
use kurir_settings::{Level, Scope, Severity, key, normalize_user_code, parse_value};
use kurir_store::{Change, NewValue};

use super::{Place, open_store, today};
use crate::fail::bad;

#[derive(Subcommand, Debug)]
pub enum UsersCmd {
    /// Add a user by ERP user code (e.g. ANNA, or WEBSHOP for the webshop).
    Add {
        code: String,
        /// The user's e-mail address (E-postadress): the mailbox they send as.
        #[arg(long)]
        email: Option<String>,
    },
    /// List users with their effective method, flow and sender.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a user and every setting written for it.
    Remove { code: String },
}

pub async fn run(place: &Place, cmd: UsersCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        UsersCmd::Add { code, email } => {
            let code = normalize_user_code(&code).map_err(bad)?;
            let email = email
                .map(|e| parse_value(key("email").expect("email key"), Level::User, &e))
                .transpose()?;
            let store = open_store(place).await?;
            let changes = email
                .map(|e| Change::Set("email".into(), NewValue::Plain(e)))
                .into_iter()
                .collect();
            store.add_user_with(&code, changes).await?;
            println!(
                "Added user {code}. Its settings inherit the system settings until you override them: kurir settings set --user {code} KEY=VALUE"
            );
            Ok(ExitCode::SUCCESS)
        }
        UsersCmd::List { json } => {
            let store = open_store(place).await?;
            let snap = store.snapshot().await?;
            let mut rows = Vec::new();
            for code in snap.users.keys() {
                let scope = Scope::User(code.clone());
                let eff = snap.resolve(&scope);
                let problems = snap.validate(&scope, today());
                let errors = problems
                    .iter()
                    .filter(|p| p.severity == Severity::Error)
                    .count();
                rows.push(serde_json::json!({
                    "code": code,
                    "email": eff.get("email"),
                    "method": eff.get("method"),
                    "auth_flow": eff.get("auth_flow"),
                    "overrides": snap.users[code].values.len(),
                    "errors": errors,
                }));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                println!(
                    "No users yet. Add one with: kurir users add ANNA --email anna@your-domain"
                );
            } else {
                println!(
                    "{:10} {:32} {:16} {:18} {:9} ERRORS",
                    "CODE", "E-MAIL", "METHOD", "FLOW", "OVERRIDES"
                );
                for r in rows {
                    println!(
                        "{:10} {:32} {:16} {:18} {:9} {}",
                        r["code"].as_str().unwrap_or_default(),
                        r["email"].as_str().unwrap_or("—"),
                        r["method"].as_str().unwrap_or("—"),
                        r["auth_flow"].as_str().unwrap_or("—"),
                        r["overrides"],
                        r["errors"]
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        UsersCmd::Remove { code } => {
            let code = normalize_user_code(&code).map_err(bad)?;
            let store = open_store(place).await?;
            store.remove_user(&code).await?;
            println!("Removed user {code} and its settings.");
            Ok(ExitCode::SUCCESS)
        }
    }
}
