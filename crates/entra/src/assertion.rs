//! `private_key_jwt`: the signed JWT a confidential client sends instead of a client secret.
//!
//! Microsoft documents two header variants: the older RS256 + `x5t` (SHA-1 thumbprint, what MSAL
//! for Python still sends) and the newer PS256 + `x5t#S256` (SHA-256 thumbprint). Both are
//! offered because tenants and proxies differ in what they accept. Entra identifies the
//! registered certificate by the thumbprint, so the PEM certificate is needed as well as the key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha1::Digest;

use crate::error::EntraError;

/// The `client_assertion_type` form value for a JWT assertion.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid. Entra accepts up to a few tens of minutes; 10 minutes leaves
/// room for a slow retry loop without making a leaked assertion useful for long.
const LIFETIME_SECS: i64 = 600;

/// Signature algorithm and thumbprint header of the client assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AssertionAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 and the SHA-1 thumbprint in `x5t` (MSAL's default).
    #[default]
    Rs256,
    /// RSASSA-PSS with SHA-256 and the SHA-256 thumbprint in `x5t#S256` (newer Microsoft docs).
    Ps256,
}

/// The claims Entra checks in a client assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    pub aud: String,
    pub iss: String,
    pub sub: String,
    pub jti: String,
    pub nbf: i64,
    pub iat: i64,
    pub exp: i64,
}

/// A certificate and its private key, checked once and reused for every assertion.
#[derive(Clone)]
pub struct CertificateCredential {
    key: EncodingKey,
    sha1_thumbprint: String,
    sha256_thumbprint: String,
}

impl std::fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("x5t", &self.sha1_thumbprint)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl CertificateCredential {
    /// From the PEM certificate registered in Entra and its RSA private key (PKCS#8 or PKCS#1 PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &SecretString) -> Result<Self, EntraError> {
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| {
            EntraError::Config {
                setting: "certificate",
                problem: format!(
                    "Certifikat is not a PEM certificate ({e}); paste the certificate that was uploaded to the app registration, starting with -----BEGIN CERTIFICATE-----"
                ),
            }
        })?;
        let key = EncodingKey::from_rsa_pem(key_pem.expose_secret().as_bytes()).map_err(|_| {
            // The jsonwebtoken error text is generic; what matters is the expected format.
            EntraError::Config {
                setting: "certificate_key",
                problem: "Certifikatets privata nyckel is not an unencrypted RSA private key in PEM form; paste the key that belongs to the certificate, starting with -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY----- (Entra only accepts RSA certificates for app sign-in)".into(),
            }
        })?;
        Ok(CertificateCredential {
            key,
            sha1_thumbprint: URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(der.as_ref())),
            sha256_thumbprint: URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der.as_ref())),
        })
    }

    /// The certificate's SHA-1 thumbprint as hex, the form the Entra portal shows, so that
    /// admins can compare it.
    pub fn thumbprint_hex(&self) -> String {
        URL_SAFE_NO_PAD
            .decode(&self.sha1_thumbprint)
            .unwrap_or_default()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }

    /// A fresh signed assertion for `client_id` addressed to `token_endpoint`.
    pub fn assertion(
        &self,
        alg: AssertionAlg,
        client_id: &str,
        token_endpoint: &str,
    ) -> Result<SecretString, EntraError> {
        let mut header = match alg {
            AssertionAlg::Rs256 => {
                let mut h = Header::new(Algorithm::RS256);
                h.x5t = Some(self.sha1_thumbprint.clone());
                h
            }
            AssertionAlg::Ps256 => {
                let mut h = Header::new(Algorithm::PS256);
                h.x5t_s256 = Some(self.sha256_thumbprint.clone());
                h
            }
        };
        header.typ = Some("JWT".into());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = AssertionClaims {
            aud: token_endpoint.to_owned(),
            iss: client_id.to_owned(),
            sub: client_id.to_owned(),
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now,
            iat: now,
            exp: now + LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map(SecretString::from)
            .map_err(|e| EntraError::Config {
                setting: "certificate_key",
                problem: format!(
                    "signing the client assertion failed ({e}); check that Certifikatets privata nyckel is an RSA key of at least 2048 bits"
                ),
            })
    }
}

