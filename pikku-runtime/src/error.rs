//! The typed error every Pikku function and the runtime itself returns.
//!
//! A [`PikkuError`] carries an HTTP status, a short machine-readable `code`, a human message
//! and, for input errors, the offending `field`. It renders as the same JSON body everywhere:
//! JSON responses, 404/405 answers of the router, and `event: error` items of a stream.
//!
//! ```
//! use pikku::PikkuError;
//! let err = PikkuError::not_found("no such user").with_field("userId");
//! assert_eq!(err.status().as_u16(), 404);
//! assert_eq!(
//!     err.to_json(),
//!     serde_json::json!({"error": "not_found", "message": "no such user", "status": 404, "field": "userId"})
//! );
//! ```

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

/// A typed error that maps to an HTTP status and a JSON body.
///
/// Build it with the constructor named for the status (`bad_request`, `unauthorized`,
/// `forbidden`, `not_found`, `conflict`, `unprocessable`, `too_many_requests`, `internal`).
/// [`PikkuError::internal`] never shows its cause to the client: the cause is logged instead.
#[derive(Clone, PartialEq, Eq)]
pub struct PikkuError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: Cow<'static, str>,
    field: Option<String>,
    retry_after: Option<u64>,
}

/// `Result` with [`PikkuError`] as the error: the usual return type of a Pikku function.
pub type Result<T, E = PikkuError> = std::result::Result<T, E>;

impl PikkuError {
    /// An error with any status, code and message.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 400: the request is malformed (e.g. a body that is not JSON).
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// 401: no valid session.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    /// 403: a session, but not allowed to do this.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 404: the thing asked for does not exist.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 405: the route exists, but not with this method.
    pub fn method_not_allowed(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            message,
        )
    }
    /// 409: the request conflicts with the current state.
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    /// 413: the request body is larger than the configured limit.
    pub fn payload_too_large(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }
    /// 415: the request body is not in a format the route takes (it takes JSON).
    pub fn unsupported_media_type(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }
    /// 422: the input is well-formed but does not fit the function's input type.
    pub fn unprocessable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message)
    }
    /// 429: too many requests; `retry_after_secs` becomes a `Retry-After` header.
    pub fn too_many_requests(message: impl Into<Cow<'static, str>>, retry_after_secs: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message);
        e.retry_after = Some(retry_after_secs);
        e
    }
    /// 500 with a generic message. The `cause` is logged (with `tracing`), never sent.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::internal_logged()
    }

    /// The 500 a client sees, for a cause the caller has logged already (a panic).
    pub(crate) fn internal_logged() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )
    }

    /// Names the input field the error is about.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Adds a `Retry-After` (seconds) to the response.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The machine-readable code (`"not_found"`, `"invalid_input"`, ...).
    pub fn code(&self) -> &str {
        &self.code
    }
    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The input field the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The JSON body: `{"error": code, "message": ..., "status": ..., "field"?: ...}`.
    pub fn to_json(&self) -> serde_json::Value {
        // A struct of strings and numbers always converts.
        serde_json::to_value(self.body()).unwrap_or_default()
    }

    /// The JSON body as its type.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code.to_string(),
            message: self.message.to_string(),
            status: self.status.as_u16(),
            field: self.field.clone(),
        }
    }

    /// The error as a complete HTTP response with a JSON body.
    pub fn to_response<B: From<Bytes>>(&self) -> http::Response<B> {
        let body = Bytes::from(serde_json::to_vec(&self.body()).unwrap_or_default());
        let mut res = http::Response::new(B::from(body));
        *res.status_mut() = self.status;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

impl fmt::Debug for PikkuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PikkuError")
            .field("status", &self.status.as_u16())
            .field("code", &self.code)
            .field("message", &self.message)
            .field("field", &self.field)
            .finish()
    }
}

impl fmt::Display for PikkuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )?;
        if let Some(field) = &self.field {
            write!(f, " (field `{field}`)")?;
        }
        Ok(())
    }
}

impl std::error::Error for PikkuError {}

impl axum::response::IntoResponse for PikkuError {
    fn into_response(self) -> axum::response::Response {
        self.to_response()
    }
}

/// The JSON body of an HTTP error answer: what [`PikkuError::to_response`] sends, the OpenAPI
/// document describes and the clients read.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[schemars(description = "The JSON schema of the error body, for OpenAPI documents.")]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `not_found` or `invalid_input`.
    pub error: String,
    /// Human-readable message.
    pub message: String,
    /// The HTTP status.
    pub status: u16,
    /// The input field the error is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_hides_its_cause() {
        let e = PikkuError::internal("db password is hunter2");
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.to_json().to_string().contains("hunter2"));
    }

    #[test]
    fn too_many_requests_sets_retry_after() {
        let res: http::Response<Bytes> =
            PikkuError::too_many_requests("slow down", 3).to_response();
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()[header::RETRY_AFTER], "3");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    }
}
