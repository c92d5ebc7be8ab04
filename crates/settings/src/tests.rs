//! Resolution of every field at every level, and every validation message.

use time::macros::date;

use crate::*;

const TODAY: time::Date = date!(2026 - 11 - 24);
const CLIENT: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const OTHER_TENANT: &str = "99999999-8888-7777-6666-555555555555";

fn secret(tail: &str) -> SecretInfo {
    SecretInfo::mask(&format!("xxxxxxxxxxxxxxxx{tail}"), TODAY)
}

/// A valid sample value for every key, distinct per level so the test can tell them apart.
fn sample(def: &KeyDef, level: Level) -> StoredValue {
    let tag = keys::level_name(level);
    let plain = |s: String| StoredValue::Plain(s);
    match def.kind {
        Kind::Secret => StoredValue::Secret(secret(&tag[..4])),
        Kind::Guid => plain(match level {
            Level::System => CLIENT.into(),
            Level::User => "00000000-0000-0000-0000-000000000001".into(),
            Level::Account => "00000000-0000-0000-0000-000000000002".into(),
            Level::Webshop => "00000000-0000-0000-0000-000000000003".into(),
        }),
        Kind::Choice(choices) => plain(
            choices[match level {
                Level::System => 0,
                Level::User => 1,
                Level::Account => 2 % choices.len(),
                Level::Webshop => 1,
            }]
            .into(),
        ),
        _ => plain(format!("{}-{tag}", def.name)),
    }
}

fn snapshot_with_users() -> SettingsSnapshot {
    let mut s = SettingsSnapshot::default();
    s.users.insert("ANNA".into(), Layer::default());
    s.users.insert("OLLE".into(), Layer::default());
    s.users.insert(WEBSHOP_USER.into(), Layer::default());
    s.accounts
        .insert("Monitor-to-Monitor".into(), Layer::default());
    s
}

#[test]
fn every_field_resolves_from_every_level_it_may_be_set_at() {
    let anna = Scope::User("ANNA".into());
    let olle = Scope::User("OLLE".into());
    let account = Scope::Account("Monitor-to-Monitor".into());
    let mut checked = 0;
    for def in KEYS {
        // Set at the system only: every subject that shows the key inherits it.
        if def.allowed_at(Level::System) {
            let mut s = snapshot_with_users();
            s.system
                .values
                .insert(def.name.into(), sample(def, Level::System));
            for subject in [Scope::System, anna.clone(), account.clone(), Scope::Webshop] {
                let eff = s.resolve(&subject);
                if let Some(f) = eff.field(def.name) {
                    assert_eq!(f.source, Source::System, "{} at {subject}", def.name);
                    assert_eq!(
                        f.value,
                        Some(sample(def, Level::System)),
                        "{} at {subject}",
                        def.name
                    );
                    checked += 1;
                }
            }
        }
        // Set at a user: that user sees it, another user and accounts do not.
        if def.allowed_at(Level::User) {
            let mut s = snapshot_with_users();
            s.system
                .values
                .insert(def.name.into(), sample(def, Level::System));
            s.users
                .get_mut("ANNA")
                .unwrap()
                .values
                .insert(def.name.into(), sample(def, Level::User));
            let f = s.resolve(&anna).field(def.name).cloned().unwrap();
            assert_eq!(
                (f.source, f.value),
                (Source::User, Some(sample(def, Level::User))),
                "{}",
                def.name
            );
            assert_eq!(f.from, Some(anna.clone()));
            if let Some(f) = s.resolve(&olle).field(def.name) {
                assert_ne!(
                    f.source,
                    Source::User,
                    "{} leaked from ANNA to OLLE",
                    def.name
                );
            }
            if let Some(f) = s.resolve(&account).field(def.name) {
                assert_ne!(
                    f.source,
                    Source::User,
                    "{} leaked from a user to an account",
                    def.name
                );
            }
            checked += 1;
        }
        // Set on the account: the account sees it, users do not.
        if def.allowed_at(Level::Account) {
            let mut s = snapshot_with_users();
            s.accounts
                .get_mut("Monitor-to-Monitor")
                .unwrap()
                .values
                .insert(def.name.into(), sample(def, Level::Account));
            let f = s.resolve(&account).field(def.name).cloned().unwrap();
            assert_eq!(
                (f.source, f.value),
                (Source::Account, Some(sample(def, Level::Account))),
                "{}",
                def.name
            );
            if let Some(f) = s.resolve(&anna).field(def.name) {
                assert_ne!(f.source, Source::Account, "{}", def.name);
            }
            checked += 1;
        }
        // Webshop according to user settings: user WEBSHOP's value; with a method of its own:
        // the webshop's value.
        if def.allowed_at(Level::Webshop) && def.name != "method" {
            let mut s = snapshot_with_users();
            s.users
                .get_mut(WEBSHOP_USER)
                .unwrap()
                .values
                .insert(def.name.into(), sample(def, Level::User));
            s.webshop
                .values
                .insert(def.name.into(), sample(def, Level::Webshop));
            let f = s.resolve(&Scope::Webshop).field(def.name).cloned().unwrap();
            assert_eq!(
                (f.source, f.value),
                (Source::User, Some(sample(def, Level::User))),
                "{}",
                def.name
            );
            s.webshop.set_plain("method", "exchange-online");
            let f = s.resolve(&Scope::Webshop).field(def.name).cloned().unwrap();
            assert_eq!(
                (f.source, f.value),
                (Source::Webshop, Some(sample(def, Level::Webshop))),
                "{}",
                def.name
            );
            checked += 1;
        }
    }
    assert!(checked > 80, "only {checked} combinations checked");
}

