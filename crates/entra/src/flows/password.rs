//! `grant_type=password` (ROPC): the app sends the user's password. Only for work/school
//! accounts without MFA; Microsoft discourages it, but it is what the ERP's existing
//! Användarnamn/Lösenord (Exchange) settings amount to, so Kurir supports it and explains the
//! errors (50076 and friends) that push admins to a better flow.

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
    username: &str,
    password: &SecretString,
) -> Result<TokenResponse, EntraError> {
    let mut form: Form = vec![
        ("grant_type", Value::Plain("password".into())),
        ("scope", Value::Plain(scope.to_param())),
        ("username", Value::Plain(username.to_owned())),
        ("password", Value::Secret(password.clone())),
    ];
    let basic = auth.apply(client_id, token_endpoint, &mut form)?;
    http.post_form(token_endpoint, &form, basic.as_ref()).await
}
