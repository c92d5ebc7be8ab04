//! `kurir setup entra`: Kurir registers itself in Microsoft Entra ID (issue #17.1).
//!
//! An administrator of the tenant signs in with the device code flow (delegated, with
//! `Application.ReadWrite.All` and `AppRoleAssignment.ReadWrite.All`) through a public client
//! (the system setting `setup_client_id`; default Microsoft Graph Command Line Tools,
//! `14d82eec-204b-4c2f-b7e8-296a70dab67e`, which every tenant has). Then, with Microsoft Graph:
//! 1. find the registration by its display name, or create it (single tenant), listing the
//!    permissions it gets as `requiredResourceAccess`;
//! 2. find or create its service principal;
//! 3. grant exactly the application permissions the chosen transports need (admin consent):
//!    Graph `Mail.ReadWrite` and `Mail.Send`; Exchange Online `IMAP.AccessAsApp`,
//!    `POP.AccessAsApp`, `SMTP.SendAsApp`; each app role is looked up by its value in the
//!    resource's service principal, never by a hard-coded id;
//! 4. with self-rotation of a client secret, `Application.ReadWrite.OwnedBy` and the app's own
//!    service principal as an owner of its registration, so `kurir credential rotate` can replace
//!    its secret (a certificate needs neither: see [`SetupRequest::secret_self_rotation`]);
//! 5. the credential, unless the stored one is this app's and valid for more than 30 days: a
//!    certificate generated here (recommended; only its public part is uploaded, with
//!    `PATCH keyCredentials` or, when the app has one already, `addKey`), or a client secret
//!    (`addPassword`);
//! 6. the system settings: method, client id, tenant, flow, secret and its expiry, and, with
//!    self-rotation, `rotate_secret=true`.
//!
//! Re-running finds and reuses what exists and changes nothing. A user without the needed
//! directory role gets which role is needed and who can grant it. The parts only Exchange Online
//! PowerShell can do are printed with the ids filled in ([`powershell`]).
//!
//! Calls and pages: see `kurir_graph::client::directory`.

use std::sync::Arc;

use kurir_graph::{AppRoleAssignment, GraphClient, GraphError, ServicePrincipal};
use kurir_settings::{Scope, SettingsSnapshot};
use kurir_store::{Change, KurirStore, NewValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use kurir_connect::permissions::Use;
pub use kurir_connect::permissions::{EXCHANGE_APP_ID, GRAPH_APP_ID};

/// The default public client for the administrator's sign-in: Microsoft Graph Command Line Tools.
pub const DEFAULT_SETUP_CLIENT_ID: &str = "14d82eec-204b-4c2f-b7e8-296a70dab67e";
/// The delegated permissions the administrator's token needs.
pub const ADMIN_SCOPES: &[&str] = &[
    "Application.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
];

/// Which ways of sending and reading mail the app must be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Transports {
    pub graph: bool,
    pub imap: bool,
    pub pop: bool,
    pub smtp: bool,
}

impl Transports {
    /// `graph,imap,smtp` → the set; `None` for an unknown word.
    pub fn parse(s: &str) -> Result<Transports, String> {
        let mut t = Transports::default();
        for w in s.split(',').map(|w| w.trim().to_ascii_lowercase()) {
            match w.as_str() {
                "graph" => t.graph = true,
                "imap" => t.imap = true,
                "pop" | "pop3" => t.pop = true,
                "smtp" => t.smtp = true,
                "" => {}
                other => {
                    return Err(format!(
                        "unknown transport '{other}'; use graph, imap, pop and/or smtp"
                    ));
                }
            }
        }
        Ok(t)
    }

    /// The application permissions these transports need: (resource app id, role value).
    pub fn roles(self, self_rotation: bool) -> Vec<(&'static str, &'static str)> {
        let uses = [
            (self.graph, Use::GraphRead),
            (self.graph, Use::GraphSend),
            (self_rotation, Use::SelfRotation),
            (self.imap, Use::ImapRead),
            (self.pop, Use::PopRead),
            (self.smtp, Use::SmtpSend),
        ];
        uses.into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, u)| {
                let (resource, role) = u.permission();
                (resource.app_id(), role)
            })
            .collect()
    }
}

