//! `ApiError`: the one error type of the HTTP layer, with a fixed status table. Internal
//! error text goes to the log with the request id, never to the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use aegis_core::CoreError;
use aegis_core::oidc::FailureClass;

/// The error body's code and message, kept as a response extension so the outer
/// middleware can add the request id.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorBody {
    pub error: &'static str,
    pub message: String,
    pub request_id: Option<String>,
}

/// An HTTP API error.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    MethodNotAllowed,
    Conflict(String),
    PayloadTooLarge(String),
    UnsupportedMediaType(String),
    Unprocessable(String),
    TooManyRequests {
        retry_after_secs: u64,
    },
    Unavailable(String),
    /// An upstream (an identity provider) answered with something unusable.
    BadGateway(String),
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        use ApiError::*;
        match self {
            BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m.clone()),
            Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m.clone()),
            Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.clone()),
            NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone()),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed for this path".into(),
            ),
            Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone()),
            PayloadTooLarge(m) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                m.clone(),
            ),
            UnsupportedMediaType(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                m.clone(),
            ),
            Unprocessable(m) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", m.clone()),
            TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; retry later".into(),
            ),
            Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m.clone()),
            BadGateway(m) => (StatusCode::BAD_GATEWAY, "bad_gateway", m.clone()),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal server error".into(),
            ),
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Invalid(m) => ApiError::Unprocessable(m),
            CoreError::InvalidCredentials => {
                ApiError::Unauthorized("invalid email or password".into())
            }
            CoreError::Unauthenticated => ApiError::Unauthorized("authentication required".into()),
            CoreError::InvalidSecondFactor => ApiError::Unauthorized(
                "invalid or already used code, or the login step expired: sign in again if it keeps failing".into(),
            ),
            CoreError::Forbidden(m) => ApiError::Forbidden(m),
            CoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            CoreError::Conflict(m) => ApiError::Conflict(m),
            CoreError::Busy { retry_after_secs } => ApiError::TooManyRequests { retry_after_secs },
            CoreError::Oidc(f) => {
                let m = f.message().to_string();
                match f.class() {
                    FailureClass::BadRequest => ApiError::BadRequest(m),
                    FailureClass::Unauthenticated => ApiError::Unauthorized(m),
                    FailureClass::Forbidden => ApiError::Forbidden(m),
                    FailureClass::NotFound => ApiError::NotFound(m),
                    FailureClass::Conflict => ApiError::Conflict(m),
                    FailureClass::Unavailable => ApiError::Unavailable(m),
                    FailureClass::BadGateway => ApiError::BadGateway(m),
                }
            }
            CoreError::Storage(m) => ApiError::Internal(format!("storage: {m}")),
            CoreError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "internal error");
        }
        let body = ErrorBody {
            error: code,
            message,
            request_id: None,
        };
        let mut resp = (status, Json(body.clone())).into_response();
        resp.extensions_mut().insert(body);
        let h = resp.headers_mut();
        match &self {
            ApiError::Unauthorized(_) => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"aegis\""),
                );
            }
            ApiError::Unavailable(_) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ApiError::TooManyRequests { retry_after_secs } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.max(&1).to_string()) {
                    h.insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        resp
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
