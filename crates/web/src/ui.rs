//! The admin web UI: the seed's screens — Systeminställningar, Användare (with WEBSHOP),
//! Inställningar för inkommande e-post, Webbshop Administration — plus an overview with alarms.
//!
//! Each subject page is one form of every setting that can be written there. A field left empty
//! inherits (its placeholder shows the inherited value and where it comes from); "Reset" removes
//! a value set here. Secret fields are write-only: the page shows only `••••cdef (set on DATE)`
//! and an empty password input, which keeps the secret when left empty. Validation problems
//! appear under the field they concern, with the fix.
//!
//! Pages are rendered on the server (askama, checked at compile time) and work without
//! JavaScript; the Content-Security-Policy forbids inline script anyway.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kurir_settings::{
    KEYS, Kind, Level, Problem, Scope, SettingsSnapshot, Severity, Source, StoredValue,
    WEBSHOP_USER, normalize_account_name, normalize_user_code,
};
use kurir_store::{Change, StoreError};

use crate::AppState;
use crate::alarms::{self, Alarm};
use crate::auth::{
    Admin, AdminForm, LANG_COOKIE, LOGIN_CSRF_COOKIE, PageLang, SESSION_COOKIE, cookie, same,
    set_cookie,
};
use crate::check::{self, Report};
use crate::edit::{Edit, added_custom_endpoints, to_changes};
use crate::i18n::{Lang, Texts};

type Shared = Arc<AppState>;
type FormMap = HashMap<String, String>;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/static/style.css", get(style))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/", get(overview))
        .route("/system", get(system_page).post(system_save))
        .route("/system/check", post(system_check))
        .route("/users", get(users_page).post(users_add))
        .route("/users/{code}", get(user_page).post(user_save))
        .route("/users/{code}/check", post(user_check))
        .route("/users/{code}/remove", post(user_remove))
        .route("/accounts", get(accounts_page).post(accounts_add))
        .route("/accounts/{name}", get(account_page).post(account_save))
        .route("/accounts/{name}/check", post(account_check))
        .route("/accounts/{name}/remove", post(account_remove))
        .route("/webshop", get(webshop_page).post(webshop_save))
        .route("/webshop/check", post(webshop_check))
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../static/style.css"),
    )
        .into_response()
}

// ---- layout ----------------------------------------------------------------------------------

/// What every page's frame needs.
pub struct Layout {
    pub t: &'static Texts,
    pub lang: &'static str,
    pub other_lang: &'static str,
    pub switch_href: String,
    pub admin: String,
    pub csrf: String,
    /// Which navigation entry is current: overview, system, users, accounts, webshop.
    pub nav: &'static str,
    pub title: String,
    pub alarms: Vec<AlarmView>,
    /// The server switch `allow_custom_endpoints` is on: every page says so (issue #13.1), since
    /// secrets may then go to hosts other than Microsoft's.
    pub custom_endpoints: bool,
}

pub struct AlarmView {
    pub severity: &'static str,
    pub message: String,
    pub fix: String,
    pub href: String,
}

