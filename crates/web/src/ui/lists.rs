//! The lists of users (Användare) and of incoming-mail accounts, with their add forms and the
//! Remove button of each subject page.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kurir_settings::{Scope, WEBSHOP_USER};

use super::{Layout, PageQuery, Shared, href, layout, op_error, page, store_error};
use crate::AppState;
use crate::auth::{Admin, AdminForm, PageLang};
use crate::i18n::Lang;
use crate::ops::{self, Edit, OpError, Scoped, Subject};

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/users", get(users_page).post(users_add))
        .route("/users/{code}/remove", post(remove))
        .route("/accounts", get(accounts_page).post(accounts_add))
        .route("/accounts/{name}/remove", post(remove))
}

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
    /// The add form's choices: (value, label).
    type_options: Vec<(String, String)>,
    protocol_options: Vec<(String, String)>,
}

async fn list(
    state: &AppState,
    admin: &Admin,
    lang: Lang,
    subject: Subject,
    add_error: String,
    switched: Option<Lang>,
) -> Response {
    let snap = match state.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let t = lang.texts();
    let rows: Vec<ListRow> = ops::list(&snap, subject)
        .into_iter()
        .map(|s| {
            let eff = &s.effective;
            let v = |k: &str| {
                eff.get(k)
                    .map(|value| lang.choice(k, value))
                    .unwrap_or_else(|| "—".to_owned())
            };
            ListRow {
                href: href(&s.scope),
                detail: match subject {
                    Subject::User => v("email"),
                    Subject::Account => {
                        format!("{} · {} · {}", v("type"), v("mailbox"), v("protocol"))
                    }
                },
                method: v("method"),
                overrides: s.overrides.len(),
                errors: s.errors,
                name: s.name,
            }
        })
        .collect();
    let (kind, title, intro, empty) = match subject {
        Subject::User => ("users", t.nav_users, t.users_intro, t.no_users),
        Subject::Account => ("accounts", t.nav_accounts, t.accounts_intro, t.no_accounts),
    };
    let path = format!("/{kind}");
    let l = layout(state, &snap, admin, lang, kind, title.into(), &path).await;
    let status = if add_error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page(
        ListTpl {
            l,
            intro,
            rows,
            empty,
            kind,
            add_error,
            has_webshop: snap.users.contains_key(WEBSHOP_USER),
            type_options: choices(lang, "type", kurir_settings::keys::ACCOUNT_TYPES),
            protocol_options: choices(lang, "protocol", kurir_settings::keys::PROTOCOLS),
        },
        switched,
        status,
    )
}

fn choices(lang: Lang, key: &str, values: &[&str]) -> Vec<(String, String)> {
    values
        .iter()
        .map(|v| ((*v).to_owned(), lang.choice(key, v)))
        .collect()
}

async fn users_page(
    State(s): State<Shared>,
    a: Admin,
    PageLang(l): PageLang,
    Query(q): Query<PageQuery>,
) -> Response {
    list(&s, &a, l, Subject::User, String::new(), q.switched()).await
}

async fn accounts_page(
    State(s): State<Shared>,
    a: Admin,
    PageLang(l): PageLang,
    Query(q): Query<PageQuery>,
) -> Response {
    list(&s, &a, l, Subject::Account, String::new(), q.switched()).await
}

/// The fields of an add form that are settings; empty ones are left to inherit.
const ADD_FIELDS: [&str; 4] = ["email", "type", "mailbox", "protocol"];

async fn users_add(State(s): State<Shared>, form: AdminForm) -> Response {
    add(&s, Subject::User, "code", form).await
}

async fn accounts_add(State(s): State<Shared>, form: AdminForm) -> Response {
    add(&s, Subject::Account, "name", form).await
}

/// Adds the subject of an add form; a refused name or value shows the list again with the
/// reason (and adds nothing).
async fn add(
    s: &AppState,
    subject: Subject,
    name_field: &str,
    AdminForm { admin, lang, form }: AdminForm,
) -> Response {
    let name = form.get(name_field).map(String::as_str).unwrap_or_default();
    let edits = ADD_FIELDS
        .iter()
        .filter_map(|k| {
            let v = form.get(*k).map(|v| v.trim()).filter(|v| !v.is_empty())?;
            Some(Edit::Set((*k).into(), v.to_owned()))
        })
        .collect();
    let refused = match ops::add(&*s.store, subject, name, edits).await {
        Ok(scope) => {
            tracing::info!(admin = %admin.name, scope = %scope.storage_key(), "added in the web UI");
            return Redirect::to(&href(&scope)).into_response();
        }
        Err(OpError::BadName(m)) => m,
        Err(OpError::Exists(e)) => e.to_string(),
        Err(OpError::Refused(errors)) => errors
            .into_iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(" "),
        Err(OpError::CustomEndpoints(added)) => added
            .into_iter()
            .map(|p| match lang {
                Lang::Sv => format!("{} {}: {}", p.message_sv, lang.texts().fix, p.fix_sv),
                Lang::En => format!("{} {}: {}", p.message, lang.texts().fix, p.fix),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Err(e) => return op_error(e),
    };
    list(s, &admin, lang, subject, refused, None).await
}

async fn remove(State(s): State<Shared>, Scoped(scope): Scoped, form: AdminForm) -> Response {
    let back = match scope {
        Scope::User(_) => "/users",
        _ => "/accounts",
    };
    match ops::remove(&*s.store, &scope).await {
        Ok(()) => {
            tracing::info!(admin = %form.admin.name, scope = %scope.storage_key(), "removed in the web UI");
            Redirect::to(back).into_response()
        }
        // Already gone (a second click): the list is what the admin wanted to see.
        Err(OpError::NotFound(_)) => Redirect::to(back).into_response(),
        Err(e) => op_error(e),
    }
}
