//! What can go wrong when asking Entra ID for a token, and whether trying again can help.
//!
//! Four different people act on these errors: the retry loop (transient or not), the admin who
//! fixes settings (what is wrong and where), Microsoft support (trace and correlation ids) and
//! whoever reads the logs. So Entra's whole error body is kept, and every message says what to
//! check. Nothing here ever holds a secret or token: bodies come from Entra, which does not echo
//! them, and transport details come from the HTTP stack, which never sees the form values in a URL.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::aadsts::{Explanation, Lang, explain, explain_error};

/// Entra's JSON error body, every documented field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntraErrorBody {
    /// The OAuth error, e.g. `invalid_client`.
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default, deserialize_with = "codes")]
    pub error_codes: Vec<u32>,
    #[serde(default)]
    pub suberror: Option<String>,
    /// A claims challenge (MFA / Conditional Access).
    #[serde(default)]
    pub claims: Option<String>,
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub error_uri: Option<String>,
}

/// Entra sends numbers; a few proxies and old endpoints stringify them. Accept both, and skip
/// anything unparseable rather than losing the whole body.
fn codes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    let raw = Option::<Vec<serde_json::Value>>::deserialize(d)?.unwrap_or_default();
    Ok(raw
        .iter()
        .filter_map(|v| match v {
            serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .collect())
}

impl EntraErrorBody {
    /// Parses an error body; `None` if it is not Entra's JSON error shape.
    pub fn parse(body: &str) -> Option<EntraErrorBody> {
        serde_json::from_str::<EntraErrorBody>(body)
            .ok()
            .filter(|b| !b.error.is_empty())
    }

    /// The AADSTS code: the first of `error_codes`, or else the one the description starts with.
    pub fn code(&self) -> Option<u32> {
        self.error_codes.first().copied().or_else(|| {
            let d = self.error_description.as_deref()?;
            let i = d.find("AADSTS")? + "AADSTS".len();
            let digits: String = d[i..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
    }

    /// Microsoft's own sentence, without the trace/correlation/timestamp lines it appends (those
    /// are shown separately) and without the `AADSTSnnnn:` prefix.
    pub fn microsoft_message(&self) -> Option<String> {
        let d = self.error_description.as_deref()?;
        let first = d
            .split(['\r', '\n'])
            .map(str::trim)
            .find(|l| !l.is_empty())?;
        let text = match first.strip_prefix("AADSTS") {
            Some(rest) => rest
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start_matches(':')
                .trim(),
            None => first,
        };
        Some(text.to_owned())
    }
}

/// Why a connection to the sign-in host failed; each has its own advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportProblem {
    Timeout,
    Dns,
    Connect,
    Tls,
    Other,
}

impl TransportProblem {
    fn advice(self, host: &str) -> String {
        match self {
            TransportProblem::Timeout => format!(
                "{host} did not answer in time; check the network and any proxy or firewall between this server and {host}, or raise the timeout"
            ),
            TransportProblem::Dns => format!(
                "the name {host} could not be resolved; check the server's DNS settings and the spelling of the authority"
            ),
            TransportProblem::Connect => format!(
                "no connection to {host} could be made; check that outbound HTTPS (port 443) is allowed by the firewall and whether a proxy is required"
            ),
            TransportProblem::Tls => format!(
                "the TLS certificate of {host} was not trusted; if a proxy inspects TLS or you use the emulator, set Extra CA-certifikat to its CA certificate (PEM), and check the server's clock"
            ),
            TransportProblem::Other => {
                format!("the request to {host} failed; check the network, proxy and firewall")
            }
        }
    }
}

/// A failed token request.
#[derive(Debug, thiserror::Error)]
pub enum EntraError {
    /// Entra answered with an OAuth error: the request reached Microsoft and was refused.
    #[error("{}", rejected_message(endpoint, *status, body))]
    Rejected {
        /// The URL the request went to (no secrets: those travel in the form body).
        endpoint: String,
        status: u16,
        body: Box<EntraErrorBody>,
    },

    /// The request never got an HTTP answer.
    #[error("could not reach Microsoft Entra ID at {host}: {}. Detail: {detail}", problem.advice(host))]
    Transport {
        host: String,
        problem: TransportProblem,
        detail: String,
    },

    /// An HTTP answer that is neither a token nor an Entra error (an HTML proxy page, a 502, …).
    #[error(
        "unexpected answer from {endpoint} (HTTP {status}): {detail}. If this is not Microsoft's sign-in service, check the authority setting and any proxy in between"
    )]
    UnexpectedResponse {
        endpoint: String,
        status: u16,
        detail: String,
    },

    /// The settings cannot work; nothing was sent.
    #[error("setting '{setting}': {problem}")]
    Config {
        setting: &'static str,
        problem: String,
    },

    /// The refresh-token store failed to load, save or delete.
    #[error(
        "could not {action} the stored refresh token: {detail}. Check Kurir's database and its master key"
    )]
    RefreshStore {
        action: &'static str,
        detail: String,
    },
}

