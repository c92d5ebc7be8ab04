//! The SMTP submission listener: legacy components (the webshop, old ERP modules, scanners) keep
//! sending plain SMTP to Kurir, and Kurir sends on through Exchange Online with OAuth.
//!
//! It listens on loopback by default, requires AUTH PLAIN or LOGIN with a *local* login
//! (`kurir listener users add WEBSHOP`, stored as an argon2id hash), and offers STARTTLS with a
//! certificate it generates itself (a small CA whose `ca.pem` clients can trust) or one that is
//! configured. The local login decides which Kurir user sends the message — its effective
//! settings give the mailbox, the flow and the From address — whatever MAIL FROM the client
//! gives. A message is answered `250` only after it is durably queued in the outbox; a database
//! problem is answered `451` so the client keeps the message and tries again.
//!
//! Only what a submission client needs is implemented (RFC 5321 + 4954 + 3207): EHLO/HELO,
//! STARTTLS, AUTH, MAIL, RCPT, DATA, RSET, NOOP, VRFY, HELP, QUIT, with PIPELINING.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::SecretString;
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::sender::ExchangeTransport;
use crate::submission::{Content, SendAs, Submission, SubmitError};
use crate::worker::Outbox;

/// Where the listener's TLS certificate comes from.
#[derive(Debug, Clone)]
pub enum ListenerTls {
    /// A CA and a server certificate generated once into `dir` (`ca.pem` is what clients
    /// trust; `server.pem` + `server.key.pem` are presented).
    Generated { dir: PathBuf },
    /// A configured certificate chain and key (PEM).
    Files { cert: PathBuf, key: PathBuf },
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub listen: SocketAddr,
    pub tls: ListenerTls,
    /// The name in the greeting and EHLO answer.
    pub hostname: String,
    /// Largest message accepted (SIZE); Exchange Online's default limit is 35 MB, its maximum
    /// 150 MB.
    pub max_size: usize,
    /// AUTH before STARTTLS. Off except on loopback, where nothing travels the network, so an
    /// old component without TLS support still works.
    pub auth_without_tls: bool,
    /// Idle time after which a logged-in connection is closed (the time one command line, or
    /// one line of message text, may take to arrive).
    pub idle_timeout: Duration,
    /// The same before AUTH succeeded: short, so that connections that never log in cannot
    /// hold the listener's connection slots.
    pub pre_auth_timeout: Duration,
    /// Connections served at once; more are answered `421 4.7.0` and closed.
    pub max_connections: usize,
    /// Connections served at once from one IP address.
    pub max_connections_per_ip: usize,
}

impl ListenerConfig {
    /// Loopback port 2587 with a generated certificate under `data_dir/listener-tls`.
    pub fn loopback(data_dir: &Path) -> ListenerConfig {
        ListenerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2587)),
            tls: ListenerTls::Generated {
                dir: data_dir.join("listener-tls"),
            },
            hostname: "kurir.localhost".into(),
            max_size: 35 * 1024 * 1024,
            auth_without_tls: true,
            idle_timeout: Duration::from_secs(300),
            pre_auth_timeout: Duration::from_secs(30),
            // A webshop or ERP opens a handful; a scanner floor a few dozen.
            max_connections: 100,
            max_connections_per_ip: 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error(
        "cannot listen on {addr}: {source}. Is another program (or another Kurir) using the port? Choose another with --listen"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("the listener's TLS certificate {what}: {detail}. Give a PEM certificate chain and key (--tls-cert/--tls-key), or delete {dir} to have Kurir generate a new one", dir = .dir.display())]
    Tls {
        what: String,
        detail: String,
        dir: PathBuf,
    },
    #[error(
        "refusing to listen on {0} without STARTTLS-only AUTH: AUTH without TLS is allowed on loopback only; listen on 127.0.0.1 or turn auth_without_tls off"
    )]
    PlainAuthOffLoopback(SocketAddr),
}

/// A bound listener and the CA file clients should trust (generated certificates only).
pub struct Bound {
    pub listener: TcpListener,
    pub local_addr: SocketAddr,
    pub ca_path: Option<PathBuf>,
    acceptor: TlsAcceptor,
}

