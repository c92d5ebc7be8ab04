//! Test connection: from the settings of one user, account or the webshop to a mailbox, step by
//! step, each step saying "ok" or exactly what to fix.
//!
//! The steps follow the path a message takes, so the first failure is the one to fix:
//! 1. settings complete (the validation problems),
//! 2. a token from Entra ID (AADSTS codes explained in the page's language),
//! 3. the mailbox reachable through Microsoft Graph (404 / 403 explained),
//! 4. for IMAP / POP3 accounts: connect + XOAUTH2 (service principal and mailbox permission
//!    explained); for users and the webshop: SMTP AUTH XOAUTH2 (5.7.139 explained), which only
//!    matters when mail is sent by SMTP, so its failure is a warning,
//! 5. folders exist.
//!
//! After a failure, later steps are "not run": their outcome would say nothing.
//! The same report serves the UI, the REST API and `kurir check`.

use std::sync::Arc;
use std::time::Duration;

use kurir_connect::{Resource, SettingsProblem, token_client, token_request};
use kurir_entra::{AccessToken, ExposeSecret};
use kurir_settings::{Effective, Method, Protocol, Scope, Severity, TlsMode};
use kurir_store::KurirStore;
use serde::Serialize;

use crate::i18n::Lang;
use crate::probe::{self, ProbeError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Ok,
    Failed,
    /// It failed, but mail can still flow another way (e.g. SMTP when Graph sends).
    Warning,
    NotRun,
    /// Does not apply to these settings.
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Stable id: `settings`, `token`, `mailbox`, `imap`, `pop3`, `smtp`, `folders`.
    pub id: &'static str,
    pub title: String,
    pub status: StepStatus,
    /// What happened (ok: what was found; failure: what went wrong).
    pub detail: String,
    /// What to do, when something is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The AADSTS code, when Entra refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aadsts: Option<u32>,
    /// Microsoft's own message and ids, for a support case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub microsoft_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub subject: String,
    pub lang: &'static str,
    /// True when no step failed.
    pub ok: bool,
    pub steps: Vec<Step>,
}

struct Run {
    lang: Lang,
    steps: Vec<Step>,
    failed: bool,
}

impl Run {
    fn step(&mut self, id: &'static str, title: String, status: StepStatus, detail: String) {
        if status == StepStatus::Failed {
            self.failed = true;
        }
        self.steps.push(Step {
            id,
            title,
            status,
            detail,
            fix: None,
            aadsts: None,
            microsoft_message: None,
            trace_id: None,
            correlation_id: None,
        });
    }

    fn fail(&mut self, id: &'static str, title: String, detail: String, fix: String) {
        self.step(id, title, StepStatus::Failed, detail);
        self.last().fix = Some(fix);
    }

    fn last(&mut self) -> &mut Step {
        self.steps.last_mut().expect("a step was just pushed")
    }

    fn not_run(&mut self, id: &'static str, title: String) {
        let detail = self
            .lang
            .pick(
                "Kördes inte eftersom ett tidigare steg misslyckades.",
                "Not run because an earlier step failed.",
            )
            .to_owned();
        self.step(id, title, StepStatus::NotRun, detail);
    }

    fn skipped(&mut self, id: &'static str, title: String, why: &str) {
        self.step(id, title, StepStatus::Skipped, why.to_owned());
    }

    /// Runs `f` unless an earlier step failed.
    fn gate(&mut self, id: &'static str, title: &str) -> bool {
        if self.failed {
            self.not_run(id, title.to_owned());
            false
        } else {
            true
        }
    }
}

/// Which protocol steps apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Graph,
    Imap,
    Pop3,
}

/// The IMAP or POP3 server an account reads, with the protocol's implicit-TLS port when none
/// is set (993 for IMAP, 995 for POP3, as the intake connects).
fn server_of(eff: &Effective, path: Path) -> (String, u16) {
    let (host, port, default) = match path {
        Path::Pop3 => ("pop3_host", "pop3_port", 995),
        _ => ("imap_host", "imap_port", 993),
    };
    (
        eff.get(host).unwrap_or_default().to_owned(),
        eff.port(port).unwrap_or(default),
    )
}

