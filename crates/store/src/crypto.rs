//! Encryption of secrets at rest: AES-256-GCM under one master key, a fresh random nonce per
//! value, and the value's place (scope and key) as associated data so that a ciphertext copied
//! into another row does not decrypt.
//!
//! The master key comes from `KURIR_MASTER_KEY` (for installations that keep keys in a secrets
//! manager) or from a `master.key` file that Kurir creates with mode 0600 on first run (so that a
//! fresh install works unattended). Keychains (keyring) are not used: a headless ERP server has
//! no D-Bus session.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::StoreError;

pub const MASTER_KEY_ENV: &str = "KURIR_MASTER_KEY";
pub const MASTER_KEY_FILE: &str = "master.key";

/// Format version of a sealed value, so the scheme can change without guessing.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// Where the key came from, for error messages ("which key did you give me?").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    Env,
    File(PathBuf),
    Explicit,
}

impl std::fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyOrigin::Env => write!(f, "the environment variable {MASTER_KEY_ENV}"),
            KeyOrigin::File(p) => write!(f, "the key file {}", p.display()),
            KeyOrigin::Explicit => f.write_str("the key given by the caller"),
        }
    }
}

pub struct MasterKey {
    cipher: Aes256Gcm,
    fingerprint: String,
    pub origin: KeyOrigin,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("fingerprint", &self.fingerprint)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8; 32], origin: KeyOrigin) -> MasterKey {
        let fingerprint =
            hex::encode(&Sha256::digest([b"kurir-master-key-v1:".as_slice(), bytes].concat())[..8]);
        MasterKey {
            cipher: Aes256Gcm::new(bytes.into()),
            fingerprint,
            origin,
        }
    }

    /// A short, non-secret identifier of the key (a hash prefix), shown when keys do not match.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Parses a key written as base64 (44 characters) or hex (64 characters) of 32 bytes.
    pub fn parse(text: &str, origin: KeyOrigin) -> Result<MasterKey, StoreError> {
        let t = text.trim();
        let bytes = if t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit()) {
            hex::decode(t).ok()
        } else {
            B64.decode(t).ok()
        };
        match bytes.as_deref().map(<[u8; 32]>::try_from) {
            Some(Ok(b)) => Ok(MasterKey::from_bytes(&b, origin)),
            _ => Err(StoreError::BadMasterKeyFormat { origin }),
        }
    }

    /// A new random key in the text form [`MasterKey::parse`] reads.
    pub fn generate_text() -> String {
        let mut b = [0u8; 32];
        rand::rng().fill_bytes(&mut b);
        B64.encode(b)
    }

    /// The key from `KURIR_MASTER_KEY`, else from `{data_dir}/master.key`; never creates one
    /// (a restore needs the original key, not a new one).
    pub fn load(data_dir: &Path) -> Result<MasterKey, StoreError> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV)
            && !text.trim().is_empty()
        {
            return MasterKey::parse(&text, KeyOrigin::Env);
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        let text = fs::read_to_string(&path).map_err(|e| StoreError::Io {
            what: format!("read the master key file {}", path.display()),
            source: e,
        })?;
        check_permissions(&path)?;
        MasterKey::parse(&text, KeyOrigin::File(path))
    }

    /// The key from `KURIR_MASTER_KEY`, else from `{data_dir}/master.key`, creating that file
    /// (mode 0600) when neither exists.
    pub fn load_or_create(data_dir: &Path) -> Result<MasterKey, StoreError> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV)
            && !text.trim().is_empty()
        {
            return MasterKey::parse(&text, KeyOrigin::Env);
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                check_permissions(&path)?;
                MasterKey::parse(&text, KeyOrigin::File(path))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = MasterKey::generate_text();
                write_new_key_file(&path, &text)?;
                MasterKey::parse(&text, KeyOrigin::File(path))
            }
            Err(e) => Err(StoreError::Io {
                what: format!("read the master key file {}", path.display()),
                source: e,
            }),
        }
    }

    /// Encrypts `plain` for the place `aad` (e.g. `user:ANNA/exchange_password`).
    pub fn seal(&self, plain: &[u8], aad: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption cannot fail for inputs below 64 GiB");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts a value sealed for `aad`. Fails (without detail, by design of AEAD) when the key
    /// is wrong, the data was altered or the value belongs to another place.
    pub fn open(&self, sealed: &[u8], aad: &str) -> Result<Vec<u8>, StoreError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != VERSION {
            return Err(StoreError::CorruptSecret {
                place: aad.to_owned(),
            });
        }
        self.cipher
            .decrypt(
                Nonce::from_slice(&sealed[1..1 + NONCE_LEN]),
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| StoreError::CorruptSecret {
                place: aad.to_owned(),
            })
    }
}

fn write_new_key_file(path: &Path, text: &str) -> Result<(), StoreError> {
    let io = |e| StoreError::Io {
        what: format!("create the master key file {}", path.display()),
        source: e,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.write_all(b"\n").map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}

/// A key file others can read is as good as no encryption; refuse it rather than warn into a
/// log nobody reads.
fn check_permissions(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(|e| StoreError::Io {
                what: format!("inspect {}", path.display()),
                source: e,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(StoreError::KeyFileTooOpen {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
    }
    let _ = path;
    Ok(())
}

/// Where the master key of `data_dir` comes from, in words for an administrator (backups say
/// it, because they do not hold the key).
pub fn key_location(data_dir: &Path) -> String {
    match std::env::var(MASTER_KEY_ENV) {
        Ok(v) if !v.trim().is_empty() => format!("the environment variable {MASTER_KEY_ENV}"),
        _ => format!("the file {}", data_dir.join(MASTER_KEY_FILE).display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes(&[byte; 32], KeyOrigin::Explicit)
    }

    #[test]
    fn seal_open_round_trip_with_fresh_nonces() {
        let k = key(1);
        let a = k.seal(b"hemligt", "system/client_secret");
        let b = k.seal(b"hemligt", "system/client_secret");
        assert_ne!(a, b, "a fresh nonce per value");
        assert_eq!(k.open(&a, "system/client_secret").unwrap(), b"hemligt");
    }

    #[test]
    fn wrong_key_or_wrong_place_fails() {
        let sealed = key(1).seal(b"hemligt", "system/client_secret");
        assert!(matches!(
            key(2).open(&sealed, "system/client_secret"),
            Err(StoreError::CorruptSecret { .. })
        ));
        assert!(key(1).open(&sealed, "user:ANNA/client_secret").is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key(1).open(&tampered, "system/client_secret").is_err());
    }

    #[test]
    fn key_text_formats() {
        let text = MasterKey::generate_text();
        assert_eq!(
            MasterKey::parse(&text, KeyOrigin::Env)
                .unwrap()
                .fingerprint()
                .len(),
            16
        );
        assert!(MasterKey::parse(&"ab".repeat(32), KeyOrigin::Env).is_ok());
        let err = MasterKey::parse("correct horse battery staple", KeyOrigin::Env).unwrap_err();
        assert!(err.to_string().contains("32 bytes"), "{err}");
    }

    #[test]
    fn key_file_is_created_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = MasterKey::load_or_create(dir.path()).unwrap();
        let b = MasterKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().join(MASTER_KEY_FILE);
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            let err = MasterKey::load_or_create(dir.path())
                .unwrap_err()
                .to_string();
            assert!(err.contains("chmod 600"), "{err}");
        }
    }
}
