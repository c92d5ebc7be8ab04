//! Checking one typed value when the administrator writes it (first of the two stages: a single
//! field on its own; `validate` then looks at the effective settings as a whole).
//!
//! Values are refused here, at the keyboard, rather than when Entra rejects them weeks later at
//! 3 a.m.: a GUID with a typo, `common` as tenant, a secret's ID pasted instead of its Value.

use std::time::Duration;

use thiserror::Error;

use crate::keys::{KeyDef, Kind, WEBSHOP_METHODS};
use crate::scope::Level;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{key} ({label}): {problem}")]
pub struct InvalidValue {
    pub key: &'static str,
    pub label: &'static str,
    pub problem: String,
}

fn invalid(def: &KeyDef, problem: impl Into<String>) -> InvalidValue {
    InvalidValue {
        key: def.name,
        label: def.label_en,
        problem: problem.into(),
    }
}

/// Parses and normalises a raw value for `def` written at `level`. Secrets are checked too (the
/// caller encrypts the returned string); their content never appears in the error.
pub fn parse_value(def: &KeyDef, level: Level, raw: &str) -> Result<String, InvalidValue> {
    let value = if def.kind == Kind::Secret || def.kind == Kind::CertificatePem {
        raw.to_owned()
    } else {
        raw.trim().to_owned()
    };
    if value.trim().is_empty() {
        return Err(invalid(
            def,
            format!(
                "an empty value is not allowed; to go back to the inherited value use: kurir settings unset … {}",
                def.name
            ),
        ));
    }
    match def.kind {
        Kind::Text => Ok(value),
        Kind::Guid => parse_guid(&value).ok_or_else(|| {
            invalid(
                def,
                format!(
                    "'{value}' is not a GUID. Copy {} from the Overview page of the app registration in Microsoft Entra ID; it looks like 3f2504e0-4f89-11d3-9a0c-0305e82c3301",
                    def.label_en
                ),
            )
        }),
        Kind::Tenant => parse_tenant(&value).map_err(|p| invalid(def, p)),
        Kind::Email => parse_email(&value).map_err(|p| invalid(def, p)),
        Kind::Choice(choices) => {
            let mut v = value.to_ascii_lowercase().replace('_', "-");
            if choices == crate::keys::BOOLS {
                v = match v.as_str() {
                    "yes" | "on" | "1" | "ja" => "true".to_owned(),
                    "no" | "off" | "0" | "nej" => "false".to_owned(),
                    _ => v,
                };
            }
            let choices: &[&str] = if def.name == "method" && level == Level::Webshop {
                WEBSHOP_METHODS
            } else {
                choices
            };
            if choices.contains(&v.as_str()) {
                Ok(v)
            } else {
                Err(invalid(
                    def,
                    format!("'{value}' is not one of: {}", choices.join(", ")),
                ))
            }
        }
        Kind::Secret => check_secret(def, &value).map(|()| value),
        Kind::Date => expiry(&value)
            .map(|t| {
                if value.len() == 10 {
                    value.clone()
                } else {
                    format_instant(t)
                }
            })
            .ok_or_else(|| {
                invalid(
                    def,
                    format!("'{value}' is not a date; write it as YYYY-MM-DD (or as Entra's endDateTime, e.g. 2027-02-28T09:30:00Z)"),
                )
            }),
        Kind::Url => parse_url(&value).map_err(|p| invalid(def, p)),
        Kind::Host => {
            if value.contains("://") || value.contains('/') || value.contains(' ') {
                Err(invalid(
                    def,
                    format!("'{value}' is not a host name; give only the host, e.g. outlook.office365.com (the port is a separate setting)"),
                ))
            } else {
                Ok(value.to_ascii_lowercase())
            }
        }
        Kind::Port => match value.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p.to_string()),
            _ => Err(invalid(def, format!("'{value}' is not a port number (1–65535)"))),
        },
        Kind::Duration => parse_duration(&value)
            .map(format_duration)
            .map_err(|p| invalid(def, p)),
        Kind::Path => Ok(value),
        Kind::CertificatePem => {
            if value.contains("-----BEGIN CERTIFICATE-----") {
                Ok(value)
            } else if value.contains("PRIVATE KEY-----") {
                Err(invalid(def, "this is a private key, not a certificate: set the key with certificate_key (it is a secret) and the certificate here"))
            } else {
                Err(invalid(def, "not a PEM certificate (expected -----BEGIN CERTIFICATE-----); export the certificate as PEM (Base-64 encoded X.509)"))
            }
        }
        Kind::List => Ok(value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| if s == "*" { s.to_owned() } else { s.to_uppercase() })
            .collect::<Vec<_>>()
            .join(",")),
        Kind::AccountType => {
            let v = value.to_ascii_lowercase();
            let v = match v.as_str() {
                "monitor-till-monitor" | "monitor to monitor" | "monitor_to_monitor" => {
                    "monitor-to-monitor".to_owned()
                }
                _ => v,
            };
            if v.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_') {
                Ok(v)
            } else {
                Err(invalid(def, format!("'{value}' is not a type name: use monitor-to-monitor, supplier-invoices, general or your own name of letters, digits and '-'")))
            }
        }
    }
}