fn titles(lang: Lang) -> [(&'static str, &'static str); 7] {
    [
        (
            "settings",
            lang.pick("Inställningarna är kompletta", "Settings complete"),
        ),
        (
            "token",
            lang.pick(
                "Token från Microsoft Entra ID",
                "Token from Microsoft Entra ID",
            ),
        ),
        (
            "mailbox",
            lang.pick(
                "Brevlådan nås via Microsoft Graph",
                "Mailbox reachable through Microsoft Graph",
            ),
        ),
        (
            "imap",
            lang.pick(
                "IMAP: anslutning och XOAUTH2-inloggning",
                "IMAP: connect and XOAUTH2 sign-in",
            ),
        ),
        (
            "pop3",
            lang.pick(
                "POP3: anslutning och XOAUTH2-inloggning",
                "POP3: connect and XOAUTH2 sign-in",
            ),
        ),
        (
            "smtp",
            lang.pick(
                "SMTP: anslutning och XOAUTH2-inloggning",
                "SMTP: connect and XOAUTH2 sign-in",
            ),
        ),
        ("folders", lang.pick("Mapparna finns", "Folders exist")),
    ]
}

fn title(lang: Lang, id: &str) -> String {
    titles(lang)
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, t)| (*t).to_owned())
        .unwrap_or_default()
}

/// The mailbox a subject reads or sends as.
fn mailbox_of(eff: &Effective) -> Option<String> {
    match &eff.scope {
        Scope::Account(_) => eff.get("mailbox").map(str::to_owned),
        Scope::System => eff.get("default_sender").map(str::to_owned),
        _ => eff.get("email").map(str::to_owned),
    }
}

fn extra_ca(eff: &Effective) -> Result<Option<String>, String> {
    match eff.get("ca_file") {
        None => Ok(None),
        Some(p) => std::fs::read_to_string(p)
            .map(Some)
            .map_err(|e| format!("Extra CA certificate (ca_file) {p}: {e}")),
    }
}

