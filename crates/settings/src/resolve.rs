//! Resolution: the effective settings of the system, a user, an incoming-mail account or the
//! webshop, each value with where it came from.
//!
//! Inheritance chains (first set value wins):
//! - user:    user → system → default
//! - account: account → system → default (an account is not a user; the seed makes admins copy
//!   the system values into each account, Kurir inherits them instead)
//! - webshop: `according-to-user-settings` (the default) → exactly the effective settings of user
//!   WEBSHOP; any other method → webshop → system → default, like a user of its own.
//!
//! Secrets take part in resolution only as [`SecretInfo`] (masked text and date): resolving never
//! needs, and therefore never touches, a plaintext secret.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::keys::{KEYS, KeyDef, key};
use crate::scope::{Level, Scope, Source};

/// The user code the webshop sends as when its method is according to user settings.
pub const WEBSHOP_USER: &str = "WEBSHOP";
pub const ACCORDING_TO_USER_SETTINGS: &str = "according-to-user-settings";

/// What is known of a stored secret without decrypting it for use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretInfo {
    /// e.g. `••••cdef` (only the last four characters, and only for secrets long enough that four
    /// characters give nothing away).
    pub masked: String,
    pub set_on: time::Date,
}

impl SecretInfo {
    pub fn mask(plain: &str, set_on: time::Date) -> SecretInfo {
        let chars: Vec<char> = plain.trim_end().chars().collect();
        let masked = if chars.len() >= 16 && !plain.contains("PRIVATE KEY") {
            let tail: String = chars[chars.len() - 4..].iter().collect();
            format!("••••{tail}")
        } else {
            "••••".to_owned()
        };
        SecretInfo { masked, set_on }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredValue {
    Plain(String),
    Secret(SecretInfo),
}

impl StoredValue {
    pub fn plain(&self) -> Option<&str> {
        match self {
            StoredValue::Plain(s) => Some(s),
            StoredValue::Secret(_) => None,
        }
    }

    /// Text safe to show anywhere.
    pub fn display(&self) -> String {
        match self {
            StoredValue::Plain(s) => s.clone(),
            StoredValue::Secret(info) => format!("{} (set on {})", info.masked, info.set_on),
        }
    }
}

/// The values written at one scope (sparse: only what the admin set there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    pub values: BTreeMap<String, StoredValue>,
}

impl Layer {
    pub fn get(&self, key: &str) -> Option<&StoredValue> {
        self.values.get(key)
    }

    pub fn plain(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(StoredValue::plain)
    }

    pub fn set_plain(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.values
            .insert(key.to_owned(), StoredValue::Plain(value.into()));
        self
    }

    pub fn set_secret(&mut self, key: &str, info: SecretInfo) -> &mut Self {
        self.values
            .insert(key.to_owned(), StoredValue::Secret(info));
        self
    }
}

/// Everything resolution needs: the layers as stored.
#[derive(Debug, Clone, Default)]
pub struct SettingsSnapshot {
    pub system: Layer,
    pub users: BTreeMap<String, Layer>,
    pub accounts: BTreeMap<String, Layer>,
    pub webshop: Layer,
}

#[derive(Debug, Clone)]
pub struct EffectiveField {
    pub key: &'static KeyDef,
    pub value: Option<StoredValue>,
    pub source: Source,
    /// The scope the value was read from (None for defaults), so a fix-it hint can say where to
    /// change it.
    pub from: Option<Scope>,
}

/// The effective settings of one subject.
#[derive(Debug, Clone)]
pub struct Effective {
    pub scope: Scope,
    pub fields: Vec<EffectiveField>,
    /// For the webshop: its own method setting (`according-to-user-settings` or a method).
    pub webshop_method: Option<(String, Source)>,
    /// For the webshop under `according-to-user-settings`: the user it sends as.
    pub sends_as: Option<String>,
}

impl Effective {
    pub fn field(&self, name: &str) -> Option<&EffectiveField> {
        self.fields.iter().find(|f| f.key.name == name)
    }