/// Binds the port and prepares TLS; [`serve`] then answers clients.
pub async fn bind(cfg: &ListenerConfig) -> Result<Bound, ListenerError> {
    if cfg.auth_without_tls && !cfg.listen.ip().is_loopback() {
        return Err(ListenerError::PlainAuthOffLoopback(cfg.listen));
    }
    let (server_config, ca_path) = tls_config(&cfg.tls)?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ListenerError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ListenerError::Bind {
            addr: cfg.listen,
            source,
        })?;
    Ok(Bound {
        listener,
        local_addr,
        ca_path,
        acceptor: TlsAcceptor::from(server_config),
    })
}

/// Answers SMTP clients until `stop` turns true. Each connection runs in its own task, within
/// the connection caps of `cfg`.
pub async fn serve(
    bound: Bound,
    outbox: Arc<Outbox>,
    cfg: ListenerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = Arc::new(cfg);
    let slots = Arc::new(Slots::default());
    loop {
        tokio::select! {
            accepted = bound.listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let Some(slot) = slots.take(peer.ip(), &cfg) else {
                        // Refused without a task or a wait: the reply fits the empty socket
                        // buffer, and a client flooding us must not make us wait for it.
                        let _ = tcp.try_write(
                            b"421 4.7.0 Too many connections; try again later\r\n",
                        );
                        tracing::warn!(%peer, "SMTP connection refused: connection limit reached");
                        continue;
                    };
                    let outbox = outbox.clone();
                    let cfg = cfg.clone();
                    let acceptor = bound.acceptor.clone();
                    tokio::spawn(async move {
                        let _slot = slot;
                        let _ = tcp.set_nodelay(true);
                        let mut s = Session::new(outbox, cfg, peer);
                        if let Err(e) = s.run(Stream::Plain(tcp), acceptor).await {
                            tracing::debug!(%peer, error = %e, "SMTP connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and similar: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accepting an SMTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stop.changed() => if *stop.borrow() { break },
        }
    }
}

/// The connections being served, in total and per IP address.
#[derive(Default)]
struct Slots {
    inner: std::sync::Mutex<SlotCounts>,
}

#[derive(Default)]
struct SlotCounts {
    total: usize,
    per_ip: std::collections::HashMap<IpAddr, usize>,
}

/// One connection's place; given back when the connection ends.
struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
}

impl Slots {
    fn take(self: &Arc<Self>, ip: IpAddr, cfg: &ListenerConfig) -> Option<Slot> {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let from_ip = c.per_ip.get(&ip).copied().unwrap_or(0);
        if c.total >= cfg.max_connections || from_ip >= cfg.max_connections_per_ip {
            return None;
        }
        c.total += 1;
        c.per_ip.insert(ip, from_ip + 1);
        Some(Slot {
            slots: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.slots.inner.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

// ------------------------------------------------------------------ TLS

fn tls_err(dir: &Path, what: &str, detail: impl ToString) -> ListenerError {
    ListenerError::Tls {
        what: what.into(),
        detail: detail.to_string(),
        dir: dir.to_owned(),
    }
}

fn write_private(path: &Path, data: &str, private: bool) -> io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = private;
    let mut f = opts.open(path)?;
    f.write_all(data.as_bytes())?;
    f.sync_all()
}

/// Generates (once) a CA and a server certificate for localhost into `dir`.
fn generate(dir: &Path) -> Result<(), ListenerError> {
    let e = |what: &str, d: rcgen::Error| tls_err(dir, what, d);
    std::fs::create_dir_all(dir).map_err(|x| tls_err(dir, "directory cannot be created", x))?;
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().map_err(|x| e("CA key cannot be generated", x))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|x| e("CA", x))?;
    ca.distinguished_name
        .push(DnType::CommonName, "Kurir SMTP listener CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(3650);
    let ca_cert = ca
        .self_signed(&ca_key)
        .map_err(|x| e("CA cannot be signed", x))?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(|x| e("key cannot be generated", x))?;
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_string(), "kurir.localhost".to_string()])
            .map_err(|x| e("server certificate", x))?;
    leaf.distinguished_name
        .push(DnType::CommonName, "Kurir SMTP listener");
    leaf.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    leaf.subject_alt_names
        .push(SanType::IpAddress("::1".parse().expect("an IPv6 literal")));
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now - time::Duration::days(1);
    leaf.not_after = now + time::Duration::days(3650);
    let leaf_cert = leaf
        .signed_by(&key, &issuer)
        .map_err(|x| e("server certificate cannot be signed", x))?;
    let io = |x: io::Error| tls_err(dir, "cannot be written", x);
    write_private(&dir.join("server.key.pem"), &key.serialize_pem(), true).map_err(io)?;
    write_private(
        &dir.join("server.pem"),
        &format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
        false,
    )
    .map_err(io)?;
    write_private(&dir.join("ca.pem"), &ca_cert.pem(), false).map_err(io)?;
    Ok(())
}

fn tls_config(
    tls: &ListenerTls,
) -> Result<(Arc<rustls::ServerConfig>, Option<PathBuf>), ListenerError> {
    let (cert_path, key_path, ca) = match tls {
        ListenerTls::Generated { dir } => {
            if !dir.join("server.pem").exists() || !dir.join("server.key.pem").exists() {
                generate(dir)?;
            }
            (
                dir.join("server.pem"),
                dir.join("server.key.pem"),
                Some(dir.join("ca.pem")),
            )
        }
        ListenerTls::Files { cert, key } => (cert.clone(), key.clone(), None),
    };
    let dir = cert_path.parent().unwrap_or(Path::new(".")).to_owned();
    let cert_pem = std::fs::read(&cert_path).map_err(|x| tls_err(&dir, "cannot be read", x))?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|x| tls_err(&dir, "is not PEM", x))?;
    if chain.is_empty() {
        return Err(tls_err(&dir, "holds no certificate", cert_path.display()));
    }
    let key_pem = std::fs::read(&key_path).map_err(|x| tls_err(&dir, "key cannot be read", x))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|x| tls_err(&dir, "key is not PEM", x))?
        .ok_or_else(|| tls_err(&dir, "key file holds no key", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|x| tls_err(&dir, "TLS versions", x))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|x| tls_err(&dir, "does not match its key", x))?;
    Ok((Arc::new(config), ca))
}

// ------------------------------------------------------------------ the stream

/// A connection before or after STARTTLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

// ------------------------------------------------------------------ the session

/// Longest command line, CRLF included. RFC 5321 4.5.3.1.4 says 512 octets, plus room for
/// extension parameters (MAIL FROM ... SIZE= BODY= SMTPUTF8) and an AUTH PLAIN initial
/// response: tolerant, but bounded.
const MAX_COMMAND_LINE: usize = 2048;
/// Longest line of message text, CRLF included (RFC 5321 4.5.3.1.6).
const MAX_TEXT_LINE: usize = 1000;
const MAX_RECIPIENTS: usize = 500;

struct Session {
    outbox: Arc<Outbox>,
    cfg: Arc<ListenerConfig>,
    peer: SocketAddr,
    greeted: bool,
    tls: bool,
    /// (local login, Kurir user) once AUTH succeeded.
    auth: Option<(String, String)>,
    mail_from: Option<String>,
    rcpts: Vec<String>,
}

enum Next {
    Continue,
    StartTls,
    Quit,
}

impl Session {
    fn new(outbox: Arc<Outbox>, cfg: Arc<ListenerConfig>, peer: SocketAddr) -> Session {
        Session {
            outbox,
            cfg,
            peer,
            greeted: false,
            tls: false,
            auth: None,
            mail_from: None,
            rcpts: Vec::new(),
        }
    }

    async fn run(&mut self, stream: Stream, acceptor: TlsAcceptor) -> io::Result<()> {
        let mut io = BufReader::new(stream);
        let greeting = format!("220 {} ESMTP Kurir\r\n", self.cfg.hostname);
        io.get_mut().write_all(greeting.as_bytes()).await?;
        loop {
            match self.serve_until_starttls(&mut io).await? {
                Next::Quit => return Ok(()),
                Next::Continue => unreachable!("serve_until_starttls loops on Continue"),
                Next::StartTls => {
                    if !io.buffer().is_empty() {
                        // Commands pipelined after STARTTLS would be injected into the TLS
                        // session (CVE-2011-0411 style): refuse.
                        return Ok(());
                    }
                    let Stream::Plain(tcp) = io.into_inner() else {
                        unreachable!("STARTTLS is refused once TLS is on")
                    };
                    let tls = acceptor.accept(tcp).await?;
                    io = BufReader::new(Stream::Tls(Box::new(tls)));
                    self.tls = true;
                    self.greeted = false;
                    self.auth = None;
                    self.reset();
                }
            }
        }
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpts.clear();
    }

    /// How long the next line may take: short until the client has logged in.
    fn line_timeout(&self) -> Duration {
        if self.auth.is_some() {
            self.cfg.idle_timeout
        } else {
            self.cfg.pre_auth_timeout.min(self.cfg.idle_timeout)
        }
    }

    /// The next command line (or AUTH response), within [`MAX_COMMAND_LINE`] and the line
    /// timeout.
    async fn next_line(&self, io: &mut BufReader<Stream>) -> io::Result<Line> {
        let timeout = self.line_timeout();
        let line = tokio::time::timeout(
            timeout,
            read_bounded_line(io, MAX_COMMAND_LINE, MAX_COMMAND_LINE as u64 * 16),
        )
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "idle timeout"))??;
        Ok(match line {
            Line::Text(mut buf) => {
                while buf.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                    buf.pop();
                }
                Line::Text(buf)
            }
            other => other,
        })
    }

    /// A line of an AUTH exchange; a line that is too long is answered as an (invalid) empty
    /// response.
    async fn read_line(&self, io: &mut BufReader<Stream>) -> io::Result<Option<String>> {
        match self.next_line(io).await? {
            Line::Text(buf) => Ok(Some(String::from_utf8_lossy(&buf).into_owned())),
            Line::TooLong { .. } => Ok(Some(String::new())),
            Line::Endless => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an endless line in an AUTH exchange",
            )),
            Line::Closed => Ok(None),
        }
    }

    async fn serve_until_starttls(&mut self, io: &mut BufReader<Stream>) -> io::Result<Next> {
        loop {
            let line = match self.next_line(io).await {
                Ok(Line::Text(line)) => String::from_utf8_lossy(&line).into_owned(),
                Ok(Line::TooLong { .. }) => {
                    self.reply(
                        io,
                        &format!("500 5.5.2 Line too long (at most {MAX_COMMAND_LINE} octets)"),
                    )
                    .await?;
                    io.get_mut().flush().await?;
                    continue;
                }
                Ok(Line::Endless) => {
                    return close_with(io, "500 5.5.2 Line too long; closing").await;
                }
                Ok(Line::Closed) => return Ok(Next::Quit),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return close_with(io, "421 4.4.2 Idle too long; closing").await;
                }
                Err(e) => return Err(e),
            };
            let (verb, arg) = split_command(&line);
            let next = self.command(io, &verb, &arg).await?;
            io.get_mut().flush().await?;
            match next {
                Next::Continue => {}
                other => return Ok(other),
            }
        }
    }

    fn auth_offered(&self) -> bool {
        self.tls || self.cfg.auth_without_tls
    }

    async fn reply(&self, io: &mut BufReader<Stream>, text: &str) -> io::Result<()> {
        io.get_mut().write_all(text.as_bytes()).await?;
        io.get_mut().write_all(b"\r\n").await
    }

    async fn command(
        &mut self,
        io: &mut BufReader<Stream>,
        verb: &str,
        arg: &str,
    ) -> io::Result<Next> {
        match verb {
            "EHLO" | "HELO" => {
                self.greeted = true;
                self.reset();
                if verb == "HELO" {
                    self.reply(io, &format!("250 {}", self.cfg.hostname)).await?;
                    return Ok(Next::Continue);
                }
                let mut lines = vec![
                    self.cfg.hostname.clone(),
                    "PIPELINING".into(),
                    format!("SIZE {}", self.cfg.max_size),
                    "8BITMIME".into(),
                    "ENHANCEDSTATUSCODES".into(),
                ];
                if !self.tls {
                    lines.push("STARTTLS".into());
                }
                if self.auth_offered() {
                    lines.push("AUTH PLAIN LOGIN".into());
                }
                let n = lines.len();
                let mut out = String::new();
                for (i, l) in lines.iter().enumerate() {
                    out.push_str(&format!("250{}{l}\r\n", if i + 1 == n { ' ' } else { '-' }));
                }
                io.get_mut().write_all(out.as_bytes()).await?;
            }
            "STARTTLS" => {
                if self.tls {
                    self.reply(io, "503 5.5.1 TLS is already active").await?;
                } else {
                    self.reply(io, "220 2.0.0 Ready to start TLS").await?;
                    io.get_mut().flush().await?;
                    return Ok(Next::StartTls);
                }
            }
            "AUTH" => self.auth(io, arg).await?,
            "MAIL" => {
                if self.auth.is_none() {
                    self.reply(io, "530 5.7.0 Authentication required: log in with a Kurir listener user (kurir listener users add NAME)").await?;
                } else if self.mail_from.is_some() {
                    self.reply(io, "503 5.5.1 Sender already given").await?;
                } else if let Some(addr) = path_arg(arg, "FROM:") {
                    if let Some(size) = size_param(arg)
                        && size > self.cfg.max_size {
                            self.reply(io, &format!("552 5.3.4 Message size exceeds the limit of {} bytes", self.cfg.max_size)).await?;
                            return Ok(Next::Continue);
                        }
                    self.mail_from = Some(addr);
                    self.reply(io, "250 2.1.0 Ok").await?;
                } else {
                    self.reply(io, "501 5.5.4 Syntax: MAIL FROM:<address>").await?;
                }
            }
            "RCPT" => {
                if self.mail_from.is_none() {
                    self.reply(io, "503 5.5.1 MAIL FROM first").await?;
                } else if self.rcpts.len() >= MAX_RECIPIENTS {
                    self.reply(io, "452 4.5.3 Too many recipients").await?;
                } else {
                    match path_arg(arg, "TO:") {
                        Some(a) if a.contains('@') => {
                            self.rcpts.push(a);
                            self.reply(io, "250 2.1.5 Ok").await?;
                        }
                        _ => self.reply(io, "501 5.1.3 Syntax: RCPT TO:<address>").await?,
                    }
                }
            }
            "DATA" => {
                if self.rcpts.is_empty() {
                    self.reply(io, "503 5.5.1 RCPT TO first").await?;
                } else {
                    self.reply(io, "354 End data with <CR><LF>.<CR><LF>").await?;
                    io.get_mut().flush().await?;
                    return self.data(io).await;
                }
            }
            "RSET" => {
                self.reset();
                self.reply(io, "250 2.0.0 Ok").await?;
            }
            "NOOP" => self.reply(io, "250 2.0.0 Ok").await?,
            "VRFY" => self.reply(io, "252 2.5.0 Cannot VRFY; send and Kurir will try").await?,
            "HELP" => self.reply(io, "214 2.0.0 Kurir SMTP submission: EHLO, STARTTLS, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA").await?,
            "QUIT" => {
                self.reply(io, "221 2.0.0 Bye").await?;
                io.get_mut().flush().await?;
                return Ok(Next::Quit);
            }
            "" => self.reply(io, "500 5.5.2 Empty command").await?,
            _ => self.reply(io, "502 5.5.1 Command not implemented").await?,
        }
        Ok(Next::Continue)
    }

    async fn auth(&mut self, io: &mut BufReader<Stream>, arg: &str) -> io::Result<()> {
        if !self.greeted {
            return self.reply(io, "503 5.5.1 EHLO first").await;
        }
        if self.auth.is_some() {
            return self.reply(io, "503 5.5.1 Already authenticated").await;
        }
        if !self.auth_offered() {
            return self
                .reply(io, "538 5.7.11 Encryption required: STARTTLS first")
                .await;
        }
        let mut parts = arg.split_whitespace();
        let mech = parts.next().unwrap_or("").to_ascii_uppercase();
        let initial = parts.next().map(str::to_owned);
        let (login, password) = match mech.as_str() {
            "PLAIN" => {
                let resp = match initial {
                    Some(i) => i,
                    None => {
                        self.reply(io, "334 ").await?;
                        io.get_mut().flush().await?;
                        self.read_line(io).await?.unwrap_or_default()
                    }
                };
                if resp.trim() == "*" {
                    return self.reply(io, "501 5.7.0 Authentication cancelled").await;
                }
                let Some(decoded) = b64(&resp) else {
                    return self.reply(io, "501 5.5.2 Bad base64").await;
                };
                let mut f = decoded.split(|c| *c == 0);
                let (_authz, authc, pw) = (f.next(), f.next(), f.next());
                match (authc, pw) {
                    (Some(u), Some(p)) => (
                        String::from_utf8_lossy(u).into_owned(),
                        String::from_utf8_lossy(p).into_owned(),
                    ),
                    _ => return self.reply(io, "501 5.5.2 Bad PLAIN response").await,
                }
            }
            "LOGIN" => {
                let user = match initial {
                    Some(i) => i,
                    None => {
                        self.reply(io, "334 VXNlcm5hbWU6").await?;
                        io.get_mut().flush().await?;
                        self.read_line(io).await?.unwrap_or_default()
                    }
                };
                self.reply(io, "334 UGFzc3dvcmQ6").await?;
                io.get_mut().flush().await?;
                let pass = self.read_line(io).await?.unwrap_or_default();
                match (b64(&user), b64(&pass)) {
                    (Some(u), Some(p)) => (
                        String::from_utf8_lossy(&u).into_owned(),
                        String::from_utf8_lossy(&p).into_owned(),
                    ),
                    _ => return self.reply(io, "501 5.5.2 Bad base64").await,
                }
            }
            _ => {
                return self
                    .reply(
                        io,
                        "504 5.5.4 Unrecognized authentication type (use PLAIN or LOGIN)",
                    )
                    .await;
            }
        };
        let login = login.trim().to_ascii_uppercase();
        // Per address and per login, growing lockouts and a bound on argon2 checks at once,
        // shared with the web UI's sign-in (crate::login_throttle).
        let throttle = crate::login_throttle::LoginThrottle::shared();
        let attempt = match throttle.begin("smtp", self.peer.ip(), &login).await {
            Ok(a) => a,
            Err(refusal) => {
                return self
                    .reply(
                        io,
                        &format!(
                            "454 4.7.0 Too many authentication attempts, try again in {} s",
                            refusal.retry_after_secs()
                        ),
                    )
                    .await;
            }
        };
        let checked = self
            .outbox
            .store()
            .check_listener_user(&login, &SecretString::from(password))
            .await;
        match &checked {
            Ok(Some(_)) => attempt.succeeded(),
            Ok(None) => attempt.failed(),
            Err(_) => drop(attempt),
        }
        match checked {
            Ok(Some(user)) => {
                tracing::info!(peer = %self.peer, login = %for_log(&login), user = %user, "SMTP listener login");
                self.auth = Some((login, user));
                self.reply(io, "235 2.7.0 Authentication successful").await
            }
            Ok(None) => {
                tracing::warn!(peer = %self.peer, login = %for_log(&login), "SMTP listener login refused");
                // A pause makes guessing slow without a lockout a legacy client could trip.
                tokio::time::sleep(Duration::from_millis(500)).await;
                self.reply(io, "535 5.7.8 Authentication credentials invalid")
                    .await
            }
            Err(e) => {
                tracing::error!(error = %e, "checking a listener login failed");
                self.reply(io, "454 4.7.0 Temporary authentication failure")
                    .await
            }
        }
    }

    /// The message text up to `.`, kept in memory only up to `max_size`. An over-long line or
    /// an over-large message is read on to its end without being kept and then refused (the
    /// client learns why and the session goes on); a client that keeps sending far past the
    /// limit is refused at once and disconnected.
    async fn data(&mut self, io: &mut BufReader<Stream>) -> io::Result<Next> {
        let max = self.cfg.max_size;
        // What a client may send before it is cut off: the limit twice over leaves room for
        // dot-stuffing and CRLFs, and for a client that ignored SIZE and learns it at the end.
        let cutoff = (max as u64).saturating_mul(2).max(1024 * 1024);
        let mut raw: Vec<u8> = Vec::new();
        let mut received: u64 = 0;
        let mut refusal: Option<String> = None;
        let refuse_size = || format!("552 5.3.4 Message size exceeds the limit of {max} bytes");
        loop {
            let budget = cutoff.saturating_sub(received).max(1);
            let line = tokio::time::timeout(
                self.cfg.idle_timeout,
                read_bounded_line(io, MAX_TEXT_LINE, budget),
            )
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "idle timeout in DATA"))??;
            let line = match line {
                Line::Text(line) => line,
                Line::TooLong { consumed } => {
                    received += consumed;
                    if refusal.is_none() {
                        refusal = Some(format!(
                            "500 5.6.0 A line of the message is longer than {MAX_TEXT_LINE} octets (RFC 5321 4.5.3.1.6); wrap long lines or send the text quoted-printable or base64"
                        ));
                    }
                    raw = Vec::new();
                    continue;
                }
                Line::Endless => {
                    self.reset();
                    return close_with(io, &refuse_size()).await;
                }
                Line::Closed => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed in DATA",
                    ));
                }
            };
            received += line.len() as u64;
            if line == b".\r\n" || line == b".\n" {
                break;
            }
            if received > cutoff {
                self.reset();
                return close_with(io, &refuse_size()).await;
            }
            if refusal.is_some() {
                continue;
            }
            // Dot-stuffing (RFC 5321 4.5.2).
            let content = if line.first() == Some(&b'.') {
                &line[1..]
            } else {
                &line[..]
            };
            if raw.len() + content.len() > max {
                refusal = Some(refuse_size());
                raw = Vec::new();
                continue;
            }
            raw.extend_from_slice(content);
        }
        if let Some(refusal) = refusal {
            self.reset();
            self.reply(io, &refusal).await?;
            return Ok(Next::Continue);
        }
        let (login, user) = self.auth.clone().expect("DATA requires AUTH");
        let submission = Submission {
            send_as: SendAs::User(user),
            origin: format!("listener:{login}"),
            transport: ExchangeTransport::Auto,
            // A legacy client can only drop or bounce a refused message; the outbox keeps it.
            queue_if_sender_cannot_send: true,
            // The envelope decides who gets it, never the headers.
            messages: vec![Content::Mime {
                raw,
                envelope: Some(std::mem::take(&mut self.rcpts)),
            }],
        };
        self.reset();
        match self.outbox.submitter().queue(submission).await {
            Ok(q) => {
                self.reply(io, &format!("250 2.0.0 Ok: queued as {}", q.ids[0]))
                    .await?
            }
            Err(SubmitError::Store(e)) => {
                tracing::error!(error = %e, "could not queue a message from the SMTP listener");
                self.reply(
                    io,
                    "451 4.3.0 Kurir could not queue the message (database problem); try again later",
                )
                .await?
            }
            Err(e) => {
                // A message the outbox cannot take as given (never the sender's settings:
                // those are queued anyway, see above).
                tracing::warn!(error = %e, login = %login, "refused a message from the SMTP listener");
                // One reply line, within SMTP's line limit.
                let text: String = e
                    .to_string()
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(400)
                    .collect();
                self.reply(io, &format!("554 5.7.0 {text}")).await?
            }
        }
        Ok(Next::Continue)
    }
}

