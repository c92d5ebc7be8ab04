//! Minimal IMAP, POP3 and SMTP probes for Test connection: connect, TLS, XOAUTH2, and (IMAP)
//! list the folders, then log out. Nothing is read, moved or sent.
//!
//! A probe is deliberately not the intake or outbox connector: it must report the exact server
//! line at each stage (greeting, STARTTLS, AUTHENTICATE) so the admin learns *where* it broke,
//! and it must never leave a session half open on a production mailbox.
//!
//! IMAP and POP3 use implicit TLS (993/995, as Exchange Online and Kurir's intake do); SMTP
//! follows the `smtp_tls` setting (STARTTLS on 587 by default).

use kurir_settings::TlsMode;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(20);

/// Where a probe stopped, with the server's own words.
#[derive(Debug)]
pub enum ProbeError {
    /// No TCP connection or no TLS.
    Connect(String),
    /// The server refused the XOAUTH2 login; the text is its last line (and the decoded error
    /// challenge, when it sent one).
    AuthRejected(String),
    /// Anything else the server said that makes no sense for the protocol.
    Protocol(String),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Connect(s) | ProbeError::AuthRejected(s) | ProbeError::Protocol(s) => {
                f.write_str(s)
            }
        }
    }
}

/// What a successful IMAP probe found.
#[derive(Debug, Default)]
pub struct ImapFindings {
    pub folders: Vec<String>,
}

