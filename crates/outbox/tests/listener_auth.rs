//! Password guessing against the SMTP listener's AUTH: after a few wrong passwords from one
//! address the listener answers `454 4.7.0` without checking the password (no argon2 run),
//! even for the right one, until the lockout has passed. Needs no mail stack: a raw TCP client
//! on loopback (AUTH without TLS is allowed there).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use kurir_outbox::listener::{self, ListenerConfig};
use kurir_outbox::{Outbox, OutboxConfig};
use kurir_store::{OutboxStore, SqliteStore};
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

const PASSWORD: &str = "webshop-listener-pw-1";

async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
    // Multi-line replies end with "NNN " (space after the code).
    let mut all = String::new();
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).await.unwrap() > 0,
            "connection closed"
        );
        all.push_str(&line);
        if line.as_bytes().get(3) == Some(&b' ') {
            return all;
        }
    }
}

/// One connection, one AUTH PLAIN; returns the AUTH reply.
async fn try_login(port: u16, login: &str, password: &str) -> String {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (r, mut w) = tcp.into_split();
    let mut r = BufReader::new(r);
    reply(&mut r).await;
    w.write_all(b"EHLO shop.example\r\n").await.unwrap();
    reply(&mut r).await;
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{login}\0{password}"));
    w.write_all(format!("AUTH PLAIN {plain}\r\n").as_bytes())
        .await
        .unwrap();
    let answer = reply(&mut r).await;
    let _ = w.write_all(b"QUIT\r\n").await;
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_auth_brute_force_gets_454() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(tmp.path()).await.unwrap());
    store
        .set_listener_user("WEBSHOP", "WEBSHOP", &SecretString::from(PASSWORD))
        .await
        .unwrap();
    let cfg = ListenerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ListenerConfig::loopback(tmp.path())
    };
    let bound = listener::bind(&cfg).await.expect("the listener binds");
    let port = bound.local_addr.port();
    let outbox = Outbox::new(store.clone(), OutboxConfig::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = tokio::spawn(listener::serve(bound, outbox, cfg, stop_rx));

    // The free failures are answered 535 (wrong password) ...
    let free = kurir_outbox::login_throttle::ThrottleConfig::default().free_failures;
    for i in 0..free {
        let a = try_login(port, "WEBSHOP", &format!("guess-{i}")).await;
        assert!(a.starts_with("535 "), "attempt {i}: {a}");
    }
    // ... then the address and the login are locked out: 454 4.7.0, even with the right
    // password, and another login from the same address too.
    let a = try_login(port, "WEBSHOP", PASSWORD).await;
    assert!(a.starts_with("454 4.7.0"), "locked out: {a}");
    let a = try_login(port, "OTHER", "guess").await;
    assert!(a.starts_with("454 4.7.0"), "same address, other login: {a}");

    // The lockout passes (the first one is short) and the right password works again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let a = try_login(port, "WEBSHOP", PASSWORD).await;
    assert!(a.starts_with("235 "), "after the lockout: {a}");

    stop_tx.send(true).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
