//! From settings to a token request: the glue between the effective settings of a user, account
//! or the webshop (kurir-settings + the encrypted store) and the Entra token client
//! (kurir-entra). Library crates (intake, outbox) receive ready token requests or a token source
//! and never read settings themselves.

use std::sync::Arc;

pub mod permissions;

use kurir_entra::{
    AssertionAlg, Authority, ClientConfig, Cloud, Credential, DeviceCodePrompt, EntraError,
    RefreshTokenStore, SecretString, StoreFuture, TokenClient, TokenRequest,
};
use kurir_settings::{AuthFlow, Effective, Method, Scope, SettingsSnapshot, Severity};
use kurir_store::KurirStore;

/// Why no token request or client could be made. Each variant keeps its cause as the `source`
/// and says whether trying again later can help ([`ConnectError::is_transient`]).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Settings that cannot work (incomplete, or not Exchange Online): the caller's input is
    /// wrong, not the network. The CLI maps it to exit status 2.
    #[error("{0}")]
    Settings(String),

    /// The Extra CA certificate (`ca_file`) cannot be read.
    #[error("reading Extra CA certificate (ca_file) {path}: {source}")]
    CaFile {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A secret could not be read from the store (the database failed, or the secret cannot be
    /// decrypted: the store's message says which and what to do).
    #[error(transparent)]
    Store(#[from] kurir_store::StoreError),

    /// The authority or the token client cannot be set up from these settings.
    #[error(transparent)]
    Entra(#[from] EntraError),
}

impl ConnectError {
    /// Worth trying again later without anyone changing anything: a database that failed for a
    /// moment, not a setting.
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::Store(e) => e.is_transient(),
            ConnectError::Entra(e) => e.is_transient(),
            ConnectError::Settings(_) | ConnectError::CaFile { .. } => false,
        }
    }
}

fn bad(msg: impl Into<String>) -> ConnectError {
    ConnectError::Settings(msg.into())
}

/// Which resource a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Resource {
    /// Microsoft Graph (mail through the REST API).
    Graph,
    /// Exchange Online's IMAP, POP3 and SMTP.
    Exchange,
}

/// Refresh tokens of delegated sign-ins persist in the encrypted store, so a restart does not
/// force a new interactive sign-in.
pub struct StoreRefreshTokens(pub Arc<dyn KurirStore>);

impl RefreshTokenStore for StoreRefreshTokens {
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<SecretString>> {
        Box::pin(async move { Ok(self.0.load_refresh_token(key).await?) })
    }
    fn save<'a>(&'a self, key: &'a str, token: SecretString) -> StoreFuture<'a, ()> {
        Box::pin(async move { Ok(self.0.save_refresh_token(key, &token).await?) })
    }
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move { Ok(self.0.delete_refresh_token(key).await?) })
    }
}

/// Reads a secret from wherever resolution found it (the scope in `from`).
async fn secret_of(
    store: &dyn KurirStore,
    eff: &Effective,
    key: &str,
) -> Result<Option<SecretString>, ConnectError> {
    let Some(from) = eff.field(key).and_then(|f| f.from.clone()) else {
        return Ok(None);
    };
    Ok(store.reveal(&from, key).await?)
}

/// The token client configured from the effective settings (extra CA for the emulator or a
/// TLS-inspecting proxy).
pub fn token_client(
    eff: &Effective,
    store: Arc<dyn KurirStore>,
) -> Result<TokenClient, ConnectError> {
    let mut cfg = ClientConfig::default();
    if let Some(path) = eff.get("ca_file") {
        cfg.extra_ca_pem =
            Some(
                std::fs::read_to_string(path).map_err(|source| ConnectError::CaFile {
                    path: path.to_owned(),
                    source,
                })?,
            );
    }
    Ok(TokenClient::new(cfg)?.with_refresh_store(Arc::new(StoreRefreshTokens(store))))
}

