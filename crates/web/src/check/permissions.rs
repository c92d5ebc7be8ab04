//! Step 3 (app-only flows): least privilege. The roles the app's tokens carry against what the
//! configured transports need (`kurir_connect::permissions`): a permission this subject needs
//! and lacks fails the step; one another subject needs, or one nothing needs, is a warning with
//! the fix. Delegated flows are skipped (their permissions are the user's `scp`).

use kurir_connect::Resource;
use kurir_connect::permissions::{self, Comparison};
use kurir_entra::AccessToken;

use super::texts::fill;
use super::token::get_token;
use super::{Ctx, Path, Run, StepStatus};

/// Runs the step; returns the roles of the Graph token, when known (the mailbox step uses them
/// to tell a missing permission from a mailbox outside the app's scope).
pub(super) async fn step(
    run: &mut Run,
    ctx: &Ctx<'_>,
    token: Option<&AccessToken>,
) -> Option<Vec<String>> {
    let t = run.t;
    if !ctx.eff.auth_flow().is_app_only() {
        run.skipped("permissions", t.permissions_delegated);
        return None;
    }
    if !run.gate("permissions") {
        return None;
    }
    let token = token?;
    let client_id = ctx.eff.get("client_id").unwrap_or_default();
    let needs = permissions::needed(ctx.snap, client_id);
    let own = match ctx.path {
        Path::Graph => Resource::Graph,
        Path::Imap | Path::Pop3 => Resource::Exchange,
    };
    if needs.is_empty() {
        // Nothing uses the app yet (right after `kurir setup entra`): nothing to call extra.
        let roles = token.claims.roles.join(", ");
        run.ok(
            "permissions",
            fill(t.permissions_unused, &[("roles", &roles)]),
        );
        return (own == Resource::Graph).then(|| token.claims.roles.clone());
    }
    let who = ctx.scope.storage_key();
    let mut lines = Vec::new();
    let mut fixes = Vec::new();
    let mut status = StepStatus::Ok;
    let mut graph_roles = None;
    for resource in [Resource::Graph, Resource::Exchange] {
        let roles = if resource == own {
            token.claims.roles.clone()
        } else if needs.iter().any(|n| n.resource == resource.app_id()) {
            match get_token(ctx.store, ctx.snap, ctx.scope, resource).await {
                Ok(other) => other.claims.roles.clone(),
                Err(e) => {
                    lines.push(fill(
                        t.permissions_unchecked,
                        &[
                            ("resource", resource.display_name()),
                            ("error", &e.to_string()),
                        ],
                    ));
                    status = worse(status, StepStatus::Warning);
                    continue;
                }
            }
        } else {
            // Nothing configured uses this resource: no token is asked for it.
            continue;
        };
        if resource == Resource::Graph {
            graph_roles = Some(roles.clone());
        }
        let Comparison {
            granted,
            missing,
            extra,
        } = permissions::compare(resource, &roles, &needs);
        if !granted.is_empty() {
            lines.push(fill(
                t.permissions_granted,
                &[("roles", &granted.join(", "))],
            ));
        }
        for m in &missing {
            lines.push(fill(
                t.permission_missing,
                &[
                    ("role", m.role),
                    ("resource", resource.display_name()),
                    ("by", &m.by.join(", ")),
                ],
            ));
            status = worse(
                status,
                if m.by.contains(&who) {
                    StepStatus::Failed
                } else {
                    StepStatus::Warning
                },
            );
        }
        if !missing.is_empty() {
            let roles: Vec<&str> = missing.iter().map(|m| m.role).collect();
            fixes.push(fill(
                t.permission_missing_fix,
                &[
                    ("roles", &roles.join(", ")),
                    ("resource", resource.display_name()),
                ],
            ));
        }
        if !extra.is_empty() {
            lines.push(fill(t.permissions_extra, &[("roles", &extra.join(", "))]));
            fixes.push(fill(
                t.permissions_extra_fix,
                &[("roles", &extra.join(", "))],
            ));
            status = worse(status, StepStatus::Warning);
        }
    }
    let s = run.step("permissions", status, lines.join(" "));
    if !fixes.is_empty() {
        s.fix = Some(fixes.join(" "));
    }
    graph_roles
}

fn worse(a: StepStatus, b: StepStatus) -> StepStatus {
    let rank = |s| match s {
        StepStatus::Failed => 2,
        StepStatus::Warning => 1,
        _ => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}
