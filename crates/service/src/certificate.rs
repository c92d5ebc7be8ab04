//! The certificate credential Kurir makes for its app registration (issue #17.1: recommended
//! over a client secret): an RSA-2048 key generated here, never leaving Kurir except encrypted
//! in its store, and a self-signed certificate whose public part alone is uploaded to Entra ID
//! (Entra accepts only RSA certificates for client assertions).

use base64::Engine;
use secrecy::SecretString;

/// A certificate made for the app.
pub struct NewCertificate {
    /// The PEM certificate (public), stored in the setting `certificate`.
    pub pem: String,
    /// The PEM private key, stored encrypted in `certificate_key`.
    pub key_pem: SecretString,
    /// The certificate's DER in base64: the `key` of Graph's `keyCredential`.
    pub der_base64: String,
    pub not_after: time::OffsetDateTime,
}

/// Generates a key and a certificate for `common_name` valid `days` from now. The start is an
/// hour back, so a server clock a little behind Entra's does not make it "not yet valid".
pub fn generate(common_name: &str, days: u32) -> Result<NewCertificate, rcgen::Error> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let now = time::OffsetDateTime::now_utc();
    let not_after = (now + time::Duration::days(i64::from(days.clamp(1, 730))))
        .replace_nanosecond(0)
        .unwrap_or(now);
    params.not_before = now - time::Duration::hours(1);
    params.not_after = not_after;
    let cert = params.self_signed(&key)?;
    Ok(NewCertificate {
        pem: cert.pem(),
        key_pem: SecretString::from(key.serialize_pem()),
        der_base64: base64::engine::general_purpose::STANDARD.encode(cert.der()),
        not_after,
    })
}

/// When the PEM certificate stops being valid.
pub fn not_after(pem: &str) -> Option<time::OffsetDateTime> {
    kurir_web::alarms::certificate_not_after_instant(pem)
}
