//! Entra ID's error answers, reproduced as Microsoft sends them.
//!
//! Clients (MSAL, Kurir's own `kurir-entra`) branch on the HTTP status, `error`, `suberror` and
//! the numeric `error_codes`, and show `error_description` to people, so each variant here
//! carries Microsoft's exact wording (from the digest in the project's protocol notes, which
//! quotes Microsoft documentation and real responses). The texts already tell the caller what
//! to do, as Microsoft's do; the variant docs add where a fixture entity provokes them.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

/// One AADSTS error answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EntraError {
    #[error(
        "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
    )]
    TenantNotFound { tenant: String },
    #[error(
        "AADSTS900023: Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid external domain."
    )]
    TenantInvalid { tenant: String },
    /// Wrong secret, or (the classic) the secret's *ID* pasted where its *value* belongs:
    /// Microsoft gives both the same answer, whose text names the mistake.
    #[error(
        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
    )]
    InvalidSecret { client_id: String },
    #[error(
        "AADSTS7000222: The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
    )]
    SecretExpired { client_id: String },
    /// No secret or assertion from a confidential client, or a public client flow for an app
    /// that has "Allow public client flows" off.
    #[error(
        "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
    )]
    NoCredential,
    #[error(
        "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
    )]
    UnknownApp { client_id: String, tenant: String },
    /// The app registration's service principal is disabled ("Enabled for users to sign in" off).
    #[error("AADSTS7000112: Application '{client_id}'({app_name}) is disabled.")]
    AppDisabled { client_id: String, app_name: String },
    /// Client credentials against `/common`, `/organizations` or `/consumers`: an app-only token
    /// is always for one directory, and those name none
    /// (<https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow>).
    #[error(
        "AADSTS50059: No tenant-identifying information found in either the request or implied by any provided credentials."
    )]
    NoTenantInformation,
    /// A delegated permission the resource does not have (a typo such as `Mail.Sned`), as
    /// opposed to one it has that was not consented (65001).
    #[error(
        "AADSTS650053: The application '{app_name}' asked for scope '{scope}' that doesn't exist on the resource '{resource}'. Contact the app vendor."
    )]
    ScopeNotOnResource {
        app_name: String,
        scope: String,
        resource: String,
    },
    #[error(
        "AADSTS700024: Client assertion is not within its valid time range. Current time: {now}, assertion valid from {nbf}, expiry time of assertion {exp}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."
    )]
    AssertionTime {
        now: String,
        nbf: String,
        exp: String,
    },
    #[error(
        "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'. Review the documentation at https://learn.microsoft.com/graph/deployment-guide ]"
    )]
    AssertionKeyNotRegistered {
        thumbprint: String,
        client_id: String,
    },
    #[error(
        "AADSTS700027: Client assertion failed signature validation. Trace ID and timestamp are in the response; check that the assertion is signed with the private key of the registered certificate."
    )]
    AssertionSignature,
    #[error("AADSTS50027: JWT token is invalid or malformed. {detail}")]
    AssertionMalformed { detail: String },
    #[error(
        "AADSTS700021: Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."
    )]
    AssertionClientMismatch,
    #[error(
        "AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
    )]
    ScopeWithoutDefault { scope: String },
    #[error(
        "AADSTS700022: The provided value for the input parameter scope is not valid because it contains more than one resource. Scope {scope} is not valid."
    )]
    SeveralResources { scope: String },
    #[error("AADSTS70011: The provided request must include a 'scope' input parameter.")]
    ScopeMissing,
    #[error(
        "AADSTS70011: The provided value for the input parameter 'scope' is not valid. The scope '{scope}' is not valid."
    )]
    InvalidScope { scope: String },
    #[error(
        "AADSTS500011: The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
    )]
    UnknownResource { resource: String, tenant: String },
    #[error(
        "AADSTS65001: The user or administrator has not consented to use the application with ID '{client_id}' named '{app_name}'. Send an interactive authorization request for this user and resource."
    )]
    ConsentRequired { client_id: String, app_name: String },
    #[error("AADSTS50126: Error validating credentials due to invalid username or password.")]
    BadPassword,
    #[error(
        "AADSTS50034: The user account {{EUII Hidden}} does not exist in the {tenant} directory. To sign into this application, the account must be added to the directory."
    )]
    UnknownUser { tenant: String },
    #[error("AADSTS50055: The password is expired.")]
    PasswordExpired,
    #[error("AADSTS50057: The user account is disabled.")]
    UserDisabled,
    #[error(
        "AADSTS50053: The account is locked, you've tried to sign in too many times with an incorrect user ID or password."
    )]
    UserLocked,
    #[error(
        "AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '{resource}'."
    )]
    MfaRequired { resource: String },
    #[error(
        "AADSTS50079: Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access '{resource}'."
    )]
    MfaEnrollmentRequired { resource: String },
    #[error(
        "AADSTS53003: Access has been blocked by Conditional Access policies. The access policy does not allow token issuance."
    )]
    ConditionalAccessBlocked,
    /// A refresh token that was rotated away (used once already) or revoked.
    #[error(
        "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource."
    )]
    RefreshTokenRevoked,
    #[error(
        "AADSTS700082: The refresh token has expired due to inactivity. The token was issued on {issued} and was inactive for {inactive}."
    )]
    RefreshTokenExpired { issued: String, inactive: String },
    #[error("AADSTS9002313: Invalid request. Request is malformed or invalid.")]
    MalformedGrant,
    #[error(
        "AADSTS9001023: The grant type is not supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint."
    )]
    UnsupportedOnCommon,
    #[error(
        "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling."
    )]
    AuthorizationPending,
    /// Microsoft documents the `error` value only; the code is the closest AADSTS (unverified).
    #[error("AADSTS65004: User declined to consent to access the app.")]
    AuthorizationDeclined,
    #[error("AADSTS70019: Verification code expired.")]
    DeviceCodeExpired,
    #[error("AADSTS70018: Invalid verification code entered.")]
    BadVerificationCode,
    #[error("AADSTS70003: The app requested an unsupported grant type '{grant_type}'.")]
    UnsupportedGrantType { grant_type: String },
    #[error("AADSTS900144: The request body must contain the following parameter: '{name}'.")]
    MissingParameter { name: String },
    /// Injected by the fault hooks; Entra answers transient failures like this.
    #[error("AADSTS90033: A transient error has occurred. Please try again.")]
    TemporarilyUnavailable,
}

