//! Resources (APIs) the emulator issues tokens for, and parsing of the `scope` parameter.
//!
//! Entra ID decides the token's audience from the scope: `https://graph.microsoft.com/.default`
//! is Graph, `https://outlook.office.com/IMAP.AccessAsUser.All` is Exchange Online, a bare
//! `Mail.Read` is Graph. Exchange answers to two identifier URIs (office.com for delegated
//! mail protocols, office365.com for app-only); the token's `aud` is the URI the client used,
//! as with Microsoft's v1.0 tokens.

use uuid::Uuid;

use super::errors::EntraError;

/// A resource application (first-party API) known to the emulator.
#[derive(Debug)]
pub struct Resource {
    pub app_id: Uuid,
    pub display_name: &'static str,
    /// Identifier URIs, lower case without trailing slash; the first is canonical.
    pub identifiers: &'static [&'static str],
    /// The delegated permissions (scopes) the resource publishes that the emulator knows; a
    /// name outside the list is answered like one the resource does not have (650053).
    pub delegated: &'static [&'static str],
}

pub const GRAPH_APP_ID: Uuid = Uuid::from_u128(0x00000003_0000_0000_c000_000000000000);
pub const EXCHANGE_APP_ID: Uuid = Uuid::from_u128(0x00000002_0000_0ff1_ce00_000000000000);

pub static RESOURCES: &[Resource] = &[
    Resource {
        app_id: GRAPH_APP_ID,
        display_name: "Microsoft Graph",
        identifiers: &["https://graph.microsoft.com"],
        // Graph's published delegated permissions around mail and the signed-in user
        // (<https://learn.microsoft.com/en-us/graph/permissions-reference>).
        delegated: &[
            "Mail.Read",
            "Mail.ReadBasic",
            "Mail.ReadWrite",
            "Mail.Send",
            "Mail.Read.Shared",
            "Mail.ReadWrite.Shared",
            "Mail.Send.Shared",
            "MailboxSettings.Read",
            "MailboxSettings.ReadWrite",
            "User.Read",
            "User.ReadBasic.All",
            "User.Read.All",
            "Calendars.Read",
            "Calendars.ReadWrite",
            "Contacts.Read",
            "Contacts.ReadWrite",
            "Files.Read",
            "Files.ReadWrite",
            "People.Read",
            "Directory.Read.All",
            "Group.Read.All",
            "Application.Read.All",
            "Application.ReadWrite.All",
            "AppRoleAssignment.ReadWrite.All",
            "IMAP.AccessAsUser.All",
            "POP.AccessAsUser.All",
            "SMTP.Send",
            "EWS.AccessAsUser.All",
        ],
    },
    Resource {
        app_id: EXCHANGE_APP_ID,
        display_name: "Office 365 Exchange Online",
        identifiers: &[
            "https://outlook.office365.com",
            "https://outlook.office.com",
            "https://ps.outlook.com",
        ],
        delegated: &[
            "IMAP.AccessAsUser.All",
            "POP.AccessAsUser.All",
            "SMTP.Send",
            "EWS.AccessAsUser.All",
            "EAS.AccessAsUser.All",
        ],
    },
];

/// Scopes that are about the sign-in itself rather than an API.
pub const OIDC_SCOPES: &[&str] = &["openid", "profile", "offline_access", "email"];

impl Resource {
    /// Finds a resource by identifier URI (trailing slash and case ignored) or app id.
    pub fn find(identifier: &str) -> Option<&'static Resource> {
        let norm = identifier.trim().trim_end_matches('/').to_ascii_lowercase();
        if let Ok(id) = Uuid::parse_str(&norm) {
            return RESOURCES.iter().find(|r| r.app_id == id);
        }
        RESOURCES
            .iter()
            .find(|r| r.identifiers.iter().any(|i| *i == norm))
    }

    /// Whether the resource publishes the delegated permission `name` (case-insensitive).
    pub fn has_delegated(&self, name: &str) -> bool {
        self.delegated.iter().any(|d| d.eq_ignore_ascii_case(name))
    }

    pub fn graph() -> &'static Resource {
        &RESOURCES[0]
    }
}

/// The API part of a parsed scope.
#[derive(Debug, Clone)]
pub struct ResourceScope {
    pub resource: &'static Resource,
    /// The identifier as the client wrote it (no trailing slash): the token's `aud`.
    pub audience: String,
    /// `{resource}/.default` was requested.
    pub default: bool,
    /// Permission names requested explicitly (without the resource prefix).
    pub permissions: Vec<String>,
}

