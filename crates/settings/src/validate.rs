//! Validation of effective settings as a whole (the second stage, after each value was parsed on
//! its own): does this user, account or webshop have everything its method and authentication
//! flow need? Each problem names the field (with the label the admin knows), the level where it
//! should be fixed, and the exact command that fixes it.

use std::fmt;

use serde::Serialize;

use crate::keys::key;
use crate::resolve::{Effective, SettingsSnapshot, WEBSHOP_USER};
use crate::scope::{Level, Scope};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Kurir cannot work with these settings.
    Error,
    /// It works today, but something needs attention (an expiring secret, an odd choice).
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// The subject whose effective settings were checked.
    #[serde(serialize_with = "ser_scope")]
    pub subject: Scope,
    /// The setting at fault.
    pub field: &'static str,
    /// Where the fix belongs (may differ from the subject: a missing client id is fixed in the
    /// system settings even when found while checking user ANNA).
    #[serde(serialize_with = "ser_scope")]
    pub fix_at: Scope,
    pub message: String,
    pub fix: String,
    /// The same in Swedish, the ERP admins' language (the admin UI shows the page's language).
    pub message_sv: String,
    pub fix_sv: String,
}

fn ser_scope<S: serde::Serializer>(scope: &Scope, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&scope.storage_key())
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}: {} Fix: {}", self.message, self.fix)
    }
}

/// A text in English and Swedish.
struct Sv(String, String);

struct Checker<'a> {
    eff: &'a Effective,
    problems: Vec<Problem>,
    /// The server switch `allow_custom_endpoints`.
    custom_endpoints_allowed: bool,
}

impl Checker<'_> {
    fn push(&mut self, severity: Severity, field: &'static str, message: Sv, fix: Sv) {
        self.problems.push(Problem {
            severity,
            subject: self.eff.scope.clone(),
            field,
            fix_at: self.eff.fix_scope(field),
            message: message.0,
            fix: fix.0,
            message_sv: message.1,
            fix_sv: fix.1,
        });
    }

    /// The subject as the admin would name it; the webshop under according-to-user-settings is
    /// really user WEBSHOP, so say so.
    fn who(&self) -> String {
        match (&self.eff.scope, &self.eff.sends_as) {
            (Scope::Webshop, Some(u)) => format!("user {u} (the webshop sends as {u})"),
            (s, _) => s.to_string(),
        }
    }

    fn who_sv(&self) -> String {
        match (&self.eff.scope, &self.eff.sends_as) {
            (Scope::Webshop, Some(u)) => format!("användare {u} (webbshopen skickar som {u})"),
            (Scope::System, _) => "systeminställningarna".to_owned(),
            (Scope::User(u), _) => format!("användare {u}"),
            (Scope::Account(a), _) => format!("inkommande e-postkonto {a}"),
            (Scope::Webshop, None) => "webbshopen".to_owned(),
        }
    }

    fn set_cmd(&self, field: &'static str, example: &str) -> Sv {
        let scope = self.eff.fix_scope(field);
        let def = key(field).expect("known key");
        let flag = scope.cli_flag();
        if def.is_secret() {
            Sv(
                format!(
                    "kurir settings set{flag} {field}   (you are prompted for the value; or --secret-stdin {field})"
                ),
                format!(
                    "kurir settings set{flag} {field}   (du får skriva in värdet; eller --secret-stdin {field})"
                ),
            )
        } else {
            let cmd = format!("kurir settings set{flag} {field}={example}");
            Sv(cmd.clone(), cmd)
        }
    }

    fn require(&mut self, field: &'static str, context: (&str, &str), example: &str) {
        if !self.eff.is_set(field) {
            let def = key(field).expect("known key");
            let message = Sv(
                format!(
                    "{}: {} has no {} ({field}).",
                    context.0,
                    self.who(),
                    def.label_en
                ),
                format!(
                    "{}: {} saknar {} ({field}).",
                    context.1,
                    self.who_sv(),
                    def.label_sv
                ),
            );
            let fix = self.set_cmd(field, example);
            self.push(Severity::Error, field, message, fix);
        }
    }
}

