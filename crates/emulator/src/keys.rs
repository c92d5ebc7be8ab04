//! Token signing keys, JWT minting, and the X.509 certificates apps register.
//!
//! Two RSA keys sign tokens: one app-only tokens, the other delegated (user) tokens. Microsoft
//! uses one key set for both, but Dovecot's oauth2 passdb can only tell the kinds apart by the
//! key that verifies them (it cannot check `idtyp`), so the mail stack gives each passdb one
//! key. Both keys sit in the JWKS, so any normal validator accepts either.
//!
//! Keys persist under `{state_dir}/keys/` so a restarted emulator keeps signing with the same
//! keys and tokens issued before the restart stay valid. Each key comes with a self-signed
//! certificate because Microsoft's JWKS publishes `x5c` and derives `kid` = `x5t` from it.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{CertificateParams, DnType, KeyPair};
use serde_json::{Value, json};
use sha1::Digest;
use time::OffsetDateTime;

/// A key or certificate problem, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot {action} {path}: {source}; check that the state dir is writable")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating a key or certificate failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(
        "{path} does not hold a usable PEM {what}; delete it and restart the emulator to generate a new one"
    )]
    Corrupt { path: PathBuf, what: &'static str },
    #[error(
        "the certificate is not a PEM X.509 certificate ({0}); register the certificate file (-----BEGIN CERTIFICATE-----), not the key"
    )]
    BadCertificate(String),
    #[error(
        "the certificate's key is not RSA; Entra ID client assertions here must be RS256/PS256, so register an RSA certificate"
    )]
    NotRsa,
    #[error("signing a token failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Which of the two signing keys a token needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    App,
    User,
}

/// One RSA signing key with its certificate.
pub struct SigningKey {
    pub kid: String,
    cert_der: Vec<u8>,
    n: Vec<u8>,
    e: Vec<u8>,
    encoding: EncodingKey,
    pub public_pem: String,
    pub public_pem_path: PathBuf,
}

/// The app-only and the delegated signing keys.
pub struct SigningKeys {
    pub app: SigningKey,
    pub user: SigningKey,
}

/// Writes `contents` to `path` atomically: into a temporary file in the same directory, then
/// renamed over `path`, so a reader never sees half a key and a crash leaves the old file.
///
/// A `private` file (a private key) is created with mode 0600 from the start (tempfile opens it
/// with `O_CREAT | O_EXCL` and mode 0600 on Unix): writing it with the default mode and chmod'ing
/// afterwards would leave a moment in which any local user can read the key. Other files get
/// 0644. On Windows the temporary file inherits the directory's ACL (the state dir is the user's).
pub(crate) fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), KeyError> {
    use std::io::Write;
    let io = |action, source| KeyError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(|e| io("create the directory of", e))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-").suffix(".part");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if private { 0o600 } else { 0o644 };
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    let mut file = builder
        .tempfile_in(parent)
        .map_err(|e| io("create a temporary file next to", e))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| io("write", e))?;
    file.persist(path).map_err(|e| io("replace", e.error))?;
    Ok(())
}

