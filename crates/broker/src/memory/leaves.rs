//! [`PendingLeaves`] in process.

use async_trait::async_trait;

use crate::cluster::{LeaveToken, PendingLeaves};
use crate::error::BackplaneError;

use super::{leave_key, MemoryClusterState};

#[async_trait]
impl PendingLeaves for MemoryClusterState {
    async fn confirm_leave(
        &self,
        app_id: &str,
        channel: &str,
        user_id: Option<&str>,
        token: &LeaveToken,
    ) -> Result<bool, BackplaneError> {
        let key = leave_key(app_id, channel, user_id);
        Ok(self
            .leaves
            .remove_if(&key, |_, pending| pending.to_string() == token.0)
            .is_some())
    }
}