    /// The plain effective value of a non-secret field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.field(name)?.value.as_ref()?.plain()
    }

    pub fn is_set(&self, name: &str) -> bool {
        self.field(name).is_some_and(|f| f.value.is_some())
    }

    /// The scope a fix should be written to for `name`: where the value came from, or the most
    /// specific scope of this subject that may hold the key.
    pub fn fix_scope(&self, name: &str) -> Scope {
        if let Some(from) = self.field(name).and_then(|f| f.from.clone()) {
            return from;
        }
        let def = key(name).expect("known key");
        let own = match (&self.scope, &self.sends_as) {
            (Scope::Webshop, Some(user)) => Scope::User(user.clone()),
            (s, _) => s.clone(),
        };
        if def.allowed_at(own.level()) && !def.allowed_at(Level::System) {
            own
        } else if def.allowed_at(Level::System) {
            Scope::System
        } else {
            own
        }
    }

    /// The JSON shape of `kurir settings show --json`: `{key: {"value", "source"}}`.
    pub fn to_json(&self) -> Json {
        let mut map = serde_json::Map::new();
        if let Some((method, source)) = &self.webshop_method {
            map.insert(
                "webshop_method".into(),
                json!({"value": method, "source": source.as_str()}),
            );
        }
        if let Some(user) = &self.sends_as {
            map.insert(
                "sends_as".into(),
                json!({"value": user, "source": Source::Default.as_str()}),
            );
        }
        for f in &self.fields {
            let mut entry = serde_json::Map::new();
            match &f.value {
                None => {
                    entry.insert("value".into(), Json::Null);
                }
                Some(StoredValue::Plain(v)) => {
                    entry.insert("value".into(), Json::String(v.clone()));
                }
                Some(StoredValue::Secret(info)) => {
                    entry.insert("value".into(), Json::String(info.masked.clone()));
                    entry.insert("secret".into(), Json::Bool(true));
                    entry.insert("set_on".into(), Json::String(info.set_on.to_string()));
                }
            }
            entry.insert("source".into(), Json::String(f.source.as_str().into()));
            if let Some(from) = &f.from {
                entry.insert("from".into(), Json::String(from.storage_key()));
            }
            map.insert(f.key.name.into(), Json::Object(entry));
        }
        Json::Object(map)
    }
}

impl SettingsSnapshot {
    pub fn resolve(&self, scope: &Scope) -> Effective {
        match scope {
            Scope::System => self.chain(scope.clone(), &[]),
            Scope::User(code) => {
                let user = self.users.get(code).cloned().unwrap_or_default();
                self.chain(scope.clone(), &[(Scope::User(code.clone()), &user)])
            }
            Scope::Account(name) => {
                let account = self.accounts.get(name).cloned().unwrap_or_default();
                self.chain(scope.clone(), &[(Scope::Account(name.clone()), &account)])
            }
            Scope::Webshop => {
                let own = self.webshop.plain("method").map(str::to_owned);
                match own {
                    None => self.webshop_as_user(Source::Default),
                    Some(m) if m == ACCORDING_TO_USER_SETTINGS => {
                        self.webshop_as_user(Source::Webshop)
                    }
                    Some(m) => {
                        let mut eff =
                            self.chain(Scope::Webshop, &[(Scope::Webshop, &self.webshop)]);
                        eff.webshop_method = Some((m, Source::Webshop));
                        eff
                    }
                }
            }
        }
    }

    fn webshop_as_user(&self, method_source: Source) -> Effective {
        let mut eff = self.resolve(&Scope::User(WEBSHOP_USER.to_owned()));
        eff.scope = Scope::Webshop;
        eff.webshop_method = Some((ACCORDING_TO_USER_SETTINGS.to_owned(), method_source));
        eff.sends_as = Some(WEBSHOP_USER.to_owned());
        eff
    }