/// A command line → (upper-case verb, trimmed argument).
fn split_command(line: &str) -> (String, String) {
    match line.split_once(' ') {
        Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_owned()),
        None => (line.trim().to_ascii_uppercase(), String::new()),
    }
}

/// One line read within a limit.
enum Line {
    /// The line with its line ending (at most the limit).
    Text(Vec<u8>),
    /// Longer than the limit: read to its end and dropped, `consumed` octets.
    TooLong { consumed: u64 },
    /// No line end within the budget: the stream is not worth reading on.
    Endless,
    /// End of stream before a line began (a partial last line counts as closed too).
    Closed,
}

/// Reads one line of at most `limit` octets (line end included) without ever holding more
/// than that: a longer line is consumed from the buffer as it arrives and dropped, up to
/// `budget` octets.
async fn read_bounded_line<R: tokio::io::AsyncBufRead + Unpin>(
    io: &mut R,
    limit: usize,
    budget: u64,
) -> io::Result<Line> {
    let mut line = Vec::new();
    let mut consumed: u64 = 0;
    let mut too_long = false;
    loop {
        let buf = io.fill_buf().await?;
        if buf.is_empty() {
            return Ok(Line::Closed);
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if !too_long && line.len() + take <= limit {
            line.extend_from_slice(&buf[..take]);
        } else if !too_long {
            too_long = true;
            line = Vec::new();
        }
        io.consume(take);
        consumed += take as u64;
        if done {
            return Ok(if too_long {
                Line::TooLong { consumed }
            } else {
                Line::Text(line)
            });
        }
        if consumed >= budget {
            return Ok(Line::Endless);
        }
    }
}

/// Answers `reply`, then closes the connection: sends FIN after the reply, and reads (and
/// drops) what the client still sends for a moment, so that closing with unread data does not
/// reset the connection before the client has read why.
async fn close_with(io: &mut BufReader<Stream>, reply: &str) -> io::Result<Next> {
    let s = io.get_mut();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        s.write_all(reply.as_bytes()).await?;
        s.write_all(b"\r\n").await?;
        s.flush().await?;
        s.shutdown().await
    })
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut sink = [0u8; 16 * 1024];
        let mut left: usize = 4 * 1024 * 1024;
        while left > 0 {
            let n = io.get_mut().read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        io::Result::Ok(())
    })
    .await;
    Ok(Next::Quit)
}

