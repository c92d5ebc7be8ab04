//! The emulator's own certificate authority and HTTPS server certificate.
//!
//! MSAL and azure-identity refuse non-https authorities, so the emulator must speak TLS with a
//! certificate clients can be told to trust. It keeps a CA (persisted in `{state_dir}/tls/`, so
//! a client configured once keeps trusting restarts until the CA nears the end of its short
//! life) and issues a fresh server certificate at
//! every start for whatever address it listens on. The server sends leaf + CA: rustls rejects
//! a self-signed CA certificate used directly as a server certificate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, SanType,
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

/// How long a new CA is valid. Short, because anyone holding its key can impersonate the
/// loopback names it is constrained to for as long as a client trusts it.
pub const CA_LIFETIME: time::Duration = time::Duration::days(30);
/// How long a server certificate is valid; one is issued at every start.
pub const LEAF_LIFETIME: time::Duration = time::Duration::days(14);
/// A CA found in the state dir with less than this left is replaced at start, so the leaf
/// issued now never outlives its CA.
const CA_RENEW_BEFORE: time::Duration = time::Duration::days(15);
/// Backdating for clocks a little behind ours.
const BACKDATE: time::Duration = time::Duration::hours(1);

impl Tls {
    /// Loads or creates the CA in `{state_dir}/tls` and issues a server certificate valid for
    /// `localhost`, the loopback addresses and `listen_ip`.
    ///
    /// The CA is name-constrained to what it serves (DNS `localhost`, 127.0.0.0/8, ::1 and a
    /// non-loopback `listen_ip`), lives [`CA_LIFETIME`], has a subject of its own (a random id:
    /// two emulators' CAs in one trust bundle must not look like the same issuer) and a Subject
    /// Key Identifier the leaf's Authority Key Identifier points at. A CA from the state dir
    /// that is about to expire, lacks these, or does not cover `listen_ip` is replaced (and a
    /// warning says clients must trust the new `ca.pem`).
    pub fn load_or_create(state_dir: &Path, listen_ip: IpAddr) -> Result<Tls, TlsError> {
        let dir = state_dir.join("tls");
        let ca_path = dir.join("ca.pem");
        let ca_key_path = dir.join("ca.key.pem");
        let now = OffsetDateTime::now_utc();
        let existing = if ca_path.exists() && ca_key_path.exists() {
            let pem = read_file(&ca_path)?;
            let key =
                KeyPair::from_pem(&read_file(&ca_key_path)?).map_err(|_| TlsError::BadCa {
                    path: ca_key_path.clone(),
                })?;
            match ca_unusable_because(&pem, listen_ip, now) {
                None => Some((pem, key)),
                Some(why) => {
                    tracing::warn!(
                        ca = %ca_path.display(),
                        "the emulator CA {why}; creating a new one (clients must trust the new ca.pem)"
                    );
                    None
                }
            }
        } else {
            None
        };
        let (ca_pem, ca_key) = match existing {
            Some(found) => found,
            None => {
                let key = KeyPair::generate()?;
                let cert = ca_params(listen_ip, now)?.self_signed(&key)?;
                // The key first: a ca.pem without its key would be replaced at the next start
                // anyway, while a fresh key next to an old ca.pem fails loudly (BadCa).
                write_file(&ca_key_path, &key.serialize_pem(), true)?;
                write_file(&ca_path, &cert.pem(), false)?;
                (cert.pem(), key)
            }
        };
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key).map_err(|_| TlsError::BadCa {
            path: ca_path.clone(),
        })?;
        let ca_der = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
            .map_err(|_| TlsError::BadCa {
                path: ca_path.clone(),
            })?
            .1
            .contents;

        let server_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(LEAF_DNS_NAMES.map(String::from).to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "Kurir Emulator");
        params
            .subject_alt_names
            .extend(served_ips(listen_ip).into_iter().map(SanType::IpAddress));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        // Points at the CA's Subject Key Identifier (read from ca.pem by Issuer), so a client
        // holding several CAs picks the right one without trying each.
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - BACKDATE;
        let ca_not_after = x509_parser::parse_x509_certificate(&ca_der)
            .map(|(_, c)| c.validity().not_after.to_datetime())
            .map_err(|_| TlsError::BadCa {
                path: ca_path.clone(),
            })?;
        params.not_after = (now + LEAF_LIFETIME).min(ca_not_after);
        let leaf = params.signed_by(&server_key, &issuer)?;

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

/// The DNS names in the server certificate (and the CA's permitted DNS subtree).
const LEAF_DNS_NAMES: [&str; 1] = ["localhost"];

/// The IP addresses in the server certificate: the loopback addresses, and `listen_ip` when it
/// is a specific other address.
fn served_ips(listen_ip: IpAddr) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    if !ips.contains(&listen_ip) && !listen_ip.is_unspecified() {
        ips.push(listen_ip);
    }
    ips
}

/// The subtrees the CA may issue for: DNS `localhost`, 127.0.0.0/8, ::1/128, and `listen_ip`
/// (/32 or /128) when it is a specific non-loopback address.
fn permitted_subtrees(listen_ip: IpAddr) -> Vec<GeneralSubtree> {
    let mut trees: Vec<GeneralSubtree> = LEAF_DNS_NAMES
        .iter()
        .map(|n| GeneralSubtree::DnsName(n.to_string()))
        .collect();
    trees.push(GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix(
        [127, 0, 0, 0],
        8,
    )));
    trees.push(GeneralSubtree::IpAddress(CidrSubnet::from_v6_prefix(
        Ipv6Addr::LOCALHOST.octets(),
        128,
    )));
    if !listen_ip.is_loopback() && !listen_ip.is_unspecified() {
        let prefix = if listen_ip.is_ipv4() { 32 } else { 128 };
        trees.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
            listen_ip, prefix,
        )));
    }
    trees
}