/// What the set-up is asked to do.
#[derive(Debug, Clone)]
pub struct SetupRequest {
    pub display_name: String,
    pub transports: Transports,
    /// Make the app able to rotate its own secret (owner + Application.ReadWrite.OwnedBy).
    pub self_rotation: bool,
    /// A certificate (recommended) or a client secret.
    pub credential: CredentialKind,
    /// How long a new client secret or certificate lives (Entra allows secrets two years).
    pub secret_days: u32,
    /// Mailboxes to name in the printed Exchange commands.
    pub mailboxes: Vec<String>,
}

/// The app's credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// A certificate generated here; only its public part goes to Entra ID.
    Certificate,
    /// A client secret (`addPassword`).
    Secret,
}

impl CredentialKind {
    pub fn parse(s: &str) -> Result<CredentialKind, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "certificate" | "cert" => Ok(CredentialKind::Certificate),
            "secret" | "client-secret" => Ok(CredentialKind::Secret),
            other => Err(format!(
                "unknown credential '{other}'; use certificate (recommended) or secret"
            )),
        }
    }

    /// The `auth_flow` setting it goes with.
    pub fn auth_flow(self) -> &'static str {
        match self {
            CredentialKind::Certificate => "certificate",
            CredentialKind::Secret => "client-secret",
        }
    }
}

impl SetupRequest {
    /// Whether the app needs the owner + `Application.ReadWrite.OwnedBy` to rotate: only for a
    /// client secret. An app rolls its own certificate with `addKey`/`removeKey` and a proof of
    /// possession, which needs no permission
    /// (<https://learn.microsoft.com/en-us/graph/api/application-addkey>), so a certificate
    /// set-up grants nothing for it: least privilege.
    pub fn secret_self_rotation(&self) -> bool {
        self.self_rotation && self.credential == CredentialKind::Secret
    }
}

/// What the set-up found and did.
#[derive(Debug, Clone, Serialize)]
pub struct SetupReport {
    pub tenant_id: String,
    pub app_id: String,
    pub application_object_id: String,
    pub service_principal_id: String,
    pub created_application: bool,
    pub created_service_principal: bool,
    /// Application permissions granted now, and those that were granted already.
    pub granted: Vec<String>,
    pub already_granted: Vec<String>,
    pub owner_added: bool,
    /// The client secret added now (its id and expiry; never its value), or `None` when the
    /// stored one was kept.
    pub new_secret: Option<(String, String)>,
    /// The certificate added now (its key id, expiry and SHA-1 thumbprint), or `None` when the
    /// stored one was kept.
    pub new_certificate: Option<(String, String, String)>,
    /// Whether the system settings changed.
    pub settings_changed: bool,
    /// Exchange Online PowerShell to run for IMAP/POP/SMTP and to limit the app to mailboxes.
    pub powershell: Vec<String>,
}

