//! Client authentication at the token endpoint: secrets (body or HTTP Basic) and
//! `private_key_jwt` client assertions, checked in the order Entra checks them.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use time::OffsetDateTime;

use super::errors::{EntraError, format_timestamp};
use crate::fixture::App;
use crate::state::EmulatorState;

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Entra tolerates some clock skew on assertions; five minutes like its token validation.
const ASSERTION_SKEW_SECS: i64 = 300;

/// How the client proved its identity; becomes the `appidacr` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Public,
    Secret,
    Certificate,
}

impl ClientAuth {
    pub fn appidacr(self) -> &'static str {
        match self {
            ClientAuth::Public => "0",
            ClientAuth::Secret => "1",
            ClientAuth::Certificate => "2",
        }
    }
}

/// The credential fields of one token request.
#[derive(Debug, Default)]
pub struct Credentials {
    pub client_id: Option<String>,
    pub secret: Option<String>,
    pub assertion_type: Option<String>,
    pub assertion: Option<String>,
}

impl Credentials {
    /// Collects credentials from the form and an `Authorization: Basic` header, which MSAL
    /// for Python sends as `base64(quote_plus(id):quote_plus(secret))`.
    pub fn collect(
        form: &std::collections::HashMap<String, String>,
        authorization: Option<&str>,
    ) -> Credentials {
        let mut c = Credentials {
            client_id: form.get("client_id").cloned().filter(|s| !s.is_empty()),
            secret: form.get("client_secret").cloned().filter(|s| !s.is_empty()),
            assertion_type: form.get("client_assertion_type").cloned(),
            assertion: form
                .get("client_assertion")
                .cloned()
                .filter(|s| !s.is_empty()),
        };
        if let Some(b64) = authorization.and_then(|a| {
            a.strip_prefix("Basic ")
                .or_else(|| a.strip_prefix("basic "))
        }) && let Ok(raw) = STANDARD.decode(b64.trim())
            && let Ok(text) = String::from_utf8(raw)
            && let Some((id, secret)) = text.split_once(':')
        {
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            if c.client_id.is_none() {
                c.client_id = Some(decode(id));
            }
            if c.secret.is_none() {
                c.secret = Some(decode(secret));
            }
        }
        c
    }

    pub fn has_credential(&self) -> bool {
        self.secret.is_some() || self.assertion.is_some()
    }
}

/// Checks the credential. `public_allowed`: the grant may be used by a public client
/// (ROPC, device code, refresh) and the app allows public client flows.
pub fn authenticate(
    state: &EmulatorState,
    app: &App,
    creds: &Credentials,
    public_allowed: bool,
    audience_check: &dyn Fn(&str) -> bool,
) -> Result<ClientAuth, EntraError> {
    let client_id = app.client_id.to_string();
    if let Some(secret) = &creds.secret {
        let now = OffsetDateTime::now_utc();
        return match app.secrets.iter().find(|s| &s.value == secret) {
            Some(s) if s.expires <= now => Err(EntraError::SecretExpired { client_id }),
            Some(_) => Ok(ClientAuth::Secret),
            // A secret *id* pasted as the value gets the same answer as any wrong secret;
            // Microsoft's text for it already says "value, not the client secret ID".
            None => Err(EntraError::InvalidSecret { client_id }),
        };
    }
    if let Some(assertion) = &creds.assertion {
        if creds.assertion_type.as_deref() != Some(JWT_BEARER) {
            return Err(EntraError::AssertionMalformed {
                detail: format!("client_assertion_type must be '{JWT_BEARER}'."),
            });
        }
        verify_assertion(state, app, assertion, audience_check)?;
        return Ok(ClientAuth::Certificate);
    }
    if public_allowed && app.public_client {
        return Ok(ClientAuth::Public);
    }
    Err(EntraError::NoCredential)
}

#[derive(Deserialize)]
struct AssertionClaims {
    aud: Option<serde_json::Value>,
    iss: Option<String>,
    sub: Option<String>,
    // Numbers, not integers: MSAL for Python sends `time.time() + 600`, a float.
    exp: Option<f64>,
    nbf: Option<f64>,
}