impl EntraError {
    pub fn code(&self) -> u32 {
        use EntraError::*;
        match self {
            TenantNotFound { .. } => 90002,
            TenantInvalid { .. } => 900023,
            InvalidSecret { .. } => 7000215,
            SecretExpired { .. } => 7000222,
            NoCredential => 7000218,
            UnknownApp { .. } => 700016,
            AppDisabled { .. } => 7000112,
            NoTenantInformation => 50059,
            ScopeNotOnResource { .. } => 650053,
            AssertionTime { .. } => 700024,
            AssertionKeyNotRegistered { .. } | AssertionSignature => 700027,
            AssertionMalformed { .. } => 50027,
            AssertionClientMismatch => 700021,
            ScopeWithoutDefault { .. } => 1002012,
            SeveralResources { .. } => 700022,
            ScopeMissing | InvalidScope { .. } => 70011,
            UnknownResource { .. } => 500011,
            ConsentRequired { .. } => 65001,
            BadPassword => 50126,
            UnknownUser { .. } => 50034,
            PasswordExpired => 50055,
            UserDisabled => 50057,
            UserLocked => 50053,
            MfaRequired { .. } => 50076,
            MfaEnrollmentRequired { .. } => 50079,
            ConditionalAccessBlocked => 53003,
            RefreshTokenRevoked => 70008,
            RefreshTokenExpired { .. } => 700082,
            MalformedGrant => 9002313,
            UnsupportedOnCommon => 9001023,
            AuthorizationPending => 70016,
            AuthorizationDeclined => 65004,
            DeviceCodeExpired => 70019,
            BadVerificationCode => 70018,
            UnsupportedGrantType { .. } => 70003,
            MissingParameter { .. } => 900144,
            TemporarilyUnavailable => 90033,
        }
    }

