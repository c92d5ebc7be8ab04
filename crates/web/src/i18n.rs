//! The two languages of the admin UI: Swedish (the ERP's language, and the default) and
//! English.
//!
//! Every text a page shows is a field of [`Texts`], so a template that uses a text missing in
//! one language does not compile. Setting labels come from the settings catalogue
//! (`KeyDef::label_sv` / `label_en`), which holds the seed's Swedish labels.

use kurir_entra::Lang as EntraLang;
use kurir_settings::{KeyDef, Scope, Source};

/// The language of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Sv,
    En,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sv" | "sv-se" | "swedish" | "svenska" => Some(Lang::Sv),
            "en" | "en-gb" | "en-us" | "english" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Sv => "sv",
            Lang::En => "en",
        }
    }

    /// The language to switch to.
    pub fn other(self) -> Lang {
        match self {
            Lang::Sv => Lang::En,
            Lang::En => Lang::Sv,
        }
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::Sv => &SV,
            Lang::En => &EN,
        }
    }

    pub fn entra(self) -> EntraLang {
        match self {
            Lang::Sv => EntraLang::Sv,
            Lang::En => EntraLang::En,
        }
    }

    pub fn label(self, key: &KeyDef) -> &'static str {
        match self {
            Lang::Sv => key.label_sv,
            Lang::En => key.label_en,
        }
    }

    /// What a setting is for, in this language.
    pub fn help(self, key: &KeyDef) -> &'static str {
        match self {
            Lang::Sv => key.help_sv,
            Lang::En => key.help,
        }
    }

    /// What a source is called on a page ("Systeminställningar", "default", …).
    pub fn source(self, source: Source) -> &'static str {
        let t = self.texts();
        match source {
            Source::System => t.src_system,
            Source::User => t.src_user,
            Source::Account => t.src_account,
            Source::Webshop => t.src_webshop,
            Source::Default => t.src_default,
        }
    }

    /// A subject as a heading names it.
    pub fn subject(self, scope: &Scope) -> String {
        let t = self.texts();
        match scope {
            Scope::System => t.nav_system.to_owned(),
            Scope::User(c) => format!("{} {c}", t.user_word),
            Scope::Account(a) => format!("{} {a}", t.account_word),
            Scope::Webshop => t.nav_webshop.to_owned(),
        }
    }

    /// Picks the text of this language.
    pub fn pick<'a>(self, sv: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Sv => sv,
            Lang::En => en,
        }
    }
}

/// Every text of the UI.
pub struct Texts {
    pub lang_name: &'static str,
    pub switch_to: &'static str,
    pub app_title: &'static str,
    pub nav_overview: &'static str,
    pub nav_system: &'static str,
    pub nav_users: &'static str,
    pub nav_accounts: &'static str,
    pub nav_webshop: &'static str,
    pub logout: &'static str,
    pub signed_in_as: &'static str,
    pub login_title: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub login_button: &'static str,
    pub login_failed: &'static str,
    pub login_hint: &'static str,
    pub save: &'static str,
    pub saved: &'static str,
    pub reset: &'static str,
    pub reset_title: &'static str,
    pub set_here: &'static str,
    pub set_on: &'static str,
    pub inherited_from: &'static str,
    pub not_set: &'static str,
    pub secret_hint: &'static str,
    pub secret_unset: &'static str,
    pub inherit_option: &'static str,
    pub col_setting: &'static str,
    pub col_value: &'static str,
    pub col_effective: &'static str,
    pub col_source: &'static str,
    pub src_system: &'static str,
    pub src_user: &'static str,
    pub src_account: &'static str,
    pub src_webshop: &'static str,
    pub src_default: &'static str,
    pub user_word: &'static str,
    pub account_word: &'static str,
    pub problems: &'static str,
    pub no_problems: &'static str,
    pub fix: &'static str,
    pub fix_at: &'static str,
    pub error_word: &'static str,
    pub warning_word: &'static str,
    pub alarms: &'static str,
    pub no_alarms: &'static str,
    pub test_connection: &'static str,
    pub test_result: &'static str,
    pub step_ok: &'static str,
    pub step_failed: &'static str,
    pub step_not_run: &'static str,
    pub step_skipped: &'static str,
    pub microsoft_says: &'static str,
    pub trace_id: &'static str,
    pub add_user: &'static str,
    pub add_account: &'static str,
    pub user_code: &'static str,
    pub email: &'static str,
    pub account_name: &'static str,
    pub account_type: &'static str,
    pub mailbox: &'static str,
    pub protocol: &'static str,
    pub remove: &'static str,
    pub remove_confirm: &'static str,
    pub overrides: &'static str,
    pub errors_count: &'static str,
    pub open: &'static str,
    pub no_users: &'static str,
    pub no_accounts: &'static str,
    pub users_intro: &'static str,
    pub accounts_intro: &'static str,
    pub system_intro: &'static str,
    pub webshop_intro: &'static str,
    pub webshop_sends_as: &'static str,
    pub webshop_user_missing: &'static str,
    pub overview_intro: &'static str,
    pub subjects: &'static str,
    pub health: &'static str,
    pub last_success: &'static str,
    pub last_error: &'static str,
    pub never: &'static str,
    pub invalid_form: &'static str,
    pub csrf_refused: &'static str,
}

