//! OAuth scopes for the resources Kurir talks to, per cloud.
//!
//! App-only tokens (client secret, certificate) must ask for exactly one `{resource}/.default`
//! (otherwise AADSTS1002012 / 700022); delegated tokens name the permissions and add
//! `offline_access` so that Entra hands out a refresh token, without which an unattended service
//! would need the user to sign in again every hour.

use std::fmt;

use crate::authority::Cloud;

/// The scope that makes Entra issue a refresh token.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// A set of scope values, kept in the order given (Entra does not care, but admins reading logs
/// do) and compared order-insensitively for caching.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(Vec<String>);

impl Scope {
    /// From individual values; empty values and duplicates are dropped.
    pub fn new<I, S>(values: I) -> Scope
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut out: Vec<String> = Vec::new();
        for v in values {
            let v: String = v.into();
            let v = v.trim().to_owned();
            if !v.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(&v)) {
                out.push(v);
            }
        }
        Scope(out)
    }

    /// From the space-separated form used on the wire and in settings.
    pub fn parse(s: &str) -> Scope {
        Scope::new(s.split_whitespace())
    }

    /// Microsoft Graph, app-only (`https://graph.microsoft.com/.default`).
    pub fn graph_app(cloud: Cloud) -> Scope {
        Scope::new([format!("{}/.default", graph_host(cloud))])
    }

    /// Microsoft Graph, delegated, with the given permissions (e.g. `Mail.Send`) and offline_access.
    pub fn graph_delegated(cloud: Cloud, permissions: &[&str]) -> Scope {
        let host = graph_host(cloud);
        Scope::new(
            permissions
                .iter()
                .map(|p| format!("{host}/{p}"))
                .chain([OFFLINE_ACCESS.to_owned()]),
        )
    }

    /// Exchange Online IMAP/POP/SMTP, app-only (`https://outlook.office365.com/.default`).
    pub fn exchange_app(cloud: Cloud) -> Scope {
        Scope::new([format!("{}/.default", exchange_app_host(cloud))])
    }

    /// IMAP as the signed-in user, plus offline_access.
    pub fn imap_delegated(cloud: Cloud) -> Scope {
        Scope::exchange_delegated(cloud, &["IMAP.AccessAsUser.All"])
    }

    /// POP as the signed-in user, plus offline_access.
    pub fn pop_delegated(cloud: Cloud) -> Scope {
        Scope::exchange_delegated(cloud, &["POP.AccessAsUser.All"])
    }

    /// SMTP AUTH submission as the signed-in user, plus offline_access.
    pub fn smtp_delegated(cloud: Cloud) -> Scope {
        Scope::exchange_delegated(cloud, &["SMTP.Send"])
    }

    /// Several Exchange permissions in one token (one resource, so Entra accepts it), plus
    /// offline_access; e.g. `["IMAP.AccessAsUser.All", "SMTP.Send"]`.
    pub fn exchange_delegated(cloud: Cloud, permissions: &[&str]) -> Scope {
        let host = exchange_delegated_host(cloud);
        Scope::new(
            permissions
                .iter()
                .map(|p| format!("{host}/{p}"))
                .chain([OFFLINE_ACCESS.to_owned()]),
        )
    }

    /// This scope plus `offline_access` (a no-op if present).
    pub fn with_offline_access(&self) -> Scope {
        Scope::new(self.0.iter().cloned().chain([OFFLINE_ACCESS.to_owned()]))
    }

    /// The values.
    pub fn values(&self) -> &[String] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when every value is a `/.default` scope, the only kind app-only flows accept.
    pub fn is_default_scope(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|v| v.ends_with("/.default"))
    }

    /// Space-separated, for the `scope` form field.
    pub fn to_param(&self) -> String {
        self.0.join(" ")
    }

    /// Order- and case-insensitive form, so that the same permissions share one cached token.
    pub(crate) fn cache_form(&self) -> String {
        let mut v: Vec<String> = self.0.iter().map(|s| s.to_ascii_lowercase()).collect();
        v.sort();
        v.join(" ")
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_param())
    }
}

fn graph_host(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Global => "https://graph.microsoft.com",
        Cloud::UsGov => "https://graph.microsoft.us",
        Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
    }
}

fn exchange_app_host(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Global => "https://outlook.office365.com",
        Cloud::UsGov => "https://outlook.office365.us",
        Cloud::China => "https://partner.outlook.cn",
    }
}

/// Delegated Exchange permissions are registered on `outlook.office.com` in the worldwide cloud
/// (Microsoft's IMAP/SMTP OAuth docs), not on the `office365.com` host used for app-only.
fn exchange_delegated_host(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Global => "https://outlook.office.com",
        Cloud::UsGov => "https://outlook.office365.us",
        Cloud::China => "https://partner.outlook.cn",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_only_scopes_are_default_scopes() {
        assert_eq!(
            Scope::graph_app(Cloud::Global).to_param(),
            "https://graph.microsoft.com/.default"
        );
        assert_eq!(
            Scope::exchange_app(Cloud::Global).to_param(),
            "https://outlook.office365.com/.default"
        );
        assert_eq!(
            Scope::graph_app(Cloud::UsGov).to_param(),
            "https://graph.microsoft.us/.default"
        );
        assert_eq!(
            Scope::exchange_app(Cloud::China).to_param(),
            "https://partner.outlook.cn/.default"
        );
        assert!(Scope::graph_app(Cloud::Global).is_default_scope());
        assert!(!Scope::imap_delegated(Cloud::Global).is_default_scope());
    }

    #[test]
    fn delegated_scopes_carry_offline_access() {
        assert_eq!(
            Scope::imap_delegated(Cloud::Global).to_param(),
            "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"
        );
        assert_eq!(
            Scope::pop_delegated(Cloud::Global).to_param(),
            "https://outlook.office.com/POP.AccessAsUser.All offline_access"
        );
        assert_eq!(
            Scope::smtp_delegated(Cloud::UsGov).to_param(),
            "https://outlook.office365.us/SMTP.Send offline_access"
        );
        assert_eq!(
            Scope::graph_delegated(Cloud::Global, &["Mail.Send"]).to_param(),
            "https://graph.microsoft.com/Mail.Send offline_access"
        );
    }

    #[test]
    fn parse_dedupes_and_cache_form_ignores_order_and_case() {
        let a =
            Scope::parse("  offline_access https://outlook.office.com/SMTP.Send OFFLINE_ACCESS ");
        assert_eq!(a.values().len(), 2);
        let b = Scope::parse("https://outlook.office.com/smtp.send offline_access");
        assert_eq!(a.cache_form(), b.cache_form());
        assert_eq!(a.with_offline_access(), a);
        assert!(Scope::parse("   ").is_empty());
    }
}