#[test]
fn defaults_follow_the_cloud_and_method() {
    let mut s = snapshot_with_users();
    let eff = s.resolve(&Scope::System);
    for (k, v) in [
        ("method", "none"),
        ("auth_flow", "client-secret"),
        ("authority", "https://login.microsoftonline.com"),
        ("graph_endpoint", "https://graph.microsoft.com"),
        ("imap_host", "outlook.office365.com"),
        ("smtp_host", "smtp.office365.com"),
        ("smtp_port", "587"),
    ] {
        assert_eq!(eff.get(k), Some(v), "{k}");
        assert_eq!(eff.field(k).unwrap().source, Source::Default);
    }
    assert_eq!(eff.field("client_id").unwrap().value, None);
    s.system.set_plain("cloud", "usgov");
    assert_eq!(
        s.resolve(&Scope::System).get("authority"),
        Some("https://login.microsoftonline.us")
    );
    s.users.get_mut("ANNA").unwrap().set_plain("cloud", "china");
    assert_eq!(
        s.resolve(&Scope::User("ANNA".into())).get("graph_endpoint"),
        Some("https://microsoftgraph.chinacloudapi.cn")
    );
    s.system.set_plain("method", "smtp");
    assert_eq!(
        s.resolve(&Scope::System).get("smtp_host"),
        None,
        "no guessed host for a classic server"
    );
    let acc = s.resolve(&Scope::Account("Monitor-to-Monitor".into()));
    assert_eq!(acc.get("protocol"), Some("graph"));
    assert_eq!(acc.get("processed_folder"), Some("Processed"));
    assert_eq!(acc.get("poll_interval"), Some("1m"));
}

#[test]
fn user_without_email_sends_as_default_sender() {
    let mut s = snapshot_with_users();
    s.system.set_plain("default_sender", "erp@contoso.com");
    let f = s
        .resolve(&Scope::User("ANNA".into()))
        .field("email")
        .cloned()
        .unwrap();
    assert_eq!(f.source, Source::System);
    assert_eq!(f.value.unwrap().plain(), Some("erp@contoso.com"));
}

