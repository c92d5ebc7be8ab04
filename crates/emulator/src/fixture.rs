//! The emulator's directory: tenants, app registrations and users, read from TOML.
//!
//! A fixture is to the emulator what a seeded database is to a test: every answer the emulator
//! gives (a token, or one of Microsoft's AADSTS errors) is decided by what the fixture says.
//! It is parsed in two stages, like a real settings file: the raw TOML shape (`Raw*`, serde
//! defaults, strings) is turned into the validated [`Fixture`] (GUIDs parsed, domains lower-cased,
//! resources resolved to their application ids, cross references checked), so request handlers
//! never meet a half-valid entry. The format is documented in `docs/emulator.md`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entra::scope::Resource;

/// A fixture that could not be used, with what to change in it.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error(
        "the fixture is not valid TOML or has a misspelt field: {0}; see docs/emulator.md for the format"
    )]
    Toml(#[from] toml::de::Error),
    #[error("{what} '{value}' is not a GUID; write it as 8-4-4-4-12 hex digits")]
    NotAGuid { what: &'static str, value: String },
    #[error("the fixture defines no tenant; add at least one [[tenants]] table")]
    NoTenant,
    #[error(
        "tenant {tenant} has no verified domain; add one to its `domains` (e.g. \"contoso.onmicrosoft.com\")"
    )]
    NoDomain { tenant: Uuid },
    #[error("domain '{domain}' is verified by two tenants; a domain belongs to one tenant only")]
    DuplicateDomain { domain: String },
    #[error("{what} '{id}' is defined twice; ids must be unique")]
    Duplicate { what: &'static str, id: String },
    #[error(
        "{owner} refers to tenant '{tenant}', which is neither the id nor a domain of a tenant in the fixture"
    )]
    UnknownTenant { owner: String, tenant: String },
    #[error(
        "app {client_id} grants permissions on '{resource}', which the emulator does not know; use https://graph.microsoft.com, https://outlook.office365.com or https://outlook.office.com"
    )]
    UnknownResource { client_id: Uuid, resource: String },
    #[error(
        "secret {secret_id} of app {client_id} has expiry '{value}', which is not an RFC 3339 date-time (e.g. 2099-12-31T00:00:00Z)"
    )]
    BadExpiry {
        client_id: Uuid,
        secret_id: Uuid,
        value: String,
    },
    #[error("certificate {index} of app {client_id}: give exactly one of `pem` or `path`")]
    CertificateSource { client_id: Uuid, index: usize },
    #[error("user '{upn}' is not a user principal name (user@domain)")]
    BadUpn { upn: String },
}

/// The validated directory the emulator serves.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub tenants: Vec<Tenant>,
    pub apps: Vec<App>,
    pub users: Vec<User>,
    /// Shared mailboxes (Graph mail); users' own mailboxes come from `users`.
    pub mailboxes: Vec<crate::graph::fixture::SharedMailbox>,
}

/// A directory (Entra ID tenant).
#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: Uuid,
    pub display_name: String,
    /// Verified domains, lower case; the first is the initial `*.onmicrosoft.com` domain.
    pub domains: Vec<String>,
}