fn href(scope: &Scope) -> String {
    let enc = |s: &str| {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    match scope {
        Scope::System => "/system".into(),
        Scope::User(c) => format!("/users/{}", enc(c)),
        Scope::Account(a) => format!("/accounts/{}", enc(a)),
        Scope::Webshop => "/webshop".into(),
    }
}

fn alarm_views(alarms: &[Alarm]) -> Vec<AlarmView> {
    alarms
        .iter()
        .map(|a| AlarmView {
            severity: match a.severity {
                alarms::AlarmSeverity::Error => "error",
                alarms::AlarmSeverity::Warning => "warning",
            },
            message: a.message.clone(),
            fix: a.fix.clone(),
            href: alarms::href(a).unwrap_or_else(|| href(&a.scope)),
        })
        .collect()
}

async fn current_alarms(state: &AppState, snap: &SettingsSnapshot, lang: Lang) -> Vec<Alarm> {
    let now = time::OffsetDateTime::now_utc();
    let health = state.store.health(None).await.unwrap_or_default();
    let mut out = alarms::compute(snap, &health, now, lang);
    if let Ok(counts) = state.store.outbox_counts_by_sender().await {
        out.extend(alarms::outbox_alarms(&counts, lang));
    }
    out
}

/// The frame of a page; `path` may carry a query (the language switch keeps it).
pub(crate) async fn layout(
    state: &AppState,
    snap: &SettingsSnapshot,
    admin: &Admin,
    lang: Lang,
    nav: &'static str,
    title: String,
    path: &str,
) -> Layout {
    let sep = if path.contains('?') { '&' } else { '?' };
    Layout {
        t: lang.texts(),
        lang: lang.code(),
        other_lang: lang.other().code(),
        switch_href: format!("{path}{sep}lang={}", lang.other().code()),
        admin: admin.name.clone(),
        csrf: admin.csrf.clone(),
        nav,
        title,
        alarms: alarm_views(&current_alarms(state, snap, lang).await),
        custom_endpoints: snap.custom_endpoints_allowed(),
    }
}

/// Renders a template; a `lang` query switch also stores the choice in a cookie.
pub(crate) fn page(
    tpl: impl Template,
    lang_switched: Option<Lang>,
    status: StatusCode,
) -> Response {
    match tpl.render() {
        Ok(html) => {
            let mut resp = (status, Html(html)).into_response();
            if let Some(l) = lang_switched
                && let Ok(v) = set_cookie(LANG_COOKIE, l.code(), 365 * 24 * 3600, false).parse()
            {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

#[derive(serde::Deserialize, Default)]
pub struct PageQuery {
    lang: Option<String>,
    saved: Option<String>,
    next: Option<String>,
    error: Option<String>,
}

impl PageQuery {
    fn switched(&self) -> Option<Lang> {
        self.lang.as_deref().and_then(Lang::parse)
    }
}

pub(crate) fn store_error(e: StoreError) -> Response {
    tracing::error!(error = %e, "store error");
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
}

// ---- login -----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginTpl {
    t: &'static Texts,
    lang: &'static str,
    other_lang: &'static str,
    csrf: String,
    next: String,
    failed: bool,
}

/// The first path segments of the pages a sign-in may continue to (see [`routes`] and
/// `mail::routes`); `""` is the overview at `/`.
const NEXT_PREFIXES: &[&str] = &[
    "",
    "system",
    "users",
    "accounts",
    "webshop",
    "outbox",
    "incoming",
    "quarantine",
    "health",
];

/// Only a local page of this UI may be redirected to after login (no open redirect).
///
/// Browsers are lenient about what a `Location` means: they drop tabs and newlines (so
/// `/\t/evil.example` becomes `//evil.example`, another site), treat `\` as `/`, and some decode
/// `%2F`/`%5C`. So the value is refused unless it — and its percent-decoded form — is a single
/// leading `/` followed by no second `/` at the start, no backslash, no control character or
/// whitespace, and its first segment is one of Kurir's pages. Anything else goes to `/`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if is_local_page(n) => n.to_owned(),
        _ => "/".to_owned(),
    }
}

/// `%XX` decoded (invalid escapes kept as they are), lossy UTF-8: only for checking.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_local_page(next: &str) -> bool {
    fn plain(p: &str) -> bool {
        p.starts_with('/')
            && !p.starts_with("//")
            && !p
                .chars()
                .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
    }
    if next.len() > 2048 || !plain(next) {
        return false;
    }
    let decoded = percent_decode(next);
    if !plain(&decoded)
        || decoded.contains("//")
        || decoded.contains("/../")
        || decoded.ends_with("/..")
    {
        return false;
    }
    let path = decoded.split(['?', '#']).next().unwrap_or("");
    let first = path[1..].split('/').next().unwrap_or("");
    NEXT_PREFIXES.contains(&first)
}

async fn login_page(
    State(state): State<Shared>,
    PageLang(lang): PageLang,
    Query(q): Query<PageQuery>,
) -> Response {
    // Login CSRF: a random value in a cookie and in the form must match (double submit), so
    // another site cannot sign the browser in as someone else.
    let csrf = kurir_store::web::random_hex(16);
    let mut resp = page(
        LoginTpl {
            t: lang.texts(),
            lang: lang.code(),
            other_lang: lang.other().code(),
            csrf: csrf.clone(),
            next: safe_next(q.next.as_deref()),
            failed: q.error.is_some(),
        },
        q.switched(),
        StatusCode::OK,
    );
    if let Ok(v) = set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600, state.config.secure_cookies).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

async fn login(
    State(state): State<Shared>,
    PageLang(lang): PageLang,
    crate::auth::ClientIp(ip): crate::auth::ClientIp,
    headers: axum::http::HeaderMap,
    Form(form): Form<FormMap>,
) -> Response {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    let given = form.get("csrf").cloned().unwrap_or_default();
    if expected.is_empty() || !same(&expected, &given) {
        return (StatusCode::FORBIDDEN, lang.texts().csrf_refused).into_response();
    }
    let name = form.get("username").map(|s| s.trim()).unwrap_or_default();
    let password = secrecy::SecretString::from(form.get("password").cloned().unwrap_or_default());
    let next = safe_next(form.get("next").map(String::as_str));
    let attempt = match state.throttle.begin("web", ip, name).await {
        Ok(a) => a,
        Err(refusal) => {
            return crate::auth::throttled(refusal, lang.texts().login_throttled);
        }
    };
    let verified = state.store.verify_admin(name, &password).await;
    match &verified {
        Ok(true) => attempt.succeeded(),
        Ok(false) => attempt.failed(),
        Err(_) => drop(attempt),
    }
    match verified {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(admin = ?name, %ip, "failed admin sign-in");
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("error", "1")
                .append_pair("next", &next)
                .finish();
            return Redirect::to(&format!("/login?{q}")).into_response();
        }
        Err(e) => return store_error(e),
    }
    let session = match state
        .store
        .create_session(name, state.config.session_ttl)
        .await
    {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    tracing::info!(admin = name, "admin signed in");
    use secrecy::ExposeSecret;
    let mut resp = Redirect::to(&next).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = set_cookie(
        SESSION_COOKIE,
        session.token.expose_secret(),
        state.config.session_ttl.whole_seconds(),
        state.config.secure_cookies,
    )
    .parse()
    {
        h.append(header::SET_COOKIE, v);
    }
    if let Ok(v) = set_cookie(LOGIN_CSRF_COOKIE, "", 0, state.config.secure_cookies).parse() {
        h.append(header::SET_COOKIE, v);
    }
    resp
}

async fn logout(State(state): State<Shared>, AdminForm { admin, .. }: AdminForm) -> Response {
    if let Err(e) = state.store.delete_session(&admin.token).await {
        return store_error(e);
    }
    let mut resp = Redirect::to("/login").into_response();
    if let Ok(v) = set_cookie(SESSION_COOKIE, "", 0, state.config.secure_cookies).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

// ---- overview --------------------------------------------------------------------------------

pub struct SubjectRow {
    pub name: String,
    pub href: String,
    pub check_href: String,
    pub errors: usize,
    pub warnings: usize,
}

pub struct HealthRow {
    pub account: String,
    pub last_success: String,
    pub last_error: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewTpl {
    l: Layout,
    subjects: Vec<SubjectRow>,
    health: Vec<HealthRow>,
}

fn counts(problems: &[Problem]) -> (usize, usize) {
    let e = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    (e, problems.len() - e)
}

fn all_scopes(snap: &SettingsSnapshot) -> Vec<Scope> {
    let mut v = vec![Scope::System];
    v.extend(snap.users.keys().map(|c| Scope::User(c.clone())));
    v.extend(snap.accounts.keys().map(|a| Scope::Account(a.clone())));
    v.push(Scope::Webshop);
    v
}

async fn overview(
    State(state): State<Shared>,
    admin: Admin,
    PageLang(lang): PageLang,
    Query(q): Query<PageQuery>,
) -> Response {
    let snap = match state.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let today = crate::today();
    let subjects = all_scopes(&snap)
        .into_iter()
        .map(|s| {
            let (errors, warnings) = counts(&snap.validate(&s, today));
            SubjectRow {
                name: lang.subject(&s),
                check_href: format!("{}/check", href(&s)),
                href: href(&s),
                errors,
                warnings,
            }
        })
        .collect();
    let t = lang.texts();
    let health = state
        .store
        .health(None)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|h| HealthRow {
            account: h.account,
            last_success: h
                .last_success
                .as_deref()
                .map(crate::mail::fmt_time)
                .unwrap_or_else(|| t.never.to_owned()),
            last_error: h.last_error.unwrap_or_default(),
        })
        .collect();
    let l = layout(
        &state,
        &snap,
        &admin,
        lang,
        "overview",
        t.nav_overview.into(),
        "/",
    )
    .await;
    page(
        OverviewTpl {
            l,
            subjects,
            health,
        },
        q.switched(),
        StatusCode::OK,
    )
}

// ---- subject pages ---------------------------------------------------------------------------

pub struct ProblemView {
    pub severity: &'static str,
    pub severity_text: &'static str,
    pub message: String,
    pub fix: String,
    /// Where to fix it, when that is another page.
    pub fix_at: Option<(String, String)>,
}

pub struct FieldView {
    pub name: &'static str,
    pub label: &'static str,
    /// The label in the other language, so a consultant and an ERP admin recognise the field.
    pub alt_label: &'static str,
    pub help: &'static str,
    /// `text`, `password`, `date`, `select`, `textarea`.
    pub input: &'static str,
    pub options: Vec<(String, bool)>,
    pub empty_option: String,
    pub own_value: String,
    pub placeholder: String,
    pub set_here: bool,
    pub effective: String,
    /// `system`, `user`, `account`, `webshop`, `default`: for people, the text below; for tests
    /// and scripts, this attribute.
    pub source_key: &'static str,
    pub source_text: String,
    pub source_href: Option<String>,
    pub error: Option<String>,
    pub problems: Vec<ProblemView>,
}

pub struct StepView {
    pub id: &'static str,
    pub title: String,
    pub status: &'static str,
    pub status_text: &'static str,
    pub detail: String,
    pub fix: String,
    pub microsoft_message: String,
    pub trace_id: String,
}

#[derive(Template)]
#[template(path = "subject.html")]
struct SubjectTpl {
    l: Layout,
    intro: &'static str,
    action: String,
    check_action: String,
    remove_action: String,
    saved: bool,
    form_error: bool,
    fields: Vec<FieldView>,
    other_problems: Vec<ProblemView>,
    report: Option<Vec<StepView>>,
    report_ok: bool,
    /// Webshop under according-to-user-settings: the user it sends as.
    sends_as: Option<(String, String)>,
    webshop_user_missing: bool,
    readonly: Vec<FieldView>,
}

fn problem_view(p: &Problem, lang: Lang, here: &Scope) -> ProblemView {
    let t = lang.texts();
    ProblemView {
        severity: match p.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        },
        severity_text: match p.severity {
            Severity::Error => t.error_word,
            Severity::Warning => t.warning_word,
        },
        message: match lang {
            Lang::Sv => p.message_sv.clone(),
            Lang::En => p.message.clone(),
        },
        fix: match lang {
            Lang::Sv => p.fix_sv.clone(),
            Lang::En => p.fix.clone(),
        },
        fix_at: (p.fix_at != *here).then(|| (lang.subject(&p.fix_at), href(&p.fix_at))),
    }
}

fn source_key(s: Source) -> &'static str {
    s.as_str()
}

