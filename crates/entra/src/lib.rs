//! Kurir's Microsoft Entra ID token client.
//!
//! Gets OAuth 2.0 access tokens for Exchange Online (IMAP/POP/SMTP) and Microsoft Graph with the
//! flows an ERP installation uses — client secret, certificate (`private_key_jwt`),
//! username/password and device code — keeps them cached with single-flight renewal, rotates
//! refresh tokens through a pluggable store, retries what is transient, and explains every
//! refusal in English or Swedish so that the ERP admin knows which field to fix.
//!
//! Own code on reqwest rather than `azure_identity` or `oauth2`: those lack ROPC/device code,
//! refuse non-https authorities (the emulator) or drop Entra's `error_codes`/`trace_id`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kurir_entra::EntraError> {
//! use kurir_entra::*;
//! let client = TokenClient::new(ClientConfig::default())?;
//! let token = client
//!     .token(&TokenRequest {
//!         authority: Authority::global(),
//!         tenant: "contoso.onmicrosoft.com".into(),
//!         client_id: "3b1d7c52-8e4f-4a09-b6d2-91f0e5a7c3d8".into(),
//!         credential: Credential::ClientSecret { secret: "…".into(), basic_auth: false },
//!         scope: Scope::exchange_app(Cloud::Global),
//!         user: None,
//!     })
//!     .await?;
//! println!("roles: {:?}", token.claims.roles);
//! # Ok(()) }
//! ```

pub mod aadsts;
pub mod assertion;
pub mod authority;
mod cache;
mod client;
mod config;
pub mod error;
mod flows;
mod http;
mod request;
pub mod scope;
pub mod store;
mod token;

pub use aadsts::{Explanation, Lang, explain, explain_error};
pub use assertion::{AssertionAlg, CertificateCredential};
pub use authority::{Authority, Cloud};
pub use cache::CacheKey;
pub use client::TokenClient;
pub use config::{ClientConfig, RetryPolicy};
pub use error::{EntraError, EntraErrorBody, Explained, TransportProblem};
pub use request::{Credential, DeviceCodeCallback, DeviceCodePrompt, Flow, Grant, TokenRequest};
pub use scope::Scope;
pub use store::{MemoryRefreshStore, RefreshTokenStore, StoreError, StoreFuture};
pub use token::{AccessToken, TokenClaims};

/// Re-exported so that callers build secrets without depending on `secrecy` themselves.
pub use secrecy::{ExposeSecret, SecretString};