/// Runs Test connection for `scope` and returns the report; never fails as a whole (every
/// failure is a step).
pub async fn run(store: Arc<dyn KurirStore>, scope: &Scope, lang: Lang) -> Report {
    let mut run = Run {
        lang,
        steps: Vec::new(),
        failed: false,
    };
    let report = |run: Run| {
        let ok = !run.failed;
        crate::metrics::checks(scope, ok);
        Report {
            subject: scope.storage_key(),
            lang: lang.code(),
            ok,
            steps: run.steps,
        }
    };
    let snap = match store.snapshot().await {
        Ok(s) => s,
        Err(e) => {
            run.fail(
                "settings",
                title(lang, "settings"),
                e.to_string(),
                lang.pick(
                    "Kontrollera Kurirs databas och huvudnyckel.",
                    "Check Kurir's database and master key.",
                )
                .to_owned(),
            );
            return report(run);
        }
    };
    let eff = snap.resolve(scope);
    let account_path = match eff.protocol() {
        Some(Protocol::Imap) if matches!(scope, Scope::Account(_)) => Path::Imap,
        Some(Protocol::Pop3) if matches!(scope, Scope::Account(_)) => Path::Pop3,
        _ => Path::Graph,
    };

    // 1. Settings.
    let errors: Vec<_> = snap
        .validate(scope, time::OffsetDateTime::now_utc().date())
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    let method = eff.method();
    if !errors.is_empty() {
        let detail = errors
            .iter()
            .map(|p| match lang {
                Lang::Sv => p.message_sv.clone(),
                Lang::En => p.message.clone(),
            })
            .collect::<Vec<_>>()
            .join(" ");
        let fix = errors
            .iter()
            .map(|p| match lang {
                Lang::Sv => p.fix_sv.clone(),
                Lang::En => p.fix.clone(),
            })
            .collect::<Vec<_>>()
            .join(" · ");
        run.fail("settings", title(lang, "settings"), detail, fix);
    } else if method != Method::ExchangeOnline {
        let msg = format!(
            "{} {method}: {}",
            lang.pick("Metod för e-post är", "Method for e-mail is"),
            lang.pick(
                "det finns ingen Exchange Online-anslutning att testa.",
                "there is no Exchange Online connection to test."
            )
        );
        run.fail(
            "settings",
            title(lang, "settings"),
            msg,
            lang.pick(
                "Ställ in Metod för e-post som Serverbaserat, via Microsoft Exchange Online (exchange-online).",
                "Set Method for e-mail to Server-based, via Microsoft Exchange Online (exchange-online).",
            )
            .to_owned(),
        );
    } else {
        run.step(
            "settings",
            title(lang, "settings"),
            StepStatus::Ok,
            format!(
                "{}: {}",
                lang.pick("Autentiseringsflöde", "Authentication flow"),
                eff.auth_flow()
            ),
        );
    }

    // 2. Token (Graph; IMAP/POP3 accounts need an Exchange token instead).
    let resource = match account_path {
        Path::Graph => Resource::Graph,
        _ => Resource::Exchange,
    };
    let mut token: Option<AccessToken> = None;
    if run.gate("token", &title(lang, "token")) {
        match get_token(&store, &snap, scope, resource).await {
            Ok(t) => {
                let c = &t.claims;
                let perms = if !c.roles.is_empty() {
                    c.roles.join(" ")
                } else {
                    c.scp.clone().unwrap_or_default()
                };
                if perms.is_empty() {
                    run.fail(
                        "token",
                        title(lang, "token"),
                        lang.pick(
                            "En token erhölls men den ger inga behörigheter.",
                            "A token was obtained but it carries no permissions.",
                        )
                        .to_owned(),
                        lang.pick(
                            "Lägg till API-behörigheterna (Mail.ReadWrite, Mail.Send eller IMAP.AccessAsApp / POP.AccessAsApp / SMTP.SendAsApp) i appregistreringen och bevilja administratörsmedgivande.",
                            "Add the API permissions (Mail.ReadWrite, Mail.Send or IMAP.AccessAsApp / POP.AccessAsApp / SMTP.SendAsApp) to the app registration and grant admin consent.",
                        )
                        .to_owned(),
                    );
                } else {
                    run.step(
                        "token",
                        title(lang, "token"),
                        StepStatus::Ok,
                        format!(
                            "{} {} ({}: {perms})",
                            lang.pick("Token för", "Token for"),
                            c.aud.as_deref().unwrap_or("?"),
                            lang.pick("behörigheter", "permissions")
                        ),
                    );
                    token = Some(t);
                }
            }
            Err(TokenFailure::Settings(msg)) => run.fail(
                "token",
                title(lang, "token"),
                msg,
                lang.pick(
                    "Komplettera inställningarna enligt meddelandet.",
                    "Complete the settings as the message says.",
                )
                .to_owned(),
            ),
            Err(TokenFailure::Entra(e)) => {
                // kurir-entra counts the request itself (kurir_token_requests_total).
                let x = e.explain(lang.entra());
                let summary = match x.code {
                    Some(code) => format!("AADSTS{code}: {}", x.summary),
                    None => x.summary.clone(),
                };
                run.fail("token", title(lang, "token"), summary, x.fix.clone());
                let s = run.last();
                s.aadsts = x.code;
                s.microsoft_message = x.microsoft_message.clone();
                s.trace_id = x.trace_id.clone();
                s.correlation_id = x.correlation_id.clone();
            }
            Err(TokenFailure::Timeout) => run.fail(
                "token",
                title(lang, "token"),
                lang.pick(
                    "Ingen token inom 30 sekunder.",
                    "No token within 30 seconds.",
                )
                .to_owned(),
                lang.pick(
                    "Med enhetskodsflödet (device-code) måste någon logga in en gång: kör `kurir token` för samma användare eller konto på servern. Kontrollera annars nätverket till inloggningstjänsten.",
                    "With the device-code flow someone must sign in once: run `kurir token` for the same user or account on the server. Otherwise check the network to the sign-in service.",
                )
                .to_owned(),
            ),
        }
    }

    let ca = extra_ca(&eff);
    let mailbox = mailbox_of(&eff);

    // 3. Mailbox through Graph.
    if account_path == Path::Graph {
        if run.gate("mailbox", &title(lang, "mailbox")) {
            match (&token, &mailbox) {
                (Some(t), Some(mb)) => {
                    graph_mailbox(&mut run, &eff, ca.as_ref().ok().cloned().flatten(), t, mb).await
                }
                (_, None) => run.skipped(
                    "mailbox",
                    title(lang, "mailbox"),
                    lang.pick(
                        "Ingen brevlåda att testa (ingen Standardavsändare).",
                        "No mailbox to test (no Default sender address).",
                    ),
                ),
                _ => run.not_run("mailbox", title(lang, "mailbox")),
            }
        }
    } else {
        run.skipped(
            "mailbox",
            title(lang, "mailbox"),
            lang.pick(
                "Kontot läses med IMAP/POP3, inte Graph.",
                "The account is read by IMAP/POP3, not Graph.",
            ),
        );
    }

    // 4. Protocol sign-in.
    let mut imap_folders: Option<Vec<String>> = None;
    match (account_path, &scope) {
        (Path::Imap | Path::Pop3, _) => {
            let id = if account_path == Path::Imap {
                "imap"
            } else {
                "pop3"
            };
            if run.gate(id, &title(lang, id)) {
                let (host, port) = server_of(&eff, account_path);
                let user = mailbox.clone().unwrap_or_default();
                let tok = token.as_ref().map(|t| t.secret.expose_secret().to_owned());
                let ca_pem = ca.as_ref().ok().cloned().flatten();
                let outcome = match tok {
                    None => Err(ProbeError::Protocol("no token".into())),
                    Some(tok) if account_path == Path::Imap => {
                        probe::imap(&host, port, ca_pem.as_deref(), &user, &tok)
                            .await
                            .map(|f| Some(f.folders))
                    }
                    Some(tok) => probe::pop3(&host, port, ca_pem.as_deref(), &user, &tok)
                        .await
                        .map(|_| None),
                };
                match outcome {
                    Ok(folders) => {
                        imap_folders = folders;
                        run.step(
                            id,
                            title(lang, id),
                            StepStatus::Ok,
                            format!(
                                "{host}:{port} {} {user}",
                                lang.pick("godtog inloggning som", "accepted sign-in as")
                            ),
                        );
                    }
                    Err(e) => {
                        let (detail, fix) = explain_probe(lang, &e, &eff, &user, id);
                        run.fail(id, title(lang, id), detail, fix);
                    }
                }
            }
            run.skipped(
                "smtp",
                title(lang, "smtp"),
                lang.pick(
                    "Ett konto för inkommande e-post skickar inte.",
                    "An incoming-mail account does not send.",
                ),
            );
        }
        (Path::Graph, Scope::Account(_)) => {
            run.skipped(
                "imap",
                title(lang, "imap"),
                lang.pick(
                    "Kontot läses via Graph.",
                    "The account is read through Graph.",
                ),
            );
            run.skipped(
                "smtp",
                title(lang, "smtp"),
                lang.pick(
                    "Ett konto för inkommande e-post skickar inte.",
                    "An incoming-mail account does not send.",
                ),
            );
        }
        (Path::Graph, _) => {
            smtp_step(&mut run, &store, &snap, scope, &eff, ca, mailbox.clone()).await;
        }
    }

    // 5. Folders.
    match (&scope, account_path) {
        (Scope::Account(_), Path::Imap) => {
            if run.gate("folders", &title(lang, "folders")) {
                let folders = imap_folders.unwrap_or_default();
                folder_step(&mut run, &eff, |name| {
                    folders.iter().any(|f| f.eq_ignore_ascii_case(name))
                });
            }
        }
        (Scope::Account(_), Path::Graph) => {
            if run.gate("folders", &title(lang, "folders")) {
                match (&token, &mailbox) {
                    (Some(t), Some(mb)) => {
                        let ca_pem = extra_ca(&eff).ok().flatten();
                        match graph_folders(&eff, ca_pem, t, mb).await {
                            Ok(names) => folder_step(&mut run, &eff, |name| {
                                name.eq_ignore_ascii_case("inbox")
                                    || names.iter().any(|f| f.eq_ignore_ascii_case(name))
                            }),
                            Err(msg) => run.fail(
                                "folders",
                                title(lang, "folders"),
                                msg,
                                lang.pick(
                                    "Kontrollera behörigheten Mail.ReadWrite.",
                                    "Check the Mail.ReadWrite permission.",
                                )
                                .to_owned(),
                            ),
                        }
                    }
                    _ => run.not_run("folders", title(lang, "folders")),
                }
            }
        }
        _ => run.skipped(
            "folders",
            title(lang, "folders"),
            lang.pick(
                "Mappar gäller bara konton för inkommande e-post som läses med IMAP eller Graph.",
                "Folders apply only to incoming-mail accounts read by IMAP or Graph.",
            ),
        ),
    }
    report(run)
}

