//! Answers of the Graph endpoints, before they become HTTP: a status, a few headers and a
//! body. Kept apart from axum's `Response` because `$batch` needs the same answers as JSON
//! values inside its own response.
//!
//! [`ApiError`] is Graph's error: status, Graph code and Microsoft's message; it is rendered
//! with `innerError` (date, request-id, client-request-id) like Graph does.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kurir_graph::{ErrorBody, InnerError, codes};
use serde_json::Value;

/// What a Graph endpoint answers.
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: ReplyBody,
}

pub enum ReplyBody {
    Empty,
    Json(Value),
    Bytes {
        content_type: &'static str,
        data: std::sync::Arc<Vec<u8>>,
    },
}

impl Reply {
    pub fn json(status: StatusCode, v: impl serde::Serialize) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Json(serde_json::to_value(v).unwrap_or(Value::Null)),
        }
    }
    pub fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Empty,
        }
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// Turns the reply into an HTTP response with Graph's correlation headers.
    pub fn into_http(self, request_id: &str, client_request_id: Option<&str>) -> Response {
        let mut resp = match self.body {
            ReplyBody::Empty => Response::new(Body::empty()),
            ReplyBody::Json(v) => {
                let mut r = Response::new(Body::from(v.to_string()));
                r.headers_mut().insert(
                    "content-type",
                    HeaderValue::from_static("application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"),
                );
                r
            }
            ReplyBody::Bytes { content_type, data } => {
                let mut r = Response::new(Body::from(data.as_ref().clone()));
                r.headers_mut()
                    .insert("content-type", HeaderValue::from_static(content_type));
                r
            }
        };
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        // A reply's own headers win over the defaults above (e.g. an attachment's content type).
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(HeaderName::from_static(name), v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert("request-id", v);
        }
        // Graph answers every request with a client-request-id: the caller's, else its own
        // request-id (what SDKs log to correlate).
        if let Ok(c) = HeaderValue::from_str(client_request_id.unwrap_or(request_id)) {
            h.insert("client-request-id", c);
        }
        // Which Graph front end answered; support asks for it with the request-id.
        h.insert(
            "x-ms-ags-diagnostic",
            HeaderValue::from_static(
                r#"{"ServerInfo":{"DataCenter":"Kurir Emulator","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"kurir-emulator"}}"#,
            ),
        );
        // A 401 carries the challenge clients need for claims challenges and to find the
        // authority (RFC 6750 §3; https://learn.microsoft.com/en-us/entra/identity-platform/claims-challenge).
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                "www-authenticate",
                HeaderValue::from_static(
                    r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000""#,
                ),
            );
        }
        resp
    }
}

/// A Graph error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            codes::INVALID_AUTHENTICATION_TOKEN,
            message,
        )
    }
    /// Microsoft's message when a permission is missing.
    pub fn access_denied() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            codes::ACCESS_DENIED,
            "Access is denied. Check credentials and try again.",
        )
    }
    /// An Exchange application access policy (or RBAC scope) excludes the mailbox.
    pub fn blocked_by_policy() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            codes::ACCESS_DENIED,
            "Access to OData is disabled: Blocked by tenant configured AppOnly AccessPolicy settings.",
        )
    }
    pub fn item_not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            codes::ITEM_NOT_FOUND,
            "The specified object was not found in the store.",
        )
    }
    pub fn resource_not_found(path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            codes::RESOURCE_NOT_FOUND,
            format!("Resource not found for the segment '{path}'."),
        )
    }
    pub fn throttled(retry_after: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                codes::APPLICATION_THROTTLED,
                "Application is over its MailboxConcurrency limit.",
            )
        }
    }
    pub fn unavailable(retry_after: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::SERVICE_UNAVAILABLE,
                "The service is currently unavailable. Please try again later.",
            )
        }
    }
    pub fn too_large() -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::REQUEST_TOO_LARGE,
            "The maximum request length supported is 4MB.",
        )
    }
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!("Graph emulator internal error: {detail}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "generalException",
            "An internal server error occurred in the emulator; see its log.",
        )
    }

    pub fn into_reply(self, request_id: &str, client_request_id: Option<&str>) -> Reply {
        let date = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
        let body = ErrorBody::new(
            self.code,
            self.message,
            Some(InnerError {
                date,
                request_id: Some(request_id.to_string()),
                client_request_id: Some(client_request_id.unwrap_or(request_id).to_string()),
            }),
        );
        let mut reply = Reply::json(self.status, body);
        if let Some(s) = self.retry_after {
            reply = reply.header("retry-after", s.to_string());
        }
        reply
    }
}

impl From<super::store::StoreError> for ApiError {
    fn from(e: super::store::StoreError) -> ApiError {
        ApiError::internal(e)
    }
}

/// Shorthand for the Graph endpoints' results.
pub type ApiResult = Result<Reply, ApiError>;

/// Errors outside Graph's shape (the `/_emulator` test API answers plainly).
pub fn plain(status: StatusCode, message: String) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": status.canonical_reason(), "message": message})),
    )
        .into_response()
}
