//! The catalogue of Entra ID errors Kurir explains, in English and Swedish.
//!
//! Microsoft's own `error_description` is written for developers ("AADSTS7000215: Invalid client
//! secret provided…"); the ERP admin who pasted values into a settings form needs to know which
//! field is wrong and where in the Entra portal the right value is. So every code an admin can
//! cause gets a plain summary and a concrete fix, naming fields by the labels the admin sees
//! (Program-ID (klient), Katalog-ID (klientorganisation), Klienthemlighet, …). Codes that are not
//! here still produce an [`Explanation`] with Microsoft's text and the trace/correlation ids, which
//! is what Microsoft support asks for.

use std::fmt;

/// The language of an explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    #[default]
    En,
    /// Swedish, the ERP admins' language.
    Sv,
}

/// What went wrong and what to do about it, ready to show to an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub lang: Lang,
    /// The AADSTS code, when Entra gave one.
    pub code: Option<u32>,
    /// The OAuth `error` (e.g. `invalid_client`), when the explanation comes from an Entra answer.
    pub error: Option<String>,
    /// One or two sentences: what went wrong.
    pub summary: String,
    /// What the admin should do, naming fields and portal pages.
    pub fix: String,
    /// Microsoft's own text (first line of `error_description`), when Entra answered.
    pub microsoft_message: Option<String>,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
    pub timestamp: Option<String>,
}

impl Explanation {
    /// True when the catalogue knew the error, false for a generic explanation.
    pub fn is_catalogued(&self) -> bool {
        self.code.is_some_and(|c| lookup_code(c).is_some())
            || self
                .error
                .as_deref()
                .is_some_and(|e| lookup_error(e).is_some())
    }

    fn from_entry(entry: &Entry, code: Option<u32>, lang: Lang) -> Explanation {
        let (summary, fix) = match lang {
            Lang::En => entry.en,
            Lang::Sv => entry.sv,
        };
        Explanation {
            lang,
            code,
            error: None,
            summary: summary.to_owned(),
            fix: fix.to_owned(),
            microsoft_message: None,
            trace_id: None,
            correlation_id: None,
            timestamp: None,
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (fix, ms, trace, corr, ts) = match self.lang {
            Lang::En => (
                "What to do",
                "Microsoft's message",
                "Trace ID",
                "Correlation ID",
                "Time",
            ),
            Lang::Sv => (
                "Åtgärd",
                "Microsofts meddelande",
                "Spårnings-ID",
                "Korrelations-ID",
                "Tidpunkt",
            ),
        };
        if let Some(code) = self.code {
            write!(f, "AADSTS{code}: ")?;
        } else if let Some(error) = &self.error {
            write!(f, "{error}: ")?;
        }
        writeln!(f, "{}", self.summary)?;
        write!(f, "{fix}: {}", self.fix)?;
        if let Some(m) = &self.microsoft_message {
            write!(f, "\n{ms}: {m}")?;
        }
        if let Some(t) = &self.trace_id {
            write!(f, "\n{trace}: {t}")?;
        }
        if let Some(c) = &self.correlation_id {
            write!(f, "\n{corr}: {c}")?;
        }
        if let Some(t) = &self.timestamp {
            write!(f, "\n{ts}: {t}")?;
        }
        Ok(())
    }
}

/// The catalogued explanation of an AADSTS code, or `None` for a code Kurir has no text for.
pub fn explain(code: u32, lang: Lang) -> Option<Explanation> {
    lookup_code(code).map(|e| Explanation::from_entry(e, Some(code), lang))
}

/// The catalogued explanation of an OAuth `error` that comes without a useful AADSTS code
/// (`authorization_declined`, `expired_token`, …).
pub fn explain_error(error: &str, lang: Lang) -> Option<Explanation> {
    lookup_error(error).map(|e| {
        let mut x = Explanation::from_entry(e, e.codes.first().copied(), lang);
        x.error = Some(error.to_owned());
        x
    })
}

/// Every AADSTS code with a catalogued explanation (for tests and documentation).
pub fn catalogued_codes() -> impl Iterator<Item = u32> {
    CATALOGUE.iter().flat_map(|e| e.codes.iter().copied())
}

fn lookup_code(code: u32) -> Option<&'static Entry> {
    CATALOGUE.iter().find(|e| e.codes.contains(&code))
}

