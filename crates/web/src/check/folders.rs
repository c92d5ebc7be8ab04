//! Step 6 for incoming-mail accounts read by IMAP or Graph: the folder to read exists. The
//! processed and quarantine folders are created by the intake when missing, so their absence is
//! only mentioned.

use kurir_entra::{AccessToken, ExposeSecret};
use kurir_settings::Effective;

use super::texts::fill;
use super::{Ctx, Path, Run, graph_base, graph_error, http_client, path_segment};

pub(super) async fn step(
    run: &mut Run,
    ctx: &Ctx<'_>,
    token: Option<&AccessToken>,
    imap_folders: Option<Vec<String>>,
) {
    let t = run.t;
    if !ctx.is_account() || ctx.path == Path::Pop3 {
        run.skipped("folders", t.folders_not_applicable);
        return;
    }
    if !run.gate("folders") {
        return;
    }
    if ctx.path == Path::Imap {
        let folders = imap_folders.unwrap_or_default();
        let exists = |name: &str| folders.iter().any(|f| f.eq_ignore_ascii_case(name));
        return check(run, &ctx.eff, exists);
    }
    let (Some(token), Some(mailbox)) = (token, &ctx.mailbox) else {
        run.not_run("folders");
        return;
    };
    match graph_folders(ctx, token, mailbox).await {
        Ok(names) => check(run, &ctx.eff, |name| {
            name.eq_ignore_ascii_case("inbox") || names.iter().any(|f| f.eq_ignore_ascii_case(name))
        }),
        Err(msg) => {
            run.fail("folders", msg, t.folders_failed_fix);
        }
    }
}

/// The display names of the mailbox's top-level folders.
async fn graph_folders(
    ctx: &Ctx<'_>,
    token: &AccessToken,
    mailbox: &str,
) -> Result<Vec<String>, String> {
    let client = http_client(ctx.ca_pem())?;
    let url = format!(
        "{}/users/{}/mailFolders?$top=250&includeHiddenFolders=false",
        graph_base(&ctx.eff),
        path_segment(mailbox)
    );
    let resp = client
        .get(&url)
        .bearer_auth(token.secret.expose_secret())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        let (code, message) = graph_error(&body);
        return Err(format!("HTTP {status} {code}: {message}"));
    }
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    Ok(v["value"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["displayName"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

fn check(run: &mut Run, eff: &Effective, exists: impl Fn(&str) -> bool) {
    let t = run.t;
    let source = eff.get("source_folder").unwrap_or("Inbox");
    if !exists(source) {
        let detail = fill(t.source_folder_missing, &[("folder", source)]);
        run.fail("folders", detail, t.source_folder_missing_fix);
        return;
    }
    let mut detail = fill(t.folder_exists, &[("folder", source)]);
    for key in ["processed_folder", "quarantine_folder"] {
        if let Some(f) = eff.get(key)
            && !exists(f)
        {
            detail.push_str("; ");
            detail.push_str(&fill(t.folder_will_be_created, &[("folder", f)]));
        }
    }
    run.ok("folders", detail);
}
