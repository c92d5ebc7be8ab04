//! `kurir token`: get a token with the effective settings of the system, a user, an account or
//! the webshop, and show what it allows (flow, audience, roles/scopes, expiry) — the first thing
//! to try when mail does not move. The token itself is printed only with `--show-token`.

use std::process::ExitCode;

use clap::Args;
use kurir_entra::{ExposeSecret, Lang};
use serde_json::json;

use super::{Place, ScopeArgs, open_store};
use crate::connect::{Resource, token_client, token_request};

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(flatten)]
    scope: ScopeArgs,
    /// graph (Microsoft Graph) or exchange (IMAP/POP3/SMTP).
    #[arg(long, value_enum, default_value_t = Resource::Graph)]
    resource: Resource,
    #[arg(long)]
    json: bool,
    /// Also print the access token (it is a credential: anyone holding it can read the mailbox
    /// until it expires).
    #[arg(long)]
    show_token: bool,
    /// Language of explanations: en or sv.
    #[arg(long, env = "KURIR_LANG", default_value = "en")]
    lang: String,
}

pub async fn run(place: &Place, args: TokenArgs) -> anyhow::Result<ExitCode> {
    let lang = if args.lang.eq_ignore_ascii_case("sv") {
        Lang::Sv
    } else {
        Lang::En
    };
    let scope = args.scope.scope()?;
    let store = open_store(place).await?;
    let snap = store.snapshot().await?;
    super::assign::check_exists(&snap, &scope)?;
    let (eff, request) = token_request(&*store, &snap, &scope, args.resource).await?;
    let client = token_client(&eff, store.clone())?;
    match client.token(&request).await {
        Ok(token) => {
            let c = &token.claims;
            let expires = token
                .expires_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            if args.json {
                let mut v = json!({
                    "subject": scope.storage_key(),
                    "flow": token.flow.as_str(),
                    "grant": token.grant.as_str(),
                    "audience": c.aud,
                    "roles": c.roles,
                    "scopes": c.scp,
                    "user": c.upn.clone().or(c.unique_name.clone()),
                    "tenant": c.tid,
                    "app": c.appid.clone().or(c.azp.clone()),
                    "expires_at": expires,
                });
                if args.show_token {
                    v["access_token"] = json!(token.secret.expose_secret());
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("Token for {scope} obtained.");
                println!(
                    "  flow        {} ({})",
                    token.flow.as_str(),
                    token.grant.as_str()
                );
                println!("  audience    {}", c.aud.as_deref().unwrap_or("—"));
                if !c.roles.is_empty() {
                    println!("  roles       {}", c.roles.join(" "));
                }
                if let Some(scp) = &c.scp {
                    println!("  scopes      {scp}");
                }
                if let Some(u) = c.upn.as_ref().or(c.unique_name.as_ref()) {
                    println!("  user        {u}");
                }
                println!("  tenant      {}", c.tid.as_deref().unwrap_or("—"));
                println!("  expires     {expires}");
                if c.roles.is_empty() && c.scp.is_none() {
                    println!(
                        "  warning     the token carries no permissions: grant the app Mail.* / IMAP.AccessAsApp permissions and admin consent in Entra ID"
                    );
                }
                if args.show_token {
                    println!("{}", token.secret.expose_secret());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("kurir: no token for {scope}.");
            eprintln!("{}", err.explain(lang));
            Ok(ExitCode::from(1))
        }
    }
}