impl SettingsSnapshot {
    /// Validates the effective settings of `scope`. `today` is passed in so that expiry checks
    /// are testable.
    pub fn validate(&self, scope: &Scope, today: time::Date) -> Vec<Problem> {
        let eff = self.resolve(scope);
        let mut c = Checker {
            eff: &eff,
            problems: Vec::new(),
            custom_endpoints_allowed: self.custom_endpoints_allowed(),
        };
        if let (Scope::Webshop, Some(user)) = (&eff.scope, &eff.sends_as)
            && !self.users.contains_key(user)
        {
            c.push(
                    Severity::Error,
                    "method",
                    Sv(
                        format!("the webshop's method is according to user settings, so it sends as user {user}, but there is no user {user}."),
                        format!("webbshopens metod är Enligt användarinställningar, så den skickar som användare {user}, men det finns ingen användare {user}."),
                    ),
                    Sv(
                        format!("kurir users add {user} --email webshop@your-domain   (or give the webshop a method of its own: kurir settings set --webshop method=exchange-online)"),
                        format!("kurir users add {user} --email webshop@your-domain   (eller ge webbshopen en egen metod: kurir settings set --webshop method=exchange-online)"),
                    ),
                );
            return c.problems;
        }
        let method = eff.get("method").unwrap_or("none").to_owned();
        let level = eff.scope.level();
        match method.as_str() {
            "exchange-online" => check_exchange(&mut c, today),
            "smtp" => {
                if level == Level::Account {
                    c.push(
                        Severity::Error,
                        "method",
                        Sv(
                            format!("{}: method smtp only sends mail; an incoming-mail account is read from Exchange Online.", c.who()),
                            format!("{}: metoden smtp skickar bara e-post; ett inkommande e-postkonto läses från Exchange Online.", c.who_sv()),
                        ),
                        c.set_cmd("method", "exchange-online"),
                    );
                } else {
                    check_smtp(&mut c);
                }
            }
            _ => {
                if level != Level::System {
                    let severity = if level == Level::Account {
                        Severity::Error
                    } else {
                        Severity::Warning
                    };
                    c.push(
                        severity,
                        "method",
                        Sv(
                            format!("{} has Method for e-mail (method) none, so it can neither send nor receive e-mail.", c.who()),
                            format!("{} har Metod för e-post (method) none och kan varken skicka eller ta emot e-post.", c.who_sv()),
                        ),
                        c.set_cmd("method", "exchange-online"),
                    );
                }
            }
        }
        if level == Level::Account {
            check_account(&mut c, self);
        }
        if let Some(path) = eff.get("ca_file")
            && !std::path::Path::new(path).is_file()
        {
            c.push(
                    Severity::Error,
                    "ca_file",
                    Sv(
                        format!("{}: Extra CA certificate (ca_file) {path} does not exist or is not a file.", c.who()),
                        format!("{}: Extra CA-certifikat (ca_file) {path} finns inte eller är ingen fil.", c.who_sv()),
                    ),
                    c.set_cmd("ca_file", "/path/to/ca.pem"),
                );
        }
        c.problems
    }

    /// The system, every user, every account and the webshop.
    pub fn all_scopes(&self) -> Vec<Scope> {
        let mut scopes = vec![Scope::System];
        scopes.extend(self.users.keys().map(|u| Scope::User(u.clone())));
        scopes.extend(self.accounts.keys().map(|a| Scope::Account(a.clone())));
        scopes.push(Scope::Webshop);
        scopes
    }

    /// Every endpoint that some subject with method exchange-online would send credentials or
    /// tokens to although it is not its selected cloud's, while the server switch is off: the
    /// same problems [`SettingsSnapshot::validate`] reports, each with the refused value. The
    /// REST API and the web UI refuse a change that adds one (see `kurir_settings::endpoints`).
    pub fn refused_endpoints(&self) -> Vec<(Problem, String)> {
        let mut out = Vec::new();
        if self.custom_endpoints_allowed() {
            return out;
        }
        for scope in self.all_scopes() {
            let eff = self.resolve(&scope);
            let mut c = Checker {
                eff: &eff,
                problems: Vec::new(),
                custom_endpoints_allowed: false,
            };
            let values = check_endpoints(&mut c);
            out.extend(c.problems.into_iter().zip(values));
        }
        out
    }

