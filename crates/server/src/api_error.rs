//! The one place where REST failures become HTTP responses: `{"error": "..."}` with a status.
//!
//! A request refused by a per-second budget is a 429 with `Retry-After` (whole seconds, at
//! least 1: until the budget's window ends). A backplane that cannot be asked is a 503, never
//! a 200 for something that was not published and never "unlimited" by default.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde::Serialize;

use ferrocast_broker::audit::LineLimiter;
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
    /// `retry_after_s` (rate limits only) becomes the `Retry-After` header.
    #[error("{message}")]
    OverLimit {
        limit: Limit,
        message: String,
        retry_after_s: Option<u64>,
    },
}

impl From<BackplaneError> for ApiError {
    fn from(e: BackplaneError) -> Self {
        // During a Redis outage every REST call fails the same way: one line a second (saying
        // how many were not logged) tells the story; each failure is still counted as a 503 in
        // `ferrocast_rest_requests_total`.
        static LOG: OnceLock<LineLimiter> = OnceLock::new();
        if let Some(suppressed) = LOG.get_or_init(|| LineLimiter::new(1)).admit() {
            tracing::warn!(error = %e, suppressed_before = suppressed, "REST request failed on the backplane");
        }
        ApiError::Unavailable("cluster backplane unavailable, try again".into())
    }
}

impl ApiError {
    pub fn over_limit(limit: Limit, message: String) -> Self {
        ApiError::OverLimit {
            limit,
            message,
            retry_after_s: None,
        }
    }

    /// A per-second budget refused the request; its window ends in `resets_in`.
    pub fn rate_limited(limit: Limit, message: String, resets_in: Duration) -> Self {
        ApiError::OverLimit {
            limit,
            message,
            retry_after_s: Some(retry_after_seconds(resets_in)),
        }
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
        let mut response = json_response(self.status(), body);
        let retry_after = match self {
            ApiError::OverLimit { retry_after_s, .. } => retry_after_s,
            // The cluster link comes back within seconds (reconnect backoff is capped at 2 s).
            ApiError::Unavailable(_) => Some(1),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from(seconds));
        }
        response
    }
}

/// `Retry-After` in whole seconds: the wait rounded up, never 0 (clients retry at once on 0).
fn retry_after_seconds(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1001)), 2);
    }

    #[test]
    fn rate_limits_answer_429_with_retry_after_and_other_limits_without() {
        let limited = ApiError::rate_limited(Limit::BackendEventRate, "over".into(), Duration::from_millis(300));
        let response = limited.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[hyper::header::RETRY_AFTER], "1");
        let size = ApiError::over_limit(Limit::EventPayloadSize, "big".into()).into_response();
        assert_eq!(size.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(size.headers().get(hyper::header::RETRY_AFTER).is_none());
        let down = ApiError::from(BackplaneError::LinkDown).into_response();
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.headers()[hyper::header::RETRY_AFTER], "1");
    }
}
