//! Typed errors of the node core. The server maps each to a close code, a `pusher:error`
//! frame or an HTTP status in one place.

use thiserror::Error;

/// The backplane or cluster state could not be reached or answered nonsense.
#[derive(Debug, Error)]
#[error("backplane unavailable: {0}")]
pub struct BackplaneError(pub String);

/// Why a WebSocket connection was refused after the upgrade.
#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("app is disabled")]
    AppDisabled,
    #[error("app is over its connection quota")]
    OverQuota,
    #[error(transparent)]
    Backplane(#[from] BackplaneError),
}

/// Why a publish through the REST API failed after validation.
#[derive(Debug, Error)]
pub enum PublishError {
    #[error(transparent)]
    Backplane(#[from] BackplaneError),
}
