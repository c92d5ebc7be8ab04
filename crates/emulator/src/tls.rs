//! The emulator's own certificate authority and HTTPS server certificate.
//!
//! MSAL and azure-identity refuse non-https authorities, so the emulator must speak TLS with a
//! certificate clients can be told to trust. It keeps a CA (persisted in `{state_dir}/tls/`, so
//! a client configured once keeps trusting restarts) and issues a fresh server certificate at
//! every start for whatever address it listens on. The server sends leaf + CA: rustls rejects
//! a self-signed CA certificate used directly as a server certificate.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

use crate::keys::{KeyError, read_file, write_file};

/// The CA and the server configuration built from it.
pub struct Tls {
    pub ca_pem: String,
    pub ca_path: PathBuf,
    pub server_config: Arc<rustls::ServerConfig>,
}

/// A TLS setup problem, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("issuing the server certificate failed: {0}")]
    Issue(#[from] rcgen::Error),
    #[error("{path} is not a usable CA (certificate + key); delete {dir} and restart to create a new CA (clients must then trust the new ca.pem)", dir = .path.parent().map(|p| p.display().to_string()).unwrap_or_default())]
    BadCa { path: PathBuf },
    #[error("building the TLS server configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
}

impl Tls {
    /// Loads or creates the CA in `{state_dir}/tls` and issues a server certificate valid for
    /// `localhost`, the loopback addresses and `listen_ip`.
    pub fn load_or_create(state_dir: &Path, listen_ip: IpAddr) -> Result<Tls, TlsError> {
        let dir = state_dir.join("tls");
        let ca_path = dir.join("ca.pem");
        let ca_key_path = dir.join("ca.key.pem");
        let (ca_pem, ca_key) = if ca_path.exists() && ca_key_path.exists() {
            let pem = read_file(&ca_path)?;
            let key =
                KeyPair::from_pem(&read_file(&ca_key_path)?).map_err(|_| TlsError::BadCa {
                    path: ca_key_path.clone(),
                })?;
            (pem, key)
        } else {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params
                .distinguished_name
                .push(DnType::CommonName, "Kurir Emulator CA");
            params.distinguished_name.push(
                DnType::OrganizationName,
                "Kurir (offline Entra ID emulator)",
            );
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let now = OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::days(1);
            params.not_after = now + time::Duration::days(3650);
            let cert = params.self_signed(&key)?;
            write_file(&ca_key_path, &key.serialize_pem(), true)?;
            write_file(&ca_path, &cert.pem(), false)?;
            (cert.pem(), key)
        };
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key).map_err(|_| TlsError::BadCa {
            path: ca_path.clone(),
        })?;

        let server_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "Kurir Emulator");
        let mut ips: Vec<IpAddr> = vec![IpAddr::from([127, 0, 0, 1]), "::1".parse().unwrap()];
        if !ips.contains(&listen_ip) && !listen_ip.is_unspecified() {
            ips.push(listen_ip);
        }
        params
            .subject_alt_names
            .extend(ips.into_iter().map(SanType::IpAddress));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(365);
        let leaf = params.signed_by(&server_key, &issuer)?;

        let ca_der = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
            .map_err(|_| TlsError::BadCa {
                path: ca_path.clone(),
            })?
            .1
            .contents;
        let chain = vec![leaf.der().clone(), CertificateDer::from(ca_der)];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            ca_pem,
            ca_path,
            server_config: Arc::new(config),
        })
    }
}