#[test]
fn webshop_json_shows_method_and_user() {
    let s = snapshot_with_users();
    let json = s.resolve(&Scope::Webshop).to_json();
    assert_eq!(
        json["webshop_method"]["value"],
        "according-to-user-settings"
    );
    assert_eq!(json["sends_as"]["value"], "WEBSHOP");
    assert_eq!(json["method"]["source"], "default");
}

#[test]
fn secrets_are_masked_in_json() {
    let mut s = snapshot_with_users();
    s.system.set_secret(
        "client_secret",
        SecretInfo::mask("Abc8Q~verysecretvalue1234cdef", TODAY),
    );
    let json = s.resolve(&Scope::System).to_json();
    assert_eq!(json["client_secret"]["value"], "••••cdef");
    assert_eq!(json["client_secret"]["set_on"], "2026-11-24");
    assert!(!json.to_string().contains("verysecret"));
    assert_eq!(SecretInfo::mask("short", TODAY).masked, "••••");
}

/// The seed's whole scenario, valid: no problems at all.
fn seed_scenario() -> SettingsSnapshot {
    let mut s = snapshot_with_users();
    s.system
        .set_plain("method", "exchange-online")
        .set_plain("client_id", CLIENT)
        .set_plain("tenant_id", TENANT)
        .set_plain("auth_flow", "client-secret")
        .set_secret("client_secret", secret("cdef"))
        .set_plain("client_secret_expires", "2027-11-01")
        .set_plain("default_sender", "erp@contoso.com");
    s.users
        .get_mut("ANNA")
        .unwrap()
        .set_plain("tenant_id", OTHER_TENANT)
        .set_plain("email", "anna@contoso.com");
    s.users
        .get_mut(WEBSHOP_USER)
        .unwrap()
        .set_plain("auth_flow", "username-password")
        .set_plain("exchange_username", "webshop@contoso.com")
        .set_secret("exchange_password", secret("pass"))
        .set_plain("email", "webshop@contoso.com");
    s.accounts
        .get_mut("Monitor-to-Monitor")
        .unwrap()
        .set_plain("type", "monitor-to-monitor")
        .set_plain("mailbox", "m2m@contoso.com");
    s.webshop.set_plain("method", ACCORDING_TO_USER_SETTINGS);
    s
}

#[test]
fn the_seed_scenario_is_valid_and_resolves_as_the_seed_says() {
    let s = seed_scenario();
    assert_eq!(s.validate_all(TODAY), vec![]);
    let anna = s.resolve(&Scope::User("ANNA".into()));
    assert_eq!(
        (
            anna.get("tenant_id"),
            anna.field("tenant_id").unwrap().source
        ),
        (Some(OTHER_TENANT), Source::User)
    );
    assert_eq!(anna.field("client_id").unwrap().source, Source::System);
    let acc = s.resolve(&Scope::Account("Monitor-to-Monitor".into()));
    assert_eq!(
        (acc.get("tenant_id"), acc.field("tenant_id").unwrap().source),
        (Some(TENANT), Source::System)
    );
    assert_eq!(acc.field("client_secret").unwrap().source, Source::System);
    let shop = s.resolve(&Scope::Webshop);
    assert_eq!(shop.get("auth_flow"), Some("username-password"));
    assert_eq!(
        shop.field("exchange_username").unwrap().source,
        Source::User
    );
    assert_eq!(shop.webshop_method.as_ref().unwrap().1, Source::Webshop);
}

fn messages(s: &SettingsSnapshot, scope: &Scope) -> Vec<String> {
    s.validate(scope, TODAY)
        .iter()
        .map(|p| p.to_string())
        .collect()
}

fn assert_one(s: &SettingsSnapshot, scope: &Scope, field: &str, needle: &str, fix: &str) {
    let problems = s.validate(scope, TODAY);
    let p = problems
        .iter()
        .find(|p| p.field == field)
        .unwrap_or_else(|| panic!("no problem for {field} at {scope}: {problems:?}"));
    let text = p.to_string();
    assert!(text.contains(needle), "{text}");
    assert!(p.fix.contains(fix), "{}", p.fix);
}