fn check_secret(def: &KeyDef, value: &str) -> Result<(), InvalidValue> {
    if def.name == "client_secret" && parse_guid(value.trim()).is_some() {
        // Entra shows a secret's "Secret ID" (a GUID) right beside its "Value"; the ID is the
        // classic wrong paste and Entra would answer AADSTS7000215 on every request.
        return Err(invalid(
            def,
            "this looks like the secret's ID (a GUID), not its Value. In Entra ID → App registrations → Certificates & secrets, copy the Value column (about 40 characters, shown only right after the secret is created); if it is hidden now, create a new secret",
        ));
    }
    if def.name == "certificate_key" && !value.contains("PRIVATE KEY-----") {
        return Err(invalid(
            def,
            "not a PEM private key (expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)",
        ));
    }
    if def.name == "exchange_password" && value != value.trim() {
        // Entra's username/password flow rejects passwords with leading or trailing spaces.
        return Err(invalid(
            def,
            "the password starts or ends with a space, which Entra's username/password flow does not support; check what was pasted",
        ));
    }
    Ok(())
}

/// Lower-case canonical GUID, or None.
pub fn parse_guid(s: &str) -> Option<String> {
    let s = s.trim().trim_start_matches('{').trim_end_matches('}');
    uuid::Uuid::try_parse(s)
        .ok()
        .filter(|_| s.len() == 36)
        .map(|u| u.hyphenated().to_string())
}

pub fn parse_tenant(value: &str) -> Result<String, String> {
    let lowered = value.to_ascii_lowercase();
    if let Some(g) = parse_guid(&lowered) {
        return Ok(g);
    }
    if matches!(lowered.as_str(), "common" | "organizations" | "consumers") {
        return Err(format!(
            "'{value}' is a multi-tenant alias, not a directory. Kurir signs in as one organisation's application, and Entra refuses client credentials and username/password on '{lowered}' (AADSTS9001023 / AADSTS90124). Copy Directory (tenant) ID from the app registration's Overview page (a GUID), or use a verified domain such as contoso.onmicrosoft.com"
        ));
    }
    let looks_like_domain = lowered.contains('.')
        && !lowered.starts_with('.')
        && !lowered.ends_with('.')
        && lowered
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if looks_like_domain {
        Ok(lowered)
    } else {
        Err(format!(
            "'{value}' is neither a GUID nor a domain. Copy Directory (tenant) ID from the Overview page of the app registration in Microsoft Entra ID (e.g. 72f988bf-86f1-41af-91ab-2d7cd011db47), or use a verified domain such as contoso.onmicrosoft.com"
        ))
    }
}