fn rejected_message(endpoint: &str, status: u16, body: &EntraErrorBody) -> String {
    let mut s = format!(
        "Microsoft Entra ID refused the token request (HTTP {status}, {}",
        body.error
    );
    if let Some(code) = body.code() {
        s.push_str(&format!(", AADSTS{code}"));
    }
    s.push_str(") at ");
    s.push_str(endpoint);
    let explained = body
        .code()
        .and_then(|c| explain(c, Lang::En))
        .or_else(|| explain_error(&body.error, Lang::En));
    if let Some(x) = explained {
        s.push_str(&format!(": {} What to do: {}", x.summary, x.fix));
    }
    if let Some(m) = body.microsoft_message() {
        s.push_str(&format!(" Microsoft's message: {m}"));
    }
    if let Some(t) = &body.trace_id {
        s.push_str(&format!(" Trace ID: {t}."));
    }
    if let Some(c) = &body.correlation_id {
        s.push_str(&format!(" Correlation ID: {c}."));
    }
    s
}

impl EntraError {
    /// Entra's error body, when Entra refused.
    pub fn entra_body(&self) -> Option<&EntraErrorBody> {
        match self {
            EntraError::Rejected { body, .. } => Some(body),
            _ => None,
        }
    }

    /// The AADSTS code, when Entra gave one.
    pub fn aadsts_code(&self) -> Option<u32> {
        self.entra_body().and_then(EntraErrorBody::code)
    }

    /// The OAuth `error`, when Entra refused (e.g. `invalid_grant`).
    pub fn oauth_error(&self) -> Option<&str> {
        self.entra_body().map(|b| b.error.as_str())
    }

    /// Worth trying again later without changing anything: Entra or the network had a
    /// temporary problem, or a device-code sign-in is still in progress.
    pub fn is_transient(&self) -> bool {
        self.is_retryable()
            || matches!(
                self.oauth_error(),
                Some("authorization_pending" | "slow_down")
            )
    }

    /// Will fail again until someone changes a setting or an account.
    pub fn is_permanent(&self) -> bool {
        !self.is_transient()
    }

