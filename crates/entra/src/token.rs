//! An access token and what it says about itself.
//!
//! The claims are decoded WITHOUT verifying the signature: Kurir is not the audience and cannot
//! verify Exchange's tokens; the claims are only shown to admins (`kurir token` prints roles and
//! scopes, which is how a missing permission is spotted before Exchange refuses the token).

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

use crate::request::{Flow, Grant};

/// A bearer token for Exchange Online or Graph.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The token itself; `expose_secret()` only where it goes on the wire.
    pub secret: SecretString,
    pub expires_at: time::OffsetDateTime,
    pub claims: TokenClaims,
    /// The configured flow.
    pub flow: Flow,
    /// The grant that produced this token (a device-code flow later renews via refresh_token).
    pub grant: Grant,
    /// The scope Entra says it granted, when it says.
    pub scope: Option<String>,
    /// True when this came from the in-memory cache rather than a request just now.
    pub from_cache: bool,
}

/// The claims that tell an admin what the token allows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    #[serde(default, deserialize_with = "string_or_list")]
    pub aud: Option<String>,
    /// App permissions (app-only), e.g. `["IMAP.AccessAsApp"]`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Delegated permissions, space separated.
    #[serde(default)]
    pub scp: Option<String>,
    #[serde(default)]
    pub upn: Option<String>,
    #[serde(default)]
    pub unique_name: Option<String>,
    #[serde(default)]
    pub preferred_username: Option<String>,
    /// The client id (v1 tokens).
    #[serde(default)]
    pub appid: Option<String>,
    /// The client id (v2 tokens).
    #[serde(default)]
    pub azp: Option<String>,
    #[serde(default)]
    pub tid: Option<String>,
    #[serde(default)]
    pub oid: Option<String>,
    /// `app` or `user`.
    #[serde(default)]
    pub idtyp: Option<String>,
    #[serde(default)]
    pub ver: Option<String>,
    #[serde(default)]
    pub exp: Option<i64>,
}

impl TokenClaims {
    /// Decodes the payload of a JWT; opaque tokens (not a JWT) give empty claims, since tokens
    /// are the resource's business and Microsoft may change their format.
    pub fn decode_unverified(token: &str) -> TokenClaims {
        let Some(payload) = token.split('.').nth(1) else {
            return TokenClaims::default();
        };
        URL_SAFE_NO_PAD
            .decode(payload)
            .or_else(|_| URL_SAFE.decode(payload))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// The signed-in user's name, whichever claim carries it.
    pub fn user_name(&self) -> Option<&str> {
        self.upn
            .as_deref()
            .or(self.preferred_username.as_deref())
            .or(self.unique_name.as_deref())
    }

    /// The client id, whichever token version.
    pub fn client_id(&self) -> Option<&str> {
        self.appid.as_deref().or(self.azp.as_deref())
    }
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Array(a)) => Some(
            a.iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn decodes_app_only_claims() {
        let t = jwt(
            r#"{"aud":"https://outlook.office365.com","roles":["IMAP.AccessAsApp","SMTP.SendAsApp"],"appid":"c1","tid":"t1","idtyp":"app","ver":"1.0","exp":1700000000}"#,
        );
        let c = TokenClaims::decode_unverified(&t);
        assert_eq!(c.aud.as_deref(), Some("https://outlook.office365.com"));
        assert_eq!(c.roles, vec!["IMAP.AccessAsApp", "SMTP.SendAsApp"]);
        assert_eq!(c.client_id(), Some("c1"));
        assert_eq!(c.idtyp.as_deref(), Some("app"));
        assert_eq!(c.exp, Some(1700000000));
    }

    #[test]
    fn decodes_delegated_claims_and_v2_names() {
        let t = jwt(
            r#"{"aud":["https://outlook.office.com"],"scp":"IMAP.AccessAsUser.All SMTP.Send","azp":"c2","preferred_username":"adele@x"}"#,
        );
        let c = TokenClaims::decode_unverified(&t);
        assert_eq!(c.aud.as_deref(), Some("https://outlook.office.com"));
        assert_eq!(c.scp.as_deref(), Some("IMAP.AccessAsUser.All SMTP.Send"));
        assert_eq!(c.client_id(), Some("c2"));
        assert_eq!(c.user_name(), Some("adele@x"));
    }

    #[test]
    fn opaque_tokens_give_empty_claims() {
        assert_eq!(
            TokenClaims::decode_unverified("EwAoA8l6BAAU..."),
            TokenClaims::default()
        );
        assert_eq!(
            TokenClaims::decode_unverified("a.!!!.c"),
            TokenClaims::default()
        );
        assert_eq!(TokenClaims::decode_unverified(""), TokenClaims::default());
    }

    #[test]
    fn debug_does_not_show_the_token() {
        let t = AccessToken {
            secret: SecretString::from("eyJ-very-secret"),
            expires_at: time::OffsetDateTime::now_utc(),
            claims: TokenClaims::default(),
            flow: Flow::ClientSecret,
            grant: Grant::ClientCredentials,
            scope: None,
            from_cache: false,
        };
        assert!(!format!("{t:?}").contains("very-secret"));
    }
}
