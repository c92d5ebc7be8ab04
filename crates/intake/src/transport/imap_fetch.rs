//! The bulk `UID FETCH <set> (UID BODY.PEEK[])` of a batch, read straight off the connection.
//!
//! async-imap parses every response with imap-proto from a buffer that grows 4 KiB at a time and
//! is copied into a fresh allocation after each response; for a batch of hundreds of messages
//! that was most of the fetch's time, and a large message had to sit in that buffer whole. This
//! reader keeps one 256 KiB buffer, copies each literal once into a buffer of its exact size (or
//! streams it into a spool file when it is large, so a 50 MB message never sits in memory), and
//! understands just enough of the response grammar (RFC 3501 §7.4.2, §9) for FETCH: items with
//! atoms, numbers, quoted strings, NIL, parenthesised lists and literals, in any order.
//! Everything else the server says meanwhile (EXISTS, EXPUNGE — allowed during UID FETCH —, OK
//! notices, unsolicited FLAGS) is skipped.
//!
//! The command goes out under a tag of our own on the session's stream, between async-imap's own
//! commands; async-imap's read buffer is empty then because every command before it was read up
//! to its tagged completion.

use std::io;
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{SpoolDir, Spooled};

const BUF: usize = 256 * 1024;
/// Longest response line (outside literals) we accept.
const MAX_LINE: usize = 1024 * 1024;
/// Largest literal we accept. The size is the server's word, so it is checked before anything
/// is allocated or read: Exchange Online takes messages up to 150 MB, so a literal beyond this
/// comes from a broken or hostile server (or a tampered connection), never from real mail.
pub(crate) const MAX_LITERAL: u64 = 512 * 1024 * 1024;
/// Memory reserved up front for a literal in memory; more grows as the data arrives, so an
/// announced size costs nothing until the bytes are really there.
const RESERVE_AHEAD: usize = 16 * 1024 * 1024;

/// Refuses a literal larger than [`MAX_LITERAL`] before a byte of it is read.
fn check_literal(n: u64) -> io::Result<()> {
    if n > MAX_LITERAL {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the server announced a literal of {n} bytes, more than the {MAX_LITERAL} bytes Kurir accepts for one message (Exchange Online's limit is 150 MB): the server is broken or the connection was tampered with"
            ),
        ));
    }
    Ok(())
}

/// Why a raw fetch failed; the connection is unusable afterwards either way.
#[derive(Debug)]
pub(crate) enum FetchError {
    Io(io::Error),
    /// The server answered NO or BAD, or said something this reader cannot follow.
    Protocol(String),
    /// Creating or writing a spool file failed.
    Spool(crate::IntakeError),
}

impl From<io::Error> for FetchError {
    fn from(e: io::Error) -> Self {
        FetchError::Io(e)
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Io(e) => write!(f, "{e}"),
            FetchError::Protocol(s) => f.write_str(s),
            FetchError::Spool(e) => write!(f, "{e}"),
        }
    }
}

struct Reader<'a, S> {
    s: &'a mut S,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    wake: WakeAt,
}

/// Don't wake the reader for every TLS record: a bulk FETCH arrives at a few hundred MB/s in
/// 16 KiB records, and a reader that is faster than the server sleeps and wakes for each one
/// (15,000 context switches for 5,000 messages, a large part of intake's CPU on a VM). While
/// many more bytes are known to be on their way, the socket's receive low-water mark
/// (SO_RCVLOWAT) is raised so that the kernel reports it readable only once a good amount
/// has arrived.
///
/// What is "known to be on the way" comes from the sizes the server listed. Should they be too
/// high (a message expunged meanwhile, a server whose sizes are estimates), a wait that lasts
/// longer than [`WAKE_PATIENCE`] drops the mark to one byte and reads on: a late wake-up, never
/// a hang.
struct WakeAt {
    #[cfg(target_os = "linux")]
    fd: Option<std::os::fd::RawFd>,
    /// The mark set on the socket now.
    current: usize,
    /// Response bytes still expected (a lower bound when the listed sizes are right).
    expected: u64,
}

