//! `grant_type=client_credentials`: the app signs in as itself, with a secret or a certificate.
//! No user, no refresh token; the scope must be one `{resource}/.default`.

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
) -> Result<TokenResponse, EntraError> {
    let mut form: Form = vec![
        ("grant_type", Value::Plain("client_credentials".into())),
        ("scope", Value::Plain(scope.to_param())),
    ];
    let basic = auth.apply(client_id, token_endpoint, &mut form)?;
    http.post_form(token_endpoint, &form, basic.as_ref()).await
}