/// Builds the token request for `scope`'s effective settings. Settings with errors are refused
/// up front with the validation messages, so Entra is never asked with a half configuration,
/// and no secret is read, let alone sent, when an endpoint is outside the selected cloud without
/// the server switch (issue #13.1, see `kurir_settings::endpoints`): every token Kurir gets
/// (CLI, intake, outbox, Test connection) comes through here.
pub async fn token_request(
    store: &dyn KurirStore,
    snap: &SettingsSnapshot,
    scope: &Scope,
    resource: Resource,
) -> Result<(Effective, TokenRequest), ConnectError> {
    let eff = snap.resolve(scope);
    let errors: Vec<String> = snap
        .validate(scope, time::OffsetDateTime::now_utc().date())
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.to_string())
        .collect();
    if !errors.is_empty() {
        return Err(bad(format!(
            "the settings of {scope} cannot be used: {}",
            errors.join(" | ")
        )));
    }
    if eff.method() != Method::ExchangeOnline {
        return Err(bad(format!(
            "{scope} does not use Exchange Online (Method for e-mail is {}), so there is no token to get; set method={}",
            eff.method(),
            Method::ExchangeOnline
        )));
    }
    let cloud = Cloud::parse(eff.cloud().as_str()).unwrap_or(Cloud::Global);
    let authority =
        Authority::url(eff.get("authority").unwrap_or(cloud.authority_host()))?.with_cloud(cloud);
    let flow = eff.auth_flow();
    let missing = |k: &str| bad(format!("{scope}: {k} is not set"));
    let (credential, user) = match flow {
        AuthFlow::ClientSecret => (
            Credential::ClientSecret {
                secret: secret_of(store, &eff, "client_secret")
                    .await?
                    .ok_or_else(|| missing("client_secret"))?,
                basic_auth: false,
            },
            None,
        ),
        AuthFlow::Certificate => (
            Credential::Certificate {
                cert_pem: eff
                    .get("certificate")
                    .ok_or_else(|| missing("certificate"))?
                    .to_owned(),
                key_pem: secret_of(store, &eff, "certificate_key")
                    .await?
                    .ok_or_else(|| missing("certificate_key"))?,
                alg: AssertionAlg::Rs256,
            },
            None,
        ),
        AuthFlow::UsernamePassword => {
            let username = eff
                .get("exchange_username")
                .ok_or_else(|| missing("exchange_username"))?
                .to_owned();
            (
                Credential::UsernamePassword {
                    username: username.clone(),
                    password: secret_of(store, &eff, "exchange_password")
                        .await?
                        .ok_or_else(|| missing("exchange_password"))?,
                    client_secret: secret_of(store, &eff, "client_secret").await?,
                },
                Some(username),
            )
        }
        AuthFlow::DeviceCode => (
            Credential::DeviceCode {
                prompt: Arc::new(|p: &DeviceCodePrompt| {
                    eprintln!("{}", p.message);
                }),
            },
            Some(scope.storage_key()),
        ),
    };
    let app_only = flow.is_app_only();
    let scopes = match (resource, app_only) {
        (Resource::Graph, true) => kurir_entra::Scope::graph_app(cloud),
        (Resource::Exchange, true) => kurir_entra::Scope::exchange_app(cloud),
        (Resource::Graph, false) => {
            kurir_entra::Scope::graph_delegated(cloud, &["Mail.ReadWrite", "Mail.Send"])
                .with_offline_access()
        }
        (Resource::Exchange, false) => kurir_entra::Scope::exchange_delegated(
            cloud,
            &["IMAP.AccessAsUser.All", "POP.AccessAsUser.All", "SMTP.Send"],
        )
        .with_offline_access(),
    };
    let request = TokenRequest {
        authority,
        tenant: eff
            .get("tenant_id")
            .ok_or_else(|| missing("tenant_id"))?
            .to_owned(),
        client_id: eff
            .get("client_id")
            .ok_or_else(|| missing("client_id"))?
            .to_owned(),
        credential,
        scope: scopes,
        user,
    };
    Ok((eff, request))
}
