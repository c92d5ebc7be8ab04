//! The emulator's CA over real TLS: two emulators' CAs can sit in one trust bundle (rustls and
//! OpenSSL, which Python's ssl uses, both verify each server), and the CA is name-constrained
//! to the loopback names it serves and short-lived.

use std::net::IpAddr;
use std::sync::Arc;

use kurir_emulator::tls::{CA_LIFETIME, LEAF_LIFETIME};
use kurir_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

fn der_of(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .expect("ca.pem is PEM")
        .1
        .contents
}

/// The certificate chain the emulator presents, fetched with a rustls client trusting `ca_pem`.
async fn served_chain(emu: &RunningEmulator, ca_pem: &str) -> Vec<Vec<u8>> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(der_of(ca_pem)))
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let addr = emu.base_url().trim_start_matches("https://").to_string();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("the served chain verifies against the emulator's CA");
    tls.get_ref()
        .1
        .peer_certificates()
        .unwrap()
        .iter()
        .map(|c| c.to_vec())
        .collect()
}

fn ski(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
}

fn aki(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

/// OpenSSL's verdict (`openssl s_client`, what Python's ssl module uses underneath) on the
/// emulator at `base_url` when trusting exactly the certificates in `bundle`.
fn openssl_verifies(base_url: &str, bundle: &std::path::Path) -> Result<(), String> {
    let addr = base_url.trim_start_matches("https://");
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", addr, "-servername", "localhost"])
        .arg("-CAfile")
        .arg(bundle)
        .args(["-verify_return_error", "-verify_hostname", "localhost"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the openssl command runs (the mail stack installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() && text.contains("Verify return code: 0 (ok)") {
        Ok(())
    } else {
        Err(text)
    }
}

// Multi-threaded: the blocking `openssl` call must not stop the emulators' own tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_emulator_cas_in_one_bundle_both_verify() {
    let a = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let b = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let (ca_a, ca_b) = (a.ca_pem(), b.ca_pem());
    assert_ne!(ca_a, ca_b, "each emulator has a CA of its own");

    // One client trusting both CAs reaches each emulator.
    let certs = reqwest::Certificate::from_pem_bundle(format!("{ca_a}{ca_b}").as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only(certs)
        .build()
        .unwrap();
    for emu in [&a, &b] {
        let url = format!(
            "{}/common/v2.0/.well-known/openid-configuration",
            emu.base_url()
        );
        let resp = http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url} with both CAs trusted: {e:?}"));
        assert_eq!(resp.status(), 200, "{url}");
    }

    // OpenSSL picks an issuer by subject name (and key identifier): two CAs with one subject
    // and a leaf without an Authority Key Identifier made it check the leaf against the wrong
    // CA. Both orders of the bundle must work.
    let dir = tempfile::tempdir().unwrap();
    for (name, bundle) in [
        ("ab.pem", format!("{ca_a}{ca_b}")),
        ("ba.pem", format!("{ca_b}{ca_a}")),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bundle).unwrap();
        for emu in [&a, &b] {
            let (url, bundle) = (emu.base_url(), path.clone());
            let verdict = tokio::task::spawn_blocking(move || openssl_verifies(&url, &bundle))
                .await
                .unwrap();
            if let Err(text) = verdict {
                panic!(
                    "OpenSSL with {name} did not verify {}:\n{text}",
                    emu.base_url()
                );
            }
        }
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn emulator_ca_is_name_constrained_and_short_lived() {
    let emu = Emulator::start(EmulatorConfig::demo()).await.unwrap();
    let ca_pem = emu.ca_pem();
    let ca_der = der_of(&ca_pem);
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    let now = OffsetDateTime::now_utc();

    // A subject of its own.
    let cn = ca
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap()
        .to_string();
    assert!(
        cn.starts_with("Kurir emulator CA ") && cn.len() > "Kurir emulator CA ".len() + 8,
        "{cn}"
    );

    // Short-lived.
    let not_after = ca.validity().not_after.to_datetime();
    assert!(not_after <= now + CA_LIFETIME, "CA valid until {not_after}");
    assert!(CA_LIFETIME <= time::Duration::days(31));
    assert!(not_after > now + time::Duration::days(15));

    // A CA for leaves only, with a key identifier.
    let bc = ca.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca);
    assert_eq!(bc.value.path_len_constraint, Some(0));
    let ca_ski = ski(&ca).expect("the CA has a Subject Key Identifier");

    // Name constraints: critical, permitting localhost, 127.0.0.0/8 and ::1 only.
    let nc = ca
        .extensions()
        .iter()
        .find(|e| matches!(e.parsed_extension(), ParsedExtension::NameConstraints(_)))
        .expect("the CA has name constraints");
    assert!(
        nc.critical,
        "name constraints are critical (RFC 5280 4.2.1.10)"
    );
    let ParsedExtension::NameConstraints(nc) = nc.parsed_extension() else {
        unreachable!()
    };
    assert!(nc.excluded_subtrees.is_none());
    let permitted: Vec<String> = nc
        .permitted_subtrees
        .as_ref()
        .unwrap()
        .iter()
        .map(|t| match &t.base {
            GeneralName::DNSName(d) => format!("dns:{d}"),
            GeneralName::IPAddress(b) => format!("ip:{}", hex::encode(b)),
            other => format!("other:{other:?}"),
        })
        .collect();
    assert_eq!(
        permitted,
        [
            "dns:localhost".to_string(),
            format!("ip:{}", hex::encode([127, 0, 0, 0, 255, 0, 0, 0])),
            format!(
                "ip:{}{}",
                hex::encode(std::net::Ipv6Addr::LOCALHOST.octets()),
                hex::encode([0xffu8; 16])
            ),
        ]
    );

    // The leaf it serves: shorter still, inside the CA's life, pointing at the CA's key.
    let chain = served_chain(&emu, &ca_pem).await;
    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    assert_eq!(aki(&leaf), Some(ca_ski), "the leaf's AKI is the CA's SKI");
    let leaf_until = leaf.validity().not_after.to_datetime();
    assert!(leaf_until <= now + LEAF_LIFETIME && leaf_until <= not_after);
    assert!(LEAF_LIFETIME < CA_LIFETIME);
    assert!(
        !leaf
            .basic_constraints()
            .unwrap()
            .is_some_and(|b| b.value.ca)
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn an_expiring_or_unconstrained_ca_in_a_reused_state_dir_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = EmulatorConfig {
        state_dir: Some(dir.path().to_path_buf()),
        ..EmulatorConfig::demo()
    };
    let first = Emulator::start(cfg.clone()).await.unwrap();
    let ca1 = first.ca_pem();
    first.shutdown().await;

    // A restart keeps a CA that is still good: clients configured once keep trusting it.
    let second = Emulator::start(cfg.clone()).await.unwrap();
    assert_eq!(second.ca_pem(), ca1);
    second.shutdown().await;

    // A CA as older versions made it (10 years, no name constraints) is replaced.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Kurir Emulator CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    params.not_after = OffsetDateTime::now_utc() + time::Duration::days(3650);
    let old = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("tls/ca.pem"), old.pem()).unwrap();
    std::fs::write(dir.path().join("tls/ca.key.pem"), key.serialize_pem()).unwrap();
    let third = Emulator::start(cfg.clone()).await.unwrap();
    let ca3 = third.ca_pem();
    assert_ne!(ca3, old.pem());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("tls/ca.pem")).unwrap(),
        ca3
    );
    served_chain(&third, &ca3).await;
    third.shutdown().await;

    // So is one about to expire (less than the leaf's lifetime left).
    params.not_after = OffsetDateTime::now_utc() + time::Duration::days(2);
    let expiring = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("tls/ca.pem"), expiring.pem()).unwrap();
    std::fs::write(dir.path().join("tls/ca.key.pem"), key.serialize_pem()).unwrap();
    let fourth = Emulator::start(cfg).await.unwrap();
    let ca4 = fourth.ca_pem();
    assert_ne!(ca4, expiring.pem());
    let der4 = der_of(&ca4);
    let (_, c) = X509Certificate::from_der(&der4).unwrap();
    assert!(
        c.validity().not_after.to_datetime() > OffsetDateTime::now_utc() + time::Duration::days(15)
    );
    served_chain(&fourth, &ca4).await;
    fourth.shutdown().await;
}

