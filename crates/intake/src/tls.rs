//! TLS for IMAP and POP3: the system's trusted roots plus, when the account sets one, the
//! Extra CA certificate (`ca_file`) — an on-premises server's CA, or the test stack's CA.
//! Certificates are always verified; there is deliberately no "accept any certificate" switch.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::IntakeError;

/// The platform's trusted roots, read once per process: reading and parsing the system's
/// certificate directory took longer than the TLS handshake and the sign-in together, on every
/// connection (and intake makes two per pass).
fn platform_roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        // Missing platform roots are not fatal: with an extra CA the private server still works.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        roots
    })
}

/// Builds a connector trusting the platform roots and `ca_file` (read afresh each time, so a
/// replaced Extra CA file takes effect at the next connection).
pub fn connector(ca_file: Option<&Path>, server: &str) -> Result<TlsConnector, IntakeError> {
    let mut roots = platform_roots().clone();
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| IntakeError::Tls {
            server: server.to_owned(),
            detail: format!("the Extra CA file {} cannot be read: {e}", path.display()),
        })?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
            if roots.add(cert).is_ok() {
                added += 1;
            }
        }
        if added == 0 {
            return Err(IntakeError::Tls {
                server: server.to_owned(),
                detail: format!(
                    "the Extra CA file {} holds no PEM certificate",
                    path.display()
                ),
            });
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| IntakeError::Tls {
            server: server.to_owned(),
            detail: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// What TLS runs over: the TCP stream read through a large buffer. rustls asks the socket for
/// 4 KiB at a time, so a bulk FETCH of 123 MB was 30,000 `recvfrom` calls; through the buffer
/// it is a few large reads, and rustls's small reads are memory copies.
pub type Socket = tokio::io::BufReader<TcpStream>;
/// An implicit-TLS connection to a mail server.
pub type TlsSocket = TlsStream<Socket>;

/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 256 * 1024;

/// Connects to `host:port` with implicit TLS (IMAPS 993, POP3S 995).
pub async fn connect(
    protocol: &'static str,
    host: &str,
    port: u16,
    ca_file: Option<&Path>,
) -> Result<TlsSocket, IntakeError> {
    let server = format!("{host}:{port}");
    let tcp = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| IntakeError::Connect {
        protocol,
        server: server.clone(),
        detail: "no answer within 30 s".into(),
    })?
    .map_err(|e| IntakeError::Connect {
        protocol,
        server: server.clone(),
        detail: e.to_string(),
    })?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(host.to_owned()).map_err(|_| IntakeError::Tls {
        server: server.clone(),
        detail: format!("'{host}' is not a valid server name"),
    })?;
    // File reads (the Extra CA; the system's roots the first time): not on an async thread.
    let ca = ca_file.map(Path::to_owned);
    let for_worker = server.clone();
    let connector = tokio::task::spawn_blocking(move || connector(ca.as_deref(), &for_worker))
        .await
        .map_err(|e| IntakeError::Tls {
            server: server.clone(),
            detail: format!("loading the trusted certificates stopped unexpectedly: {e}"),
        })??;
    connector
        .connect(name, tokio::io::BufReader::with_capacity(READ_BUFFER, tcp))
        .await
        .map_err(|e| IntakeError::Tls {
            server,
            detail: e.to_string(),
        })
}