pub fn parse_email(value: &str) -> Result<String, String> {
    let (local, domain) = value.rsplit_once('@').ok_or_else(|| {
        format!("'{value}' is not an e-mail address (expected name@domain, e.g. anna@contoso.com)")
    })?;
    let ok = !local.is_empty()
        && !local.contains(char::is_whitespace)
        && domain.contains('.')
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if ok {
        Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
    } else {
        Err(format!(
            "'{value}' is not an e-mail address (expected name@domain, e.g. anna@contoso.com)"
        ))
    }
}

/// `https://` anywhere; `http://` only to loopback, because a token endpoint over plain HTTP on a
/// network would hand the client secret to anyone listening.
pub fn parse_url(value: &str) -> Result<String, String> {
    let url = url::Url::parse(value).map_err(|e| {
        format!("'{value}' is not a URL ({e}); write it like https://login.microsoftonline.com")
    })?;
    let host = url.host_str().unwrap_or_default();
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => {
            return Err(format!(
                "'{value}' uses plain http to a host that is not this machine; secrets and tokens would cross the network unencrypted. Use https:// (plain http is allowed only to 127.0.0.1, ::1 or localhost)"
            ));
        }
        other => {
            return Err(format!(
                "'{value}': scheme {other} is not supported; use https://"
            ));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "'{value}': give the base URL without ?query or #fragment"
        ));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{value}' is not a duration; write e.g. 30s, 5m, 1h or 90d"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => n,
        "m" | "min" => n * 60,
        "h" => n * 3600,
        "d" | "days" => n * 86_400,
        _ => {
            return Err(format!(
                "'{value}' is not a duration; write e.g. 30s, 5m, 1h or 90d"
            ));
        }
    };
    Ok(Duration::from_secs(secs))
}

pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s != 0 && s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s != 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s != 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// When a dated credential stops working: a date (`YYYY-MM-DD`, as the Entra admin center shows
/// it; read as the start of that day in UTC, the cautious reading) or an instant (RFC 3339, as
/// Graph's `endDateTime` gives it; what the set-up and rotation store, so a secret that lives
/// minutes is rotated by the minute). `None` when it is neither.
pub fn expiry(raw: &str) -> Option<time::OffsetDateTime> {
    let raw = raw.trim();
    if raw.len() == 10 {
        return time::Date::parse(
            raw,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .ok()
        .map(|d| d.midnight().assume_utc());
    }
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.to_offset(time::UtcOffset::UTC))
}

