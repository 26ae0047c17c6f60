//! Connections per app, cluster-wide: the `max_connections` quota.

use async_trait::async_trait;

use crate::error::BackplaneError;

/// Open connections per app, counted across every node.
#[async_trait]
pub trait ConnectionQuota: Send + Sync {
    /// Count a new connection for `app_id` unless that would exceed `max` (0 = unlimited).
    async fn connection_opened(&self, app_id: &str, max: u64) -> Result<bool, BackplaneError>;
    /// Release a connection counted by [`connection_opened`](Self::connection_opened).
    async fn connection_closed(&self, app_id: &str) -> Result<(), BackplaneError>;
}
