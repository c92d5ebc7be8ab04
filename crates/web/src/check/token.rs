//! Step 2: a token from Entra ID, for Graph (or, for IMAP/POP3 accounts, for Exchange), with
//! every AADSTS code explained in the page's language.

use std::sync::Arc;
use std::time::Duration;

use kurir_connect::{ConnectError, Resource, token_client, token_request};
use kurir_entra::AccessToken;
use kurir_settings::{Scope, SettingsSnapshot};
use kurir_store::KurirStore;

use super::texts::fill;
use super::{Ctx, Path, Run};

pub(super) async fn step(run: &mut Run, ctx: &Ctx<'_>) -> Option<AccessToken> {
    let t = run.t;
    let resource = match ctx.path {
        Path::Graph => Resource::Graph,
        Path::Imap | Path::Pop3 => Resource::Exchange,
    };
    if !run.gate("token") {
        return None;
    }
    match get_token(ctx.store, ctx.snap, ctx.scope, resource).await {
        Ok(token) => {
            let c = &token.claims;
            let perms = if !c.roles.is_empty() {
                c.roles.join(" ")
            } else {
                c.scp.clone().unwrap_or_default()
            };
            // App-only: the next step names what is missing and how to grant it.
            if perms.is_empty() && !ctx.eff.auth_flow().is_app_only() {
                run.fail("token", t.no_permissions.to_owned(), t.no_permissions_fix);
                return None;
            }
            let aud = c.aud.as_deref().unwrap_or("?");
            run.ok(
                "token",
                fill(t.token_ok, &[("aud", aud), ("perms", &perms)]),
            );
            Some(token)
        }
        Err(TokenFailure::Settings(msg)) => {
            run.fail("token", msg, t.settings_incomplete_fix);
            None
        }
        Err(TokenFailure::Entra(e)) => {
            // kurir-entra counts the request itself (kurir_token_requests_total).
            let x = e.explain(run.lang.entra());
            let summary = match x.code {
                Some(code) => format!("AADSTS{code}: {}", x.summary),
                None => x.summary.clone(),
            };
            let s = run.fail("token", summary, &x.fix);
            s.aadsts = x.code;
            s.microsoft_message = x.microsoft_message.clone();
            s.trace_id = x.trace_id.clone();
            s.correlation_id = x.correlation_id.clone();
            None
        }
        Err(TokenFailure::Timeout) => {
            run.fail("token", t.token_timeout.to_owned(), t.token_timeout_fix);
            None
        }
    }
}

pub(super) enum TokenFailure {
    Settings(String),
    Entra(kurir_entra::EntraError),
    Timeout,
}

impl std::fmt::Display for TokenFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenFailure::Settings(m) => f.write_str(m),
            TokenFailure::Entra(e) => write!(f, "{e}"),
            TokenFailure::Timeout => f.write_str("Entra ID did not answer within 30 seconds"),
        }
    }
}

/// A token for `scope` as the intake or the outbox would get it (the same cache, the same
/// flow), within 30 seconds.
pub(super) async fn get_token(
    store: &Arc<dyn KurirStore>,
    snap: &SettingsSnapshot,
    scope: &Scope,
    resource: Resource,
) -> Result<AccessToken, TokenFailure> {
    let chain = |e: ConnectError| match e {
        ConnectError::Entra(e) => TokenFailure::Entra(e),
        e => TokenFailure::Settings(e.to_string()),
    };
    let (eff, request) = token_request(&**store, snap, scope, resource)
        .await
        .map_err(chain)?;
    let client = token_client(&eff, store.clone()).map_err(chain)?;
    match tokio::time::timeout(Duration::from_secs(30), client.token(&request)).await {
        Err(_) => Err(TokenFailure::Timeout),
        Ok(Err(e)) => Err(TokenFailure::Entra(e)),
        Ok(Ok(t)) => Ok(t),
    }
}
