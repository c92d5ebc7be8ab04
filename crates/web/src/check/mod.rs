//! Test connection: from the settings of one user, account or the webshop to a mailbox, step by
//! step, each step saying "ok" or exactly what to fix.
//!
//! The steps follow the path a message takes, so the first failure is the one to fix:
//! 1. settings complete (the validation problems),
//! 2. a token from Entra ID (AADSTS codes explained in the page's language),
//! 3. for app-only flows, least privilege: the roles the app's tokens carry against what the
//!    configured transports need, missing ones with the fix, extra ones flagged,
//! 4. the mailbox reachable through Microsoft Graph (404 / 403 explained; a mailbox outside the
//!    app's access policy or RBAC scope said as such),
//! 5. for IMAP / POP3 accounts: connect + XOAUTH2 (service principal and mailbox permission
//!    explained); for users and the webshop: SMTP AUTH XOAUTH2 (5.7.139 explained), which only
//!    matters when mail is sent by SMTP, so its failure is a warning,
//! 6. folders exist.
//!
//! After a failure, later steps are "not run": their outcome would say nothing.
//! The same report serves the UI, the REST API and `kurir check`.
//!
//! Layout: this file runs the steps in order and keeps the report; each step is a file of its
//! own (`settings.rs`, `token.rs`, `mailbox.rs`, `signin.rs` for IMAP/POP3, `smtp.rs`,
//! `folders.rs`), and every text is in the Swedish and English tables of `texts.rs`.

use std::sync::Arc;
use std::time::Duration;

use kurir_settings::{Effective, Protocol, Scope, SettingsSnapshot};
use kurir_store::KurirStore;
use serde::Serialize;

use crate::i18n::Lang;
pub use texts::CheckTexts;

mod folders;
mod mailbox;
mod permissions;
mod settings;
mod signin;
mod smtp;
pub(crate) mod texts;
mod token;

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
    /// Stable id: `settings`, `token`, `permissions`, `mailbox`, `imap`, `pop3`, `smtp`, `folders`.
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

/// The steps run so far.
struct Run {
    lang: Lang,
    t: &'static CheckTexts,
    steps: Vec<Step>,
    failed: bool,
}

impl Run {
    fn new(lang: Lang) -> Run {
        Run {
            lang,
            t: lang.check_texts(),
            steps: Vec::new(),
            failed: false,
        }
    }

    fn title(&self, id: &str) -> String {
        let t = self.t;
        match id {
            "settings" => t.title_settings,
            "token" => t.title_token,
            "permissions" => t.title_permissions,
            "mailbox" => t.title_mailbox,
            "imap" => t.title_imap,
            "pop3" => t.title_pop3,
            "smtp" => t.title_smtp,
            _ => t.title_folders,
        }
        .to_owned()
    }

    fn step(&mut self, id: &'static str, status: StepStatus, detail: String) -> &mut Step {
        if status == StepStatus::Failed {
            self.failed = true;
        }
        let title = self.title(id);
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
        self.steps.last_mut().expect("a step was just pushed")
    }

    fn ok(&mut self, id: &'static str, detail: String) {
        self.step(id, StepStatus::Ok, detail);
    }

    fn fail(&mut self, id: &'static str, detail: String, fix: &str) -> &mut Step {
        let s = self.step(id, StepStatus::Failed, detail);
        s.fix = Some(fix.to_owned());
        s
    }

    /// It failed, but mail can still flow another way.
    fn warn(&mut self, id: &'static str, detail: String, fix: &str) {
        self.step(id, StepStatus::Warning, detail).fix = Some(fix.to_owned());
    }

    fn not_run(&mut self, id: &'static str) {
        self.step(id, StepStatus::NotRun, self.t.not_run.to_owned());
    }

    fn skipped(&mut self, id: &'static str, why: &str) {
        self.step(id, StepStatus::Skipped, why.to_owned());
    }

    /// True when step `id` should run: no earlier step failed (else it is marked "not run").
    fn gate(&mut self, id: &'static str) -> bool {
        if self.failed {
            self.not_run(id);
        }
        !self.failed
    }

    fn report(self, scope: &Scope) -> Report {
        let ok = !self.failed;
        crate::metrics::checks(scope, ok);
        Report {
            subject: scope.storage_key(),
            lang: self.lang.code(),
            ok,
            steps: self.steps,
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

/// What every step reads: the subject's settings, resolved once.
struct Ctx<'a> {
    store: &'a Arc<dyn KurirStore>,
    snap: &'a SettingsSnapshot,
    scope: &'a Scope,
    eff: Effective,
    path: Path,
    /// The mailbox the subject reads or sends as.
    mailbox: Option<String>,
    /// The extra CA certificate (`ca_file`), read once.
    ca: Result<Option<String>, String>,
}

impl<'a> Ctx<'a> {
    fn new(store: &'a Arc<dyn KurirStore>, snap: &'a SettingsSnapshot, scope: &'a Scope) -> Self {
        let eff = snap.resolve(scope);
        let path = match eff.protocol() {
            Some(Protocol::Imap) if matches!(scope, Scope::Account(_)) => Path::Imap,
            Some(Protocol::Pop3) if matches!(scope, Scope::Account(_)) => Path::Pop3,
            _ => Path::Graph,
        };
        let mailbox = match scope {
            Scope::Account(_) => eff.get("mailbox"),
            Scope::System => eff.get("default_sender"),
            _ => eff.get("email"),
        }
        .map(str::to_owned);
        let ca = match eff.get("ca_file") {
            None => Ok(None),
            Some(p) => std::fs::read_to_string(p)
                .map(Some)
                .map_err(|e| format!("Extra CA certificate (ca_file) {p}: {e}")),
        };
        Ctx {
            store,
            snap,
            scope,
            eff,
            path,
            mailbox,
            ca,
        }
    }

    /// The extra CA certificate, when one is set and readable.
    fn ca_pem(&self) -> Option<String> {
        self.ca.as_ref().ok().cloned().flatten()
    }

    fn is_account(&self) -> bool {
        matches!(self.scope, Scope::Account(_))
    }
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

/// Runs Test connection for `scope` and returns the report; never fails as a whole (every
/// failure is a step).
pub async fn run(store: Arc<dyn KurirStore>, scope: &Scope, lang: Lang) -> Report {
    let mut run = Run::new(lang);
    let snap = match store.snapshot().await {
        Ok(s) => s,
        Err(e) => {
            run.fail("settings", e.to_string(), run.t.store_failed_fix);
            return run.report(scope);
        }
    };
    let ctx = Ctx::new(&store, &snap, scope);
    settings::step(&mut run, &ctx);
    let token = token::step(&mut run, &ctx).await;
    let graph_roles = permissions::step(&mut run, &ctx, token.as_ref()).await;
    mailbox::step(&mut run, &ctx, token.as_ref(), graph_roles.as_deref()).await;
    let imap_folders = signin::step(&mut run, &ctx, token.as_ref()).await;
    smtp::step(&mut run, &ctx).await;
    folders::step(&mut run, &ctx, token.as_ref(), imap_folders).await;
    run.report(scope)
}

/// An HTTP client for Graph that trusts the extra CA as well and never follows a redirect (a
/// bearer token must not go anywhere else).
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

/// `{mailbox}` for a Graph URL path.
fn path_segment(mailbox: &str) -> String {
    url::form_urlencoded::byte_serialize(mailbox.as_bytes()).collect()
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