    /// The OAuth `error` value.
    pub fn error(&self) -> &'static str {
        use EntraError::*;
        match self {
            TenantNotFound { .. }
            | TenantInvalid { .. }
            | UnsupportedOnCommon
            | NoTenantInformation => "invalid_request",
            AppDisabled { .. } => "unauthorized_client",
            ScopeNotOnResource { .. } => "invalid_client",
            MissingParameter { .. } => "invalid_request",
            InvalidSecret { .. } | SecretExpired { .. } | NoCredential => "invalid_client",
            AssertionTime { .. } | AssertionKeyNotRegistered { .. } | AssertionSignature => {
                "invalid_client"
            }
            AssertionMalformed { .. } | AssertionClientMismatch => "invalid_client",
            UnknownApp { .. } => "unauthorized_client",
            ScopeWithoutDefault { .. }
            | SeveralResources { .. }
            | ScopeMissing
            | InvalidScope { .. } => "invalid_scope",
            UnknownResource { .. } => "invalid_resource",
            ConsentRequired { .. }
            | BadPassword
            | UnknownUser { .. }
            | PasswordExpired
            | UserDisabled
            | UserLocked
            | MfaRequired { .. }
            | MfaEnrollmentRequired { .. }
            | ConditionalAccessBlocked
            | RefreshTokenRevoked
            | RefreshTokenExpired { .. }
            | MalformedGrant => "invalid_grant",
            AuthorizationPending => "authorization_pending",
            AuthorizationDeclined => "authorization_declined",
            DeviceCodeExpired => "expired_token",
            BadVerificationCode => "bad_verification_code",
            UnsupportedGrantType { .. } => "unsupported_grant_type",
            TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    pub fn status(&self) -> StatusCode {
        if matches!(self, EntraError::ScopeNotOnResource { .. }) {
            // invalid_client, but not an authentication failure: Entra answers 400.
            return StatusCode::BAD_REQUEST;
        }
        match self.error() {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub fn suberror(&self) -> Option<&'static str> {
        use EntraError::*;
        match self {
            ConsentRequired { .. } => Some("consent_required"),
            MfaRequired { .. } | MfaEnrollmentRequired { .. } | ConditionalAccessBlocked => {
                Some("basic_action")
            }
            PasswordExpired => Some("user_password_expired"),
            _ => None,
        }
    }

    /// The claims challenge Microsoft attaches to MFA / Conditional Access answers, which a
    /// client passes back on an interactive request.
    fn claims(&self) -> Option<String> {
        match self {
            EntraError::MfaRequired { .. }
            | EntraError::MfaEnrollmentRequired { .. }
            | EntraError::ConditionalAccessBlocked => Some(
                json!({"access_token": {"capolids": {"essential": true,
                    "values": ["b7e3c0a1-9f2d-4c6e-8a15-3d4f6b8c0e2a"]}}})
                .to_string(),
            ),
            _ => None,
        }
    }

    /// Builds the HTTP answer for this error within one request's context.
    pub fn into_response_with(self, ctx: &RequestContext) -> Response {
        let error = self.error();
        self.into_response_as(ctx, error)
    }

    /// The answer of the OpenID discovery endpoints, which name an unknown tenant's error
    /// `invalid_tenant` where the token endpoint says `invalid_request`.
    pub fn into_discovery_response(self, ctx: &RequestContext) -> Response {
        let error = match self {
            EntraError::TenantNotFound { .. } => "invalid_tenant",
            _ => self.error(),
        };
        self.into_response_as(ctx, error)
    }

    fn into_response_as(self, ctx: &RequestContext, error: &'static str) -> Response {
        let timestamp = format_timestamp(ctx.timestamp);
        let description = format!(
            "{self}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {timestamp}",
            ctx.trace_id, ctx.correlation_id
        );
        let code = self.code();
        let mut body = json!({
            "error": error,
            "error_description": description,
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": ctx.trace_id.to_string(),
            "correlation_id": ctx.correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        });
        if let Some(sub) = self.suberror() {
            body["suberror"] = json!(sub);
        }
        if let Some(claims) = self.claims() {
            body["claims"] = json!(claims);
        }
        let mut response = (self.status(), axum::Json(body)).into_response();
        ctx.decorate(response.headers_mut());
        response
    }
}

/// Per-request identifiers Microsoft puts in every answer.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub trace_id: Uuid,
    /// The client's `client-request-id` if it sent one (MSAL does), else a fresh GUID.
    pub correlation_id: String,
    pub timestamp: OffsetDateTime,
}

impl RequestContext {
    pub fn from_headers(headers: &HeaderMap) -> RequestContext {
        let correlation_id = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_string)
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        RequestContext {
            trace_id: Uuid::new_v4(),
            correlation_id,
            timestamp: OffsetDateTime::now_utc(),
        }
    }

    /// Adds Entra's diagnostic headers (`x-ms-request-id`, echoed `client-request-id`).
    pub fn decorate(&self, headers: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.trace_id.to_string()) {
            headers.insert("x-ms-request-id", v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.correlation_id) {
            headers.insert("client-request-id", v);
        }
        headers.insert(
            "cache-control",
            HeaderValue::from_static("no-store, no-cache"),
        );
        headers.insert("pragma", HeaderValue::from_static("no-cache"));
    }
}

/// Microsoft's `timestamp` format: `2016-01-09 02:02:12Z`.
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// An error already bound to its request context, so handlers can use `?`.
pub struct EntraResponse(pub EntraError, pub RequestContext);

impl IntoResponse for EntraResponse {
    fn into_response(self) -> Response {
        self.0.into_response_with(&self.1)
    }
}
