//! Coalescing of `subscription_count` updates, cluster-wide: who publishes the next count of a
//! channel, so a channel whose subscriptions churn costs one count read and one publish per
//! interval, not one per change.
//!
//! The claim of a channel is a counter of the changes not yet published. A change on any node
//! records itself ([`CountUpdates::count_changed`]); the change that finds no claim creates it
//! and its node becomes the channel's publisher. The publisher, once per interval, asks
//! [`CountUpdates::count_update_due`]: if changes happened since its last ask it gets the
//! current count (to publish) and keeps the claim; if none did, the claim is released in the
//! same atomic step, so a change that comes later claims afresh and nothing is missed. The
//! claim expires after `hold` so a publisher that died frees the channel.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::BackplaneError;

/// The claims on `subscription_count` updates, one per channel.
#[async_trait]
pub trait CountUpdates: Send + Sync {
    /// Record one change of the channel's subscription count (call after the count changed).
    /// True when this created the claim: the caller must publish the channel's counts (see
    /// [`count_update_due`](Self::count_update_due)); false when a publisher already will.
    async fn count_changed(&self, app_id: &str, channel: &str, hold: Duration) -> Result<bool, BackplaneError>;

    /// Asked by the claim's holder once per interval. `Some(count)` when changes happened since
    /// the last ask (the claim is kept for `hold` more); `None` when none did or the claim
    /// expired: the claim is gone and the holder stops.
    async fn count_update_due(
        &self,
        app_id: &str,
        channel: &str,
        hold: Duration,
    ) -> Result<Option<u64>, BackplaneError>;
}