/// An instant as stored: RFC 3339 in UTC, whole seconds.
pub fn format_instant(t: time::OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::key;

    fn p(name: &str, level: Level, raw: &str) -> Result<String, InvalidValue> {
        parse_value(key(name).unwrap(), level, raw)
    }

    #[test]
    fn guid_is_normalised_and_typos_are_refused() {
        assert_eq!(
            p(
                "client_id",
                Level::System,
                " {3F2504E0-4F89-11D3-9A0C-0305E82C3301} "
            )
            .unwrap(),
            "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
        );
        let err = p(
            "client_id",
            Level::System,
            "3f2504e0-4f89-11d3-9a0c-0305e82c330",
        )
        .unwrap_err();
        assert!(err.to_string().contains("is not a GUID"), "{err}");
        assert!(err.to_string().contains("Overview page"), "{err}");
    }

    #[test]
    fn tenant_accepts_guid_and_domain_and_refuses_aliases() {
        assert_eq!(
            p("tenant_id", Level::User, "Contoso.onmicrosoft.com").unwrap(),
            "contoso.onmicrosoft.com"
        );
        for alias in ["common", "Organizations", "consumers"] {
            let err = p("tenant_id", Level::System, alias)
                .unwrap_err()
                .to_string();
            assert!(err.contains("multi-tenant alias"), "{err}");
            assert!(err.contains("AADSTS9001023"), "{err}");
        }
        let err = p("tenant_id", Level::System, "contoso")
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither a GUID nor a domain"), "{err}");
    }

    #[test]
    fn secret_id_pasted_as_client_secret_is_refused_without_echoing_it() {
        let id = "0a1b2c3d-1111-2222-3333-444455556666";
        let err = p("client_secret", Level::System, id)
            .unwrap_err()
            .to_string();
        assert!(err.contains("secret's ID"), "{err}");
        assert!(!err.contains(id), "the value must not be echoed: {err}");
        assert!(
            p(
                "client_secret",
                Level::System,
                "Xy8Q~abcdefghijklmnopqrstuvwxyz0123456789"
            )
            .is_ok()
        );
    }

    #[test]
    fn choices_dates_ports_durations_urls() {
        assert_eq!(
            p("method", Level::System, "Exchange-Online").unwrap(),
            "exchange-online"
        );
        assert!(p("method", Level::System, "according-to-user-settings").is_err());
        assert_eq!(
            p("method", Level::Webshop, "according-to-user-settings").unwrap(),
            "according-to-user-settings"
        );
        assert_eq!(
            p("auth_flow", Level::System, "username_password").unwrap(),
            "username-password"
        );
        assert!(
            p("auth_flow", Level::System, "password")
                .unwrap_err()
                .to_string()
                .contains("client-secret")
        );
        assert!(p("client_secret_expires", Level::System, "2027-02-30").is_err());
        assert_eq!(
            p("client_secret_expires", Level::System, "2027-02-28").unwrap(),
            "2027-02-28"
        );
        assert_eq!(
            p(
                "client_secret_expires",
                Level::System,
                "2027-02-28T10:30:00.1234567+01:00"
            )
            .unwrap(),
            "2027-02-28T09:30:00Z"
        );
        assert!(p("imap_port", Level::System, "0").is_err());
        assert!(p("imap_port", Level::System, "70000").is_err());
        assert_eq!(p("poll_interval", Level::Account, "120").unwrap(), "2m");
        assert_eq!(p("poll_interval", Level::Account, "90s").unwrap(), "90s");
        assert!(p("poll_interval", Level::Account, "soon").is_err());
        assert_eq!(
            p(
                "authority",
                Level::System,
                "https://login.microsoftonline.com/"
            )
            .unwrap(),
            "https://login.microsoftonline.com"
        );
        assert!(p("authority", Level::System, "http://127.0.0.1:8443").is_ok());
        let err = p("authority", Level::System, "http://login.example.com")
            .unwrap_err()
            .to_string();
        assert!(err.contains("plain http"), "{err}");
        assert!(p("imap_host", Level::System, "imaps://outlook.office365.com").is_err());
    }

    #[test]
    fn emails_types_and_lists() {
        assert_eq!(
            p("email", Level::User, "Anna@Contoso.COM").unwrap(),
            "Anna@contoso.com"
        );
        assert!(p("email", Level::User, "anna").is_err());
        assert!(p("mailbox", Level::Account, "a@b").is_err());
        assert_eq!(
            p("type", Level::Account, "Monitor-till-Monitor").unwrap(),
            "monitor-to-monitor"
        );
        assert_eq!(
            p("type", Level::Account, "edi-orders").unwrap(),
            "edi-orders"
        );
        assert!(p("type", Level::Account, "a b").is_err());
        assert_eq!(
            p("visible_to", Level::Account, "anna, ekonomi ,").unwrap(),
            "ANNA,EKONOMI"
        );
    }

    #[test]
    fn pem_fields_are_checked() {
        assert!(
            p(
                "certificate",
                Level::System,
                "-----BEGIN PRIVATE KEY-----\nx\n"
            )
            .unwrap_err()
            .to_string()
            .contains("private key")
        );
        assert!(
            p(
                "certificate_key",
                Level::System,
                "-----BEGIN CERTIFICATE-----"
            )
            .is_err()
        );
        assert!(
            p(
                "certificate_key",
                Level::System,
                "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n"
            )
            .is_ok()
        );
    }

    #[test]
    fn empty_values_point_to_unset() {
        let err = p("client_id", Level::System, "  ").unwrap_err().to_string();
        assert!(err.contains("unset"), "{err}");
    }
}