/// The highest mark: enough to cut the wake-ups eightfold, small enough to keep the pipe busy.
const WAKE_BYTES: usize = 128 * 1024;
/// The last bytes of the expected total are read as they come (room for sizes a little high).
const WAKE_MARGIN: u64 = 64 * 1024;
/// How long a raised mark may hold a read up before it is dropped.
const WAKE_PATIENCE: std::time::Duration = std::time::Duration::from_millis(20);

/// What a bulk FETCH may use to wake less often: the socket under the TLS stream, and how
/// many bytes the listed sizes say the response carries.
#[derive(Clone, Copy, Default)]
pub(crate) struct WakeHint {
    #[cfg(target_os = "linux")]
    pub fd: Option<std::os::fd::RawFd>,
    pub expected: u64,
}

impl Drop for WakeAt {
    /// Whatever happened, the socket goes back to waking at every byte for async-imap.
    fn drop(&mut self) {
        self.set(1);
    }
}

impl WakeAt {
    fn from_hint(hint: WakeHint) -> WakeAt {
        WakeAt {
            #[cfg(target_os = "linux")]
            fd: hint.fd,
            current: 1,
            expected: hint.expected,
        }
    }

    /// No mark: every read wakes at the first byte.
    fn none() -> WakeAt {
        WakeAt::from_hint(WakeHint::default())
    }

    fn mark(&self) -> usize {
        let ahead = self.expected.saturating_sub(WAKE_MARGIN);
        (ahead.min(WAKE_BYTES as u64) as usize).max(1)
    }

    fn set(&mut self, mark: usize) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = self.fd
            && mark != self.current
        {
            let v = mark as libc::c_int;
            // SAFETY: a valid socket descriptor (owned by the stream being read) and an int
            // option value of the right size.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVLOWAT,
                    (&v as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                self.current = mark;
            } else {
                self.fd = None; // not a TCP socket after all: read without the mark
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = mark;
    }

    fn consumed(&mut self, n: usize) {
        self.expected = self.expected.saturating_sub(n as u64);
    }
}

/// One read from `s` into `into`, waking at the low-water mark `wake` chooses.
async fn read_some<S: AsyncRead + Unpin>(
    s: &mut S,
    wake: &mut WakeAt,
    into: &mut [u8],
) -> io::Result<usize> {
    let mark = wake.mark();
    wake.set(mark);
    if wake.current > 1 {
        // Cancelling a read that is still waiting loses nothing (tokio and rustls reads are
        // cancel-safe): the same read is simply made again with the mark at one byte.
        if let Ok(r) = tokio::time::timeout(WAKE_PATIENCE, s.read(into)).await {
            return r;
        }
        wake.set(1);
    }
    s.read(into).await
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Reader<'a, S> {
    /// Sends `command` under `tag` and returns a reader for what the server answers.
    async fn send(
        stream: &'a mut S,
        tag: &str,
        command: &str,
        buf: usize,
        wake: WakeAt,
    ) -> io::Result<Reader<'a, S>> {
        stream
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        stream.flush().await?;
        Ok(Reader {
            s: stream,
            buf: vec![0; buf],
            pos: 0,
            end: 0,
            wake,
        })
    }
}

