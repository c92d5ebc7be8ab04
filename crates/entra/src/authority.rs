//! Where tokens come from: Microsoft's national clouds, or an explicit sign-in host.
//!
//! An ERP admin normally only picks a cloud; the explicit URL exists so that Kurir can be pointed
//! at the offline emulator (or a future cloud) without a new release. Plain `http` is refused
//! except on loopback: a token request carries client secrets and passwords, and the only
//! legitimate clear-text peer is a test server on the same machine.

use std::fmt;
use std::net::IpAddr;

use url::Url;

use crate::error::EntraError;

/// One of Microsoft's separate clouds. Each has its own sign-in host and its own resource hosts
/// (Graph, Exchange), so scopes must be built for the same cloud as the authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cloud {
    /// The worldwide cloud (login.microsoftonline.com).
    Global,
    /// Microsoft 365 GCC High / DoD (login.microsoftonline.us).
    UsGov,
    /// Microsoft 365 operated by 21Vianet (login.chinacloudapi.cn).
    China,
}

impl Cloud {
    /// The sign-in host of the cloud.
    pub fn authority_host(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGov => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// The names the settings use (`global`, `usgov`, `china`).
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::UsGov => "usgov",
            Cloud::China => "china",
        }
    }

    /// Parses the settings' names; also accepts the common aliases admins type.
    pub fn parse(s: &str) -> Option<Cloud> {
        match s.trim().to_ascii_lowercase().as_str() {
            "global" | "public" | "worldwide" | "azurepublic" => Some(Cloud::Global),
            "usgov" | "us-gov" | "gcchigh" | "dod" | "azureusgovernment" => Some(Cloud::UsGov),
            "china" | "cn" | "21vianet" | "azurechina" => Some(Cloud::China),
            _ => None,
        }
    }

    fn from_host(host: &str) -> Option<Cloud> {
        [Cloud::Global, Cloud::UsGov, Cloud::China]
            .into_iter()
            .find(|c| c.authority_host().trim_start_matches("https://") == host)
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The sign-in service a token request goes to, without the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Authority {
    /// Always without a trailing slash, so that endpoint paths can be appended verbatim.
    base: String,
    cloud: Cloud,
}

impl Authority {
    /// The authority of one of Microsoft's clouds.
    pub fn cloud(cloud: Cloud) -> Authority {
        Authority {
            base: cloud.authority_host().to_owned(),
            cloud,
        }
    }

    /// The worldwide cloud, which is what nearly every tenant uses.
    pub fn global() -> Authority {
        Authority::cloud(Cloud::Global)
    }

    /// An explicit sign-in URL such as `https://localhost:8443` (the emulator) or
    /// `https://login.microsoftonline.us`. A path prefix is kept; the tenant is appended to it.
    ///
    /// The resource hosts of an explicit URL are those of the cloud whose sign-in host it is, and
    /// otherwise the worldwide ones (the emulator imitates the worldwide cloud); use
    /// [`Authority::with_cloud`] to change that.
    pub fn url(raw: &str) -> Result<Authority, EntraError> {
        let raw = raw.trim();
        let url = Url::parse(raw).map_err(|e| EntraError::Config {
            setting: "authority",
            problem: format!(
                "'{raw}' is not a URL ({e}); use e.g. https://login.microsoftonline.com, or leave the authority empty and choose a cloud"
            ),
        })?;
        let host = url.host_str().unwrap_or_default().to_owned();
        if host.is_empty() {
            return Err(EntraError::Config {
                setting: "authority",
                problem: format!(
                    "'{raw}' has no host name; use e.g. https://login.microsoftonline.com"
                ),
            });
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&host) => {}
            "http" => {
                return Err(EntraError::Config {
                    setting: "authority",
                    problem: format!(
                        "'{raw}' uses plain http to {host}; secrets and passwords would cross the network unencrypted. Use https (plain http is only allowed to localhost for tests)"
                    ),
                });
            }
            other => {
                return Err(EntraError::Config {
                    setting: "authority",
                    problem: format!("'{raw}' uses the scheme '{other}'; use an https:// URL"),
                });
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EntraError::Config {
                setting: "authority",
                problem: "the authority URL contains a user name or password; remove it (credentials belong in Klienthemlighet, never in the URL)".into(),
            });
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(EntraError::Config {
                setting: "authority",
                problem: format!(
                    "'{raw}' has a query or fragment; use only scheme, host, port and optionally a path"
                ),
            });
        }
        if Cloud::from_host(&host).is_some() && !url.path().trim_matches('/').is_empty() {
            // A common paste: the authority with the tenant (or /oauth2/…) already appended.
            return Err(EntraError::Config {
                setting: "authority",
                problem: format!(
                    "'{raw}' has a path after Microsoft's sign-in host; use only https://{host} and put the tenant into Katalog-ID (klientorganisation)"
                ),
            });
        }
        let mut base = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
        if let Some(port) = url.port() {
            base.push_str(&format!(":{port}"));
        }
        base.push_str(url.path().trim_end_matches('/'));
        let cloud = if url.scheme() == "https" && url.port().is_none() && url.path() == "/" {
            Cloud::from_host(&host).unwrap_or(Cloud::Global)
        } else {
            Cloud::Global
        };
        Ok(Authority { base, cloud })
    }

    /// What the settings hold: a cloud name (`global`, `usgov`, `china`) or a URL.
    pub fn parse(s: &str) -> Result<Authority, EntraError> {
        match Cloud::parse(s) {
            Some(cloud) => Ok(Authority::cloud(cloud)),
            None => Authority::url(s),
        }
    }

    /// Overrides which cloud's resource hosts (Graph, Exchange) belong to this authority.
    pub fn with_cloud(mut self, cloud: Cloud) -> Authority {
        self.cloud = cloud;
        self
    }

    /// The cloud whose resource hosts scopes should use.
    pub fn cloud_kind(&self) -> Cloud {
        self.cloud
    }

    /// The base URL without a trailing slash, e.g. `https://login.microsoftonline.com`.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// Host (and port), for error messages that tell the admin what could not be reached.
    pub fn host(&self) -> String {
        let after_scheme = self.base.split_once("://").map_or(&*self.base, |(_, r)| r);
        after_scheme
            .split('/')
            .next()
            .unwrap_or(after_scheme)
            .to_owned()
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token`; also the `aud` of client assertions.
    pub fn token_endpoint(&self, tenant: &str) -> Result<String, EntraError> {
        Ok(format!(
            "{}/{}/oauth2/v2.0/token",
            self.base,
            check_tenant(tenant)?
        ))
    }

    /// `{authority}/{tenant}/oauth2/v2.0/devicecode`.
    pub fn device_code_endpoint(&self, tenant: &str) -> Result<String, EntraError> {
        Ok(format!(
            "{}/{}/oauth2/v2.0/devicecode",
            self.base,
            check_tenant(tenant)?
        ))
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Only checks that the tenant can be put into a URL path unchanged. Whether it is a GUID, a
/// verified domain or `common` is for Entra to judge: its answers (AADSTS90002, 900023) are
/// explained in the admin's language, a local guess would be less precise.
pub(crate) fn check_tenant(tenant: &str) -> Result<&str, EntraError> {
    if tenant.is_empty() {
        return Err(EntraError::Config {
            setting: "tenant_id",
            problem: "Katalog-ID (klientorganisation) is empty; copy the Directory (tenant) ID from the app registration's Overview page in Microsoft Entra ID".into(),
        });
    }
    if let Some(bad) = tenant
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.' || *c == '_'))
    {
        return Err(EntraError::Config {
            setting: "tenant_id",
            problem: format!(
                "Katalog-ID (klientorganisation) '{tenant}' contains {bad:?}; it must be a GUID such as 6d3c9f0a-2b4e-4c1d-9a8f-5e7b0c2d4f61 or a domain such as contoso.onmicrosoft.com (check for spaces copied along with it)"
            ),
        });
    }
    Ok(tenant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clouds_map_to_their_sign_in_hosts() {
        assert_eq!(
            Authority::global().as_str(),
            "https://login.microsoftonline.com"
        );
        assert_eq!(
            Authority::parse("usgov").unwrap().as_str(),
            "https://login.microsoftonline.us"
        );
        assert_eq!(
            Authority::parse("China").unwrap().as_str(),
            "https://login.chinacloudapi.cn"
        );
    }

    #[test]
    fn explicit_url_is_normalised_and_keeps_port_and_path() {
        let a = Authority::parse("https://localhost:8443/").unwrap();
        assert_eq!(a.as_str(), "https://localhost:8443");
        assert_eq!(a.host(), "localhost:8443");
        assert_eq!(
            a.token_endpoint("contoso.onmicrosoft.com").unwrap(),
            "https://localhost:8443/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let p = Authority::parse("https://proxy.example/entra/").unwrap();
        assert_eq!(
            p.device_code_endpoint("common").unwrap(),
            "https://proxy.example/entra/common/oauth2/v2.0/devicecode"
        );
    }

    #[test]
    fn explicit_sovereign_url_gets_its_cloud() {
        let a = Authority::parse("https://login.microsoftonline.us").unwrap();
        assert_eq!(a.cloud_kind(), Cloud::UsGov);
        let e = Authority::parse("https://127.0.0.1:9000").unwrap();
        assert_eq!(e.cloud_kind(), Cloud::Global);
        assert_eq!(e.with_cloud(Cloud::China).cloud_kind(), Cloud::China);
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(Authority::parse("http://localhost:8080").is_ok());
        assert!(Authority::parse("http://127.0.0.1:8080").is_ok());
        assert!(Authority::parse("http://[::1]:8080").is_ok());
        let err = Authority::parse("http://login.microsoftonline.com").unwrap_err();
        assert!(err.to_string().contains("unencrypted"), "{err}");
        assert!(Authority::parse("http://10.0.0.5").is_err());
        assert!(Authority::parse("ftp://localhost").is_err());
        assert!(Authority::parse("not a url").is_err());
        assert!(Authority::parse("https://user:pw@login.microsoftonline.com").is_err());
        assert!(Authority::parse("https://login.microsoftonline.com/?x=1").is_err());
        let err = Authority::parse("https://login.microsoftonline.com/contoso.onmicrosoft.com")
            .unwrap_err();
        assert!(err.to_string().contains("Katalog-ID"), "{err}");
    }

    #[test]
    fn tenant_must_be_url_safe() {
        let a = Authority::global();
        assert!(
            a.token_endpoint("6d3c9f0a-2b4e-4c1d-9a8f-5e7b0c2d4f61")
                .is_ok()
        );
        assert!(a.token_endpoint("organizations").is_ok());
        assert!(a.token_endpoint("").is_err());
        assert!(a.token_endpoint(" contoso.com").is_err());
        assert!(a.token_endpoint("x/../../evil").is_err());
    }
}
