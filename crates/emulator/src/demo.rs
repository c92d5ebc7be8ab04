//! The built-in demo directory and the names other crates' tests use to reach it.
//!
//! Every AADSTS error the emulator knows can be produced with an entity from here (an expired
//! secret, an app without admin consent, an MFA user, …), so a test elsewhere in the workspace
//! can provoke any of them without writing a fixture. The demo app's certificate is generated
//! into the state dir at first start (a private key in the source would be copied into real
//! configurations); its paths come from [`crate::RunningEmulator::demo_certificate`].

/// The demo tenant's id.
pub const TENANT_ID: &str = "6d3c9f0a-2b4e-4c1d-9a8f-5e7b0c2d4f61";
/// The demo tenant's verified (initial) domain.
pub const TENANT_DOMAIN: &str = "kurirdemo.onmicrosoft.com";
/// A second tenant with no apps: using the demo app there gives AADSTS700016.
pub const OTHER_TENANT_ID: &str = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
pub const OTHER_TENANT_DOMAIN: &str = "kurirother.onmicrosoft.com";

/// The demo app: consented, a valid secret, a generated certificate, public client flows on.
pub const CLIENT_ID: &str = "3b1d7c52-8e4f-4a09-b6d2-91f0e5a7c3d8";
pub const CLIENT_NAME: &str = "Kurir Demo";
pub const CLIENT_SECRET_ID: &str = "c2a4e6f8-1b3d-4f5a-8c7e-9d0b2a4c6e8f";
pub const CLIENT_SECRET: &str = "kUr~8Q.demo_SecretValue-7fJ2xLw9pZ4tN6vB1mC3";
/// A second secret of the demo app that expired: using it gives AADSTS7000222.
pub const EXPIRED_SECRET_ID: &str = "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b";
pub const EXPIRED_SECRET: &str = "kUr~3X.expired_SecretValue-Qw8Er7Ty6Ui5Op4A";

/// An app whose permissions were never granted admin consent: delegated flows give AADSTS65001,
/// app-only tokens carry no roles (as Microsoft issues them).
pub const UNCONSENTED_CLIENT_ID: &str = "7a9c1e3f-5b7d-4f1a-8c3e-5a7c9e1b3d5f";
pub const UNCONSENTED_CLIENT_SECRET: &str = "kUr~5Z.unconsented_Secret-Hj4Kl6Mn8Bv0Cx2Z";

/// An app whose service principal is disabled ("Enabled for users to sign in" off): every
/// token request gives AADSTS7000112.
pub const DISABLED_CLIENT_ID: &str = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9";
pub const DISABLED_CLIENT_SECRET: &str = "kUr~2D.disabled_Secret-Pq9Rs8Tu7Vw6Xy5Z";

/// The default password of every demo user.
pub const PASSWORD: &str = "Kurir-Demo-Passw0rd!";
/// A user who can sign in.
pub const USER: &str = "adele.vance@kurirdemo.onmicrosoft.com";
/// A second ordinary user (for tests that need two mailboxes).
pub const USER2: &str = "megan.bowen@kurirdemo.onmicrosoft.com";
/// A shared mailbox the demo app serves (the ERP's machine-to-machine mail).
pub const M2M_MAILBOX: &str = "m2m@kurirdemo.onmicrosoft.com";
/// A shared mailbox outside the demo app's application access policy: app-only Graph calls
/// on it get 403 ErrorAccessDenied.
pub const RESTRICTED_MAILBOX: &str = "ceo@kurirdemo.onmicrosoft.com";
/// A user without an Exchange Online mailbox: Graph answers 404 MailboxNotEnabledForRESTAPI.
pub const NO_MAILBOX_USER: &str = "no.mailbox@kurirdemo.onmicrosoft.com";
/// MFA required (AADSTS50076).
pub const MFA_USER: &str = "mfa.user@kurirdemo.onmicrosoft.com";
/// MFA registration required (AADSTS50079).
pub const MFA_ENROLL_USER: &str = "mfa.enroll@kurirdemo.onmicrosoft.com";
/// Account disabled (AADSTS50057).
pub const DISABLED_USER: &str = "disabled.user@kurirdemo.onmicrosoft.com";
/// Account locked (AADSTS50053).
pub const LOCKED_USER: &str = "locked.user@kurirdemo.onmicrosoft.com";
/// Password expired (AADSTS50055).
pub const EXPIRED_PASSWORD_USER: &str = "expired.password@kurirdemo.onmicrosoft.com";
/// Blocked by Conditional Access (AADSTS53003).
pub const CA_BLOCKED_USER: &str = "ca.blocked@kurirdemo.onmicrosoft.com";
/// The tenant's administrator (Global Administrator): may register apps and grant consent.
pub const ADMIN_USER: &str = "admin@kurirdemo.onmicrosoft.com";
/// A public client an administrator signs in with to set Kurir up (device code): the client id
/// of Microsoft's "Microsoft Graph Command Line Tools", which every tenant has, with the
/// delegated permissions the set-up needs, consented.
pub const SETUP_CLIENT_ID: &str = "14d82eec-204b-4c2f-b7e8-296a70dab67e";