impl<S: AsyncRead + Unpin> Reader<'_, S> {
    /// Skips the literals a response line announces (and the lines after them), to the end of
    /// that response.
    async fn skip_rest_of(&mut self, line: &[u8]) -> io::Result<()> {
        let mut pending = literal_at_end(line);
        while let Some(n) = pending {
            self.discard(n).await?;
            pending = literal_at_end(&self.line().await?);
        }
        Ok(())
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Reads more from the stream (at least one byte, or an error at EOF).
    async fn fill(&mut self) -> io::Result<()> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        let n = read_some(self.s, &mut self.wake, &mut self.buf[self.end..]).await?;
        self.wake.consumed(n);
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection in the middle of a FETCH response",
            ));
        }
        self.end += n;
        Ok(())
    }

    /// One line without its CRLF.
    async fn line(&mut self) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        loop {
            if let Some(i) = self.buffered().iter().position(|b| *b == b'\n') {
                line.extend_from_slice(&self.buf[self.pos..self.pos + i]);
                self.pos += i + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            line.extend_from_slice(self.buffered());
            self.pos = self.end;
            if line.len() > MAX_LINE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a response line longer than 1 MiB",
                ));
            }
            self.fill().await?;
        }
    }

    /// A literal of `n` bytes into memory, copied once. The buffer grows as the data arrives
    /// (the size is the server's claim).
    async fn literal_vec(&mut self, n: u64) -> io::Result<Vec<u8>> {
        check_literal(n)?;
        let n = usize::try_from(n)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a literal too large"))?;
        let mut v = Vec::with_capacity(n.min(RESERVE_AHEAD));
        loop {
            let take = (n - v.len()).min(self.end - self.pos);
            v.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            let need = n - v.len();
            if need == 0 {
                return Ok(v);
            }
            if need >= BUF / 2 {
                // Big: straight into its own buffer, no detour through ours.
                let mut filled = v.len();
                while filled < n {
                    if filled == v.len() {
                        // Double (at least 16 MiB at a time), never past the announced size.
                        let grow = (n - filled).min(v.len().max(RESERVE_AHEAD));
                        v.resize(filled + grow, 0);
                    }
                    let got = read_some(self.s, &mut self.wake, &mut v[filled..]).await?;
                    if got == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    self.wake.consumed(got);
                    filled += got;
                }
                return Ok(v);
            }
            self.fill().await?;
        }
    }

    /// A literal of `n` bytes into a new spool file.
    async fn literal_file(&mut self, n: u64, spool: &SpoolDir) -> Result<Spooled, FetchError> {
        check_literal(n)?;
        let (path, mut file) = spool.new_file().map_err(FetchError::Spool)?;
        let disk = |e: io::Error, path: &PathBuf| {
            FetchError::Spool(crate::IntakeError::disk("write a spool file", path, e))
        };
        let mut left = n;
        while left > 0 {
            if self.pos == self.end {
                self.fill().await?;
            }
            let take = (left as usize).min(self.end - self.pos);
            file.write_all(&self.buf[self.pos..self.pos + take])
                .await
                .map_err(|e| disk(e, &path))?;
            self.pos += take;
            left -= take as u64;
        }
        file.flush().await.map_err(|e| disk(e, &path))?;
        Ok(Spooled::File { path, size: n })
    }

    async fn discard(&mut self, mut n: u64) -> io::Result<()> {
        check_literal(n)?;
        while n > 0 {
            if self.pos == self.end {
                self.fill().await?;
            }
            let take = (n as usize).min(self.end - self.pos);
            self.pos += take;
            n -= take as u64;
        }
        Ok(())
    }
}

/// `{123}` (or the non-synchronising `{123+}`) at the end of a line: the size of the literal
/// that follows the line.
fn literal_at_end(line: &[u8]) -> Option<u64> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|b| *b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[derive(Debug, PartialEq)]
enum Tok {
    /// An atom or number (a FETCH item name such as `BODY[]` or `BODY[]<0>` included).
    Atom(Vec<u8>),
    Quoted(Vec<u8>),
    Open,
    Close,
    /// A literal of this size follows the current line.
    Literal(u64),
    End,
}

/// Tokens of one response line; a literal marker ends the line.
struct Cursor {
    line: Vec<u8>,
    i: usize,
}

