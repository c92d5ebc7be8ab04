//! Least privilege: which application permissions (app roles) the configured ways of moving mail
//! need, so that `kurir setup entra` grants exactly those and Test connection can show what a
//! token carries against them (issue #17.2).
//!
//! The one table of use → permission is [`Use::permission`]; the app roles are Microsoft's:
//! Graph `Mail.ReadWrite` (read and move mail), `Mail.Send`
//! (<https://learn.microsoft.com/en-us/graph/permissions-reference>), Exchange Online
//! `IMAP.AccessAsApp`, `POP.AccessAsApp`, `SMTP.SendAsApp`
//! (<https://learn.microsoft.com/en-us/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth>),
//! and `Application.ReadWrite.OwnedBy` for an app that rotates its own credential.

use kurir_settings::{AuthFlow, Effective, Method, Protocol, Scope, SettingsSnapshot, Source};
use serde::Serialize;

use crate::Resource;

/// Microsoft Graph's application id (the resource of `Mail.*` and `Application.*` roles).
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Office 365 Exchange Online's application id (the resource of IMAP/POP/SMTP roles).
pub const EXCHANGE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";

impl Resource {
    /// The resource's application id in every tenant.
    pub fn app_id(self) -> &'static str {
        match self {
            Resource::Graph => GRAPH_APP_ID,
            Resource::Exchange => EXCHANGE_APP_ID,
        }
    }

    /// Its name in the Entra admin center's API permissions list.
    pub fn display_name(self) -> &'static str {
        match self {
            Resource::Graph => "Microsoft Graph",
            Resource::Exchange => "Office 365 Exchange Online",
        }
    }
}

/// One way Kurir uses the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Use {
    /// An incoming-mail account read (and moved) through Graph.
    GraphRead,
    /// Mail sent with Graph `sendMail`.
    GraphSend,
    ImapRead,
    PopRead,
    /// Mail sent with SMTP AUTH XOAUTH2.
    SmtpSend,
    /// The app replaces its own client secret (`rotate_secret`).
    SelfRotation,
}

impl Use {
    /// The application permission this use needs: (resource, app role value).
    pub fn permission(self) -> (Resource, &'static str) {
        match self {
            Use::GraphRead => (Resource::Graph, "Mail.ReadWrite"),
            Use::GraphSend => (Resource::Graph, "Mail.Send"),
            Use::SelfRotation => (Resource::Graph, "Application.ReadWrite.OwnedBy"),
            Use::ImapRead => (Resource::Exchange, "IMAP.AccessAsApp"),
            Use::PopRead => (Resource::Exchange, "POP.AccessAsApp"),
            Use::SmtpSend => (Resource::Exchange, "SMTP.SendAsApp"),
        }
    }
}

/// A permission the configuration needs, and the subjects that need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Need {
    pub resource: &'static str,
    pub role: &'static str,
    /// Storage keys of the subjects (`system`, `user:ANNA`, `account:Inkorg`, `webshop`).
    pub by: Vec<String>,
}

/// What a subject sends or reads with, when it uses an app-only flow of app `client_id`.
fn uses_of(eff: &Effective, scope: &Scope, client_id: &str) -> Vec<Use> {
    if eff.method() != Method::ExchangeOnline
        || !eff.auth_flow().is_app_only()
        || !eff
            .get("client_id")
            .is_some_and(|c| c.eq_ignore_ascii_case(client_id))
    {
        return Vec::new();
    }
    match scope {
        Scope::Account(_) => match eff.protocol() {
            Some(Protocol::Imap) => vec![Use::ImapRead],
            Some(Protocol::Pop3) => vec![Use::PopRead],
            _ => vec![Use::GraphRead],
        },
        _ => {
            let address = if *scope == Scope::System {
                "default_sender"
            } else {
                "email"
            };
            let mut out = Vec::new();
            if eff.get(address).is_some() {
                // As the outbox routes (kurir_outbox::sender): SMTP only when an SMTP server
                // is set explicitly, Graph otherwise.
                let smtp = eff
                    .field("smtp_host")
                    .is_some_and(|f| f.value.is_some() && f.source != Source::Default);
                out.push(if smtp { Use::SmtpSend } else { Use::GraphSend });
            }
            if *scope == Scope::System
                && eff.flag("rotate_secret")
                && eff.auth_flow() == AuthFlow::ClientSecret
            {
                out.push(Use::SelfRotation);
            }
            out
        }
    }
}

