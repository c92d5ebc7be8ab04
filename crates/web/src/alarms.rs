//! Alarms: what will stop mail soon or has already stopped it, shown on every page of the UI,
//! in the API (`/api/v1/alarms`) and as Prometheus gauges.
//!
//! A client secret in Entra ID lives at most two years and a certificate a few; when one runs
//! out, mail stops on that day with AADSTS7000222 and nobody notices until the ERP's users do.
//! So the alarms look ahead: 30 days before expiry a warning, after it an error. An account
//! whose mailbox has not been read successfully for a long while is an error too, and so is a
//! sending user with outgoing messages that failed (they wait for an administrator's Retry).

use std::collections::BTreeMap;

use kurir_settings::{Scope, SettingsSnapshot, StoredValue};
use kurir_store::messages::Health;
use kurir_store::{KurirStore, StoreError};
use serde::Serialize;

use crate::i18n::Lang;

/// Warn this many days before a secret or certificate expires.
pub const WARN_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmSeverity {
    Warning,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    ClientSecretExpiring,
    ClientSecretExpired,
    CertificateExpiring,
    CertificateExpired,
    CertificateUnreadable,
    NoRecentFetch,
    /// A sending user has outgoing messages in state `failed`.
    OutboxFailing,
}

#[derive(Debug, Clone, Serialize)]
pub struct Alarm {
    pub kind: AlarmKind,
    pub severity: AlarmSeverity,
    /// `system`, `user:ANNA`, `account:NAME`, `webshop`.
    pub subject: String,
    #[serde(skip)]
    pub scope: Scope,
    /// Days left (negative: days since), for expiry alarms.
    pub days_left: Option<i64>,
    pub message: String,
    pub fix: String,
}

/// Every layer that holds a value itself, so an inherited secret is reported once, where it is
/// set, not for each user who inherits it.
fn layers(snap: &SettingsSnapshot) -> Vec<(Scope, &kurir_settings::Layer)> {
    let mut v = vec![(Scope::System, &snap.system)];
    v.extend(snap.users.iter().map(|(c, l)| (Scope::User(c.clone()), l)));
    v.extend(
        snap.accounts
            .iter()
            .map(|(a, l)| (Scope::Account(a.clone()), l)),
    );
    v.push((Scope::Webshop, &snap.webshop));
    v
}

/// The day a PEM certificate stops being valid.
pub fn certificate_not_after(pem: &str) -> Option<time::Date> {
    certificate_not_after_instant(pem).map(|t| t.date())
}

/// The instant a PEM certificate stops being valid (rotation decides on it).
pub fn certificate_not_after_instant(pem: &str) -> Option<time::OffsetDateTime> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.trim().as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    time::OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).ok()
}

