//! `kurir setup entra`: Kurir registers itself in Microsoft Entra ID with an administrator's
//! device-code sign-in (the work is [`kurir_service::setup`]), then runs Test connection.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use kurir_entra::DeviceCodePrompt;
use kurir_service::setup::{SetupRequest, Transports};
use kurir_settings::Scope;
use secrecy::SecretString;

use super::{Place, open_store};
use crate::fail::bad;

#[derive(Subcommand, Debug)]
pub enum SetupCmd {
    /// Register Kurir in Microsoft Entra ID: an administrator signs in (device code), Kurir
    /// creates the app registration and its service principal, grants exactly the application
    /// permissions the transports need (admin consent), adds a client secret and writes the
    /// system settings. Safe to run again: it reuses what exists.
    Entra(EntraArgs),
}

#[derive(Args, Debug)]
pub struct EntraArgs {
    /// The tenant (Katalog-ID or a verified domain); default: the system setting tenant_id.
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
    /// The app registration's display name.
    #[arg(long, default_value = "Kurir (Monitor ERP e-mail)")]
    name: String,
    /// What the app must be allowed: graph, imap, pop, smtp (comma separated).
    #[arg(long, default_value = "graph")]
    transports: String,
    /// The app's credential: certificate (recommended: generated here, only its public part is
    /// uploaded, the key stays encrypted in Kurir) or secret.
    #[arg(long, default_value = "certificate", value_name = "KIND")]
    credential: String,
    /// Days a new client secret or certificate lives (at most 730).
    #[arg(long, default_value_t = 365, value_name = "DAYS")]
    secret_days: u32,
    /// Do not let the app rotate its own secret (no owner, no Application.ReadWrite.OwnedBy).
    #[arg(long)]
    no_self_rotation: bool,
    /// A mailbox the app is for (repeatable): named in the printed Exchange commands.
    #[arg(long = "mailbox", value_name = "ADDRESS")]
    mailboxes: Vec<String>,
    /// Skip Test connection at the end.
    #[arg(long)]
    no_check: bool,
    #[arg(long)]
    json: bool,
}

struct Steps;
impl kurir_service::setup::Progress for Steps {
    fn step(&self, text: &str) {
        eprintln!("kurir: {text}");
    }
}

pub async fn run(place: &Place, cmd: SetupCmd) -> anyhow::Result<ExitCode> {
    let SetupCmd::Entra(args) = cmd;
    let store = open_store(place).await?;
    let snap = store.snapshot().await?;
    let eff = snap.resolve(&Scope::System);
    let tenant = args
        .tenant
        .clone()
        .or_else(|| eff.get("tenant_id").map(str::to_owned))
        .ok_or_else(|| {
            bad("which tenant? give --tenant (the Directory (tenant) ID or a verified domain such as contoso.onmicrosoft.com), or set tenant_id first")
        })?;
    let transports = Transports::parse(&args.transports).map_err(bad)?;
    let credential = kurir_service::setup::CredentialKind::parse(&args.credential).map_err(bad)?;
    eprintln!(
        "kurir: an administrator of {tenant} signs in now (Global Administrator, or Application Administrator plus Privileged Role Administrator):"
    );
    let admin = kurir_service::setup::admin_sign_in(
        &eff,
        &tenant,
        Arc::new(|p: &DeviceCodePrompt| eprintln!("{}", p.message)),
    )
    .await
    .map_err(|e| match e {
        kurir_service::setup::SetupError::Entra(e) => anyhow::Error::from(e),
        e => bad(e.to_string()),
    })?;
    let (user, tenant_id, graph) = (admin.user.clone(), admin.tenant_id.clone(), admin.graph);
    eprintln!("kurir: signed in as {user}");
    let req = SetupRequest {
        display_name: args.name.clone(),
        transports,
        self_rotation: !args.no_self_rotation,
        credential,
        secret_days: args.secret_days,
        mailboxes: args.mailboxes.clone(),
    };
    let secret: SecretString = admin.token;
    let report = kurir_service::setup::run(
        &store, &snap, &graph, &secret, &user, &tenant_id, &req, &Steps,
    )
    .await
    .map_err(|e| match e {
        kurir_service::setup::SetupError::Store(e) => anyhow::Error::from(e),
        e => bad(e.to_string()),
    })?;
    let check = if args.no_check {
        None
    } else {
        Some(kurir_web::check::run(store.clone(), &Scope::System, kurir_web::i18n::Lang::En).await)
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"setup": report, "check": check}))?
        );
    } else {
        let yes_no =
            |b: bool, new: &str, old: &str| if b { new.to_owned() } else { old.to_owned() };
        println!(
            "App registration   {} ({})",
            args.name,
            yes_no(report.created_application, "created", "found")
        );
        println!("  client id        {}", report.app_id);
        println!("  tenant           {}", report.tenant_id);
        println!(
            "Service principal  {} ({})",
            report.service_principal_id,
            yes_no(report.created_service_principal, "created", "found")
        );
        if !report.granted.is_empty() {
            println!("Granted now        {}", report.granted.join(", "));
        }
        if !report.already_granted.is_empty() {
            println!("Already granted    {}", report.already_granted.join(", "));
        }
        match (&report.new_secret, &report.new_certificate) {
            (Some((id, until)), _) => {
                println!("Client secret      added (id {id}, expires {until}), stored encrypted")
            }
            (_, Some((id, until, thumbprint))) => println!(
                "Certificate        generated and its public part uploaded (key id {id}, thumbprint {thumbprint}, expires {until}); the private key is stored encrypted and never left Kurir"
            ),
            (None, None) => println!(
                "Credential         the stored one is kept (this app's, valid for more than 30 days)"
            ),
        }
        println!(
            "System settings    {}",
            yes_no(report.settings_changed, "written", "unchanged")
        );
        println!("\nIn Exchange Online PowerShell (Kurir cannot do these through Graph):");
        for line in &report.powershell {
            println!("  {line}");
        }
        if let Some(c) = &check {
            println!(
                "\nTest connection: {}",
                if c.ok {
                    "ok"
                } else {
                    "problems (see `kurir check`)"
                }
            );
            for s in &c.steps {
                println!("  {:?}: {}: {}", s.status, s.title, s.detail);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
