//! The texts of Test connection in Swedish and English: one table per language, as the rest of
//! the UI's texts in `i18n.rs`. `{name}` marks a value filled in by [`fill`].

/// Every text of Test connection.
pub struct CheckTexts {
    pub title_settings: &'static str,
    pub title_token: &'static str,
    pub title_mailbox: &'static str,
    pub title_imap: &'static str,
    pub title_pop3: &'static str,
    pub title_smtp: &'static str,
    pub title_folders: &'static str,
    pub not_run: &'static str,

    pub store_failed_fix: &'static str,
    /// `{method}`
    pub not_exchange: &'static str,
    pub not_exchange_fix: &'static str,
    /// `{flow}`
    pub settings_ok: &'static str,

    pub no_permissions: &'static str,
    pub no_permissions_fix: &'static str,
    /// `{aud}`, `{perms}`
    pub token_ok: &'static str,
    pub settings_incomplete_fix: &'static str,
    pub title_permissions: &'static str,
    /// Delegated flows: the signed-in user's scopes are what counts.
    pub permissions_delegated: &'static str,
    /// `{roles}`
    pub permissions_granted: &'static str,
    /// `{roles}`
    pub permissions_unused: &'static str,
    /// `{role}`, `{resource}`, `{by}`
    pub permission_missing: &'static str,
    /// `{roles}`
    pub permissions_extra: &'static str,
    /// `{resource}`, `{error}`
    pub permissions_unchecked: &'static str,
    /// `{roles}`, `{resource}`
    pub permission_missing_fix: &'static str,
    /// `{roles}`
    pub permissions_extra_fix: &'static str,
    /// `{mailbox}`, `{code}`, `{message}`
    pub outside_scope: &'static str,
    /// `{mailbox}`, `{client_id}`
    pub outside_scope_fix: &'static str,
    pub send_only: &'static str,
    pub token_timeout: &'static str,
    pub token_timeout_fix: &'static str,

    pub no_mailbox: &'static str,
    pub read_by_protocol: &'static str,
    /// `{url}`, `{error}`
    pub graph_unreachable: &'static str,
    pub graph_unreachable_fix: &'static str,
    /// `{mailbox}`, `{count}`
    pub inbox_reached: &'static str,
    /// `{mailbox}`
    pub no_such_mailbox: &'static str,
    pub no_such_mailbox_fix: &'static str,
    /// `{mailbox}`
    pub not_rest_enabled: &'static str,
    pub not_rest_enabled_fix: &'static str,
    /// `{mailbox}`, `{code}`, `{message}`
    pub access_denied: &'static str,
    /// `{mailbox}`, `{client_id}`
    pub access_denied_fix: &'static str,
    pub graph_401_fix: &'static str,
    pub graph_other_fix: &'static str,

    /// `{host}`, `{port}`, `{user}`
    pub signin_ok: &'static str,
    pub account_does_not_send: &'static str,
    pub read_through_graph: &'static str,
    pub connect_fix: &'static str,
    pub protocol_fix: &'static str,
    /// `{user}`
    pub smtp_auth_disabled_fix: &'static str,
    /// `{user}`, `{proto}`, `{client_id}`
    pub app_token_refused_fix: &'static str,
    /// `{user}`, `{proto}`
    pub signin_refused_fix: &'static str,

    pub smtp_only_users: &'static str,
    pub smtp_tls_none: &'static str,
    pub smtp_tls_none_fix: &'static str,
    pub no_exchange_token: &'static str,

    pub folders_not_applicable: &'static str,
    /// `{folder}`
    pub folder_will_be_created: &'static str,
    /// `{folder}`
    pub folder_exists: &'static str,
    /// `{folder}`
    pub source_folder_missing: &'static str,
    pub source_folder_missing_fix: &'static str,
    pub folders_failed_fix: &'static str,
}

