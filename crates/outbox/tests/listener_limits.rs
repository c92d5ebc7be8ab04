//! The SMTP listener's resource limits, against the real listener over real TCP: bounded
//! lines, the advertised message size enforced while the data streams in, connection caps in
//! total and per IP address, a short timeout before login, and login names logged escaped.
//!
//! No mail leaves: these tests only talk to the listener (a SQLite store in a temporary
//! directory, no outbox worker running), so they need neither the mail stack nor root.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kurir_outbox::listener::{self, ListenerConfig};
use kurir_outbox::{Outbox, OutboxConfig};
use kurir_store::outbox::OutboxFilter;
use kurir_store::{OutboxStore, SqliteStore};
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

const PASSWORD: &str = "webshop-listener-pw-1";

/// A listener on a free loopback port, with `tune` applied to its configuration.
struct Running {
    addr: SocketAddr,
    store: Arc<SqliteStore>,
    _stop: watch::Sender<bool>,
    _tmp: tempfile::TempDir,
}

async fn start(tune: impl FnOnce(&mut ListenerConfig)) -> Running {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let store = Arc::new(SqliteStore::open(&data_dir).await.expect("the store opens"));
    store
        .set_listener_user("WEBSHOP", "WEBSHOP", &SecretString::from(PASSWORD))
        .await
        .unwrap();
    let mut cfg = ListenerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ListenerConfig::loopback(&data_dir)
    };
    tune(&mut cfg);
    let bound = listener::bind(&cfg).await.expect("the listener binds");
    let addr = bound.local_addr;
    let outbox = Outbox::new(store.clone(), OutboxConfig::default());
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(listener::serve(bound, outbox, cfg, stop_rx));
    Running {
        addr,
        store,
        _stop: stop,
        _tmp: tmp,
    }
}

/// A plain SMTP client: one reply (all its lines) at a time.
struct Client {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client::wrap(TcpStream::connect(addr).await.unwrap())
    }

    /// Connects from another loopback address (127.0.0.x), as another client machine would.
    async fn connect_from(addr: SocketAddr, from: [u8; 4]) -> Client {
        let s = TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::from((from, 0))).unwrap();
        Client::wrap(s.connect(addr).await.unwrap())
    }

    fn wrap(tcp: TcpStream) -> Client {
        let (r, w) = tcp.into_split();
        Client {
            r: BufReader::new(r),
            w,
        }
    }

    /// The next reply, or "" when the listener closed the connection.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(20), self.r.read_line(&mut line))
                .await
                .expect("a reply within 20 s")
                .unwrap_or(0);
            if n == 0 {
                return all;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn send(&mut self, line: &str) -> String {
        self.w
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.reply().await
    }

    /// Greeting, EHLO, AUTH PLAIN as WEBSHOP.
    async fn login(addr: SocketAddr) -> Client {
        let mut c = Client::connect(addr).await;
        assert!(c.reply().await.starts_with("220"));
        assert!(c.send("EHLO shop.example").await.starts_with("250"));
        let plain = STANDARD.encode(format!("\0WEBSHOP\0{PASSWORD}"));
        let r = c.send(&format!("AUTH PLAIN {plain}")).await;
        assert!(r.starts_with("235"), "{r}");
        c
    }
}

