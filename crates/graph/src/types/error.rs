//! Graph's error body and the error codes Kurir meets in mail work.

use serde::{Deserialize, Serialize};

/// `{"error":{"code","message","innerError":{…}}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_error: Option<InnerError>,
}

/// Correlation data Microsoft support asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InnerError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(
        rename = "request-id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub request_id: Option<String>,
    #[serde(
        rename = "client-request-id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_request_id: Option<String>,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>, inner: Option<InnerError>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: message.into(),
                inner_error: inner,
            },
        }
    }
}

/// Graph error codes for mail, as Microsoft spells them.
pub mod codes {
    /// 401: token missing, expired, wrongly signed or for another audience.
    pub const INVALID_AUTHENTICATION_TOKEN: &str = "InvalidAuthenticationToken";
    /// 403: no permission, or an application access policy / RBAC scope excludes the mailbox.
    pub const ACCESS_DENIED: &str = "ErrorAccessDenied";
    /// 403: the message's From is a mailbox this one has no Send As permission on.
    pub const SEND_AS_DENIED: &str = "ErrorSendAsDenied";
    /// 404: no such user or mailbox in the tenant.
    pub const INVALID_USER: &str = "ErrorInvalidUser";
    /// 404: the user exists but has no Exchange Online mailbox (no licence, on-premises).
    pub const MAILBOX_NOT_ENABLED: &str = "MailboxNotEnabledForRESTAPI";
    /// 404: the message or folder does not exist (any more: moved messages change id).
    pub const ITEM_NOT_FOUND: &str = "ErrorItemNotFound";
    /// 404: the URL names no Graph resource.
    pub const RESOURCE_NOT_FOUND: &str = "ResourceNotFound";
    /// 409: a child folder with that name exists.
    pub const FOLDER_EXISTS: &str = "ErrorFolderExists";
    /// 429: too many requests or too many at once for this mailbox.
    pub const APPLICATION_THROTTLED: &str = "ApplicationThrottled";
    /// 400: the MIME form of sendMail was not valid base64.
    pub const MIME_INVALID_BASE64: &str = "ErrorMimeContentInvalidBase64String";
    /// 400: an invalid `$filter`.
    pub const INVALID_URL_QUERY_FILTER: &str = "ErrorInvalidUrlQueryFilter";
    /// 400: `$filter` with `$orderby` on properties the filter does not name first.
    pub const INEFFICIENT_FILTER: &str = "InefficientFilter";
    /// 400: an upload session for a file under 3 MB (use `POST …/attachments`).
    pub const ATTACHMENT_TOO_SMALL_FOR_SESSION: &str =
        "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize";
    /// 400: an id that is not an id at all (as opposed to one of an item that does not exist).
    pub const INVALID_ID_MALFORMED: &str = "ErrorInvalidIdMalformed";
    /// 400: other invalid query options or bodies.
    pub const BAD_REQUEST: &str = "BadRequest";
    pub const INVALID_REQUEST: &str = "ErrorInvalidRequest";
    /// 413/400: a request over 4 MB.
    pub const REQUEST_TOO_LARGE: &str = "RequestBodyTooLarge";
    /// 503: Exchange is busy.
    pub const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
    /// 424 in `$batch`: a request this one depends on failed.
    pub const FAILED_DEPENDENCY: &str = "FailedDependency";
    /// The delta token is too old or unknown: start a new sync.
    pub const SYNC_STATE_NOT_FOUND: &str = "SyncStateNotFound";
}