/// The text shown for a value (secrets masked, certificates summarised).
fn shown(v: &Option<StoredValue>, kind: Kind, t: &Texts) -> String {
    match v {
        None => t.not_set.to_owned(),
        Some(StoredValue::Plain(p)) if kind == Kind::CertificatePem => {
            let until = crate::alarms::certificate_not_after(p)
                .map(|d| format!(", notAfter {d}"))
                .unwrap_or_default();
            format!("PEM ({} bytes{until})", p.len())
        }
        Some(StoredValue::Plain(p)) => p.clone(),
        Some(StoredValue::Secret(info)) => {
            format!("{} ({} {})", info.masked, t.set_on, info.set_on)
        }
    }
}

/// The field rows of a subject page.
fn field_views(
    snap: &SettingsSnapshot,
    scope: &Scope,
    lang: Lang,
    errors: &BTreeMap<String, String>,
    entered: &FormMap,
    only: Option<&[&str]>,
) -> (Vec<FieldView>, Vec<ProblemView>) {
    let t = lang.texts();
    let level = scope.level();
    let eff = snap.resolve(scope);
    let layer = match scope {
        Scope::System => Some(&snap.system),
        Scope::User(c) => snap.users.get(c),
        Scope::Account(a) => snap.accounts.get(a),
        Scope::Webshop => Some(&snap.webshop),
    };
    let problems = snap.validate(scope, crate::today());
    let mut used = vec![false; problems.len()];
    let mut rows = Vec::new();
    // The server switch is not edited here (it is shown as a notice on every page instead).
    for def in KEYS
        .iter()
        .filter(|k| k.allowed_at(level) && !k.server_only())
    {
        if let Some(only) = only
            && !only.contains(&def.name)
        {
            continue;
        }
        let own = layer.and_then(|l| l.get(def.name));
        let set_here = own.is_some();
        let field = eff.field(def.name);
        // The webshop's own method is separate from the effective method it resolves to.
        let (eff_value, source, from) = if scope == &Scope::Webshop && def.name == "method" {
            match &eff.webshop_method {
                Some((m, s)) => (Some(StoredValue::Plain(m.clone())), *s, None),
                None => (None, Source::Default, None),
            }
        } else {
            match field {
                Some(f) => (f.value.clone(), f.source, f.from.clone()),
                None => (None, Source::Default, None),
            }
        };
        let source_text = if set_here {
            format!("{} ({})", t.set_here, lang.source(source))
        } else {
            match &from {
                Some(s) => format!("{} {}", t.inherited_from, lang.subject(s)),
                None if eff_value.is_some() => lang.pick("Standardvärde", "Default").to_owned(),
                None => t.not_set.to_owned(),
            }
        };
        let source_key = if set_here {
            source_key(source)
        } else {
            match &from {
                Some(s) => match s.level() {
                    Level::System => "system",
                    Level::User => "user",
                    Level::Account => "account",
                    Level::Webshop => "webshop",
                },
                None => "default",
            }
        };
        let choices: Option<&[&str]> = match def.kind {
            Kind::Choice(_) if def.name == "method" && level == Level::Webshop => {
                Some(kurir_settings::keys::WEBSHOP_METHODS)
            }
            Kind::Choice(c) => Some(c),
            _ => None,
        };
        let own_plain = own.and_then(StoredValue::plain).unwrap_or_default();
        let own_value = entered
            .get(&format!("v:{}", def.name))
            .filter(|_| !def.is_secret())
            .cloned()
            .unwrap_or_else(|| own_plain.to_owned());
        let effective = shown(&eff_value, def.kind, t);
        let input = match def.kind {
            Kind::Secret => "password",
            Kind::Date => "date",
            Kind::CertificatePem => "textarea",
            Kind::Choice(_) => "select",
            _ => "text",
        };
        let inherit_text = if set_here || eff_value.is_none() || from.as_ref() == Some(scope) {
            t.inherit_option.to_owned()
        } else {
            format!("{} {}", t.inherit_option, effective)
        };
        let mut pviews = Vec::new();
        for (i, p) in problems.iter().enumerate() {
            if p.field == def.name {
                used[i] = true;
                pviews.push(problem_view(p, lang, scope));
            }
        }
        rows.push(FieldView {
            name: def.name,
            label: lang.label(def),
            alt_label: lang.other().label(def),
            help: lang.help(def),
            input,
            options: choices
                .map(|c| {
                    c.iter()
                        .map(|o| ((*o).to_owned(), *o == own_value.as_str()))
                        .collect()
                })
                .unwrap_or_default(),
            empty_option: inherit_text,
            own_value: if def.is_secret() {
                String::new()
            } else {
                own_value
            },
            placeholder: if def.is_secret() {
                t.secret_hint.to_owned()
            } else if set_here {
                String::new()
            } else {
                effective.clone()
            },
            set_here,
            effective,
            source_key,
            source_text,
            source_href: from.as_ref().filter(|s| *s != scope).map(href),
            error: errors.get(def.name).cloned(),
            problems: pviews,
        });
    }
    let other = problems
        .iter()
        .zip(used)
        .filter(|(_, u)| !u)
        .map(|(p, _)| problem_view(p, lang, scope))
        .collect();
    (rows, other)
}