/// Why the set-up stopped; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "{user} may not {what} in this tenant (Microsoft Graph: Authorization_RequestDenied). It needs the Microsoft Entra role {roles}; a Global Administrator can assign it (Entra admin center → Roles & admins), or can run `kurir setup entra` instead"
    )]
    Denied {
        user: String,
        what: &'static str,
        roles: &'static str,
    },
    #[error(
        "there are {0} app registrations named '{1}' in the tenant; give another name with --name, or remove the extra ones in the Entra admin center"
    )]
    Ambiguous(usize, String),
    #[error(
        "the resource {0} has no application permission {1} in this tenant; is the tenant's Exchange Online licensed?"
    )]
    NoSuchRole(&'static str, &'static str),
    #[error(
        "the app registration already has {0} certificate(s) Kurir holds no key of; uploading one would replace them (Graph's keyCredentials is one collection). Remove them in the Entra admin center (App registrations → the app → Certificates & secrets) if nothing uses them, or run again with --credential secret"
    )]
    ForeignCertificates(usize),
    #[error("the certificate could not be made: {0}")]
    Certificate(String),
    #[error("Microsoft Graph: {0}")]
    Graph(#[from] GraphError),
    #[error("{0}")]
    Settings(String),
    #[error(transparent)]
    Entra(#[from] kurir_entra::EntraError),
    #[error("the settings could not be written: {0}")]
    Store(#[from] kurir_store::StoreError),
}

/// The administrator, signed in for the set-up: the Graph token is used for this run only and
/// kept nowhere.
pub struct AdminSession {
    pub token: SecretString,
    /// Who signed in (UPN).
    pub user: String,
    /// The tenant's id, from the token.
    pub tenant_id: String,
    pub graph: GraphClient,
}

/// The administrator's device-code sign-in through the public client `setup_client_id` (default
/// Microsoft Graph Command Line Tools), with the delegated [`ADMIN_SCOPES`]; `prompt` shows the
/// code. The token and the Graph calls go only to the selected cloud unless the server allows
/// custom endpoints (issue #13.1's rule).
pub async fn admin_sign_in(
    eff: &kurir_settings::Effective,
    tenant: &str,
    prompt: kurir_entra::DeviceCodeCallback,
) -> Result<AdminSession, SetupError> {
    use kurir_entra::{Authority, ClientConfig, Cloud, Credential, TokenClient, TokenRequest};
    let custom = kurir_settings::endpoints::custom_endpoints(eff);
    if !custom.is_empty() && !eff.flag(kurir_settings::endpoints::ALLOW_CUSTOM_ENDPOINTS) {
        return Err(SetupError::Settings(format!(
            "{} point outside the selected cloud and custom endpoints are not allowed on this server; leave them unset (kurir settings unset …) or allow them with kurir settings set allow_custom_endpoints=true",
            custom
                .iter()
                .map(|(k, _, _)| *k)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let cloud = Cloud::parse(eff.cloud().as_str()).unwrap_or(Cloud::Global);
    let authority =
        Authority::url(eff.get("authority").unwrap_or(cloud.authority_host()))?.with_cloud(cloud);
    let ca = match eff.get("ca_file") {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
            SetupError::Settings(format!(
                "the Extra CA certificate (ca_file) {p} cannot be read: {e}"
            ))
        })?),
        None => None,
    };
    // No refresh-token store: the administrator's sign-in is used once and kept nowhere.
    let client = TokenClient::new(ClientConfig {
        extra_ca_pem: ca.clone(),
        ..ClientConfig::default()
    })?;
    let setup_client = eff
        .get("setup_client_id")
        .unwrap_or(DEFAULT_SETUP_CLIENT_ID)
        .to_owned();
    let token = client
        .token(&TokenRequest {
            authority,
            tenant: tenant.to_owned(),
            client_id: setup_client,
            credential: Credential::DeviceCode { prompt },
            scope: kurir_entra::Scope::graph_delegated(cloud, ADMIN_SCOPES),
            user: Some("kurir-setup".into()),
        })
        .await?;
    let user = token
        .claims
        .upn
        .clone()
        .or_else(|| token.claims.preferred_username.clone())
        .unwrap_or_else(|| "the signed-in user".into());
    let tenant_id = token
        .claims
        .tid
        .clone()
        .unwrap_or_else(|| tenant.to_owned());
    let base = format!(
        "{}/v1.0",
        eff.get("graph_endpoint")
            .unwrap_or("https://graph.microsoft.com")
            .trim_end_matches('/')
    );
    let graph = GraphClient::new(&base, ca.as_deref(), std::time::Duration::from_secs(60))?;
    Ok(AdminSession {
        token: token.secret.clone(),
        user,
        tenant_id,
        graph,
    })
}

/// Directory steps, for progress output.
pub trait Progress: Send + Sync {
    fn step(&self, text: &str);
}

fn denied(e: GraphError, user: &str, what: &'static str, roles: &'static str) -> SetupError {
    match &e {
        GraphError::Service { status: 403, .. } => SetupError::Denied {
            user: user.to_owned(),
            what,
            roles,
        },
        _ => SetupError::Graph(e),
    }
}

const APP_ROLES: &str =
    "Application Administrator, Cloud Application Administrator or Global Administrator";
const GRANT_ROLES: &str = "Privileged Role Administrator or Global Administrator";

/// Runs the set-up with the administrator's Graph `token` (signed in as `user`).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    store: &Arc<dyn KurirStore>,
    snap: &SettingsSnapshot,
    graph: &GraphClient,
    token: &SecretString,
    user: &str,
    tenant_id: &str,
    req: &SetupRequest,
    progress: &dyn Progress,
) -> Result<SetupReport, SetupError> {
    let t = token.expose_secret();
    let roles = req.transports.roles(req.secret_self_rotation());

    // The resources' service principals, whose app roles name the permissions.
    let mut resources: Vec<ServicePrincipal> = Vec::new();
    for app_id in [GRAPH_APP_ID, EXCHANGE_APP_ID] {
        if roles.iter().any(|(r, _)| *r == app_id)
            && let Some(sp) = graph.service_principal(t, app_id).await?
        {
            resources.push(sp);
        }
    }
    let mut wanted = Vec::new();
    for (resource, value) in &roles {
        let sp = resources
            .iter()
            .find(|s| s.app_id.eq_ignore_ascii_case(resource))
            .ok_or(SetupError::NoSuchRole(resource, value))?;
        let role = sp
            .app_roles
            .iter()
            .find(|r| r.value.as_deref() == Some(*value))
            .ok_or(SetupError::NoSuchRole(resource, value))?;
        wanted.push((sp.id.clone(), sp.app_id.clone(), role.id.clone(), *value));
    }

    // 1. The registration.
    let found = graph.applications_named(t, &req.display_name).await?;
    let (app, created_application) = match found.len() {
        0 => {
            progress.step(&format!("registering the app '{}'", req.display_name));
            let mut access: Vec<serde_json::Value> = Vec::new();
            for resource in [GRAPH_APP_ID, EXCHANGE_APP_ID] {
                let list: Vec<_> = wanted
                    .iter()
                    .filter(|w| w.1.eq_ignore_ascii_case(resource))
                    .map(|w| serde_json::json!({"id": w.2, "type": "Role"}))
                    .collect();
                if !list.is_empty() {
                    access.push(
                        serde_json::json!({"resourceAppId": resource, "resourceAccess": list}),
                    );
                }
            }
            let app = graph
                .create_application(t, &req.display_name, serde_json::Value::Array(access))
                .await
                .map_err(|e| denied(e, user, "register applications", APP_ROLES))?;
            (app, true)
        }
        1 => {
            progress.step(&format!("found the app '{}'", req.display_name));
            (found.into_iter().next().expect("one"), false)
        }
        n => return Err(SetupError::Ambiguous(n, req.display_name.clone())),
    };

    // 2. Its service principal.
    let (sp, created_service_principal) = match graph.service_principal(t, &app.app_id).await? {
        Some(sp) => (sp, false),
        None => {
            progress.step("creating its service principal (enterprise application)");
            let sp = graph
                .create_service_principal(t, &app.app_id)
                .await
                .map_err(|e| denied(e, user, "create service principals", APP_ROLES))?;
            (sp, true)
        }
    };

    // 3. Admin consent for exactly these application permissions.
    let held = graph.app_role_assignments(t, &sp.id).await?;
    let mut granted = Vec::new();
    let mut already_granted = Vec::new();
    for (resource_sp, _, role_id, value) in &wanted {
        if held.iter().any(|a| {
            a.app_role_id.eq_ignore_ascii_case(role_id)
                && a.resource_id.eq_ignore_ascii_case(resource_sp)
        }) {
            already_granted.push((*value).to_owned());
            continue;
        }
        progress.step(&format!("granting {value} (admin consent)"));
        graph
            .grant_app_role(
                t,
                &AppRoleAssignment {
                    id: None,
                    principal_id: sp.id.clone(),
                    resource_id: resource_sp.clone(),
                    app_role_id: role_id.clone(),
                },
            )
            .await
            .map_err(|e| denied(e, user, "grant application permissions", GRANT_ROLES))?;
        granted.push((*value).to_owned());
    }

    // 4. The app as an owner of itself, for rotation.
    let mut owner_added = false;
    if req.secret_self_rotation() {
        let owners = graph.application_owners(t, &app.id).await?;
        if !owners.iter().any(|o| o.eq_ignore_ascii_case(&sp.id)) {
            progress.step("making the app an owner of its own registration (for rotation)");
            graph
                .add_application_owner(t, &app.id, &sp.id)
                .await
                .map_err(|e| denied(e, user, "change application owners", APP_ROLES))?;
            owner_added = true;
        }
    }

    // 5. The credential, kept when the stored one is this app's and lasts 30 days more.
    let eff = snap.resolve(&Scope::System);
    let mut changes = Vec::new();
    let mut new_secret = None;
    let mut new_certificate = None;
    match req.credential {
        CredentialKind::Secret => {
            new_secret = secret_credential(graph, t, user, &app, &eff, req, &mut changes).await?;
        }
        CredentialKind::Certificate => {
            new_certificate =
                certificate_credential(store, graph, t, user, &app, &eff, req, &mut changes)
                    .await?;
        }
    }

    // 6. The system settings.
    for (key, value) in [
        ("method", "exchange-online"),
        ("client_id", app.app_id.as_str()),
        ("tenant_id", tenant_id),
        ("auth_flow", req.credential.auth_flow()),
        ("application_object_id", app.id.as_str()),
    ] {
        if eff.get(key) != Some(value)
            || eff
                .field(key)
                .is_some_and(|f| f.source == kurir_settings::Source::Default)
        {
            changes.push(Change::Set(key.into(), NewValue::Plain(value.into())));
        }
    }
    // With the means to rotate, rotation is on (`rotate_before` before expiry); an
    // administrator who wants it off sets rotate_secret=false, and a re-run leaves that be.
    if req.self_rotation
        && eff
            .field("rotate_secret")
            .is_none_or(|f| f.source == kurir_settings::Source::Default)
    {
        changes.push(Change::Set(
            "rotate_secret".into(),
            NewValue::Plain("true".into()),
        ));
    }
    let settings_changed = !changes.is_empty();
    if settings_changed {
        progress.step("writing the system settings");
        store.apply(&Scope::System, changes).await?;
    }

    Ok(SetupReport {
        tenant_id: tenant_id.to_owned(),
        powershell: powershell(&app.app_id, &sp.id, &req.display_name, req),
        app_id: app.app_id,
        application_object_id: app.id,
        service_principal_id: sp.id,
        created_application,
        created_service_principal,
        granted,
        already_granted,
        owner_added,
        new_secret,
        new_certificate,
        settings_changed,
    })
}

/// A client secret unless the stored one is this app's and lasts; `Some((id, expiry))` when one
/// was added.
async fn secret_credential(
    graph: &GraphClient,
    t: &str,
    user: &str,
    app: &kurir_graph::Application,
    eff: &kurir_settings::Effective,
    req: &SetupRequest,
    changes: &mut Vec<Change>,
) -> Result<Option<(String, String)>, SetupError> {
    let now = time::OffsetDateTime::now_utc();
    let stored_is_ours = eff.get("client_id") == Some(app.app_id.as_str())
        && eff
            .field("client_secret")
            .is_some_and(|f| f.value.is_some())
        && eff
            .get("client_secret_expires")
            .and_then(kurir_settings::expiry)
            .is_some_and(|t| t > now + time::Duration::days(30));
    if stored_is_ours {
        return Ok(None);
    }
    let end = now + time::Duration::days(i64::from(req.secret_days.clamp(1, 730)));
    let cred = graph
        .add_password(t, &app.id, "Kurir", end)
        .await
        .map_err(|e| denied(e, user, "add client secrets", APP_ROLES))?;
    let value = cred.secret_text.clone().ok_or_else(|| {
        SetupError::Graph(GraphError::Decode {
            what: "the new client secret",
            detail: "it has no secretText".into(),
        })
    })?;
    let expires = crate::rotation::stored_expiry(cred.end_date_time.as_deref());
    changes.push(Change::Set(
        "client_secret".into(),
        NewValue::Secret(SecretString::from(value)),
    ));
    changes.push(Change::Set(
        "client_secret_expires".into(),
        NewValue::Plain(expires.clone()),
    ));
    changes.push(Change::Set(
        "client_secret_id".into(),
        NewValue::Plain(cred.key_id.clone()),
    ));
    Ok(Some((cred.key_id, expires)))
}

/// A certificate generated here, its public part uploaded, unless the stored one is this app's
/// (its key id registered) and lasts. The first certificate goes up with `PATCH
/// keyCredentials`, which replaces the collection: so when the registration already holds
/// certificates, a new one is added with `addKey` and a proof signed by the stored one, and when
/// Kurir holds none of them the set-up stops rather than remove someone else's certificate.
/// `Some((key id, expiry, thumbprint))` when one was added.
#[allow(clippy::too_many_arguments)]
async fn certificate_credential(
    store: &Arc<dyn KurirStore>,
    graph: &GraphClient,
    t: &str,
    user: &str,
    app: &kurir_graph::Application,
    eff: &kurir_settings::Effective,
    req: &SetupRequest,
    changes: &mut Vec<Change>,
) -> Result<Option<(String, String, String)>, SetupError> {
    let now = time::OffsetDateTime::now_utc();
    let registered = |id: &str| {
        app.key_credentials
            .iter()
            .any(|k| k.key_id.eq_ignore_ascii_case(id))
    };
    let stored_id = eff
        .get("certificate_id")
        .filter(|id| eff.get("client_id") == Some(app.app_id.as_str()) && registered(id));
    let stored_pem = eff.get("certificate").map(str::to_owned);
    let stored_key = match (&stored_id, &stored_pem) {
        (Some(_), Some(_)) => store.reveal(&Scope::System, "certificate_key").await?,
        _ => None,
    };
    let stored = match (stored_pem, stored_key) {
        (Some(pem), Some(key)) if stored_id.is_some() => {
            kurir_entra::CertificateCredential::from_pem(&pem, &key)
                .ok()
                .map(|c| (pem, c))
        }
        _ => None,
    };
    if let Some((pem, _)) = &stored
        && crate::certificate::not_after(pem).is_some_and(|t| t > now + time::Duration::days(30))
    {
        return Ok(None);
    }
    let cert = crate::certificate::generate(&req.display_name, req.secret_days)
        .map_err(|e| SetupError::Certificate(e.to_string()))?;
    let name = "Kurir";
    let key_id = match (&stored, app.key_credentials.is_empty()) {
        (_, true) => {
            let id = uuid::Uuid::new_v4().to_string();
            graph
                .set_certificate(t, &app.id, name, &cert.der_base64, Some(&id))
                .await
                .map_err(|e| denied(e, user, "add certificates", APP_ROLES))?;
            id
        }
        (Some((_, current)), false) => {
            let proof = current
                .proof_of_possession(&app.id)
                .map_err(|e| SetupError::Certificate(e.to_string()))?;
            graph
                .add_key(t, &app.id, name, &cert.der_base64, proof.expose_secret())
                .await
                .map_err(|e| denied(e, user, "add certificates", APP_ROLES))?
                .key_id
        }
        (None, false) => {
            return Err(SetupError::ForeignCertificates(app.key_credentials.len()));
        }
    };
    let thumbprint = kurir_entra::CertificateCredential::from_pem(&cert.pem, &cert.key_pem)
        .map(|c| c.thumbprint_hex())
        .unwrap_or_default();
    let expires = kurir_settings::format_instant(cert.not_after);
    changes.push(Change::Set("certificate".into(), NewValue::Plain(cert.pem)));
    changes.push(Change::Set(
        "certificate_key".into(),
        NewValue::Secret(cert.key_pem),
    ));
    changes.push(Change::Set(
        "certificate_id".into(),
        NewValue::Plain(key_id.clone()),
    ));
    Ok(Some((key_id, expires, thumbprint)))
}

/// The Exchange Online PowerShell commands the set-up cannot run itself, ids filled in:
/// registering the service principal in Exchange (for IMAP, POP and SMTP with app-only tokens,
/// <https://learn.microsoft.com/en-us/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth>)
/// and limiting the app to the configured mailboxes with RBAC for Applications
/// (<https://learn.microsoft.com/en-us/exchange/permissions-online/application-rbac>).
pub fn powershell(app_id: &str, sp_id: &str, name: &str, req: &SetupRequest) -> Vec<String> {
    let mut out = vec!["Connect-ExchangeOnline".to_owned()];
    let protocols = req.transports.imap || req.transports.pop || req.transports.smtp;
    out.push(format!(
        "New-ServicePrincipal -AppId {app_id} -ObjectId {sp_id} -DisplayName \"{name}\""
    ));
    if protocols {
        for mb in &req.mailboxes {
            out.push(format!(
                "Add-MailboxPermission -Identity \"{mb}\" -User {sp_id} -AccessRights FullAccess"
            ));
        }
    }
    if req.transports.graph && !req.mailboxes.is_empty() {
        let filter = req
            .mailboxes
            .iter()
            .map(|m| format!("PrimarySmtpAddress -eq '{m}'"))
            .collect::<Vec<_>>()
            .join(" -or ");
        out.push(format!(
            "New-ManagementScope -Name \"{name} mailboxes\" -RecipientRestrictionFilter \"{filter}\""
        ));
        out.push(
            "# Entra consent and RBAC for Applications add up: with this scope in place, remove the tenant-wide Mail.ReadWrite and Mail.Send grants (Entra admin center → the app → API permissions)".to_owned(),
        );
        for role in ["Application Mail.ReadWrite", "Application Mail.Send"] {
            out.push(format!(
                "New-ManagementRoleAssignment -App {sp_id} -Role \"{role}\" -CustomResourceScope \"{name} mailboxes\""
            ));
        }
    }
    out
}

/// The set-up as the web UI's wizard runs it (`kurir_web::ui::setup`): the same steps as
/// `kurir setup entra`, reported into the page's job.
pub struct WebSetup;

struct JobProgress(Arc<kurir_web::ui::setup::SetupJob>);
impl Progress for JobProgress {
    fn step(&self, text: &str) {
        self.0.step(text);
    }
}

impl kurir_web::ui::setup::EntraSetup for WebSetup {
    fn run(
        &self,
        store: Arc<dyn KurirStore>,
        request: kurir_web::ui::setup::WizardRequest,
        job: Arc<kurir_web::ui::setup::SetupJob>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            let outcome = web_run(&store, &request, &job).await;
            job.finish(outcome);
        })
    }
}

