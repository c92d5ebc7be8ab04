//! `kurir.toml`: the service's own options (where it listens, its data directory and database,
//! the web UI's certificate, the SMTP listener), as opposed to the e-mail settings, which live in
//! the store.
//!
//! Precedence, per option: a command-line flag, then its environment variable (`KURIR_…`), then
//! the file, then the built-in default. The file is `--config PATH` / `KURIR_CONFIG`, else the
//! platform's place ([`default_path`]); a missing default file is fine (everything has a
//! default), a missing file that was named is an error. Unknown keys are refused with their name
//! and the file's, so a misspelt option is never silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's contents; every option may be left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Where Kurir keeps its database (SQLite), master key, raw mail and import folders.
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL instead of SQLite (a password belongs in the environment, not here).
    pub database_url: Option<String>,
    #[serde(default)]
    pub web: WebSection,
    #[serde(default)]
    pub smtp: SmtpSection,
    #[serde(default)]
    pub service: ServiceSection,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebSection {
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain and private key: the web UI and REST API speak HTTPS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub allowed_hosts: Option<Vec<String>>,
    pub secure_cookies: Option<bool>,
    pub session_hours: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSection {
    /// `127.0.0.1:2587`, or `off`.
    pub listen: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    pub intake: Option<bool>,
    pub outbox: Option<bool>,
    pub upkeep: Option<bool>,
    pub shutdown_grace_secs: Option<u64>,
    pub purge_every_hours: Option<u64>,
    pub log_json: Option<bool>,
}

/// A config file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the config file {path} cannot be read ({source}); fix the path given with --config / KURIR_CONFIG, or leave it out", path = path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid: {message}; see packaging/kurir.toml for every option", path = path.display())]
    Parse { path: PathBuf, message: String },
}

/// A loaded file: where it was looked for, and whether it was there.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub path: PathBuf,
    pub found: bool,
    pub file: ConfigFile,
}

/// Where the file is when none is named: `/etc/kurir/kurir.toml`, or
/// `%ProgramData%\Kurir\kurir.toml` on Windows.
pub fn default_path() -> PathBuf {
    #[cfg(windows)]
    {
        let base = std::env::var_os("ProgramData")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"));
        base.join("Kurir").join("kurir.toml")
    }
    #[cfg(not(windows))]
    {
        PathBuf::from("/etc/kurir/kurir.toml")
    }
}

/// Loads `named` (which must exist), else the default file if it exists.
pub fn load(named: Option<&Path>) -> Result<Loaded, ConfigError> {
    let (path, required) = match named {
        Some(p) => (p.to_owned(), true),
        None => (default_path(), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(Loaded {
                path,
                found: false,
                file: ConfigFile::default(),
            });
        }
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    let file = parse(&text).map_err(|message| ConfigError::Parse {
        path: path.clone(),
        message,
    })?;
    Ok(Loaded {
        path,
        found: true,
        file,
    })
}

/// Parses the file's text; the error names the key and line (the TOML parser's message).
pub fn parse(text: &str) -> Result<ConfigFile, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))
}

/// A database URL with its password replaced by `***`, for output.
pub fn mask_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(not a URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_parses_and_unknown_keys_are_refused_by_name() {
        let f = parse(
            r#"
data_dir = "/var/lib/kurir"
database_url = "postgres://kurir@db:5432/kurir"
[web]
listen = "0.0.0.0:8443"
tls_cert = "/etc/kurir/tls/cert.pem"
tls_key = "/etc/kurir/tls/key.pem"
allowed_hosts = ["kurir.contoso.com"]
session_hours = 4
[smtp]
listen = "off"
[service]
intake = false
shutdown_grace_secs = 60
purge_every_hours = 12
log_json = true
"#,
        )
        .unwrap();
        assert_eq!(f.web.listen, Some("0.0.0.0:8443".parse().unwrap()));
        assert_eq!(f.smtp.listen.as_deref(), Some("off"));
        assert_eq!(f.service.intake, Some(false));
        let err = parse("[web]\nlisten_on = \"0.0.0.0:80\"\n").unwrap_err();
        assert!(err.contains("listen_on"), "{err}");
        let err = parse("[web]\nlisten = \"not an address\"\n").unwrap_err();
        assert!(err.contains("listen"), "{err}");
        assert_eq!(parse("").unwrap(), ConfigFile::default());
    }

    #[test]
    fn a_named_file_must_exist_the_default_one_need_not() {
        let err = load(Some(Path::new("/nonexistent/kurir.toml"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/kurir.toml"), "{err}");
        assert_eq!(
            mask_url("postgres://kurir:s3cret@db:5432/kurir"),
            "postgres://kurir:***@db:5432/kurir"
        );
    }
}
