//! Credential rotation (issue #17.3): the app replaces its own client secret or certificate
//! before it expires.
//!
//! One round ([`rotate`]): with a token from the current credential, the app adds a new one to
//! its own registration: a secret with `addPassword` (it needs `Application.ReadWrite.OwnedBy`
//! and to own its registration, as `kurir setup entra` leaves it), a certificate generated here
//! with `addKey` and a proof of possession signed by the current certificate (no permission
//! needed: <https://learn.microsoft.com/en-us/graph/api/application-addkey>). A token is
//! requested with the NEW credential before anything is stored (one Entra does not accept yet
//! is never switched to); then it is stored with its expiry and id in one transaction, and the
//! old one is marked for removal after a grace period ([`remove_retired`] removes it with
//! `removePassword` / `removeKey`). At every moment a valid credential is stored: the old one
//! until the new one is proven, the new one after.
//!
//! Without the permission the round fails with the manual fix, and the expiry alarm stays.

use std::sync::Arc;
use std::time::Duration;

use kurir_graph::{Application, GraphClient};
use kurir_settings::{AuthFlow, Effective, Scope};
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
    #[error(
        "the system settings do not use a client secret or certificate with Exchange Online: {0}"
    )]
    NotApplicable(String),
    #[error(
        "Entra ID does not accept the new credential yet ({0}); nothing was switched, the current one stays in use; it is tried again later"
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

/// When the stored credential expires: the client secret's `client_secret_expires`, the
/// certificate's own end of validity.
fn expiry_of(eff: &Effective) -> Option<time::OffsetDateTime> {
    match eff.auth_flow() {
        AuthFlow::ClientSecret => eff
            .get("client_secret_expires")
            .and_then(kurir_settings::expiry),
        AuthFlow::Certificate => eff
            .get("certificate")
            .and_then(crate::certificate::not_after),
        _ => None,
    }
}

/// Whether the stored credential is due: `rotate_secret=true` and its expiry within
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
    let Some(expires) = expiry_of(&eff) else {
        return Ok(false);
    };
    Ok(expires <= time::OffsetDateTime::now_utc() + before)
}

/// The app as its own credential sees it: settings, a Graph token, Graph, its registration.
struct AppSession {
    eff: Effective,
    req: kurir_entra::TokenRequest,
    token: SecretString,
    graph: GraphClient,
    app: Application,
    ca: Option<String>,
}

async fn session(store: &Arc<dyn KurirStore>) -> Result<AppSession, RotationError> {
    let snap = store.snapshot().await?;
    let (eff, req) = kurir_connect::token_request(
        &**store,
        &snap,
        &Scope::System,
        kurir_connect::Resource::Graph,
    )
    .await?;
    if !matches!(
        eff.auth_flow(),
        AuthFlow::ClientSecret | AuthFlow::Certificate
    ) {
        return Err(RotationError::NotApplicable(format!(
            "auth_flow is {}",
            eff.auth_flow()
        )));
    }
    let client = kurir_connect::token_client(&eff, store.clone())?;
    let token = client.token(&req).await?.secret;
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
    // An app rolling its own certificate needs no permission, not even to read its
    // registration: the object id the set-up stored is all it needs. Secrets need
    // Application.ReadWrite.OwnedBy, which reads it.
    let stored_object_id = eff
        .get("application_object_id")
        .filter(|_| eff.auth_flow() == AuthFlow::Certificate);
    let app = match stored_object_id {
        Some(id) => Application {
            id: id.to_owned(),
            app_id: req.client_id.clone(),
            display_name: None,
            password_credentials: Vec::new(),
            key_credentials: Vec::new(),
        },
        None => graph
            .application_by_app_id(token.expose_secret(), &req.client_id)
            .await
            .map_err(forbidden)?
            .ok_or(RotationError::NotAllowed)?,
    };
    Ok(AppSession {
        eff,
        req,
        token,
        graph,
        app,
        ca,
    })
}

/// The stored certificate, ready to sign a proof of possession.
async fn stored_certificate(
    store: &Arc<dyn KurirStore>,
    eff: &Effective,
) -> Result<kurir_entra::CertificateCredential, RotationError> {
    let pem = eff.get("certificate").unwrap_or_default();
    let key = store
        .reveal(&Scope::System, "certificate_key")
        .await?
        .unwrap_or_else(|| SecretString::from(String::new()));
    Ok(kurir_entra::CertificateCredential::from_pem(pem, &key)?)
}

