//! IMAP (Exchange Online's `outlook.office365.com:993`, or any IMAP server with OAuth) on
//! async-imap over tokio-rustls.
//!
//! - Sign-in: SASL XOAUTH2, or OAUTHBEARER where offered and preferred. A refused token makes the
//!   server send an error challenge first; we answer it with an empty line (RFC 7628) so the
//!   server finishes with its tagged NO instead of waiting for us.
//! - Identity: `imap:<folder>:<UIDVALIDITY>:<UID>`. If UIDVALIDITY changes, every message gets a
//!   new id and the pipeline's Message-ID/hash dedupe recognises the ones already stored.
//! - Fetch: `UID FETCH <set> (UID BODY.PEEK[])` for a whole batch in one round trip, read by
//!   [`super::imap_fetch`] (not async-imap); a body above [`LARGE_MESSAGE`] streams into a spool
//!   file as it arrives.
//! - Finish: `UID MOVE <set>` (RFC 6851), else `UID COPY` + `UID STORE +FLAGS (\Deleted)` +
//!   `UID EXPUNGE` (UIDPLUS; plain EXPUNGE without it). The destination is created when missing.
//! - IDLE: waits for new mail, but never past the token's expiry minus a margin: the session is
//!   re-authenticated (a new connection) before the server would drop it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_imap::imap_proto::{Capability, Response};
use async_imap::{Authenticator, Client, Session};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use tokio::io::AsyncWriteExt;

use super::{
    Destination, Fetched, LARGE_MESSAGE, Listed, ServerConfig, SpoolDir, Transport, imap_fetch,
};
use crate::IntakeError;
use crate::auth::{Mechanism, SecretBytes, TokenSource, describe_challenge};

type ImapStream = crate::tls::TlsSocket;

/// UIDs per command, keeping command lines well under servers' limits.
const UIDS_PER_COMMAND: usize = 1000;
/// Reconnect (re-authenticate) when the token has less than this left, or less than a tenth
/// of the life it had at sign-in when that is shorter (kurir-entra's cache renews on the same
/// rule, so the new connection gets a new token, not the old one again).
const TOKEN_MARGIN: time::Duration = time::Duration::minutes(5);
/// RFC 3501 says servers may drop an IDLE after 30 minutes; Exchange does so earlier.
const MAX_IDLE: Duration = Duration::from_secs(25 * 60);

/// The account's folders.
#[derive(Debug, Clone)]
pub struct Folders {
    pub source: String,
    pub processed: String,
    pub quarantine: String,
}

pub struct ImapTransport {
    cfg: ServerConfig,
    folders: Folders,
    tokens: Arc<dyn TokenSource>,
    conn: Option<Conn>,
    /// Tags of our own raw commands.
    tags: u64,
}

struct Conn {
    session: Session<ImapStream>,
    token_expires: time::OffsetDateTime,
    /// How long before `token_expires` this connection counts as expired.
    token_margin: time::Duration,
    uidvalidity: u32,
    has_move: bool,
    has_uidplus: bool,
    has_idle: bool,
    existing: HashSet<String>,
    /// EXISTS of the SELECT made while connecting, until a command may have changed it: the
    /// first listing on a new connection needs no second SELECT.
    fresh_exists: Option<u32>,
}

/// Answers the server's first continuation with the token, and an error challenge with an
/// empty response, keeping the challenge for the error message.
struct OAuthAnswer {
    first: Option<SecretBytes>,
    challenge: Arc<Mutex<Option<String>>>,
}

impl Authenticator for OAuthAnswer {
    type Response = Vec<u8>;

    fn process(&mut self, challenge: &[u8]) -> Vec<u8> {
        match self.first.take() {
            Some(initial) => initial.0,
            None => {
                *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(describe_challenge(challenge));
                Vec::new()
            }
        }
    }
}

impl ImapTransport {
    pub fn new(cfg: ServerConfig, folders: Folders, tokens: Arc<dyn TokenSource>) -> Self {
        ImapTransport {
            cfg,
            folders,
            tokens,
            conn: None,
            tags: 0,
        }
    }

    fn server(&self) -> String {
        format!("{}:{}", self.cfg.host, self.cfg.port)
    }

    fn protocol_error(&self, detail: impl std::fmt::Display) -> IntakeError {
        IntakeError::Protocol {
            protocol: "IMAP",
            server: self.server(),
            detail: detail.to_string(),
        }
    }

