//! POP3 (Exchange Online's `outlook.office365.com:995`) — a small client of our own over
//! tokio-rustls; POP3 is a handful of line commands and no crate fits both OAuth and streaming.
//!
//! - Sign-in: `AUTH XOAUTH2` (or OAUTHBEARER), the token sent after the server's `+`, never on
//!   the command line (Exchange and Dovecot limit line lengths). An error challenge is answered
//!   with an empty line, as in IMAP.
//! - Identity: `pop3:<UIDL>`; message numbers are only valid within one session.
//! - RETR streams a large message line by line into a spool file (dot-unstuffed).
//! - DELE only for messages the pipeline has recorded; the deletions take effect at QUIT
//!   ([`Transport::commit`]). A crash before QUIT undoes them on the server, and the next pass
//!   finds the UIDLs already recorded, so it only deletes them again.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufStream};

use super::{
    Destination, Fetched, LARGE_MESSAGE, Listed, ServerConfig, SpoolDir, Spooled, Transport,
};
use crate::IntakeError;
use crate::auth::{Mechanism, TokenSource, describe_challenge};
use crate::tls::TlsSocket;

pub struct Pop3Transport {
    cfg: ServerConfig,
    tokens: Arc<dyn TokenSource>,
    conn: Option<Conn>,
}

struct Conn {
    io: BufStream<TlsSocket>,
    /// UIDL → message number in this session.
    numbers: HashMap<String, u32>,
}

impl Pop3Transport {
    pub fn new(cfg: ServerConfig, tokens: Arc<dyn TokenSource>) -> Self {
        Pop3Transport {
            cfg,
            tokens,
            conn: None,
        }
    }

    fn server(&self) -> String {
        format!("{}:{}", self.cfg.host, self.cfg.port)
    }

    fn err(&self, detail: impl std::fmt::Display) -> IntakeError {
        IntakeError::Protocol {
            protocol: "POP3",
            server: self.server(),
            detail: detail.to_string(),
        }
    }

    async fn conn(&mut self) -> Result<&mut Conn, IntakeError> {
        if self.conn.is_none() {
            let c = self.connect().await?;
            self.conn = Some(c);
        }
        Ok(self.conn.as_mut().expect("set above"))
    }

    async fn connect(&self) -> Result<Conn, IntakeError> {
        let stream = crate::tls::connect(
            "pop3",
            &self.cfg.host,
            self.cfg.port,
            self.cfg.ca_file.as_deref(),
        )
        .await?;
        let mut io = BufStream::new(stream);
        let greeting = read_line(&mut io).await.map_err(|e| self.err(e))?;
        if !greeting.starts_with("+OK") {
            return Err(self.err(format!("unexpected greeting: {}", printable(&greeting))));
        }
        // CAPA is optional in POP3; without a SASL line we simply try the preferred mechanism.
        let mut offered: Vec<String> = Vec::new();
        send(&mut io, "CAPA").await.map_err(|e| self.err(e))?;
        let first = read_line(&mut io).await.map_err(|e| self.err(e))?;
        if first.starts_with("+OK") {
            for line in read_multiline_text(&mut io)
                .await
                .map_err(|e| self.err(e))?
            {
                let upper = line.to_ascii_uppercase();
                if let Some(rest) = upper.strip_prefix("SASL") {
                    offered.extend(rest.split_whitespace().map(str::to_owned));
                }
            }
        }
        let other = match self.cfg.mechanism {
            Mechanism::XOAuth2 => Mechanism::OAuthBearer,
            Mechanism::OAuthBearer => Mechanism::XOAuth2,
        };
        let mechanism =
            if offered.is_empty() || offered.iter().any(|m| m == self.cfg.mechanism.as_str()) {
                self.cfg.mechanism
            } else if offered.iter().any(|m| m == other.as_str()) {
                other
            } else {
                return Err(IntakeError::NoOAuthMechanism {
                    server: self.server(),
                });
            };
        let bearer = self.tokens.bearer().await?;
        send(&mut io, &format!("AUTH {}", mechanism.as_str()))
            .await
            .map_err(|e| self.err(e))?;
        let reply = read_line(&mut io).await.map_err(|e| self.err(e))?;
        if !reply.starts_with('+') || reply.starts_with("+OK") {
            return Err(self.rejected(
                mechanism,
                format!("AUTH {}: {}", mechanism.as_str(), printable(&reply)),
            ));
        }
        let initial = mechanism.initial_response(&self.cfg.mailbox, &bearer.secret);
        send(&mut io, &initial.base64())
            .await
            .map_err(|e| self.err(e))?;
        drop(initial);
        let mut reply = read_line(&mut io).await.map_err(|e| self.err(e))?;
        let mut said = String::new();
        if reply.starts_with("+ ") || reply.trim_end() == "+" {
            // The error challenge: decode it for the message, answer with an empty line.
            let b64 = reply.trim_end().trim_start_matches('+').trim();
            let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
                .unwrap_or_default();
            said = format!("{}; ", describe_challenge(&decoded));
            send(&mut io, "").await.map_err(|e| self.err(e))?;
            reply = read_line(&mut io).await.map_err(|e| self.err(e))?;
        }
        if !reply.starts_with("+OK") {
            return Err(self.rejected(mechanism, format!("{said}{}", printable(&reply))));
        }
        let mut conn = Conn {
            io,
            numbers: HashMap::new(),
        };
        send(&mut conn.io, "UIDL").await.map_err(|e| self.err(e))?;
        let status = read_line(&mut conn.io).await.map_err(|e| self.err(e))?;
        if !status.starts_with("+OK") {
            return Err(self.err(format!("UIDL: {}", printable(&status))));
        }
        for line in read_multiline_text(&mut conn.io)
            .await
            .map_err(|e| self.err(e))?
        {
            let mut parts = line.split_whitespace();
            if let (Some(n), Some(uidl)) = (parts.next(), parts.next())
                && let Ok(n) = n.parse::<u32>()
            {
                conn.numbers.insert(uidl.to_owned(), n);
            }
        }
        Ok(conn)
    }