/// A parsed `scope` parameter.
#[derive(Debug, Clone, Default)]
pub struct ScopeRequest {
    pub raw: String,
    pub oidc: Vec<String>,
    pub resource: Option<ResourceScope>,
}

impl ScopeRequest {
    pub fn wants(&self, oidc_scope: &str) -> bool {
        self.oidc.iter().any(|s| s == oidc_scope)
    }
}

fn valid_permission_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Parses a space-separated scope. `tenant_name` only feeds the AADSTS500011 text.
pub fn parse(raw: &str, tenant_name: &str) -> Result<ScopeRequest, EntraError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(EntraError::ScopeMissing);
    }
    let mut out = ScopeRequest {
        raw: raw.to_string(),
        ..Default::default()
    };
    for item in raw.split_whitespace() {
        let lower = item.to_ascii_lowercase();
        if OIDC_SCOPES.contains(&lower.as_str()) {
            if !out.oidc.contains(&lower) {
                out.oidc.push(lower);
            }
            continue;
        }
        let (resource_id, permission) = match item.rfind('/') {
            Some(i) if i > 0 => (&item[..i], &item[i + 1..]),
            Some(_) => {
                return Err(EntraError::InvalidScope {
                    scope: item.to_string(),
                });
            }
            None => ("https://graph.microsoft.com", item),
        };
        let is_uri = resource_id.contains("://") || Uuid::parse_str(resource_id).is_ok();
        if !is_uri {
            return Err(EntraError::InvalidScope {
                scope: item.to_string(),
            });
        }
        let resource = Resource::find(resource_id).ok_or_else(|| EntraError::UnknownResource {
            resource: resource_id.to_string(),
            tenant: tenant_name.to_string(),
        })?;
        let is_default = permission == ".default";
        if !is_default && !valid_permission_name(permission) {
            return Err(EntraError::InvalidScope {
                scope: item.to_string(),
            });
        }
        match &mut out.resource {
            Some(existing) if existing.resource.app_id != resource.app_id => {
                return Err(EntraError::SeveralResources {
                    scope: raw.to_string(),
                });
            }
            Some(existing) => {
                existing.default |= is_default;
                if !is_default && !existing.permissions.iter().any(|p| p == permission) {
                    existing.permissions.push(permission.to_string());
                }
            }
            None => {
                out.resource = Some(ResourceScope {
                    resource,
                    audience: resource_id.trim_end_matches('/').to_string(),
                    default: is_default,
                    permissions: if is_default {
                        vec![]
                    } else {
                        vec![permission.to_string()]
                    },
                })
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_default_and_bare_names() {
        let s = parse("https://graph.microsoft.com/.default", "t").unwrap();
        let r = s.resource.unwrap();
        assert!(r.default);
        assert_eq!(r.resource.app_id, GRAPH_APP_ID);
        let s = parse("Mail.Read openid offline_access", "t").unwrap();
        assert_eq!(s.resource.unwrap().permissions, vec!["Mail.Read"]);
        assert!(s.oidc.contains(&"offline_access".to_string()));
    }

    #[test]
    fn exchange_keeps_the_audience_the_client_used() {
        let s = parse(
            "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send",
            "t",
        )
        .unwrap();
        let r = s.resource.unwrap();
        assert_eq!(r.audience, "https://outlook.office.com");
        assert_eq!(r.permissions.len(), 2);
        let s = parse("https://outlook.office365.com/.default", "t").unwrap();
        assert_eq!(
            s.resource.unwrap().audience,
            "https://outlook.office365.com"
        );
    }

    #[test]
    fn errors_match_entra() {
        assert!(matches!(parse("  ", "t"), Err(EntraError::ScopeMissing)));
        assert!(matches!(
            parse(
                "https://graph.microsoft.com/.default https://outlook.office365.com/.default",
                "t"
            ),
            Err(EntraError::SeveralResources { .. })
        ));
        assert!(matches!(
            parse("https://api.example.com/.default", "t"),
            Err(EntraError::UnknownResource { .. })
        ));
        assert!(matches!(
            parse("Mail.Read,Mail.Send", "t"),
            Err(EntraError::InvalidScope { .. })
        ));
    }
}
