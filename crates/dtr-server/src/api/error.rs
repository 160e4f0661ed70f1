//! The one error type of the api's HTTP endpoints: a status, a stable code and a message, sent
//! as `{"errors": [{"code": ..., "message": ...}]}` — the shape every failure uses. Also the
//! JSON body extractor that turns malformed, oversized or unknown-field bodies into such errors.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::json;

/// Request bodies larger than this are refused with 413 before they are parsed.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `WWW-Authenticate` to send with a 401.
    pub challenge: Option<&'static str>,
    /// `Retry-After` (seconds) to send with a 429 or 503.
    pub retry_after: Option<u64>,
    /// What went wrong inside (addresses, a dependency's own error): logged when the answer
    /// is sent, never sent.
    pub detail: Option<String>,
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            challenge: None,
            retry_after: None,
            detail: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Missing or wrong credentials: the client should authenticate (again).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            challenge: Some(r#"Basic realm="dtr""#),
            ..Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// A failure of the api's own dependencies (database, etcd, registry).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
    }

    /// `what` failed with `detail`: the client reads which part is unavailable, the api's log
    /// the error itself (it names internal addresses; issue 18, finding 17).
    pub fn dependency(what: &str, detail: impl std::fmt::Display) -> Self {
        ApiError {
            detail: Some(format!("{what}: {detail}")),
            ..Self::unavailable(format!(
                "{what}: unavailable right now, try again in a moment (details in the api's log)"
            ))
        }
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        ApiError::dependency("a service the api needs", e)
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.code() == Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION) {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "DATABASE_READ_ONLY",
                "the metadata database has no writable primary right now (a failover is under way, \
                 or the cluster lost its quorum: see `dtr emergency-repair`); reads still work",
            );
        }
        ApiError::dependency("the metadata database", e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(detail) = &self.detail {
            crate::runtime::log(
                dtr_core::options::LogLevel::Warn,
                dtr_core::options::LogLevel::Info,
                format!("answered {}: {detail}", self.status.as_u16()),
            );
        }
        let body = json!({"errors": [{"code": self.code, "message": self.message}]});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A JSON request body; any problem with it is an `ApiError` (400 malformed or unknown field,
/// 413 too large, 415 not JSON). Request types use `#[serde(deny_unknown_fields)]`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "send the body as JSON with Content-Type: application/json",
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "BODY_TOO_LARGE",
                    format!("request bodies are limited to {BODY_LIMIT} bytes"),
                ))
            }
            Err(e) => Err(ApiError::bad_request("INVALID_JSON", e.body_text())),
        }
    }
}
