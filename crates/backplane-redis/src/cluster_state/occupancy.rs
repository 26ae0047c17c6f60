//! [`ChannelOccupancy`] on Redis (`lua/sub_add.lua`, `lua/sub_remove.lua`, `lua/channels.lua`,
//! `lua/channel.lua`).

use async_trait::async_trait;
use ferrocast_broker::{BackplaneError, ChannelCounts, ChannelOccupancy, LeavePolicy, LeaveToken};

use super::{array, int, malformed, pending_leave, string};
use crate::keys::{ChannelKeys, NodeRecord};
use crate::RedisBackplane;

impl RedisBackplane {
    /// A channel's subscriptions per node, the node's record of its channels, the app's channel
    /// index and the channel's pending vacancy: the keys of `lua/sub_add.lua`.
    fn subscription_keys(&self, app_id: &str, c: &ChannelKeys) -> Vec<String> {
        vec![
            c.subscriptions(),
            c.shared.node_record(self.keys.node(), NodeRecord::Channels),
            c.shared.channel_index(app_id),
            c.vacancy(),
        ]
    }
}

#[async_trait]
impl ChannelOccupancy for RedisBackplane {
    async fn subscription_added(&self, app_id: &str, channel: &str) -> Result<bool, BackplaneError> {
        let keys = self.subscription_keys(app_id, &self.keys.channel(app_id, channel));
        let reply = self
            .eval(&self.scripts().sub_add, keys, self.args(&[app_id, channel]))
            .await?;
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
        let c = self.keys.channel(app_id, channel);
        let mut keys = self.subscription_keys(app_id, &c);
        keys.push(c.shared.node_record(self.keys.node(), NodeRecord::Leaves));
        let reply = self
            .eval(&self.scripts().sub_remove, keys, self.args(&[app_id, channel, &token]))
            .await?;
        pending_leave(&reply, "subscription remove")
    }

    /// Gathered from every bucket's index (one script each, concurrently), then one `HLEN` of
    /// the members per presence channel, in one round trip.
    async fn channels(&self, app_id: &str, prefix: &str) -> Result<Vec<(String, ChannelCounts)>, BackplaneError> {
        let mut out = Vec::new();
        let calls = self
            .keys
            .all_buckets()
            .map(|bucket| {
                (
                    vec![self.keys.bucket(bucket).channel_index(app_id)],
                    vec![prefix.to_owned()],
                )
            })
            .collect();
        for reply in self.eval_many(&self.scripts().channels, calls).await? {
            let items = array(&reply).ok_or_else(|| malformed("channels"))?;
            for row in items.chunks(2) {
                let [name, subs] = row else {
                    return Err(malformed("channels"));
                };
                let (Some(name), Some(subs)) = (string(name), int(subs)) else {
                    return Err(malformed("channels"));
                };
                let counts = ChannelCounts {
                    subscriptions: subs.max(0) as u64,
                    users: 0,
                };
                out.push((name, counts));
            }
        }
        let presence: Vec<usize> = (0..out.len()).filter(|&i| out[i].0.starts_with("presence-")).collect();
        if !presence.is_empty() {
            let members: Vec<String> = presence
                .iter()
                .map(|&i| self.keys.channel(app_id, &out[i].0).members())
                .collect();
            let commands = members
                .iter()
                .map(|key| {
                    let mut cmd = redis::cmd("HLEN");
                    cmd.arg(key);
                    cmd
                })
                .collect();
            let users: Vec<i64> = self
                .query_all(commands)
                .await?
                .iter()
                .map(|v| int(v).ok_or_else(|| malformed("channels")))
                .collect::<Result<_, _>>()?;
            if users.len() != presence.len() {
                return Err(malformed("channels"));
            }
            for (&i, n) in presence.iter().zip(users) {
                out[i].1.users = n.max(0) as u64;
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn channel(&self, app_id: &str, channel: &str) -> Result<ChannelCounts, BackplaneError> {
        let c = self.keys.channel(app_id, channel);
        let keys = vec![c.shared.channel_index(app_id), c.members()];
        let reply = self
            .eval(&self.scripts().channel, keys, vec![channel.to_owned()])
            .await?;
        match array(&reply).ok_or_else(|| malformed("channel"))? {
            [subs, users] => Ok(ChannelCounts {
                subscriptions: int(subs).ok_or_else(|| malformed("channel"))?.max(0) as u64,
                users: int(users).ok_or_else(|| malformed("channel"))?.max(0) as u64,
            }),
            _ => Err(malformed("channel")),
        }
    }
}
