//! Tokens for a mailbox and the SASL strings that carry them (XOAUTH2, OAUTHBEARER).
//!
//! Transports ask a [`TokenSource`] for a bearer token each time they sign in; the source used in
//! production ([`EntraTokens`]) is kurir-entra's cached, single-flight client, so asking often is
//! cheap and a token is refreshed before it expires. The expiry travels with the token so a long
//! IMAP IDLE can reconnect before the server would cut a session whose token ran out.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kurir_entra::{EntraError, TokenClient, TokenRequest};
use secrecy::{ExposeSecret, SecretString};

use crate::IntakeError;

/// An access token and when it stops working.
#[derive(Clone)]
pub struct Bearer {
    pub secret: SecretString,
    pub expires_at: time::OffsetDateTime,
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bearer")
            .field("secret", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Where a transport gets its token.
#[async_trait]
pub trait TokenSource: Send + Sync {
    async fn bearer(&self) -> Result<Bearer, IntakeError>;
}

/// Tokens from Entra ID through kurir-entra (cached, refreshed ahead of expiry).
pub struct EntraTokens {
    pub client: Arc<TokenClient>,
    pub request: TokenRequest,
    /// For error messages: whose token this is.
    pub mailbox: String,
}

#[async_trait]
impl TokenSource for EntraTokens {
    async fn bearer(&self) -> Result<Bearer, IntakeError> {
        match self.client.token(&self.request).await {
            Ok(t) => Ok(Bearer {
                secret: t.secret,
                expires_at: t.expires_at,
            }),
            Err(e) => Err(token_error(&self.mailbox, e)),
        }
    }
}

/// An Entra failure as an intake error (explained for the admin when shown).
pub fn token_error(mailbox: &str, e: EntraError) -> IntakeError {
    IntakeError::Token {
        mailbox: mailbox.to_owned(),
        source: Box::new(e),
    }
}

/// A fixed token (tests and tools that already hold one).
pub struct StaticToken(pub Bearer);

#[async_trait]
impl TokenSource for StaticToken {
    async fn bearer(&self) -> Result<Bearer, IntakeError> {
        Ok(self.0.clone())
    }
}

/// Which SASL mechanism carries the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// Microsoft's and Google's `XOAUTH2` (what Exchange Online offers).
    XOAuth2,
    /// RFC 7628 `OAUTHBEARER` (used when the server offers it and XOAUTH2 is not wanted).
    OAuthBearer,
}

impl Mechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::XOAuth2 => "XOAUTH2",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The client's first (and only) SASL message, not yet base64-encoded.
    pub fn initial_response(self, user: &str, token: &SecretString) -> SecretBytes {
        let t = token.expose_secret();
        SecretBytes(match self {
            Mechanism::XOAuth2 => format!("user={user}\x01auth=Bearer {t}\x01\x01").into_bytes(),
            Mechanism::OAuthBearer => {
                format!("n,a={user},\x01auth=Bearer {t}\x01\x01").into_bytes()
            }
        })
    }
}

/// Bytes that contain a token: no Debug output, wiped from intent if not from memory.
pub struct SecretBytes(pub Vec<u8>);

impl SecretBytes {
    pub fn base64(&self) -> String {
        B64.encode(&self.0)
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted SASL response]")
    }
}

/// The server's error challenge after a refused token (`{"status":"401",…}`), decoded for the
/// error message. It contains no secret: it is the server's own text.
pub fn describe_challenge(challenge: &[u8]) -> String {
    let text = String::from_utf8_lossy(challenge);
    if text.trim().is_empty() {
        "the server refused the token".to_owned()
    } else {
        format!("the server refused the token ({})", text.trim())
    }
}