    fn rejected(&self, mechanism: Mechanism, detail: String) -> IntakeError {
        IntakeError::AuthRejected {
            server: self.server(),
            mailbox: self.cfg.mailbox.clone(),
            mechanism: mechanism.as_str(),
            permission: "POP.AccessAsApp (or POP.AccessAsUser.All for a user)",
            detail,
        }
    }

    async fn retr(&mut self, n: u32, size: u64, spool: &SpoolDir) -> Result<Spooled, IntakeError> {
        let server_err = |d: String| IntakeError::Protocol {
            protocol: "POP3",
            server: format!("{}:{}", self.cfg.host, self.cfg.port),
            detail: d,
        };
        let conn = self.conn.as_mut().expect("connected by list/fetch");
        send(&mut conn.io, &format!("RETR {n}"))
            .await
            .map_err(|e| server_err(e.to_string()))?;
        let status = read_line(&mut conn.io)
            .await
            .map_err(|e| server_err(e.to_string()))?;
        if !status.starts_with("+OK") {
            return Err(server_err(format!("RETR {n}: {}", printable(&status))));
        }
        if size > LARGE_MESSAGE {
            let (path, file) = spool.new_file()?;
            let mut out = tokio::io::BufWriter::new(file);
            let mut written = 0u64;
            let mut line = Vec::new();
            loop {
                line.clear();
                read_raw_line(&mut conn.io, &mut line)
                    .await
                    .map_err(|e| server_err(e.to_string()))?;
                if line == b".\r\n" || line == b".\n" {
                    break;
                }
                let data = if line.starts_with(b"..") {
                    &line[1..]
                } else {
                    &line[..]
                };
                out.write_all(data)
                    .await
                    .map_err(|e| IntakeError::disk("write a spool file", &path, e))?;
                written += data.len() as u64;
            }
            out.flush()
                .await
                .map_err(|e| IntakeError::disk("write a spool file", &path, e))?;
            Ok(Spooled::File {
                path,
                size: written,
            })
        } else {
            let mut body = Vec::with_capacity(size as usize + 64);
            let mut line = Vec::new();
            loop {
                line.clear();
                read_raw_line(&mut conn.io, &mut line)
                    .await
                    .map_err(|e| server_err(e.to_string()))?;
                if line == b".\r\n" || line == b".\n" {
                    break;
                }
                let data = if line.starts_with(b"..") {
                    &line[1..]
                } else {
                    &line[..]
                };
                body.extend_from_slice(data);
            }
            Ok(Spooled::Memory(body))
        }
    }
}

async fn send(io: &mut BufStream<TlsSocket>, line: &str) -> std::io::Result<()> {
    io.write_all(line.as_bytes()).await?;
    io.write_all(b"\r\n").await?;
    io.flush().await
}

/// One line including its terminator; an error at end of stream.
pub(crate) async fn read_raw_line(
    io: &mut (impl AsyncBufRead + Unpin),
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    let n = io.read_until(b'\n', buf).await?;
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    Ok(())
}

pub(crate) async fn read_line(io: &mut (impl AsyncBufRead + Unpin)) -> std::io::Result<String> {
    let mut buf = Vec::new();
    read_raw_line(io, &mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).trim_end().to_owned())
}

