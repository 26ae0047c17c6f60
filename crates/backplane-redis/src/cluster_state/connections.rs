//! [`ConnectionQuota`] on Redis (`lua/connect.lua`, `lua/disconnect.lua`).

use async_trait::async_trait;
use ferrocast_broker::{BackplaneError, ConnectionQuota};

use super::{int, malformed};
use crate::RedisBackplane;

#[async_trait]
impl ConnectionQuota for RedisBackplane {
    async fn connection_opened(&self, app_id: &str, max: u64) -> Result<bool, BackplaneError> {
        let reply = self
            .eval(&self.scripts.connect, self.args(&[app_id, &max.to_string()]))
            .await?;
        Ok(int(&reply).ok_or_else(|| malformed("connect"))? == 1)
    }

    async fn connection_closed(&self, app_id: &str) -> Result<(), BackplaneError> {
        self.eval(&self.scripts.disconnect, self.args(&[app_id]))
            .await
            .map(|_| ())
    }
}