enum TokenFailure {
    Settings(String),
    Entra(kurir_entra::EntraError),
    Timeout,
}

async fn get_token(
    store: &Arc<dyn KurirStore>,
    snap: &kurir_settings::SettingsSnapshot,
    scope: &Scope,
    resource: Resource,
) -> Result<AccessToken, TokenFailure> {
    let (eff, request) = token_request(&**store, snap, scope, resource)
        .await
        .map_err(|e| match e.downcast_ref::<SettingsProblem>() {
            Some(p) => TokenFailure::Settings(p.0.clone()),
            None => TokenFailure::Settings(
                e.chain()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(": "),
            ),
        })?;
    let client = token_client(&eff, store.clone()).map_err(|e| {
        TokenFailure::Settings(
            e.chain()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(": "),
        )
    })?;
    match tokio::time::timeout(Duration::from_secs(30), client.token(&request)).await {
        Err(_) => Err(TokenFailure::Timeout),
        Ok(Err(e)) => Err(TokenFailure::Entra(e)),
        Ok(Ok(t)) => Ok(t),
    }
}

fn http_client(ca_pem: Option<String>) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| format!("Extra CA certificate (ca_file): {e}"))?;
        b = b.tls_certs_merge(certs);
    }
    b.build().map_err(|e| e.to_string())
}

