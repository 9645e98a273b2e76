//! SES error responses in the shape the AWS SDK's restJson1 deserializers expect.
//!
//! The SDK reads the error code from the `x-amzn-ErrorType` header (falling back to `code` /
//! `__type` in the body) and the text from `message`, then maps the code to a typed error, so
//! `err.as_service_error().map(|e| e.is_not_found_exception())` works against the stand-in
//! exactly as against SES.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// An SES API error. The variant decides the code and HTTP status; the text is the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SesError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    MessageRejected(String),
    #[error("{0}")]
    AccountSuspended(String),
    #[error("{0}")]
    SendingPaused(String),
    #[error("Rate exceeded")]
    TooManyRequests,
    #[error("An internal error occurred. Try again later.")]
    InternalFailure,
    #[error("Unknown operation {0}")]
    UnknownOperation(String),
}

impl SesError {
    /// The AWS error code (the SDK's error variant name).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "NotFoundException",
            Self::AlreadyExists(_) => "AlreadyExistsException",
            Self::BadRequest(_) => "BadRequestException",
            Self::LimitExceeded(_) => "LimitExceededException",
            Self::MessageRejected(_) => "MessageRejected",
            Self::AccountSuspended(_) => "AccountSuspendedException",
            Self::SendingPaused(_) => "SendingPausedException",
            Self::TooManyRequests => "TooManyRequestsException",
            Self::InternalFailure => "InternalFailure",
            Self::UnknownOperation(_) => "UnknownOperationException",
        }
    }

    /// The HTTP status SES answers with for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) | Self::UnknownOperation(_) => StatusCode::NOT_FOUND,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::InternalFailure => StatusCode::INTERNAL_SERVER_ERROR,
            Self::AlreadyExists(_)
            | Self::BadRequest(_)
            | Self::LimitExceeded(_)
            | Self::MessageRejected(_)
            | Self::AccountSuspended(_)
            | Self::SendingPaused(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for SesError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.to_string() });
        let mut response = (self.status(), axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static(self.code()));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_429_with_the_sdk_code() {
        let response = SesError::TooManyRequests.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response
                .headers()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok()),
            Some("TooManyRequestsException")
        );
    }
}