/// An app registration together with its service principal in its home tenant.
#[derive(Clone, Debug)]
pub struct App {
    pub client_id: Uuid,
    pub display_name: String,
    pub tenant_id: Uuid,
    /// Object id of the service principal (Enterprise application): app-only tokens carry it
    /// as `oid`/`sub`, just as Exchange's `New-ServicePrincipal -ObjectId` expects.
    pub service_principal_id: Uuid,
    pub secrets: Vec<Secret>,
    pub certificates: Vec<CertificateSource>,
    /// Generate a key pair and certificate into the state dir at first start and register it.
    pub generate_certificate: bool,
    /// "Allow public client flows": ROPC and device code without a client credential.
    pub public_client: bool,
    /// Application permissions (app roles) by resource application id.
    pub application_permissions: BTreeMap<Uuid, Vec<String>>,
    /// Delegated permissions by resource application id.
    pub delegated_permissions: BTreeMap<Uuid, Vec<String>>,
    pub admin_consent: bool,
    /// Mailboxes app-only Graph calls may touch, like an Exchange application access
    /// policy (lower case); `None` = every mailbox.
    pub mailbox_access: Option<Vec<String>>,
    /// The service principal is disabled: every token request answers 7000112.
    pub disabled: bool,
    /// The application object's id (not the client id): what Graph's `/applications/{id}` uses.
    pub object_id: Uuid,
    /// Owners of the registration (user or service principal object ids): an app whose own
    /// service principal is an owner may manage its credentials with
    /// `Application.ReadWrite.OwnedBy`.
    pub owners: Vec<Uuid>,
    /// `requiredResourceAccess` as the registration was created or last patched with.
    pub required_resource_access: serde_json::Value,
    /// Whether the service principal exists (an app registered through Graph has none until
    /// `POST /servicePrincipals`).
    pub has_service_principal: bool,
    pub created: OffsetDateTime,
    /// Certificates added through Graph (`PATCH keyCredentials`, `addKey`) while the emulator
    /// runs; those of the fixture (`certificates`) are registered at start.
    pub key_credentials: Vec<KeyCredential>,
}

/// A client secret: Microsoft shows its id and its value side by side, and the id is often
/// pasted where the value belongs, which is why both are kept.
#[derive(Clone, Debug)]
pub struct Secret {
    pub id: Uuid,
    pub value: String,
    pub expires: OffsetDateTime,
    /// What `addPassword` was given (the portal's Description).
    pub display_name: Option<String>,
    pub start: Option<OffsetDateTime>,
}

/// Where an app's registered certificate comes from.
#[derive(Clone, Debug)]
pub enum CertificateSource {
    Pem(String),
    Path(PathBuf),
}

/// A certificate credential added through Graph.
#[derive(Clone, Debug)]
pub struct KeyCredential {
    pub id: Uuid,
    pub display_name: Option<String>,
    pub certificate: crate::keys::RegisteredCertificate,
}

/// A user account and the conditions that make sign-in fail.
#[derive(Clone, Debug)]
pub struct User {
    pub upn: String,
    pub display_name: String,
    pub password: String,
    pub object_id: Uuid,
    pub tenant_id: Uuid,
    pub mfa_required: bool,
    pub mfa_registration_required: bool,
    pub disabled: bool,
    pub locked: bool,
    pub password_expired: bool,
    pub conditional_access_blocked: bool,
    /// Has an Exchange Online mailbox (Graph answers MailboxNotEnabledForRESTAPI otherwise).
    pub mailbox: bool,
    /// Mailboxes that may send as this user (Exchange's Send As permission,
    /// `Add-RecipientPermission -Identity <this> -Trustee <mailbox> -AccessRights SendAs`);
    /// lower case.
    pub send_as: Vec<String>,
    /// Microsoft Entra directory roles ("Global Administrator", "Privileged Role
    /// Administrator", "Cloud Application Administrator", "Application Administrator"): what
    /// the user may do through Graph's directory API, whatever the token's scopes.
    pub directory_roles: Vec<String>,
}

impl Fixture {
    /// Parses and validates a fixture in the TOML format of `docs/emulator.md`.
    pub fn from_toml(s: &str) -> Result<Fixture, FixtureError> {
        let raw: RawFixture = toml::from_str(s)?;
        raw.validate()
    }

    /// The built-in demo directory; its names are in [`crate::demo`].
    pub fn demo() -> Fixture {
        crate::demo::fixture()
    }

    /// Finds a tenant by GUID or verified domain (case-insensitive).
    pub fn tenant(&self, id_or_domain: &str) -> Option<&Tenant> {
        let wanted = id_or_domain.to_ascii_lowercase();
        match Uuid::parse_str(&wanted) {
            Ok(id) => self.tenants.iter().find(|t| t.id == id),
            Err(_) => self.tenants.iter().find(|t| t.domains.contains(&wanted)),
        }
    }