/// The lines of a multi-line answer after its status line, up to the lone `.`.
pub(crate) async fn read_multiline_text(
    io: &mut (impl AsyncBufRead + Unpin),
) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let line = read_line(io).await?;
        if line == "." {
            return Ok(lines);
        }
        lines.push(line.strip_prefix('.').map(str::to_owned).unwrap_or(line));
    }
}

/// A server line for an error message, shortened and without control characters.
fn printable(line: &str) -> String {
    line.chars().filter(|c| !c.is_control()).take(300).collect()
}

#[async_trait]
impl Transport for Pop3Transport {
    fn protocol(&self) -> &'static str {
        kurir_settings::Protocol::Pop3.as_str()
    }

    async fn list(&mut self) -> Result<Vec<Listed>, IntakeError> {
        // A new session per pass: POP3 shows the maildrop as it was at sign-in.
        if let Some(mut old) = self.conn.take() {
            let _ = send(&mut old.io, "QUIT").await;
        }
        let server = self.server();
        let conn = self.conn().await?;
        send(&mut conn.io, "LIST")
            .await
            .map_err(|e| proto(&server, e))?;
        let status = read_line(&mut conn.io)
            .await
            .map_err(|e| proto(&server, e))?;
        if !status.starts_with("+OK") {
            return Err(proto(&server, format!("LIST: {}", printable(&status))));
        }
        let mut sizes: HashMap<u32, u64> = HashMap::new();
        for line in read_multiline_text(&mut conn.io)
            .await
            .map_err(|e| proto(&server, e))?
        {
            let mut parts = line.split_whitespace();
            if let (Some(n), Some(size)) = (parts.next(), parts.next())
                && let (Ok(n), Ok(size)) = (n.parse::<u32>(), size.parse::<u64>())
            {
                sizes.insert(n, size);
            }
        }
        let mut listed: Vec<(u32, Listed)> = conn
            .numbers
            .iter()
            .map(|(uidl, n)| {
                (
                    *n,
                    Listed {
                        server_id: format!("pop3:{uidl}"),
                        size: sizes.get(n).copied(),
                    },
                )
            })
            .collect();
        listed.sort_by_key(|(n, _)| *n);
        Ok(listed.into_iter().map(|(_, l)| l).collect())
    }

    async fn fetch(
        &mut self,
        ids: &[Listed],
        spool: &SpoolDir,
    ) -> Result<Vec<Fetched>, IntakeError> {
        let mut out = Vec::with_capacity(ids.len());
        for l in ids {
            let Some(uidl) = l.server_id.strip_prefix("pop3:") else {
                continue;
            };
            let Some(n) = self.conn().await?.numbers.get(uidl).copied() else {
                continue;
            };
            let body = self.retr(n, l.size.unwrap_or(0), spool).await?;
            out.push(Fetched {
                server_id: l.server_id.clone(),
                body,
            });
        }
        Ok(out)
    }

    async fn finish(&mut self, server_ids: &[String], _to: Destination) -> Result<(), IntakeError> {
        // POP3 has no folders: processed and quarantined messages alike are deleted once
        // recorded (a quarantined one stays in Kurir with its reason).
        let server = self.server();
        for id in server_ids {
            let Some(uidl) = id.strip_prefix("pop3:") else {
                continue;
            };
            let conn = self.conn().await?;
            let Some(n) = conn.numbers.get(uidl).copied() else {
                continue;
            };
            send(&mut conn.io, &format!("DELE {n}"))
                .await
                .map_err(|e| proto(&server, e))?;
            let reply = read_line(&mut conn.io)
                .await
                .map_err(|e| proto(&server, e))?;
            if !reply.starts_with("+OK") {
                return Err(proto(&server, format!("DELE {n}: {}", printable(&reply))));
            }
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), IntakeError> {
        let server = self.server();
        if let Some(mut conn) = self.conn.take() {
            send(&mut conn.io, "QUIT")
                .await
                .map_err(|e| proto(&server, e))?;
            let reply = read_line(&mut conn.io)
                .await
                .map_err(|e| proto(&server, e))?;
            if !reply.starts_with("+OK") {
                return Err(proto(
                    &server,
                    format!(
                        "QUIT (the deletions were not confirmed): {}",
                        printable(&reply)
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn close(&mut self) {
        // QUIT commits DELEs; close() is only reached after commit() or on errors, where no
        // DELE is outstanding. Dropping the connection without QUIT rolls back (RFC 1939).
        self.conn = None;
    }
}

fn proto(server: &str, detail: impl std::fmt::Display) -> IntakeError {
    IntakeError::Protocol {
        protocol: "POP3",
        server: server.to_owned(),
        detail: detail.to_string(),
    }
}