/// A listen address outside loopback is in the leaf and in the CA's constraints (the address
/// a client dials must verify).
#[test]
fn a_specific_listen_address_is_permitted_by_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    let tls = kurir_emulator::tls::Tls::load_or_create(dir.path(), ip).unwrap();
    let der = der_of(&tls.ca_pem);
    let (_, ca) = X509Certificate::from_der(&der).unwrap();
    let has = ca.extensions().iter().any(|e| match e.parsed_extension() {
        ParsedExtension::NameConstraints(nc) => nc
            .permitted_subtrees
            .iter()
            .flatten()
            .any(|t| t.base == GeneralName::IPAddress(&[192, 0, 2, 7, 255, 255, 255, 255])),
        _ => false,
    });
    assert!(has);
    // Started again on loopback, the same CA still serves (loopback is always permitted).
    let again =
        kurir_emulator::tls::Tls::load_or_create(dir.path(), "127.0.0.1".parse().unwrap()).unwrap();
    assert_eq!(again.ca_pem, tls.ca_pem);
    // On yet another address it is replaced.
    let other =
        kurir_emulator::tls::Tls::load_or_create(dir.path(), "192.0.2.8".parse().unwrap()).unwrap();
    assert_ne!(other.ca_pem, tls.ca_pem);
}
