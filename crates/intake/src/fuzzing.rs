//! Entry points for the coverage-guided fuzz targets in `fuzz/` (not an API; hidden from docs).
//!
//! Each takes arbitrary bytes and runs them through the same functions production uses: the
//! raw IMAP FETCH reader and the POP3 line readers get the bytes as what the server says (in
//! chunks of a size taken from the first byte, so buffer boundaries fall everywhere), the MIME
//! entry points get them as a message. They return nothing; a panic, hang or runaway allocation
//! is the finding.

use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::transport::imap_fetch::{self, WakeHint};
use crate::transport::{SpoolDir, Spooled};

/// A server that says `data`, at most `chunk` bytes per read, and swallows what it is sent.
struct Scripted<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Scripted<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.data.len().min(self.chunk).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

/// The first byte picks the read size (1..=256 bytes per read) and options; the rest is the
/// server's side.
fn split(data: &[u8]) -> Option<(u8, Scripted<'_>)> {
    let (&first, rest) = data.split_first()?;
    Some((
        first,
        Scripted {
            data: rest,
            chunk: usize::from(first & 0x7f) * 2 + 1,
        },
    ))
}

/// `data` as the server's answer to `UID FETCH … (UID BODY.PEEK[])` (bodies over 64 bytes spooled
/// to files when the first byte's top bit is set), to `UID FETCH 1:* (UID RFC822.SIZE)` and to a
/// plain tagged command.
pub fn imap_responses(data: &[u8]) {
    let Some((first, _)) = split(data) else {
        return;
    };
    let rt = runtime();
    let spool = SpoolDir(std::env::temp_dir().join(format!("kurir-fuzz-{}", std::process::id())));
    let large = if first & 0x80 != 0 { 64 } else { u64::MAX };
    let (_, mut s) = split(data).expect("not empty");
    let bodies = rt.block_on(imap_fetch::uid_fetch_bodies(
        &mut s,
        "KF1",
        "1:*",
        large,
        &spool,
        WakeHint::default(),
    ));
    if let Ok(bodies) = bodies {
        for (_, body) in bodies {
            if let Spooled::File { path, .. } = body {
                let _ = std::fs::remove_file(path);
            }
        }
    }
    let (_, mut s) = split(data).expect("not empty");
    let _ = rt.block_on(imap_fetch::uid_fetch_sizes(&mut s, "KF1"));
    let (_, mut s) = split(data).expect("not empty");
    let _ = rt.block_on(imap_fetch::tagged(&mut s, "KF1", "UID MOVE 1:* Processed"));
}

/// `data` as a POP3 server's lines: status lines and multi-line answers (LIST, UIDL, RETR) read
/// with the readers the POP3 transport uses, until the data runs out.
pub fn pop3_responses(data: &[u8]) {
    use crate::transport::pop3::{read_line, read_multiline_text, read_raw_line};
    let Some((first, s)) = split(data) else {
        return;
    };
    runtime().block_on(async {
        let mut io = tokio::io::BufReader::with_capacity(usize::from(first) + 1, s);
        loop {
            if read_line(&mut io).await.is_err() {
                return;
            }
            if read_multiline_text(&mut io).await.is_err() {
                return;
            }
            let mut raw = Vec::new();
            if read_raw_line(&mut io, &mut raw).await.is_err() {
                return;
            }
        }
    });
}

/// `data` as a message through what the pipeline does with one: the content hash, the
/// header-only metadata (handlers that skip the body), the full parse and its metadata, and
/// the document extraction of every handler.
pub fn mime(data: &[u8]) {
    let _ = crate::parse::content_hash(data);
    let _ = crate::parse::meta_without_body(data);
    if let Ok(msg) = crate::parse::parse(data) {
        let _ = crate::parse::meta(&msg);
        for kind in ["monitor-to-monitor", "supplier-invoices", "general"] {
            if let Ok(docs) = crate::handler::handler_for(kind).handle(&msg) {
                for d in docs {
                    let _ = crate::handler::clean_name(&d.name);
                }
            }
        }
    }
}