impl Cursor {
    fn next(&mut self) -> Result<Tok, FetchError> {
        let l = &self.line;
        while self.i < l.len() && l[self.i] == b' ' {
            self.i += 1;
        }
        if self.i >= l.len() {
            return Ok(Tok::End);
        }
        match l[self.i] {
            b'(' => {
                self.i += 1;
                Ok(Tok::Open)
            }
            b')' => {
                self.i += 1;
                Ok(Tok::Close)
            }
            b'"' => {
                let mut out = Vec::new();
                self.i += 1;
                while self.i < l.len() {
                    match l[self.i] {
                        b'\\' if self.i + 1 < l.len() => {
                            out.push(l[self.i + 1]);
                            self.i += 2;
                        }
                        b'"' => {
                            self.i += 1;
                            return Ok(Tok::Quoted(out));
                        }
                        c => {
                            out.push(c);
                            self.i += 1;
                        }
                    }
                }
                Err(FetchError::Protocol(
                    "an unterminated quoted string in a FETCH response".into(),
                ))
            }
            b'{' => match literal_at_end(&l[self.i..]) {
                Some(n) => {
                    self.i = l.len();
                    Ok(Tok::Literal(n))
                }
                None => Err(FetchError::Protocol(format!(
                    "an unexpected '{{' in a FETCH response: {}",
                    String::from_utf8_lossy(&l[self.i..])
                ))),
            },
            _ => {
                // An atom; `[...]` may hold spaces and parentheses (BODY[HEADER.FIELDS (A)]).
                let start = self.i;
                let mut depth = 0usize;
                while self.i < l.len() {
                    match l[self.i] {
                        b'[' => depth += 1,
                        b']' => depth = depth.saturating_sub(1),
                        b' ' | b'(' | b')' if depth == 0 => break,
                        _ => {}
                    }
                    self.i += 1;
                }
                Ok(Tok::Atom(l[start..self.i].to_vec()))
            }
        }
    }
}

/// Sends `UID FETCH <set> (UID BODY.PEEK[])` under `tag` and reads every response up to the
/// tagged completion. Bodies larger than `large` go into spool files. Returns (UID, body) pairs
/// in the order the server sent them.
pub(crate) async fn uid_fetch_bodies<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    tag: &str,
    set: &str,
    large: u64,
    spool: &SpoolDir,
    hint: WakeHint,
) -> Result<Vec<(u32, Spooled)>, FetchError> {
    let command = format!("UID FETCH {set} (UID BODY.PEEK[])");
    let items = fetch(
        stream,
        tag,
        &command,
        Some((large, spool)),
        WakeAt::from_hint(hint),
    )
    .await?;
    Ok(items
        .into_iter()
        .filter_map(|i| Some((i.uid?, i.body?)))
        .collect())
}

/// `UID FETCH 1:* (UID RFC822.SIZE)`: every message's UID and size, by UID.
/// (async-imap allocates and queues each of the thousands of responses; this reads them off
/// the buffer.)
pub(crate) async fn uid_fetch_sizes<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    tag: &str,
) -> Result<Vec<(u32, Option<u64>)>, FetchError> {
    let items = fetch(
        stream,
        tag,
        "UID FETCH 1:* (UID RFC822.SIZE)",
        None,
        WakeAt::none(),
    )
    .await?;
    // An unsolicited FETCH (a flag change) may name a UID again, without its size.
    let mut sizes = std::collections::BTreeMap::new();
    for i in items {
        if let Some(uid) = i.uid {
            let size = sizes.entry(uid).or_insert(None);
            *size = size.or(i.size);
        }
    }
    Ok(sizes.into_iter().collect())
}

/// Sends `command` under `tag` and reads up to its tagged completion, skipping whatever the
/// server says meanwhile: a `UID MOVE` of thousands of messages is answered with an EXPUNGE
/// line for each, which async-imap would allocate and queue one by one.
pub(crate) async fn tagged<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    tag: &str,
    command: &str,
) -> Result<(), FetchError> {
    let mut r = Reader::send(stream, tag, command, 16 * 1024, WakeAt::none()).await?;
    let tag_prefix = format!("{tag} ");
    loop {
        let line = r.line().await?;
        if let Some(rest) = line.strip_prefix(tag_prefix.as_bytes()) {
            if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case(b"OK") {
                return Ok(());
            }
            return Err(FetchError::Protocol(
                String::from_utf8_lossy(rest).into_owned(),
            ));
        }
        r.skip_rest_of(&line).await?;
    }
}

