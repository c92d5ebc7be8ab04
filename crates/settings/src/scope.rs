//! Where a setting lives and where an effective value came from.
//!
//! The seed has four places an ERP administrator types e-mail settings into: the system settings
//! (Systeminställningar), each user (Användare), each incoming-mail account (Inställningar för
//! inkommande e-post) and Webbshop Administration. Kurir keeps the same four levels so that the
//! administrator recognises them, but resolves inheritance itself instead of making the admin copy
//! the same values by hand.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A level at which a setting can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    System,
    User,
    Account,
    Webshop,
}

/// One concrete place settings are stored: the system, a user code, an account name or the webshop.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    System,
    User(String),
    Account(String),
    Webshop,
}

impl Scope {
    pub fn level(&self) -> Level {
        match self {
            Scope::System => Level::System,
            Scope::User(_) => Level::User,
            Scope::Account(_) => Level::Account,
            Scope::Webshop => Level::Webshop,
        }
    }

    /// A stable string used as the storage key of the scope (`system`, `user:ANNA`, …).
    pub fn storage_key(&self) -> String {
        match self {
            Scope::System => "system".to_owned(),
            Scope::User(code) => format!("user:{code}"),
            Scope::Account(name) => format!("account:{name}"),
            Scope::Webshop => "webshop".to_owned(),
        }
    }

    pub fn from_storage_key(s: &str) -> Option<Scope> {
        match s {
            "system" => Some(Scope::System),
            "webshop" => Some(Scope::Webshop),
            _ => {
                if let Some(code) = s.strip_prefix("user:") {
                    Some(Scope::User(code.to_owned()))
                } else {
                    s.strip_prefix("account:")
                        .map(|name| Scope::Account(name.to_owned()))
                }
            }
        }
    }

    /// The `kurir settings set` flags that address this scope, for fix-it hints.
    pub fn cli_flag(&self) -> String {
        match self {
            Scope::System => String::new(),
            Scope::User(code) => format!(" --user {code}"),
            Scope::Account(name) if name.contains(char::is_whitespace) => {
                format!(" --account '{name}'")
            }
            Scope::Account(name) => format!(" --account {name}"),
            Scope::Webshop => " --webshop".to_owned(),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::System => f.write_str("system settings"),
            Scope::User(code) => write!(f, "user {code}"),
            Scope::Account(name) => write!(f, "incoming-mail account {name}"),
            Scope::Webshop => f.write_str("webshop"),
        }
    }
}

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    System,
    User,
    Account,
    Webshop,
    /// Kurir's built-in default (or no value at all when the field has no default).
    Default,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::System => "system",
            Source::User => "user",
            Source::Account => "account",
            Source::Webshop => "webshop",
            Source::Default => "default",
        }
    }

    pub(crate) fn of(level: Level) -> Source {
        match level {
            Level::System => Source::System,
            Level::User => Source::User,
            Level::Account => Source::Account,
            Level::Webshop => Source::Webshop,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ERP user codes are short upper-case identifiers (`ANNA`, `WEBSHOP`); the ERP compares them
/// case-insensitively, so Kurir stores them upper-case.
pub fn normalize_user_code(raw: &str) -> Result<String, String> {
    let code = raw.trim().to_uppercase();
    if code.is_empty() {
        return Err("a user code cannot be empty: use the ERP's user code, e.g. ANNA".into());
    }
    if code.len() > 32
        || !code
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(format!(
            "'{raw}' is not a user code: use the ERP's user code (letters, digits, '_', '-', '.', at most 32), e.g. ANNA or WEBSHOP"
        ));
    }
    Ok(code)
}

/// Account names are what the admin calls the account ("Monitor-to-Monitor"); any printable text
/// without control characters, trimmed.
pub fn normalize_account_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("an account name cannot be empty, e.g. Monitor-to-Monitor".into());
    }
    if name.len() > 100 || name.chars().any(char::is_control) || name.contains(':') {
        return Err(format!(
            "'{raw}' is not a usable account name: at most 100 characters, no ':' or control characters"
        ));
    }
    Ok(name.to_owned())
}