/// The demo fixture in the documented TOML format (also a worked example of it).
pub fn toml() -> String {
    format!(
        r#"
[[tenants]]
id = "{TENANT_ID}"
display_name = "Kurir Demo"
domains = ["{TENANT_DOMAIN}"]

[[tenants]]
id = "{OTHER_TENANT_ID}"
display_name = "Kurir Other"
domains = ["{OTHER_TENANT_DOMAIN}"]

[[apps]]
client_id = "{CLIENT_ID}"
display_name = "{CLIENT_NAME}"
tenant = "{TENANT_ID}"
public_client = true
admin_consent = true
generate_certificate = true
# Like an Exchange application access policy: app-only Graph mail only on these mailboxes.
mailbox_access = ["{USER}", "{USER2}", "{M2M_MAILBOX}"]
secrets = [
  {{ id = "{CLIENT_SECRET_ID}", value = "{CLIENT_SECRET}", expires = 2099-12-31T00:00:00Z }},
  {{ id = "{EXPIRED_SECRET_ID}", value = "{EXPIRED_SECRET}", expires = 2024-01-31T00:00:00Z }},
]
[apps.application_permissions]
"https://graph.microsoft.com" = ["Mail.Read", "Mail.ReadWrite", "Mail.Send", "User.Read.All"]
"https://outlook.office365.com" = ["IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp"]
[apps.delegated_permissions]
"https://graph.microsoft.com" = ["User.Read", "Mail.Read", "Mail.ReadWrite", "Mail.Send"]
"https://outlook.office.com" = ["IMAP.AccessAsUser.All", "POP.AccessAsUser.All", "SMTP.Send"]

[[apps]]
client_id = "{DISABLED_CLIENT_ID}"
display_name = "Kurir Disabled"
tenant = "{TENANT_ID}"
disabled = true
secrets = [
  {{ id = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", value = "{DISABLED_CLIENT_SECRET}", expires = 2099-12-31T00:00:00Z }},
]
[apps.application_permissions]
"https://graph.microsoft.com" = ["Mail.ReadWrite"]

[[apps]]
client_id = "{UNCONSENTED_CLIENT_ID}"
display_name = "Kurir Unconsented"
tenant = "{TENANT_ID}"
public_client = true
admin_consent = false
secrets = [
  {{ id = "d4c3b2a1-0f9e-4d8c-b7a6-f5e4d3c2b1a0", value = "{UNCONSENTED_CLIENT_SECRET}", expires = 2099-12-31T00:00:00Z }},
]
[apps.application_permissions]
"https://graph.microsoft.com" = ["Mail.Read"]
"https://outlook.office365.com" = ["IMAP.AccessAsApp"]
[apps.delegated_permissions]
"https://outlook.office.com" = ["IMAP.AccessAsUser.All", "SMTP.Send"]

[[apps]]
client_id = "{SETUP_CLIENT_ID}"
display_name = "Microsoft Graph Command Line Tools"
tenant = "{TENANT_ID}"
public_client = true
admin_consent = true
[apps.delegated_permissions]
"https://graph.microsoft.com" = ["User.Read", "Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All"]

[[users]]
upn = "{ADMIN_USER}"
display_name = "Kurir Demo Admin"
password = "{PASSWORD}"
directory_roles = ["Global Administrator"]

[[users]]
upn = "{USER}"
display_name = "Adele Vance"
password = "{PASSWORD}"

[[users]]
upn = "{USER2}"
display_name = "Megan Bowen"
password = "{PASSWORD}"

[[users]]
upn = "{NO_MAILBOX_USER}"
display_name = "No Mailbox"
password = "{PASSWORD}"
mailbox = false

[[mailboxes]]
address = "{M2M_MAILBOX}"
display_name = "M2M (ERP)"
# Exchange's Send As permission: Adele may send as the ERP's mailbox.
send_as = ["{USER}"]

[[mailboxes]]
address = "{RESTRICTED_MAILBOX}"
display_name = "CEO"
# Granted too, but outside the demo app's access policy: app-only sends as it are denied.
send_as = ["{USER}"]

[[users]]
upn = "{MFA_USER}"
password = "{PASSWORD}"
mfa_required = true

[[users]]
upn = "{MFA_ENROLL_USER}"
password = "{PASSWORD}"
mfa_registration_required = true

[[users]]
upn = "{DISABLED_USER}"
password = "{PASSWORD}"
disabled = true

[[users]]
upn = "{LOCKED_USER}"
password = "{PASSWORD}"
locked = true

[[users]]
upn = "{EXPIRED_PASSWORD_USER}"
password = "{PASSWORD}"
password_expired = true

[[users]]
upn = "{CA_BLOCKED_USER}"
password = "{PASSWORD}"
conditional_access_blocked = true
"#
    )
}

pub(crate) fn fixture() -> crate::Fixture {
    crate::Fixture::from_toml(&toml()).expect("the built-in demo fixture is valid")
}