/// Client-supplied text (a login name) as it may appear in a log line: line breaks, other
/// control characters and quotes escaped as Rust does (`\n`, `\u{1b}`), so that a name cannot
/// forge log lines or colour a terminal; at most 200 characters.
fn for_log(s: &str) -> String {
    let mut out: String = s.chars().take(200).flat_map(char::escape_debug).collect();
    if s.chars().nth(200).is_some() {
        out.push('…');
    }
    out
}

fn b64(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s.trim()).ok()
}

/// `FROM:<a@b> SIZE=…` → `a@b` (the null sender `<>` gives an empty string).
fn path_arg(arg: &str, prefix: &str) -> Option<String> {
    let upper = arg.to_ascii_uppercase();
    if !upper.starts_with(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    let path = rest.split_whitespace().next()?;
    let inner = path.strip_prefix('<')?.strip_suffix('>')?;
    Some(inner.to_owned())
}

/// `SIZE=n` of MAIL FROM (RFC 1870); a number too large for `usize` is as large as can be.
fn size_param(arg: &str) -> Option<usize> {
    arg.split_whitespace()
        .find_map(|p| {
            p.to_ascii_uppercase()
                .strip_prefix("SIZE=")
                .map(str::to_owned)
        })
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .map(|v| v.parse().unwrap_or(usize::MAX))
}

/// Fuzzing entry (`fuzz/fuzz_targets/smtp_command.rs`; not an API): each line of `data` through
/// the session's command parsing: the verb/argument split, MAIL/RCPT paths and SIZE, and the
/// base64 and PLAIN decoding of AUTH.
#[doc(hidden)]
pub fn fuzz_command_lines(data: &[u8]) {
    for raw in data.split_inclusive(|b| *b == b'\n') {
        let raw = &raw[..raw.len().min(MAX_COMMAND_LINE)];
        let mut end = raw.len();
        while end > 0 && matches!(raw[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        let line = String::from_utf8_lossy(&raw[..end]);
        let (verb, arg) = split_command(&line);
        let _ = verb.len();
        let _ = path_arg(&arg, "FROM:");
        let _ = path_arg(&arg, "TO:");
        let _ = size_param(&arg);
        let _ = split_command(&arg);
        if let Some(decoded) = b64(&line) {
            let mut f = decoded.split(|c| *c == 0);
            let _ = (f.next(), f.next(), f.next());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_size_are_read_from_mail_and_rcpt() {
        assert_eq!(
            path_arg("FROM:<a@b.c> SIZE=100", "FROM:").as_deref(),
            Some("a@b.c")
        );
        assert_eq!(path_arg("from: <a@b.c>", "FROM:").as_deref(), Some("a@b.c"));
        assert_eq!(path_arg("FROM:<>", "FROM:").as_deref(), Some(""));
        assert_eq!(path_arg("TO:a@b.c", "TO:"), None);
        assert_eq!(size_param("FROM:<a@b.c> SIZE=100 BODY=8BITMIME"), Some(100));
    }
}
