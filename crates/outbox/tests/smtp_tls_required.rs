//! An Exchange Online access token is a bearer token: whoever reads it can send as the mailbox.
//! With `smtp_tls=none` the outbox must refuse before a byte of it is sent. A plain TCP SMTP
//! server that offers AUTH XOAUTH2 records everything it receives; a scripted token endpoint
//! hands out a token, so that nothing but the TLS rule stands between the token and the wire.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kurir_entra::{Authority, ClientConfig, Cloud, Credential, Scope, TokenClient, TokenRequest};
use kurir_outbox::sender::SmtpTls;
use kurir_outbox::smtp::SmtpPool;
use kurir_outbox::{Route, SendError, Sender};
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Answers every HTTP request with a token.
async fn token_endpoint() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = 0;
                // Headers and the small form body arrive in a read or two.
                while got < buf.len() {
                    let n = s.read(&mut buf[got..]).await.unwrap_or(0);
                    got += n;
                    let text = String::from_utf8_lossy(&buf[..got]);
                    if n == 0 || text.contains("scope=") {
                        break;
                    }
                }
                let body = r#"{"token_type":"Bearer","expires_in":3599,"access_token":"bearer-token-that-must-stay-secret"}"#;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    base
}

/// A plain-text SMTP server offering XOAUTH2 that accepts everything and records each line.
async fn recording_smtp() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let rec = rec.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                let _ = w.write_all(b"220 plain.example ESMTP\r\n").await;
                let mut in_data = false;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    rec.lock().unwrap().push(line.clone());
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            b"250 2.0.0 queued\r\n"
                        } else {
                            continue;
                        }
                    } else if upper.starts_with("EHLO") {
                        b"250-plain.example\r\n250-AUTH XOAUTH2 PLAIN LOGIN\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("AUTH") {
                        b"235 2.7.0 Authentication successful\r\n"
                    } else if upper.starts_with("DATA") {
                        in_data = true;
                        b"354 go on\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 2.0.0 ok\r\n"
                    };
                    let _ = w.write_all(reply).await;
                }
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn xoauth2_is_never_sent_without_tls() {
    let authority = token_endpoint().await;
    let (port, seen) = recording_smtp().await;
    let tokens = TokenClient::new(ClientConfig::default()).unwrap();
    let request = TokenRequest {
        authority: Authority::url(&authority).unwrap(),
        tenant: "contoso.onmicrosoft.com".into(),
        client_id: "3f2504e0-4f89-11d3-9a0c-0305e82c3301".into(),
        credential: Credential::ClientSecret {
            secret: SecretString::from("client~secret"),
            basic_auth: false,
        },
        scope: Scope::exchange_app(Cloud::Global),
        user: None,
    };
    // The token endpoint really answers: only the TLS rule keeps the token off the wire.
    assert!(tokens.token(&request).await.is_ok());
    let sender = Sender {
        user: "WEBSHOP".into(),
        from: "webshop@contoso.com".into(),
        route: Route::SmtpOauth {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            login: "webshop@contoso.com".into(),
            token: Arc::new(request),
        },
        ca_pem: None,
    };
    let pool = SmtpPool::new(1, Duration::from_secs(10));
    let result = pool
        .send(
            &tokens,
            &sender,
            &["anna@contoso.com".to_owned()],
            b"Subject: x\r\n\r\nx\r\n",
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
    let e = match result {
        Ok(_) => panic!("sent without TLS: {seen:?}"),
        Err(e) => e,
    };
    // Permanent (a setting to fix, not retried), and it says what to fix.
    assert!(matches!(e, SendError::Settings(_)), "{e:?}");
    assert!(e.is_permanent());
    let text = e.to_string();
    assert!(text.contains("smtp_tls=starttls"), "{text}");
    assert!(!text.contains("bearer-token"), "{text}");
}
