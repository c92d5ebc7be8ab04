//! `kurir settings show|set|unset|validate|keys|export|import`.
//!
//! Secrets are never accepted as `KEY=VALUE` arguments: the command line ends up in shell
//! history and in `ps` for every user on the machine. They come from a prompt, stdin, an
//! environment variable or a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use kurir_settings::{
    KEYS, Kind, Level, Scope, Severity, key_or_hint, keys::level_name, normalize_account_name,
    normalize_user_code, parse_value,
};
use kurir_store::{Change, ExportRow, ExportValue, Store};

use super::assign::{check_exists, collect_changes};
use super::{Place, ScopeArgs, open_store, output, today};
use crate::fail::bad;

#[derive(Subcommand, Debug)]
pub enum SettingsCmd {
    /// Show the effective settings of the system, a user, an account or the webshop, each value
    /// with where it comes from (system, user, account, webshop, default).
    Show {
        #[command(flatten)]
        scope: ScopeArgs,
        /// One JSON object: {"key": {"value": …, "source": …}, …}; secrets masked.
        #[arg(long)]
        json: bool,
    },
    /// Set settings: KEY=VALUE for ordinary values; a bare KEY for a secret prompts for it.
    ///
    /// Examples:
    ///   kurir settings set method=exchange-online client_id=… tenant_id=contoso.onmicrosoft.com
    ///   kurir settings set client_secret                 (prompts, input hidden)
    ///   kurir settings set --user WEBSHOP auth_flow=username-password exchange_username=webshop@contoso.com
    ///   printf %s "$PW" | kurir settings set --user WEBSHOP --secret-stdin exchange_password
    #[command(verbatim_doc_comment)]
    Set {
        #[command(flatten)]
        scope: ScopeArgs,
        /// KEY=VALUE pairs, or a bare secret KEY to be prompted for. A value starting with @
        /// is read from that file (for certificates).
        #[arg(value_name = "KEY=VALUE")]
        assignments: Vec<String>,
        /// Read this secret's value from standard input.
        #[arg(long, value_name = "KEY")]
        secret_stdin: Option<String>,
        /// Read a secret from an environment variable: KEY=VARIABLE.
        #[arg(long, value_name = "KEY=VAR")]
        secret_env: Vec<String>,
        /// Read a secret from a file (e.g. a PEM private key): KEY=PATH.
        #[arg(long, value_name = "KEY=PATH")]
        secret_file: Vec<String>,
    },
    /// Remove settings so that the value is inherited again.
    Unset {
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
    },
    /// Check effective settings and say what is missing or wrong, and how to fix it. Exit 1 if
    /// there is an error.
    Validate {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Everything: system, every user, every account and the webshop.
        #[arg(long, conflicts_with_all = ["user", "account", "webshop"])]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// List every setting: name, labels, where it may be set, and what it is for.
    Keys,
    /// Write all settings as TOML (stdout or --output). Secrets are left out unless
    /// --include-secrets, which writes them still encrypted under this installation's master key.
    Export {
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[arg(long)]
        include_secrets: bool,
    },
    /// Read settings from a TOML file written by `export` (users and accounts are created).
    Import { file: PathBuf },
}

pub async fn run(place: &Place, cmd: SettingsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        SettingsCmd::Keys => {
            print_keys();
            Ok(ExitCode::SUCCESS)
        }
        SettingsCmd::Show { scope, json } => show(place, &scope.scope()?, json).await,
        SettingsCmd::Set {
            scope,
            assignments,
            secret_stdin,
            secret_env,
            secret_file,
        } => {
            let scope = scope.scope()?;
            let changes = collect_changes(
                &scope,
                &assignments,
                secret_stdin.as_deref(),
                &secret_env,
                &secret_file,
            )?;
            let store = open_store(place).await?;
            let names: Vec<String> = changes
                .iter()
                .map(|c| match c {
                    Change::Set(k, _) | Change::Unset(k) => k.clone(),
                })
                .collect();
            store.apply(&scope, changes).await?;
            println!("Set {} on {scope}.", names.join(", "));
            report_after_change(&*store, &scope).await
        }
        SettingsCmd::Unset { scope, keys } => {
            let scope = scope.scope()?;
            let mut changes = Vec::new();
            for k in &keys {
                let def = key_or_hint(k, scope.level()).map_err(bad)?;
                changes.push(Change::Unset(def.name.to_owned()));
            }
            let store = open_store(place).await?;
            let n = store.apply(&scope, changes).await?;
            if n == 0 {
                println!(
                    "Nothing was set there: {} already inherited on {scope}.",
                    keys.join(", ")
                );
            } else {
                println!(
                    "Unset {} on {scope}; the inherited value applies again.",
                    keys.join(", ")
                );
            }
            report_after_change(&*store, &scope).await
        }
        SettingsCmd::Validate { scope, all, json } => {
            let store = open_store(place).await?;
            let snap = store.snapshot().await?;
            let problems = if all {
                snap.validate_all(today())
            } else {
                let scope = scope.scope()?;
                check_exists(&snap, &scope)?;
                snap.validate(&scope, today())
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&problems)?);
            } else {
                output::print_problems(&problems);
            }
            Ok(if problems.iter().any(|p| p.severity == Severity::Error) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        SettingsCmd::Export {
            output,
            include_secrets,
        } => export(place, output, include_secrets).await,
        SettingsCmd::Import { file } => import(place, &file).await,
    }
}