async fn web_run(
    store: &Arc<dyn KurirStore>,
    r: &kurir_web::ui::setup::WizardRequest,
    job: &Arc<kurir_web::ui::setup::SetupJob>,
) -> Result<kurir_web::ui::setup::Outcome, String> {
    let sv = r.lang == kurir_web::i18n::Lang::Sv;
    let snap = store.snapshot().await.map_err(|e| e.to_string())?;
    let eff = snap.resolve(&Scope::System);
    let tenant = if r.tenant.is_empty() {
        eff.get("tenant_id").unwrap_or_default().to_owned()
    } else {
        r.tenant.clone()
    };
    let transports = Transports::parse(&r.transports)?;
    let credential = CredentialKind::parse(&r.credential)?;
    let j = job.clone();
    let admin = admin_sign_in(
        &eff,
        &tenant,
        Arc::new(move |p: &kurir_entra::DeviceCodePrompt| {
            j.sign_in(&p.verification_uri, &p.user_code)
        }),
    )
    .await
    .map_err(|e| explain(&e, sv))?;
    job.signed_in(&admin.user);
    let req = SetupRequest {
        display_name: r.display_name.clone(),
        transports,
        self_rotation: r.self_rotation,
        credential,
        secret_days: 365,
        mailboxes: r.mailboxes.clone(),
    };
    let report = run(
        store,
        &snap,
        &admin.graph,
        &admin.token,
        &admin.user,
        &admin.tenant_id,
        &req,
        &JobProgress(job.clone()),
    )
    .await
    .map_err(|e| explain(&e, sv))?;
    let check = kurir_web::check::run(store.clone(), &Scope::System, r.lang).await;
    let pick = |s: &'static str, e: &'static str| if sv { s } else { e }.to_owned();
    let mut facts = vec![
        (pick("Klient-ID", "Client ID"), report.app_id.clone()),
        (pick("Katalog-ID", "Tenant ID"), report.tenant_id.clone()),
        (
            pick("Tjänsteobjekt", "Service principal"),
            report.service_principal_id.clone(),
        ),
        (
            pick("Beviljat nu", "Granted now"),
            report.granted.join(", "),
        ),
        (
            pick("Redan beviljat", "Already granted"),
            report.already_granted.join(", "),
        ),
    ];
    facts.push((
        pick("Inloggningsuppgift", "Credential"),
        match (&report.new_secret, &report.new_certificate) {
            (Some((id, until)), _) => format!("client secret {id}, {until}"),
            (_, Some((id, until, thumb))) => format!("certificate {id}, {thumb}, {until}"),
            _ => pick("den lagrade behålls", "the stored one is kept"),
        },
    ));
    Ok(kurir_web::ui::setup::Outcome {
        facts,
        powershell: report.powershell,
        check: Some(check),
    })
}

/// A refusal in the page's language: the missing directory role in Swedish too; Microsoft's
/// and Graph's own texts stay as they are.
fn explain(e: &SetupError, sv: bool) -> String {
    match (e, sv) {
        (SetupError::Denied { user, what, roles }, true) => format!(
            "{user} får inte {} i den här klientorganisationen (Microsoft Graph: Authorization_RequestDenied). Det kräver Entra-rollen {roles}; en global administratör kan tilldela den (Entra administrationscenter → Roller och administratörer) eller köra konfigurationen själv.",
            match *what {
                "register applications" => "registrera appar",
                "create service principals" => "skapa tjänsteobjekt",
                "grant application permissions" => "bevilja programbehörigheter",
                "change application owners" => "ändra appägare",
                "add client secrets" => "lägga till klienthemligheter",
                "add certificates" => "lägga till certifikat",
                other => other,
            }
        ),
        (SetupError::Entra(e), _) => e.to_string(),
        (e, _) => e.to_string(),
    }
}
