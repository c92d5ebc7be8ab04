//! Kurir's Entra set-up as a wizard page (issue #17.1), the same work as `kurir setup entra`:
//! the administrator picks what the app must do, starts, and is shown the device code to sign
//! in with at Microsoft's page; the page follows the set-up step by step (it reloads itself every
//! two seconds while it runs, no script needed) and ends with what was created, the Exchange
//! Online PowerShell to run, and Test connection, or with the explanation of what stopped it.
//!
//! The work itself is in `kurir_service::setup` (which depends on this crate), handed in as an
//! [`EntraSetup`] when the service starts; a process without it (tests of the UI alone) says so.
//! One set-up runs at a time per process.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::*;
use crate::auth::{Admin, AdminForm, PageLang};
use crate::check::Report;

/// What the wizard asks the set-up to do.
#[derive(Debug, Clone)]
pub struct WizardRequest {
    pub tenant: String,
    pub display_name: String,
    /// `graph,imap,pop,smtp` (as `kurir setup entra --transports`).
    pub transports: String,
    /// `certificate` or `secret`.
    pub credential: String,
    pub self_rotation: bool,
    pub mailboxes: Vec<String>,
    pub lang: Lang,
}

/// The set-up, provided by the service.
pub trait EntraSetup: Send + Sync {
    /// Runs the whole set-up, reporting into `job`; never panics on a refusal (it finishes the
    /// job with the explanation).
    fn run(
        &self,
        store: Arc<dyn kurir_store::KurirStore>,
        request: WizardRequest,
        job: Arc<SetupJob>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// What the set-up produced, for the page.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// (label, value) lines: the app, its ids, what was granted, the credential.
    pub facts: Vec<(String, String)>,
    pub powershell: Vec<String>,
    pub check: Option<Report>,
}

#[derive(Debug, Clone, Default)]
pub struct JobState {
    /// (verification URL, user code) once Entra handed out the device code.
    pub sign_in: Option<(String, String)>,
    pub signed_in_as: Option<String>,
    pub steps: Vec<String>,
    pub done: Option<Result<Outcome, String>>,
}

/// One set-up's progress, shared between the task running it and the page.
#[derive(Debug, Default)]
pub struct SetupJob {
    state: Mutex<JobState>,
}

impl SetupJob {
    fn with<R>(&self, f: impl FnOnce(&mut JobState) -> R) -> R {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }
    pub fn sign_in(&self, url: &str, code: &str) {
        self.with(|s| s.sign_in = Some((url.to_owned(), code.to_owned())));
    }
    pub fn signed_in(&self, user: &str) {
        self.with(|s| s.signed_in_as = Some(user.to_owned()));
    }
    pub fn step(&self, text: &str) {
        // Bounded: a set-up has a dozen steps.
        self.with(|s| {
            if s.steps.len() < 100 {
                s.steps.push(text.to_owned())
            }
        });
    }
    pub fn finish(&self, outcome: Result<Outcome, String>) {
        self.with(|s| s.done = Some(outcome));
    }
    pub fn snapshot(&self) -> JobState {
        self.with(|s| s.clone())
    }
    fn running(&self) -> bool {
        self.with(|s| s.done.is_none())
    }
}

/// The wizard's own texts.
pub struct WizardTexts {
    pub title: &'static str,
    pub intro: &'static str,
    pub tenant: &'static str,
    pub name: &'static str,
    pub transports: &'static str,
    pub graph: &'static str,
    pub imap: &'static str,
    pub pop: &'static str,
    pub smtp: &'static str,
    pub credential: &'static str,
    pub certificate: &'static str,
    pub secret: &'static str,
    pub rotation: &'static str,
    pub mailboxes: &'static str,
    pub mailboxes_help: &'static str,
    pub start: &'static str,
    pub sign_in_at: &'static str,
    pub enter_code: &'static str,
    pub waiting: &'static str,
    pub signed_in_as: &'static str,
    pub done: &'static str,
    pub failed: &'static str,
    pub powershell: &'static str,
    pub check: &'static str,
    pub again: &'static str,
    pub unavailable: &'static str,
    pub running_already: &'static str,
}

pub static SV: WizardTexts = WizardTexts {
    title: "Konfigurera Microsoft Entra ID",
    intro: "Kurir registrerar sig själv i Entra ID: en administratör för klientorganisationen loggar in med en kod, och Kurir skapar appregistreringen och dess tjänsteobjekt, beviljar exakt de programbehörigheter som valen nedan behöver (administratörsmedgivande), skapar inloggningsuppgiften och skriver systeminställningarna. Det går att köra igen: det som finns återanvänds.",
    tenant: "Katalog-ID (klientorganisation) eller domän",
    name: "Appregistreringens namn",
    transports: "Appen ska få",
    graph: "läsa och skicka e-post via Microsoft Graph (Mail.ReadWrite, Mail.Send)",
    imap: "läsa via IMAP (IMAP.AccessAsApp)",
    pop: "läsa via POP3 (POP.AccessAsApp)",
    smtp: "skicka via SMTP (SMTP.SendAsApp)",
    credential: "Inloggningsuppgift",
    certificate: "Certifikat (rekommenderas: skapas här, bara den publika delen laddas upp)",
    secret: "Klienthemlighet",
    rotation: "Låt appen byta sin inloggningsuppgift själv före slutdatumet",
    mailboxes: "Brevlådor",
    mailboxes_help: "Kommaseparerade; används i PowerShell-kommandona som begränsar appen till dem.",
    start: "Logga in som administratör och konfigurera",
    sign_in_at: "Öppna",
    enter_code: "och ange koden",
    waiting: "Väntar på inloggningen …",
    signed_in_as: "Inloggad som",
    done: "Klart. Entra ID är konfigurerat och systeminställningarna är skrivna.",
    failed: "Konfigurationen stoppades",
    powershell: "Kör i Exchange Online PowerShell (kan inte göras via Graph)",
    check: "Testa anslutning",
    again: "Kör igen",
    unavailable: "Konfigurationen kan bara köras av tjänsten (kurir serve).",
    running_already: "En konfiguration pågår redan.",
};

pub static EN: WizardTexts = WizardTexts {
    title: "Set up Microsoft Entra ID",
    intro: "Kurir registers itself in Entra ID: an administrator of the tenant signs in with a code, and Kurir creates the app registration and its service principal, grants exactly the application permissions the choices below need (admin consent), creates the credential and writes the system settings. Safe to run again: what exists is reused.",
    tenant: "Directory (tenant) ID or domain",
    name: "App registration name",
    transports: "The app may",
    graph: "read and send mail through Microsoft Graph (Mail.ReadWrite, Mail.Send)",
    imap: "read by IMAP (IMAP.AccessAsApp)",
    pop: "read by POP3 (POP.AccessAsApp)",
    smtp: "send by SMTP (SMTP.SendAsApp)",
    credential: "Credential",
    certificate: "Certificate (recommended: made here, only its public part is uploaded)",
    secret: "Client secret",
    rotation: "Let the app replace its own credential before it expires",
    mailboxes: "Mailboxes",
    mailboxes_help: "Comma separated; named in the PowerShell commands that limit the app to them.",
    start: "Sign in as administrator and set up",
    sign_in_at: "Open",
    enter_code: "and enter the code",
    waiting: "Waiting for the sign-in …",
    signed_in_as: "Signed in as",
    done: "Done. Entra ID is set up and the system settings are written.",
    failed: "The set-up stopped",
    powershell: "Run in Exchange Online PowerShell (Graph cannot do these)",
    check: "Test connection",
    again: "Run again",
    unavailable: "The set-up can only be run by the service (kurir serve).",
    running_already: "A set-up is already running.",
};

fn texts(lang: Lang) -> &'static WizardTexts {
    match lang {
        Lang::Sv => &SV,
        Lang::En => &EN,
    }
}

