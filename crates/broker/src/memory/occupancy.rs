//! [`ChannelOccupancy`] in process.

use async_trait::async_trait;

use std::collections::HashMap;

use crate::cluster::{ChannelCounts, ChannelOccupancy, LeavePolicy, LeaveToken};
use crate::error::BackplaneError;
use crate::local_channels::ChannelKey;

use super::{leave_key, MemoryClusterState};

#[async_trait]
impl ChannelOccupancy for MemoryClusterState {
    async fn subscription_added(&self, app_id: &str, channel: &str) -> Result<bool, BackplaneError> {
        let mut count = self.subscriptions.entry(ChannelKey::new(app_id, channel)).or_insert(0);
        *count += 1;
        // Still holding the channel's entry: a concurrent leave cannot interleave.
        let occupied = *count == 1 && self.leaves.remove(&leave_key(app_id, channel, None)).is_none();
        Ok(occupied)
    }

    async fn subscription_removed(
        &self,
        app_id: &str,
        channel: &str,
        policy: LeavePolicy,
    ) -> Result<Option<LeaveToken>, BackplaneError> {
        let key = ChannelKey::new(app_id, channel);
        let emptied = match self.subscriptions.get_mut(&key) {
            Some(mut count) if *count > 0 => {
                *count -= 1;
                (*count == 0 && policy == LeavePolicy::Pending)
                    .then(|| self.pending_leave(leave_key(app_id, channel, None)))
            }
            _ => None,
        };
        self.subscriptions.remove_if(&key, |_, c| *c == 0);
        Ok(emptied)
    }

    async fn channels(&self, app_id: &str, prefix: &str) -> Result<Vec<(String, ChannelCounts)>, BackplaneError> {
        let mut names: HashMap<String, ChannelKey> = HashMap::new();
        for entry in self.subscriptions.iter() {
            let key = entry.key();
            if &*key.app_id == app_id && key.channel.starts_with(prefix) && *entry.value() > 0 {
                names.insert(key.channel.to_string(), key.clone());
            }
        }
        let mut out: Vec<_> = names.into_iter().map(|(name, key)| (name, self.counts(&key))).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn channel(&self, app_id: &str, channel: &str) -> Result<ChannelCounts, BackplaneError> {
        Ok(self.counts(&ChannelKey::new(app_id, channel)))
    }
}