    /// Resolves `scope` from its own layers (most specific first), then the system layer, then
    /// the defaults.
    fn chain(&self, scope: Scope, own: &[(Scope, &Layer)]) -> Effective {
        let level = scope.level();
        let mut fields = Vec::new();
        for def in KEYS.iter().filter(|k| visible_at(k, level)) {
            let mut found = None;
            for (s, layer) in own {
                if let Some(v) = layer.get(def.name) {
                    found = Some((v.clone(), Source::of(s.level()), Some(s.clone())));
                    break;
                }
            }
            if found.is_none()
                && def.allowed_at(Level::System)
                && let Some(v) = self.system.get(def.name)
            {
                found = Some((v.clone(), Source::System, Some(Scope::System)));
            }
            // A user without an address of their own sends as the system's default sender.
            if found.is_none()
                && def.name == "email"
                && let Some(v) = self.system.get("default_sender")
            {
                found = Some((v.clone(), Source::System, Some(Scope::System)));
            }
            fields.push(match found {
                Some((value, source, from)) => EffectiveField {
                    key: def,
                    value: Some(value),
                    source,
                    from,
                },
                None => EffectiveField {
                    key: def,
                    value: None,
                    source: Source::Default,
                    from: None,
                },
            });
        }
        let mut eff = Effective {
            scope,
            fields,
            webshop_method: None,
            sends_as: None,
        };
        apply_defaults(&mut eff);
        eff
    }
}

/// Which keys a subject's effective settings list: everything that can be set on it or
/// inherited into it.
fn visible_at(def: &KeyDef, level: Level) -> bool {
    match level {
        Level::System => def.allowed_at(Level::System),
        // The server switch is the system's alone; a user does not "inherit" it.
        Level::User | Level::Webshop => {
            (def.allowed_at(level) || def.allowed_at(Level::System))
                && def.name != "default_sender"
                && !def.server_only()
        }
        Level::Account => {
            (def.allowed_at(Level::Account) || def.allowed_at(Level::System))
                && def.name != "default_sender"
                && !def.server_only()
        }
    }
}

/// Built-in defaults, some of which depend on other effective values (the cloud decides the
/// endpoints; the method decides whether an SMTP host can be guessed).
fn apply_defaults(eff: &mut Effective) {
    let cloud = eff.get("cloud").unwrap_or("global").to_owned();
    let method = eff.get("method").unwrap_or("none").to_owned();
    let endpoints = crate::cloud::endpoints(&cloud);
    for f in &mut eff.fields {
        if f.value.is_some() {
            continue;
        }
        let default: Option<String> = match f.key.name {
            "method" => Some("none".into()),
            "auth_flow" => Some("client-secret".into()),
            "cloud" => Some("global".into()),
            crate::endpoints::ALLOW_CUSTOM_ENDPOINTS => Some("false".into()),
            "authority" => Some(endpoints.authority.into()),
            "graph_endpoint" => Some(endpoints.graph.into()),
            "imap_host" | "pop3_host" => Some(endpoints.imap_host.into()),
            "imap_port" => Some("993".into()),
            "pop3_port" => Some("995".into()),
            // A classic SMTP server has no sensible default host; Exchange Online's does.
            "smtp_host" if method != "smtp" => Some(endpoints.smtp_host.into()),
            "smtp_port" => Some("587".into()),
            "smtp_tls" => Some("starttls".into()),
            "type" => Some("general".into()),
            "protocol" => Some("graph".into()),
            "source_folder" => Some("Inbox".into()),
            "processed_folder" => Some("Processed".into()),
            "quarantine_folder" => Some("Quarantine".into()),
            "poll_interval" => Some("1m".into()),
            "keep_raw_mail" | "keep_import_documents" | "keep_sent_mail" => Some("90d".into()),
            "keep_records" => Some("730d".into()),
            "rotate_secret" => Some("false".into()),
            "rotate_before" => Some("30d".into()),
            "setup_client_id" => Some("14d82eec-204b-4c2f-b7e8-296a70dab67e".into()),
            "alarm_language" => Some("sv".into()),
            _ => None,
        };
        f.value = default.map(StoredValue::Plain);
        f.source = Source::Default;
        f.from = None;
    }
}