fn verify_assertion(
    state: &EmulatorState,
    app: &App,
    assertion: &str,
    audience_check: &dyn Fn(&str) -> bool,
) -> Result<(), EntraError> {
    let malformed = |detail: &str| EntraError::AssertionMalformed {
        detail: detail.to_string(),
    };
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| malformed("The client assertion is not a JWT."))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(malformed(
            "The client assertion must be signed with RS256 or PS256.",
        ));
    }
    // The fixture's certificates, and those added through Graph while the emulator runs.
    let registered: Vec<&crate::keys::RegisteredCertificate> = state
        .app_certificates
        .get(&app.client_id)
        .into_iter()
        .flatten()
        .chain(app.key_credentials.iter().map(|k| &k.certificate))
        .collect();
    let (thumbprint_shown, cert) = if let Some(s256) = &header.x5t_s256 {
        let raw = URL_SAFE_NO_PAD
            .decode(s256.trim_end_matches('='))
            .unwrap_or_default();
        (
            hex::encode_upper(&raw),
            registered.iter().find(|c| c.sha256 == raw).copied(),
        )
    } else if let Some(x5t) = &header.x5t {
        let raw = URL_SAFE_NO_PAD
            .decode(x5t.trim_end_matches('='))
            .unwrap_or_default();
        (
            hex::encode_upper(&raw),
            registered.iter().find(|c| c.sha1 == raw).copied(),
        )
    } else {
        return Err(malformed(
            "The client assertion header has neither 'x5t' nor 'x5t#S256'.",
        ));
    };
    let Some(cert) = cert else {
        return Err(EntraError::AssertionKeyNotRegistered {
            thumbprint: thumbprint_shown,
            client_id: app.client_id.to_string(),
        });
    };
    let key = DecodingKey::from_rsa_der(&cert.pkcs1_public_key);
    // Read as Entra does, padded base64url or not: azure-identity's CertificateCredential pads
    // its segments ('='), which a strict JWT library refuses. The signature is checked over the
    // text as sent.
    let parts: Vec<&str> = assertion.split('.').collect();
    let [head, body, signature] = parts.as_slice() else {
        return Err(malformed("The client assertion is not a JWT."));
    };
    let message = format!("{head}.{body}");
    match jsonwebtoken::crypto::verify(
        signature.trim_end_matches('='),
        message.as_bytes(),
        &key,
        header.alg,
    ) {
        Ok(true) => {}
        Ok(false) => return Err(EntraError::AssertionSignature),
        Err(e) => {
            return Err(malformed(&format!(
                "The client assertion could not be read: {e}."
            )));
        }
    }
    let claims: AssertionClaims = URL_SAFE_NO_PAD
        .decode(body.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| malformed("The client assertion's claims could not be read."))?;
    let client_id = app.client_id.to_string();
    let same = |v: &Option<String>| {
        v.as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case(&client_id))
    };
    if !same(&claims.iss) || !same(&claims.sub) {
        return Err(EntraError::AssertionClientMismatch);
    }
    let auds: Vec<String> = match &claims.aud {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => vec![],
    };
    if !auds.iter().any(|a| audience_check(a)) {
        return Err(malformed(&format!(
            "The audience {auds:?} of the client assertion is not this token endpoint."
        )));
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let (Some(exp), nbf) = (claims.exp.map(|v| v as i64), claims.nbf.map(|v| v as i64)) else {
        return Err(malformed("The client assertion has no 'exp' claim."));
    };
    let nbf_v = nbf.unwrap_or(i64::MIN);
    if now > exp + ASSERTION_SKEW_SECS || now + ASSERTION_SKEW_SECS < nbf_v {
        let fmt = |t: i64| {
            OffsetDateTime::from_unix_timestamp(t)
                .map(format_timestamp)
                .unwrap_or_else(|_| t.to_string())
        };
        return Err(EntraError::AssertionTime {
            now: fmt(now),
            nbf: nbf.map(fmt).unwrap_or_default(),
            exp: fmt(exp),
        });
    }
    Ok(())
}
