//! The catalogue of settings: every key, its Swedish and English label, where it may be set and
//! how a typed value is checked.
//!
//! One table instead of one struct field per setting, because every level (system, user,
//! account, webshop) stores a sparse subset of the same keys and inheritance works the same way
//! for all of them; a table keeps the CLI, the store, the resolver and (later) the web UI in step.

use std::fmt;

use crate::scope::Level;

/// What kind of value a key holds; decides parsing and display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// A GUID such as an application (client) id.
    Guid,
    /// A tenant: GUID or verified domain; the multi-tenant aliases are refused.
    Tenant,
    Email,
    /// One of a fixed set of values.
    Choice(&'static [&'static str]),
    /// Encrypted at rest, write-only, shown masked.
    Secret,
    /// A calendar date `YYYY-MM-DD`.
    Date,
    /// An `https://` URL (plain `http://` only to loopback, for the emulator).
    Url,
    Host,
    Port,
    /// A duration such as `60s`, `5m`, `1h`.
    Duration,
    /// A path to a PEM file on this machine.
    Path,
    /// A PEM certificate (public, not secret).
    CertificatePem,
    /// A comma-separated list of user codes or roles.
    List,
    /// Free text for the account type, with well-known values.
    AccountType,
}

/// A setting key.
#[derive(Debug)]
pub struct KeyDef {
    pub name: &'static str,
    /// The label the users know from the ERP (Swedish).
    pub label_sv: &'static str,
    pub label_en: &'static str,
    pub kind: Kind,
    /// The levels at which the key may be written.
    pub levels: &'static [Level],
    /// What the setting is for, in English and Swedish (the admin UI shows the user's language).
    pub help: &'static str,
    pub help_sv: &'static str,
}

impl KeyDef {
    pub fn is_secret(&self) -> bool {
        self.kind == Kind::Secret
    }

    pub fn allowed_at(&self, level: Level) -> bool {
        self.levels.contains(&level)
    }

    /// Whether the key may be written only on the server itself (the `kurir` command line,
    /// including `kurir settings import`) and never through the REST API or the web UI: a stolen
    /// API key or admin login must not be able to switch off a protection.
    pub fn server_only(&self) -> bool {
        self.name == crate::endpoints::ALLOW_CUSTOM_ENDPOINTS
    }
}

impl fmt::Display for KeyDef {
    /// `Username (Exchange)`: the label an admin recognises, used in messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label_en)
    }
}

use Level::{Account as A, System as S, User as U, Webshop as W};

pub const METHODS: &[&str] = &["exchange-online", "smtp", "none"];
pub const WEBSHOP_METHODS: &[&str] = &[
    "according-to-user-settings",
    "exchange-online",
    "smtp",
    "none",
];
pub const AUTH_FLOWS: &[&str] = &[
    "client-secret",
    "username-password",
    "certificate",
    "device-code",
];
pub const CLOUDS: &[&str] = &["global", "usgov", "china"];
pub const PROTOCOLS: &[&str] = &["graph", "imap", "pop3"];
pub const TLS_MODES: &[&str] = &["starttls", "tls", "none"];
pub const BOOLS: &[&str] = &["false", "true"];
pub const LANGUAGES: &[&str] = &["sv", "en"];
pub const ACCOUNT_TYPES: &[&str] = &["monitor-to-monitor", "supplier-invoices", "general"];

