//! Turning `KEY=VALUE` arguments into checked changes, and checking that a named user or
//! account exists: shared by `kurir settings`, `kurir accounts`, `kurir users`, `kurir check`
//! and `kurir token`.

use std::io::{IsTerminal, Read};

use anyhow::Context;
use kurir_settings::{Level, Scope, key_or_hint, parse_value};
use kurir_store::{Change, NewValue};
use secrecy::SecretString;

use crate::fail::bad;

/// Turns the command line into changes, checking every value before anything is written, so a
/// command with one bad value changes nothing.
pub fn collect_changes(
    scope: &Scope,
    assignments: &[String],
    secret_stdin: Option<&str>,
    secret_env: &[String],
    secret_file: &[String],
) -> anyhow::Result<Vec<Change>> {
    let level = scope.level();
    let mut changes: Vec<(String, NewValue)> = Vec::new();
    let secret_key = |k: &str| -> anyhow::Result<&'static kurir_settings::KeyDef> {
        let def = key_or_hint(k, level).map_err(bad)?;
        if !def.is_secret() {
            return Err(bad(format!(
                "{} is not a secret; give it as {}=VALUE",
                def.name, def.name
            )));
        }
        Ok(def)
    };
    for a in assignments {
        match a.split_once('=') {
            Some((k, v)) => {
                let def = key_or_hint(k, level).map_err(bad)?;
                if def.is_secret() {
                    // Never echo `v`.
                    return Err(bad(format!(
                        "{} ({}) is a secret and is not accepted on the command line, where shell history and `ps` would keep it; run `kurir settings set{} {}` to be prompted, or use --secret-stdin {} / --secret-env {}=VARIABLE",
                        def.name,
                        def.label_en,
                        scope.cli_flag(),
                        def.name,
                        def.name,
                        def.name
                    )));
                }
                let raw = if let Some(path) = v.strip_prefix('@') {
                    std::fs::read_to_string(path)
                        .map_err(|e| bad(format!("{}: cannot read {path}: {e}", def.name)))?
                } else {
                    v.to_owned()
                };
                let value = parse_value(def, level, &raw)?;
                changes.push((def.name.to_owned(), NewValue::Plain(value)));
            }
            None => {
                let def = key_or_hint(a, level).map_err(bad)?;
                if !def.is_secret() {
                    return Err(bad(format!(
                        "give {} a value: {}=VALUE (or use `kurir settings unset` to inherit it)",
                        def.name, def.name
                    )));
                }
                let value = prompt_secret(def)?;
                changes.push((def.name.to_owned(), NewValue::Secret(value)));
            }
        }
    }
    if let Some(k) = secret_stdin {
        let def = secret_key(k)?;
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .context("reading the secret from standard input")?;
        let value = strip_one_newline(buf);
        changes.push((
            def.name.to_owned(),
            NewValue::Secret(check_secret(def, level, value)?),
        ));
    }
    for pair in secret_env {
        let (k, var) = pair
            .split_once('=')
            .ok_or_else(|| bad(format!("--secret-env takes KEY=VARIABLE, e.g. --secret-env client_secret=ENTRA_SECRET (got '{pair}')")))?;
        let def = secret_key(k)?;
        let value = std::env::var(var).map_err(|_| {
            bad(format!(
                "--secret-env {}: the environment variable {var} is not set",
                def.name
            ))
        })?;
        changes.push((
            def.name.to_owned(),
            NewValue::Secret(check_secret(def, level, value)?),
        ));
    }
    for pair in secret_file {
        let (k, path) = pair
            .split_once('=')
            .ok_or_else(|| bad(format!("--secret-file takes KEY=PATH, e.g. --secret-file certificate_key=key.pem (got '{pair}')")))?;
        let def = secret_key(k)?;
        let value = std::fs::read_to_string(path).map_err(|e| {
            bad(format!(
                "--secret-file {}: cannot read {path}: {e}",
                def.name
            ))
        })?;
        changes.push((
            def.name.to_owned(),
            NewValue::Secret(check_secret(def, level, value)?),
        ));
    }
    if changes.is_empty() {
        return Err(bad(
            "nothing to set: give KEY=VALUE pairs (see `kurir settings keys`), a bare secret KEY to be prompted, or --secret-stdin KEY",
        ));
    }
    Ok(changes
        .into_iter()
        .map(|(k, v)| Change::Set(k, v))
        .collect())
}

fn strip_one_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

fn check_secret(
    def: &kurir_settings::KeyDef,
    level: Level,
    value: String,
) -> anyhow::Result<SecretString> {
    parse_value(def, level, &value)?;
    Ok(SecretString::from(value))
}

fn prompt_secret(def: &'static kurir_settings::KeyDef) -> anyhow::Result<SecretString> {
    if !std::io::stdin().is_terminal() {
        return Err(bad(format!(
            "{} is a secret and there is no terminal to prompt on; pipe it with --secret-stdin {} or use --secret-env {}=VARIABLE",
            def.name, def.name, def.name
        )));
    }
    let value = rpassword::prompt_password(format!("{} ({}): ", def.label_sv, def.label_en))
        .context("reading the secret from the terminal")?;
    check_secret(def, Level::System, value)
}

pub fn check_exists(snap: &kurir_settings::SettingsSnapshot, scope: &Scope) -> anyhow::Result<()> {
    match scope {
        Scope::User(c) if !snap.users.contains_key(c) => Err(bad(format!(
            "there is no user {c}; add it with `kurir users add {c}` (users: {})",
            list_or_none(snap.users.keys())
        ))),
        Scope::Account(a) if !snap.accounts.contains_key(a) => Err(bad(format!(
            "there is no incoming-mail account '{a}'; add it with `kurir accounts add '{a}' --mailbox …` (accounts: {})",
            list_or_none(snap.accounts.keys())
        ))),
        _ => Ok(()),
    }
}

fn list_or_none<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() {
        "none yet".into()
    } else {
        v.join(", ")
    }
}
