//! The in-memory token cache with single-flight renewal.
//!
//! Every mail transport asks for a token before each connection; Entra throttles clients that
//! ask too often, and a device-code sign-in must never be started twice. So each cache key has
//! its own async lock: the first caller renews while holding it, everyone else waits on the lock
//! and then finds the fresh token. Fifty concurrent callers cause one request.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use crate::request::{Flow, TokenRequest};
use crate::token::AccessToken;

/// What identifies one cached token (and one stored refresh token).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    authority: String,
    tenant: String,
    client_id: String,
    flow: Flow,
    user: String,
    scope: String,
}

impl CacheKey {
    pub fn new(req: &TokenRequest) -> CacheKey {
        let flow = req.credential.flow();
        let user = if flow.is_app_only() {
            String::new()
        } else {
            let from_credential = match &req.credential {
                crate::Credential::UsernamePassword { username, .. } => Some(username.as_str()),
                _ => None,
            };
            req.user
                .as_deref()
                .or(from_credential)
                .unwrap_or_default()
                .trim()
                .to_lowercase()
        };
        CacheKey {
            authority: req.authority.as_str().to_ascii_lowercase(),
            tenant: req.tenant.trim().to_ascii_lowercase(),
            client_id: req.client_id.trim().to_ascii_lowercase(),
            flow,
            user,
            scope: req.scope.cache_form(),
        }
    }

    /// The key under which the refresh token is persisted. Versioned so that a future change of
    /// the format does not silently pick up someone else's token.
    pub fn storage_key(&self) -> String {
        format!(
            "entra.v1|{}|{}|{}|{}|{}|{}",
            self.authority, self.tenant, self.client_id, self.flow, self.user, self.scope
        )
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.storage_key())
    }
}

/// A token with the moment it was obtained, so that the margin can depend on its lifetime.
#[derive(Clone)]
pub(crate) struct Cached {
    pub token: AccessToken,
    pub obtained_at: OffsetDateTime,
}

impl Cached {
    /// Fresh enough to hand out: more than the margin (the configured one or 10 % of the
    /// lifetime, whichever is smaller) before expiry.
    pub fn fresh(&self, now: OffsetDateTime, margin: Duration) -> bool {
        let lifetime = self.token.expires_at - self.obtained_at;
        let tenth = lifetime / 10;
        let margin = time::Duration::try_from(margin).unwrap_or(time::Duration::MAX);
        now + margin.min(tenth) < self.token.expires_at
    }

    /// Not expired yet (with a little slack for clock differences), i.e. still usable as a
    /// fallback when renewal fails transiently.
    pub fn still_valid(&self, now: OffsetDateTime) -> bool {
        now + time::Duration::seconds(30) < self.token.expires_at
    }
}

pub(crate) type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

#[derive(Default)]
pub(crate) struct Cache {
    slots: Mutex<HashMap<CacheKey, Slot>>,
}

impl Cache {
    /// The slot for `key`, created empty on first use. Slots are never removed: there is one per
    /// configured account and scope, a handful per installation.
    pub fn slot(&self, key: &CacheKey) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(key.clone()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Grant;
    use crate::{Authority, Credential, Scope, TokenClaims};
    use secrecy::SecretString;

    fn cached(lifetime_s: i64) -> (Cached, OffsetDateTime) {
        let now = OffsetDateTime::now_utc();
        (
            Cached {
                token: AccessToken {
                    secret: SecretString::from("t"),
                    expires_at: now + time::Duration::seconds(lifetime_s),
                    claims: TokenClaims::default(),
                    flow: Flow::ClientSecret,
                    grant: Grant::ClientCredentials,
                    scope: None,
                    from_cache: false,
                },
                obtained_at: now,
            },
            now,
        )
    }

    #[test]
    fn margin_is_the_smaller_of_configured_and_a_tenth() {
        let five_min = Duration::from_secs(300);
        // One hour: margin 5 min (a tenth would be 6 min).
        let (c, now) = cached(3600);
        assert!(c.fresh(now + time::Duration::seconds(3600 - 301), five_min));
        assert!(!c.fresh(now + time::Duration::seconds(3600 - 299), five_min));
        // 20 s test token: margin 2 s.
        let (c, now) = cached(20);
        assert!(c.fresh(now + time::Duration::seconds(17), five_min));
        assert!(!c.fresh(now + time::Duration::seconds(19), five_min));
    }

    fn req(flow_user: Option<&str>, credential: Credential, scope: &str) -> TokenRequest {
        TokenRequest {
            authority: Authority::global(),
            tenant: "Contoso.onmicrosoft.com".into(),
            client_id: "ABC".into(),
            credential,
            scope: Scope::parse(scope),
            user: flow_user.map(str::to_owned),
        }
    }

    #[test]
    fn keys_separate_what_must_be_separate() {
        let secret = || Credential::ClientSecret {
            secret: SecretString::from("s"),
            basic_auth: false,
        };
        let pw = |u: &str| Credential::UsernamePassword {
            username: u.into(),
            password: SecretString::from("p"),
            client_secret: None,
        };
        let a = CacheKey::new(&req(Some("anna"), secret(), "https://x/.default"));
        let b = CacheKey::new(&req(Some("bo"), secret(), "https://x/.default"));
        assert_eq!(a, b, "app-only tokens are shared between mailboxes");
        let c = CacheKey::new(&req(None, pw("Adele@X"), "s1 s2"));
        let d = CacheKey::new(&req(None, pw("adele@x"), "s2 s1"));
        assert_eq!(c, d);
        let e = CacheKey::new(&req(None, pw("megan@x"), "s1 s2"));
        assert_ne!(c, e);
        assert_ne!(a, CacheKey::new(&req(None, secret(), "https://y/.default")));
        assert!(c.storage_key().starts_with("entra.v1|https://login.microsoftonline.com|contoso.onmicrosoft.com|abc|username-password|adele@x|"));
    }
}