    pub fn tenant_by_id(&self, id: Uuid) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id == id)
    }

    pub fn app(&self, client_id: &str) -> Option<&App> {
        let id = Uuid::parse_str(client_id).ok()?;
        self.apps.iter().find(|a| a.client_id == id)
    }

    pub fn user(&self, upn: &str) -> Option<&User> {
        self.users.iter().find(|u| u.upn.eq_ignore_ascii_case(upn))
    }

    /// The mailboxes with Send As on `address` (a user's or a shared mailbox), lower case.
    pub fn send_as(&self, address: &str) -> &[String] {
        self.user(address)
            .map(|u| u.send_as.as_slice())
            .or_else(|| {
                self.mailboxes
                    .iter()
                    .find(|m| m.address.eq_ignore_ascii_case(address))
                    .map(|m| m.send_as.as_slice())
            })
            .unwrap_or_default()
    }

    pub fn user_by_id(&self, oid: Uuid) -> Option<&User> {
        self.users.iter().find(|u| u.object_id == oid)
    }
}

impl Tenant {
    pub fn primary_domain(&self) -> &str {
        &self.domains[0]
    }
}

/// Object ids not given in the fixture are derived from a stable name, so that restarting the
/// emulator with the same fixture yields the same `oid` claims (tokens stay meaningful).
pub(crate) fn stable_id(kind: &str, name: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("kurir-emulator:{kind}:{name}").as_bytes(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFixture {
    #[serde(default)]
    tenants: Vec<RawTenant>,
    #[serde(default)]
    apps: Vec<RawApp>,
    #[serde(default)]
    users: Vec<RawUser>,
    #[serde(default)]
    mailboxes: Vec<crate::graph::fixture::RawMailbox>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    id: String,
    display_name: Option<String>,
    #[serde(default)]
    domains: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    client_id: String,
    tenant: String,
    display_name: Option<String>,
    service_principal_id: Option<String>,
    #[serde(default)]
    secrets: Vec<RawSecret>,
    #[serde(default)]
    certificates: Vec<RawCertificate>,
    #[serde(default)]
    generate_certificate: bool,
    #[serde(default)]
    public_client: bool,
    #[serde(default)]
    application_permissions: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    delegated_permissions: BTreeMap<String, Vec<String>>,
    #[serde(default = "yes")]
    admin_consent: bool,
    mailbox_access: Option<Vec<String>>,
    #[serde(default)]
    disabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    id: String,
    value: String,
    expires: RawDateTime,
}

/// TOML has a native date-time type; a quoted string is accepted too because that is what
/// people write when they copy an expiry from the portal or a script.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawDateTime {
    Native(toml::value::Datetime),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertificate {
    pem: Option<String>,
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    upn: String,
    password: String,
    display_name: Option<String>,
    object_id: Option<String>,
    tenant: Option<String>,
    #[serde(default)]
    mfa_required: bool,
    #[serde(default)]
    mfa_registration_required: bool,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    locked: bool,
    #[serde(default)]
    password_expired: bool,
    #[serde(default)]
    conditional_access_blocked: bool,
    #[serde(default = "yes")]
    mailbox: bool,
    #[serde(default)]
    send_as: Vec<String>,
    #[serde(default)]
    directory_roles: Vec<String>,
}

fn guid(what: &'static str, value: &str) -> Result<Uuid, FixtureError> {
    Uuid::parse_str(value.trim()).map_err(|_| FixtureError::NotAGuid {
        what,
        value: value.to_string(),
    })
}

impl RawFixture {
    fn validate(self) -> Result<Fixture, FixtureError> {
        if self.tenants.is_empty() {
            return Err(FixtureError::NoTenant);
        }
        let mut tenants: Vec<Tenant> = Vec::new();
        for raw in self.tenants {
            let id = guid("tenant id", &raw.id)?;
            if tenants.iter().any(|t| t.id == id) {
                return Err(FixtureError::Duplicate {
                    what: "tenant",
                    id: id.to_string(),
                });
            }
            let domains: Vec<String> = raw
                .domains
                .iter()
                .map(|d| d.trim().to_ascii_lowercase())
                .collect();
            if domains.is_empty() {
                return Err(FixtureError::NoDomain { tenant: id });
            }
            for d in &domains {
                if tenants.iter().any(|t| t.domains.contains(d)) {
                    return Err(FixtureError::DuplicateDomain { domain: d.clone() });
                }
            }
            tenants.push(Tenant {
                id,
                display_name: raw.display_name.unwrap_or_else(|| domains[0].clone()),
                domains,
            });
        }
        let find_tenant = |owner: String, key: &str| -> Result<Uuid, FixtureError> {
            let key_l = key.trim().to_ascii_lowercase();
            let found = match Uuid::parse_str(&key_l) {
                Ok(id) => tenants.iter().find(|t| t.id == id),
                Err(_) => tenants.iter().find(|t| t.domains.contains(&key_l)),
            };
            found.map(|t| t.id).ok_or(FixtureError::UnknownTenant {
                owner,
                tenant: key.to_string(),
            })
        };

        let mut apps: Vec<App> = Vec::new();
        for raw in self.apps {
            let client_id = guid("app client_id", &raw.client_id)?;
            if apps.iter().any(|a| a.client_id == client_id) {
                return Err(FixtureError::Duplicate {
                    what: "app",
                    id: client_id.to_string(),
                });
            }
            let tenant_id = find_tenant(format!("app {client_id}"), &raw.tenant)?;
            let mut secrets = Vec::new();
            for s in raw.secrets {
                let id = guid("secret id", &s.id)?;
                let text = match s.expires {
                    RawDateTime::Native(d) => d.to_string(),
                    RawDateTime::Text(t) => t,
                };
                let expires =
                    OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| FixtureError::BadExpiry {
                            client_id,
                            secret_id: id,
                            value: text.clone(),
                        })?;
                secrets.push(Secret {
                    id,
                    value: s.value,
                    expires,
                    display_name: None,
                    start: None,
                });
            }
            let mut certificates = Vec::new();
            for (index, c) in raw.certificates.into_iter().enumerate() {
                certificates.push(match (c.pem, c.path) {
                    (Some(pem), None) => CertificateSource::Pem(pem),
                    (None, Some(path)) => CertificateSource::Path(path),
                    _ => return Err(FixtureError::CertificateSource { client_id, index }),
                });
            }
            let resolve = |perms: BTreeMap<String, Vec<String>>| {
                let mut out: BTreeMap<Uuid, Vec<String>> = BTreeMap::new();
                for (resource, list) in perms {
                    let r = Resource::find(&resource).ok_or(FixtureError::UnknownResource {
                        client_id,
                        resource: resource.clone(),
                    })?;
                    out.entry(r.app_id).or_default().extend(list);
                }
                Ok::<_, FixtureError>(out)
            };
            let service_principal_id = match raw.service_principal_id {
                Some(s) => guid("app service_principal_id", &s)?,
                None => stable_id("service-principal", &client_id.to_string()),
            };
            apps.push(App {
                client_id,
                display_name: raw.display_name.unwrap_or_else(|| client_id.to_string()),
                tenant_id,
                service_principal_id,
                secrets,
                certificates,
                generate_certificate: raw.generate_certificate,
                public_client: raw.public_client,
                application_permissions: resolve(raw.application_permissions)?,
                delegated_permissions: resolve(raw.delegated_permissions)?,
                admin_consent: raw.admin_consent,
                mailbox_access: raw
                    .mailbox_access
                    .map(|l| l.iter().map(|a| a.trim().to_ascii_lowercase()).collect()),
                disabled: raw.disabled,
                object_id: stable_id("application", &client_id.to_string()),
                owners: Vec::new(),
                required_resource_access: serde_json::Value::Array(Vec::new()),
                has_service_principal: true,
                created: OffsetDateTime::UNIX_EPOCH,
                key_credentials: Vec::new(),
            });
        }

        let mut users: Vec<User> = Vec::new();
        for raw in self.users {
            let upn = raw.upn.trim().to_string();
            let Some((_, domain)) = upn.split_once('@') else {
                return Err(FixtureError::BadUpn { upn });
            };
            if users.iter().any(|u| u.upn.eq_ignore_ascii_case(&upn)) {
                return Err(FixtureError::Duplicate {
                    what: "user",
                    id: upn,
                });
            }
            let tenant_key = raw.tenant.clone().unwrap_or_else(|| domain.to_string());
            let tenant_id = find_tenant(format!("user {upn}"), &tenant_key)?;
            let object_id = match raw.object_id {
                Some(s) => guid("user object_id", &s)?,
                None => stable_id("user", &upn.to_ascii_lowercase()),
            };
            users.push(User {
                display_name: raw
                    .display_name
                    .unwrap_or_else(|| upn.split('@').next().unwrap_or_default().to_string()),
                upn,
                password: raw.password,
                object_id,
                tenant_id,
                mfa_required: raw.mfa_required,
                mfa_registration_required: raw.mfa_registration_required,
                disabled: raw.disabled,
                locked: raw.locked,
                password_expired: raw.password_expired,
                conditional_access_blocked: raw.conditional_access_blocked,
                mailbox: raw.mailbox,
                send_as: raw
                    .send_as
                    .iter()
                    .map(|a| a.trim().to_ascii_lowercase())
                    .collect(),
                directory_roles: raw.directory_roles,
            });
        }
        let mailboxes = crate::graph::fixture::validate(self.mailboxes, &users, &find_tenant)?;
        Ok(Fixture {
            tenants,
            apps,
            users,
            mailboxes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
        [[tenants]]
        id = "11111111-2222-3333-4444-555555555555"
        display_name = "Contoso"
        domains = ["contoso.onmicrosoft.com", "Contoso.example"]

        [[apps]]
        client_id = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
        tenant = "contoso.example"
        public_client = true
        secrets = [{ id = "99999999-8888-7777-6666-555555555555", value = "s3cret", expires = 2099-01-01T00:00:00Z }]
        [apps.application_permissions]
        "https://outlook.office365.com" = ["IMAP.AccessAsApp"]
        [apps.delegated_permissions]
        "https://outlook.office.com" = ["SMTP.Send"]

        [[users]]
        upn = "alice@contoso.example"
        password = "pw"
        mfa_required = true
    "#;

    #[test]
    fn parses_and_resolves_references() {
        let f = Fixture::from_toml(SAMPLE).unwrap();
        let t = f.tenant("CONTOSO.example").unwrap();
        assert_eq!(t.display_name, "Contoso");
        let app = f.app("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee").unwrap();
        assert_eq!(app.tenant_id, t.id);
        assert!(app.admin_consent, "admin consent defaults to granted");
        let exo = Resource::find("https://outlook.office.com").unwrap().app_id;
        assert_eq!(app.application_permissions[&exo], vec!["IMAP.AccessAsApp"]);
        assert_eq!(app.delegated_permissions[&exo], vec!["SMTP.Send"]);
        assert_eq!(app.secrets[0].expires.year(), 2099);
        let u = f.user("ALICE@contoso.example").unwrap();
        assert!(u.mfa_required);
        assert_eq!(u.tenant_id, t.id);
        assert_eq!(u.object_id, stable_id("user", "alice@contoso.example"));
    }

    #[test]
    fn rejects_unknown_tenant_reference() {
        let bad = SAMPLE.replace("tenant = \"contoso.example\"", "tenant = \"fabrikam.com\"");
        let err = Fixture::from_toml(&bad).unwrap_err();
        assert!(matches!(err, FixtureError::UnknownTenant { .. }), "{err}");
    }

    #[test]
    fn rejects_unknown_resource_and_bad_guid() {
        let bad = SAMPLE.replace(
            "\"https://outlook.office365.com\" =",
            "\"https://example.com\" =",
        );
        assert!(matches!(
            Fixture::from_toml(&bad).unwrap_err(),
            FixtureError::UnknownResource { .. }
        ));
        let bad = SAMPLE.replace("aaaaaaaa-bbbb", "not-a-guid");
        assert!(matches!(
            Fixture::from_toml(&bad).unwrap_err(),
            FixtureError::NotAGuid { .. }
        ));
    }

    #[test]
    fn demo_fixture_is_consistent() {
        let f = Fixture::demo();
        assert!(f.tenant(crate::demo::TENANT_DOMAIN).is_some());
        assert!(f.app(crate::demo::CLIENT_ID).is_some());
        assert!(f.user(crate::demo::USER).is_some());
    }
}
