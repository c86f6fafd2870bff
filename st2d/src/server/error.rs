//! The one place errors become HTTP: a status and StackStorm's `{"faultstring": …}` body.

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use st2_core::EngineError;
use st2_core::datastore::KeyValueError;
use st2_core::store::StoreError;

/// An error answer: status, message and, for conflicts, the id of what already exists.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The `faultstring`.
    pub message: String,
    /// `conflict-id` of a 409.
    pub conflict_id: Option<String>,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            conflict_id: None,
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 404 for a resource looked up by ref or id.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("Resource with a reference or id \"{what}\" not found"),
        )
    }

    /// StackStorm's plain 404.
    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "The resource could not be found.")
    }

    /// 500 without details (they go to the log).
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    }
}

/// A JSON `{"faultstring": message}` response with `status`.
pub fn fault(status: StatusCode, message: &str) -> Response {
    ApiError::new(status, message).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"faultstring": self.message});
        if let Some(id) = self.conflict_id {
            body["conflict-id"] = json!(id);
        }
        (
            self.status,
            [(CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::UnknownAction(_)
            | EngineError::ActionDisabled(_)
            | EngineError::UnknownTrigger(_)
            | EngineError::InvalidPayload { .. }
            | EngineError::InvalidParameters(_)
            | EngineError::InvalidState(_) => ApiError::bad_request(e.to_string()),
            EngineError::UnknownExecution(id) | EngineError::UnknownInquiry(id) => {
                ApiError::not_found(&id)
            }
            EngineError::KeyValue(kv) => kv.into(),
            EngineError::Store(s) => s.into(),
            EngineError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the service is shutting down",
            ),
            other => ApiError::internal(other),
        }
    }
}

impl From<KeyValueError> for ApiError {
    fn from(e: KeyValueError) -> Self {
        match e {
            KeyValueError::CryptoKeyNotSetup
            | KeyValueError::Invalid(_)
            | KeyValueError::Crypto { .. } => ApiError::bad_request(e.to_string()),
            KeyValueError::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { id, .. } => ApiError::not_found(&id),
            StoreError::Conflict { ref id, .. } => {
                let id = id.clone();
                let mut err = ApiError::new(StatusCode::CONFLICT, e.to_string());
                err.conflict_id = Some(id);
                err
            }
            StoreError::Invalid(m) => ApiError::bad_request(m),
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The database is unavailable.",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

/// Handler results.
pub type ApiResult<T = Response> = Result<T, ApiError>;
