//! Settings of every scope: checking and writing changes, adding and removing users and
//! accounts, listing them.

use std::collections::{BTreeMap, BTreeSet};

use kurir_settings::{
    Effective, KeyDef, Problem, Scope, SecretInfo, SettingsSnapshot, Severity, key_or_hint,
    normalize_account_name, normalize_user_code, parse_value,
};
use kurir_store::{Change, KurirStore, NewValue, StoreError};
use secrecy::SecretString;

use super::OpError;

/// The settings, after checking that the user or account of `scope` exists.
pub async fn snapshot_of(
    store: &dyn KurirStore,
    scope: &Scope,
) -> Result<SettingsSnapshot, OpError> {
    let snap = store.snapshot().await?;
    match scope {
        Scope::User(c) if !snap.users.contains_key(c) => {
            Err(StoreError::NoSuchUser(c.clone()).into())
        }
        Scope::Account(a) if !snap.accounts.contains_key(a) => {
            Err(StoreError::NoSuchAccount(a.clone()).into())
        }
        _ => Ok(snap),
    }
}

/// Checks and writes `edits` at `scope` in one transaction; returns the keys changed (none when
/// `edits` is empty: nothing is written).
pub async fn change_settings(
    store: &dyn KurirStore,
    scope: &Scope,
    edits: Vec<Edit>,
) -> Result<Vec<String>, OpError> {
    let snap = snapshot_of(store, scope).await?;
    let changes = checked(&snap, scope, edits)?;
    let keys = changes
        .iter()
        .map(|c| match c {
            Change::Set(k, _) | Change::Unset(k) => k.clone(),
        })
        .collect();
    if !changes.is_empty() {
        store.apply(scope, changes).await?;
    }
    Ok(keys)
}

/// What kind of subject to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    User,
    Account,
}

/// Adds a user or an account named `raw_name` (as typed) with its first settings, in one
/// transaction: a refused value adds nothing.
pub async fn add(
    store: &dyn KurirStore,
    subject: Subject,
    raw_name: &str,
    edits: Vec<Edit>,
) -> Result<Scope, OpError> {
    let scope = match subject {
        Subject::User => Scope::User(normalize_user_code(raw_name).map_err(OpError::BadName)?),
        Subject::Account => {
            Scope::Account(normalize_account_name(raw_name).map_err(OpError::BadName)?)
        }
    };
    let snap = store.snapshot().await?;
    let changes = checked(&snap, &scope, edits)?;
    match &scope {
        Scope::User(code) => store.add_user_with(code, changes).await?,
        Scope::Account(name) => store.add_account_with(name, changes).await?,
        Scope::System | Scope::Webshop => unreachable!("only users and accounts are added"),
    }
    Ok(scope)
}

/// Removes the user or account of `scope`.
pub async fn remove(store: &dyn KurirStore, scope: &Scope) -> Result<(), OpError> {
    match scope {
        Scope::User(code) => store.remove_user(code).await?,
        Scope::Account(name) => store.remove_account(name).await?,
        Scope::System | Scope::Webshop => unreachable!("system and webshop cannot be removed"),
    }
    Ok(())
}

/// A user or an account as the lists show it.
pub struct Listed {
    pub name: String,
    pub scope: Scope,
    pub effective: Effective,
    /// The keys set on the subject itself.
    pub overrides: Vec<String>,
    /// Validation errors (not warnings).
    pub errors: usize,
}

/// Every user or every account, by name.
pub fn list(snap: &SettingsSnapshot, subject: Subject) -> Vec<Listed> {
    let today = crate::today();
    let (layers, scope_of): (_, fn(String) -> Scope) = match subject {
        Subject::User => (&snap.users, Scope::User),
        Subject::Account => (&snap.accounts, Scope::Account),
    };
    layers
        .iter()
        .map(|(name, layer)| {
            let scope = scope_of(name.clone());
            Listed {
                name: name.clone(),
                effective: snap.resolve(&scope),
                overrides: layer.values.keys().cloned().collect(),
                errors: snap
                    .validate(&scope, today)
                    .iter()
                    .filter(|p| p.severity == Severity::Error)
                    .count(),
                scope,
            }
        })
        .collect()
}

/// `edits` as store changes, refused when a value is bad or would add a custom endpoint.
fn checked(
    snap: &SettingsSnapshot,
    scope: &Scope,
    edits: Vec<Edit>,
) -> Result<Vec<Change>, OpError> {
    let changes = to_changes(scope, edits).map_err(OpError::Refused)?;
    let added = added_custom_endpoints(snap, scope, &changes);
    if added.is_empty() {
        Ok(changes)
    } else {
        Err(OpError::CustomEndpoints(added))
    }
}

/// One requested change.
pub enum Edit {
    Set(String, String),
    Unset(String),
}

/// Why a server-only key (the switch `allow_custom_endpoints`) is refused here: the REST API and
/// the web UI are exactly what a stolen API key or admin login reaches, so they must not be able
/// to let secrets go to a host of their choosing (issue #13.1).
fn server_only_refusal(def: &KeyDef) -> String {
    format!(
        "{} can only be changed on the server itself, with the command line: kurir settings set {}=true (or =false); never through the REST API or the web UI",
        def.name, def.name
    )
}

