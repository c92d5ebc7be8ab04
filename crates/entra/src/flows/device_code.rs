//! The device authorization grant: Kurir gets a code, the user enters it in a browser anywhere
//! (with MFA), and Kurir polls until the sign-in is done. Used once per account; afterwards the
//! refresh token carries on.
//!
//! Polling follows RFC 8628 as Entra implements it: wait `interval` between polls,
//! `authorization_pending` means keep waiting, `slow_down` adds 5 s (not documented by Microsoft
//! but sent by some deployments and handled by MSAL), and `authorization_declined`,
//! `expired_token` and `bad_verification_code` end the sign-in.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::error::EntraError;
use crate::flows::{ClientAuth, TokenResponse};
use crate::http::{Form, Http, Value, lenient_opt_u64, lenient_u64};
use crate::request::DeviceCodePrompt;
use crate::scope::Scope;

pub(crate) const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8628's default when the server gives no interval.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// After the code's own expiry Entra answers `expired_token`; this bound only protects against a
/// server that keeps saying `authorization_pending` forever.
const EXPIRY_GRACE: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct DeviceCodeResponse {
    user_code: String,
    device_code: SecretString,
    /// The v1 endpoint said `verification_url`.
    #[serde(alias = "verification_url")]
    verification_uri: String,
    #[serde(deserialize_with = "lenient_u64")]
    expires_in: u64,
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    interval: Option<u64>,
    #[serde(default)]
    message: Option<String>,
}

pub(crate) struct Endpoints<'a> {
    pub device_code: &'a str,
    pub token: &'a str,
}

pub(crate) async fn run(
    http: &Http,
    endpoints: Endpoints<'_>,
    client_id: &str,
    auth: &ClientAuth,
    scope: &Scope,
    prompt: &(dyn Fn(&DeviceCodePrompt) + Send + Sync),
) -> Result<TokenResponse, EntraError> {
    let mut form: Form = vec![("scope", Value::Plain(scope.to_param()))];
    let basic = auth.apply(client_id, endpoints.device_code, &mut form)?;
    let code: DeviceCodeResponse = http
        .post_form(endpoints.device_code, &form, basic.as_ref())
        .await?;

    let started = tokio::time::Instant::now();
    // Both values are the server's word: a device code lives 15 minutes and Entra asks for a
    // poll every 5 s, so an hour and a minute bound them (huge values must not overflow the
    // time arithmetic below, nor park the sign-in for years).
    let lifetime = Duration::from_secs(code.expires_in.min(3600));
    let message = code.message.clone().unwrap_or_else(|| {
        format!(
            "To sign in, use a web browser to open the page {} and enter the code {} to authenticate.",
            code.verification_uri, code.user_code
        )
    });
    prompt(&DeviceCodePrompt {
        user_code: code.user_code.clone(),
        verification_uri: code.verification_uri.clone(),
        message,
        expires_at: time::OffsetDateTime::now_utc() + lifetime,
    });

    let mut interval = code
        .interval
        .filter(|s| *s > 0)
        .map_or(DEFAULT_INTERVAL, |s| Duration::from_secs(s.min(60)));
    loop {
        tokio::time::sleep(interval).await;
        let mut form: Form = vec![
            ("grant_type", Value::Plain(GRANT_TYPE.into())),
            ("device_code", Value::Secret(code.device_code.clone())),
        ];
        let basic = auth.apply(client_id, endpoints.token, &mut form)?;
        match http
            .post_form::<TokenResponse>(endpoints.token, &form, basic.as_ref())
            .await
        {
            Ok(t) => return Ok(t),
            Err(e) => match e.oauth_error() {
                Some("authorization_pending") => {}
                Some("slow_down") => {
                    interval += SLOW_DOWN_STEP;
                    tracing::debug!(
                        interval_s = interval.as_secs(),
                        "Entra asked to slow down device-code polling"
                    );
                }
                _ => return Err(e),
            },
        }
        if started.elapsed() > lifetime + EXPIRY_GRACE {
            return Err(EntraError::UnexpectedResponse {
                endpoint: endpoints.token.to_owned(),
                status: 400,
                detail: format!(
                    "the sign-in service still answered authorization_pending {} s after the device code expired",
                    EXPIRY_GRACE.as_secs()
                ),
            });
        }
    }
}
