//! `grant_type=refresh_token`: renews a delegated token without the user. Entra returns a new
//! refresh token each time; the caller must store it in place of the old one.

use secrecy::SecretString;

use crate::error::EntraError;
use crate::flows::{ClientAuth, TokenResponse};
use crate::http::{Form, Http, Value};
use crate::scope::Scope;

pub(crate) async fn run(
    http: &Http,
    token_endpoint: &str,
    client_id: &str,
    auth: &ClientAuth,
    scope: &Scope,
    refresh_token: &SecretString,
) -> Result<TokenResponse, EntraError> {
    let mut form: Form = vec![
        ("grant_type", Value::Plain("refresh_token".into())),
        ("scope", Value::Plain(scope.to_param())),
        ("refresh_token", Value::Secret(refresh_token.clone())),
    ];
    let basic = auth.apply(client_id, token_endpoint, &mut form)?;
    http.post_form(token_endpoint, &form, basic.as_ref()).await
}

/// Refresh errors after which the refresh token is useless and the primary credential (or a
/// new device-code sign-in) must be used. Anything else is kept for the next attempt.
pub(crate) fn token_is_dead(e: &EntraError) -> bool {
    matches!(
        e.oauth_error(),
        Some("invalid_grant" | "interaction_required")
    )
}
