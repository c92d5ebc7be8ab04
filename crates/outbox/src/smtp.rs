//! Sending over SMTP with lettre: XOAUTH2 for Exchange Online, or a classic server with an
//! optional username and password (method `smtp`).
//!
//! Connections are pooled and reused: one lettre transport per (server, login), with up to
//! `pool_size` connections. lettre fixes the credentials when a transport is built, so when the
//! access token rotates (a new token string from the token client) the transport is rebuilt and
//! the old one, with its authenticated connections, is shut down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kurir_entra::TokenClient;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{AsyncSmtpTransport, PoolConfig};
use lettre::{Address, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::compose::strip_bcc;
use crate::error::{SendError, smtp_advice};
use crate::sender::{Route, Sender, SmtpTls};

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// The pooled transports, keyed by server and login; each remembers the fingerprint of the
/// credentials it was built with.
pub struct SmtpPool {
    pool_size: u32,
    timeout: Duration,
    transports: Mutex<HashMap<String, (String, Arc<Transport>)>>,
}

impl SmtpPool {
    pub fn new(pool_size: u32, timeout: Duration) -> SmtpPool {
        SmtpPool {
            pool_size: pool_size.max(1),
            timeout,
            transports: Mutex::new(HashMap::new()),
        }
    }

    /// Sends one message; the reply line of the server on success.
    pub async fn send(
        &self,
        tokens: &TokenClient,
        sender: &Sender,
        recipients: &[String],
        raw: &[u8],
    ) -> Result<String, SendError> {
        let (fp, host, port, tls, creds, mechanism, login_for_key) = match &sender.route {
            Route::SmtpOauth {
                host,
                port,
                tls,
                login,
                token,
            } => {
                let t = tokens
                    .token(token)
                    .await
                    .map_err(|source| SendError::Token {
                        user: sender.user.clone(),
                        source,
                    })?;
                let secret = t.secret.expose_secret().to_owned();
                let fp = fingerprint(&[login, &secret]);
                let creds = Credentials::new(login.clone(), secret);
                (
                    fp,
                    host,
                    *port,
                    *tls,
                    Some(creds),
                    Mechanism::Xoauth2,
                    login.clone(),
                )
            }
            Route::SmtpClassic {
                host,
                port,
                tls,
                credentials,
            } => {
                let creds = credentials
                    .as_ref()
                    .map(|(u, p)| Credentials::new(u.clone(), p.expose_secret().to_owned()));
                let login = credentials
                    .as_ref()
                    .map(|(u, _)| u.clone())
                    .unwrap_or_default();
                let fp = match credentials {
                    Some((u, p)) => fingerprint(&[u, p.expose_secret()]),
                    None => fingerprint(&[]),
                };
                (fp, host, *port, *tls, creds, Mechanism::Plain, login)
            }
            Route::Graph { .. } => unreachable!("the worker sends Graph routes through Graph"),
        };
        let server = format!("{host}:{port}");
        let transport = self
            .transport(
                fp,
                host,
                port,
                tls,
                creds,
                mechanism,
                &login_for_key,
                sender,
            )
            .await?;
        let from: Address = sender.from.parse().map_err(|e| {
            SendError::Settings(format!(
                "the From address '{}' of {} is not valid ({e}); fix the user's E-postadress",
                sender.from, sender.user
            ))
        })?;
        let to = recipients
            .iter()
            .map(|r| {
                r.parse::<Address>()
                    .map_err(|e| SendError::Message(format!("recipient '{r}' is not valid ({e})")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let envelope = Envelope::new(Some(from), to)
            .map_err(|e| SendError::Message(format!("no usable envelope ({e})")))?;
        let data = strip_bcc(raw);
        match transport.send_raw(&envelope, &data).await {
            Ok(resp) => Ok(format!(
                "{} {}",
                resp.code(),
                resp.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) => Err(classify(&server, &e)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn transport(
        &self,
        fingerprint: String,
        host: &str,
        port: u16,
        tls: SmtpTls,
        creds: Option<Credentials>,
        mechanism: Mechanism,
        login: &str,
        sender: &Sender,
    ) -> Result<Arc<Transport>, SendError> {
        let key = format!("{host}:{port}:{login}");
        let fingerprint =
            fingerprint + &self::fingerprint(&[sender.ca_pem.as_deref().unwrap_or("")]);
        let mut map = self.transports.lock().await;
        if let Some((fp, t)) = map.get(&key) {
            if *fp == fingerprint {
                return Ok(t.clone());
            }
        }
        let params = {
            let mut b = TlsParameters::builder(host.to_owned());
            if let Some(pem) = &sender.ca_pem {
                // ca_file may be a bundle (e.g. the emulator's CA and the mail server's CA):
                // lettre reads one certificate per call.
                for block in pem_blocks(pem) {
                    let cert = Certificate::from_pem(block.as_bytes()).map_err(|e| {
                        SendError::Settings(format!(
                            "the Extra CA certificate (ca_file) is not a PEM certificate ({e})"
                        ))
                    })?;
                    b = b.add_root_certificate(cert);
                }
            }
            b.build_rustls().map_err(|e| SendError::Smtp {
                server: format!("{host}:{port}"),
                what: format!("cannot be set up for TLS ({e})"),
                code: None,
                transient: false,
                advice: "check smtp_tls and ca_file".into(),
            })?
        };
        let mut b = Transport::builder_dangerous(host)
            .port(port)
            .timeout(Some(self.timeout))
            .tls(match tls {
                SmtpTls::StartTls => Tls::Required(params),
                SmtpTls::Implicit => Tls::Wrapper(params),
                SmtpTls::None => Tls::None,
            })
            .pool_config(
                PoolConfig::new()
                    .max_size(self.pool_size)
                    .idle_timeout(Duration::from_secs(60)),
            );
        if let Some(c) = creds {
            b = b
                .credentials(c)
                .authentication(vec![mechanism, Mechanism::Login]);
            if mechanism == Mechanism::Xoauth2 {
                b = b.authentication(vec![Mechanism::Xoauth2]);
            }
        }
        let t = Arc::new(b.build());
        if let Some((_, old)) = map.insert(key, (fingerprint, t.clone())) {
            // The old token's connections: close them in the background.
            tokio::spawn(async move { old.shutdown().await });
        }
        Ok(t)
    }
}

/// The `CERTIFICATE` blocks of a PEM bundle.
fn pem_blocks(pem: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    pem.split_inclusive(END)
        .filter_map(|chunk| {
            let start = chunk.find("-----BEGIN CERTIFICATE-----")?;
            chunk.ends_with(END).then(|| chunk[start..].to_owned())
        })
        .collect()
}

/// A digest of credentials: tells whether they changed without keeping them (or logging them).
fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..16])
}

fn code_of(e: &lettre::transport::smtp::Error) -> Option<u16> {
    e.status().and_then(|c| c.to_string().parse().ok())
}

/// lettre's error questions (`is_transient`, `is_permanent`) decide, with advice per code.
fn classify(server: &str, e: &lettre::transport::smtp::Error) -> SendError {
    let code = code_of(e);
    let text = e.to_string();
    let transient = if e.is_permanent() {
        false
    } else {
        // 4xx, timeouts, refused connections, TLS handshakes cut off: all may pass.
        true
    };
    SendError::Smtp {
        server: server.to_owned(),
        what: format!("refused or failed: {text}"),
        code,
        transient,
        advice: smtp_advice(code, &text),
    }
}
