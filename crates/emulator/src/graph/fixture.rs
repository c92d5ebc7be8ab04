//! The fixture's Graph part: shared mailboxes (`[[mailboxes]]`), which have no sign-in of
//! their own, like Exchange shared mailboxes. Users get a mailbox unless `mailbox = false`
//! (then Graph answers MailboxNotEnabledForRESTAPI), and an app may be limited to a list of
//! mailboxes (`mailbox_access`), like an Exchange application access policy. A user or a shared
//! mailbox names the mailboxes that may send as it (`send_as`, Exchange's Send As permission).

use serde::Deserialize;
use uuid::Uuid;

use crate::fixture::FixtureError;

/// `[[mailboxes]]` as written in the TOML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMailbox {
    address: String,
    display_name: Option<String>,
    object_id: Option<String>,
    tenant: Option<String>,
    /// Mailboxes that may send as this one (Exchange's Send As permission).
    #[serde(default)]
    send_as: Vec<String>,
}

/// A shared mailbox.
#[derive(Clone, Debug)]
pub struct SharedMailbox {
    pub address: String,
    pub display_name: String,
    pub object_id: Uuid,
    pub tenant_id: Uuid,
    /// Mailboxes that may send as this one (Exchange's Send As permission,
    /// `Add-RecipientPermission -Identity <this> -Trustee <mailbox> -AccessRights SendAs`);
    /// lower case.
    pub send_as: Vec<String>,
}

/// Validates the shared mailboxes; `find_tenant(owner, key)` resolves a tenant reference.
pub fn validate(
    raw: Vec<RawMailbox>,
    users: &[crate::fixture::User],
    find_tenant: &dyn Fn(String, &str) -> Result<Uuid, FixtureError>,
) -> Result<Vec<SharedMailbox>, FixtureError> {
    let mut out: Vec<SharedMailbox> = Vec::new();
    for r in raw {
        let address = r.address.trim().to_string();
        let Some((local, domain)) = address.split_once('@') else {
            return Err(FixtureError::BadUpn { upn: address });
        };
        if out.iter().any(|m| m.address.eq_ignore_ascii_case(&address))
            || users.iter().any(|u| u.upn.eq_ignore_ascii_case(&address))
        {
            return Err(FixtureError::Duplicate {
                what: "mailbox",
                id: address,
            });
        }
        let tenant_key = r.tenant.clone().unwrap_or_else(|| domain.to_string());
        let tenant_id = find_tenant(format!("mailbox {address}"), &tenant_key)?;
        let object_id = match r.object_id {
            Some(s) => Uuid::parse_str(s.trim()).map_err(|_| FixtureError::NotAGuid {
                what: "mailbox object_id",
                value: s.clone(),
            })?,
            None => crate::fixture::stable_id("mailbox", &address.to_ascii_lowercase()),
        };
        out.push(SharedMailbox {
            send_as: r
                .send_as
                .iter()
                .map(|a| a.trim().to_ascii_lowercase())
                .collect(),
            display_name: r.display_name.unwrap_or_else(|| local.to_string()),
            address,
            object_id,
            tenant_id,
        });
    }
    Ok(out)
}