/// `template` with each `{name}` replaced by its value, in one pass (a value that itself
/// contains braces is not read again).
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            values
                .iter()
                .find(|(k, _)| *k == &after[..close])
                .map(|v| (close, v.1))
        });
        match value {
            Some((close, v)) => {
                out.push_str(v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

pub static SV: CheckTexts = CheckTexts {
    title_settings: "Inställningarna är kompletta",
    title_token: "Token från Microsoft Entra ID",
    title_mailbox: "Brevlådan nås via Microsoft Graph",
    title_imap: "IMAP: anslutning och XOAUTH2-inloggning",
    title_pop3: "POP3: anslutning och XOAUTH2-inloggning",
    title_smtp: "SMTP: anslutning och XOAUTH2-inloggning",
    title_folders: "Mapparna finns",
    not_run: "Kördes inte eftersom ett tidigare steg misslyckades.",

    store_failed_fix: "Kontrollera Kurirs databas och huvudnyckel.",
    not_exchange: "Metod för e-post är {method}: det finns ingen Exchange Online-anslutning att testa.",
    not_exchange_fix: "Ställ in Metod för e-post som Serverbaserat, via Microsoft Exchange Online (exchange-online).",
    settings_ok: "Autentiseringsflöde: {flow}",

    no_permissions: "En token erhölls men den ger inga behörigheter.",
    no_permissions_fix: "Lägg till API-behörigheterna (Mail.ReadWrite, Mail.Send eller IMAP.AccessAsApp / POP.AccessAsApp / SMTP.SendAsApp) i appregistreringen och bevilja administratörsmedgivande.",
    token_ok: "Token för {aud} (behörigheter: {perms})",
    settings_incomplete_fix: "Komplettera inställningarna enligt meddelandet.",
    title_permissions: "Appen har de behörigheter som behövs, och inga fler",
    permissions_delegated: "Delegerat flöde: det är den inloggade användarens behörigheter (scp) som gäller.",
    permissions_granted: "Behövs och finns: {roles}.",
    permissions_unused: "Ingen användare, inget konto och ingen standardavsändare använder appen ännu; den har: {roles}.",
    permission_missing: "Saknas: {role} ({resource}), behövs av {by}.",
    permissions_extra: "Fler än som behövs: {roles} (inget som är inställt i Kurir använder dem).",
    permissions_unchecked: "{resource} kunde inte kontrolleras: {error}",
    permission_missing_fix: "Kör `kurir setup entra` (den beviljar exakt det som behövs), eller i Entra administrationscenter: Appregistreringar → appen → API-behörigheter → Lägg till en behörighet → {resource} → Programbehörigheter → {roles}, och sedan Bevilja administratörsmedgivande.",
    permissions_extra_fix: "Ta bort {roles} om inget utanför Kurir använder appen: Entra administrationscenter → Appregistreringar → appen → API-behörigheter → … → Ta bort behörighet, och Företagsprogram → appen → Behörigheter för att återkalla medgivandet.",
    outside_scope: "{mailbox} ligger utanför appens omfång: appen har behörigheten men Exchange begränsar den till andra brevlådor ({code}: {message})",
    outside_scope_fix: "Ta med brevlådan i appens omfång. Med RBAC för program: lägg till den i hanteringsomfånget (Get-ManagementRoleAssignment -RoleAssignee <tjänsteobjektets id> visar omfånget; Test-ServicePrincipalAuthorization -Identity <tjänsteobjektets id> -Resource {mailbox} ska visa InScope True). Med en Application Access Policy: lägg till brevlådan i policyns grupp; Test-ApplicationAccessPolicy -Identity {mailbox} -AppId {client_id} ska ge Granted.",
    send_only: "Appen får bara skicka (Mail.Send, ingen läsbehörighet): brevlådan kontrolleras när e-post skickas.",
    token_timeout: "Ingen token inom 30 sekunder.",
    token_timeout_fix: "Med enhetskodsflödet (device-code) måste någon logga in en gång: kör `kurir token` för samma användare eller konto på servern. Kontrollera annars nätverket till inloggningstjänsten.",

    no_mailbox: "Ingen brevlåda att testa (ingen Standardavsändare).",
    read_by_protocol: "Kontot läses med IMAP/POP3, inte Graph.",
    graph_unreachable: "Ingen kontakt med {url}: {error}",
    graph_unreachable_fix: "Kontrollera Graph-adress, brandvägg och proxy (utgående HTTPS).",
    inbox_reached: "{mailbox}: Inkorgen nåddes ({count} meddelanden)",
    no_such_mailbox: "{mailbox}: brevlådan finns inte i klientorganisationen (ErrorInvalidUser).",
    no_such_mailbox_fix: "Kontrollera adressen (Brevlåda / E-postadress) och att den tillhör samma Katalog-ID.",
    not_rest_enabled: "{mailbox}: brevlådan är inte aktiverad för REST API (MailboxNotEnabledForRESTAPI): den saknar Exchange Online-licens, ligger lokalt (hybrid) eller är inaktiv.",
    not_rest_enabled_fix: "Ge användaren en Exchange Online-licens eller flytta brevlådan till Exchange Online.",
    access_denied: "{mailbox}: åtkomst nekad ({code}: {message})",
    access_denied_fix: "Ge appen API-behörigheten Mail.ReadWrite (program) med administratörsmedgivande. Om en Application Access Policy begränsar appen, lägg till brevlådan i den: Test-ApplicationAccessPolicy -Identity {mailbox} -AppId {client_id} ska ge Granted.",
    graph_401_fix: "Token godtogs inte av Graph: kontrollera Moln och Graph-adress (rätt nationellt moln).",
    graph_other_fix: "Försök igen senare; kvarstår felet, kontrollera Graph-adress.",

    signin_ok: "{host}:{port} godtog inloggning som {user}",
    account_does_not_send: "Ett konto för inkommande e-post skickar inte.",
    read_through_graph: "Kontot läses via Graph.",
    connect_fix: "Kontrollera server och port, och att brandväggen tillåter utgående trafik dit.",
    protocol_fix: "Kontrollera att servern och porten verkligen är en IMAP/POP3/SMTP-server med TLS.",
    smtp_auth_disabled_fix: "SMTP AUTH är avstängt för klientorganisationen. Slå på det för brevlådan i Exchange Online PowerShell: Set-CASMailbox -Identity {user} -SmtpClientAuthenticationDisabled $false (eller för alla: Set-TransportConfig -SmtpClientAuthenticationDisabled $false), eller skicka via Graph.",
    app_token_refused_fix: "Exchange godtog inte appens token för {user}. För {proto} med klienthemlighet eller certifikat måste appen registreras i Exchange och få rätt till brevlådan: i Exchange Online PowerShell kör New-ServicePrincipal -AppId {client_id} -ObjectId <objekt-ID för Företagsprogrammet (inte appregistreringens)> och sedan Add-MailboxPermission -Identity {user} -User <tjänstens huvudnamns ID> -AccessRights FullAccess. Kontrollera också att behörigheten IMAP.AccessAsApp / POP.AccessAsApp / SMTP.SendAsApp har administratörsmedgivande.",
    signin_refused_fix: "Exchange godtog inte inloggningen som {user}. Kontrollera att {proto} är påslaget för brevlådan (Set-CASMailbox -Identity {user} -ImapEnabled $true / -PopEnabled $true) och att Användarnamn (Exchange) är brevlådans adress.",

    smtp_only_users: "Testas för användare och webbshopen.",
    smtp_tls_none: "SMTP-kryptering (smtp_tls) är none: Kurir skickar aldrig en åtkomsttoken (XOAUTH2) utan TLS, så SMTP provades inte.",
    smtp_tls_none_fix: "Sätt SMTP-kryptering till starttls (port 587) eller tls (port 465): kurir settings set smtp_tls=starttls",
    no_exchange_token: "ingen Exchange-token",

    folders_not_applicable: "Mappar gäller bara konton för inkommande e-post som läses med IMAP eller Graph.",
    folder_will_be_created: "{folder}: saknas, skapas vid första hämtningen",
    folder_exists: "{folder}: finns",
    source_folder_missing: "{folder}: mappen att läsa (Mapp att läsa) finns inte i brevlådan",
    source_folder_missing_fix: "Ändra Mapp att läsa till en befintlig mapp (t.ex. Inbox) eller skapa mappen.",
    folders_failed_fix: "Kontrollera behörigheten Mail.ReadWrite.",
};

pub static EN: CheckTexts = CheckTexts {
    title_settings: "Settings complete",
    title_token: "Token from Microsoft Entra ID",
    title_mailbox: "Mailbox reachable through Microsoft Graph",
    title_imap: "IMAP: connect and XOAUTH2 sign-in",
    title_pop3: "POP3: connect and XOAUTH2 sign-in",
    title_smtp: "SMTP: connect and XOAUTH2 sign-in",
    title_folders: "Folders exist",
    not_run: "Not run because an earlier step failed.",

    store_failed_fix: "Check Kurir's database and master key.",
    not_exchange: "Method for e-mail is {method}: there is no Exchange Online connection to test.",
    not_exchange_fix: "Set Method for e-mail to Server-based, via Microsoft Exchange Online (exchange-online).",
    settings_ok: "Authentication flow: {flow}",

    no_permissions: "A token was obtained but it carries no permissions.",
    no_permissions_fix: "Add the API permissions (Mail.ReadWrite, Mail.Send or IMAP.AccessAsApp / POP.AccessAsApp / SMTP.SendAsApp) to the app registration and grant admin consent.",
    token_ok: "Token for {aud} (permissions: {perms})",
    settings_incomplete_fix: "Complete the settings as the message says.",
    title_permissions: "The app has the permissions it needs, and no more",
    permissions_delegated: "Delegated flow: the signed-in user's permissions (scp) are what counts.",
    permissions_granted: "Needed and granted: {roles}.",
    permissions_unused: "No user, account or Default sender uses the app yet; it holds: {roles}.",
    permission_missing: "Missing: {role} ({resource}), needed by {by}.",
    permissions_extra: "More than needed: {roles} (nothing configured in Kurir uses them).",
    permissions_unchecked: "{resource} could not be checked: {error}",
    permission_missing_fix: "Run `kurir setup entra` (it grants exactly what is needed), or in the Entra admin center: App registrations → the app → API permissions → Add a permission → {resource} → Application permissions → {roles}, then Grant admin consent.",
    permissions_extra_fix: "Remove {roles} unless something outside Kurir uses the app: Entra admin center → App registrations → the app → API permissions → … → Remove permission, and Enterprise applications → the app → Permissions to revoke the consent.",
    outside_scope: "{mailbox} is outside the app's scope: the app has the permission but Exchange limits it to other mailboxes ({code}: {message})",
    outside_scope_fix: "Bring the mailbox into the app's scope. With RBAC for Applications: add it to the management scope (Get-ManagementRoleAssignment -RoleAssignee <service principal id> shows the scope; Test-ServicePrincipalAuthorization -Identity <service principal id> -Resource {mailbox} must show InScope True). With an Application Access Policy: add the mailbox to the policy's group; Test-ApplicationAccessPolicy -Identity {mailbox} -AppId {client_id} must say Granted.",
    send_only: "The app may only send (Mail.Send, no read permission): the mailbox is checked when mail is sent.",
    token_timeout: "No token within 30 seconds.",
    token_timeout_fix: "With the device-code flow someone must sign in once: run `kurir token` for the same user or account on the server. Otherwise check the network to the sign-in service.",

    no_mailbox: "No mailbox to test (no Default sender address).",
    read_by_protocol: "The account is read by IMAP/POP3, not Graph.",
    graph_unreachable: "Could not reach {url}: {error}",
    graph_unreachable_fix: "Check Graph endpoint, firewall and proxy (outbound HTTPS).",
    inbox_reached: "{mailbox}: Inbox reached ({count} messages)",
    no_such_mailbox: "{mailbox}: there is no such mailbox in the tenant (ErrorInvalidUser).",
    no_such_mailbox_fix: "Check the address (Mailbox / E-mail address) and that it belongs to the same Directory (tenant) ID.",
    not_rest_enabled: "{mailbox}: the mailbox is not enabled for the REST API (MailboxNotEnabledForRESTAPI): it has no Exchange Online licence, is on-premises (hybrid) or inactive.",
    not_rest_enabled_fix: "Give the user an Exchange Online licence or move the mailbox to Exchange Online.",
    access_denied: "{mailbox}: access denied ({code}: {message})",
    access_denied_fix: "Give the app the Mail.ReadWrite application permission with admin consent. If an Application Access Policy restricts the app, add the mailbox to it: Test-ApplicationAccessPolicy -Identity {mailbox} -AppId {client_id} must say Granted.",
    graph_401_fix: "Graph did not accept the token: check Cloud and Graph endpoint (the right national cloud).",
    graph_other_fix: "Try again later; if it persists, check Graph endpoint.",

    signin_ok: "{host}:{port} accepted sign-in as {user}",
    account_does_not_send: "An incoming-mail account does not send.",
    read_through_graph: "The account is read through Graph.",
    connect_fix: "Check the server and port, and that the firewall allows outbound traffic there.",
    protocol_fix: "Check that the server and port really are an IMAP/POP3/SMTP server with TLS.",
    smtp_auth_disabled_fix: "SMTP AUTH is disabled for the tenant. Enable it for the mailbox in Exchange Online PowerShell: Set-CASMailbox -Identity {user} -SmtpClientAuthenticationDisabled $false (or for all: Set-TransportConfig -SmtpClientAuthenticationDisabled $false), or send through Graph.",
    app_token_refused_fix: "Exchange did not accept the app's token for {user}. For {proto} with a client secret or certificate the app must be registered in Exchange and given the mailbox: in Exchange Online PowerShell run New-ServicePrincipal -AppId {client_id} -ObjectId <object id of the Enterprise application (not of the app registration)>, then Add-MailboxPermission -Identity {user} -User <service principal id> -AccessRights FullAccess. Also check that IMAP.AccessAsApp / POP.AccessAsApp / SMTP.SendAsApp has admin consent.",
    signin_refused_fix: "Exchange did not accept the sign-in as {user}. Check that {proto} is enabled for the mailbox (Set-CASMailbox -Identity {user} -ImapEnabled $true / -PopEnabled $true) and that Username (Exchange) is the mailbox's address.",

    smtp_only_users: "Tested for users and the webshop.",
    smtp_tls_none: "SMTP encryption (smtp_tls) is none: Kurir never sends an access token (XOAUTH2) without TLS, so SMTP was not tried.",
    smtp_tls_none_fix: "Set SMTP encryption to starttls (port 587) or tls (port 465): kurir settings set smtp_tls=starttls",
    no_exchange_token: "no Exchange token",

    folders_not_applicable: "Folders apply only to incoming-mail accounts read by IMAP or Graph.",
    folder_will_be_created: "{folder}: missing, created at the first fetch",
    folder_exists: "{folder}: exists",
    source_folder_missing: "{folder}: the folder to read (Source folder) does not exist in the mailbox",
    source_folder_missing_fix: "Change Source folder to an existing folder (e.g. Inbox) or create the folder.",
    folders_failed_fix: "Check the Mail.ReadWrite permission.",
};

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn fill_replaces_each_name_once_and_leaves_other_braces() {
        assert_eq!(
            fill("{a} and {b} {unknown} {", &[("a", "{b}"), ("b", "x")]),
            "{b} and x {unknown} {"
        );
    }
}