/// Computes the alarms of the settings and the intake health records.
pub fn compute(
    snap: &SettingsSnapshot,
    health: &[Health],
    now: time::OffsetDateTime,
    lang: Lang,
) -> Vec<Alarm> {
    let today = now.date();
    let mut out = Vec::new();
    for (scope, layer) in layers(snap) {
        let who = lang.subject(&scope);
        if let Some(StoredValue::Plain(raw)) = layer.get("client_secret_expires")
            && let Some(date) = kurir_settings::expiry(raw).map(|t| t.date())
        {
            let days = (date - today).whole_days();
            if days <= WARN_DAYS {
                let expired = days < 0;
                out.push(Alarm {
                    kind: if expired {
                        AlarmKind::ClientSecretExpired
                    } else {
                        AlarmKind::ClientSecretExpiring
                    },
                    severity: if expired {
                        AlarmSeverity::Error
                    } else {
                        AlarmSeverity::Warning
                    },
                    subject: scope.storage_key(),
                    scope: scope.clone(),
                    days_left: Some(days),
                    message: if expired {
                        format!(
                            "{who}: {} {date} ({} {}).",
                            lang.pick(
                                "Klienthemligheten gick ut",
                                "The client secret expired on"
                            ),
                            -days,
                            lang.pick("dagar sedan", "days ago")
                        )
                    } else {
                        format!(
                            "{who}: {} {date}, {} {days} {}.",
                            lang.pick(
                                "Klienthemligheten går ut",
                                "The client secret expires on"
                            ),
                            lang.pick("om", "in"),
                            lang.pick("dagar", "days")
                        )
                    },
                    fix: lang
                        .pick(
                            "Skapa en ny klienthemlighet i Entra ID (Appregistreringar → Certifikat och hemligheter), ange dess Värde i Klienthemlighet och dess slutdatum i Klienthemlighet upphör.",
                            "Create a new client secret in Entra ID (App registrations → Certificates & secrets), enter its Value in Client secret and its date in Client secret expires.",
                        )
                        .to_owned(),
                });
            }
        }
        if let Some(StoredValue::Plain(pem)) = layer.get("certificate") {
            match certificate_not_after(pem) {
                Some(date) => {
                    let days = (date - today).whole_days();
                    if days <= WARN_DAYS {
                        let expired = days < 0;
                        out.push(Alarm {
                            kind: if expired {
                                AlarmKind::CertificateExpired
                            } else {
                                AlarmKind::CertificateExpiring
                            },
                            severity: if expired {
                                AlarmSeverity::Error
                            } else {
                                AlarmSeverity::Warning
                            },
                            subject: scope.storage_key(),
                            scope: scope.clone(),
                            days_left: Some(days),
                            message: format!(
                                "{who}: {} {date}.",
                                if expired {
                                    lang.pick("Certifikatet gick ut", "The certificate expired on")
                                } else {
                                    lang.pick("Certifikatet går ut", "The certificate expires on")
                                }
                            ),
                            fix: lang
                                .pick(
                                    "Skapa ett nytt certifikat, ladda upp det under Certifikat och hemligheter i appregistreringen och ange det (och dess privata nyckel) här.",
                                    "Create a new certificate, upload it under Certificates & secrets in the app registration and enter it (and its private key) here.",
                                )
                                .to_owned(),
                        });
                    }
                }
                None => out.push(Alarm {
                    kind: AlarmKind::CertificateUnreadable,
                    severity: AlarmSeverity::Error,
                    subject: scope.storage_key(),
                    scope: scope.clone(),
                    days_left: None,
                    message: format!(
                        "{who}: {}",
                        lang.pick(
                            "Certifikatet kan inte läsas (inte ett PEM-certifikat).",
                            "The certificate cannot be read (not a PEM certificate)."
                        )
                    ),
                    fix: lang
                        .pick(
                            "Ange certifikatet i PEM-format, som börjar med -----BEGIN CERTIFICATE-----.",
                            "Enter the certificate in PEM format, starting with -----BEGIN CERTIFICATE-----.",
                        )
                        .to_owned(),
                }),
            }
        }
    }
    for h in health {
        let scope = Scope::Account(h.account.clone());
        if !snap.accounts.contains_key(&h.account) {
            continue;
        }
        let eff = snap.resolve(&scope);
        // Several missed polls in a row, but never less than half an hour: one slow poll or a
        // short Microsoft outage is not worth waking anyone for.
        let limit = eff
            .duration("poll_interval")
            .map(|d| (d.as_secs() as i64 * 5).max(1800))
            .unwrap_or(1800);
        let parse = |s: &Option<String>| {
            s.as_deref().and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
        };
        let last_ok = parse(&h.last_success);
        let last_try = parse(&h.last_attempt);
        let stale = match (last_ok, last_try) {
            (Some(ok), _) => (now - ok).whole_seconds() > limit,
            (None, Some(first)) => (now - first).whole_seconds() > limit || h.failures >= 3,
            (None, None) => false,
        };
        if stale {
            let since = h
                .last_success
                .clone()
                .unwrap_or_else(|| lang.texts().never.to_owned());
            out.push(Alarm {
                kind: AlarmKind::NoRecentFetch,
                severity: AlarmSeverity::Error,
                subject: scope.storage_key(),
                scope: scope.clone(),
                days_left: None,
                message: format!(
                    "{}: {} {since}. {}",
                    lang.subject(&scope),
                    lang.pick("Ingen lyckad hämtning sedan", "No successful fetch since"),
                    h.last_error.clone().unwrap_or_default()
                ),
                fix: lang
                    .pick(
                        "Kör Testa anslutning för kontot för att se vilket steg som misslyckas.",
                        "Run Test connection for the account to see which step fails.",
                    )
                    .to_owned(),
            });
        }
    }
    out
}