    /// What the request loop retries with backoff. Deliberately narrow: retrying
    /// `invalid_client` or `invalid_grant` would only hammer Entra and can lock accounts (50053).
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            EntraError::Rejected { status, body, .. } => {
                *status >= 500
                    || *status == 429
                    || matches!(
                        body.error.as_str(),
                        "temporarily_unavailable" | "server_error"
                    )
            }
            EntraError::Transport { .. } => true,
            EntraError::UnexpectedResponse { status, .. } => *status >= 500 || *status == 429,
            EntraError::Config { .. } | EntraError::RefreshStore { .. } => false,
        }
    }

    /// The explanation for an admin, in English or Swedish. Always returns something: catalogued
    /// AADSTS codes get Kurir's text, anything else Microsoft's own text with the trace and
    /// correlation ids, and non-Entra failures a description of what to check.
    pub fn explain(&self, lang: Lang) -> Explanation {
        match self {
            EntraError::Rejected { body, .. } => {
                let mut x = body
                    .code()
                    .and_then(|c| explain(c, lang))
                    .or_else(|| explain_error(&body.error, lang))
                    .unwrap_or_else(|| Explanation {
                        lang,
                        code: body.code(),
                        error: None,
                        summary: match lang {
                            Lang::En => format!(
                                "Microsoft Entra ID refused the sign-in ({}).",
                                body.error
                            ),
                            Lang::Sv => format!(
                                "Microsoft Entra ID avvisade inloggningen ({}).",
                                body.error
                            ),
                        },
                        fix: match lang {
                            Lang::En => "Read Microsoft's message below. If it does not help, give the trace ID and correlation ID to Microsoft support or search for the code at https://login.microsoftonline.com/error.".into(),
                            Lang::Sv => "Läs Microsofts meddelande nedan. Om det inte hjälper, ge spårnings-ID och korrelations-ID till Microsofts support eller sök på koden på https://login.microsoftonline.com/error.".into(),
                        },
                        microsoft_message: None,
                        trace_id: None,
                        correlation_id: None,
                        timestamp: None,
                    });
                x.error = Some(body.error.clone());
                if x.code.is_none() {
                    x.code = body.code();
                }
                x.microsoft_message = body.microsoft_message();
                x.trace_id = body.trace_id.clone();
                x.correlation_id = body.correlation_id.clone();
                x.timestamp = body.timestamp.clone();
                x
            }
            EntraError::Transport { host, problem, .. } => Explanation {
                lang,
                code: None,
                error: None,
                summary: match lang {
                    Lang::En => format!("Kurir could not reach Microsoft Entra ID at {host}."),
                    Lang::Sv => format!("Kurir kunde inte nå Microsoft Entra ID på {host}."),
                },
                fix: match lang {
                    Lang::En => capitalise(&problem.advice(host)),
                    Lang::Sv => transport_advice_sv(*problem, host),
                },
                microsoft_message: None,
                trace_id: None,
                correlation_id: None,
                timestamp: None,
            },
            EntraError::UnexpectedResponse { endpoint, status, .. } => Explanation {
                lang,
                code: None,
                error: None,
                summary: match lang {
                    Lang::En => format!("{endpoint} gave an answer that is not from Microsoft's sign-in service (HTTP {status})."),
                    Lang::Sv => format!("{endpoint} gav ett svar som inte kommer från Microsofts inloggningstjänst (HTTP {status})."),
                },
                fix: match lang {
                    Lang::En => "Check Inloggningstjänst (authority) and Moln, and whether a proxy answers instead of Microsoft. If it is a temporary outage, Kurir tries again later.".into(),
                    Lang::Sv => "Kontrollera Inloggningstjänst (authority) och Moln, och om en proxy svarar i stället för Microsoft. Är det ett tillfälligt avbrott försöker Kurir igen senare.".into(),
                },
                microsoft_message: None,
                trace_id: None,
                correlation_id: None,
                timestamp: None,
            },
            EntraError::Config { setting, problem } => Explanation {
                lang,
                code: None,
                error: None,
                summary: match lang {
                    Lang::En => format!("The setting '{setting}' cannot work."),
                    Lang::Sv => format!("Inställningen '{setting}' fungerar inte."),
                },
                fix: problem.clone(),
                microsoft_message: None,
                trace_id: None,
                correlation_id: None,
                timestamp: None,
            },
            EntraError::RefreshStore { action, detail } => Explanation {
                lang,
                code: None,
                error: None,
                summary: match lang {
                    Lang::En => format!("Kurir could not {action} the stored sign-in: {detail}."),
                    Lang::Sv => format!("Kurir kunde inte hantera den sparade inloggningen ({action}): {detail}."),
                },
                fix: match lang {
                    Lang::En => "Check that Kurir's database is reachable and writable and that its master key has not changed.".into(),
                    Lang::Sv => "Kontrollera att Kurirs databas går att nå och skriva till och att huvudnyckeln inte har bytts.".into(),
                },
                microsoft_message: None,
                trace_id: None,
                correlation_id: None,
                timestamp: None,
            },
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str() + ".",
        None => String::new(),
    }
}

fn transport_advice_sv(problem: TransportProblem, host: &str) -> String {
    match problem {
        TransportProblem::Timeout => format!(
            "{host} svarade inte i tid. Kontrollera nätverket och eventuell proxy eller brandvägg mellan servern och {host}, eller öka tidsgränsen."
        ),
        TransportProblem::Dns => format!(
            "Namnet {host} kunde inte slås upp. Kontrollera serverns DNS-inställningar och stavningen av inloggningstjänsten."
        ),
        TransportProblem::Connect => format!(
            "Det gick inte att ansluta till {host}. Kontrollera att utgående HTTPS (port 443) tillåts i brandväggen och om en proxy krävs."
        ),
        TransportProblem::Tls => format!(
            "TLS-certifikatet för {host} godtogs inte. Om en proxy granskar TLS eller om emulatorn används, ange dess CA-certifikat (PEM) i Extra CA-certifikat, och kontrollera serverns klocka."
        ),
        TransportProblem::Other => {
            format!("Anropet till {host} misslyckades. Kontrollera nätverk, proxy och brandvägg.")
        }
    }
}

/// Lets callers print just the explanation (e.g. the CLI) without matching on the error.
pub struct Explained<'a>(pub &'a EntraError, pub Lang);

