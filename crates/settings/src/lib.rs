//! Kurir's settings model, taken from the seed (Monitor ERP's "Aktivera OAuth 2.0 med Microsoft
//! Entra ID"): system settings (Systeminställningar), users (Användare, including WEBSHOP),
//! incoming-mail accounts (Inställningar för inkommande e-post) and the webshop (Webbshop
//! Administration).
//!
//! This crate is pure: no I/O, no crypto. The store persists [`Layer`]s (secrets as ciphertext,
//! surfaced here only as [`SecretInfo`]); this crate parses values ([`parse_value`]), resolves
//! inheritance ([`SettingsSnapshot::resolve`]) and validates the result
//! ([`SettingsSnapshot::validate`]).

pub mod cloud;
pub mod endpoints;
pub mod keys;
pub mod parse;
pub mod resolve;
pub mod scope;
pub mod typed;
pub mod validate;

pub use keys::{KEYS, KeyDef, Kind, choice_label, key, key_or_hint};
pub use parse::{InvalidValue, expiry, format_instant, parse_value};
pub use resolve::{
    ACCORDING_TO_USER_SETTINGS, Effective, EffectiveField, Layer, SecretInfo, SettingsSnapshot,
    StoredValue, WEBSHOP_USER,
};
pub use scope::{Level, Scope, Source, normalize_account_name, normalize_user_code};
pub use typed::{AuthFlow, Cloud as CloudName, Method, Protocol, TlsMode};
pub use validate::{Problem, Severity};

#[cfg(test)]
mod tests;
