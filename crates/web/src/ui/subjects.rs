//! The seed's settings screens, one form per subject: Systeminställningar, a user (Användare),
//! an incoming-mail account (Inställningar för inkommande e-post) and Webbshop Administration,
//! each with Save, Reset per field and Test connection.

use std::collections::BTreeMap;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kurir_settings::{
    KEYS, KeyDef, Kind, Level, Problem, Scope, SettingsSnapshot, Severity, Source, StoredValue,
};

use super::{Layout, PageQuery, Shared, href, layout, op_error, page, store_error};
use crate::AppState;
use crate::auth::{Admin, AdminForm, PageLang};
use crate::check::{self, Report};
use crate::i18n::Lang;
use crate::ops::{self, Edit, FormMap, OpError, Scoped};

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/system", get(subject_page).post(subject_save))
        .route("/system/check", post(subject_check))
        .route("/users/{code}", get(subject_page).post(subject_save))
        .route("/users/{code}/check", post(subject_check))
        .route("/accounts/{name}", get(subject_page).post(subject_save))
        .route("/accounts/{name}/check", post(subject_check))
        .route("/webshop", get(subject_page).post(subject_save))
        .route("/webshop/check", post(subject_check))
}

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
    /// (value, what the admin reads: the seed's label, selected)
    pub options: Vec<(String, String, bool)>,
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

/// The text shown for a value (secrets masked, certificates summarised, choices by their label).
fn shown(v: &Option<StoredValue>, def: &KeyDef, lang: Lang) -> String {
    let t = lang.texts();
    let kind = def.kind;
    match v {
        None => t.not_set.to_owned(),
        Some(StoredValue::Plain(p)) if kind == Kind::CertificatePem => {
            let until = crate::alarms::certificate_not_after(p)
                .map(|d| format!(", notAfter {d}"))
                .unwrap_or_default();
            format!("PEM ({} bytes{until})", p.len())
        }
        Some(StoredValue::Plain(p)) if matches!(kind, Kind::Choice(_)) => lang.choice(def.name, p),
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
        let effective = shown(&eff_value, def, lang);
        let input = match def.kind {
            Kind::Secret => "password",
            // An instant (what the set-up and rotation store) would show as an empty date
            // picker and be lost on save: a text field keeps it.
            Kind::Date if own_value.len() > 10 => "text",
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
                        .map(|o| {
                            let label = lang.choice(def.name, o);
                            ((*o).to_owned(), label, *o == own_value.as_str())
                        })
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

pub(super) fn step_views(report: &Report, lang: Lang) -> Vec<StepView> {
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
    let errors = match ops::change_settings(&*state.store, &scope, edits).await {
        Ok(keys) => {
            if !keys.is_empty() {
                tracing::info!(admin = %admin.name, scope = %scope.storage_key(), keys = ?keys, "settings changed in the web UI");
            }
            BTreeMap::new()
        }
        Err(OpError::Refused(errors)) => errors,
        Err(OpError::CustomEndpoints(added)) => added
            .into_iter()
            .map(|p| {
                let (m, f) = match lang {
                    Lang::Sv => (p.message_sv, p.fix_sv),
                    Lang::En => (p.message, p.fix),
                };
                (p.field.to_owned(), format!("{m} {}: {f}", lang.texts().fix))
            })
            .collect(),
        Err(e) => return op_error(e),
    };
    if !errors.is_empty() {
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

async fn subject_page(
    State(s): State<Shared>,
    a: Admin,
    PageLang(l): PageLang,
    Scoped(scope): Scoped,
    Query(q): Query<PageQuery>,
) -> Response {
    subject(&s, &a, l, scope, get_extras(&q)).await
}

async fn subject_save(
    State(s): State<Shared>,
    Scoped(scope): Scoped,
    AdminForm {
        admin: a,
        lang: l,
        form: f,
    }: AdminForm,
) -> Response {
    save(&s, &a, l, scope, f).await
}

async fn subject_check(
    State(s): State<Shared>,
    Scoped(scope): Scoped,
    AdminForm {
        admin: a, lang: l, ..
    }: AdminForm,
) -> Response {
    run_check(&s, &a, l, scope).await
}
