//! The one place where REST failures become HTTP responses: `{"error": "..."}` with a status.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde::Serialize;

use ferrocast_broker::{BackplaneError, Limit};

/// A REST request that failed, with the status Pusher clients expect.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed body or parameters, or a limit on the request's shape.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or wrong signature parameters.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: app disabled.
    #[error("{0}")]
    Forbidden(String),
    /// 404: unknown app or route.
    #[error("{0}")]
    NotFound(String),
    /// 405: known route, wrong method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 408: the request body did not arrive within `request_body_timeout_s`.
    #[error("{0}")]
    BodyTimeout(String),
    /// 503: the backplane could not be reached.
    #[error("{0}")]
    Unavailable(String),
    /// A configured limit refused the request: 400, 413 or 429 depending on the limit.
    #[error("{message}")]
    OverLimit { limit: Limit, message: String },
}

impl From<BackplaneError> for ApiError {
    fn from(e: BackplaneError) -> Self {
        tracing::warn!(error = %e, "REST request failed on the backplane");
        ApiError::Unavailable("cluster backplane unavailable, try again".into())
    }
}

impl ApiError {
    pub fn over_limit(limit: Limit, message: String) -> Self {
        ApiError::OverLimit { limit, message }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::OverLimit { limit, .. } => match limit {
                Limit::BackendEventRate | Limit::ReadRequestRate => StatusCode::TOO_MANY_REQUESTS,
                Limit::EventPayloadSize => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            },
        }
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
        }
        let message = self.to_string();
        let body = serde_json::to_vec(&Body { error: &message }).unwrap_or_default();
        json_response(self.status(), body)
    }
}

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
