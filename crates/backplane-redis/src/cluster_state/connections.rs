//! [`ConnectionQuota`] on Redis (`lua/connect.lua`, `lua/disconnect.lua`).

use async_trait::async_trait;
use ferrocast_broker::{BackplaneError, ConnectionQuota};

use super::{int, malformed};
use crate::keys::NodeRecord;
use crate::RedisBackplane;

#[async_trait]
impl ConnectionQuota for RedisBackplane {
    async fn connection_opened(&self, app_id: &str, max: u64) -> Result<bool, BackplaneError> {
        let bucket = self.keys.bucket(self.keys.app_bucket(app_id));
        let keys = vec![
            bucket.connections(app_id),
            bucket.node_record(self.keys.node(), NodeRecord::Apps),
        ];
        let reply = self
            .eval(&self.scripts().connect, keys, self.args(&[app_id, &max.to_string()]))
            .await?;
        Ok(int(&reply).ok_or_else(|| malformed("connect"))? == 1)
    }

    async fn connection_closed(&self, app_id: &str) -> Result<(), BackplaneError> {
        let keys = vec![self.keys.bucket(self.keys.app_bucket(app_id)).connections(app_id)];
        self.eval(&self.scripts().disconnect, keys, self.args(&[]))
            .await
            .map(|_| ())
    }
}