#[test]
fn every_validation_message() {
    let system = Scope::System;
    let anna = Scope::User("ANNA".into());
    let webshop_user = Scope::User(WEBSHOP_USER.into());
    let acc = Scope::Account("Monitor-to-Monitor".into());

    // Missing client id / tenant id: named, fixed in the system settings.
    let mut s = seed_scenario();
    s.system.values.remove("client_id");
    assert_one(
        &s,
        &anna,
        "client_id",
        "Exchange Online: user ANNA has no Application (client) ID (client_id).",
        "kurir settings set client_id=",
    );
    assert_eq!(s.validate(&anna, TODAY)[0].fix_at, Scope::System);
    let mut s = seed_scenario();
    s.system.values.remove("tenant_id");
    assert_one(
        &s,
        &acc,
        "tenant_id",
        "incoming-mail account Monitor-to-Monitor has no Directory (tenant) ID",
        "kurir settings set tenant_id=",
    );
    assert!(messages(&s, &anna).is_empty(), "ANNA has her own tenant");
    // validate_all reports an inherited system problem once.
    assert_eq!(
        s.validate_all(TODAY)
            .iter()
            .filter(|p| p.field == "tenant_id")
            .count(),
        1
    );

    // Client secret flow.
    let mut s = seed_scenario();
    s.system.values.remove("client_secret");
    assert_one(
        &s,
        &system,
        "client_secret",
        "client-secret flow: system settings has no Client secret (client_secret).",
        "kurir settings set client_secret   (you are prompted",
    );
    let mut s = seed_scenario();
    s.system.set_plain("client_secret_expires", "2026-11-01");
    assert_one(
        &s,
        &system,
        "client_secret_expires",
        "error: system settings: the Client secret expired on 2026-11-01; Entra answers AADSTS7000222",
        "Certificates & secrets",
    );
    s.system.set_plain("client_secret_expires", "2026-12-10");
    assert_one(
        &s,
        &system,
        "client_secret_expires",
        "warning: system settings: the Client secret expires on 2026-12-10, in 16 days.",
        "new secret",
    );

    // Username/password flow, the issue's own example.
    let mut s = seed_scenario();
    s.users
        .get_mut(WEBSHOP_USER)
        .unwrap()
        .values
        .remove("exchange_username");
    assert_one(
        &s,
        &webshop_user,
        "exchange_username",
        "username-password flow: user WEBSHOP has no Username (Exchange) (exchange_username).",
        "kurir settings set --user WEBSHOP exchange_username=",
    );
    assert_one(
        &s,
        &Scope::Webshop,
        "exchange_username",
        "user WEBSHOP (the webshop sends as WEBSHOP) has no Username (Exchange)",
        "--user WEBSHOP",
    );
    s.users
        .get_mut(WEBSHOP_USER)
        .unwrap()
        .values
        .remove("exchange_password");
    assert_one(
        &s,
        &webshop_user,
        "exchange_password",
        "user WEBSHOP has no Password (Exchange) (exchange_password).",
        "--user WEBSHOP exchange_password",
    );

    // Certificate flow.
    let mut s = seed_scenario();
    s.users
        .get_mut("ANNA")
        .unwrap()
        .set_plain("auth_flow", "certificate");
    assert_one(
        &s,
        &anna,
        "certificate",
        "certificate flow: user ANNA has no Certificate (certificate).",
        "kurir settings set certificate=",
    );
    assert_one(
        &s,
        &anna,
        "certificate_key",
        "user ANNA has no Certificate private key",
        "certificate_key",
    );

    // Sender address.
    let mut s = seed_scenario();
    s.system.values.remove("default_sender");
    s.users.get_mut("ANNA").unwrap().values.remove("email");
    assert_one(
        &s,
        &anna,
        "email",
        "user ANNA has no E-mail address (email)",
        "kurir settings set --user ANNA email=",
    );

    // Method none / smtp.
    let mut s = seed_scenario();
    s.users.get_mut("ANNA").unwrap().set_plain("method", "none");
    assert_one(
        &s,
        &anna,
        "method",
        "warning: user ANNA has Method for e-mail (method) none",
        "--user ANNA method=exchange-online",
    );
    s.accounts
        .get_mut("Monitor-to-Monitor")
        .unwrap()
        .set_plain("method", "none");
    assert_one(
        &s,
        &acc,
        "method",
        "error: incoming-mail account Monitor-to-Monitor has Method for e-mail (method) none",
        "--account Monitor-to-Monitor method=exchange-online",
    );
    s.accounts
        .get_mut("Monitor-to-Monitor")
        .unwrap()
        .set_plain("method", "smtp");
    assert_one(
        &s,
        &acc,
        "method",
        "method smtp only sends mail",
        "method=exchange-online",
    );
    let mut s = seed_scenario();
    s.system.set_plain("method", "smtp");
    assert_one(
        &s,
        &system,
        "smtp_host",
        "method smtp: system settings has no SMTP server (smtp_host).",
        "smtp_host=",
    );
    s.system
        .set_plain("smtp_host", "mail.contoso.com")
        .set_plain("smtp_username", "erp")
        .set_plain("smtp_tls", "none");
    assert_one(
        &s,
        &system,
        "smtp_password",
        "has no SMTP password (smtp_password)",
        "smtp_password",
    );
    assert_one(
        &s,
        &system,
        "smtp_tls",
        "crosses the network in clear text",
        "smtp_tls=starttls",
    );
    s.system.values.remove("smtp_username");
    s.system.set_secret("smtp_password", secret("smtp"));
    assert_one(
        &s,
        &system,
        "smtp_username",
        "an SMTP password is set but no SMTP username",
        "smtp_username=",
    );

    // Account rules.
    let mut s = seed_scenario();
    let a = s.accounts.get_mut("Monitor-to-Monitor").unwrap();
    a.values.remove("mailbox");
    a.set_plain("processed_folder", "inbox")
        .set_plain("quarantine_folder", "INBOX")
        .set_plain("poll_interval", "5s")
        .set_plain("visible_to", "ANNA,EKONOMI");
    assert_one(
        &s,
        &acc,
        "mailbox",
        "incoming mail: incoming-mail account Monitor-to-Monitor has no Mailbox (mailbox).",
        "--account Monitor-to-Monitor mailbox=",
    );
    assert_one(
        &s,
        &acc,
        "processed_folder",
        "Processed folder and Source folder are both 'inbox'",
        "processed_folder=Processed",
    );
    assert_one(
        &s,
        &acc,
        "quarantine_folder",
        "Quarantine folder and Source folder are both 'inbox'",
        "quarantine_folder=Quarantine",
    );
    assert_one(
        &s,
        &acc,
        "poll_interval",
        "a Poll interval of 5s is too short",
        "poll_interval=1m",
    );
    assert_one(
        &s,
        &acc,
        "visible_to",
        "Visible to names EKONOMI, which is not a Kurir user",
        "visible_to=",
    );
    s.accounts
        .get_mut("Monitor-to-Monitor")
        .unwrap()
        .set_plain("poll_interval", "48h");
    assert_one(&s, &acc, "poll_interval", "warning", "poll_interval=5m");
    s.accounts
        .get_mut("Monitor-to-Monitor")
        .unwrap()
        .set_plain("protocol", "pop3");
    assert!(
        !messages(&s, &acc)
            .iter()
            .any(|m| m.contains("Processed folder")),
        "POP3 has no folders"
    );

    // Webshop without user WEBSHOP.
    let mut s = seed_scenario();
    s.users.remove(WEBSHOP_USER);
    assert_one(
        &s,
        &Scope::Webshop,
        "method",
        "the webshop's method is according to user settings, so it sends as user WEBSHOP, but there is no user WEBSHOP.",
        "kurir users add WEBSHOP",
    );

    // CA file that does not exist.
    let mut s = seed_scenario();
    s.system.set_plain("ca_file", "/nonexistent/ca.pem");
    assert_one(
        &s,
        &system,
        "ca_file",
        "/nonexistent/ca.pem does not exist",
        "ca_file=",
    );
}

