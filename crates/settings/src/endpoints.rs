//! Where credentials may go (issue #13.1: write-only secrets must not be readable back).
//!
//! With method exchange-online Kurir posts the client secret, the certificate assertion or the
//! Exchange password to `authority`, and the access tokens it gets to `graph_endpoint` and the
//! IMAP/POP3/SMTP hosts. If whoever can edit settings (an API key, an admin login) could point
//! those at a host of their own, the next Test connection or token fetch would hand them the
//! secret that the API and the UI otherwise never show: a write-only secret read back.
//!
//! So for method exchange-online a secret goes only to the endpoints of the selected cloud
//! (global, usgov, china). Anything else (the emulator, a test tenant) needs the server switch
//! [`ALLOW_CUSTOM_ENDPOINTS`], which only the command line on the server itself can write
//! ([`crate::KeyDef::server_only`]); the REST API and the web UI refuse it.
//!
//! [`is_cloud_endpoint`] is the one decision; [`endpoint_keys_used`] says which endpoints a
//! subject sends to. Validation turns a refused endpoint into an error, and every path that
//! uses settings (token requests, intake, the outbox, Test connection) refuses settings with
//! errors before anything leaves; the API and the UI additionally refuse to save such a value.

use crate::cloud::endpoints;
use crate::resolve::{Effective, SettingsSnapshot};
use crate::scope::Level;

/// The server switch: `true` allows endpoints outside the selected cloud for exchange-online.
pub const ALLOW_CUSTOM_ENDPOINTS: &str = "allow_custom_endpoints";

/// The settings naming a host that receives credentials or tokens with method exchange-online.
pub const ENDPOINT_KEYS: &[&str] = &[
    "authority",
    "graph_endpoint",
    "imap_host",
    "pop3_host",
    "smtp_host",
];

/// The selected cloud's own endpoint for `key`, as shown in messages.
pub fn cloud_endpoint(key: &str, cloud: &str) -> &'static str {
    let e = endpoints(cloud);
    match key {
        "authority" => e.authority,
        "graph_endpoint" => e.graph,
        "imap_host" | "pop3_host" => e.imap_host,
        "smtp_host" => e.smtp_host,
        _ => "",
    }
}

/// The one decision: is `value` of the endpoint setting `key` the selected `cloud`'s own
/// endpoint? URLs must be exactly the cloud's `https://host` (no other port, path, user or
/// query); hosts must be the cloud's host. Keys that are not endpoints are always allowed.
pub fn is_cloud_endpoint(key: &str, value: &str, cloud: &str) -> bool {
    if !ENDPOINT_KEYS.contains(&key) {
        return true;
    }
    let expected = cloud_endpoint(key, cloud);
    match key {
        "authority" | "graph_endpoint" => same_base_url(value, expected),
        _ => same_host(value, expected),
    }
}

fn same_host(value: &str, expected: &str) -> bool {
    value
        .trim()
        .trim_end_matches('.')
        .eq_ignore_ascii_case(expected)
}

fn same_base_url(value: &str, expected: &str) -> bool {
    let Ok(url) = url::Url::parse(value.trim()) else {
        return false;
    };
    url.scheme() == "https"
        && url.username().is_empty()
        && url.password().is_none()
        // `port()` is None for https's own 443.
        && url.port().is_none()
        && matches!(url.path(), "" | "/")
        && url.query().is_none()
        && url.fragment().is_none()
        && url
            .host_str()
            .is_some_and(|h| same_host(h, expected.trim_start_matches("https://")))
}

/// The endpoint settings a subject with method exchange-online sends credentials or tokens to:
/// the sign-in service and Graph always; an incoming-mail account its IMAP or POP3 host; a user,
/// the webshop or the system their SMTP host (sending by SMTP AUTH XOAUTH2).
pub fn endpoint_keys_used(eff: &Effective) -> Vec<&'static str> {
    let mut keys = vec!["authority", "graph_endpoint"];
    if eff.scope.level() == Level::Account {
        match eff.get("protocol") {
            Some("imap") => keys.push("imap_host"),
            Some("pop3") => keys.push("pop3_host"),
            _ => {}
        }
    } else {
        keys.push("smtp_host");
    }
    keys
}

/// An endpoint of `eff` outside its selected cloud: (key, value, the cloud's endpoint).
pub fn custom_endpoints(eff: &Effective) -> Vec<(&'static str, String, &'static str)> {
    if eff.get("method") != Some("exchange-online") {
        return Vec::new();
    }
    let cloud = eff.get("cloud").unwrap_or("global");
    endpoint_keys_used(eff)
        .into_iter()
        .filter_map(|k| {
            let value = eff.get(k)?;
            (!is_cloud_endpoint(k, value, cloud))
                .then(|| (k, value.to_owned(), cloud_endpoint(k, cloud)))
        })
        .collect()
}

impl SettingsSnapshot {
    /// Whether the server switch is on (`kurir settings set allow_custom_endpoints=true`).
    pub fn custom_endpoints_allowed(&self) -> bool {
        self.system.plain(ALLOW_CUSTOM_ENDPOINTS) == Some("true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_selected_clouds_own_endpoints_are_cloud_endpoints() {
        assert!(is_cloud_endpoint(
            "authority",
            "https://login.microsoftonline.com",
            "global"
        ));
        assert!(is_cloud_endpoint(
            "authority",
            "https://LOGIN.microsoftonline.com:443/",
            "global"
        ));
        for bad in [
            "https://login.microsoftonline.us",
            "https://login.microsoftonline.com.evil.example",
            "https://login.microsoftonline.com:8443",
            "https://login.microsoftonline.com/contoso",
            "https://user@login.microsoftonline.com",
            "http://login.microsoftonline.com",
            "https://127.0.0.1:8443",
            "not a url",
        ] {
            assert!(!is_cloud_endpoint("authority", bad, "global"), "{bad}");
        }
        assert!(is_cloud_endpoint(
            "authority",
            "https://login.microsoftonline.us",
            "usgov"
        ));
        assert!(is_cloud_endpoint(
            "graph_endpoint",
            "https://microsoftgraph.chinacloudapi.cn",
            "china"
        ));
        assert!(is_cloud_endpoint(
            "smtp_host",
            "SMTP.office365.com.",
            "global"
        ));
        assert!(!is_cloud_endpoint(
            "smtp_host",
            "mail.example.com",
            "global"
        ));
        assert!(!is_cloud_endpoint(
            "imap_host",
            "outlook.office365.com",
            "usgov"
        ));
        assert!(is_cloud_endpoint("client_id", "anything", "global"));
    }
}
