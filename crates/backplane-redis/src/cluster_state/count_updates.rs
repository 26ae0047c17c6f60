//! [`CountUpdates`] on Redis (`lua/count_changed.lua`, `lua/count_due.lua`): the claim of a
//! channel is the key `P:scc:a:c`, counting the changes not yet published; it expires after
//! `hold` so a dead holder frees it.

use std::time::Duration;

use async_trait::async_trait;
use ferrocast_broker::{BackplaneError, CountUpdates};

use super::{array, int, malformed};
use crate::RedisBackplane;

fn millis(hold: Duration) -> String {
    hold.as_millis().max(1).to_string()
}

#[async_trait]
impl CountUpdates for RedisBackplane {
    async fn count_changed(&self, app_id: &str, channel: &str, hold: Duration) -> Result<bool, BackplaneError> {
        let reply = self
            .eval(
                &self.scripts().count_changed,
                vec![self.keys.channel(app_id, channel).count_claim()],
                vec![millis(hold)],
            )
            .await?;
        int(&reply)
            .map(|won| won == 1)
            .ok_or_else(|| malformed("count changed"))
    }

    async fn count_update_due(
        &self,
        app_id: &str,
        channel: &str,
        hold: Duration,
    ) -> Result<Option<u64>, BackplaneError> {
        let reply = self
            .eval(
                &self.scripts().count_due,
                {
                    let c = self.keys.channel(app_id, channel);
                    vec![c.count_claim(), c.shared.channel_index(app_id)]
                },
                vec![channel.to_owned(), millis(hold)],
            )
            .await?;
        match array(&reply).ok_or_else(|| malformed("count due"))? {
            [] => Ok(None),
            [count] => Ok(Some(int(count).ok_or_else(|| malformed("count due"))?.max(0) as u64)),
            _ => Err(malformed("count due")),
        }
    }
}