pub(super) fn routes() -> Router<Shared> {
    Router::new().route("/setup", get(setup_page).post(setup_start))
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupTpl {
    l: Layout,
    w: &'static WizardTexts,
    tenant: String,
    name: String,
    job: Option<JobState>,
    running: bool,
    available: bool,
    /// Test connection's steps after a finished set-up.
    check: Vec<super::subjects::StepView>,
}

async fn setup_page(
    State(state): State<Shared>,
    admin: Admin,
    PageLang(lang): PageLang,
    Query(q): Query<PageQuery>,
) -> Response {
    let snap = match state.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let w = texts(lang);
    let l = layout(
        &state,
        &snap,
        &admin,
        lang,
        "setup",
        w.title.to_owned(),
        "/setup",
    )
    .await;
    let eff = snap.resolve(&Scope::System);
    let job = state
        .setup_job
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let running = job.as_ref().is_some_and(|j| j.running());
    let job = job.map(|j| j.snapshot());
    let check = match job.as_ref().and_then(|j| j.done.as_ref()) {
        Some(Ok(Outcome {
            check: Some(report),
            ..
        })) => super::subjects::step_views(report, lang),
        _ => Vec::new(),
    };
    page(
        SetupTpl {
            l,
            w,
            tenant: eff.get("tenant_id").unwrap_or_default().to_owned(),
            name: "Kurir (Monitor ERP e-mail)".to_owned(),
            job,
            check,
            running,
            available: state.entra_setup.get().is_some(),
        },
        q.switched(),
        StatusCode::OK,
    )
}

async fn setup_start(State(state): State<Shared>, form: AdminForm) -> Response {
    let w = texts(form.lang);
    let Some(runner) = state.entra_setup.get().cloned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, w.unavailable).into_response();
    };
    let f = &form.form;
    let on = |k: &str| f.get(k).is_some_and(|v| v == "on" || v == "true");
    let transports: Vec<&str> = ["graph", "imap", "pop", "smtp"]
        .into_iter()
        .filter(|t| on(&format!("t_{t}")))
        .collect();
    let request = WizardRequest {
        tenant: f
            .get("tenant")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
        display_name: f
            .get("name")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "Kurir (Monitor ERP e-mail)".to_owned()),
        transports: transports.join(","),
        credential: f
            .get("credential")
            .cloned()
            .unwrap_or_else(|| "certificate".into()),
        self_rotation: on("rotation"),
        mailboxes: f
            .get("mailboxes")
            .map(|m| {
                m.split([',', ';', ' ', '\n'])
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .take(50)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        lang: form.lang,
    };
    let job = {
        let mut slot = state.setup_job.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|j| j.running()) {
            return (StatusCode::CONFLICT, w.running_already).into_response();
        }
        let job = Arc::new(SetupJob::default());
        *slot = Some(job.clone());
        job
    };
    tracing::info!(admin = %form.admin.name, "Entra set-up started from the web UI");
    tokio::spawn(runner.run(state.store.clone(), request, job));
    Redirect::to("/setup").into_response()
}
