//! [`TokenClient`]: the one entry point. Picks the grant for a request (cache, stored refresh
//! token, or the configured credential), keeps refresh tokens rotated in the store, and
//! serialises renewals per cache key.

use std::sync::Arc;

use secrecy::SecretString;
use time::OffsetDateTime;

use crate::assertion::CertificateCredential;
use crate::cache::{Cache, CacheKey, Cached};
use crate::config::ClientConfig;
use crate::error::EntraError;
use crate::flows::{self, ClientAuth, TokenResponse};
use crate::http::Http;
use crate::request::{Credential, Grant, TokenRequest};
use crate::store::{MemoryRefreshStore, RefreshTokenStore};
use crate::token::{AccessToken, TokenClaims};

/// Gets access tokens from Entra ID; cheap to share (`Arc<TokenClient>`) across tasks.
pub struct TokenClient {
    http: Http,
    cfg: ClientConfig,
    cache: Cache,
    store: Arc<dyn RefreshTokenStore>,
}

impl std::fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenClient")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl TokenClient {
    /// A client with an in-memory refresh-token store (refresh tokens are lost on restart until
    /// [`TokenClient::with_refresh_store`] provides a persistent one).
    pub fn new(cfg: ClientConfig) -> Result<TokenClient, EntraError> {
        Ok(TokenClient {
            http: Http::new(&cfg)?,
            cfg,
            cache: Cache::default(),
            store: Arc::new(MemoryRefreshStore::new()),
        })
    }

    /// Persists refresh tokens in `store` (and reads them from it).
    pub fn with_refresh_store(mut self, store: Arc<dyn RefreshTokenStore>) -> TokenClient {
        self.store = store;
        self
    }

    /// An access token for `req`: from the cache while it is fresh, otherwise renewed with a
    /// stored refresh token if there is one, otherwise with the request's credential.
    /// Concurrent calls for the same cache key share one renewal.
    pub async fn token(&self, req: &TokenRequest) -> Result<AccessToken, EntraError> {
        check_request(req)?;
        let key = CacheKey::new(req);
        let slot = self.cache.slot(&key);
        let mut guard = slot.lock().await;
        let now = OffsetDateTime::now_utc();
        if let Some(c) = guard
            .as_ref()
            .filter(|c| c.fresh(now, self.cfg.refresh_margin))
        {
            let mut t = c.token.clone();
            t.from_cache = true;
            return Ok(t);
        }
        match self.fetch(req, &key).await {
            Ok(fresh) => {
                let t = fresh.token.clone();
                *guard = Some(fresh);
                Ok(t)
            }
            Err(e) if e.is_transient() => match guard.as_ref().filter(|c| c.still_valid(now)) {
                // Within the margin the old token still works; an Entra outage must not stop
                // mail while it does. The next call tries to renew again.
                Some(c) => {
                    tracing::warn!(error = %e, "token renewal failed; using the cached token until it expires");
                    let mut t = c.token.clone();
                    t.from_cache = true;
                    Ok(t)
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Forgets the cached access token and the stored refresh token for `req`, e.g. after the
    /// admin changed the account or Exchange rejected the token.
    pub async fn forget(&self, req: &TokenRequest) -> Result<(), EntraError> {
        let key = CacheKey::new(req);
        let slot = self.cache.slot(&key);
        *slot.lock().await = None;
        self.store
            .delete(&key.storage_key())
            .await
            .map_err(|e| store_error("delete", e))
    }

    async fn fetch(&self, req: &TokenRequest, key: &CacheKey) -> Result<Cached, EntraError> {
        let token_endpoint = req.authority.token_endpoint(&req.tenant)?;
        let auth = client_auth(&req.credential)?;
        let flow = req.credential.flow();
        let storage_key = key.storage_key();

        if !flow.is_app_only() {
            let stored = self
                .store
                .load(&storage_key)
                .await
                .map_err(|e| store_error("load", e))?;
            if let Some(rt) = stored {
                match flows::refresh::run(
                    &self.http,
                    &token_endpoint,
                    &req.client_id,
                    &auth,
                    &req.scope,
                    &rt,
                )
                .await
                {
                    Ok(resp) => {
                        return self
                            .finish(req, &storage_key, resp, Grant::RefreshToken)
                            .await;
                    }
                    Err(e) if flows::refresh::token_is_dead(&e) => {
                        tracing::warn!(error = %e, "the stored refresh token was refused; signing in with the configured credential");
                        self.store
                            .delete(&storage_key)
                            .await
                            .map_err(|e| store_error("delete", e))?;
                    }
                    Err(e) => return Err(e),
                }
            }
        }

        let (resp, grant) = match &req.credential {
            Credential::ClientSecret { .. } | Credential::Certificate { .. } => (
                flows::client_credentials::run(
                    &self.http,
                    &token_endpoint,
                    &req.client_id,
                    &auth,
                    &req.scope,
                )
                .await?,
                Grant::ClientCredentials,
            ),
            Credential::UsernamePassword {
                username, password, ..
            } => (
                flows::password::run(
                    &self.http,
                    &token_endpoint,
                    &req.client_id,
                    &auth,
                    &req.scope,
                    username,
                    password,
                )
                .await?,
                Grant::Password,
            ),
            Credential::DeviceCode { prompt } => {
                let device_endpoint = req.authority.device_code_endpoint(&req.tenant)?;
                (
                    flows::device_code::run(
                        &self.http,
                        flows::device_code::Endpoints {
                            device_code: &device_endpoint,
                            token: &token_endpoint,
                        },
                        &req.client_id,
                        &auth,
                        &req.scope,
                        prompt.as_ref(),
                    )
                    .await?,
                    Grant::DeviceCode,
                )
            }
        };
        self.finish(req, &storage_key, resp, grant).await
    }

    async fn finish(
        &self,
        req: &TokenRequest,
        storage_key: &str,
        resp: TokenResponse,
        grant: Grant,
    ) -> Result<Cached, EntraError> {
        if let Some(rt) = resp.refresh_token {
            // Rotation: the new token replaces the old one, which Entra may already have retired.
            self.store
                .save(storage_key, rt)
                .await
                .map_err(|e| store_error("save", e))?;
        }
        let obtained_at = OffsetDateTime::now_utc();
        // `expires_in` is the server's word: Entra's access tokens live 60-90 minutes, and a
        // token lifetime policy allows at most a day, so anything longer is clamped to a day
        // (a huge value must not overflow the expiry time, nor keep a token cached forever).
        let lifetime = time::Duration::seconds(resp.expires_in.min(MAX_TOKEN_LIFETIME_SECS) as i64);
        let claims = {
            use secrecy::ExposeSecret;
            TokenClaims::decode_unverified(resp.access_token.expose_secret())
        };
        Ok(Cached {
            token: AccessToken {
                secret: resp.access_token,
                expires_at: obtained_at + lifetime,
                claims,
                flow: req.credential.flow(),
                grant,
                scope: resp.scope,
                from_cache: false,
            },
            obtained_at,
        })
    }
}

/// The longest access-token lifetime believed: a day (the longest a token lifetime policy
/// allows).
const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

fn client_auth(c: &Credential) -> Result<ClientAuth, EntraError> {
    Ok(match c {
        Credential::ClientSecret { secret, basic_auth } => {
            check_secret(secret, "client_secret", "Klienthemlighet")?;
            if *basic_auth {
                ClientAuth::SecretBasic(secret.clone())
            } else {
                ClientAuth::SecretPost(secret.clone())
            }
        }
        Credential::Certificate {
            cert_pem,
            key_pem,
            alg,
        } => ClientAuth::Assertion {
            cert: Box::new(CertificateCredential::from_pem(cert_pem, key_pem)?),
            alg: *alg,
        },
        Credential::UsernamePassword {
            username,
            password,
            client_secret,
        } => {
            if username.trim().is_empty() {
                return Err(EntraError::Config {
                    setting: "exchange_username",
                    problem: "Användarnamn (Exchange) is empty; enter the account's full sign-in name, e.g. name@company.com".into(),
                });
            }
            check_secret(password, "exchange_password", "Lösenord (Exchange)")?;
            match client_secret {
                Some(s) => {
                    check_secret(s, "client_secret", "Klienthemlighet")?;
                    ClientAuth::SecretPost(s.clone())
                }
                None => ClientAuth::Public,
            }
        }
        Credential::DeviceCode { .. } => ClientAuth::Public,
    })
}

fn check_secret(s: &SecretString, setting: &'static str, label: &str) -> Result<(), EntraError> {
    use secrecy::ExposeSecret;
    if s.expose_secret().is_empty() {
        return Err(EntraError::Config {
            setting,
            problem: format!("{label} is empty; fill it in (Autentiseringsflöde needs it)"),
        });
    }
    Ok(())
}

fn check_request(req: &TokenRequest) -> Result<(), EntraError> {
    if req.client_id.trim().is_empty() {
        return Err(EntraError::Config {
            setting: "client_id",
            problem: "Program-ID (klient) is empty; copy the Application (client) ID from the app registration's Overview page in Microsoft Entra ID".into(),
        });
    }
    if req.scope.is_empty() {
        return Err(EntraError::Config {
            setting: "scope",
            problem:
                "no scope was requested; use e.g. Scope::exchange_app or Scope::smtp_delegated"
                    .into(),
        });
    }
    Ok(())
}

fn store_error(action: &'static str, e: crate::store::StoreError) -> EntraError {
    EntraError::RefreshStore {
        action,
        detail: e.to_string(),
    }
}
