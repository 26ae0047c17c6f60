//! [`ChannelOccupancy`] on Redis (`lua/sub_add.lua`, `lua/sub_remove.lua`, `lua/channels.lua`,
//! `lua/channel.lua`).

use async_trait::async_trait;
use ferrocast_broker::{BackplaneError, ChannelCounts, ChannelOccupancy, LeavePolicy, LeaveToken};

use super::{array, int, malformed, pending_leave, string};
use crate::RedisBackplane;

#[async_trait]
impl ChannelOccupancy for RedisBackplane {
    async fn subscription_added(&self, app_id: &str, channel: &str) -> Result<bool, BackplaneError> {
        let reply = self.eval(&self.scripts.sub_add, self.args(&[app_id, channel])).await?;
        match array(&reply).ok_or_else(|| malformed("subscription add"))? {
            [_count, occupied] => Ok(int(occupied) == Some(1)),
            _ => Err(malformed("subscription add")),
        }
    }

    async fn subscription_removed(
        &self,
        app_id: &str,
        channel: &str,
        policy: LeavePolicy,
    ) -> Result<Option<LeaveToken>, BackplaneError> {
        let token = self.leave_token(policy);
        let reply = self
            .eval(&self.scripts.sub_remove, self.args(&[app_id, channel, &token]))
            .await?;
        pending_leave(&reply, "subscription remove")
    }

    async fn channels(&self, app_id: &str, prefix: &str) -> Result<Vec<(String, ChannelCounts)>, BackplaneError> {
        let args = vec![self.keys.prefix().to_owned(), app_id.to_owned(), prefix.to_owned()];
        let reply = self.eval(&self.scripts.channels, args).await?;
        let items = array(&reply).ok_or_else(|| malformed("channels"))?;
        let mut out = items
            .chunks(3)
            .map(|row| match row {
                [name, subs, users] => Some((
                    string(name)?,
                    ChannelCounts {
                        subscriptions: int(subs)?.max(0) as u64,
                        users: int(users)?.max(0) as u64,
                    },
                )),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("channels"))?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn channel(&self, app_id: &str, channel: &str) -> Result<ChannelCounts, BackplaneError> {
        let args = vec![self.keys.prefix().to_owned(), app_id.to_owned(), channel.to_owned()];
        let reply = self.eval(&self.scripts.channel, args).await?;
        match array(&reply).ok_or_else(|| malformed("channel"))? {
            [subs, users] => Ok(ChannelCounts {
                subscriptions: int(subs).ok_or_else(|| malformed("channel"))?.max(0) as u64,
                users: int(users).ok_or_else(|| malformed("channel"))?.max(0) as u64,
            }),
            _ => Err(malformed("channel")),
        }
    }
}
