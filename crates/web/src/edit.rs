//! Turning what an admin typed (a form, or a JSON body) into store changes, checking every value
//! before anything is written, so one bad value changes nothing — the same rule as
//! `kurir settings set`.

use std::collections::{BTreeMap, BTreeSet};

use kurir_settings::{
    KeyDef, Problem, Scope, SecretInfo, SettingsSnapshot, key_or_hint, parse_value,
};
use kurir_store::{Change, NewValue};
use secrecy::SecretString;

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