/// Checks every edit; on failure returns the problem per key (the key as typed when unknown).
pub fn to_changes(
    scope: &Scope,
    edits: Vec<Edit>,
) -> Result<Vec<Change>, BTreeMap<String, String>> {
    let level = scope.level();
    let mut changes = Vec::new();
    let mut errors = BTreeMap::new();
    for e in edits {
        match e {
            Edit::Unset(k) => match key_or_hint(&k, level) {
                Ok(def) if def.server_only() => {
                    errors.insert(def.name.to_owned(), server_only_refusal(def));
                }
                Ok(def) => changes.push(Change::Unset(def.name.to_owned())),
                Err(msg) => {
                    errors.insert(k, msg);
                }
            },
            Edit::Set(k, raw) => match key_or_hint(&k, level) {
                Ok(def) if def.server_only() => {
                    errors.insert(def.name.to_owned(), server_only_refusal(def));
                }
                Ok(def) => match parse_value(def, level, &raw) {
                    Ok(v) if def.is_secret() => {
                        // The checked value is the raw one; never echoed back anywhere.
                        let _ = v;
                        changes.push(Change::Set(
                            def.name.to_owned(),
                            NewValue::Secret(SecretString::from(raw)),
                        ));
                    }
                    Ok(v) => changes.push(Change::Set(def.name.to_owned(), NewValue::Plain(v))),
                    Err(invalid) => {
                        errors.insert(def.name.to_owned(), invalid.problem);
                    }
                },
                Err(msg) => {
                    errors.insert(k, msg);
                }
            },
        }
    }
    if errors.is_empty() {
        Ok(changes)
    } else {
        Err(errors)
    }
}

/// The endpoint problems `changes` at `scope` would add (issue #13.1): with the server switch
/// off, a change that makes some exchange-online subject use an endpoint outside its selected
/// cloud (a custom `authority`, or `method=exchange-online` on a subject that inherits a custom
/// `smtp_host`) is refused before it is stored. Endpoints already refused before the change do
/// not block unrelated edits; they are shown as validation errors and never used anyway.
pub fn added_custom_endpoints(
    snap: &SettingsSnapshot,
    scope: &Scope,
    changes: &[Change],
) -> Vec<Problem> {
    if snap.custom_endpoints_allowed() {
        return Vec::new();
    }
    let before: BTreeSet<(&str, String)> = snap
        .refused_endpoints()
        .into_iter()
        .map(|(p, v)| (p.field, v))
        .collect();
    let mut after = snap.clone();
    let layer = match scope {
        Scope::System => &mut after.system,
        Scope::User(c) => after.users.entry(c.clone()).or_default(),
        Scope::Account(a) => after.accounts.entry(a.clone()).or_default(),
        Scope::Webshop => &mut after.webshop,
    };
    for c in changes {
        match c {
            Change::Set(k, NewValue::Plain(v)) => {
                layer.set_plain(k, v.clone());
            }
            Change::Set(k, NewValue::Secret(_)) => {
                layer.set_secret(k, SecretInfo::mask("", crate::today()));
            }
            Change::Unset(k) => {
                layer.values.remove(k);
            }
        }
    }
    let mut seen = BTreeSet::new();
    after
        .refused_endpoints()
        .into_iter()
        .filter(|(p, v)| !before.contains(&(p.field, v.clone())) && seen.insert(p.field))
        .map(|(p, _)| p)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kurir_settings::Method;

    #[test]
    fn one_bad_value_refuses_the_whole_edit() {
        let r = to_changes(
            &Scope::System,
            vec![
                Edit::Set("tenant_id".into(), "contoso.onmicrosoft.com".into()),
                Edit::Set("client_id".into(), "not-a-guid".into()),
            ],
        );
        let errs = r.err().expect("refused");
        assert!(errs.contains_key("client_id"), "{errs:?}");
        assert_eq!(errs.len(), 1);
    }

    #[test]
    fn the_server_switch_is_refused_here_in_both_directions() {
        for edit in [
            Edit::Set("allow_custom_endpoints".into(), "true".into()),
            Edit::Unset("allow_custom_endpoints".into()),
        ] {
            let errs = to_changes(&Scope::System, vec![edit])
                .err()
                .expect("refused");
            assert!(
                errs["allow_custom_endpoints"]
                    .contains("kurir settings set allow_custom_endpoints=true"),
                "{errs:?}"
            );
        }
    }

    #[test]
    fn a_custom_authority_is_an_added_problem_only_without_the_switch() {
        let mut snap = SettingsSnapshot::default();
        snap.system
            .set_plain("method", Method::ExchangeOnline.as_str());
        let edit = |s: &SettingsSnapshot, k: &str, v: &str| {
            let changes = to_changes(&Scope::System, vec![Edit::Set(k.into(), v.into())]).unwrap();
            added_custom_endpoints(s, &Scope::System, &changes)
        };
        let added = edit(&snap, "authority", "https://evil.example");
        assert_eq!(added.len(), 1, "{added:?}");
        assert_eq!(added[0].field, "authority");
        assert!(edit(&snap, "authority", "https://login.microsoftonline.com").is_empty());
        assert!(edit(&snap, "client_id", "3f2504e0-4f89-11d3-9a0c-0305e82c3301").is_empty());
        // A classic SMTP server is fine for method smtp ...
        let mut smtp = SettingsSnapshot::default();
        smtp.system.set_plain("method", "smtp");
        assert!(edit(&smtp, "smtp_host", "mail.example.com").is_empty());
        // ... but not once Exchange Online's XOAUTH2 tokens would go there.
        smtp.system.set_plain("smtp_host", "mail.example.com");
        assert_eq!(
            edit(&smtp, "method", Method::ExchangeOnline.as_str()).len(),
            1
        );
        snap.system.set_plain("allow_custom_endpoints", "true");
        assert!(edit(&snap, "authority", "https://127.0.0.1:8443").is_empty());
    }

    #[test]
    fn unknown_or_misplaced_keys_say_where_they_belong() {
        let errs = to_changes(&Scope::System, vec![Edit::Unset("mailbox".into())])
            .err()
            .expect("mailbox is an account setting");
        assert!(errs["mailbox"].contains("account"), "{errs:?}");
    }
}