/// Graph's error body: `{"error": {"code", "message"}}`.
fn graph_error(body: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    (
        v["error"]["code"].as_str().unwrap_or_default().to_owned(),
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

fn graph_base(eff: &Effective) -> String {
    let base = eff
        .get("graph_endpoint")
        .unwrap_or("https://graph.microsoft.com")
        .trim_end_matches('/');
    if base.ends_with("/v1.0") {
        base.to_owned()
    } else {
        format!("{base}/v1.0")
    }
}

async fn graph_mailbox(
    run: &mut Run,
    eff: &Effective,
    ca_pem: Option<String>,
    token: &AccessToken,
    mailbox: &str,
) {
    let lang = run.lang;
    let t = title(lang, "mailbox");
    let client = match http_client(ca_pem) {
        Ok(c) => c,
        Err(e) => {
            run.fail("mailbox", t, e, String::new());
            return;
        }
    };
    let url = format!(
        "{}/users/{}/mailFolders/inbox",
        graph_base(eff),
        url::form_urlencoded::byte_serialize(mailbox.as_bytes()).collect::<String>()
    );
    let resp = client
        .get(&url)
        .bearer_auth(token.secret.expose_secret())
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            run.fail(
                "mailbox",
                t,
                format!(
                    "{} {}: {e}",
                    lang.pick("Ingen kontakt med", "Could not reach"),
                    graph_base(eff)
                ),
                lang.pick(
                    "Kontrollera Graph-adress, brandvägg och proxy (utgående HTTPS).",
                    "Check Graph endpoint, firewall and proxy (outbound HTTPS).",
                )
                .to_owned(),
            );
            return;
        }
    };
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    if (200..300).contains(&status) {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        run.step(
            "mailbox",
            t,
            StepStatus::Ok,
            format!(
                "{mailbox}: {} {} ({} {})",
                lang.pick("Inkorgen", "Inbox"),
                lang.pick("nåddes", "reached"),
                v["totalItemCount"].as_u64().unwrap_or(0),
                lang.pick("meddelanden", "messages")
            ),
        );
        return;
    }
    let (code, message) = graph_error(&body);
    let client_id = eff.get("client_id").unwrap_or("<client id>");
    let (detail, fix) = match (status, code.as_str()) {
        (404, "ErrorInvalidUser") | (404, "ResourceNotFound") => (
            format!("{mailbox}: {}", lang.pick("brevlådan finns inte i klientorganisationen (ErrorInvalidUser).", "there is no such mailbox in the tenant (ErrorInvalidUser).")),
            lang.pick("Kontrollera adressen (Brevlåda / E-postadress) och att den tillhör samma Katalog-ID.", "Check the address (Mailbox / E-mail address) and that it belongs to the same Directory (tenant) ID.").to_owned(),
        ),
        (404, "MailboxNotEnabledForRESTAPI") => (
            format!("{mailbox}: {}", lang.pick("brevlådan är inte aktiverad för REST API (MailboxNotEnabledForRESTAPI): den saknar Exchange Online-licens, ligger lokalt (hybrid) eller är inaktiv.", "the mailbox is not enabled for the REST API (MailboxNotEnabledForRESTAPI): it has no Exchange Online licence, is on-premises (hybrid) or inactive.")),
            lang.pick("Ge användaren en Exchange Online-licens eller flytta brevlådan till Exchange Online.", "Give the user an Exchange Online licence or move the mailbox to Exchange Online.").to_owned(),
        ),
        (403, _) | (_, "ErrorAccessDenied") => (
            format!("{mailbox}: {} ({code}: {message})", lang.pick("åtkomst nekad", "access denied")),
            match lang {
                Lang::Sv => format!("Ge appen API-behörigheten Mail.ReadWrite (program) med administratörsmedgivande. Om en Application Access Policy begränsar appen, lägg till brevlådan i den: Test-ApplicationAccessPolicy -Identity {mailbox} -AppId {client_id} ska ge Granted."),
                Lang::En => format!("Give the app the Mail.ReadWrite application permission with admin consent. If an Application Access Policy restricts the app, add the mailbox to it: Test-ApplicationAccessPolicy -Identity {mailbox} -AppId {client_id} must say Granted."),
            },
        ),
        (401, _) => (
            format!("HTTP 401 {code}: {message}"),
            lang.pick("Token godtogs inte av Graph: kontrollera Moln och Graph-adress (rätt nationellt moln).", "Graph did not accept the token: check Cloud and Graph endpoint (the right national cloud).").to_owned(),
        ),
        _ => (
            format!("HTTP {status} {code}: {message}"),
            lang.pick("Försök igen senare; kvarstår felet, kontrollera Graph-adress.", "Try again later; if it persists, check Graph endpoint.").to_owned(),
        ),
    };
    run.fail("mailbox", t, detail, fix);
}

