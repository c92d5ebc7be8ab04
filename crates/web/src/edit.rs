//! Turning what an admin typed (a form, or a JSON body) into store changes, checking every value
//! before anything is written, so one bad value changes nothing — the same rule as
//! `kurir settings set`.

use std::collections::BTreeMap;

use kurir_settings::{Scope, key_or_hint, parse_value};
use kurir_store::{Change, NewValue};
use secrecy::SecretString;

/// One requested change.
pub enum Edit {
    Set(String, String),
    Unset(String),
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
                Ok(def) => changes.push(Change::Unset(def.name.to_owned())),
                Err(msg) => {
                    errors.insert(k, msg);
                }
            },
            Edit::Set(k, raw) => match key_or_hint(&k, level) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn unknown_or_misplaced_keys_say_where_they_belong() {
        let errs = to_changes(&Scope::System, vec![Edit::Unset("mailbox".into())])
            .err()
            .expect("mailbox is an account setting");
        assert!(errs["mailbox"].contains("account"), "{errs:?}");
    }
}
