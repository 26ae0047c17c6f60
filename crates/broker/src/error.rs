//! Typed errors of the node core. The server maps each to a close code, a `pusher:error`
//! frame or an HTTP status in one place.

use thiserror::Error;

/// The backplane or cluster state could not be reached or answered nonsense. Every variant
/// means "not done": callers refuse or retry, never assume success.
#[derive(Debug, Error)]
pub enum BackplaneError {
    /// The node is not connected to the cluster (Redis down, or not started yet).
    #[error("backplane link is down")]
    LinkDown,
    /// The store did not answer in time; the operation may or may not have happened.
    #[error("backplane timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The store (Redis) refused or failed the command.
    #[error("backplane store error: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store answered something this node cannot read (a script/version mismatch).
    #[error("backplane store sent an unexpected reply to {0}")]
    Malformed(String),
}

impl BackplaneError {
    /// A store failure, keeping its error as the source.
    pub fn store(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Store(Box::new(error))
    }

    /// An unreadable reply to `what`.
    pub fn malformed(what: impl Into<String>) -> Self {
        Self::Malformed(what.into())
    }
}

/// Why a WebSocket connection was refused after the upgrade.
#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("app is disabled")]
    AppDisabled,
    /// A reload removed the app while the socket was being admitted.
    #[error("no app with this key")]
    AppRemoved,
    #[error("app is over its connection quota")]
    OverQuota,
    #[error(transparent)]
    Backplane(#[from] BackplaneError),
}

/// Why a publish through the REST API failed after validation.
#[derive(Debug, Error)]
pub enum PublishError {
    /// The node is not joined to the cluster (what its readiness probe says): a publish now
    /// could reach Redis before the other nodes' subscriptions are back, so it is refused for
    /// the publisher to retry rather than accepted and possibly lost.
    #[error("this node is not joined to the cluster")]
    NotJoined,
    #[error(transparent)]
    Backplane(#[from] BackplaneError),
}