async fn queued(store: &SqliteStore) -> usize {
    store
        .outbox_list(&OutboxFilter::default())
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_data_line_without_newline_is_bounded() {
    let l = start(|c| c.max_size = 256 * 1024).await;
    let mut c = Client::login(l.addr).await;
    assert!(
        c.send("MAIL FROM:<shop@example.com>")
            .await
            .starts_with("250")
    );
    assert!(c.send("RCPT TO:<a@example.com>").await.starts_with("250"));
    assert!(c.send("DATA").await.starts_with("354"));
    // One line that never ends, far beyond the message size: the listener must neither keep
    // it (memory) nor read it forever, but refuse and close while the client is still sending.
    let (mut r, mut w) = (c.r, c.w);
    let writer = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0usize;
        while sent < 256 * 1024 * 1024 {
            if w.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(20), r.read_line(&mut line))
        .await
        .expect("the listener answers while the line is still streaming")
        .unwrap();
    assert!(line.starts_with("552 5.3.4"), "{line}");
    let sent = writer.await.unwrap();
    assert!(
        sent < 64 * 1024 * 1024,
        "the listener stopped reading after {sent} bytes of one line"
    );
    assert_eq!(queued(&l.store).await, 0);

    // A line over 1000 octets that does end: read to the end of the data, refused, and the
    // session goes on (the next message is accepted).
    let mut c = Client::login(l.addr).await;
    assert!(
        c.send("MAIL FROM:<shop@example.com>")
            .await
            .starts_with("250")
    );
    assert!(c.send("RCPT TO:<a@example.com>").await.starts_with("250"));
    assert!(c.send("DATA").await.starts_with("354"));
    let long = "y".repeat(5000);
    let r = c
        .send(&format!("Subject: long\r\n\r\n{long}\r\nmore text\r\n."))
        .await;
    assert!(r.starts_with("500 5.6.0"), "{r}");
    assert!(r.contains("1000 octets"), "{r}");
    assert!(
        c.send("MAIL FROM:<shop@example.com>")
            .await
            .starts_with("250")
    );
    assert!(c.send("RCPT TO:<a@example.com>").await.starts_with("250"));
    assert!(c.send("DATA").await.starts_with("354"));
    let r = c.send("Subject: short\r\n\r\nfine\r\n.").await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(queued(&l.store).await, 1);

    // An over-long command line is refused without ending the session.
    let r = c.send(&format!("NOOP {}", "z".repeat(10_000))).await;
    assert!(r.starts_with("500 5.5.2"), "{r}");
    assert!(c.send("NOOP").await.starts_with("250"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_refuses_message_over_advertised_size_while_streaming() {
    let max = 64 * 1024;
    let l = start(|c| c.max_size = max).await;
    let mut c = Client::login(l.addr).await;
    let ehlo = c.send("EHLO shop.example").await;
    assert!(ehlo.contains(&format!("SIZE {max}")), "{ehlo}");
    // Announced too large: refused up front, also when the number does not fit 64 bits.
    let r = c
        .send(&format!("MAIL FROM:<shop@example.com> SIZE={}", max + 1))
        .await;
    assert!(r.starts_with("552 5.3.4"), "{r}");
    let r = c
        .send("MAIL FROM:<shop@example.com> SIZE=99999999999999999999999999")
        .await;
    assert!(r.starts_with("552 5.3.4"), "{r}");

    // Over the size with a proper end: read to the end, refused, the session goes on.
    assert!(
        c.send("MAIL FROM:<shop@example.com>")
            .await
            .starts_with("250")
    );
    assert!(c.send("RCPT TO:<a@example.com>").await.starts_with("250"));
    assert!(c.send("DATA").await.starts_with("354"));
    let body = format!("{}\r\n", "b".repeat(998)).repeat(100);
    let r = c.send(&format!("Subject: big\r\n\r\n{body}.")).await;
    assert!(r.starts_with("552 5.3.4"), "{r}");
    assert!(c.send("NOOP").await.starts_with("250"));

    // A client that ignores SIZE and keeps streaming lines: refused and disconnected while it
    // is still sending, not read on forever.
    assert!(
        c.send("MAIL FROM:<shop@example.com>")
            .await
            .starts_with("250")
    );
    assert!(c.send("RCPT TO:<a@example.com>").await.starts_with("250"));
    assert!(c.send("DATA").await.starts_with("354"));
    let (mut r, mut w) = (c.r, c.w);
    let writer = tokio::spawn(async move {
        let chunk = format!("{}\r\n", "s".repeat(998)).repeat(64).into_bytes();
        let mut sent = 0usize;
        while sent < 256 * 1024 * 1024 {
            if w.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(20), r.read_line(&mut line))
        .await
        .expect("the listener answers while the message is still streaming")
        .unwrap();
    assert!(line.starts_with("552 5.3.4"), "{line}");
    let sent = writer.await.unwrap();
    assert!(sent < 64 * 1024 * 1024, "read on for {sent} bytes");
    assert_eq!(queued(&l.store).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_caps_connections_per_ip() {
    let l = start(|c| {
        c.max_connections_per_ip = 2;
        c.max_connections = 3;
    })
    .await;
    let mut a = Client::connect(l.addr).await;
    let mut b = Client::connect(l.addr).await;
    assert!(a.reply().await.starts_with("220"));
    assert!(b.reply().await.starts_with("220"));
    // A third from the same address: refused, and closed.
    let mut c = Client::connect(l.addr).await;
    let r = c.reply().await;
    assert!(r.starts_with("421 4.7.0"), "{r}");
    assert_eq!(c.reply().await, "", "closed after 421");
    // Another address still gets in, up to the total.
    let mut d = Client::connect_from(l.addr, [127, 0, 0, 2]).await;
    assert!(d.reply().await.starts_with("220"));
    let mut e = Client::connect_from(l.addr, [127, 0, 0, 3]).await;
    let r = e.reply().await;
    assert!(r.starts_with("421 4.7.0"), "total cap: {r}");
    // A slot is given back when its connection ends.
    assert!(a.send("QUIT").await.starts_with("221"));
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut f = Client::connect(l.addr).await;
        let r = f.reply().await;
        if r.starts_with("220") {
            break;
        }
        assert!(Instant::now() < deadline, "the slot came back: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop((b, d));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_pre_auth_idle_timeout_is_short() {
    // The default: half a minute before login, five after.
    let defaults = ListenerConfig::loopback(std::path::Path::new("/nonexistent"));
    assert!(defaults.pre_auth_timeout <= Duration::from_secs(30));
    assert!(defaults.idle_timeout >= Duration::from_secs(60));

    let l = start(|c| {
        c.pre_auth_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(300);
    })
    .await;
    // A connection that does not log in is closed after the short timeout.
    let mut idle = Client::connect(l.addr).await;
    assert!(idle.reply().await.starts_with("220"));
    assert!(idle.send("EHLO idle.example").await.starts_with("250"));
    let t = Instant::now();
    let r = idle.reply().await;
    assert!(r.starts_with("421 4.4.2"), "{r}");
    assert_eq!(idle.reply().await, "");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        t.elapsed()
    );
    // A logged-in connection may pause longer.
    let mut c = Client::login(l.addr).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(c.send("NOOP").await.starts_with("250"));
}

/// Everything the test process logs, for the log test.
fn log_buffer() -> Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        buf
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_logs_login_name_escaped() {
    let logs = log_buffer();
    let l = start(|_| {}).await;
    let mut c = Client::connect(l.addr).await;
    assert!(c.reply().await.starts_with("220"));
    assert!(c.send("EHLO evil.example").await.starts_with("250"));
    // A login name that would forge a log line of its own (and colour the terminal).
    let forged = "mallory\n2026-01-01T00:00:00Z  INFO SMTP listener login user=ADMIN\x1b[2J";
    let plain = STANDARD.encode(format!("\0{forged}\0wrong-password"));
    let r = c.send(&format!("AUTH PLAIN {plain}")).await;
    assert!(r.starts_with("535"), "{r}");
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("SMTP listener login refused"))
        .unwrap_or_else(|| panic!("the refusal is logged: {text}"));
    assert!(
        line.contains(
            r"MALLORY\n2026-01-01T00:00:00Z  INFO SMTP LISTENER LOGIN USER=ADMIN\u{1b}[2J"
        ),
        "the whole name on the one line, escaped: {line}"
    );
    assert!(!text.contains('\x1b'), "no raw escape character: {text:?}");
    assert!(
        !text.lines().any(|l| l.starts_with("2026-01-01")),
        "no forged line: {text}"
    );
}