    /// Validates the system, every user, every account and the webshop.
    pub fn validate_all(&self, today: time::Date) -> Vec<Problem> {
        let mut all: Vec<Problem> = Vec::new();
        for scope in self.all_scopes() {
            for p in self.validate(&scope, today) {
                // The same missing system value shows up for every user that inherits it; report
                // it once, at the system.
                let dup = all.iter().any(|q| {
                    q.field == p.field && q.fix_at == p.fix_at && p.fix_at == Scope::System
                });
                if !dup {
                    all.push(p);
                }
            }
        }
        all
    }
}

fn check_exchange(c: &mut Checker<'_>, today: time::Date) {
    let level = c.eff.scope.level();
    check_endpoints(c);
    check_exchange_smtp_tls(c);
    c.require(
        "client_id",
        ("Exchange Online", "Exchange Online"),
        "<Application (client) ID GUID>",
    );
    c.require(
        "tenant_id",
        ("Exchange Online", "Exchange Online"),
        "<Directory (tenant) ID GUID or contoso.onmicrosoft.com>",
    );
    let flow = c.eff.get("auth_flow").unwrap_or("client-secret").to_owned();
    match flow.as_str() {
        "client-secret" => {
            c.require(
                "client_secret",
                ("client-secret flow", "flödet klienthemlighet"),
                "",
            );
            check_expiry(c, today);
        }
        "username-password" if level != Level::System => {
            c.require(
                "exchange_username",
                ("username-password flow", "flödet användarnamn/lösenord"),
                "name@your-domain",
            );
            c.require(
                "exchange_password",
                ("username-password flow", "flödet användarnamn/lösenord"),
                "",
            );
        }
        "certificate" => {
            c.require(
                "certificate",
                ("certificate flow", "certifikatflödet"),
                "\"$(cat cert.pem)\"",
            );
            c.require(
                "certificate_key",
                ("certificate flow", "certifikatflödet"),
                "",
            );
        }
        _ => {}
    }
    if matches!(level, Level::User | Level::Webshop) && !c.eff.is_set("email") {
        let who = c.who();
        let fix = c.set_cmd("email", "name@your-domain");
        c.push(
                Severity::Error,
                "email",
                Sv(
                    format!("{who} has no E-mail address (email) and the system settings have no Default sender address (default_sender): Exchange Online needs a mailbox to send as."),
                    format!("{} saknar E-postadress (email) och systeminställningarna saknar Standardavsändare (default_sender): Exchange Online behöver en brevlåda att skicka som.", c.who_sv()),
                ),
                fix,
            );
    }
}

/// Issue #13.1: with method exchange-online, secrets (client secret, certificate assertion,
/// Exchange password) and the tokens they buy go only to the selected cloud's endpoints, unless
/// the server switch allows others. An error here stops every use of the settings (token
/// requests, intake, the outbox and Test connection refuse settings with errors before
/// anything leaves). Returns the refused values, one per problem pushed.
fn check_endpoints(c: &mut Checker<'_>) -> Vec<String> {
    let mut refused = Vec::new();
    if c.custom_endpoints_allowed {
        return refused;
    }
    let cloud = c.eff.get("cloud").unwrap_or("global").to_owned();
    for (field, value, expected) in crate::endpoints::custom_endpoints(c.eff) {
        let def = key(field).expect("known key");
        let flag = c.eff.fix_scope(field).cli_flag();
        c.push(
            Severity::Error,
            field,
            Sv(
                format!("{}: {} ({field}) is {value}, which is not an endpoint of the selected cloud {cloud} ({expected}). With method exchange-online Kurir sends client secrets, passwords and access tokens only to the selected cloud's endpoints, so these settings are not used.", c.who(), def.label_en),
                format!("{}: {} ({field}) är {value}, som inte är en adress i det valda molnet {cloud} ({expected}). Med metoden exchange-online skickar Kurir klienthemligheter, lösenord och åtkomsttoken bara till det valda molnets adresser, så inställningarna används inte.", c.who_sv(), def.label_sv),
            ),
            Sv(
                format!("for Microsoft's cloud remove the value: kurir settings unset{flag} {field} (and choose the cloud: cloud=global, usgov or china); only for the emulator or a test tenant, allow custom endpoints on the server itself: kurir settings set allow_custom_endpoints=true (not possible through the REST API or the web UI)"),
                format!("för Microsofts moln, ta bort värdet: kurir settings unset{flag} {field} (och välj moln: cloud=global, usgov eller china); bara för emulatorn eller en testmiljö, tillåt egna adresser på servern själv: kurir settings set allow_custom_endpoints=true (går inte via REST-API:t eller webbgränssnittet)"),
            ),
        );
        refused.push(value);
    }
    refused
}