fn step_views(report: &Report, lang: Lang) -> Vec<StepView> {
    use crate::check::StepStatus as S;
    let t = lang.texts();
    report
        .steps
        .iter()
        .map(|s| StepView {
            id: s.id,
            title: s.title.clone(),
            status: match s.status {
                S::Ok => "ok",
                S::Failed => "failed",
                S::Warning => "warning",
                S::NotRun => "not-run",
                S::Skipped => "skipped",
            },
            status_text: match s.status {
                S::Ok => t.step_ok,
                S::Failed => t.step_failed,
                S::Warning => t.warning_word,
                S::NotRun => t.step_not_run,
                S::Skipped => t.step_skipped,
            },
            detail: s.detail.clone(),
            fix: s.fix.clone().unwrap_or_default(),
            microsoft_message: s.microsoft_message.clone().unwrap_or_default(),
            trace_id: s.trace_id.clone().unwrap_or_default(),
        })
        .collect()
}

/// Extra state of a subject page after a POST.
#[derive(Default)]
struct Extras {
    saved: bool,
    errors: BTreeMap<String, String>,
    entered: FormMap,
    report: Option<Report>,
    switched: Option<Lang>,
}

async fn subject(state: &AppState, admin: &Admin, lang: Lang, scope: Scope, x: Extras) -> Response {
    let snap = match state.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let t = lang.texts();
    let exists = match &scope {
        Scope::User(c) => snap.users.contains_key(c),
        Scope::Account(a) => snap.accounts.contains_key(a),
        _ => true,
    };
    if !exists {
        return (
            StatusCode::NOT_FOUND,
            format!("{}: 404", lang.subject(&scope)),
        )
            .into_response();
    }
    let (nav, intro) = match &scope {
        Scope::System => ("system", t.system_intro),
        Scope::User(_) => ("users", t.users_intro),
        Scope::Account(_) => ("accounts", t.accounts_intro),
        Scope::Webshop => ("webshop", t.webshop_intro),
    };
    let eff = snap.resolve(&scope);
    // The webshop under according-to-user-settings is user WEBSHOP: only its method is edited
    // here, the rest is shown read-only with a link to the user.
    let as_user = (scope == Scope::Webshop)
        .then(|| eff.sends_as.clone())
        .flatten();
    let only: Option<&[&str]> = as_user.as_ref().map(|_| &["method"][..]);
    let (fields, other_problems) = field_views(&snap, &scope, lang, &x.errors, &x.entered, only);
    let readonly = match &as_user {
        Some(u) if snap.users.contains_key(u) => {
            field_views(
                &snap,
                &Scope::User(u.clone()),
                lang,
                &BTreeMap::new(),
                &FormMap::new(),
                None,
            )
            .0
        }
        _ => Vec::new(),
    };
    let webshop_user_missing = as_user
        .as_ref()
        .is_some_and(|u| !snap.users.contains_key(u));
    let base = href(&scope);
    let l = layout(state, &snap, admin, lang, nav, lang.subject(&scope), &base).await;
    let status = if x.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page(
        SubjectTpl {
            l,
            intro,
            check_action: format!("{base}/check"),
            remove_action: match &scope {
                Scope::User(_) | Scope::Account(_) => format!("{base}/remove"),
                _ => String::new(),
            },
            action: base,
            saved: x.saved,
            form_error: !x.errors.is_empty(),
            fields,
            other_problems,
            report_ok: x.report.as_ref().is_some_and(|r| r.ok),
            report: x.report.as_ref().map(|r| step_views(r, lang)),
            sends_as: as_user.map(|u| {
                let h = href(&Scope::User(u.clone()));
                (u, h)
            }),
            webshop_user_missing,
            readonly,
        },
        x.switched,
        status,
    )
}