impl CertificateCredential {
    /// The proof of possession Microsoft Graph's `addKey` and `removeKey` demand when an app
    /// rolls its own certificate: signed with this (currently registered) certificate, `aud`
    /// 00000002-0000-0000-c000-000000000000, `iss` the application's OBJECT id, valid for 10
    /// minutes (<https://learn.microsoft.com/en-us/graph/application-rollkey-prooftoken>).
    pub fn proof_of_possession(
        &self,
        application_object_id: &str,
    ) -> Result<SecretString, EntraError> {
        #[derive(Serialize)]
        struct Proof<'a> {
            aud: &'a str,
            iss: &'a str,
            nbf: i64,
            exp: i64,
        }
        let mut header = Header::new(Algorithm::RS256);
        header.x5t = Some(self.sha1_thumbprint.clone());
        header.typ = Some("JWT".into());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Proof {
            aud: "00000002-0000-0000-c000-000000000000",
            iss: application_object_id,
            nbf: now,
            exp: now + LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map(SecretString::from)
            .map_err(|e| EntraError::Config {
                setting: "certificate_key",
                problem: format!("signing the proof of possession failed ({e})"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};

    fn generated() -> (String, SecretString, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(vec!["kurir-test".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (
            cert.pem(),
            SecretString::from(key.serialize_pem()),
            key.public_key_pem(),
        )
    }

    fn verify(jwt: &str, public_pem: &str, alg: Algorithm) -> AssertionClaims {
        let mut v = Validation::new(alg);
        v.set_audience(&["https://login.example/t/oauth2/v2.0/token"]);
        v.set_issuer(&["client-1"]);
        v.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
        decode::<AssertionClaims>(
            jwt,
            &DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap(),
            &v,
        )
        .expect("the assertion verifies with the certificate's public key")
        .claims
    }

    #[test]
    fn rs256_assertion_verifies_and_carries_sha1_thumbprint() {
        let (cert, key, public) = generated();
        let c = CertificateCredential::from_pem(&cert, &key).unwrap();
        let jwt = c
            .assertion(
                AssertionAlg::Rs256,
                "client-1",
                "https://login.example/t/oauth2/v2.0/token",
            )
            .unwrap();
        let jwt = jwt.expose_secret();
        let h = decode_header(jwt).unwrap();
        assert_eq!(h.alg, Algorithm::RS256);
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        assert_eq!(
            h.x5t.as_deref(),
            Some(
                URL_SAFE_NO_PAD
                    .encode(sha1::Sha1::digest(der.as_ref()))
                    .as_str()
            )
        );
        assert!(h.x5t_s256.is_none());
        let claims = verify(jwt, &public, Algorithm::RS256);
        assert_eq!(claims.sub, "client-1");
        assert_eq!(claims.exp - claims.iat, 600);
        assert_eq!(claims.nbf, claims.iat);
        assert!(uuid::Uuid::parse_str(&claims.jti).is_ok());
        assert_eq!(c.thumbprint_hex().len(), 40);
    }

    #[test]
    fn ps256_assertion_verifies_and_carries_sha256_thumbprint() {
        let (cert, key, public) = generated();
        let c = CertificateCredential::from_pem(&cert, &key).unwrap();
        let a = c
            .assertion(
                AssertionAlg::Ps256,
                "client-1",
                "https://login.example/t/oauth2/v2.0/token",
            )
            .unwrap();
        let b = c
            .assertion(
                AssertionAlg::Ps256,
                "client-1",
                "https://login.example/t/oauth2/v2.0/token",
            )
            .unwrap();
        let h = decode_header(a.expose_secret()).unwrap();
        assert_eq!(h.alg, Algorithm::PS256);
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        assert_eq!(
            h.x5t_s256.as_deref(),
            Some(
                URL_SAFE_NO_PAD
                    .encode(sha2::Sha256::digest(der.as_ref()))
                    .as_str()
            )
        );
        let ca = verify(a.expose_secret(), &public, Algorithm::PS256);
        let cb = verify(b.expose_secret(), &public, Algorithm::PS256);
        assert_ne!(ca.jti, cb.jti, "every assertion needs its own jti");
    }

    #[test]
    fn a_foreign_key_does_not_verify() {
        let (cert, key, _) = generated();
        let (_, _, other_public) = generated();
        let c = CertificateCredential::from_pem(&cert, &key).unwrap();
        let jwt = c
            .assertion(
                AssertionAlg::Rs256,
                "client-1",
                "https://login.example/t/oauth2/v2.0/token",
            )
            .unwrap();
        let v = Validation::new(Algorithm::RS256);
        assert!(
            decode::<AssertionClaims>(
                jwt.expose_secret(),
                &DecodingKey::from_rsa_pem(other_public.as_bytes()).unwrap(),
                &v
            )
            .is_err()
        );
    }

    #[test]
    fn bad_pem_is_a_config_error_without_the_key_in_it() {
        let (cert, _, _) = generated();
        let secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRETGARBAGE\n-----END PRIVATE KEY-----";
        let err = CertificateCredential::from_pem(&cert, &SecretString::from(secret)).unwrap_err();
        assert!(matches!(
            err,
            EntraError::Config {
                setting: "certificate_key",
                ..
            }
        ));
        assert!(!err.to_string().contains("TOPSECRET"));
        let err =
            CertificateCredential::from_pem("not a cert", &SecretString::from(secret)).unwrap_err();
        assert!(matches!(
            err,
            EntraError::Config {
                setting: "certificate",
                ..
            }
        ));
    }
}