/// Every permission the settings need from app `client_id`, with who needs it, in a stable
/// order (resource, role).
pub fn needed(snap: &SettingsSnapshot, client_id: &str) -> Vec<Need> {
    let mut scopes = vec![Scope::System, Scope::Webshop];
    scopes.extend(snap.users.keys().map(|c| Scope::User(c.clone())));
    scopes.extend(snap.accounts.keys().map(|a| Scope::Account(a.clone())));
    let mut out: Vec<Need> = Vec::new();
    for scope in scopes {
        let eff = snap.resolve(&scope);
        for u in uses_of(&eff, &scope, client_id) {
            let (resource, role) = u.permission();
            let who = scope.storage_key();
            match out
                .iter_mut()
                .find(|n| n.role == role && n.resource == resource.app_id())
            {
                Some(n) => {
                    if !n.by.contains(&who) {
                        n.by.push(who);
                    }
                }
                None => out.push(Need {
                    resource: resource.app_id(),
                    role,
                    by: vec![who],
                }),
            }
        }
    }
    out.sort_by(|a, b| (a.resource, a.role).cmp(&(b.resource, b.role)));
    out
}

/// A token's roles against what is needed from its resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// Needed and carried.
    pub granted: Vec<String>,
    /// Needed, not carried: the subjects named in `needs` fail.
    pub missing: Vec<Need>,
    /// Carried, needed by nothing configured: more than least privilege.
    pub extra: Vec<String>,
}

/// Compares `roles` (a token for `resource`) with `needs`.
pub fn compare(resource: Resource, roles: &[String], needs: &[Need]) -> Comparison {
    let mut c = Comparison::default();
    for n in needs.iter().filter(|n| n.resource == resource.app_id()) {
        if roles.iter().any(|r| r == n.role) {
            c.granted.push(n.role.to_owned());
        } else {
            c.missing.push(n.clone());
        }
    }
    for r in roles {
        if !c.granted.contains(r) {
            c.extra.push(r.clone());
        }
    }
    c.extra.sort();
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use kurir_settings::Layer;

    fn app_only(layer: &mut Layer) {
        layer
            .set_plain("method", "exchange-online")
            .set_plain("client_id", "11111111-1111-1111-1111-111111111111")
            .set_plain("tenant_id", "22222222-2222-2222-2222-222222222222")
            .set_plain("auth_flow", "client-secret");
    }

    #[test]
    fn needs_follow_accounts_senders_and_rotation() {
        let mut snap = SettingsSnapshot::default();
        app_only(&mut snap.system);
        snap.system
            .set_plain("default_sender", "erp@x.example")
            .set_plain("rotate_secret", "true");
        let mut imap = Layer::default();
        imap.set_plain("protocol", "imap")
            .set_plain("mailbox", "a@x.example");
        snap.accounts.insert("Order".into(), imap);
        let mut smtp_user = Layer::default();
        smtp_user
            .set_plain("email", "anna@x.example")
            .set_plain("smtp_host", "smtp.office365.com");
        snap.users.insert("ANNA".into(), smtp_user);
        let needs = needed(&snap, "11111111-1111-1111-1111-111111111111");
        let roles: Vec<_> = needs.iter().map(|n| n.role).collect();
        assert_eq!(
            roles,
            [
                "IMAP.AccessAsApp",
                "SMTP.SendAsApp",
                "Application.ReadWrite.OwnedBy",
                "Mail.Send"
            ]
        );
        assert_eq!(needs[1].by, ["user:ANNA"]);
        // Another app's settings need nothing from this one.
        assert!(needed(&snap, "33333333-3333-3333-3333-333333333333").is_empty());
        // An app that only sends through Graph: Mail.ReadWrite is extra.
        let c = compare(
            Resource::Graph,
            &[
                "Mail.ReadWrite".into(),
                "Mail.Send".into(),
                "Application.ReadWrite.OwnedBy".into(),
            ],
            &needs,
        );
        assert_eq!(c.extra, ["Mail.ReadWrite"]);
        assert!(c.missing.is_empty());
        let c = compare(Resource::Exchange, &["IMAP.AccessAsApp".into()], &needs);
        assert_eq!(c.missing.len(), 1);
        assert_eq!(c.missing[0].role, "SMTP.SendAsApp");
    }
}