/// Applies a subject form: `reset=KEY` unsets one key; otherwise every `v:KEY` is compared with
/// what is stored here (empty = inherit; an empty secret keeps the stored one).
async fn save(
    state: &AppState,
    admin: &Admin,
    lang: Lang,
    scope: Scope,
    form: FormMap,
) -> Response {
    let snap = match state.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let layer = match &scope {
        Scope::System => snap.system.clone(),
        Scope::User(c) => snap.users.get(c).cloned().unwrap_or_default(),
        Scope::Account(a) => snap.accounts.get(a).cloned().unwrap_or_default(),
        Scope::Webshop => snap.webshop.clone(),
    };
    let mut edits = Vec::new();
    if let Some(k) = form.get("reset") {
        edits.push(Edit::Unset(k.clone()));
    } else {
        for def in KEYS
            .iter()
            .filter(|k| k.allowed_at(scope.level()) && !k.server_only())
        {
            let Some(raw) = form.get(&format!("v:{}", def.name)) else {
                continue;
            };
            let here = layer.get(def.name);
            if def.is_secret() {
                if !raw.is_empty() {
                    edits.push(Edit::Set(def.name.into(), raw.clone()));
                }
            } else if raw.trim().is_empty() {
                if here.is_some() {
                    edits.push(Edit::Unset(def.name.into()));
                }
            } else {
                let changed = match here {
                    Some(StoredValue::Plain(v)) => {
                        // Compare the normalised form so an unchanged field is not rewritten.
                        kurir_settings::parse_value(def, scope.level(), raw)
                            .map(|p| p != *v)
                            .unwrap_or(true)
                    }
                    _ => true,
                };
                if changed {
                    edits.push(Edit::Set(def.name.into(), raw.clone()));
                }
            }
        }
    }
    // Issue #13.1: a value that would send secrets outside the selected cloud is refused like a
    // bad value, with the reason and the fix in the page's language.
    let changes: Vec<Change> = match to_changes(&scope, edits).and_then(|c| {
        let added = added_custom_endpoints(&snap, &scope, &c);
        if added.is_empty() {
            Ok(c)
        } else {
            Err(added
                .into_iter()
                .map(|p| {
                    let (m, f) = match lang {
                        Lang::Sv => (p.message_sv, p.fix_sv),
                        Lang::En => (p.message, p.fix),
                    };
                    (p.field.to_owned(), format!("{m} {}: {f}", lang.texts().fix))
                })
                .collect())
        }
    }) {
        Ok(c) => c,
        Err(errors) => {
            return subject(
                state,
                admin,
                lang,
                scope,
                Extras {
                    errors,
                    entered: form,
                    ..Default::default()
                },
            )
            .await;
        }
    };
    if !changes.is_empty() {
        let names: Vec<String> = changes
            .iter()
            .map(|c| match c {
                Change::Set(k, _) | Change::Unset(k) => k.clone(),
            })
            .collect();
        if let Err(e) = state.store.apply(&scope, changes).await {
            return store_error(e);
        }
        tracing::info!(admin = %admin.name, scope = %scope.storage_key(), keys = ?names, "settings changed in the web UI");
    }
    Redirect::to(&format!("{}?saved=1", href(&scope))).into_response()
}