async fn show(place: &Place, scope: &Scope, json: bool) -> anyhow::Result<ExitCode> {
    let store = open_store(place).await?;
    let snap = store.snapshot().await?;
    check_exists(&snap, scope)?;
    let eff = snap.resolve(scope);
    if json {
        println!("{}", serde_json::to_string_pretty(&eff.to_json())?);
    } else {
        output::print_effective(&eff);
        output::print_problems(&snap.validate(scope, today()));
    }
    Ok(ExitCode::SUCCESS)
}

/// After a change, show what is still wrong for that subject (a hint, not a failure).
async fn report_after_change(
    store: &(impl Store + ?Sized),
    scope: &Scope,
) -> anyhow::Result<ExitCode> {
    let snap = store.snapshot().await?;
    let problems = snap.validate(scope, today());
    if !problems.is_empty() {
        println!("Still to do for {scope}:");
        for p in problems {
            println!("  {p}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_keys() {
    for level in [Level::System, Level::User, Level::Account, Level::Webshop] {
        println!(
            "On the {} ({}):",
            level_name(level),
            match level {
                Level::System => "kurir settings set KEY=VALUE",
                Level::User => "kurir settings set --user CODE KEY=VALUE",
                Level::Account => "kurir settings set --account NAME KEY=VALUE",
                Level::Webshop => "kurir settings set --webshop KEY=VALUE",
            }
        );
        for k in KEYS.iter().filter(|k| k.allowed_at(level)) {
            let kind = match k.kind {
                Kind::Secret => " [secret]".to_owned(),
                Kind::Choice(_) if k.name == "method" && level == Level::Webshop => {
                    format!(" [{}]", kurir_settings::keys::WEBSHOP_METHODS.join("|"))
                }
                Kind::Choice(c) => format!(" [{}]", c.join("|")),
                _ => String::new(),
            };
            println!("  {:22} {} / {}{kind}", k.name, k.label_sv, k.label_en);
            println!("  {:22} {}", "", k.help);
        }
        println!();
    }
}

// ---- export / import -------------------------------------------------------------------------

/// The TOML layout: `[system]`, `[user.CODE]`, `[account."NAME"]`, `[webshop]`; sealed secrets as
/// `{ sealed = "base64" }` together with the master key's fingerprint.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct ExportFile {
    format: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_fingerprint: Option<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    accounts: Vec<String>,
    #[serde(default)]
    system: BTreeMap<String, toml::Value>,
    #[serde(default)]
    user: BTreeMap<String, BTreeMap<String, toml::Value>>,
    #[serde(default)]
    account: BTreeMap<String, BTreeMap<String, toml::Value>>,
    #[serde(default)]
    webshop: BTreeMap<String, toml::Value>,
}

async fn export(
    place: &Place,
    output: Option<PathBuf>,
    include_secrets: bool,
) -> anyhow::Result<ExitCode> {
    let store = open_store(place).await?;
    let rows = store.export_rows(include_secrets).await?;
    let mut file = ExportFile {
        format: 1,
        key_fingerprint: include_secrets.then(|| store.key_fingerprint()),
        ..Default::default()
    };
    for row in rows {
        let scope = Scope::from_storage_key(&row.scope).context("unknown scope in the database")?;
        if row.key.is_empty() {
            match scope {
                Scope::User(c) => file.users.push(c),
                Scope::Account(a) => file.accounts.push(a),
                _ => {}
            }
            continue;
        }
        let value = match row.value {
            ExportValue::Plain(v) => toml::Value::String(v),
            ExportValue::Sealed(b) => {
                let mut t = toml::map::Map::new();
                t.insert("sealed".into(), toml::Value::String(b));
                toml::Value::Table(t)
            }
        };
        let layer = match scope {
            Scope::System => &mut file.system,
            Scope::Webshop => &mut file.webshop,
            Scope::User(c) => file.user.entry(c).or_default(),
            Scope::Account(a) => file.account.entry(a).or_default(),
        };
        layer.insert(row.key, value);
    }
    let text = format!(
        "# Kurir settings, exported {}.\n# Secrets {}.\n{}",
        time::OffsetDateTime::now_utc().date(),
        if include_secrets {
            "are included ENCRYPTED under this installation's master key; they import only where that key is"
        } else {
            "are not included; set them again after importing"
        },
        toml::to_string_pretty(&file)?
    );
    match output {
        Some(path) => {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("Wrote {}.", path.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn import(place: &Place, path: &Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
    let file: ExportFile = toml::from_str(&text).map_err(|e| {
        bad(format!(
            "{} is not a Kurir settings file: {}",
            path.display(),
            e.to_string().replace('\n', " ")
        ))
    })?;
    if file.format != 1 {
        return Err(bad(format!(
            "{}: format {} is not known to this Kurir (expected 1)",
            path.display(),
            file.format
        )));
    }
    let now =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    let mut rows = Vec::new();
    let marker = |scope: Scope| ExportRow {
        scope: scope.storage_key(),
        key: String::new(),
        value: ExportValue::Plain(String::new()),
        set_at: now.clone(),
    };
    for u in &file.users {
        rows.push(marker(Scope::User(normalize_user_code(u).map_err(bad)?)));
    }
    for a in &file.accounts {
        rows.push(marker(Scope::Account(
            normalize_account_name(a).map_err(bad)?,
        )));
    }
    let mut layers: Vec<(Scope, &BTreeMap<String, toml::Value>)> = vec![
        (Scope::System, &file.system),
        (Scope::Webshop, &file.webshop),
    ];
    for (u, l) in &file.user {
        layers.push((Scope::User(normalize_user_code(u).map_err(bad)?), l));
    }
    for (a, l) in &file.account {
        layers.push((Scope::Account(normalize_account_name(a).map_err(bad)?), l));
    }
    for (scope, layer) in layers {
        for (k, v) in layer {
            let def = key_or_hint(k, scope.level()).map_err(|e| bad(format!("{scope}: {e}")))?;
            let value = match (v, def.is_secret()) {
                (toml::Value::String(s), false) => ExportValue::Plain(
                    parse_value(def, scope.level(), s).map_err(|e| bad(format!("{scope}: {e}")))?,
                ),
                (toml::Value::Table(t), true) => match t.get("sealed") {
                    Some(toml::Value::String(b)) => ExportValue::Sealed(b.clone()),
                    _ => return Err(bad(format!("{scope}: {k} must be {{ sealed = \"…\" }}"))),
                },
                (_, true) => {
                    return Err(bad(format!(
                        "{scope}: {k} is a secret given in plain text; an import file holds secrets only encrypted (from `kurir settings export --include-secrets`). Remove it and set it with `kurir settings set{} {k}`",
                        scope.cli_flag()
                    )));
                }
                _ => return Err(bad(format!("{scope}: {k} must be a string"))),
            };
            rows.push(ExportRow {
                scope: scope.storage_key(),
                key: def.name.to_owned(),
                value,
                set_at: now.clone(),
            });
        }
    }
    let store = open_store(place).await?;
    let n = store
        .import_rows(rows, file.key_fingerprint.as_deref())
        .await?;
    println!(
        "Imported {n} settings, {} users and {} accounts from {}.",
        file.users.len(),
        file.accounts.len(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
