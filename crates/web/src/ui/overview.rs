//! The overview (Översikt): every subject with its problems, and the accounts' health.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use kurir_settings::{Problem, Scope, SettingsSnapshot, Severity};

use super::{Layout, PageQuery, Shared, href, layout, page, store_error};
use crate::auth::{Admin, PageLang};

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

pub(super) async fn overview(
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
                .map(super::fmt_time)
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