async fn run_check(state: &Shared, admin: &Admin, lang: Lang, scope: Scope) -> Response {
    let report = check::run(state.store.clone(), &scope, lang).await;
    subject(
        state,
        admin,
        lang,
        scope,
        Extras {
            report: Some(report),
            ..Default::default()
        },
    )
    .await
}

fn get_extras(q: &PageQuery) -> Extras {
    Extras {
        saved: q.saved.is_some(),
        switched: q.switched(),
        ..Default::default()
    }
}

fn user_scope(code: &str) -> Result<Scope, Response> {
    normalize_user_code(code)
        .map(Scope::User)
        .map_err(|e| (StatusCode::BAD_REQUEST, e).into_response())
}

fn account_scope(name: &str) -> Result<Scope, Response> {
    normalize_account_name(name)
        .map(Scope::Account)
        .map_err(|e| (StatusCode::BAD_REQUEST, e).into_response())
}

async fn system_page(
    State(s): State<Shared>,
    a: Admin,
    PageLang(l): PageLang,
    Query(q): Query<PageQuery>,
) -> Response {
    subject(&s, &a, l, Scope::System, get_extras(&q)).await
}
async fn system_save(
    State(s): State<Shared>,
    AdminForm {
        admin: a,
        lang: l,
        form: f,
    }: AdminForm,
) -> Response {
    save(&s, &a, l, Scope::System, f).await
}
async fn system_check(
    State(s): State<Shared>,
    AdminForm {
        admin: a, lang: l, ..
    }: AdminForm,
) -> Response {
    run_check(&s, &a, l, Scope::System).await
}
async fn webshop_page(
    State(s): State<Shared>,
    a: Admin,
    PageLang(l): PageLang,
    Query(q): Query<PageQuery>,
) -> Response {
    subject(&s, &a, l, Scope::Webshop, get_extras(&q)).await
}
async fn webshop_save(
    State(s): State<Shared>,
    AdminForm {
        admin: a,
        lang: l,
        form: f,
    }: AdminForm,
) -> Response {
    save(&s, &a, l, Scope::Webshop, f).await
}
async fn webshop_check(
    State(s): State<Shared>,
    AdminForm {
        admin: a, lang: l, ..
    }: AdminForm,
) -> Response {
    run_check(&s, &a, l, Scope::Webshop).await
}
async fn user_page(
    State(s): State<Shared>,
    a: Admin,
    PageLang(l): PageLang,
    Path(code): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    match user_scope(&code) {
        Ok(scope) => subject(&s, &a, l, scope, get_extras(&q)).await,
        Err(r) => r,
    }
}
async fn user_save(
    State(s): State<Shared>,
    Path(code): Path<String>,
    AdminForm {
        admin: a,
        lang: l,
        form: f,
    }: AdminForm,
) -> Response {
    match user_scope(&code) {
        Ok(scope) => save(&s, &a, l, scope, f).await,
        Err(r) => r,
    }
}
async fn user_check(
    State(s): State<Shared>,
    Path(code): Path<String>,
    AdminForm {
        admin: a, lang: l, ..
    }: AdminForm,
) -> Response {
    match user_scope(&code) {
        Ok(scope) => run_check(&s, &a, l, scope).await,
        Err(r) => r,
    }
}
async fn account_page(
    State(s): State<Shared>,
    a: Admin,
    PageLang(l): PageLang,
    Path(name): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    match account_scope(&name) {
        Ok(scope) => subject(&s, &a, l, scope, get_extras(&q)).await,
        Err(r) => r,
    }
}
async fn account_save(
    State(s): State<Shared>,
    Path(name): Path<String>,
    AdminForm {
        admin: a,
        lang: l,
        form: f,
    }: AdminForm,
) -> Response {
    match account_scope(&name) {
        Ok(scope) => save(&s, &a, l, scope, f).await,
        Err(r) => r,
    }
}
async fn account_check(
    State(s): State<Shared>,
    Path(name): Path<String>,
    AdminForm {
        admin: a, lang: l, ..
    }: AdminForm,
) -> Response {
    match account_scope(&name) {
        Ok(scope) => run_check(&s, &a, l, scope).await,
        Err(r) => r,
    }
}