/// The SASL XOAUTH2 initial response.
pub fn xoauth2(user: &str, token: &str) -> String {
    B64.encode(format!("user={user}\x01auth=Bearer {token}\x01\x01"))
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

fn tls_connector(extra_ca_pem: Option<&str>) -> Result<tokio_rustls::TlsConnector, ProbeError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(pem) = extra_ca_pem {
        let mut reader = std::io::BufReader::new(pem.as_bytes());
        for cert in rustls_pemfile::certs(&mut reader).flatten() {
            roots.add(cert).map_err(|e| {
                ProbeError::Connect(format!("Extra CA certificate (ca_file) is not usable: {e}"))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ProbeError::Connect(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn tcp(host: &str, port: u16) -> Result<TcpStream, ProbeError> {
    match tokio::time::timeout(TIMEOUT, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(ProbeError::Connect(format!(
            "no connection to {host}:{port}: {e}"
        ))),
        Err(_) => Err(ProbeError::Connect(format!(
            "{host}:{port} did not answer within {} s",
            TIMEOUT.as_secs()
        ))),
    }
}

async fn tls<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    host: &str,
    port: u16,
    extra_ca_pem: Option<&str>,
) -> Result<tokio_rustls::client::TlsStream<S>, ProbeError> {
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|_| ProbeError::Connect(format!("'{host}' is not a valid server name")))?;
    tokio::time::timeout(
        TIMEOUT,
        tls_connector(extra_ca_pem)?.connect(name, stream),
    )
    .await
    .map_err(|_| ProbeError::Connect(format!("TLS handshake with {host}:{port} timed out")))?
    .map_err(|e| {
        ProbeError::Connect(format!(
            "TLS handshake with {host}:{port} failed: {e}. If the server uses a private CA (or the emulator's), set Extra CA certificate (ca_file)"
        ))
    })
}

struct Conn {
    io: BufReader<Box<dyn Stream>>,
}

impl Conn {
    fn new<S: Stream + 'static>(s: S) -> Conn {
        Conn {
            io: BufReader::new(Box::new(s)),
        }
    }

    async fn line(&mut self) -> Result<String, ProbeError> {
        let mut buf = String::new();
        let n = tokio::time::timeout(TIMEOUT, self.io.read_line(&mut buf))
            .await
            .map_err(|_| ProbeError::Protocol("the server stopped answering".into()))?
            .map_err(|e| ProbeError::Protocol(format!("reading from the server failed: {e}")))?;
        if n == 0 {
            return Err(ProbeError::Protocol(
                "the server closed the connection".into(),
            ));
        }
        Ok(buf.trim_end().to_owned())
    }

    async fn send(&mut self, line: &str) -> Result<(), ProbeError> {
        let w = self.io.get_mut();
        w.write_all(format!("{line}\r\n").as_bytes())
            .await
            .map_err(|e| ProbeError::Protocol(format!("writing to the server failed: {e}")))?;
        w.flush()
            .await
            .map_err(|e| ProbeError::Protocol(format!("writing to the server failed: {e}")))
    }

    /// Reads SMTP reply lines until the last one (`250 ` rather than `250-`).
    async fn smtp_reply(&mut self) -> Result<String, ProbeError> {
        let mut all = Vec::new();
        loop {
            let l = self.line().await?;
            let last = l.len() < 4 || l.as_bytes()[3] == b' ';
            all.push(l);
            if last {
                return Ok(all.join("\n"));
            }
        }
    }

    fn into_inner(self) -> Box<dyn Stream> {
        self.io.into_inner()
    }
}

/// Decodes the base64 JSON error challenge Exchange sends after a refused XOAUTH2.
fn decode_challenge(b64: &str) -> String {
    B64.decode(b64.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(|s| format!(" (server detail: {s})"))
        .unwrap_or_default()
}

/// IMAP: TLS, AUTHENTICATE XOAUTH2, LIST, LOGOUT.
pub async fn imap(
    host: &str,
    port: u16,
    extra_ca_pem: Option<&str>,
    user: &str,
    token: &str,
) -> Result<ImapFindings, ProbeError> {
    let stream = tls(tcp(host, port).await?, host, port, extra_ca_pem).await?;
    let mut c = Conn::new(stream);
    let greeting = c.line().await?;
    if !greeting.starts_with("* OK") {
        return Err(ProbeError::Protocol(format!(
            "unexpected IMAP greeting: {greeting}"
        )));
    }
    c.send(&format!("A1 AUTHENTICATE XOAUTH2 {}", xoauth2(user, token)))
        .await?;
    loop {
        let l = c.line().await?;
        if let Some(ch) = l.strip_prefix("+") {
            // An error challenge: answer with an empty line to get the tagged NO.
            let detail = decode_challenge(ch);
            c.send("").await?;
            let fin = c.line().await?;
            return Err(ProbeError::AuthRejected(format!("{fin}{detail}")));
        }
        if l.starts_with("A1 OK") {
            break;
        }
        if l.starts_with("A1 ") {
            return Err(ProbeError::AuthRejected(l));
        }
    }
    c.send("A2 LIST \"\" \"*\"").await?;
    let mut findings = ImapFindings::default();
    loop {
        let l = c.line().await?;
        if l.starts_with("A2 ") {
            break;
        }
        if let Some(rest) = l.strip_prefix("* LIST ") {
            // `(\HasNoChildren) "/" "INBOX"` or `... "/" Processed`: the name is last.
            let name = rest
                .rsplit_once(' ')
                .map(|(_, n)| n.trim_matches('"').to_owned())
                .unwrap_or_default();
            if !name.is_empty() {
                findings.folders.push(name);
            }
        }
    }
    let _ = c.send("A3 LOGOUT").await;
    Ok(findings)
}

/// POP3: TLS, AUTH XOAUTH2, QUIT.
pub async fn pop3(
    host: &str,
    port: u16,
    extra_ca_pem: Option<&str>,
    user: &str,
    token: &str,
) -> Result<(), ProbeError> {
    let stream = tls(tcp(host, port).await?, host, port, extra_ca_pem).await?;
    let mut c = Conn::new(stream);
    let greeting = c.line().await?;
    if !greeting.starts_with("+OK") {
        return Err(ProbeError::Protocol(format!(
            "unexpected POP3 greeting: {greeting}"
        )));
    }
    c.send("AUTH XOAUTH2").await?;
    let go = c.line().await?;
    if !go.starts_with('+') || go.starts_with("+OK") {
        return Err(ProbeError::AuthRejected(format!(
            "the server does not offer XOAUTH2: {go}"
        )));
    }
    c.send(&xoauth2(user, token)).await?;
    let mut l = c.line().await?;
    if let Some(ch) = l.strip_prefix("+ ") {
        let detail = decode_challenge(ch);
        c.send("").await?;
        l = format!("{}{detail}", c.line().await?);
    }
    let _ = c.send("QUIT").await;
    if l.starts_with("+OK") {
        Ok(())
    } else {
        Err(ProbeError::AuthRejected(l))
    }
}

/// SMTP: EHLO, STARTTLS (or implicit TLS), AUTH XOAUTH2, QUIT. `tls_mode` is the `smtp_tls`
/// setting: `starttls`, `tls` or `none`.
pub async fn smtp(
    host: &str,
    port: u16,
    tls_mode: TlsMode,
    extra_ca_pem: Option<&str>,
    user: &str,
    token: &str,
) -> Result<(), ProbeError> {
    // The token is a bearer token: without TLS anyone on the path could send as the mailbox
    // with it. Refused before connecting (settings validation refuses smtp_tls=none too).
    if tls_mode == TlsMode::None {
        return Err(ProbeError::Connect(format!(
            "SMTP encryption (smtp_tls) is {tls_mode}: Kurir never sends an access token (XOAUTH2) without TLS; set smtp_tls to starttls (port 587) or tls (port 465)"
        )));
    }
    let raw = tcp(host, port).await?;
    let mut c = if tls_mode == TlsMode::Tls {
        Conn::new(tls(raw, host, port, extra_ca_pem).await?)
    } else {
        Conn::new(raw)
    };
    let greeting = c.smtp_reply().await?;
    if !greeting.starts_with("220") {
        return Err(ProbeError::Protocol(format!(
            "unexpected SMTP greeting: {greeting}"
        )));
    }
    c.send("EHLO kurir.invalid").await?;
    let mut ehlo = c.smtp_reply().await?;
    if tls_mode == TlsMode::StartTls {
        c.send("STARTTLS").await?;
        let r = c.smtp_reply().await?;
        if !r.starts_with("220") {
            return Err(ProbeError::Connect(format!(
                "the server refused STARTTLS: {r}"
            )));
        }
        let inner = c.into_inner();
        c = Conn::new(tls(inner, host, port, extra_ca_pem).await?);
        c.send("EHLO kurir.invalid").await?;
        ehlo = c.smtp_reply().await?;
    }
    if !ehlo.to_ascii_uppercase().contains("XOAUTH2") {
        let _ = c.send("QUIT").await;
        return Err(ProbeError::AuthRejected(format!(
            "the server does not offer AUTH XOAUTH2 (EHLO: {})",
            ehlo.replace('\n', " | ")
        )));
    }
    c.send(&format!("AUTH XOAUTH2 {}", xoauth2(user, token)))
        .await?;
    let mut r = c.smtp_reply().await?;
    if let Some(ch) = r.strip_prefix("334 ") {
        let detail = decode_challenge(ch);
        c.send("").await?;
        r = format!("{}{detail}", c.smtp_reply().await?);
    }
    let _ = c.send("QUIT").await;
    if r.starts_with("235") {
        Ok(())
    } else {
        Err(ProbeError::AuthRejected(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test connection with smtp_tls=none: a plain SMTP server offering XOAUTH2 records what
    /// it receives, and must never see AUTH (the token) nor even a connection.
    #[tokio::test]
    async fn probe_never_sends_xoauth2_without_tls() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let rec = seen.clone();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            w.write_all(b"220 plain.example ESMTP\r\n").await.unwrap();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                rec.lock().unwrap().push(line.clone());
                let reply: &[u8] = if line.to_ascii_uppercase().starts_with("EHLO") {
                    b"250-plain.example\r\n250 AUTH XOAUTH2\r\n"
                } else if line.to_ascii_uppercase().starts_with("AUTH") {
                    b"235 2.7.0 ok\r\n"
                } else {
                    b"250 ok\r\n"
                };
                let _ = w.write_all(reply).await;
            }
        });
        let r = smtp(
            "127.0.0.1",
            port,
            TlsMode::None,
            None,
            "webshop@contoso.com",
            "bearer-token-that-must-stay-secret",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let seen = seen.lock().unwrap().clone();
        assert!(
            !seen
                .iter()
                .any(|l| l.to_ascii_uppercase().starts_with("AUTH")),
            "the token went out in clear text: {seen:?}"
        );
        let e = r.expect_err("refused").to_string();
        assert!(e.contains("smtp_tls") && e.contains("starttls"), "{e}");
        assert!(!e.contains("bearer-token"), "{e}");
    }

    #[test]
    fn xoauth2_matches_microsofts_example_shape() {
        let s = xoauth2(
            "test@contoso.onmicrosoft.com",
            "EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA",
        );
        let plain = String::from_utf8(B64.decode(s).unwrap()).unwrap();
        assert_eq!(
            plain,
            "user=test@contoso.onmicrosoft.com\x01auth=Bearer EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA\x01\x01"
        );
    }
}