/// One alarm per sending user with failed outgoing messages, from
/// [`OutboxStore::outbox_counts_by_sender`] (`(user, state) → count`). A failed message is never
/// retried on its own, so it stays an alarm until someone retries or cancels it.
pub fn outbox_alarms(counts: &BTreeMap<(String, String), u64>, lang: Lang) -> Vec<Alarm> {
    counts
        .iter()
        .filter(|((_, state), n)| state == "failed" && **n > 0)
        .map(|((user, _), n)| {
            let scope = Scope::User(user.clone());
            Alarm {
                kind: AlarmKind::OutboxFailing,
                severity: AlarmSeverity::Error,
                subject: scope.storage_key(),
                days_left: None,
                message: format!(
                    "{}: {n} {}",
                    lang.subject(&scope),
                    if *n == 1 {
                        lang.pick(
                            "utgående meddelande misslyckades.",
                            "outgoing message failed.",
                        )
                    } else {
                        lang.pick(
                            "utgående meddelanden misslyckades.",
                            "outgoing messages failed.",
                        )
                    }
                ),
                fix: lang
                    .pick(
                        "Öppna Utkorgen och läs felet vid meddelandet, rätta användarens inställningar (Testa anslutning visar vilket steg som misslyckas) och klicka sedan Försök igen.",
                        "Open the Outbox and read the error beside the message, correct the user's settings (Test connection shows which step fails), then click Retry.",
                    )
                    .to_owned(),
                scope,
            }
        })
        .collect()
}

/// Every current alarm: settings, intake health and the outbox, read from the store.
pub async fn current(
    store: &dyn KurirStore,
    now: time::OffsetDateTime,
    lang: Lang,
) -> Result<(SettingsSnapshot, Vec<Alarm>), StoreError> {
    let snap = store.snapshot().await?;
    let health = store.health(None).await?;
    let mut out = compute(&snap, &health, now, lang);
    out.extend(outbox_alarms(&store.outbox_counts_by_sender().await?, lang));
    Ok((snap, out))
}

/// Where an alarm is fixed in the web UI.
pub fn href(alarm: &Alarm) -> Option<String> {
    match (&alarm.kind, &alarm.scope) {
        (AlarmKind::OutboxFailing, Scope::User(u)) => Some(format!(
            "/outbox?state=failed&user={}",
            url::form_urlencoded::byte_serialize(u.as_bytes()).collect::<String>()
        )),
        _ => None,
    }
}