pub(crate) fn read_file(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// A freshly generated RSA key pair and its self-signed certificate, both PEM.
pub struct GeneratedCertificate {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Generates an RSA-2048 key and a self-signed certificate (as `New-SelfSignedCertificate`
/// or `openssl req -x509` would for an app registration).
pub fn generate_rsa_certificate(
    common_name: &str,
    valid_years: i64,
) -> Result<GeneratedCertificate, KeyError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365 * valid_years);
    let cert = params.self_signed(&key)?;
    Ok(GeneratedCertificate {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Loads `{dir}/{name}.cert.pem` + `{name}.key.pem`, generating them at first use.
pub(crate) fn load_or_generate_certificate(
    dir: &Path,
    name: &str,
    common_name: &str,
) -> Result<(PathBuf, PathBuf, GeneratedCertificate), KeyError> {
    let cert_path = dir.join(format!("{name}.cert.pem"));
    let key_path = dir.join(format!("{name}.key.pem"));
    if cert_path.exists() && key_path.exists() {
        let generated = GeneratedCertificate {
            cert_pem: read_file(&cert_path)?,
            key_pem: read_file(&key_path)?,
        };
        return Ok((cert_path, key_path, generated));
    }
    let generated = generate_rsa_certificate(common_name, 10)?;
    write_file(&key_path, &generated.key_pem, true)?;
    write_file(&cert_path, &generated.cert_pem, false)?;
    Ok((cert_path, key_path, generated))
}

impl SigningKeys {
    /// Loads the keys from `{state_dir}/keys`, generating missing ones, and (re)writes the
    /// public PEM files and `kids.json` the mail stack reads.
    pub fn load_or_create(state_dir: &Path) -> Result<SigningKeys, KeyError> {
        let dir = state_dir.join("keys");
        let app = SigningKey::load_or_create(&dir, "app", "Kurir emulator app-only token signing")?;
        let user = SigningKey::load_or_create(&dir, "user", "Kurir emulator user token signing")?;
        let kids = json!({ "app": app.kid, "user": user.kid });
        write_file(
            &dir.join("kids.json"),
            &serde_json::to_string_pretty(&kids).unwrap_or_default(),
            false,
        )?;
        Ok(SigningKeys { app, user })
    }

    pub fn get(&self, kind: TokenKind) -> &SigningKey {
        match kind {
            TokenKind::App => &self.app,
            TokenKind::User => &self.user,
        }
    }

    /// The JWKS document (`/discovery/v2.0/keys`), in Microsoft's shape.
    pub fn jwks(&self, issuer: &str) -> Value {
        let keys: Vec<Value> = [&self.app, &self.user]
            .iter()
            .map(|k| {
                json!({
                    "kty": "RSA",
                    "use": "sig",
                    "kid": k.kid,
                    "x5t": k.kid,
                    "n": URL_SAFE_NO_PAD.encode(&k.n),
                    "e": URL_SAFE_NO_PAD.encode(&k.e),
                    "x5c": [STANDARD.encode(&k.cert_der)],
                    "issuer": issuer,
                })
            })
            .collect();
        json!({ "keys": keys })
    }

    /// Signs claims as an RS256 JWT with Microsoft's header (`typ`, `alg`, `x5t`, `kid`).
    pub fn sign(&self, kind: TokenKind, claims: &Value) -> Result<String, KeyError> {
        let key = self.get(kind);
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".into());
        header.kid = Some(key.kid.clone());
        header.x5t = Some(key.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &key.encoding)?)
    }
}

impl SigningKey {
    fn load_or_create(dir: &Path, name: &str, cn: &str) -> Result<SigningKey, KeyError> {
        let (cert_path, key_path, generated) = load_or_generate_certificate(dir, name, cn)?;
        let cert = RegisteredCertificate::from_pem(&generated.cert_pem).map_err(|_| {
            KeyError::Corrupt {
                path: cert_path.clone(),
                what: "certificate",
            }
        })?;
        let encoding = EncodingKey::from_rsa_pem(generated.key_pem.as_bytes()).map_err(|_| {
            KeyError::Corrupt {
                path: key_path.clone(),
                what: "RSA private key",
            }
        })?;
        let public_pem = cert.public_key_pem();
        let public_pem_path = dir.join(format!("{name}.pub.pem"));
        write_file(&public_pem_path, &public_pem, false)?;
        Ok(SigningKey {
            kid: cert.x5t(),
            cert_der: cert.der.clone(),
            n: cert.modulus.clone(),
            e: cert.exponent.clone(),
            encoding,
            public_pem,
            public_pem_path,
        })
    }
}

/// A certificate as Entra ID keeps it for an app: thumbprints and the RSA public key.
#[derive(Clone, Debug)]
pub struct RegisteredCertificate {
    pub der: Vec<u8>,
    pub sha1: Vec<u8>,
    pub sha256: Vec<u8>,
    /// PKCS#1 RSAPublicKey DER, what signature verification wants.
    pub pkcs1_public_key: Vec<u8>,
    /// SubjectPublicKeyInfo DER, for the PEM "PUBLIC KEY" form.
    spki: Vec<u8>,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
}

impl RegisteredCertificate {
    pub fn from_pem(pem: &str) -> Result<RegisteredCertificate, KeyError> {
        let (_, parsed_pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| KeyError::BadCertificate(e.to_string()))?;
        if parsed_pem.label != "CERTIFICATE" {
            return Err(KeyError::BadCertificate(format!(
                "found a PEM '{}' block",
                parsed_pem.label
            )));
        }
        Self::from_der(&parsed_pem.contents)
    }

    pub fn from_der(der: &[u8]) -> Result<RegisteredCertificate, KeyError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| KeyError::BadCertificate(e.to_string()))?;
        let spki = cert.public_key();
        let x509_parser::public_key::PublicKey::RSA(rsa) =
            spki.parsed().map_err(|_| KeyError::NotRsa)?
        else {
            return Err(KeyError::NotRsa);
        };
        let strip = |b: &[u8]| {
            let first = b
                .iter()
                .position(|&x| x != 0)
                .unwrap_or(b.len().saturating_sub(1));
            b[first..].to_vec()
        };
        Ok(RegisteredCertificate {
            der: der.to_vec(),
            sha1: sha1::Sha1::digest(der).to_vec(),
            sha256: sha2::Sha256::digest(der).to_vec(),
            pkcs1_public_key: spki.subject_public_key.data.to_vec(),
            spki: spki.raw.to_vec(),
            modulus: strip(rsa.modulus),
            exponent: strip(rsa.exponent),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// base64url SHA-1 thumbprint: the `x5t` header MSAL and older docs use.
    pub fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.sha1)
    }

    /// base64url SHA-256 thumbprint: the `x5t#S256` header of the newer docs.
    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.sha256)
    }

    /// Upper-case hex SHA-1 thumbprint, as the Azure portal shows it and MSAL's
    /// `client_credential={"thumbprint": …}` takes it.
    pub fn thumbprint_hex(&self) -> String {
        hex::encode_upper(&self.sha1)
    }

    pub fn public_key_pem(&self) -> String {
        let b64 = STANDARD.encode(&self.spki);
        let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END PUBLIC KEY-----\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_persist_and_sign_verifiable_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let keys = SigningKeys::load_or_create(dir.path()).unwrap();
        assert_ne!(keys.app.kid, keys.user.kid);
        let again = SigningKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(keys.app.kid, again.app.kid, "a restart keeps the keys");

        let kids: Value =
            serde_json::from_str(&read_file(&dir.path().join("keys/kids.json")).unwrap()).unwrap();
        assert_eq!(kids["user"], keys.user.kid.as_str());

        let exp = OffsetDateTime::now_utc().unix_timestamp() + 60;
        let token = keys
            .sign(TokenKind::User, &json!({"sub": "x", "exp": exp}))
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(keys.user.kid.as_str()));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let pem = read_file(&dir.path().join("keys/user.pub.pem")).unwrap();
        let dk = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
        v.validate_aud = false;
        jsonwebtoken::decode::<Value>(&token, &dk, &v).expect("verifies with user.pub.pem");
        let app_pem = read_file(&dir.path().join("keys/app.pub.pem")).unwrap();
        let dk = jsonwebtoken::DecodingKey::from_rsa_pem(app_pem.as_bytes()).unwrap();
        assert!(jsonwebtoken::decode::<Value>(&token, &dk, &v).is_err());
    }
}
