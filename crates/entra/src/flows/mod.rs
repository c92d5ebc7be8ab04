//! One file per OAuth grant. Each builds its form and interprets its answer; sending, retrying
//! and error parsing are in [`crate::http`], caching in [`crate::client`].

pub(crate) mod client_credentials;
pub(crate) mod device_code;
pub(crate) mod password;
pub(crate) mod refresh;

use secrecy::SecretString;
use serde::Deserialize;

use crate::assertion::{ASSERTION_TYPE, AssertionAlg, CertificateCredential};
use crate::error::EntraError;
use crate::http::{BasicAuth, Form, Value, lenient_u64};

/// How the app authenticates itself on the token endpoint. The refresh grant must use the same
/// client authentication as the grant that issued the refresh token, so this is shared.
pub(crate) enum ClientAuth {
    /// A public client (device code, ROPC with "Allow public client flows"): only `client_id`.
    Public,
    SecretPost(SecretString),
    SecretBasic(SecretString),
    Assertion {
        cert: Box<CertificateCredential>,
        alg: AssertionAlg,
    },
}

impl ClientAuth {
    /// Adds `client_id` and the credential to `form`; returns the Basic header to send, if any.
    pub(crate) fn apply<'a>(
        &'a self,
        client_id: &'a str,
        token_endpoint: &str,
        form: &mut Form,
    ) -> Result<Option<BasicAuth<'a>>, EntraError> {
        match self {
            ClientAuth::Public => {
                form.push(("client_id", Value::Plain(client_id.to_owned())));
                Ok(None)
            }
            ClientAuth::SecretPost(secret) => {
                form.push(("client_id", Value::Plain(client_id.to_owned())));
                form.push(("client_secret", Value::Secret(secret.clone())));
                Ok(None)
            }
            ClientAuth::SecretBasic(secret) => {
                // client_id in the body too: Entra needs it to pick the tenant's app before it
                // looks at the header, and MSAL sends it in both places.
                form.push(("client_id", Value::Plain(client_id.to_owned())));
                Ok(Some(BasicAuth { client_id, secret }))
            }
            ClientAuth::Assertion { cert, alg } => {
                // A fresh assertion per request: each has its own jti and a 10-minute life.
                let jwt = cert.assertion(*alg, client_id, token_endpoint)?;
                form.push(("client_id", Value::Plain(client_id.to_owned())));
                form.push(("client_assertion_type", Value::Plain(ASSERTION_TYPE.into())));
                form.push(("client_assertion", Value::Secret(jwt)));
                Ok(None)
            }
        }
    }
}

/// A successful token answer.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub access_token: SecretString,
    #[serde(deserialize_with = "lenient_u64")]
    pub expires_in: u64,
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    #[allow(dead_code)] // kept to document the shape; Bearer is the only type Entra issues
    pub token_type: Option<String>,
}