/// What one FETCH response carried of the items we ask for.
struct Item {
    uid: Option<u32>,
    size: Option<u64>,
    body: Option<Spooled>,
}

async fn fetch<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    tag: &str,
    command: &str,
    spool_above: Option<(u64, &SpoolDir)>,
    wake: WakeAt,
) -> Result<Vec<Item>, FetchError> {
    let mut r = Reader::send(stream, tag, command, BUF, wake).await?;
    let mut out = Vec::new();
    let tag_prefix = format!("{tag} ");
    loop {
        let line = r.line().await?;
        if let Some(rest) = line.strip_prefix(tag_prefix.as_bytes()) {
            if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case(b"OK") {
                return Ok(out);
            }
            // A spool file of this batch is removed by the pipeline's recovery on the next pass.
            return Err(FetchError::Protocol(format!(
                "UID FETCH: {}",
                String::from_utf8_lossy(rest)
            )));
        }
        let Some(untagged) = line.strip_prefix(b"* ") else {
            return Err(FetchError::Protocol(format!(
                "unexpected during UID FETCH: {}",
                String::from_utf8_lossy(&line)
            )));
        };
        // `* <n> FETCH (`: a message's data; anything else is skipped (with its literals).
        let mut words = untagged.splitn(3, |b| *b == b' ');
        let is_fetch = words
            .next()
            .is_some_and(|n| n.iter().all(u8::is_ascii_digit))
            && words
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(b"FETCH"));
        if !is_fetch {
            r.skip_rest_of(&line).await?;
            continue;
        }
        let start = line.len() - words.next().map_or(0, <[u8]>::len);
        let mut cur = Cursor { line, i: start };
        if cur.next()? != Tok::Open {
            return Err(FetchError::Protocol(format!(
                "a FETCH response without its '(': {}",
                String::from_utf8_lossy(&cur.line)
            )));
        }
        let mut uid: Option<u32> = None;
        let mut size: Option<u64> = None;
        let mut body: Option<Spooled> = None;
        // Items: name value, until the closing parenthesis.
        loop {
            let name = match cur.next()? {
                Tok::Close => break,
                Tok::Atom(a) => a,
                other => {
                    return Err(FetchError::Protocol(format!(
                        "a FETCH item name expected, got {other:?}"
                    )));
                }
            };
            let value = cur.next()?;
            if name.eq_ignore_ascii_case(b"UID") {
                let Tok::Atom(n) = value else {
                    return Err(FetchError::Protocol("UID without a number".into()));
                };
                uid = std::str::from_utf8(&n).ok().and_then(|s| s.parse().ok());
                continue;
            }
            if name.eq_ignore_ascii_case(b"RFC822.SIZE") {
                if let Tok::Atom(n) = &value {
                    size = std::str::from_utf8(n).ok().and_then(|s| s.parse().ok());
                }
                continue;
            }
            let is_body = name.len() >= 6 && name[..6].eq_ignore_ascii_case(b"BODY[]");
            match value {
                Tok::Literal(n) => {
                    if is_body {
                        body = Some(match spool_above {
                            Some((large, spool)) if n > large => r.literal_file(n, spool).await?,
                            _ => Spooled::Memory(r.literal_vec(n).await?),
                        });
                    } else {
                        r.discard(n).await?;
                    }
                    cur = Cursor {
                        line: r.line().await?,
                        i: 0,
                    };
                }
                Tok::Quoted(q) if is_body => body = Some(Spooled::Memory(q)),
                Tok::Open => {
                    // A list value (FLAGS, or anything else): skipped, literals included.
                    let mut depth = 1usize;
                    while depth > 0 {
                        match cur.next()? {
                            Tok::Open => depth += 1,
                            Tok::Close => depth -= 1,
                            Tok::Literal(n) => {
                                r.discard(n).await?;
                                cur = Cursor {
                                    line: r.line().await?,
                                    i: 0,
                                };
                            }
                            Tok::End => {
                                return Err(FetchError::Protocol(
                                    "a FETCH response ended inside a list".into(),
                                ));
                            }
                            Tok::Atom(_) | Tok::Quoted(_) => {}
                        }
                    }
                }
                Tok::End | Tok::Close => {
                    return Err(FetchError::Protocol(format!(
                        "the FETCH item {} has no value",
                        String::from_utf8_lossy(&name)
                    )));
                }
                // NIL, numbers, other quoted values.
                Tok::Atom(_) | Tok::Quoted(_) => {}
            }
        }
        match (uid, body) {
            (Some(uid), body) => out.push(Item {
                uid: Some(uid),
                size,
                body,
            }),
            // Unsolicited FETCH (flag changes) carries no UID.
            (None, Some(Spooled::File { path, .. })) => {
                let _ = std::fs::remove_file(path);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(server: &'static [u8], large: u64) -> Result<Vec<(u32, Spooled)>, FetchError> {
        let (mut client, mut srv) = tokio::io::duplex(64);
        let task = tokio::spawn(async move {
            // Read the command line, then answer.
            let mut cmd = Vec::new();
            let mut b = [0u8; 1];
            while !cmd.ends_with(b"\r\n") {
                srv.read_exact(&mut b).await.unwrap();
                cmd.push(b[0]);
            }
            srv.write_all(server).await.unwrap();
            String::from_utf8(cmd).unwrap()
        });
        let dir = std::env::temp_dir().join(format!("kurir-rawfetch-{}", rand::random::<u32>()));
        let out = uid_fetch_bodies(
            &mut client,
            "KF1",
            "1:3",
            large,
            &SpoolDir(dir),
            WakeHint::default(),
        )
        .await;
        assert_eq!(
            task.await.unwrap(),
            "KF1 UID FETCH 1:3 (UID BODY.PEEK[])\r\n"
        );
        out
    }

    /// Sizes that promise far more than comes (a message expunged meanwhile) cost a late
    /// wake-up, never a hang; and the socket wakes at every byte again afterwards.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_low_water_mark_set_too_high_only_delays() {
        use std::os::fd::AsRawFd;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut cmd = [0u8; 256];
            let _ = s.read(&mut cmd).await.unwrap();
            // Four small bodies arriving in pieces, well under the expected 10 MB.
            for uid in 1..=4u32 {
                let part = format!("* {uid} FETCH (UID {uid} BODY[] {{5}}\r\nbody{uid})\r\n");
                s.write_all(part.as_bytes()).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            s.write_all(b"KF1 OK done\r\n").await.unwrap();
            let _ = s.read(&mut cmd).await;
        });
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let fd = client.as_raw_fd();
        let hint = WakeHint {
            fd: Some(fd),
            expected: 10 * 1024 * 1024,
        };
        let started = std::time::Instant::now();
        let dir = std::env::temp_dir().join(format!("kurir-rawfetch-{}", rand::random::<u32>()));
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            uid_fetch_bodies(&mut client, "KF1", "1:4", 1 << 20, &SpoolDir(dir), hint),
        )
        .await
        .expect("the fetch must not hang on a low-water mark")
        .unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(mem(&got[3].1), b"body4");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // The mark is back at one byte.
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a valid socket and an int-sized out value.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!((rc, v), (0, 1));
        drop(client);
        server.await.unwrap();
    }

    /// A hostile (or intercepted) server over real TCP: it answers the FETCH with one line and
    /// `{n}` announcing a literal of `n` bytes, sends a few bytes and keeps the connection open.
    async fn hostile_server(n: u64) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut cmd = [0u8; 256];
            let _ = s.read(&mut cmd).await.unwrap();
            let line = format!("* 1 FETCH (UID 1 RFC822.SIZE 5 BODY[] {{{n}}}\r\nhello");
            let _ = s.write_all(line.as_bytes()).await;
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        });
        addr
    }

    #[tokio::test]
    async fn imap_literal_of_u64_max_does_not_abort() {
        for n in [u64::MAX, 1 << 62, MAX_LITERAL + 1] {
            // Into memory (the sizes listing has no spool directory)...
            let addr = hostile_server(n).await;
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let got = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                uid_fetch_sizes(&mut c, "KF1"),
            )
            .await
            .expect("refused at once, not read on");
            let e = got.expect_err("an error, not a message").to_string();
            assert!(e.contains(&format!("literal of {n} bytes")), "{e}");
            // ...and into a spool file: nothing is written for it either.
            let addr = hostile_server(n).await;
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let dir =
                std::env::temp_dir().join(format!("kurir-rawfetch-{}", rand::random::<u32>()));
            let got = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                uid_fetch_bodies(
                    &mut c,
                    "KF1",
                    "1",
                    1 << 20,
                    &SpoolDir(dir.clone()),
                    WakeHint::default(),
                ),
            )
            .await
            .expect("refused at once, not streamed to disk");
            let e = got.expect_err("an error, not a message").to_string();
            assert!(e.contains("more than the"), "{e}");
            assert!(
                std::fs::read_dir(&dir).map_or(true, |d| d.count() == 0),
                "no spool file for a refused literal"
            );
        }
    }

    fn mem(s: &Spooled) -> &[u8] {
        match s {
            Spooled::Memory(v) => v,
            Spooled::File { .. } => panic!("expected memory"),
        }
    }

    #[tokio::test]
    async fn bodies_in_any_item_order_with_noise_between() {
        let got = run(
            b"* 1 FETCH (UID 7 BODY[] {5}\r\nhello)\r\n\
              * 3 EXPUNGE\r\n\
              * OK [ALERT] {3}\r\nabc\r\n\
              * 2 FETCH (FLAGS (\\Seen) BODY[] {3}\r\nx)y UID 9)\r\n\
              * 2 FETCH (UID 9 FLAGS (\\Seen \\Deleted))\r\n\
              * 3 FETCH (BODY[] \"q\\\"t\" UID 10)\r\n\
              KF1 OK Fetch completed.\r\n",
            1 << 20,
        )
        .await
        .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].0, mem(&got[0].1)), (7, &b"hello"[..]));
        assert_eq!((got[1].0, mem(&got[1].1)), (9, &b"x)y"[..]));
        assert_eq!((got[2].0, mem(&got[2].1)), (10, &b"q\"t"[..]));
    }

    #[tokio::test]
    async fn large_bodies_go_to_a_spool_file() {
        let got = run(
            b"* 1 FETCH (UID 7 BODY[] {12}\r\nhello world!)\r\nKF1 OK done\r\n",
            4,
        )
        .await
        .unwrap();
        let Spooled::File { path, size } = &got[0].1 else {
            panic!("expected a file")
        };
        assert_eq!(*size, 12);
        assert_eq!(std::fs::read(path).unwrap(), b"hello world!");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn no_and_eof_are_errors() {
        let e = run(b"KF1 NO [SERVERBUG] oops\r\n", 100).await.unwrap_err();
        assert!(e.to_string().contains("SERVERBUG"), "{e}");
        let e = run(b"* 1 FETCH (UID 7 BODY[] {50}\r\nshort", 100)
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::Io(_)), "{e}");
    }

    #[test]
    fn literal_markers() {
        assert_eq!(literal_at_end(b"* 1 FETCH (BODY[] {123}"), Some(123));
        assert_eq!(literal_at_end(b"{7+}"), Some(7));
        assert_eq!(literal_at_end(b"abc}"), None);
        assert_eq!(literal_at_end(b"{}"), None);
    }
}