/// One rotation of the system settings' credential (secret or certificate, as `auth_flow`).
pub async fn rotate(
    store: &Arc<dyn KurirStore>,
    days: u32,
    grace: Duration,
) -> Result<Rotated, RotationError> {
    let s = session(store).await?;
    let t = s.token.expose_secret();
    let app = &s.app;
    let fresh = kurir_entra::TokenClient::new(kurir_entra::ClientConfig {
        extra_ca_pem: s.ca.clone(),
        ..kurir_entra::ClientConfig::default()
    })?;
    let mut probe = s.req.clone();
    let (mut changes, new_id, expires, old_id) = if s.eff.auth_flow() == AuthFlow::Certificate {
        let current = stored_certificate(store, &s.eff).await?;
        let name = app
            .display_name
            .as_deref()
            .unwrap_or("Kurir (Monitor ERP e-mail)");
        let cert = crate::certificate::generate(name, days).map_err(|e| {
            RotationError::NotApplicable(format!("no certificate could be made: {e}"))
        })?;
        let proof = current.proof_of_possession(&app.id)?;
        let added = s
            .graph
            .add_key(
                t,
                &app.id,
                "Kurir (rotated)",
                &cert.der_base64,
                proof.expose_secret(),
            )
            .await
            .map_err(forbidden)?;
        let alg = match &s.req.credential {
            kurir_entra::Credential::Certificate { alg, .. } => *alg,
            _ => kurir_entra::AssertionAlg::default(),
        };
        probe.credential = kurir_entra::Credential::Certificate {
            cert_pem: cert.pem.clone(),
            key_pem: cert.key_pem.clone(),
            alg,
        };
        // Proven before it is stored: a token with the new certificate.
        if let Err(e) = fresh.token(&probe).await {
            if let Ok(p) = current.proof_of_possession(&app.id) {
                let _ = s
                    .graph
                    .remove_key(t, &app.id, &added.key_id, p.expose_secret())
                    .await;
            }
            return Err(RotationError::NewSecretRefused(e.to_string()));
        }
        let changes = vec![
            Change::Set("certificate".into(), NewValue::Plain(cert.pem)),
            Change::Set("certificate_key".into(), NewValue::Secret(cert.key_pem)),
            Change::Set(
                "certificate_id".into(),
                NewValue::Plain(added.key_id.clone()),
            ),
        ];
        let old = s.eff.get("certificate_id").map(str::to_owned);
        (
            changes,
            added.key_id,
            kurir_settings::format_instant(cert.not_after),
            old,
        )
    } else {
        let end =
            time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(days.clamp(1, 730)));
        let cred = s
            .graph
            .add_password(t, &app.id, "Kurir (rotated)", end)
            .await
            .map_err(forbidden)?;
        let value = SecretString::from(cred.secret_text.clone().unwrap_or_default());
        probe.credential = kurir_entra::Credential::ClientSecret {
            secret: value.clone(),
            basic_auth: false,
        };
        // Proven before it is stored: a token with the new secret.
        if let Err(e) = fresh.token(&probe).await {
            // Leave nothing behind that nobody stores.
            let _ = s.graph.remove_password(t, &app.id, &cred.key_id).await;
            return Err(RotationError::NewSecretRefused(e.to_string()));
        }
        let expires = stored_expiry(cred.end_date_time.as_deref());
        let changes = vec![
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
        let old = s.eff.get("client_secret_id").map(str::to_owned);
        (changes, cred.key_id, expires, old)
    };
    let remove_after = rfc3339(time::OffsetDateTime::now_utc() + grace);
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
    tracing::info!(new_credential = %new_id, expires = %expires, flow = %s.eff.auth_flow(), "client secret rotated");
    Ok(Rotated {
        new_secret_id: new_id,
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
    let s = session(store).await?;
    let t = s.token.expose_secret();
    let removed = if s.eff.auth_flow() == AuthFlow::Certificate {
        let current = stored_certificate(store, &s.eff).await?;
        let proof = current.proof_of_possession(&s.app.id)?;
        s.graph
            .remove_key(t, &s.app.id, &old, proof.expose_secret())
            .await
    } else {
        s.graph.remove_password(t, &s.app.id, &old).await
    };
    match removed {
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