/// Exchange Online over SMTP is always SMTP AUTH XOAUTH2: the access token is a bearer token
/// (whoever holds it sends as the mailbox for up to 90 minutes), so it must never cross a
/// connection without TLS, not even to a server on this machine.
fn check_exchange_smtp_tls(c: &mut Checker<'_>) {
    if c.eff.get("smtp_tls") == Some("none") {
        let fix = c.set_cmd("smtp_tls", "starttls");
        c.push(
            Severity::Error,
            "smtp_tls",
            Sv(
                format!("{}: SMTP encryption (smtp_tls) is none with method exchange-online, so the XOAUTH2 access token would cross the network in clear text; Kurir refuses to send it. Use starttls (port 587) or tls (port 465).", c.who()),
                format!("{}: SMTP-kryptering (smtp_tls) är none med metoden exchange-online, så XOAUTH2-åtkomsttoken skulle skickas okrypterad över nätverket; Kurir vägrar skicka den. Använd starttls (port 587) eller tls (port 465).", c.who_sv()),
            ),
            fix,
        );
    }
}

fn check_expiry(c: &mut Checker<'_>, today: time::Date) {
    let Some(raw) = c.eff.get("client_secret_expires") else {
        return;
    };
    let Some(date) = crate::expiry(raw).map(|t| t.date()) else {
        return;
    };
    let days = (date - today).whole_days();
    let renew = || {
        Sv(
        "create a new secret in Entra ID → App registrations → Certificates & secrets, then set client_secret to its Value and client_secret_expires to its date".to_owned(),
        "skapa en ny hemlighet i Entra ID → Appregistreringar → Certifikat och hemligheter, ange sedan dess Värde i Klienthemlighet (client_secret) och dess slutdatum i Klienthemlighet upphör (client_secret_expires)".to_owned(),
    )
    };
    if days < 0 {
        c.push(
            Severity::Error,
            "client_secret_expires",
            Sv(
                format!("{}: the Client secret expired on {date}; Entra answers AADSTS7000222 and no mail moves.", c.who()),
                format!("{}: Klienthemligheten gick ut {date}; Entra svarar AADSTS7000222 och ingen e-post går.", c.who_sv()),
            ),
            renew(),
        );
    } else if days <= 30 {
        c.push(
            Severity::Warning,
            "client_secret_expires",
            Sv(
                format!(
                    "{}: the Client secret expires on {date}, in {days} days.",
                    c.who()
                ),
                format!(
                    "{}: Klienthemligheten går ut {date}, om {days} dagar.",
                    c.who_sv()
                ),
            ),
            renew(),
        );
    }
}

fn check_smtp(c: &mut Checker<'_>) {
    c.require(
        "smtp_host",
        ("method smtp", "metoden smtp"),
        "mail.your-domain",
    );
    let has_user = c.eff.is_set("smtp_username");
    let has_pass = c.eff.is_set("smtp_password");
    if has_user && !has_pass {
        c.require(
            "smtp_password",
            (
                "method smtp with an SMTP username",
                "metoden smtp med SMTP-användarnamn",
            ),
            "",
        );
    }
    if has_pass && !has_user {
        let fix = c.set_cmd("smtp_username", "name");
        c.push(
            Severity::Warning,
            "smtp_username",
            Sv(
                format!("{}: an SMTP password is set but no SMTP username, so the password is not used.", c.who()),
                format!("{}: ett SMTP-lösenord är angivet men inget SMTP-användarnamn, så lösenordet används inte.", c.who_sv()),
            ),
            fix,
        );
    }
    let host = c.eff.get("smtp_host").unwrap_or_default();
    let local = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if c.eff.get("smtp_tls") == Some("none") && has_user && !local {
        let fix = c.set_cmd("smtp_tls", "starttls");
        c.push(
            Severity::Warning,
            "smtp_tls",
            Sv(
                format!("{}: SMTP encryption is none, so the SMTP password crosses the network in clear text.", c.who()),
                format!("{}: SMTP-kryptering är none, så SMTP-lösenordet skickas okrypterat över nätverket.", c.who_sv()),
            ),
            fix,
        );
    }
}

