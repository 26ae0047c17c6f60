//! [`CountUpdates`] in process: the claim is an entry of unpublished changes per channel. The
//! holder is this process, so the claim needs no expiry.

use std::time::Duration;

use async_trait::async_trait;
use dashmap::mapref::entry::Entry;

use crate::cluster::CountUpdates;
use crate::error::BackplaneError;
use crate::local_channels::ChannelKey;

use super::MemoryClusterState;

#[async_trait]
impl CountUpdates for MemoryClusterState {
    async fn count_changed(&self, app_id: &str, channel: &str, _hold: Duration) -> Result<bool, BackplaneError> {
        match self.count_claims.entry(ChannelKey::new(app_id, channel)) {
            Entry::Occupied(mut changes) => {
                *changes.get_mut() += 1;
                Ok(false)
            }
            Entry::Vacant(v) => {
                v.insert(1);
                Ok(true)
            }
        }
    }

    async fn count_update_due(
        &self,
        app_id: &str,
        channel: &str,
        _hold: Duration,
    ) -> Result<Option<u64>, BackplaneError> {
        let key = ChannelKey::new(app_id, channel);
        // Reset (or release) first, read after: a change racing with the read is still
        // counted for the next ask. No other map is locked meanwhile.
        match self.count_claims.entry(key.clone()) {
            Entry::Occupied(changes) if *changes.get() == 0 => {
                changes.remove();
                return Ok(None);
            }
            Entry::Occupied(mut changes) => *changes.get_mut() = 0,
            Entry::Vacant(_) => return Ok(None),
        }
        Ok(Some(self.counts(&key).subscriptions))
    }
}
