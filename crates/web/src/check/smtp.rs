//! Step 4 for users and the webshop: SMTP AUTH XOAUTH2 (5.7.139 explained). It only matters
//! where mail is sent by SMTP, so its failure is a warning.

use kurir_connect::Resource;
use kurir_entra::ExposeSecret;
use kurir_settings::{Scope, TlsMode};

use super::signin::explain;
use super::texts::fill;
use super::token::{TokenFailure, get_token};
use super::{Ctx, Run};
use crate::probe::{self, ProbeError};

pub(super) async fn step(run: &mut Run, ctx: &Ctx<'_>) {
    let t = run.t;
    if ctx.is_account() {
        run.skipped("smtp", t.account_does_not_send);
        return;
    }
    let Some(user) = ctx
        .mailbox
        .as_deref()
        .filter(|_| *ctx.scope != Scope::System)
    else {
        run.skipped("smtp", t.smtp_only_users);
        return;
    };
    if !run.gate("smtp") {
        return;
    }
    let eff = &ctx.eff;
    let host = eff.get("smtp_host").unwrap_or("smtp.office365.com");
    let port = eff.port("smtp_port").unwrap_or(587);
    let mode = eff.tls("smtp_tls").unwrap_or(TlsMode::StartTls);
    if mode == TlsMode::None {
        // No token is fetched, let alone sent: XOAUTH2 without TLS would hand the bearer token
        // to anyone on the path (settings validation refuses this too).
        run.warn("smtp", t.smtp_tls_none.to_owned(), t.smtp_tls_none_fix);
        return;
    }
    let outcome = match get_token(ctx.store, ctx.snap, ctx.scope, Resource::Exchange).await {
        Ok(tok) => {
            let ca = ctx.ca_pem();
            let secret = tok.secret.expose_secret();
            probe::smtp(host, port, mode, ca.as_deref(), user, secret).await
        }
        Err(TokenFailure::Entra(e)) => Err(ProbeError::AuthRejected(
            e.explain(run.lang.entra()).summary.clone(),
        )),
        Err(_) => Err(ProbeError::Protocol(t.no_exchange_token.to_owned())),
    };
    match outcome {
        Ok(()) => {
            let port = port.to_string();
            let values = [("host", host), ("port", port.as_str()), ("user", user)];
            run.ok("smtp", fill(t.signin_ok, &values));
        }
        Err(e) => {
            // Mail can still be sent through Graph: SMTP matters only where the outbox sends by
            // SMTP (or the ERP relays through Kurir's listener to smtp.office365.com).
            let (detail, fix) = explain(t, &e, eff, user, "SMTP");
            run.warn("smtp", detail, &fix);
        }
    }
}