/// What the admin sees for a choice (Swedish, English): the seed's own words where it names the
/// option (*Serverbaserat, via Microsoft Exchange Online*, *Klienthemlighet*, *Enligt
/// användarinställningar i Monitor G5*), plain words otherwise. The stored value stays the code.
pub fn choice_label(key: &str, value: &str) -> Option<(&'static str, &'static str)> {
    Some(match (key, value) {
        ("method", "exchange-online") => (
            "Serverbaserat, via Microsoft Exchange Online",
            "Server-based, via Microsoft Exchange Online",
        ),
        ("method", "smtp") => (
            "Serverbaserat, via SMTP-server",
            "Server-based, via an SMTP server",
        ),
        ("method", "none") => ("Ingen e-post", "No e-mail"),
        ("method", "according-to-user-settings") => (
            "Enligt användarinställningar i Monitor G5",
            "According to user settings in Monitor G5",
        ),
        ("auth_flow", "client-secret") => ("Klienthemlighet", "Client secret"),
        ("auth_flow", "username-password") => ("Användarnamn/Lösenord", "Username/Password"),
        ("auth_flow", "certificate") => ("Certifikat", "Certificate"),
        ("auth_flow", "device-code") => (
            "Enhetskod (inloggning i en webbläsare)",
            "Device code (sign-in in a browser)",
        ),
        ("cloud", "global") => ("Globalt (Microsoft 365)", "Global (Microsoft 365)"),
        ("cloud", "usgov") => ("USA:s myndigheter (GCC High)", "US Government (GCC High)"),
        ("cloud", "china") => ("Kina (21Vianet)", "China (21Vianet)"),
        ("type", "monitor-to-monitor") => ("Monitor till Monitor", "Monitor-to-Monitor"),
        ("type", "supplier-invoices") => ("Leverantörsfakturor", "Supplier invoices"),
        ("type", "general") => ("Allmän", "General"),
        ("protocol", "graph") => ("Microsoft Graph", "Microsoft Graph"),
        ("protocol", "imap") => ("IMAP", "IMAP"),
        ("protocol", "pop3") => ("POP3", "POP3"),
        (_, "starttls") => ("STARTTLS", "STARTTLS"),
        (_, "tls") => ("TLS från början", "TLS from the start"),
        (k, "none") if k.ends_with("_tls") => ("Ingen (okrypterad)", "None (unencrypted)"),
        ("alarm_language", "sv") => ("Svenska", "Swedish"),
        ("alarm_language", "en") => ("Engelska", "English"),
        (_, "true") => ("Ja", "Yes"),
        (_, "false") => ("Nej", "No"),
        _ => return None,
    })
}

/// The exchange-related keys every level may override; listed once so the tables below stay in step.
const EXCHANGE_LEVELS: &[Level] = &[S, U, A, W];
const SENDER_LEVELS: &[Level] = &[U, W];
const CREDENTIAL_LEVELS: &[Level] = &[U, A, W];