/// Sets the alarm gauges (called when `/metrics` is scraped, so they are always current).
pub fn export_metrics(snap: &SettingsSnapshot, alarms: &[Alarm], today: time::Date) {
    use crate::metrics as m;
    for (scope, layer) in layers(snap) {
        let subject = scope.storage_key();
        if let Some(StoredValue::Plain(raw)) = layer.get("client_secret_expires")
            && let Some(date) = kurir_settings::expiry(raw).map(|t| t.date())
        {
            metrics::gauge!(m::SECRET_DAYS_LEFT, "subject" => subject.clone())
                .set((date - today).whole_days() as f64);
        }
        if let Some(StoredValue::Plain(pem)) = layer.get("certificate")
            && let Some(date) = certificate_not_after(pem)
        {
            metrics::gauge!(m::CERTIFICATE_DAYS_LEFT, "subject" => subject.clone())
                .set((date - today).whole_days() as f64);
        }
    }
    for kind in [
        AlarmKind::ClientSecretExpiring,
        AlarmKind::ClientSecretExpired,
        AlarmKind::CertificateExpiring,
        AlarmKind::CertificateExpired,
        AlarmKind::CertificateUnreadable,
        AlarmKind::NoRecentFetch,
        AlarmKind::OutboxFailing,
    ] {
        let n = alarms.iter().filter(|a| a.kind == kind).count();
        let name = serde_json::to_value(kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        metrics::gauge!(m::ALARMS, "kind" => name).set(n as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap_with(expires: &str) -> SettingsSnapshot {
        let mut s = SettingsSnapshot::default();
        s.system.set_plain("client_secret_expires", expires);
        s
    }

    #[test]
    fn secret_expiry_warns_30_days_ahead_and_errors_after() {
        let now = time::macros::datetime!(2026-06-01 12:00 UTC);
        assert!(compute(&snap_with("2026-07-15"), &[], now, Lang::En).is_empty());
        let a = compute(&snap_with("2026-06-20"), &[], now, Lang::En);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].kind, AlarmKind::ClientSecretExpiring);
        assert_eq!(a[0].days_left, Some(19));
        assert!(a[0].message.contains("in 19 days"), "{}", a[0].message);
        let a = compute(&snap_with("2026-05-01"), &[], now, Lang::Sv);
        assert_eq!(a[0].kind, AlarmKind::ClientSecretExpired);
        assert_eq!(a[0].severity, AlarmSeverity::Error);
        assert!(a[0].message.contains("gick ut"), "{}", a[0].message);
    }

    #[test]
    fn certificate_not_after_is_read_from_the_pem() {
        let mut params = rcgen::CertificateParams::new(vec!["kurir.test".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2026, 6, 10);
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        assert_eq!(
            certificate_not_after(&pem),
            Some(time::macros::date!(2026 - 06 - 10))
        );
        let mut s = SettingsSnapshot::default();
        s.users.insert("ANNA".into(), Default::default());
        s.users
            .get_mut("ANNA")
            .unwrap()
            .set_plain("certificate", pem);
        let a = compute(
            &s,
            &[],
            time::macros::datetime!(2026-06-01 0:00 UTC),
            Lang::En,
        );
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].kind, AlarmKind::CertificateExpiring);
        assert_eq!(a[0].subject, "user:ANNA");
    }

    #[test]
    fn failed_outgoing_messages_are_an_alarm_per_sender() {
        let mut counts = BTreeMap::new();
        counts.insert(("ANNA".to_owned(), "failed".to_owned()), 2);
        counts.insert(("ANNA".to_owned(), "sent".to_owned()), 7);
        counts.insert(("WEBSHOP".to_owned(), "queued".to_owned()), 1);
        counts.insert(("WEBSHOP".to_owned(), "sent".to_owned()), 3);
        let a = outbox_alarms(&counts, Lang::En);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].kind, AlarmKind::OutboxFailing);
        assert_eq!(a[0].severity, AlarmSeverity::Error);
        assert_eq!(a[0].subject, "user:ANNA");
        assert_eq!(a[0].message, "User ANNA: 2 outgoing messages failed.");
        assert_eq!(
            href(&a[0]).as_deref(),
            Some("/outbox?state=failed&user=ANNA")
        );
        let sv = outbox_alarms(&counts, Lang::Sv);
        assert!(sv[0].message.contains("misslyckades"), "{}", sv[0].message);
        assert!(sv[0].fix.contains("Försök igen"), "{}", sv[0].fix);
        counts.remove(&("ANNA".to_owned(), "failed".to_owned()));
        assert!(outbox_alarms(&counts, Lang::En).is_empty());
        let json = serde_json::to_value(&a[0]).unwrap();
        assert_eq!(json["kind"], "outbox_failing");
    }

    #[test]
    fn an_account_not_read_for_long_is_an_alarm() {
        let mut s = SettingsSnapshot::default();
        s.accounts.insert("M2M".into(), Default::default());
        let h = Health {
            account: "M2M".into(),
            last_attempt: Some("2026-06-01T11:59:00Z".into()),
            last_success: Some("2026-06-01T10:00:00Z".into()),
            last_error: Some("AADSTS7000222".into()),
            failures: 20,
            ..Default::default()
        };
        let now = time::macros::datetime!(2026-06-01 12:00 UTC);
        let a = compute(&s, std::slice::from_ref(&h), now, Lang::En);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].kind, AlarmKind::NoRecentFetch);
        let fresh = Health {
            last_success: Some("2026-06-01T11:59:00Z".into()),
            ..h
        };
        assert!(compute(&s, &[fresh], now, Lang::En).is_empty());
    }
}