// ---- lists: users and accounts ---------------------------------------------------------------

pub struct ListRow {
    pub name: String,
    pub href: String,
    pub detail: String,
    pub method: String,
    pub overrides: usize,
    pub errors: usize,
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListTpl {
    l: Layout,
    intro: &'static str,
    rows: Vec<ListRow>,
    empty: &'static str,
    /// `users` or `accounts`: decides the add form.
    kind: &'static str,
    add_error: String,
    has_webshop: bool,
}

async fn list(
    state: &AppState,
    admin: &Admin,
    lang: Lang,
    kind: &'static str,
    add_error: String,
    switched: Option<Lang>,
) -> Response {
    let snap = match state.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let t = lang.texts();
    let today = crate::today();
    let rows: Vec<ListRow> = if kind == "users" {
        snap.users
            .iter()
            .map(|(code, layer)| {
                let scope = Scope::User(code.clone());
                let eff = snap.resolve(&scope);
                ListRow {
                    name: code.clone(),
                    href: href(&scope),
                    detail: eff.get("email").unwrap_or("—").to_owned(),
                    method: eff.get("method").unwrap_or("—").to_owned(),
                    overrides: layer.values.len(),
                    errors: counts(&snap.validate(&scope, today)).0,
                }
            })
            .collect()
    } else {
        snap.accounts
            .iter()
            .map(|(name, layer)| {
                let scope = Scope::Account(name.clone());
                let eff = snap.resolve(&scope);
                ListRow {
                    name: name.clone(),
                    href: href(&scope),
                    detail: format!(
                        "{} · {} · {}",
                        eff.get("type").unwrap_or("—"),
                        eff.get("mailbox").unwrap_or("—"),
                        eff.get("protocol").unwrap_or("—")
                    ),
                    method: eff.get("method").unwrap_or("—").to_owned(),
                    overrides: layer.values.len(),
                    errors: counts(&snap.validate(&scope, today)).0,
                }
            })
            .collect()
    };
    let (nav, title, intro, empty) = if kind == "users" {
        ("users", t.nav_users, t.users_intro, t.no_users)
    } else {
        ("accounts", t.nav_accounts, t.accounts_intro, t.no_accounts)
    };
    let l = layout(
        state,
        &snap,
        admin,
        lang,
        nav,
        title.into(),
        &format!("/{kind}"),
    )
    .await;
    page(
        ListTpl {
            l,
            intro,
            rows,
            empty,
            kind,
            add_error: add_error.clone(),
            has_webshop: snap.users.contains_key(WEBSHOP_USER),
        },
        switched,
        if add_error.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        },
    )
}

async fn users_page(
    State(s): State<Shared>,
    a: Admin,
    PageLang(l): PageLang,
    Query(q): Query<PageQuery>,
) -> Response {
    list(&s, &a, l, "users", String::new(), q.switched()).await
}
async fn accounts_page(
    State(s): State<Shared>,
    a: Admin,
    PageLang(l): PageLang,
    Query(q): Query<PageQuery>,
) -> Response {
    list(&s, &a, l, "accounts", String::new(), q.switched()).await
}

