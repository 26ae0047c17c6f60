//! [`ConnectionQuota`] in process.

use async_trait::async_trait;

use crate::cluster::ConnectionQuota;
use crate::error::BackplaneError;

use super::MemoryClusterState;

#[async_trait]
impl ConnectionQuota for MemoryClusterState {
    async fn connection_opened(&self, app_id: &str, max: u64) -> Result<bool, BackplaneError> {
        let mut count = self.connections.entry(app_id.to_owned()).or_insert(0);
        if max > 0 && *count >= max {
            return Ok(false);
        }
        *count += 1;
        Ok(true)
    }

    async fn connection_closed(&self, app_id: &str) -> Result<(), BackplaneError> {
        if let Some(mut count) = self.connections.get_mut(app_id) {
            *count = count.saturating_sub(1);
        }
        Ok(())
    }
}