fn check_account(c: &mut Checker<'_>, snapshot: &SettingsSnapshot) {
    c.require(
        "mailbox",
        ("incoming mail", "inkommande e-post"),
        "orders@your-domain",
    );
    let folder = |n: &str| c.eff.get(n).unwrap_or_default().to_lowercase();
    let (source, processed, quarantine) = (
        folder("source_folder"),
        folder("processed_folder"),
        folder("quarantine_folder"),
    );
    let pop3 = c.eff.get("protocol") == Some("pop3");
    if !pop3 && source == processed {
        let fix = c.set_cmd("processed_folder", "Processed");
        c.push(
            Severity::Error,
            "processed_folder",
            Sv(
                format!("{}: Processed folder and Source folder are both '{source}', so stored mail would be read again forever.", c.who()),
                format!("{}: Mapp för behandlad e-post och Mapp att läsa är båda '{source}', så sparad e-post skulle läsas om i all oändlighet.", c.who_sv()),
            ),
            fix,
        );
    }
    if !pop3 && source == quarantine {
        let fix = c.set_cmd("quarantine_folder", "Quarantine");
        c.push(
            Severity::Error,
            "quarantine_folder",
            Sv(
                format!("{}: Quarantine folder and Source folder are both '{source}', so a broken message would be retried forever.", c.who()),
                format!("{}: Karantänmapp och Mapp att läsa är båda '{source}', så ett trasigt meddelande skulle försökas om i all oändlighet.", c.who_sv()),
            ),
            fix,
        );
    }
    if let Some(Ok(d)) = c.eff.get("poll_interval").map(crate::parse::parse_duration) {
        if d.as_secs() < 10 {
            let fix = c.set_cmd("poll_interval", "1m");
            c.push(
                Severity::Error,
                "poll_interval",
                Sv(
                    format!("{}: a Poll interval of {}s is too short; Exchange Online throttles mailboxes polled that often.", c.who(), d.as_secs()),
                    format!("{}: ett Hämtningsintervall på {}s är för kort; Exchange Online stryper brevlådor som läses så ofta.", c.who_sv(), d.as_secs()),
                ),
                fix,
            );
        } else if d.as_secs() > 24 * 3600 {
            let fix = c.set_cmd("poll_interval", "5m");
            c.push(
                Severity::Warning,
                "poll_interval",
                Sv(
                    format!("{}: a Poll interval over a day means incoming mail waits that long.", c.who()),
                    format!("{}: ett Hämtningsintervall över ett dygn betyder att inkommande e-post väntar så länge.", c.who_sv()),
                ),
                fix,
            );
        }
    }
    if let Some(list) = c.eff.get("visible_to") {
        let unknown: Vec<&str> = list
            .split(',')
            .filter(|u| *u != "*" && !snapshot.users.contains_key(*u) && *u != WEBSHOP_USER)
            .collect();
        if !unknown.is_empty() {
            let fix = c.set_cmd("visible_to", "ANNA,EKONOMI");
            c.push(
                Severity::Warning,
                "visible_to",
                Sv(
                    format!("{}: Visible to names {}, which {} not a Kurir user (fine if it is a role in the ERP).", c.who(), unknown.join(", "), if unknown.len() == 1 { "is" } else { "are" }),
                    format!("{}: Synlig för nämner {}, som inte är användare i Kurir (går bra om det är en roll i affärssystemet).", c.who_sv(), unknown.join(", ")),
                ),
                fix,
            );
        }
    }
}
