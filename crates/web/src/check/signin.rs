//! Step 4 for incoming-mail accounts read by IMAP or POP3: connect, and sign in with XOAUTH2 (the
//! service principal and the mailbox permission explained when Exchange says no).

use kurir_entra::{AccessToken, ExposeSecret};
use kurir_settings::Effective;

use super::texts::{CheckTexts, fill};
use super::{Ctx, Path, Run, server_of};
use crate::probe::{self, ProbeError};

/// Returns the IMAP folders the server listed, for the folder step.
pub(super) async fn step(
    run: &mut Run,
    ctx: &Ctx<'_>,
    token: Option<&AccessToken>,
) -> Option<Vec<String>> {
    let id = match ctx.path {
        Path::Imap => "imap",
        Path::Pop3 => "pop3",
        Path::Graph => {
            if ctx.is_account() {
                run.skipped("imap", run.t.read_through_graph);
            }
            return None;
        }
    };
    if !run.gate(id) {
        return None;
    }
    let (host, port) = server_of(&ctx.eff, ctx.path);
    let user = ctx.mailbox.clone().unwrap_or_default();
    let ca = ctx.ca_pem();
    let outcome = match token.map(|t| t.secret.expose_secret().to_owned()) {
        None => Err(ProbeError::Protocol("no token".into())),
        Some(tok) if ctx.path == Path::Imap => probe::imap(&host, port, ca.as_deref(), &user, &tok)
            .await
            .map(|f| Some(f.folders)),
        Some(tok) => probe::pop3(&host, port, ca.as_deref(), &user, &tok)
            .await
            .map(|_| None),
    };
    match outcome {
        Ok(folders) => {
            let port = port.to_string();
            let values = [("host", host.as_str()), ("port", &port), ("user", &user)];
            run.ok(id, fill(run.t.signin_ok, &values));
            folders
        }
        Err(e) => {
            let (detail, fix) = explain(run.t, &e, &ctx.eff, &user, id);
            run.fail(id, detail, &fix);
            None
        }
    }
}

/// What a failed IMAP/POP3/SMTP probe means and what to do about it.
pub(super) fn explain(
    t: &CheckTexts,
    e: &ProbeError,
    eff: &Effective,
    user: &str,
    proto: &str,
) -> (String, String) {
    let client_id = eff.get("client_id").unwrap_or("<client id>");
    let values = [("user", user), ("proto", proto), ("client_id", client_id)];
    match e {
        ProbeError::Connect(m) => (m.clone(), t.connect_fix.to_owned()),
        ProbeError::Protocol(m) => (m.clone(), t.protocol_fix.to_owned()),
        ProbeError::AuthRejected(m) if m.contains("5.7.139") => {
            (m.clone(), fill(t.smtp_auth_disabled_fix, &values))
        }
        ProbeError::AuthRejected(m) if eff.auth_flow().is_app_only() => {
            (m.clone(), fill(t.app_token_refused_fix, &values))
        }
        ProbeError::AuthRejected(m) => (m.clone(), fill(t.signin_refused_fix, &values)),
    }
}
