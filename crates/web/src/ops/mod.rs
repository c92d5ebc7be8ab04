//! The operations the web UI and the REST API share: what a request does, apart from how its
//! answer looks. Each surface only reads its input (a form, a JSON body), calls one function
//! here and renders the result or the typed [`OpError`] in its own way (a page with the problem
//! under the field, or `{"error", "fix", "fields"}`).
//!
//! Every change is checked before anything is written, so one bad value changes nothing — the
//! same rule as `kurir settings set` — and adding a user or an account with its first settings is
//! one transaction.

mod mail;
mod quarantine;
mod settings;

pub use mail::{
    AccountHealth, HealthSummary, OutboxAction, RawError, SenderHealth, eml_response,
    health_summary, outbox_action, read_raw,
};
pub use quarantine::{ActionDone, QuarantineAction, QuarantineRefused, quarantine_action};
pub use settings::{
    Edit, Listed, Subject, add, added_custom_endpoints, change_settings, list, remove, snapshot_of,
    to_changes,
};

use std::collections::{BTreeMap, HashMap};

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use kurir_settings::{Problem, Scope, normalize_account_name, normalize_user_code};
use kurir_store::StoreError;
use kurir_store::outbox::OutgoingMessage;

/// Why an operation did not happen. The surfaces turn each into their own answer; none of them
/// is a string yet, so the UI can show a problem under its field in the page's language.
#[derive(Debug)]
pub enum OpError {
    /// The user code or account name in the request is not a valid one (400).
    BadName(String),
    /// No such user, account or message (404); says which.
    NotFound(String),
    /// A user or account of that name exists already (409).
    Exists(StoreError),
    /// Values refused, per key (the key as typed when it is unknown); nothing was written (422).
    Refused(BTreeMap<String, String>),
    /// Values that would send secrets or tokens outside the selected cloud while the server
    /// switch is off (issue #13.1); nothing was written (422).
    CustomEndpoints(Vec<Problem>),
    /// An outgoing message is not in a state the action applies to (409).
    WrongState(Box<OutgoingMessage>),
    /// A quarantine action that cannot be done as asked (409).
    Quarantine(quarantine::QuarantineRefused),
    /// Something the operation needed failed (reading a message, queueing in the outbox); the
    /// text says what (500).
    Failed(String),
    /// The store failed: not the caller's fault (500, see the log).
    Store(StoreError),
}

impl OpError {
    /// The HTTP status both surfaces answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            OpError::BadName(_) => StatusCode::BAD_REQUEST,
            OpError::NotFound(_) => StatusCode::NOT_FOUND,
            OpError::Exists(_) | OpError::WrongState(_) | OpError::Quarantine(_) => {
                StatusCode::CONFLICT
            }
            OpError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            OpError::Refused(_) | OpError::CustomEndpoints(_) => StatusCode::UNPROCESSABLE_ENTITY,
            OpError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::BadName(m) | OpError::NotFound(m) | OpError::Failed(m) => f.write_str(m),
            OpError::Quarantine(r) => write!(f, "{r}"),
            OpError::Exists(e) | OpError::Store(e) => write!(f, "{e}"),
            OpError::Refused(fields) => {
                f.write_str("a value was refused; nothing was changed:")?;
                for (k, v) in fields {
                    write!(f, " {k}: {v}")?;
                }
                Ok(())
            }
            OpError::CustomEndpoints(added) => {
                f.write_str("a custom endpoint was refused; nothing was changed:")?;
                for p in added {
                    write!(f, " {}: {} Fix: {}", p.field, p.message, p.fix)?;
                }
                Ok(())
            }
            OpError::WrongState(m) => write!(
                f,
                "outgoing message {} is {}; only queued or failed messages can be retried or cancelled",
                m.id, m.state
            ),
        }
    }
}

impl std::error::Error for OpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpError::Exists(e) | OpError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchUser(_) | StoreError::NoSuchAccount(_) => {
                OpError::NotFound(e.to_string())
            }
            StoreError::UserExists(_) | StoreError::AccountExists(_) => OpError::Exists(e),
            e => OpError::Store(e),
        }
    }
}

/// The settings scope a request is about, taken from its route: `/system…`, `/webshop…`,
/// `…/users/{code}…` or `…/accounts/{name}…` (UI and API alike). One extractor instead of a
/// handler per scope.
pub struct Scoped(pub Scope);

/// A path whose user code or account name is not a valid one.
pub struct BadScope {
    api: bool,
    message: String,
}

impl IntoResponse for BadScope {
    fn into_response(self) -> Response {
        if self.api {
            crate::auth::api_error(
                StatusCode::BAD_REQUEST,
                &self.message,
                "use the ERP's user code (e.g. ANNA) or the account's name",
            )
        } else {
            (StatusCode::BAD_REQUEST, self.message).into_response()
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Scoped {
    type Rejection = BadScope;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        let api = route.starts_with("/api/");
        let bad = |message: String| BadScope { api, message };
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| bad(e.body_text()))?;
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
        };
        let scope = if let Some(code) = param("code") {
            Scope::User(normalize_user_code(&code).map_err(bad)?)
        } else if let Some(name) = param("name") {
            Scope::Account(normalize_account_name(&name).map_err(bad)?)
        } else if route.contains("/webshop") {
            Scope::Webshop
        } else if route.contains("/system") {
            Scope::System
        } else {
            unreachable!("Scoped is only used on the routes of a settings scope, not {route}")
        };
        Ok(Scoped(scope))
    }
}

/// A form's fields by name.
pub type FormMap = HashMap<String, String>;