pub static SV: Texts = Texts {
    lang_name: "Svenska",
    switch_to: "English",
    app_title: "Kurir – e-post via Microsoft Exchange Online",
    nav_overview: "Översikt",
    nav_system: "Systeminställningar",
    nav_users: "Användare",
    nav_accounts: "Inställningar för inkommande e-post",
    nav_webshop: "Webbshop Administration",
    logout: "Logga ut",
    signed_in_as: "Inloggad som",
    login_title: "Logga in i Kurir",
    username: "Användarnamn",
    password: "Lösenord",
    login_button: "Logga in",
    login_failed: "Fel användarnamn eller lösenord.",
    login_hint: "Ingen administratör ännu? Skapa en på servern: kurir admin users add NAMN",
    save: "Spara",
    saved: "Sparat.",
    reset: "Återställ",
    reset_title: "Ta bort värdet här så att det ärvs igen",
    set_here: "Satt här",
    set_on: "angiven",
    inherited_from: "Ärvt från",
    not_set: "Inte angivet",
    secret_hint: "Skrivskyddat: lämna tomt för att behålla värdet",
    secret_unset: "Inte angivet",
    inherit_option: "(ärv)",
    col_setting: "Inställning",
    col_value: "Värde här",
    col_effective: "Gällande värde",
    col_source: "Källa",
    src_system: "Systeminställningar",
    src_user: "användare",
    src_account: "konto",
    src_webshop: "webbshop",
    src_default: "standardvärde",
    user_word: "Användare",
    account_word: "Konto",
    problems: "Problem",
    no_problems: "Inga problem hittades.",
    fix: "Åtgärd",
    fix_at: "Åtgärdas i",
    error_word: "Fel",
    warning_word: "Varning",
    alarms: "Larm",
    no_alarms: "Inga larm.",
    test_connection: "Testa anslutning",
    test_result: "Resultat av anslutningstest",
    step_ok: "OK",
    step_failed: "Misslyckades",
    step_not_run: "Kördes inte",
    step_skipped: "Gäller inte",
    microsoft_says: "Microsofts meddelande",
    trace_id: "Spårnings-ID",
    add_user: "Lägg till användare",
    add_account: "Lägg till konto",
    user_code: "Användarkod",
    email: "E-postadress",
    account_name: "Namn",
    account_type: "Typ",
    mailbox: "Brevlåda",
    protocol: "Protokoll",
    remove: "Ta bort",
    remove_confirm: "Ta bort med alla dess inställningar?",
    overrides: "Egna värden",
    errors_count: "Fel",
    open: "Öppna",
    no_users: "Inga användare ännu.",
    no_accounts: "Inga konton för inkommande e-post ännu.",
    users_intro: "Användare med egna e-postinställningar som överstyr systeminställningarna. Har du tillvalet Webbshop behöver användaren WEBSHOP finnas.",
    accounts_intro: "E-postkonton för olika typer av inkommande e-post, t.ex. Monitor-till-Monitor. Värden som inte anges här ärvs från systeminställningarna.",
    system_intro: "Gäller alla användare, konton och webbshopen om inget annat anges där.",
    webshop_intro: "Metod för e-post för webbshopen. Enligt användarinställningar i Monitor G5 betyder att webbshopen skickar som användaren WEBSHOP.",
    webshop_sends_as: "Webbshopen skickar som användaren",
    webshop_user_missing: "Användaren WEBSHOP finns inte ännu: lägg till den under Användare.",
    overview_intro: "Status för alla inställningar. Välj en sida ovan för att ändra.",
    subjects: "Inställningar",
    health: "Hälsa för inkommande e-post",
    last_success: "Senast lyckade hämtning",
    last_error: "Senaste fel",
    never: "aldrig",
    invalid_form: "Något värde kunde inte sparas; se meddelandet vid fältet. Inget ändrades.",
    csrf_refused: "Formuläret kom inte från den här sidan (CSRF-skydd). Ladda om sidan och försök igen.",
};