fn lookup_error(error: &str) -> Option<&'static Entry> {
    CATALOGUE.iter().find(|e| e.error == Some(error))
}

struct Entry {
    codes: &'static [u32],
    /// The OAuth `error` this entry also answers to, for errors identified by name.
    error: Option<&'static str>,
    /// (summary, fix)
    en: (&'static str, &'static str),
    sv: (&'static str, &'static str),
}

static CATALOGUE: &[Entry] = &[
    Entry {
        codes: &[7000215],
        error: None,
        en: (
            "The client secret is wrong. You probably pasted the secret's ID instead of its Value.",
            "In Microsoft Entra ID open App registrations → your app → Certificates & secrets. The Value of a secret is only shown right after it is created; if you no longer have it, create a new client secret and paste its Value (not the Secret ID) into Klienthemlighet.",
        ),
        sv: (
            "Klienthemligheten stämmer inte. Troligen har du klistrat in hemlighetens ID (Secret ID) i stället för dess värde (Value).",
            "Öppna Microsoft Entra ID → Appregistreringar → din app → Certifikat och hemligheter. Värdet visas bara direkt när hemligheten skapas; har du det inte kvar, skapa en ny klienthemlighet och klistra in dess värde (Value, inte Secret ID) i Klienthemlighet.",
        ),
    },
    Entry {
        codes: &[7000222],
        error: None,
        en: (
            "The client secret has expired.",
            "Create a new one in Entra → App registrations → your app → Certificates & secrets → New client secret, paste its Value into Klienthemlighet and enter its new expiry date in Klienthemlighet upphör. Delete the expired secret afterwards.",
        ),
        sv: (
            "Klienthemligheten har gått ut.",
            "Skapa en ny i Entra → Appregistreringar → din app → Certifikat och hemligheter → Ny klienthemlighet, klistra in dess värde (Value) i Klienthemlighet och ange det nya slutdatumet i Klienthemlighet upphör. Ta sedan bort den utgångna hemligheten.",
        ),
    },
    Entry {
        codes: &[7000218],
        error: None,
        en: (
            "Entra expected a client secret or a certificate from this app but none was sent: the app is not allowed to sign in as a public client.",
            "Fill in Klienthemlighet (or use the certificate flow), or — to use the username/password or device-code flow without a secret — set 'Allow public client flows' to Yes under App registrations → your app → Authentication.",
        ),
        sv: (
            "Entra väntade sig en klienthemlighet eller ett certifikat från appen men fick inget: appen får inte logga in som offentlig klient.",
            "Fyll i Klienthemlighet (eller använd certifikatflödet), eller – för att använda användarnamn/lösenord eller enhetskod utan hemlighet – sätt 'Tillåt offentliga klientflöden' till Ja under Appregistreringar → din app → Autentisering.",
        ),
    },
    Entry {
        codes: &[700016],
        error: None,
        en: (
            "There is no app with this Program-ID (klient) in the tenant given in Katalog-ID (klientorganisation).",
            "Copy both values again from the Overview page of the app registration (Application (client) ID and Directory (tenant) ID) and check that the app is registered in the same tenant as the mailboxes. If the app belongs to another organisation, an administrator of your tenant must consent to it first.",
        ),
        sv: (
            "Det finns ingen app med detta Program-ID (klient) i den klientorganisation som anges i Katalog-ID (klientorganisation).",
            "Kopiera båda värdena på nytt från appregistreringens översiktssida (Program-ID (klient) och Katalog-ID (klientorganisation)) och kontrollera att appen är registrerad i samma klientorganisation som brevlådorna. Tillhör appen en annan organisation måste en administratör i er klientorganisation först godkänna den.",
        ),
    },
    Entry {
        codes: &[700024],
        error: None,
        en: (
            "The certificate sign-in (client assertion) was rejected because it was outside its valid time; this server's clock is probably wrong.",
            "Synchronise the server's clock (NTP / Windows Time service) and try again. Kurir signs assertions that are valid for 10 minutes from the server's current time.",
        ),
        sv: (
            "Certifikatinloggningen (klientintyget) avvisades eftersom den låg utanför sin giltighetstid; troligen går serverns klocka fel.",
            "Synkronisera serverns klocka (NTP / Windows Time) och försök igen. Kurir skapar intyg som gäller i 10 minuter från serverns aktuella tid.",
        ),
    },
    Entry {
        codes: &[700027],
        error: None,
        en: (
            "Entra could not verify the certificate signature: the certificate is not registered on this app, or the private key does not belong to the certificate.",
            "Upload the certificate (its public part, .cer/.pem) under App registrations → your app → Certificates & secrets → Certificates and check that the thumbprint Entra shows matches it; make sure Certifikat and Certifikatets privata nyckel in Kurir are the matching pair.",
        ),
        sv: (
            "Entra kunde inte verifiera certifikatsignaturen: certifikatet är inte registrerat på appen, eller så hör den privata nyckeln inte till certifikatet.",
            "Ladda upp certifikatet (den publika delen, .cer/.pem) under Appregistreringar → din app → Certifikat och hemligheter → Certifikat och kontrollera att tumavtrycket som Entra visar stämmer; se till att Certifikat och Certifikatets privata nyckel i Kurir hör ihop.",
        ),
    },
    Entry {
        codes: &[90002],
        error: None,
        en: (
            "The tenant in Katalog-ID (klientorganisation) was not found in this cloud.",
            "Copy the Directory (tenant) ID (a GUID) from the app registration's Overview page, or use a verified domain such as contoso.onmicrosoft.com. Check also that the right cloud (Moln) is selected.",
        ),
        sv: (
            "Klientorganisationen i Katalog-ID (klientorganisation) finns inte i det här molnet.",
            "Kopiera Katalog-ID (klientorganisation) (ett GUID) från appregistreringens översiktssida, eller använd en verifierad domän som contoso.onmicrosoft.com. Kontrollera också att rätt moln (Moln) är valt.",
        ),
    },
    Entry {
        codes: &[900023],
        error: None,
        en: (
            "Katalog-ID (klientorganisation) is neither a tenant GUID nor a domain name.",
            "Enter the Directory (tenant) ID from the app registration's Overview page, e.g. 6d3c9f0a-2b4e-4c1d-9a8f-5e7b0c2d4f61, or a domain such as contoso.onmicrosoft.com — not the organisation's display name.",
        ),
        sv: (
            "Katalog-ID (klientorganisation) är varken ett GUID för en klientorganisation eller ett domännamn.",
            "Ange Katalog-ID (klientorganisation) från appregistreringens översiktssida, t.ex. 6d3c9f0a-2b4e-4c1d-9a8f-5e7b0c2d4f61, eller en domän som contoso.onmicrosoft.com – inte organisationens visningsnamn.",
        ),
    },
    Entry {
        codes: &[50126],
        error: None,
        en: (
            "Wrong username or password for the Exchange account.",
            "Check Användarnamn (Exchange) (the full sign-in name, e.g. name@company.com) and Lösenord (Exchange); try signing in at https://outlook.office.com with the same values. Federated accounts (AD FS) and passwords that start or end with a space do not work with the username/password flow.",
        ),
        sv: (
            "Fel användarnamn eller lösenord för Exchange-kontot.",
            "Kontrollera Användarnamn (Exchange) (hela inloggningsnamnet, t.ex. namn@företag.se) och Lösenord (Exchange); prova att logga in på https://outlook.office.com med samma uppgifter. Federerade konton (AD FS) och lösenord som börjar eller slutar med mellanslag fungerar inte med flödet användarnamn/lösenord.",
        ),
    },
    Entry {
        codes: &[50034],
        error: None,
        en: (
            "The user in Användarnamn (Exchange) does not exist in this tenant.",
            "Use the account's full user principal name (UPN) as shown in Entra → Users, and check that Katalog-ID (klientorganisation) is the tenant the user belongs to.",
        ),
        sv: (
            "Användaren i Användarnamn (Exchange) finns inte i den här klientorganisationen.",
            "Ange kontots fullständiga användarnamn (UPN) så som det visas i Entra → Användare, och kontrollera att Katalog-ID (klientorganisation) är den klientorganisation användaren tillhör.",
        ),
    },
    Entry {
        codes: &[50055],
        error: None,
        en: (
            "The Exchange account's password has expired.",
            "Sign in once at https://outlook.office.com to set a new password (or ask an administrator to reset it) and enter it in Lösenord (Exchange). For a service account, use a password that does not expire, or switch Autentiseringsflöde to client secret or certificate.",
        ),
        sv: (
            "Lösenordet för Exchange-kontot har gått ut.",
            "Logga in en gång på https://outlook.office.com och välj ett nytt lösenord (eller be en administratör återställa det) och ange det i Lösenord (Exchange). För ett tjänstekonto: använd ett lösenord som inte går ut, eller byt Autentiseringsflöde till klienthemlighet eller certifikat.",
        ),
    },
    Entry {
        codes: &[50057],
        error: None,
        en: (
            "The user account is disabled in Entra ID.",
            "An administrator must enable sign-in for the account (Entra → Users → the user → Properties → Account enabled), or enter another account in Användarnamn (Exchange).",
        ),
        sv: (
            "Användarkontot är inaktiverat i Entra ID.",
            "En administratör måste aktivera inloggning för kontot (Entra → Användare → användaren → Egenskaper → Kontot är aktiverat), eller ange ett annat konto i Användarnamn (Exchange).",
        ),
    },
    Entry {
        codes: &[50053],
        error: None,
        en: (
            "The account is locked: too many failed sign-ins (perhaps an old password stored somewhere), or sign-in from this address was blocked as suspicious.",
            "Correct Lösenord (Exchange) first so that Kurir does not lock the account again, then wait for the lock to expire (usually minutes). An administrator can see the cause in Entra → Sign-in logs.",
        ),
        sv: (
            "Kontot är låst: för många misslyckade inloggningar (kanske ett gammalt lösenord som finns sparat någonstans), eller så blockerades inloggningen som misstänkt.",
            "Rätta först Lösenord (Exchange) så att Kurir inte låser kontot igen, och vänta sedan tills låsningen upphör (oftast några minuter). En administratör kan se orsaken i Entra → Inloggningsloggar.",
        ),
    },
    Entry {
        codes: &[50076],
        error: None,
        en: (
            "This account requires MFA (multi-factor authentication). The username/password flow cannot answer an MFA prompt, so it can never work for this account.",
            "Change Autentiseringsflöde to client secret, certificate or device code. With device code the user signs in once in a browser (with MFA) and Kurir then renews the token by itself. Excluding the account from MFA with a Conditional Access policy also works but weakens security.",
        ),
        sv: (
            "Kontot kräver MFA (multifaktorautentisering). Flödet användarnamn/lösenord kan inte svara på en MFA-fråga och kan därför aldrig fungera för det här kontot.",
            "Byt Autentiseringsflöde till klienthemlighet, certifikat eller enhetskod. Med enhetskod loggar användaren in en gång i en webbläsare (med MFA) och sedan förnyar Kurir token själv. Att undanta kontot från MFA med en princip för villkorsstyrd åtkomst fungerar också men försämrar säkerheten.",
        ),
    },
    Entry {
        codes: &[50079],
        error: None,
        en: (
            "This account must register for MFA (multi-factor authentication) before it may sign in; the username/password flow cannot do that registration.",
            "Sign in with the account once at https://aka.ms/mfasetup and complete the registration. Afterwards the account requires MFA, so change Autentiseringsflöde to client secret, certificate or device code.",
        ),
        sv: (
            "Kontot måste registrera sig för MFA (multifaktorautentisering) innan det får logga in; flödet användarnamn/lösenord kan inte göra den registreringen.",
            "Logga in med kontot en gång på https://aka.ms/mfasetup och slutför registreringen. Därefter kräver kontot MFA, så byt Autentiseringsflöde till klienthemlighet, certifikat eller enhetskod.",
        ),
    },
    Entry {
        codes: &[53003],
        error: None,
        en: (
            "The sign-in was blocked by a Conditional Access policy in your tenant.",
            "An administrator opens Entra → Sign-in logs, finds the failed sign-in (search for the correlation ID below) and sees which policy blocked it — typically sign-in allowed only from certain locations or devices. Exclude this account or app from that policy, or use the client secret or certificate flow.",
        ),
        sv: (
            "Inloggningen blockerades av en princip för villkorsstyrd åtkomst i er klientorganisation.",
            "En administratör öppnar Entra → Inloggningsloggar, letar upp den misslyckade inloggningen (sök på korrelations-ID nedan) och ser vilken princip som blockerade den – oftast en princip som bara tillåter inloggning från vissa platser eller enheter. Undanta kontot eller appen från principen, eller använd flödet klienthemlighet eller certifikat.",
        ),
    },
    Entry {
        codes: &[65001],
        error: None,
        en: (
            "The app's permissions have not been granted (admin consent is missing) in this tenant.",
            "An administrator opens Entra → App registrations → your app → API permissions and clicks 'Grant admin consent for <organisation>'. The permissions Kurir needs must be listed there first (e.g. Mail.Send for Microsoft Graph, or IMAP.AccessAsUser.All / SMTP.Send for Office 365 Exchange Online).",
        ),
        sv: (
            "Appens behörigheter har inte godkänts (administratörsmedgivande saknas) i den här klientorganisationen.",
            "En administratör öppnar Entra → Appregistreringar → din app → API-behörigheter och klickar på 'Bevilja administratörsmedgivande för <organisation>'. Behörigheterna Kurir behöver måste först finnas i listan (t.ex. Mail.Send för Microsoft Graph, eller IMAP.AccessAsUser.All / SMTP.Send för Office 365 Exchange Online).",
        ),
    },
    Entry {
        codes: &[70011],
        error: None,
        en: (
            "The requested scope is not valid.",
            "Kurir builds the scope from Metod för e-post and Autentiseringsflöde; if a scope was entered by hand, use https://outlook.office365.com/.default or https://graph.microsoft.com/.default for app-only, or e.g. https://outlook.office.com/SMTP.Send for a user. Microsoft's message below names the value it rejected.",
        ),
        sv: (
            "Den begärda behörighetsomfattningen (scope) är ogiltig.",
            "Kurir bygger scope utifrån Metod för e-post och Autentiseringsflöde; har ett scope angetts för hand, använd https://outlook.office365.com/.default eller https://graph.microsoft.com/.default för app-behörighet, eller t.ex. https://outlook.office.com/SMTP.Send för en användare. Microsofts meddelande nedan visar vilket värde som avvisades.",
        ),
    },
    Entry {
        codes: &[1002012],
        error: None,
        en: (
            "App-only sign-in (client secret or certificate) must ask for a '/.default' scope.",
            "Use https://outlook.office365.com/.default (IMAP/POP/SMTP) or https://graph.microsoft.com/.default (Graph). The individual permissions are chosen in Entra → API permissions, not in the scope.",
        ),
        sv: (
            "Inloggning som app (klienthemlighet eller certifikat) måste begära ett '/.default'-scope.",
            "Använd https://outlook.office365.com/.default (IMAP/POP/SMTP) eller https://graph.microsoft.com/.default (Graph). De enskilda behörigheterna väljs i Entra → API-behörigheter, inte i scope.",
        ),
    },
    Entry {
        codes: &[700022, 700023],
        error: None,
        en: (
            "The scope names several resources (e.g. Graph and Exchange together) or a permission without a resource.",
            "Ask for one resource per token, e.g. 'https://outlook.office.com/SMTP.Send offline_access', and a separate token for Microsoft Graph; app-only flows take exactly one '{resource}/.default'.",
        ),
        sv: (
            "Scope anger flera resurser (t.ex. Graph och Exchange samtidigt) eller en behörighet utan resurs.",
            "Begär en resurs per token, t.ex. 'https://outlook.office.com/SMTP.Send offline_access', och en separat token för Microsoft Graph; inloggning som app tar exakt ett '{resurs}/.default'.",
        ),
    },
    Entry {
        codes: &[500011],
        error: None,
        en: (
            "The resource the token is for (e.g. Exchange Online) does not exist in this tenant, or the scope's host is misspelled.",
            "Check that the tenant has Exchange Online (a Microsoft 365 licence with Exchange), that the scope's host is spelled exactly (https://outlook.office365.com, https://graph.microsoft.com) and that the right cloud (Moln) is selected.",
        ),
        sv: (
            "Resursen som token gäller (t.ex. Exchange Online) finns inte i den här klientorganisationen, eller så är scope-värdets värdnamn felstavat.",
            "Kontrollera att klientorganisationen har Exchange Online (en Microsoft 365-licens med Exchange), att värdnamnet i scope är exakt rätt (https://outlook.office365.com, https://graph.microsoft.com) och att rätt moln (Moln) är valt.",
        ),
    },
    Entry {
        codes: &[70008, 700082],
        error: None,
        en: (
            "The stored sign-in (refresh token) has expired or was revoked: unused for 90 days, a password change, or 'sign out everywhere'.",
            "Sign in again: with the device-code flow, run the device-code sign-in once more and complete it in a browser; with the username/password flow Kurir signs in with the password again by itself.",
        ),
        sv: (
            "Den sparade inloggningen (uppdateringstoken) har gått ut eller återkallats: oanvänd i 90 dagar, byte av lösenord eller 'logga ut överallt'.",
            "Logga in igen: med flödet enhetskod, kör inloggningen med enhetskod en gång till och slutför den i en webbläsare; med flödet användarnamn/lösenord loggar Kurir in med lösenordet igen av sig själv.",
        ),
    },
    Entry {
        codes: &[50173],
        error: None,
        en: (
            "The stored sign-in (refresh token) was revoked, usually because the user's password was changed.",
            "Sign in again (device code: run the device-code sign-in once more; username/password: update Lösenord (Exchange)).",
        ),
        sv: (
            "Den sparade inloggningen (uppdateringstoken) har återkallats, oftast för att användarens lösenord har bytts.",
            "Logga in igen (enhetskod: kör inloggningen med enhetskod en gång till; användarnamn/lösenord: uppdatera Lösenord (Exchange)).",
        ),
    },
    Entry {
        codes: &[50059],
        error: None,
        en: (
            "The token request named no directory: an app-only sign-in (client secret or certificate) was sent to /common or /organizations.",
            "Set Directory (tenant) ID (tenant_id) to the organisation's tenant id or its domain (e.g. contoso.onmicrosoft.com), not common or organizations.",
        ),
        sv: (
            "Tokenbegäran angav ingen katalog: en inloggning som app (klienthemlighet eller certifikat) skickades till /common eller /organizations.",
            "Sätt Katalog-ID (tenant_id) till organisationens klient-ID eller domän (t.ex. contoso.onmicrosoft.com), inte common eller organizations.",
        ),
    },
    Entry {
        codes: &[650053],
        error: None,
        en: (
            "The app asked for a permission that the API does not have (a misspelt permission name).",
            "Check the permission names on the app registration's API permissions page and in Kurir's settings; for Exchange Online they are IMAP.AccessAsUser.All, POP.AccessAsUser.All and SMTP.Send, for Microsoft Graph Mail.ReadWrite and Mail.Send.",
        ),
        sv: (
            "Appen bad om en behörighet som API:et inte har (ett felstavat behörighetsnamn).",
            "Kontrollera behörighetsnamnen på appregistreringens sida API-behörigheter och i Kurirs inställningar; för Exchange Online heter de IMAP.AccessAsUser.All, POP.AccessAsUser.All och SMTP.Send, för Microsoft Graph Mail.ReadWrite och Mail.Send.",
        ),
    },
    Entry {
        codes: &[7000112],
        error: None,
        en: (
            "The app is disabled in this tenant.",
            "An administrator opens Entra → Enterprise applications → the app → Properties and sets 'Enabled for users to sign in?' to Yes.",
        ),
        sv: (
            "Appen är inaktiverad i den här klientorganisationen.",
            "En administratör öppnar Entra → Företagsprogram → appen → Egenskaper och sätter 'Aktiverad för användarinloggning?' till Ja.",
        ),
    },
    Entry {
        codes: &[9001023, 90124],
        error: None,
        en: (
            "This sign-in method is not supported on the 'common', 'organizations' or 'consumers' endpoint: Entra must know your tenant.",
            "Enter your Directory (tenant) ID (GUID) or domain in Katalog-ID (klientorganisation) instead of common, organizations or consumers.",
        ),
        sv: (
            "Den här inloggningsmetoden stöds inte mot 'common', 'organizations' eller 'consumers': Entra måste veta vilken klientorganisation det gäller.",
            "Ange er klientorganisations GUID eller domän i Katalog-ID (klientorganisation) i stället för common, organizations eller consumers.",
        ),
    },
    Entry {
        codes: &[70016],
        error: Some("authorization_pending"),
        en: (
            "The device-code sign-in has not been completed yet.",
            "Open the address shown, enter the code and sign in; Kurir keeps waiting until the code expires.",
        ),
        sv: (
            "Inloggningen med enhetskod är inte slutförd ännu.",
            "Öppna adressen som visas, ange koden och logga in; Kurir väntar tills koden går ut.",
        ),
    },
    Entry {
        // Microsoft documents only the error name; 65004 ("User declined to consent") is what
        // the consent screen's decline produces, so both lead here.
        codes: &[65004],
        error: Some("authorization_declined"),
        en: (
            "The user declined the device-code sign-in.",
            "Start the device-code sign-in again and approve it. If the account may not approve the app's permissions, an administrator must grant admin consent (App registrations → your app → API permissions → Grant admin consent).",
        ),
        sv: (
            "Användaren avböjde inloggningen med enhetskod.",
            "Starta inloggningen med enhetskod igen och godkänn den. Får kontot inte godkänna appens behörigheter måste en administratör bevilja administratörsmedgivande (Appregistreringar → din app → API-behörigheter → Bevilja administratörsmedgivande).",
        ),
    },
    Entry {
        codes: &[70019],
        error: Some("expired_token"),
        en: (
            "The device code expired before the sign-in was completed (codes are valid for about 15 minutes).",
            "Start the device-code sign-in again and complete it in the browser promptly.",
        ),
        sv: (
            "Enhetskoden gick ut innan inloggningen slutfördes (koderna gäller i ungefär 15 minuter).",
            "Starta inloggningen med enhetskod igen och slutför den i webbläsaren utan dröjsmål.",
        ),
    },
    Entry {
        codes: &[70018],
        error: Some("bad_verification_code"),
        en: (
            "The device code was not recognised: mistyped, already used, or issued to another app.",
            "Start the device-code sign-in again and enter the new code exactly as shown.",
        ),
        sv: (
            "Enhetskoden kändes inte igen: felskriven, redan använd eller utfärdad till en annan app.",
            "Starta inloggningen med enhetskod igen och ange den nya koden exakt som den visas.",
        ),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest table of Microsoft's codes plus the device-code codes the brief names; each
    /// must have English and Swedish text, or an admin would get Microsoft's developer prose.
    const REQUIRED: &[u32] = &[
        7000215, 7000222, 7000218, 700016, 700024, 700027, 90002, 900023, 50126, 50034, 50055,
        50057, 50053, 50076, 50079, 53003, 65001, 70011, 1002012, 700022, 700023, 500011, 70008,
        700082, 9001023, 90124, 70016, 70019, 70018, 7000112, 50059, 650053,
    ];

    #[test]
    fn every_required_code_has_english_and_swedish_text() {
        for &code in REQUIRED {
            for lang in [Lang::En, Lang::Sv] {
                let x = explain(code, lang).unwrap_or_else(|| panic!("AADSTS{code} missing"));
                assert!(
                    x.summary.len() > 20,
                    "AADSTS{code} {lang:?} summary too short"
                );
                assert!(x.fix.len() > 20, "AADSTS{code} {lang:?} fix too short");
            }
            let en = explain(code, Lang::En).unwrap();
            let sv = explain(code, Lang::Sv).unwrap();
            assert_ne!(en.summary, sv.summary, "AADSTS{code} Swedish is a copy");
            assert_ne!(en.fix, sv.fix, "AADSTS{code} Swedish fix is a copy");
        }
    }

    #[test]
    fn no_code_is_catalogued_twice() {
        let mut all: Vec<u32> = catalogued_codes().collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn required_wordings() {
        let x = explain(7000215, Lang::En).unwrap();
        assert!(x.summary.contains("ID instead of its Value"));
        let x = explain(50076, Lang::En).unwrap();
        assert!(x.summary.contains("MFA"));
        assert!(x.fix.contains("client secret, certificate or device code"));
        let x = explain(7000222, Lang::Sv).unwrap();
        assert!(x.fix.contains("Certifikat och hemligheter"));
        assert!(x.fix.contains("Klienthemlighet"));
        let x = explain(65001, Lang::Sv).unwrap();
        assert!(x.fix.contains("administratörsmedgivande"));
        let x = explain(700016, Lang::Sv).unwrap();
        assert!(x.summary.contains("Program-ID (klient)"));
        assert!(x.summary.contains("Katalog-ID (klientorganisation)"));
    }

    #[test]
    fn errors_without_codes_are_explained_by_name() {
        let x = explain_error("authorization_declined", Lang::Sv).unwrap();
        assert!(x.summary.contains("avböjde"));
        assert_eq!(x.error.as_deref(), Some("authorization_declined"));
        assert_eq!(
            explain_error("expired_token", Lang::En).unwrap().code,
            Some(70019)
        );
        assert!(explain_error("invalid_client", Lang::En).is_none());
        assert!(explain(12345, Lang::En).is_none());
    }

    #[test]
    fn display_uses_the_language_labels() {
        let mut x = explain(50126, Lang::Sv).unwrap();
        x.trace_id = Some("t-1".into());
        x.correlation_id = Some("c-1".into());
        let s = x.to_string();
        assert!(s.starts_with("AADSTS50126: Fel användarnamn"), "{s}");
        assert!(s.contains("Åtgärd: "));
        assert!(s.contains("Spårnings-ID: t-1"));
        assert!(s.contains("Korrelations-ID: c-1"));
    }
}