fn ca_params(listen_ip: IpAddr, now: OffsetDateTime) -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let id: u64 = rand::random();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Kurir emulator CA {id:016x}"));
    params.distinguished_name.push(
        DnType::OrganizationName,
        "Kurir (offline Entra ID emulator)",
    );
    // Path length 0: this CA signs server certificates, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // rcgen writes the Subject Key Identifier for a CA (SHA-256 of the key, truncated).
    params.key_identifier_method = rcgen::KeyIdMethod::Sha256;
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: permitted_subtrees(listen_ip),
        excluded_subtrees: Vec::new(),
    });
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_LIFETIME;
    Ok(params)
}

/// Why a CA found in the state dir must be replaced, or `None` when it is fine: it expires
/// within [`CA_RENEW_BEFORE`], was made before CAs had a Subject Key Identifier and name
/// constraints, or its constraints do not permit `listen_ip`.
fn ca_unusable_because(pem: &str, listen_ip: IpAddr, now: OffsetDateTime) -> Option<String> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(pem.as_bytes()) else {
        return Some("is not a PEM certificate".into());
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&pem.contents) else {
        return Some("is not an X.509 certificate".into());
    };
    let not_after = cert.validity().not_after.to_datetime();
    if not_after - now < CA_RENEW_BEFORE {
        return Some(format!("expires at {not_after}"));
    }
    let mut has_ski = false;
    let mut permitted = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(_) => has_ski = true,
            ParsedExtension::NameConstraints(nc) => permitted = nc.permitted_subtrees.clone(),
            _ => {}
        }
    }
    let Some(permitted) = permitted.filter(|_| has_ski) else {
        return Some(
            "has no name constraints or no Subject Key Identifier (made by an older version)"
                .into(),
        );
    };
    if listen_ip.is_loopback() || listen_ip.is_unspecified() {
        return None;
    }
    let covered = permitted.iter().any(|tree| match &tree.base {
        GeneralName::IPAddress(bytes) => ip_in_subtree(listen_ip, bytes),
        _ => false,
    });
    if covered {
        None
    } else {
        Some(format!("does not permit the listen address {listen_ip}"))
    }
}

/// Whether `ip` lies in a name-constraint IP subtree (address followed by mask, RFC 5280 4.2.1.10).
fn ip_in_subtree(ip: IpAddr, subtree: &[u8]) -> bool {
    let addr = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    if subtree.len() != addr.len() * 2 {
        return false;
    }
    let (base, mask) = subtree.split_at(addr.len());
    addr.iter()
        .zip(base)
        .zip(mask)
        .all(|((a, b), m)| a & m == b & m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CA key is created 0600: while CAs are created one after another, a watcher
    /// thread stats the key file and every file in the tls directory as fast as it can and
    /// never sees a private key readable by group or others (writing the key with the default
    /// mode and chmod'ing it afterwards left such a moment).
    #[cfg(unix)]
    #[test]
    fn emulator_ca_key_is_never_world_readable() {
        use std::os::unix::fs::PermissionsExt;
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..150).map(|i| root.path().join(i.to_string())).collect();
        let current = AtomicUsize::new(0);
        let done = AtomicBool::new(false);
        let exposed: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let looks = AtomicUsize::new(0);
        let open_to_others = |p: &Path| {
            std::fs::symlink_metadata(p)
                .map(|m| m.permissions().mode() & 0o077 != 0)
                .unwrap_or(false)
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                while !done.load(Ordering::Acquire) {
                    let tls = dirs[current.load(Ordering::Acquire)].join("tls");
                    let key = tls.join("ca.key.pem");
                    if open_to_others(&key) {
                        exposed.lock().unwrap().push(format!("{}", key.display()));
                    }
                    // Temporary files too: one holding the key must be private as well.
                    for entry in std::fs::read_dir(&tls).into_iter().flatten().flatten() {
                        let p = entry.path();
                        if open_to_others(&p)
                            && std::fs::read_to_string(&p).is_ok_and(|t| t.contains("PRIVATE KEY"))
                        {
                            exposed.lock().unwrap().push(format!("{}", p.display()));
                        }
                    }
                    looks.fetch_add(1, Ordering::Relaxed);
                }
            });
            for (i, dir) in dirs.iter().enumerate() {
                current.store(i, Ordering::Release);
                Tls::load_or_create(dir, IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
                // Right after creation: owner read/write only.
                let mode = std::fs::metadata(dir.join("tls/ca.key.pem"))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "ca.key.pem mode {mode:o}");
            }
            done.store(true, Ordering::Release);
        });
        assert!(looks.load(Ordering::Relaxed) > 0);
        let mut exposed = exposed.into_inner().unwrap();
        exposed.dedup();
        assert!(
            exposed.is_empty(),
            "a private key was readable by others: {exposed:?}"
        );
    }

    #[test]
    fn ip_subtrees_match_by_mask() {
        let v4 = [127, 0, 0, 0, 255, 0, 0, 0];
        assert!(ip_in_subtree("127.9.8.7".parse().unwrap(), &v4));
        assert!(!ip_in_subtree("128.0.0.1".parse().unwrap(), &v4));
        assert!(!ip_in_subtree("::1".parse().unwrap(), &v4));
    }
}