pub static EN: Texts = Texts {
    lang_name: "English",
    switch_to: "Svenska",
    app_title: "Kurir – e-mail through Microsoft Exchange Online",
    nav_overview: "Overview",
    nav_system: "System settings",
    nav_users: "Users",
    nav_accounts: "Incoming-mail accounts",
    nav_webshop: "Webshop Administration",
    logout: "Log out",
    signed_in_as: "Signed in as",
    login_title: "Sign in to Kurir",
    username: "Username",
    password: "Password",
    login_button: "Sign in",
    login_failed: "Wrong username or password.",
    login_hint: "No administrator yet? Create one on the server: kurir admin users add NAME",
    save: "Save",
    saved: "Saved.",
    reset: "Reset",
    reset_title: "Remove the value here so that it is inherited again",
    set_here: "Set here",
    set_on: "set on",
    inherited_from: "Inherited from",
    not_set: "Not set",
    secret_hint: "Write-only: leave empty to keep the value",
    secret_unset: "Not set",
    inherit_option: "(inherit)",
    col_setting: "Setting",
    col_value: "Value here",
    col_effective: "Effective value",
    col_source: "Source",
    src_system: "system settings",
    src_user: "user",
    src_account: "account",
    src_webshop: "webshop",
    src_default: "default",
    user_word: "User",
    account_word: "Account",
    problems: "Problems",
    no_problems: "No problems found.",
    fix: "Fix",
    fix_at: "Fix in",
    error_word: "Error",
    warning_word: "Warning",
    alarms: "Alarms",
    no_alarms: "No alarms.",
    test_connection: "Test connection",
    test_result: "Test connection result",
    step_ok: "OK",
    step_failed: "Failed",
    step_not_run: "Not run",
    step_skipped: "Not applicable",
    microsoft_says: "Microsoft's message",
    trace_id: "Trace ID",
    add_user: "Add user",
    add_account: "Add account",
    user_code: "User code",
    email: "E-mail address",
    account_name: "Name",
    account_type: "Type",
    mailbox: "Mailbox",
    protocol: "Protocol",
    remove: "Remove",
    remove_confirm: "Remove it with all its settings?",
    overrides: "Own values",
    errors_count: "Errors",
    open: "Open",
    no_users: "No users yet.",
    no_accounts: "No incoming-mail accounts yet.",
    users_intro: "Users with e-mail settings of their own that override the system settings. With the Webshop option, the user WEBSHOP must exist.",
    accounts_intro: "Mail accounts for different kinds of incoming e-mail, e.g. Monitor-to-Monitor. Values not given here are inherited from the system settings.",
    system_intro: "Apply to every user, account and the webshop unless set there.",
    webshop_intro: "The webshop's method for e-mail. According to user settings in Monitor G5 means the webshop sends as the user WEBSHOP.",
    webshop_sends_as: "The webshop sends as the user",
    webshop_user_missing: "The user WEBSHOP does not exist yet: add it under Users.",
    overview_intro: "The state of all settings. Choose a page above to change them.",
    subjects: "Settings",
    health: "Incoming-mail health",
    last_success: "Last successful fetch",
    last_error: "Last error",
    never: "never",
    invalid_form: "A value could not be saved; see the message beside the field. Nothing was changed.",
    csrf_refused: "The form did not come from this page (CSRF protection). Reload the page and try again.",
};
