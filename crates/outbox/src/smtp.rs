//! Sending over SMTP with lettre's SMTP connection: XOAUTH2 for Exchange Online, or a classic
//! server with an optional username and password (method `smtp`).
//!
//! Connections are pooled and reused per (server, login): at most `pool_size` connections and
//! as many messages on their way at once. A connection remembers a fingerprint of the
//! credentials it authenticated with; when the access token rotates, connections with the old
//! one are closed as they come up and new ones log in with the new token. An idle connection
//! is checked with NOOP only when it sat unused for a while; otherwise a connection that the
//! server closed shows at MAIL FROM, before anything was handed over, and the message is tried
//! once more on a fresh connection.
//!
//! **The point of no return.** A server takes responsibility for a message when it has the
//! final `.` of DATA: it commits the message and only then answers 250. If Kurir dies between
//! sending that dot and recording "sent", the message is sent again later (a duplicate). MAIL,
//! RCPT and DATA run in parallel on the pooled connections, but the final stretch — body, dot,
//! the server's answer and recording the outcome — is taken by one message at a time per
//! process ([`SmtpPool::send`] hands the [`Gate`] to the worker, which drops it after the
//! outcome committed). So a `kill -9` duplicates at most one message, whatever the
//! concurrency. Messages over [`GATE_MAX_BYTES`] skip the gate, so that a long upload does
//! not hold up every other message.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kurir_entra::TokenClient;
use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use crate::compose::strip_bcc;
use crate::error::{SendError, smtp_advice};
use crate::sender::{Route, Sender, SmtpTls};

/// Messages up to this size pass the point of no return one at a time.
pub const GATE_MAX_BYTES: usize = 1024 * 1024;

/// An idle connection older than this is checked with NOOP before it is used.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(10);
/// Idle connections are closed after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Held from the final stretch of one message's DATA until its outcome is recorded.
pub type Gate = OwnedMutexGuard<()>;

struct Idle {
    conn: AsyncSmtpConnection,
    fingerprint: String,
    since: Instant,
}

struct Server {
    idle: Mutex<Vec<Idle>>,
    slots: Arc<Semaphore>,
}

/// The pooled connections, keyed by server and login.
pub struct SmtpPool {
    pool_size: u32,
    timeout: Duration,
    servers: Mutex<HashMap<String, Arc<Server>>>,
    gate: Arc<Mutex<()>>,
    hello: ClientId,
}

/// How to reach and log in to a server, for one message.
struct Login<'a> {
    host: &'a str,
    port: u16,
    tls: SmtpTls,
    creds: Option<Credentials>,
    mechanisms: &'static [Mechanism],
    fingerprint: String,
    ca_pem: Option<&'a str>,
}

impl SmtpPool {
    pub fn new(pool_size: u32, timeout: Duration) -> SmtpPool {
        SmtpPool {
            pool_size: pool_size.max(1),
            timeout,
            servers: Mutex::new(HashMap::new()),
            gate: Arc::new(Mutex::new(())),
            hello: ClientId::default(),
        }
    }