impl fmt::Display for Explained<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.explain(self.1).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_BODY: &str = r#"{"error":"invalid_scope","error_description":"AADSTS70011: The provided value for the input parameter 'scope' isn't valid.\r\nTrace ID: 255d1aef-8c98-452f-ac51-23d051240864\r\nCorrelation ID: fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7\r\nTimestamp: 2016-01-09 02:02:12Z","error_codes":[70011],"timestamp":"2016-01-09 02:02:12Z","trace_id":"255d1aef-8c98-452f-ac51-23d051240864","correlation_id":"fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7","error_uri":"https://login.microsoftonline.com/error?code=70011"}"#;

    fn rejected(body: &str, status: u16) -> EntraError {
        EntraError::Rejected {
            endpoint: "https://login.microsoftonline.com/t/oauth2/v2.0/token".into(),
            status,
            body: Box::new(EntraErrorBody::parse(body).unwrap()),
        }
    }

    #[test]
    fn parses_every_field_of_the_documented_body() {
        let b = EntraErrorBody::parse(DOC_BODY).unwrap();
        assert_eq!(b.error, "invalid_scope");
        assert_eq!(b.error_codes, vec![70011]);
        assert_eq!(b.code(), Some(70011));
        assert_eq!(
            b.trace_id.as_deref(),
            Some("255d1aef-8c98-452f-ac51-23d051240864")
        );
        assert_eq!(
            b.correlation_id.as_deref(),
            Some("fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7")
        );
        assert_eq!(b.timestamp.as_deref(), Some("2016-01-09 02:02:12Z"));
        assert_eq!(
            b.error_uri.as_deref(),
            Some("https://login.microsoftonline.com/error?code=70011")
        );
        assert_eq!(
            b.microsoft_message().as_deref(),
            Some("The provided value for the input parameter 'scope' isn't valid.")
        );
    }

    #[test]
    fn parses_suberror_claims_and_string_codes() {
        let b = EntraErrorBody::parse(
            r#"{"error":"invalid_grant","error_description":"AADSTS50076: Due to a configuration change made by your administrator…","error_codes":["50076"],"suberror":"basic_action","claims":"{\"access_token\":{\"capolids\":{\"essential\":true,\"values\":[\"x\"]}}}"}"#,
        )
        .unwrap();
        assert_eq!(b.code(), Some(50076));
        assert_eq!(b.suberror.as_deref(), Some("basic_action"));
        assert!(b.claims.unwrap().contains("capolids"));
    }

    #[test]
    fn code_falls_back_to_the_description() {
        let b = EntraErrorBody::parse(
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#,
        )
        .unwrap();
        assert_eq!(b.code(), Some(7000215));
        assert!(EntraErrorBody::parse("<html>502 Bad Gateway</html>").is_none());
        assert!(EntraErrorBody::parse(r#"{"foo":1}"#).is_none());
    }

    #[test]
    fn transient_and_permanent() {
        let e = rejected(r#"{"error":"invalid_client","error_codes":[7000215]}"#, 401);
        assert!(e.is_permanent() && !e.is_retryable());
        let e = rejected(r#"{"error":"temporarily_unavailable"}"#, 400);
        assert!(e.is_transient() && e.is_retryable());
        let e = rejected(r#"{"error":"server_error"}"#, 503);
        assert!(e.is_retryable());
        let e = rejected(
            r#"{"error":"authorization_pending","error_codes":[70016]}"#,
            400,
        );
        assert!(e.is_transient() && !e.is_retryable());
        let e = rejected(r#"{"error":"invalid_grant","error_codes":[50126]}"#, 400);
        assert!(e.is_permanent());
        let e = EntraError::Transport {
            host: "h".into(),
            problem: TransportProblem::Timeout,
            detail: "x".into(),
        };
        assert!(e.is_transient());
        let e = EntraError::UnexpectedResponse {
            endpoint: "e".into(),
            status: 502,
            detail: "html".into(),
        };
        assert!(e.is_transient());
    }

    #[test]
    fn display_explains_and_shows_ids() {
        let e = rejected(DOC_BODY, 400);
        let s = e.to_string();
        assert!(s.contains("AADSTS70011"), "{s}");
        assert!(s.contains("What to do:"), "{s}");
        assert!(s.contains("Trace ID: 255d1aef"), "{s}");
        assert!(s.contains("Correlation ID: fb3d2015"), "{s}");
    }

    #[test]
    fn unknown_codes_keep_microsofts_text_and_ids() {
        let e = rejected(
            r#"{"error":"invalid_request","error_description":"AADSTS99999: Something new happened.\r\nTrace ID: tr","error_codes":[99999],"trace_id":"tr","correlation_id":"co"}"#,
            400,
        );
        let x = e.explain(Lang::Sv);
        assert!(!x.is_catalogued());
        assert_eq!(x.code, Some(99999));
        assert_eq!(
            x.microsoft_message.as_deref(),
            Some("Something new happened.")
        );
        let s = x.to_string();
        assert!(
            s.contains("Spårnings-ID: tr") && s.contains("Korrelations-ID: co"),
            "{s}"
        );
    }

    #[test]
    fn catalogued_code_explanation_carries_the_body_ids() {
        let e = rejected(
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215],"trace_id":"tr","correlation_id":"co","timestamp":"ts"}"#,
            401,
        );
        let x = e.explain(Lang::En);
        assert!(x.is_catalogued());
        assert!(x.summary.contains("Value"));
        assert_eq!(x.trace_id.as_deref(), Some("tr"));
        assert_eq!(x.timestamp.as_deref(), Some("ts"));
        assert_eq!(x.error.as_deref(), Some("invalid_client"));
    }
}