    /// A connection whose token is still good for a while, made or remade as needed.
    async fn conn(&mut self) -> Result<&mut Conn, IntakeError> {
        let fresh = self
            .conn
            .as_ref()
            .is_some_and(|c| c.token_expires - time::OffsetDateTime::now_utc() > c.token_margin);
        if !fresh {
            if let Some(mut old) = self.conn.take() {
                let _ = old.session.logout().await;
            }
            let conn = self.connect().await?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connection set above"))
    }

    async fn connect(&self) -> Result<Conn, IntakeError> {
        let started = std::time::Instant::now();
        let server = self.server();
        // The token is asked for while the connection is being made (a first token is an
        // HTTPS round trip to Entra ID, as long as the TLS handshake with the mail server).
        // Errors keep their order: no connection, then no OAuth mechanism, then the token.
        let greeted = async {
            let stream = crate::tls::connect(
                "imap",
                &self.cfg.host,
                self.cfg.port,
                self.cfg.ca_file.as_deref(),
            )
            .await?;
            let tls_time = started.elapsed();
            let mut client = Client::new(stream);
            // async-imap does not consume the greeting itself; an unread greeting would be
            // taken for the answer to AUTHENTICATE.
            match client.read_response().await {
                Ok(Some(_greeting)) => {}
                Ok(None) => {
                    return Err(
                        self.protocol_error("the server closed the connection before its greeting")
                    );
                }
                Err(e) => return Err(self.protocol_error(format!("reading the greeting: {e}"))),
            }
            let mechs = auth_mechanisms(&mut client)
                .await
                .map_err(|e| self.protocol_error(format!("CAPABILITY: {e}")))?;
            Ok((client, mechs, tls_time))
        };
        let token = async {
            let t = std::time::Instant::now();
            let bearer = self.tokens.bearer().await;
            (bearer, t.elapsed())
        };
        let (greeted, (bearer, token_time)) = tokio::join!(greeted, token);
        let (client, mechs, tls_time) = greeted?;
        let mechanism = pick_mechanism(self.cfg.mechanism, &mechs).ok_or_else(|| {
            IntakeError::NoOAuthMechanism {
                server: server.clone(),
            }
        })?;
        let bearer = bearer?;
        let challenge = Arc::new(Mutex::new(None));
        let answer = OAuthAnswer {
            first: Some(mechanism.initial_response(&self.cfg.mailbox, &bearer.secret)),
            challenge: challenge.clone(),
        };
        let mut session = match client.authenticate(mechanism.as_str(), answer).await {
            Ok(s) => s,
            Err((e, _client)) => {
                let said = challenge
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .map(|c| format!("{c}; "))
                    .unwrap_or_default();
                return Err(IntakeError::AuthRejected {
                    server,
                    mailbox: self.cfg.mailbox.clone(),
                    mechanism: mechanism.as_str(),
                    permission: "IMAP.AccessAsApp (or IMAP.AccessAsUser.All for a user)",
                    detail: format!("{said}{e}"),
                });
            }
        };
        let auth_time = started.elapsed();
        let caps = session
            .capabilities()
            .await
            .map_err(|e| self.protocol_error(format!("CAPABILITY after sign-in: {e}")))?;
        let mut conn = Conn {
            token_expires: bearer.expires_at,
            token_margin: TOKEN_MARGIN
                .min((bearer.expires_at - time::OffsetDateTime::now_utc()) / 10),
            uidvalidity: 0,
            has_move: caps.has_str("MOVE"),
            has_uidplus: caps.has_str("UIDPLUS"),
            has_idle: caps.has_str("IDLE"),
            existing: HashSet::new(),
            fresh_exists: None,
            session,
        };
        let mailbox = conn
            .session
            .select(&self.folders.source)
            .await
            .map_err(|e| IntakeError::Folder {
                mailbox: self.cfg.mailbox.clone(),
                folder: self.folders.source.clone(),
                detail: format!("SELECT failed: {e}"),
            })?;
        conn.uidvalidity = mailbox.uid_validity.unwrap_or(0);
        conn.fresh_exists = Some(mailbox.exists);
        conn.existing.insert(self.folders.source.clone());
        tracing::debug!(
            server = %server,
            connect_ms = started.elapsed().as_millis() as u64,
            tls_ms = tls_time.as_millis() as u64,
            signed_in_ms = auth_time.as_millis() as u64,
            token_ms = token_time.as_millis() as u64,
            "signed in and selected"
        );
        Ok(conn)
    }

    /// A tag of our own for a command sent past async-imap (`KL` list, `KF` fetch, `KM` move).
    fn next_tag(&mut self, kind: &str) -> String {
        self.tags += 1;
        format!("{kind}{}", self.tags)
    }

    fn server_id(&self, uidvalidity: u32, uid: u32) -> String {
        format!("imap:{}:{uidvalidity}:{uid}", self.folders.source)
    }

    /// The UID of a server id from the current UIDVALIDITY, else None (it cannot be in the
    /// folder any more: a new UIDVALIDITY means new ids).
    fn uid_of(&self, server_id: &str, uidvalidity: u32) -> Option<u32> {
        let rest = server_id.strip_prefix("imap:")?;
        let (head, uid) = rest.rsplit_once(':')?;
        let (folder, validity) = head.rsplit_once(':')?;
        (folder == self.folders.source && validity.parse::<u32>().ok()? == uidvalidity)
            .then(|| uid.parse().ok())
            .flatten()
    }

    async fn ensure_folder(&mut self, folder: &str) -> Result<(), IntakeError> {
        let mailbox = self.cfg.mailbox.clone();
        let conn = self.conn().await?;
        conn.fresh_exists = None;
        if conn.existing.contains(folder) {
            return Ok(());
        }
        match conn.session.create(folder).await {
            Ok(()) => {}
            // ALREADYEXISTS (RFC 5530) or a server's own words for it: the folder is there.
            Err(async_imap::error::Error::No(text))
                if text.to_ascii_uppercase().contains("EXISTS") => {}
            Err(e) => {
                return Err(IntakeError::Folder {
                    mailbox,
                    folder: folder.to_owned(),
                    detail: format!("CREATE failed: {e}"),
                });
            }
        }
        conn.existing.insert(folder.to_owned());
        Ok(())
    }
}

fn proto(server: &str, detail: String) -> IntakeError {
    IntakeError::Protocol {
        protocol: "IMAP",
        server: server.to_owned(),
        detail,
    }
}

/// Sends CAPABILITY before sign-in and returns the SASL mechanisms (upper case).
async fn auth_mechanisms(
    client: &mut Client<ImapStream>,
) -> Result<HashSet<String>, async_imap::error::Error> {
    // async-imap keeps its command writer private; CAPABILITY before sign-in goes straight to
    // the stream under a tag of our own that its generator never produces.
    client.get_mut().write_all(b"KCAP CAPABILITY\r\n").await?;
    client.get_mut().flush().await?;
    let mut mechs = HashSet::new();
    loop {
        let Some(resp) = client.read_response().await? else {
            return Err(async_imap::error::Error::ConnectionLost);
        };
        match resp.parsed() {
            Response::Capabilities(caps) => {
                for c in caps {
                    if let Capability::Auth(m) = c {
                        mechs.insert(m.to_ascii_uppercase());
                    }
                }
            }
            Response::Done { tag, .. } if tag.0 == "KCAP" => break,
            _ => {}
        }
    }
    Ok(mechs)
}

fn pick_mechanism(preferred: Mechanism, offered: &HashSet<String>) -> Option<Mechanism> {
    let other = match preferred {
        Mechanism::XOAuth2 => Mechanism::OAuthBearer,
        Mechanism::OAuthBearer => Mechanism::XOAuth2,
    };
    [preferred, other]
        .into_iter()
        .find(|m| offered.contains(m.as_str()))
}

/// A mailbox name as an IMAP quoted string (RFC 3501 §4.3). Names with CR or LF never get here:
/// `ensure_folder` (async-imap) refuses them first.
fn quote(name: &str) -> String {
    let mut q = String::with_capacity(name.len() + 2);
    q.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// `1,2,3,7,9,10` → `1:3,7,9:10`, in chunks of at most [`UIDS_PER_COMMAND`] UIDs.
pub fn uid_sets(uids: &[u32]) -> Vec<String> {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
        .chunks(UIDS_PER_COMMAND)
        .map(|chunk| {
            let mut parts = Vec::new();
            let mut i = 0;
            while i < chunk.len() {
                let start = chunk[i];
                let mut end = start;
                while i + 1 < chunk.len() && chunk[i + 1] == end + 1 {
                    i += 1;
                    end = chunk[i];
                }
                parts.push(if start == end {
                    start.to_string()
                } else {
                    format!("{start}:{end}")
                });
                i += 1;
            }
            parts.join(",")
        })
        .collect()
}

#[async_trait]
impl Transport for ImapTransport {
    fn protocol(&self) -> &'static str {
        kurir_settings::Protocol::Imap.as_str()
    }

    /// UID MOVE on a second connection while this one fetches: the server allows moving
    /// messages of a mailbox another session has selected (the fetching session is told with
    /// EXPUNGE responses, which the raw fetch skips).
    fn mover(&self) -> Option<Box<dyn Transport>> {
        Some(Box::new(ImapTransport::new(
            self.cfg.clone(),
            self.folders.clone(),
            self.tokens.clone(),
        )))
    }

    async fn list(&mut self) -> Result<Vec<Listed>, IntakeError> {
        let server = self.server();
        let source = self.folders.source.clone();
        let mailbox_addr = self.cfg.mailbox.clone();
        let conn = self.conn().await?;
        let exists = match conn.fresh_exists.take() {
            // Selected a moment ago while connecting.
            Some(exists) => exists,
            // SELECT again: refreshes EXISTS and UIDVALIDITY after IDLE or a previous pass.
            None => {
                let mailbox =
                    conn.session
                        .select(&source)
                        .await
                        .map_err(|e| IntakeError::Folder {
                            mailbox: mailbox_addr,
                            folder: source.clone(),
                            detail: format!("SELECT failed: {e}"),
                        })?;
                conn.uidvalidity = mailbox.uid_validity.unwrap_or(0);
                mailbox.exists
            }
        };
        if exists == 0 {
            return Ok(Vec::new());
        }
        let uidvalidity = conn.uidvalidity;
        let tag = self.next_tag("KL");
        let conn = self.conn.as_mut().expect("connection made above");
        let sizes = match imap_fetch::uid_fetch_sizes(conn.session.get_mut(), &tag).await {
            Ok(sizes) => sizes,
            Err(e) => {
                // The connection is somewhere inside a response: never reuse it.
                self.conn = None;
                return Err(proto(
                    &server,
                    format!("UID FETCH 1:* (UID RFC822.SIZE): {e}"),
                ));
            }
        };
        let mut listed: Vec<Listed> = sizes
            .into_iter()
            .map(|(uid, size)| Listed {
                server_id: self.server_id(uidvalidity, uid),
                size,
            })
            .collect();
        listed.sort_by_key(|l| self.uid_of(&l.server_id, uidvalidity));
        listed.dedup();
        Ok(listed)
    }

    async fn fetch(
        &mut self,
        ids: &[Listed],
        spool: &SpoolDir,
    ) -> Result<Vec<Fetched>, IntakeError> {
        let server = self.server();
        let conn = self.conn().await?;
        conn.fresh_exists = None;
        let uidvalidity = conn.uidvalidity;
        let uids: Vec<u32> = ids
            .iter()
            .filter_map(|l| self.uid_of(&l.server_id, uidvalidity))
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        let sets = uid_sets(&uids);
        // The listed sizes tell how much a one-command batch brings (see imap_fetch::WakeAt).
        let expected = match sets.len() {
            // Sizes are the server's word: a sum that overflows is "a lot", not a panic.
            1 => ids
                .iter()
                .filter_map(|l| l.size)
                .fold(0u64, u64::saturating_add),
            _ => 0,
        };
        for set in sets {
            let tag = self.next_tag("KF");
            let conn = self.conn().await?;
            let hint = imap_fetch::WakeHint {
                #[cfg(target_os = "linux")]
                fd: {
                    use std::os::fd::AsRawFd;
                    Some(conn.session.get_ref().get_ref().0.get_ref().as_raw_fd())
                },
                expected,
            };
            // Large bodies stream into spool files; see imap_fetch for why not async-imap.
            let got = match imap_fetch::uid_fetch_bodies(
                conn.session.get_mut(),
                &tag,
                &set,
                LARGE_MESSAGE,
                spool,
                hint,
            )
            .await
            {
                Ok(got) => got,
                Err(e) => {
                    // The connection is somewhere inside a response: never reuse it.
                    self.conn = None;
                    return Err(match e {
                        imap_fetch::FetchError::Spool(e) => e,
                        other => proto(&server, format!("UID FETCH BODY.PEEK[]: {other}")),
                    });
                }
            };
            for (uid, body) in got {
                out.push(Fetched {
                    server_id: self.server_id(uidvalidity, uid),
                    body,
                });
            }
        }
        Ok(out)
    }

    async fn finish(&mut self, server_ids: &[String], to: Destination) -> Result<(), IntakeError> {
        if server_ids.is_empty() {
            return Ok(());
        }
        let server = self.server();
        let folder = match to {
            Destination::Processed => self.folders.processed.clone(),
            Destination::Quarantine => self.folders.quarantine.clone(),
        };
        self.ensure_folder(&folder).await?;
        let conn = self.conn().await?;
        conn.fresh_exists = None;
        let uidvalidity = conn.uidvalidity;
        let uids: Vec<u32> = server_ids
            .iter()
            .filter_map(|id| self.uid_of(id, uidvalidity))
            .collect();
        let conn = self.conn().await?;
        let has_move = conn.has_move;
        for set in uid_sets(&uids) {
            if has_move {
                let tag = self.next_tag("KM");
                let conn = self.conn.as_mut().expect("connection made above");
                let command = format!("UID MOVE {set} {}", quote(&folder));
                if let Err(e) = imap_fetch::tagged(conn.session.get_mut(), &tag, &command).await {
                    let unusable = !matches!(e, imap_fetch::FetchError::Protocol(_));
                    if unusable {
                        self.conn = None;
                    }
                    return Err(proto(&server, format!("UID MOVE to {folder}: {e}")));
                }
            } else {
                let conn = self.conn.as_mut().expect("connection made above");
                // Without MOVE: copy, flag, expunge. A crash between COPY and EXPUNGE leaves a
                // copy in both folders; the source copy is recorded, so it is only moved again.
                conn.session
                    .uid_copy(&set, &folder)
                    .await
                    .map_err(|e| proto(&server, format!("UID COPY to {folder}: {e}")))?;
                let flagged: Vec<_> = conn
                    .session
                    .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
                    .await
                    .map_err(|e| proto(&server, format!("UID STORE \\Deleted: {e}")))?
                    .try_collect()
                    .await
                    .map_err(|e| proto(&server, format!("UID STORE \\Deleted: {e}")))?;
                drop(flagged);
                if conn.has_uidplus {
                    let gone: Vec<_> = conn
                        .session
                        .uid_expunge(&set)
                        .await
                        .map_err(|e| proto(&server, format!("UID EXPUNGE: {e}")))?
                        .try_collect()
                        .await
                        .map_err(|e| proto(&server, format!("UID EXPUNGE: {e}")))?;
                    drop(gone);
                } else {
                    let gone: Vec<_> = conn
                        .session
                        .expunge()
                        .await
                        .map_err(|e| proto(&server, format!("EXPUNGE: {e}")))?
                        .try_collect()
                        .await
                        .map_err(|e| proto(&server, format!("EXPUNGE: {e}")))?;
                    drop(gone);
                }
            }
        }
        Ok(())
    }

    async fn wait_for_mail(&mut self, max: Duration) -> Result<(), IntakeError> {
        let server = self.server();
        let conn = self.conn().await?;
        // IDLE (or the wait) outlives what the connecting SELECT saw.
        conn.fresh_exists = None;
        if !conn.has_idle {
            tokio::time::sleep(max).await;
            return Ok(());
        }
        // Stop idling before the token expires, so the next pass signs in afresh.
        let left = (conn.token_expires - time::OffsetDateTime::now_utc() - conn.token_margin)
            .try_into()
            .unwrap_or(Duration::ZERO);
        let wait = max.min(MAX_IDLE).min(left);
        if wait.is_zero() {
            return Ok(());
        }
        let Conn {
            session,
            token_expires,
            token_margin,
            uidvalidity,
            has_move,
            has_uidplus,
            has_idle,
            existing,
            fresh_exists: _,
        } = self.conn.take().expect("connection made above");
        let mut idle = session.idle();
        idle.init()
            .await
            .map_err(|e| proto(&server, format!("IDLE: {e}")))?;
        let (done, _stop) = idle.wait_with_timeout(wait);
        let outcome = done.await;
        let session = idle
            .done()
            .await
            .map_err(|e| proto(&server, format!("IDLE DONE: {e}")))?;
        outcome.map_err(|e| proto(&server, format!("IDLE: {e}")))?;
        self.conn = Some(Conn {
            session,
            token_expires,
            token_margin,
            uidvalidity,
            has_move,
            has_uidplus,
            has_idle,
            existing,
            fresh_exists: None,
        });
        Ok(())
    }

    async fn close(&mut self) {
        if let Some(mut c) = self.conn.take() {
            let _ = c.session.logout().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_compress_ranges_and_chunk() {
        assert_eq!(uid_sets(&[3, 1, 2, 7, 9, 10]), vec!["1:3,7,9:10"]);
        let many: Vec<u32> = (1..=2500).collect();
        assert_eq!(uid_sets(&many), vec!["1:1000", "1001:2000", "2001:2500"]);
    }
}