/// XOAUTH2 sends a bearer token: over SMTP without TLS anyone on the path could send mail as
/// the mailbox with it. Refused (an error, not a warning), for a local server too.
#[test]
fn smtp_tls_none_is_refused_for_exchange_online() {
    let anna = Scope::User("ANNA".into());
    for host in ["smtp.office365.com", "localhost", "127.0.0.1"] {
        let mut s = seed_scenario();
        s.system
            .set_plain("smtp_host", host)
            .set_plain("smtp_tls", "none");
        for scope in [&Scope::System, &anna] {
            assert_one(
                &s,
                scope,
                "smtp_tls",
                "XOAUTH2 access token would cross the network in clear text",
                "kurir settings set smtp_tls=starttls",
            );
            let p = s
                .validate(scope, TODAY)
                .into_iter()
                .find(|p| p.field == "smtp_tls")
                .unwrap();
            assert_eq!(p.severity, Severity::Error);
            assert_eq!(p.fix_at, Scope::System);
            assert!(p.message_sv.contains("okrypterad"), "{}", p.message_sv);
        }
    }
    // Set at the user only, it is fixed at the user.
    let mut s = seed_scenario();
    s.users
        .get_mut("ANNA")
        .unwrap()
        .set_plain("smtp_tls", "none");
    let p = s
        .validate(&anna, TODAY)
        .into_iter()
        .find(|p| p.field == "smtp_tls")
        .expect("refused at the user");
    assert_eq!(p.fix_at, anna);
    assert!(p.fix.contains("--user ANNA"), "{}", p.fix);
    // STARTTLS and implicit TLS are fine; method smtp keeps its own (warning) rule.
    for tls in ["starttls", "tls"] {
        let mut s = seed_scenario();
        s.system.set_plain("smtp_tls", tls);
        assert!(
            s.validate(&anna, TODAY)
                .iter()
                .all(|p| p.field != "smtp_tls"),
            "{tls}"
        );
    }
}

