//! Step 4: the mailbox is reachable through Microsoft Graph (its Inbox), with Graph's 404 and 403
//! explained.

use kurir_entra::{AccessToken, ExposeSecret};

use super::texts::fill;
use super::{Ctx, Path, Run, graph_base, graph_error, http_client, path_segment};

/// `graph_roles`: the app-only token's roles, when the permissions step read them.
pub(super) async fn step(
    run: &mut Run,
    ctx: &Ctx<'_>,
    token: Option<&AccessToken>,
    graph_roles: Option<&[String]>,
) {
    let t = run.t;
    if ctx.path != Path::Graph {
        run.skipped("mailbox", t.read_by_protocol);
        return;
    }
    if !run.gate("mailbox") {
        return;
    }
    let can_read = graph_roles.map(|roles| {
        roles.iter().any(|r| {
            matches!(
                r.as_str(),
                "Mail.ReadWrite" | "Mail.Read" | "Mail.ReadBasic"
            )
        })
    });
    if can_read == Some(false) && !ctx.is_account() {
        // Least privilege for a subject that only sends: reading its Inbox would be refused
        // although sending works.
        run.skipped("mailbox", t.send_only);
        return;
    }
    match (token, &ctx.mailbox) {
        (Some(token), Some(mailbox)) => {
            graph_mailbox(run, ctx, token, mailbox, can_read == Some(true)).await
        }
        (_, None) => run.skipped("mailbox", t.no_mailbox),
        (None, _) => run.not_run("mailbox"),
    }
}

/// `may_read`: the token carries a read permission, so a 403 means the mailbox is outside the
/// app's scope (an application access policy or an RBAC for Applications management scope).
async fn graph_mailbox(
    run: &mut Run,
    ctx: &Ctx<'_>,
    token: &AccessToken,
    mailbox: &str,
    may_read: bool,
) {
    let t = run.t;
    let client = match http_client(ctx.ca_pem()) {
        Ok(c) => c,
        Err(e) => {
            run.fail("mailbox", e, "");
            return;
        }
    };
    let base = graph_base(&ctx.eff);
    let url = format!("{base}/users/{}/mailFolders/inbox", path_segment(mailbox));
    let resp = match client
        .get(&url)
        .bearer_auth(token.secret.expose_secret())
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let detail = fill(
                t.graph_unreachable,
                &[("url", &base), ("error", &e.to_string())],
            );
            run.fail("mailbox", detail, t.graph_unreachable_fix);
            return;
        }
    };
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    if (200..300).contains(&status) {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let count = v["totalItemCount"].as_u64().unwrap_or(0).to_string();
        run.ok(
            "mailbox",
            fill(t.inbox_reached, &[("mailbox", mailbox), ("count", &count)]),
        );
        return;
    }
    let (code, message) = graph_error(&body);
    let client_id = ctx.eff.get("client_id").unwrap_or("<client id>");
    let values = [
        ("mailbox", mailbox),
        ("code", code.as_str()),
        ("message", message.as_str()),
        ("client_id", client_id),
    ];
    let (detail, fix) = match (status, code.as_str()) {
        (404, "ErrorInvalidUser") | (404, "ResourceNotFound") => (
            fill(t.no_such_mailbox, &values),
            t.no_such_mailbox_fix.to_owned(),
        ),
        (404, "MailboxNotEnabledForRESTAPI") => (
            fill(t.not_rest_enabled, &values),
            t.not_rest_enabled_fix.to_owned(),
        ),
        (403, _) | (_, "ErrorAccessDenied") if may_read => (
            fill(t.outside_scope, &values),
            fill(t.outside_scope_fix, &values),
        ),
        (403, _) | (_, "ErrorAccessDenied") => (
            fill(t.access_denied, &values),
            fill(t.access_denied_fix, &values),
        ),
        (401, _) => (
            format!("HTTP 401 {code}: {message}"),
            t.graph_401_fix.to_owned(),
        ),
        _ => (
            format!("HTTP {status} {code}: {message}"),
            t.graph_other_fix.to_owned(),
        ),
    };
    run.fail("mailbox", detail, &fix);
}
