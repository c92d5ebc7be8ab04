//! Credential rotation (issue #17.3): the app replaces its own client secret before it expires.
//!
//! One round ([`rotate`]): with a token from the current secret, the app (owner of its own
//! registration, with `Application.ReadWrite.OwnedBy`, as `kurir setup entra` leaves it) adds a
//! new secret; a token is requested with the NEW secret before anything is stored (a secret
//! Entra does not accept yet is never switched to); then the new secret, its expiry and id are
//! stored in one transaction, and the old one is marked for removal after a grace period
//! ([`remove_retired`] removes it). At every moment a valid secret is stored: the old one until
//! the new one is proven, the new one after.
//!
//! Without the permission the round fails with the manual fix, and the expiry alarm stays.

use std::sync::Arc;
use std::time::Duration;

use kurir_graph::GraphClient;
use kurir_settings::Scope;
use kurir_store::{Change, KurirStore, NewValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

/// What a rotation did.
#[derive(Debug, Clone, Serialize)]
pub struct Rotated {
    pub new_secret_id: String,
    pub expires: String,
    /// The replaced secret's id, removed after the grace period.
    pub retired_secret_id: Option<String>,
    pub remove_after: String,
}

/// Why a rotation did not happen; says what to do by hand.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(
        "the app may not change its own registration (Microsoft Graph answered 403): it needs Application.ReadWrite.OwnedBy and to be an owner of its registration — run `kurir setup entra` again, or create a new secret by hand in the Entra admin center (App registrations → Certificates & secrets) and set client_secret and client_secret_expires"
    )]
    NotAllowed,
    #[error("the system settings do not use a client secret with Exchange Online: {0}")]
    NotApplicable(String),
    #[error(
        "Entra ID does not accept the new secret yet ({0}); nothing was switched, the current secret stays in use; it is tried again later"
    )]
    NewSecretRefused(String),
    #[error("{0}")]
    Connect(#[from] kurir_connect::ConnectError),
    #[error("Microsoft Entra ID: {0}")]
    Entra(#[from] kurir_entra::EntraError),
    #[error("Microsoft Graph: {0}")]
    Graph(#[from] kurir_graph::GraphError),
    #[error("the settings could not be read or written: {0}")]
    Store(#[from] kurir_store::StoreError),
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Whether the stored secret is due: `rotate_secret=true` and its expiry within
/// `rotate_before`.
pub async fn due(store: &Arc<dyn KurirStore>) -> Result<bool, RotationError> {
    let snap = store.snapshot().await?;
    let eff = snap.resolve(&Scope::System);
    if !eff.flag("rotate_secret") {
        return Ok(false);
    }
    let before = eff
        .duration("rotate_before")
        .unwrap_or(Duration::from_secs(30 * 86_400));
    let Some(expires) = eff
        .get("client_secret_expires")
        .and_then(kurir_settings::expiry)
    else {
        return Ok(false);
    };
    Ok(expires <= time::OffsetDateTime::now_utc() + before)
}

/// One rotation of the system settings' client secret.
pub async fn rotate(
    store: &Arc<dyn KurirStore>,
    secret_days: u32,
    grace: Duration,
) -> Result<Rotated, RotationError> {
    let snap = store.snapshot().await?;
    let (eff, req) = kurir_connect::token_request(
        &**store,
        &snap,
        &Scope::System,
        kurir_connect::Resource::Graph,
    )
    .await?;
    if eff.auth_flow() != kurir_settings::AuthFlow::ClientSecret {
        return Err(RotationError::NotApplicable(format!(
            "auth_flow is {}",
            eff.auth_flow()
        )));
    }
    let client = kurir_connect::token_client(&eff, store.clone())?;
    let token = client.token(&req).await?;
    let ca = match eff.get("ca_file") {
        Some(p) => std::fs::read_to_string(p).ok(),
        None => None,
    };
    let base = format!(
        "{}/v1.0",
        eff.get("graph_endpoint")
            .unwrap_or("https://graph.microsoft.com")
            .trim_end_matches('/')
    );
    let graph = GraphClient::new(&base, ca.as_deref(), Duration::from_secs(60))?;
    let t = token.secret.expose_secret();
    let app = graph
        .application_by_app_id(t, &req.client_id)
        .await
        .map_err(forbidden)?
        .ok_or(RotationError::NotAllowed)?;
    let end = time::OffsetDateTime::now_utc()
        + time::Duration::days(i64::from(secret_days.clamp(1, 730)));
    let cred = graph
        .add_password(t, &app.id, "Kurir (rotated)", end)
        .await
        .map_err(forbidden)?;
    let value = SecretString::from(cred.secret_text.clone().unwrap_or_default());
    // Proven before it is stored: a token with the new secret.
    let mut probe = req.clone();
    probe.credential = kurir_entra::Credential::ClientSecret {
        secret: value.clone(),
        basic_auth: false,
    };
    let fresh = kurir_entra::TokenClient::new(kurir_entra::ClientConfig {
        extra_ca_pem: ca.clone(),
        ..kurir_entra::ClientConfig::default()
    })?;
    if let Err(e) = fresh.token(&probe).await {
        // Leave nothing behind that nobody stores.
        let _ = graph.remove_password(t, &app.id, &cred.key_id).await;
        return Err(RotationError::NewSecretRefused(e.to_string()));
    }
    let expires = stored_expiry(cred.end_date_time.as_deref());
    let old_id = eff.get("client_secret_id").map(str::to_owned);
    let remove_after = rfc3339(time::OffsetDateTime::now_utc() + grace);
    let mut changes = vec![
        Change::Set("client_secret".into(), NewValue::Secret(value)),
        Change::Set(
            "client_secret_expires".into(),
            NewValue::Plain(expires.clone()),
        ),
        Change::Set(
            "client_secret_id".into(),
            NewValue::Plain(cred.key_id.clone()),
        ),
    ];
    if let Some(old) = &old_id {
        changes.push(Change::Set(
            "retired_secret_id".into(),
            NewValue::Plain(old.clone()),
        ));
        changes.push(Change::Set(
            "retired_secret_remove_after".into(),
            NewValue::Plain(remove_after.clone()),
        ));
    }
    store.apply(&Scope::System, changes).await?;
    tracing::info!(new_secret = %cred.key_id, expires = %expires, "client secret rotated");
    Ok(Rotated {
        new_secret_id: cred.key_id,
        expires,
        retired_secret_id: old_id,
        remove_after,
    })
}

/// Graph's `endDateTime` as stored in `client_secret_expires`: the instant, so that a secret
/// with a short lifetime (a tenant policy, the emulator) is rotated in time.
pub(crate) fn stored_expiry(end: Option<&str>) -> String {
    end.and_then(kurir_settings::expiry)
        .map(kurir_settings::format_instant)
        .unwrap_or_default()
}

fn forbidden(e: kurir_graph::GraphError) -> RotationError {
    match e {
        kurir_graph::GraphError::Service { status: 403, .. } => RotationError::NotAllowed,
        e => RotationError::Graph(e),
    }
}

/// Removes the secret a rotation replaced once its grace period is over; `Ok(true)` when it did.
pub async fn remove_retired(store: &Arc<dyn KurirStore>) -> Result<bool, RotationError> {
    let snap = store.snapshot().await?;
    let eff = snap.resolve(&Scope::System);
    let (Some(old), Some(after)) = (
        eff.get("retired_secret_id").map(str::to_owned),
        eff.get("retired_secret_remove_after"),
    ) else {
        return Ok(false);
    };
    let due = time::OffsetDateTime::parse(after, &time::format_description::well_known::Rfc3339)
        .map(|t| t <= time::OffsetDateTime::now_utc())
        .unwrap_or(true);
    if !due {
        return Ok(false);
    }
    let (eff, req) = kurir_connect::token_request(
        &**store,
        &snap,
        &Scope::System,
        kurir_connect::Resource::Graph,
    )
    .await?;
    let client = kurir_connect::token_client(&eff, store.clone())?;
    let token = client.token(&req).await?;
    let ca = eff
        .get("ca_file")
        .and_then(|p| std::fs::read_to_string(p).ok());
    let base = format!(
        "{}/v1.0",
        eff.get("graph_endpoint")
            .unwrap_or("https://graph.microsoft.com")
            .trim_end_matches('/')
    );
    let graph = GraphClient::new(&base, ca.as_deref(), Duration::from_secs(60))?;
    let t = token.secret.expose_secret();
    let app = graph
        .application_by_app_id(t, &req.client_id)
        .await
        .map_err(forbidden)?
        .ok_or(RotationError::NotAllowed)?;
    match graph.remove_password(t, &app.id, &old).await {
        Ok(()) => {}
        // Already gone (removed by hand): done all the same.
        Err(kurir_graph::GraphError::Service { status: 404, .. }) => {}
        Err(e) => return Err(forbidden(e)),
    }
    store
        .apply(
            &Scope::System,
            vec![
                Change::Unset("retired_secret_id".into()),
                Change::Unset("retired_secret_remove_after".into()),
            ],
        )
        .await?;
    tracing::info!(removed_secret = %old, "the client secret a rotation replaced is removed");
    Ok(true)
}