#[test]
fn every_key_is_explained_in_swedish_and_english() {
    for k in KEYS {
        assert!(
            !k.label_sv.is_empty() && !k.label_en.is_empty(),
            "{}",
            k.name
        );
        assert!(k.help.len() > 10 && k.help_sv.len() > 10, "{}", k.name);
        assert_ne!(k.help, k.help_sv, "{} has no Swedish help", k.name);
    }
}

#[test]
fn validation_speaks_swedish_too() {
    let mut s = seed_scenario();
    s.users
        .get_mut(WEBSHOP_USER)
        .unwrap()
        .values
        .remove("exchange_username");
    s.system.set_plain("client_secret_expires", "2026-12-10");
    let all = s.validate_all(TODAY);
    let p = all.iter().find(|p| p.field == "exchange_username").unwrap();
    assert_eq!(
        p.message_sv,
        "flödet användarnamn/lösenord: användare WEBSHOP saknar Användarnamn (Exchange) (exchange_username)."
    );
    assert!(
        p.fix_sv
            .starts_with("kurir settings set --user WEBSHOP exchange_username=")
    );
    let p = all
        .iter()
        .find(|p| p.field == "client_secret_expires")
        .unwrap();
    assert!(
        p.message_sv
            .contains("Klienthemligheten går ut 2026-12-10, om 16 dagar"),
        "{}",
        p.message_sv
    );
    assert!(
        p.fix_sv.contains("Certifikat och hemligheter"),
        "{}",
        p.fix_sv
    );
    for p in &all {
        assert!(!p.message_sv.is_empty() && !p.fix_sv.is_empty(), "{p:?}");
    }
}