async fn graph_folders(
    eff: &Effective,
    ca_pem: Option<String>,
    token: &AccessToken,
    mailbox: &str,
) -> Result<Vec<String>, String> {
    let client = http_client(ca_pem)?;
    let url = format!(
        "{}/users/{}/mailFolders?$top=250&includeHiddenFolders=false",
        graph_base(eff),
        url::form_urlencoded::byte_serialize(mailbox.as_bytes()).collect::<String>()
    );
    let resp = client
        .get(&url)
        .bearer_auth(token.secret.expose_secret())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        let (code, message) = graph_error(&body);
        return Err(format!("HTTP {status} {code}: {message}"));
    }
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    Ok(v["value"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["displayName"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// The source folder must exist; processed and quarantine folders are created by intake when
/// missing, so their absence is only mentioned.
fn folder_step(run: &mut Run, eff: &Effective, exists: impl Fn(&str) -> bool) {
    let lang = run.lang;
    let source = eff.get("source_folder").unwrap_or("Inbox").to_owned();
    let mut notes = Vec::new();
    for key in ["processed_folder", "quarantine_folder"] {
        if let Some(f) = eff.get(key)
            && !exists(f)
        {
            notes.push(format!(
                "{f}: {}",
                lang.pick(
                    "saknas, skapas vid första hämtningen",
                    "missing, created at the first fetch"
                )
            ));
        }
    }
    if exists(&source) {
        let mut detail = format!("{source}: {}", lang.pick("finns", "exists"));
        for n in notes {
            detail.push_str("; ");
            detail.push_str(&n);
        }
        run.step("folders", title(lang, "folders"), StepStatus::Ok, detail);
    } else {
        run.fail(
            "folders",
            title(lang, "folders"),
            format!(
                "{source}: {}",
                lang.pick(
                    "mappen att läsa (Mapp att läsa) finns inte i brevlådan",
                    "the folder to read (Source folder) does not exist in the mailbox"
                )
            ),
            lang.pick(
                "Ändra Mapp att läsa till en befintlig mapp (t.ex. Inbox) eller skapa mappen.",
                "Change Source folder to an existing folder (e.g. Inbox) or create the folder.",
            )
            .to_owned(),
        );
    }
}

fn explain_probe(
    lang: Lang,
    e: &ProbeError,
    eff: &Effective,
    user: &str,
    proto: &str,
) -> (String, String) {
    let client_id = eff.get("client_id").unwrap_or("<client id>");
    let app_only = eff.auth_flow().is_app_only();
    match e {
        ProbeError::Connect(m) => (
            m.clone(),
            lang.pick(
                "Kontrollera server och port, och att brandväggen tillåter utgående trafik dit.",
                "Check the server and port, and that the firewall allows outbound traffic there.",
            )
            .to_owned(),
        ),
        ProbeError::Protocol(m) => (
            m.clone(),
            lang.pick(
                "Kontrollera att servern och porten verkligen är en IMAP/POP3/SMTP-server med TLS.",
                "Check that the server and port really are an IMAP/POP3/SMTP server with TLS.",
            )
            .to_owned(),
        ),
        ProbeError::AuthRejected(m) if m.contains("5.7.139") => (
            m.clone(),
            match lang {
                Lang::Sv => format!(
                    "SMTP AUTH är avstängt för klientorganisationen. Slå på det för brevlådan i Exchange Online PowerShell: Set-CASMailbox -Identity {user} -SmtpClientAuthenticationDisabled $false (eller för alla: Set-TransportConfig -SmtpClientAuthenticationDisabled $false), eller skicka via Graph."
                ),
                Lang::En => format!(
                    "SMTP AUTH is disabled for the tenant. Enable it for the mailbox in Exchange Online PowerShell: Set-CASMailbox -Identity {user} -SmtpClientAuthenticationDisabled $false (or for all: Set-TransportConfig -SmtpClientAuthenticationDisabled $false), or send through Graph."
                ),
            },
        ),
        ProbeError::AuthRejected(m) if app_only => (
            m.clone(),
            match lang {
                Lang::Sv => format!(
                    "Exchange godtog inte appens token för {user}. För {proto} med klienthemlighet eller certifikat måste appen registreras i Exchange och få rätt till brevlådan: i Exchange Online PowerShell kör New-ServicePrincipal -AppId {client_id} -ObjectId <objekt-ID för Företagsprogrammet (inte appregistreringens)> och sedan Add-MailboxPermission -Identity {user} -User <tjänstens huvudnamns ID> -AccessRights FullAccess. Kontrollera också att behörigheten IMAP.AccessAsApp / POP.AccessAsApp / SMTP.SendAsApp har administratörsmedgivande."
                ),
                Lang::En => format!(
                    "Exchange did not accept the app's token for {user}. For {proto} with a client secret or certificate the app must be registered in Exchange and given the mailbox: in Exchange Online PowerShell run New-ServicePrincipal -AppId {client_id} -ObjectId <object id of the Enterprise application (not of the app registration)>, then Add-MailboxPermission -Identity {user} -User <service principal id> -AccessRights FullAccess. Also check that IMAP.AccessAsApp / POP.AccessAsApp / SMTP.SendAsApp has admin consent."
                ),
            },
        ),
        ProbeError::AuthRejected(m) => (
            m.clone(),
            match lang {
                Lang::Sv => format!(
                    "Exchange godtog inte inloggningen som {user}. Kontrollera att {proto} är påslaget för brevlådan (Set-CASMailbox -Identity {user} -ImapEnabled $true / -PopEnabled $true) och att Användarnamn (Exchange) är brevlådans adress."
                ),
                Lang::En => format!(
                    "Exchange did not accept the sign-in as {user}. Check that {proto} is enabled for the mailbox (Set-CASMailbox -Identity {user} -ImapEnabled $true / -PopEnabled $true) and that Username (Exchange) is the mailbox's address."
                ),
            },
        ),
    }
}

async fn smtp_step(
    run: &mut Run,
    store: &Arc<dyn KurirStore>,
    snap: &kurir_settings::SettingsSnapshot,
    scope: &Scope,
    eff: &Effective,
    ca: Result<Option<String>, String>,
    mailbox: Option<String>,
) {
    let lang = run.lang;
    let t = title(lang, "smtp");
    if matches!(scope, Scope::System) || mailbox.is_none() {
        run.skipped(
            "smtp",
            t,
            lang.pick(
                "Testas för användare och webbshopen.",
                "Tested for users and the webshop.",
            ),
        );
        return;
    }
    if run.failed {
        run.not_run("smtp", t);
        return;
    }
    let user = mailbox.unwrap_or_default();
    let host = eff
        .get("smtp_host")
        .unwrap_or("smtp.office365.com")
        .to_owned();
    let port = eff.port("smtp_port").unwrap_or(587);
    let mode = eff.tls("smtp_tls").unwrap_or(TlsMode::StartTls);
    if mode == TlsMode::None {
        // No token is fetched, let alone sent: XOAUTH2 without TLS would hand the bearer token
        // to anyone on the path (settings validation refuses this too).
        run.step(
            "smtp",
            t,
            StepStatus::Warning,
            lang.pick(
                "SMTP-kryptering (smtp_tls) är none: Kurir skickar aldrig en åtkomsttoken (XOAUTH2) utan TLS, så SMTP provades inte.",
                "SMTP encryption (smtp_tls) is none: Kurir never sends an access token (XOAUTH2) without TLS, so SMTP was not tried.",
            )
            .to_owned(),
        );
        run.last().fix = Some(
            lang.pick(
                "Sätt SMTP-kryptering till starttls (port 587) eller tls (port 465): kurir settings set smtp_tls=starttls",
                "Set SMTP encryption to starttls (port 587) or tls (port 465): kurir settings set smtp_tls=starttls",
            )
            .to_owned(),
        );
        return;
    }
    let outcome = match get_token(store, snap, scope, Resource::Exchange).await {
        Ok(tok) => {
            probe::smtp(
                &host,
                port,
                mode,
                ca.ok().flatten().as_deref(),
                &user,
                tok.secret.expose_secret(),
            )
            .await
        }
        Err(TokenFailure::Entra(e)) => Err(ProbeError::AuthRejected(
            e.explain(lang.entra()).summary.clone(),
        )),
        Err(_) => Err(ProbeError::Protocol(
            lang.pick("ingen Exchange-token", "no Exchange token")
                .to_owned(),
        )),
    };
    match outcome {
        Ok(()) => run.step(
            "smtp",
            t,
            StepStatus::Ok,
            format!(
                "{host}:{port} {} {user}",
                lang.pick("godtog inloggning som", "accepted sign-in as")
            ),
        ),
        Err(e) => {
            let (detail, fix) = explain_probe(lang, &e, eff, &user, "SMTP");
            // Mail can still be sent through Graph: SMTP matters only where the outbox sends by
            // SMTP (or the ERP relays through Kurir's listener to smtp.office365.com).
            run.step("smtp", t, StepStatus::Warning, detail);
            run.last().fix = Some(fix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kurir_settings::{Layer, SettingsSnapshot};

    /// Test connection tried a POP3 account without a port on 993 (IMAP's port) instead of
    /// POP3's 995, which the intake connects to.
    #[test]
    fn pop3_test_connection_without_a_port_uses_995_not_993() {
        let mut snap = SettingsSnapshot::default();
        let mut layer = Layer::default();
        layer
            .set_plain("protocol", "pop3")
            .set_plain("pop3_host", "pop.example");
        snap.accounts.insert("Inkorg".into(), layer);
        let eff = snap.resolve(&Scope::Account("Inkorg".into()));
        assert_eq!(server_of(&eff, Path::Pop3), ("pop.example".to_owned(), 995));
        assert_eq!(server_of(&eff, Path::Imap).1, 993);
        let mut with_port = snap.clone();
        with_port
            .accounts
            .get_mut("Inkorg")
            .unwrap()
            .set_plain("pop3_port", "1995");
        let eff = with_port.resolve(&Scope::Account("Inkorg".into()));
        assert_eq!(server_of(&eff, Path::Pop3).1, 1995);
    }
}