async fn users_add(
    State(s): State<Shared>,
    AdminForm {
        admin: a,
        lang: l,
        form: f,
    }: AdminForm,
) -> Response {
    let code = match normalize_user_code(f.get("code").map(String::as_str).unwrap_or_default()) {
        Ok(c) => c,
        Err(e) => return list(&s, &a, l, "users", e, None).await,
    };
    let scope = Scope::User(code.clone());
    let email = f.get("email").map(|e| e.trim()).filter(|e| !e.is_empty());
    let changes = match email {
        Some(e) => match to_changes(&scope, vec![Edit::Set("email".into(), e.to_owned())]) {
            Ok(c) => c,
            Err(errs) => {
                let msg = errs.into_values().collect::<Vec<_>>().join(" ");
                return list(&s, &a, l, "users", msg, None).await;
            }
        },
        None => Vec::new(),
    };
    match s.store.add_user_with(&code, changes).await {
        Ok(()) => {}
        Err(e @ StoreError::UserExists(_)) => {
            return list(&s, &a, l, "users", e.to_string(), None).await;
        }
        Err(e) => return store_error(e),
    }
    Redirect::to(&href(&scope)).into_response()
}

async fn accounts_add(
    State(s): State<Shared>,
    AdminForm {
        admin: a,
        lang: l,
        form: f,
    }: AdminForm,
) -> Response {
    let name = match normalize_account_name(f.get("name").map(String::as_str).unwrap_or_default()) {
        Ok(c) => c,
        Err(e) => return list(&s, &a, l, "accounts", e, None).await,
    };
    let scope = Scope::Account(name.clone());
    let mut edits = Vec::new();
    for k in ["type", "mailbox", "protocol"] {
        if let Some(v) = f.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            edits.push(Edit::Set(k.into(), v.to_owned()));
        }
    }
    let changes = match to_changes(&scope, edits) {
        Ok(c) => c,
        Err(errs) => {
            let msg = errs
                .into_iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(" ");
            return list(&s, &a, l, "accounts", msg, None).await;
        }
    };
    // Issue #13.1: e.g. protocol=imap inheriting a custom IMAP host while the switch is off.
    let snap = match s.store.snapshot().await {
        Ok(snap) => snap,
        Err(e) => return store_error(e),
    };
    let added = added_custom_endpoints(&snap, &scope, &changes);
    if !added.is_empty() {
        let msg = added
            .into_iter()
            .map(|p| match l {
                Lang::Sv => format!("{} {}: {}", p.message_sv, l.texts().fix, p.fix_sv),
                Lang::En => format!("{} {}: {}", p.message, l.texts().fix, p.fix),
            })
            .collect::<Vec<_>>()
            .join(" ");
        return list(&s, &a, l, "accounts", msg, None).await;
    }
    match s.store.add_account_with(&name, changes).await {
        Ok(()) => {}
        Err(e @ StoreError::AccountExists(_)) => {
            return list(&s, &a, l, "accounts", e.to_string(), None).await;
        }
        Err(e) => return store_error(e),
    }
    Redirect::to(&href(&scope)).into_response()
}

async fn user_remove(State(s): State<Shared>, Path(code): Path<String>, _: AdminForm) -> Response {
    let scope = match user_scope(&code) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Scope::User(code) = scope else {
        unreachable!("user_scope returns a user")
    };
    match s.store.remove_user(&code).await {
        Ok(()) | Err(StoreError::NoSuchUser(_)) => Redirect::to("/users").into_response(),
        Err(e) => store_error(e),
    }
}

async fn account_remove(
    State(s): State<Shared>,
    Path(name): Path<String>,
    _: AdminForm,
) -> Response {
    let scope = match account_scope(&name) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Scope::Account(name) = scope else {
        unreachable!("account_scope returns an account")
    };
    match s.store.remove_account(&name).await {
        Ok(()) | Err(StoreError::NoSuchAccount(_)) => Redirect::to("/accounts").into_response(),
        Err(e) => store_error(e),
    }
}

#[cfg(test)]
mod next_tests {
    use super::safe_next;

    /// 13.5: `next=/%09/evil.example` (a tab) passed the old check, and browsers drop the tab
    /// and follow `//evil.example` — another site. Every hostile value goes to `/`.
    #[test]
    fn login_next_with_tab_is_not_an_open_redirect() {
        let hostile = [
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/ /evil.example",
            "/%09/evil.example",
            "/%0a/evil.example",
            "/%2F/evil.example",
            "/%2f%2fevil.example",
            "/%5Cevil.example",
            "/\\evil.example",
            "//evil.example",
            "///evil.example",
            "https://evil.example",
            "evil.example",
            "/\u{0}/evil.example",
            "/\u{a0}/evil.example",
            "/evil.example",
            "/system/../..//evil.example",
            "/%252F/evil.example/x",
            "",
        ];
        for h in hostile {
            assert_eq!(
                safe_next(Some(h)),
                "/",
                "{h:?} must not be a redirect target"
            );
        }
        assert_eq!(safe_next(None), "/");
        // Kurir's own pages still work, with their queries.
        for ok in [
            "/",
            "/system",
            "/users/ANNA",
            "/accounts/Monitor-to-Monitor?saved=1",
            "/outbox?state=failed",
            "/incoming/42",
            "/health",
        ] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
    }
}