pub static KEYS: &[KeyDef] = &[
    KeyDef {
        name: "method",
        label_sv: "Metod för e-post",
        label_en: "Method for e-mail",
        kind: Kind::Choice(METHODS),
        levels: EXCHANGE_LEVELS,
        help_sv: "exchange-online = Serverbaserat, via Microsoft Exchange Online; smtp = en klassisk (lokal) SMTP-server; none = ingen e-post. För webbshopen även according-to-user-settings (Enligt användarinställningar i Monitor G5).",
        help: "exchange-online = Serverbaserat, via Microsoft Exchange Online; smtp = a classic (on-premises) SMTP server; none = no e-mail. On the webshop also according-to-user-settings (Enligt användarinställningar i Monitor G5).",
    },
    KeyDef {
        name: "client_id",
        label_sv: "Program-ID (klient)",
        label_en: "Application (client) ID",
        kind: Kind::Guid,
        levels: EXCHANGE_LEVELS,
        help_sv: "Program-ID (klient) på översiktssidan för appregistreringen i Microsoft Entra ID.",
        help: "The Application (client) ID on the Overview page of the app registration in Microsoft Entra ID.",
    },
    KeyDef {
        name: "tenant_id",
        label_sv: "Katalog-ID (klientorganisation)",
        label_en: "Directory (tenant) ID",
        kind: Kind::Tenant,
        levels: EXCHANGE_LEVELS,
        help_sv: "Katalog-ID (klientorganisation) på översiktssidan för appregistreringen (ett GUID), eller en verifierad domän som contoso.onmicrosoft.com.",
        help: "The Directory (tenant) ID on the Overview page of the app registration (a GUID), or a verified domain such as contoso.onmicrosoft.com.",
    },
    KeyDef {
        name: "auth_flow",
        label_sv: "Autentiseringsflöde",
        label_en: "Authentication flow",
        kind: Kind::Choice(AUTH_FLOWS),
        levels: EXCHANGE_LEVELS,
        help_sv: "client-secret (Klienthemlighet), username-password (Användarnamn/Lösenord), certificate (certifikat) eller device-code (en delegerad inloggning en gång, för konton med MFA).",
        help: "client-secret (Klienthemlighet), username-password (Användarnamn/Lösenord), certificate, or device-code (a delegated sign-in once, for accounts with MFA).",
    },
    KeyDef {
        name: "client_secret",
        label_sv: "Klienthemlighet",
        label_en: "Client secret",
        kind: Kind::Secret,
        levels: EXCHANGE_LEVELS,
        help_sv: "Värdet (inte hemlighetens ID) för en klienthemlighet under Certifikat och hemligheter i appregistreringen.",
        help: "The Value (not the Secret ID) of a client secret under Certificates & secrets in the app registration.",
    },
    KeyDef {
        name: "client_secret_expires",
        label_sv: "Klienthemlighet upphör",
        label_en: "Client secret expires",
        kind: Kind::Date,
        levels: EXCHANGE_LEVELS,
        help_sv: "Datumet Upphör som Entra visar bredvid hemligheten (ÅÅÅÅ-MM-DD); Kurir varnar 30 dagar innan.",
        help: "The Expires date Entra shows beside the secret (YYYY-MM-DD); Kurir warns 30 days ahead.",
    },
    KeyDef {
        name: "certificate",
        label_sv: "Certifikat",
        label_en: "Certificate",
        kind: Kind::CertificatePem,
        levels: EXCHANGE_LEVELS,
        help_sv: "PEM-certifikatet som laddats upp under Certifikat och hemligheter (för certifikatflödet).",
        help: "The PEM certificate uploaded under Certificates & secrets (for the certificate flow).",
    },
    KeyDef {
        name: "certificate_key",
        label_sv: "Certifikatets privata nyckel",
        label_en: "Certificate private key",
        kind: Kind::Secret,
        levels: EXCHANGE_LEVELS,
        help_sv: "Den privata PEM-nyckel som hör till certifikatet.",
        help: "The PEM private key that belongs to the certificate.",
    },
    KeyDef {
        name: "email",
        label_sv: "E-postadress",
        label_en: "E-mail address",
        kind: Kind::Email,
        levels: SENDER_LEVELS,
        help_sv: "Adressen användaren skickar som (brevlådan i Exchange Online).",
        help: "The address the user sends as (the mailbox in Exchange Online).",
    },
    KeyDef {
        name: "default_sender",
        label_sv: "Standardavsändare",
        label_en: "Default sender address",
        kind: Kind::Email,
        levels: &[S],
        help_sv: "Används som avsändare när en användare saknar egen E-postadress.",
        help: "Used as From when a user has no E-postadress of their own.",
    },
    KeyDef {
        name: "exchange_username",
        label_sv: "Användarnamn (Exchange)",
        label_en: "Username (Exchange)",
        kind: Kind::Email,
        levels: CREDENTIAL_LEVELS,
        help_sv: "Exchange-kontots inloggningsnamn (UPN) för flödet användarnamn/lösenord.",
        help: "The Exchange account's sign-in name (UPN) for the username-password flow.",
    },
    KeyDef {
        name: "exchange_password",
        label_sv: "Lösenord (Exchange)",
        label_en: "Password (Exchange)",
        kind: Kind::Secret,
        levels: CREDENTIAL_LEVELS,
        help_sv: "Exchange-kontots lösenord för flödet användarnamn/lösenord.",
        help: "The Exchange account's password for the username-password flow.",
    },
    KeyDef {
        name: "cloud",
        label_sv: "Moln",
        label_en: "Cloud",
        kind: Kind::Choice(CLOUDS),
        levels: EXCHANGE_LEVELS,
        help_sv: "global (Microsoft 365), usgov (GCC High / DoD) eller china (21Vianet); avgör standardadresserna.",
        help: "global (Microsoft 365), usgov (GCC High / DoD) or china (21Vianet); decides the default endpoints.",
    },
    KeyDef {
        name: "authority",
        label_sv: "Inloggningstjänst (authority)",
        label_en: "Authority (sign-in endpoint)",
        kind: Kind::Url,
        levels: EXCHANGE_LEVELS,
        help_sv: "Entras inloggningsadress; följer normalt Moln (cloud). Med metoden exchange-online godtas bara det valda molnets adress, t.ex. https://login.microsoftonline.com, om inte allow_custom_endpoints har slagits på på servern (emulatorn, en testmiljö).",
        help: "The Entra sign-in host; normally follows Cloud (cloud). With method exchange-online only the selected cloud's, e.g. https://login.microsoftonline.com, is used unless allow_custom_endpoints is switched on on the server (the emulator, a test tenant).",
    },
    KeyDef {
        name: "allow_custom_endpoints",
        label_sv: "Tillåt egna adresser (endast server)",
        label_en: "Allow custom endpoints (server only)",
        kind: Kind::Choice(BOOLS),
        levels: &[S],
        help_sv: "true låter authority, graph_endpoint och IMAP/POP3/SMTP-servrarna för metoden exchange-online peka på annat än det valda molnets adresser (emulatorn, en testmiljö). Kan bara ändras på servern med kommandoraden (kurir settings set allow_custom_endpoints=true), aldrig via REST-API:t eller webbgränssnittet.",
        help: "true lets authority, graph_endpoint and the IMAP/POP3/SMTP hosts of method exchange-online point elsewhere than the selected cloud's endpoints (the emulator, a test tenant). Changed only on the server with the command line (kurir settings set allow_custom_endpoints=true), never through the REST API or the web UI.",
    },
    KeyDef {
        name: "graph_endpoint",
        label_sv: "Graph-adress",
        label_en: "Graph endpoint",
        kind: Kind::Url,
        levels: EXCHANGE_LEVELS,
        help_sv: "Bas-URL för Microsoft Graph, t.ex. https://graph.microsoft.com.",
        help: "The Microsoft Graph base URL, e.g. https://graph.microsoft.com.",
    },
    KeyDef {
        name: "imap_host",
        label_sv: "IMAP-server",
        label_en: "IMAP server",
        kind: Kind::Host,
        levels: EXCHANGE_LEVELS,
        help_sv: "IMAP-server för inkommande e-post, t.ex. outlook.office365.com.",
        help: "IMAP host for incoming mail, e.g. outlook.office365.com.",
    },
    KeyDef {
        name: "imap_port",
        label_sv: "IMAP-port",
        label_en: "IMAP port",
        kind: Kind::Port,
        levels: EXCHANGE_LEVELS,
        help_sv: "IMAP-port (993 = TLS direkt).",
        help: "IMAP port (993 = implicit TLS).",
    },
    KeyDef {
        name: "pop3_host",
        label_sv: "POP3-server",
        label_en: "POP3 server",
        kind: Kind::Host,
        levels: EXCHANGE_LEVELS,
        help_sv: "POP3-server för inkommande e-post, t.ex. outlook.office365.com.",
        help: "POP3 host for incoming mail, e.g. outlook.office365.com.",
    },
    KeyDef {
        name: "pop3_port",
        label_sv: "POP3-port",
        label_en: "POP3 port",
        kind: Kind::Port,
        levels: EXCHANGE_LEVELS,
        help_sv: "POP3-port (995 = TLS direkt).",
        help: "POP3 port (995 = implicit TLS).",
    },
    KeyDef {
        name: "smtp_host",
        label_sv: "SMTP-server",
        label_en: "SMTP server",
        kind: Kind::Host,
        levels: EXCHANGE_LEVELS,
        help_sv: "SMTP-server för utgående e-post: smtp.office365.com för Exchange Online, eller er egen server för metoden smtp.",
        help: "SMTP host for outgoing mail: smtp.office365.com for Exchange Online, or your own server for method smtp.",
    },
    KeyDef {
        name: "smtp_port",
        label_sv: "SMTP-port",
        label_en: "SMTP port",
        kind: Kind::Port,
        levels: EXCHANGE_LEVELS,
        help_sv: "SMTP-port (587 med STARTTLS, 465 med TLS direkt).",
        help: "SMTP port (587 with STARTTLS, 465 with implicit TLS).",
    },
    KeyDef {
        name: "smtp_tls",
        label_sv: "SMTP-kryptering",
        label_en: "SMTP encryption",
        kind: Kind::Choice(TLS_MODES),
        levels: EXCHANGE_LEVELS,
        help_sv: "starttls, tls (direkt) eller none (bara för en server på den här datorn).",
        help: "starttls, tls (implicit) or none (only for a server on this machine).",
    },
    KeyDef {
        name: "smtp_username",
        label_sv: "SMTP-användarnamn",
        label_en: "SMTP username",
        kind: Kind::Text,
        levels: EXCHANGE_LEVELS,
        help_sv: "Användarnamn för en klassisk SMTP-server (metoden smtp); lämna tomt för ingen inloggning.",
        help: "Username for a classic SMTP server (method smtp); leave unset for no authentication.",
    },
    KeyDef {
        name: "smtp_password",
        label_sv: "SMTP-lösenord",
        label_en: "SMTP password",
        kind: Kind::Secret,
        levels: EXCHANGE_LEVELS,
        help_sv: "Lösenord för en klassisk SMTP-server (metoden smtp).",
        help: "Password for a classic SMTP server (method smtp).",
    },
    KeyDef {
        name: "ca_file",
        label_sv: "Extra CA-certifikat",
        label_en: "Extra CA certificate",
        kind: Kind::Path,
        levels: EXCHANGE_LEVELS,
        help_sv: "En PEM-fil med en extra certifikatutfärdare att lita på, t.ex. emulatorns ca.pem eller en lokal servers CA.",
        help: "A PEM file of an extra certificate authority to trust, e.g. the emulator's ca.pem or an on-premises server's CA.",
    },
    KeyDef {
        name: "type",
        label_sv: "Typ",
        label_en: "Type",
        kind: Kind::AccountType,
        levels: &[A],
        help_sv: "monitor-to-monitor (Monitor-till-Monitor), supplier-invoices (leverantörsfakturor), general (allmän), eller ett eget typnamn.",
        help: "monitor-to-monitor (Monitor-till-Monitor), supplier-invoices, general, or your own type name.",
    },
    KeyDef {
        name: "mailbox",
        label_sv: "Brevlåda",
        label_en: "Mailbox",
        kind: Kind::Email,
        levels: &[A],
        help_sv: "Adressen till brevlådan som kontot läser.",
        help: "The address of the mailbox the account reads.",
    },
    KeyDef {
        name: "protocol",
        label_sv: "Protokoll",
        label_en: "Protocol",
        kind: Kind::Choice(PROTOCOLS),
        levels: &[A],
        help_sv: "graph (Microsoft Graph), imap eller pop3.",
        help: "graph (Microsoft Graph), imap or pop3.",
    },
    KeyDef {
        name: "source_folder",
        label_sv: "Mapp att läsa",
        label_en: "Source folder",
        kind: Kind::Text,
        levels: &[A],
        help_sv: "Mappen som ny e-post läses från.",
        help: "The folder new mail is read from.",
    },
    KeyDef {
        name: "processed_folder",
        label_sv: "Mapp för behandlad e-post",
        label_en: "Processed folder",
        kind: Kind::Text,
        levels: &[A],
        help_sv: "Dit ett meddelande flyttas när det har sparats i Kurir (skapas vid behov; används inte av POP3, som raderar).",
        help: "Where a message is moved once it is stored in Kurir (created if missing; not used by POP3, which deletes).",
    },
    KeyDef {
        name: "quarantine_folder",
        label_sv: "Karantänmapp",
        label_en: "Quarantine folder",
        kind: Kind::Text,
        levels: &[A],
        help_sv: "Dit ett meddelande som inte kan hanteras flyttas; orsaken sparas i Kurir.",
        help: "Where a message that cannot be handled is moved, with the reason kept in Kurir.",
    },
    KeyDef {
        name: "poll_interval",
        label_sv: "Hämtningsintervall",
        label_en: "Poll interval",
        kind: Kind::Duration,
        levels: &[A],
        help_sv: "Hur ofta brevlådan läses, t.ex. 60s eller 5m (IMAP IDLE hämtar e-post tidigare).",
        help: "How often the mailbox is read, e.g. 60s or 5m (IMAP IDLE picks mail up sooner).",
    },
    KeyDef {
        name: "visible_to",
        label_sv: "Synlig för",
        label_en: "Visible to",
        kind: Kind::List,
        levels: &[A],
        help_sv: "Användarkoder eller roller, kommaseparerade, som får se kontots e-post; * för alla.",
        help: "User codes or roles, comma separated, that may see this account's mail; * for everyone.",
    },
    KeyDef {
        name: "client_secret_id",
        label_sv: "Klienthemlighetens ID",
        label_en: "Client secret ID",
        kind: Kind::Guid,
        levels: &[S],
        help_sv: "Hemlighetens ID i Entra ID (inte dess värde). Skrivs av `kurir setup entra` och vid byte av hemlighet, så att den gamla kan tas bort.",
        help: "The secret's ID in Entra ID (not its value). Written by `kurir setup entra` and by rotation, so the old secret can be removed.",
    },
    KeyDef {
        name: "application_object_id",
        label_sv: "Appregistreringens objekt-ID",
        label_en: "App registration object ID",
        kind: Kind::Guid,
        levels: &[S],
        help_sv: "Objekt-ID (inte klient-ID) för appregistreringen. Skrivs av `kurir setup entra`; appen behöver det för att själv byta sitt certifikat.",
        help: "The app registration's object ID (not its client ID). Written by `kurir setup entra`; the app needs it to roll its own certificate.",
    },
    KeyDef {
        name: "certificate_id",
        label_sv: "Certifikatets nyckel-ID",
        label_en: "Certificate key ID",
        kind: Kind::Guid,
        levels: &[S],
        help_sv: "Certifikatets nyckel-ID i Entra ID. Skrivs av `kurir setup entra` och vid byte av certifikat, så att det gamla kan tas bort.",
        help: "The certificate's key ID in Entra ID. Written by `kurir setup entra` and by rotation, so the old certificate can be removed.",
    },
    KeyDef {
        name: "rotate_secret",
        label_sv: "Byt klienthemlighet automatiskt",
        label_en: "Rotate the client secret automatically",
        kind: Kind::Choice(BOOLS),
        levels: &[S],
        help_sv: "true: kurir serve lägger till en ny klienthemlighet (eller ett nytt certifikat) före slutdatumet, byter till den när en token har hämtats med den och tar bort den gamla efter en övergångstid. Kräver att appen äger sin registrering (kurir setup entra ordnar det).",
        help: "true: kurir serve adds a new client secret (or certificate) before the expiry date, switches to it once a token was obtained with it, and removes the old one after a grace period. Needs the app to own its registration (kurir setup entra arranges that).",
    },
    KeyDef {
        name: "rotate_before",
        label_sv: "Byt hemlighet så här långt innan",
        label_en: "Rotate this long before expiry",
        kind: Kind::Duration,
        levels: &[S],
        help_sv: "Hur långt före Klienthemlighet upphör som den byts, t.ex. 30d.",
        help: "How long before Client secret expires it is rotated, e.g. 30d.",
    },
    KeyDef {
        name: "retired_secret_id",
        label_sv: "Gammal klienthemlighet att ta bort",
        label_en: "Old client secret to remove",
        kind: Kind::Guid,
        levels: &[S],
        help_sv: "ID för den hemlighet (eller det certifikat) ett byte ersatte; den tas bort i Entra ID efter övergångstiden.",
        help: "The ID of the secret (or certificate) a rotation replaced; it is removed from Entra ID after the grace period.",
    },
    KeyDef {
        name: "retired_secret_remove_after",
        label_sv: "Ta bort gammal hemlighet efter",
        label_en: "Remove the old secret after",
        kind: Kind::Text,
        levels: &[S],
        help_sv: "Tidpunkt (RFC 3339) då den gamla hemligheten tas bort.",
        help: "When (RFC 3339) the old secret is removed.",
    },
    KeyDef {
        name: "setup_client_id",
        label_sv: "Klient-ID för installationsinloggning",
        label_en: "Set-up sign-in client ID",
        kind: Kind::Guid,
        levels: &[S],
        help_sv: "Den offentliga klient som en administratör loggar in med när `kurir setup entra` registrerar Kurir i Entra ID (enhetskod). Standard: Microsoft Graph Command Line Tools (14d82eec-204b-4c2f-b7e8-296a70dab67e), som finns i varje klientorganisation.",
        help: "The public client an administrator signs in with when `kurir setup entra` registers Kurir in Entra ID (device code). Default: Microsoft Graph Command Line Tools (14d82eec-204b-4c2f-b7e8-296a70dab67e), which every tenant has.",
    },
    KeyDef {
        name: "keep_raw_mail",
        label_sv: "Spara inkommande e-post (original)",
        label_en: "Keep incoming mail (original)",
        kind: Kind::Duration,
        levels: &[S],
        help_sv: "Hur länge originalet (MIME) av ett behandlat inkommande meddelande sparas, t.ex. 90d. Uppgifterna om meddelandet sparas längre (Spara uppgifter). Meddelanden i karantän som ingen har hanterat tas aldrig bort.",
        help: "How long the original (MIME) of a processed incoming message is kept, e.g. 90d. The message's details are kept longer (Keep records). Quarantined messages nobody has handled are never removed.",
    },
    KeyDef {
        name: "keep_import_documents",
        label_sv: "Spara importerade dokument",
        label_en: "Keep imported documents",
        kind: Kind::Duration,
        levels: &[S],
        help_sv: "Hur länge ett dokument ligger kvar i importmappen efter att affärssystemet har kvitterat det, t.ex. 90d. Okvitterade dokument tas aldrig bort.",
        help: "How long a document stays in the import folder after the ERP acknowledged it, e.g. 90d. Documents not acknowledged are never removed.",
    },
    KeyDef {
        name: "keep_sent_mail",
        label_sv: "Spara skickad e-post",
        label_en: "Keep sent mail",
        kind: Kind::Duration,
        levels: &[S],
        help_sv: "Hur länge innehållet i skickad (eller avbruten) utgående e-post sparas, t.ex. 90d. Misslyckade meddelanden tas aldrig bort.",
        help: "How long the content of sent (or cancelled) outgoing mail is kept, e.g. 90d. Failed messages are never removed.",
    },
    KeyDef {
        name: "keep_records",
        label_sv: "Spara uppgifter",
        label_en: "Keep records",
        kind: Kind::Duration,
        levels: &[S],
        help_sv: "Hur länge uppgifterna om in- och utgående meddelanden (avsändare, ämne, status) sparas innan de tas bort helt, t.ex. 730d.",
        help: "How long the details of incoming and outgoing messages (sender, subject, state) are kept before they are removed altogether, e.g. 730d.",
    },
    KeyDef {
        name: "alarm_email",
        label_sv: "Larm till e-postadress",
        label_en: "Alarm e-mail address",
        kind: Kind::Email,
        levels: &[S],
        help_sv: "Vart larm skickas (en hemlighet som går ut, ett konto som inte hämtar, utgående e-post som misslyckas). Skickas via Kurirs egen utkorg från Standardavsändare.",
        help: "Where alarms are sent (a secret about to expire, an account that does not fetch, outgoing mail that fails). Sent through Kurir's own outbox from the Default sender address.",
    },
    KeyDef {
        name: "alarm_webhook",
        label_sv: "Larm till webhook",
        label_en: "Alarm webhook",
        kind: Kind::Url,
        levels: &[S],
        help_sv: "En https-adress som får varje larm och varje åtgärdat larm som JSON (POST).",
        help: "An https URL that receives each alarm, and each resolved alarm, as JSON (POST).",
    },
    KeyDef {
        name: "alarm_language",
        label_sv: "Språk för larm",
        label_en: "Alarm language",
        kind: Kind::Choice(LANGUAGES),
        levels: &[S],
        help_sv: "sv (svenska) eller en (engelska): språket i larmens e-post och webhook.",
        help: "sv (Swedish) or en (English): the language of alarm e-mails and webhook calls.",
    },
    KeyDef {
        name: "erp_webhook",
        label_sv: "Webhook för affärssystemet",
        label_en: "ERP webhook",
        kind: Kind::Url,
        levels: &[S],
        help_sv: "En https-adress som anropas (POST, JSON) när nya meddelanden eller importdokument finns, så att affärssystemet kan hämta dem direkt i stället för att fråga med jämna mellanrum.",
        help: "An https URL called (POST, JSON) when new messages or import documents are there, so the ERP can fetch them at once instead of polling.",
    },
    KeyDef {
        name: "webhook_secret",
        label_sv: "Webhookhemlighet",
        label_en: "Webhook secret",
        kind: Kind::Secret,
        levels: &[S],
        help_sv: "Om den är satt signeras varje webhookanrop med HMAC-SHA256 i huvudet X-Kurir-Signature, så att mottagaren kan kontrollera att anropet kommer från Kurir.",
        help: "When set, every webhook call is signed with HMAC-SHA256 in the X-Kurir-Signature header, so the receiver can check the call comes from Kurir.",
    },
];