/// Issue #13.1: an authority (or Graph, IMAP, POP3, SMTP host) outside the selected cloud would
/// receive the client secret, the Exchange password or the tokens; without the server switch it
/// is an error for every subject that uses it, naming the CLI command that allows it.
#[test]
fn custom_endpoint_is_an_error_for_exchange_online_without_the_server_switch() {
    let anna = Scope::User("ANNA".into());
    let webshop = Scope::Webshop;
    let acc = Scope::Account("Monitor-to-Monitor".into());
    let mut s = seed_scenario();
    s.system.set_plain("authority", "https://evil.example");
    for scope in [&Scope::System, &anna, &webshop, &acc] {
        assert_one(
            &s,
            scope,
            "authority",
            "is https://evil.example, which is not an endpoint of the selected cloud global (https://login.microsoftonline.com)",
            "kurir settings set allow_custom_endpoints=true",
        );
        let p = s
            .validate(scope, TODAY)
            .into_iter()
            .find(|p| p.field == "authority")
            .unwrap();
        assert_eq!(p.severity, Severity::Error);
        assert_eq!(p.fix_at, Scope::System);
        assert!(
            p.fix.contains("kurir settings unset authority"),
            "{}",
            p.fix
        );
        assert!(
            p.message_sv.contains("det valda molnet"),
            "{}",
            p.message_sv
        );
    }
    assert_eq!(
        s.refused_endpoints().len(),
        6,
        "{:?}",
        s.refused_endpoints()
    );

    // Another cloud's endpoint is not the selected cloud's either; choosing that cloud fixes it.
    let mut s = seed_scenario();
    s.system
        .set_plain("authority", "https://login.microsoftonline.us")
        .set_plain("graph_endpoint", "https://graph.microsoft.us");
    assert!(
        s.validate(&anna, TODAY)
            .iter()
            .any(|p| p.field == "authority")
    );
    s.system.set_plain("cloud", "usgov");
    assert_eq!(s.validate_all(TODAY), vec![]);

    // Hosts: only those the subject uses. An IMAP account's host; a user's SMTP host.
    let mut s = seed_scenario();
    s.accounts
        .get_mut("Monitor-to-Monitor")
        .unwrap()
        .set_plain("protocol", "imap")
        .set_plain("imap_host", "imap.evil.example");
    assert_one(
        &s,
        &acc,
        "imap_host",
        "imap.evil.example",
        "--account Monitor-to-Monitor imap_host",
    );
    assert!(s.validate(&anna, TODAY).is_empty());
    s.users
        .get_mut("ANNA")
        .unwrap()
        .set_plain("smtp_host", "smtp.evil.example");
    assert_one(
        &s,
        &anna,
        "smtp_host",
        "smtp.evil.example",
        "--user ANNA smtp_host",
    );

    // A classic SMTP server for method smtp is no Exchange Online endpoint.
    let mut s = seed_scenario();
    s.users
        .get_mut("ANNA")
        .unwrap()
        .set_plain("method", "smtp")
        .set_plain("smtp_host", "mail.contoso.com");
    assert!(
        s.validate(&anna, TODAY)
            .iter()
            .all(|p| p.field != "smtp_host")
    );

    // The server switch allows them all (the emulator, a test tenant).
    let mut s = seed_scenario();
    s.system
        .set_plain("authority", "https://127.0.0.1:8443")
        .set_plain("graph_endpoint", "https://127.0.0.1:8443")
        .set_plain("allow_custom_endpoints", "true");
    assert_eq!(s.validate_all(TODAY), vec![]);
    assert!(s.refused_endpoints().is_empty());
    // It is the system's alone, and no user shows it as inherited.
    assert_eq!(
        s.resolve(&Scope::System).get("allow_custom_endpoints"),
        Some("true")
    );
    assert!(s.resolve(&anna).field("allow_custom_endpoints").is_none());
    assert!(key_or_hint("allow_custom_endpoints", Level::User).is_err());
}
