//! [`PendingLeaves`] on Redis (`lua/confirm_leave.lua`): the node id goes along, so the
//! confirming node's record of what it owes (`P:node:n:leaves`) loses the entry.

use async_trait::async_trait;
use ferrocast_broker::{BackplaneError, LeaveToken, PendingLeaves};

use super::{int, malformed};
use crate::RedisBackplane;

#[async_trait]
impl PendingLeaves for RedisBackplane {
    async fn confirm_leave(
        &self,
        app_id: &str,
        channel: &str,
        user_id: Option<&str>,
        token: &LeaveToken,
    ) -> Result<bool, BackplaneError> {
        let mut args = self.args(&[app_id, channel, &token.0]);
        args.extend(user_id.map(str::to_owned));
        let reply = self.eval(&self.scripts.confirm_leave, args).await?;
        Ok(int(&reply).ok_or_else(|| malformed("confirm leave"))? == 1)
    }
}