pub fn key(name: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.name == name)
}

/// A lookup that tells the user what keys exist when the name is wrong.
pub fn key_or_hint(name: &str, level: Level) -> Result<&'static KeyDef, String> {
    let lowered = name.trim().to_ascii_lowercase().replace('-', "_");
    match key(&lowered) {
        Some(k) if k.allowed_at(level) => Ok(k),
        Some(k) => {
            let at: Vec<&str> = k.levels.iter().map(|l| level_name(*l)).collect();
            Err(format!(
                "{} ({}) cannot be set on the {}; it belongs on: {}",
                k.name,
                k.label_en,
                level_name(level),
                at.join(", ")
            ))
        }
        None => {
            let names: Vec<&str> = KEYS
                .iter()
                .filter(|k| k.allowed_at(level))
                .map(|k| k.name)
                .collect();
            Err(format!(
                "unknown setting '{name}'; settings on the {}: {}",
                level_name(level),
                names.join(", ")
            ))
        }
    }
}

pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::System => "system",
        Level::User => "user",
        Level::Account => "account",
        Level::Webshop => "webshop",
    }
}

#[cfg(test)]
mod choice_label_tests {
    use super::*;

    /// The UI's select lists showed raw codes (`exchange-online`) instead of the seed's labels
    /// (*Serverbaserat, via Microsoft Exchange Online*): every choice of every setting has one.
    #[test]
    fn every_choice_of_every_setting_has_a_label_in_both_languages() {
        for def in KEYS {
            let values: &[&str] = match def.kind {
                Kind::Choice(c) if def.name == "method" => {
                    assert!(c.iter().all(|v| WEBSHOP_METHODS.contains(v)));
                    WEBSHOP_METHODS
                }
                Kind::Choice(c) => c,
                _ => continue,
            };
            for v in values {
                let (sv, en) = choice_label(def.name, v)
                    .unwrap_or_else(|| panic!("{}={v} has no label", def.name));
                assert!(!sv.is_empty() && !en.is_empty(), "{}={v}", def.name);
            }
        }
        for v in ACCOUNT_TYPES {
            assert!(choice_label("type", v).is_some(), "type={v}");
        }
        assert_eq!(
            choice_label("method", "exchange-online").unwrap().0,
            "Serverbaserat, via Microsoft Exchange Online"
        );
        assert_eq!(
            choice_label("method", "according-to-user-settings")
                .unwrap()
                .0,
            "Enligt användarinställningar i Monitor G5"
        );
        assert_eq!(
            choice_label("auth_flow", "client-secret").unwrap().0,
            "Klienthemlighet"
        );
    }
}