    /// Sends one message; the reply line of the server on success, with the [`Gate`] (for
    /// messages up to [`GATE_MAX_BYTES`]) that the caller drops once it recorded the outcome.
    pub async fn send(
        &self,
        tokens: &TokenClient,
        sender: &Sender,
        recipients: &[String],
        raw: &[u8],
    ) -> Result<(String, Option<Gate>), SendError> {
        let (login_for_key, login) = match &sender.route {
            Route::SmtpOauth {
                host,
                port,
                tls,
                login,
                token,
            } => {
                // Before the token is even fetched: it is a bearer token, and without TLS it
                // would cross the network readable by anyone on the path.
                if *tls == SmtpTls::None {
                    return Err(SendError::Settings(format!(
                        "{}: SMTP encryption (smtp_tls) is none, and Kurir never sends an Exchange Online access token (XOAUTH2) without TLS. Set smtp_tls to starttls (port 587) or tls (port 465) where it is none (`kurir settings show` tells where), e.g. `kurir settings set smtp_tls=starttls`",
                        sender.user
                    )));
                }
                let t = tokens
                    .token(token)
                    .await
                    .map_err(|source| SendError::Token {
                        user: sender.user.clone(),
                        source,
                    })?;
                let secret = t.secret.expose_secret().to_owned();
                let fingerprint =
                    fingerprint(&[login, &secret, sender.ca_pem.as_deref().unwrap_or("")]);
                (
                    login.clone(),
                    Login {
                        host,
                        port: *port,
                        tls: *tls,
                        creds: Some(Credentials::new(login.clone(), secret)),
                        mechanisms: &[Mechanism::Xoauth2],
                        fingerprint,
                        ca_pem: sender.ca_pem.as_deref(),
                    },
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
                let user = credentials
                    .as_ref()
                    .map(|(u, _)| u.clone())
                    .unwrap_or_default();
                let fingerprint = match credentials {
                    Some((u, p)) => {
                        fingerprint(&[u, p.expose_secret(), sender.ca_pem.as_deref().unwrap_or("")])
                    }
                    None => fingerprint(&[sender.ca_pem.as_deref().unwrap_or("")]),
                };
                (
                    user,
                    Login {
                        host,
                        port: *port,
                        tls: *tls,
                        creds,
                        mechanisms: &[Mechanism::Plain, Mechanism::Login],
                        fingerprint,
                        ca_pem: sender.ca_pem.as_deref(),
                    },
                )
            }
            Route::Graph { .. } => unreachable!("the worker sends Graph routes through Graph"),
        };
        let server_name = format!("{}:{}", login.host, login.port);
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
        if to.is_empty() {
            return Err(SendError::Message("it has no recipients".into()));
        }
        let data = strip_bcc(raw);

        let server = {
            let mut map = self.servers.lock().await;
            map.entry(format!("{server_name}:{login_for_key}"))
                .or_insert_with(|| {
                    Arc::new(Server {
                        idle: Mutex::new(Vec::new()),
                        slots: Arc::new(Semaphore::new(self.pool_size as usize)),
                    })
                })
                .clone()
        };
        let _slot: OwnedSemaphorePermit = server
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");

        // A reused connection the server has closed fails at MAIL FROM, before the message
        // was handed over: then once more on a fresh one.
        let mut fresh_only = false;
        loop {
            let (mut conn, reused) = self.connection(&server, &login, fresh_only).await?;
            let envelope =
                tokio::time::timeout(self.timeout, envelope(&mut conn, &from, &to, &data)).await;
            match envelope {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    conn.abort().await;
                    if reused && !fresh_only && e.status().is_none() {
                        fresh_only = true;
                        continue;
                    }
                    return Err(classify(&server_name, &e));
                }
                Err(_) => {
                    conn.abort().await;
                    return Err(timed_out(&server_name, "in MAIL/RCPT/DATA"));
                }
            }
            let gate = if data.len() <= GATE_MAX_BYTES {
                Some(self.gate.clone().lock_owned().await)
            } else {
                None
            };
            let answer = tokio::time::timeout(self.timeout, conn.message(&data)).await;
            return match answer {
                Ok(Ok(resp)) => {
                    let reply = format!(
                        "{} {}",
                        resp.code(),
                        resp.message().collect::<Vec<_>>().join(" ")
                    );
                    let mut idle = server.idle.lock().await;
                    idle.push(Idle {
                        conn,
                        fingerprint: login.fingerprint.clone(),
                        since: Instant::now(),
                    });
                    Ok((reply, gate))
                }
                Ok(Err(e)) => {
                    conn.abort().await;
                    Err(classify(&server_name, &e))
                }
                Err(_) => {
                    conn.abort().await;
                    Err(timed_out(&server_name, "after the message data"))
                }
            };
        }
    }

    /// An idle connection with the current credentials, or a new one (connected, TLS, logged
    /// in). Says whether it was reused.
    async fn connection(
        &self,
        server: &Server,
        login: &Login<'_>,
        fresh_only: bool,
    ) -> Result<(AsyncSmtpConnection, bool), SendError> {
        if !fresh_only {
            loop {
                let next = server.idle.lock().await.pop();
                let Some(mut idle) = next else { break };
                let age = idle.since.elapsed();
                if idle.fingerprint != login.fingerprint || age > IDLE_TIMEOUT {
                    // Rotated credentials or too old: close it in the background.
                    tokio::spawn(async move { idle.conn.abort().await });
                    continue;
                }
                if age > CHECK_IDLE_AFTER && !idle.conn.test_connected().await {
                    idle.conn.abort().await;
                    continue;
                }
                return Ok((idle.conn, true));
            }
        }
        let server_name = format!("{}:{}", login.host, login.port);
        let params = tls_parameters(login.host, login.port, login.ca_pem)?;
        let connect = async {
            let mut conn = if login.tls == SmtpTls::Implicit {
                AsyncSmtpConnection::connect_tokio1(
                    (login.host, login.port),
                    Some(self.timeout),
                    &self.hello,
                    Some(params.clone()),
                    None,
                )
                .await
                .map_err(|e| classify(&server_name, &e))?
            } else {
                // Our own socket, for TCP_NODELAY: the final ".\r\n" is a small write right
                // after the body, which Nagle's algorithm would hold back until the server's
                // delayed ACK (tens of milliseconds per message).
                let tcp = tokio::net::TcpStream::connect((login.host, login.port))
                    .await
                    .map_err(|e| SendError::Smtp {
                        server: server_name.clone(),
                        what: format!("cannot be reached ({e})"),
                        code: None,
                        transient: true,
                        advice: smtp_advice(None, ""),
                    })?;
                let _ = tcp.set_nodelay(true);
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
                    .await
                    .map_err(|e| classify(&server_name, &e))?
            };
            if login.tls == SmtpTls::StartTls {
                if !conn.server_info().supports_feature(Extension::StartTls) {
                    conn.abort().await;
                    return Err(SendError::Smtp {
                        server: server_name.clone(),
                        what: "does not offer STARTTLS".into(),
                        code: None,
                        transient: false,
                        advice:
                            "set smtp_tls to the encryption the server offers (tls for port 465)"
                                .into(),
                    });
                }
                conn.starttls(params, &self.hello)
                    .await
                    .map_err(|e| classify(&server_name, &e))?;
            }
            if let Some(creds) = &login.creds
                && let Err(e) = conn.auth(login.mechanisms, creds).await
            {
                conn.abort().await;
                return Err(classify(&server_name, &e));
            }
            Ok(conn)
        };
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(conn)) => Ok((conn, false)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(timed_out(&server_name, "while connecting and logging in")),
        }
    }
}

/// MAIL FROM, RCPT TO for each recipient, DATA.
async fn envelope(
    conn: &mut AsyncSmtpConnection,
    from: &Address,
    to: &[Address],
    data: &[u8],
) -> Result<(), lettre::transport::smtp::Error> {
    let mut params = Vec::new();
    let ascii = |a: &Address| AsRef::<str>::as_ref(a).is_ascii();
    let utf8 = !ascii(from) || to.iter().any(|a| !ascii(a));
    if utf8 {
        params.push(MailParameter::SmtpUtfEight);
    }
    if !data.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    conn.command(Mail::new(Some(from.clone()), params)).await?;
    for r in to {
        conn.command(Rcpt::new(r.clone(), vec![])).await?;
    }
    conn.command(Data).await?;
    Ok(())
}

fn timed_out(server: &str, when: &str) -> SendError {
    SendError::Smtp {
        server: server.to_owned(),
        what: format!("did not answer in time {when}"),
        code: None,
        transient: true,
        advice: smtp_advice(None, ""),
    }
}

fn tls_parameters(host: &str, port: u16, ca_pem: Option<&str>) -> Result<TlsParameters, SendError> {
    let mut b = TlsParameters::builder(host.to_owned());
    if let Some(pem) = ca_pem {
        // ca_file may be a bundle (e.g. the emulator's CA and the mail server's CA): lettre
        // reads one certificate per call.
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
    })
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
