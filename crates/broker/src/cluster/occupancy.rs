//! Subscriptions per channel, cluster-wide: occupancy (webhooks), listings and counts (REST).

use async_trait::async_trait;

use super::{LeavePolicy, LeaveToken};
use crate::error::BackplaneError;

/// Counts of one channel, for the REST API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelCounts {
    /// Subscribed connections, all kinds.
    pub subscriptions: u64,
    /// Distinct presence members (presence channels only).
    pub users: u64,
}

/// Subscribed connections per channel, counted across every node.
#[async_trait]
pub trait ChannelOccupancy: Send + Sync {
    /// One more subscribed connection on a channel. True when this occupied the channel
    /// (0 → 1 subscribers cluster-wide) and did not cancel a pending vacancy: then
    /// `channel_occupied` is due.
    async fn subscription_added(&self, app_id: &str, channel: &str) -> Result<bool, BackplaneError>;
    /// One less subscribed connection on a channel. When that left it empty under
    /// [`LeavePolicy::Pending`] (the app has webhooks), the vacancy is kept pending and its
    /// token returned.
    async fn subscription_removed(
        &self,
        app_id: &str,
        channel: &str,
        policy: LeavePolicy,
    ) -> Result<Option<LeaveToken>, BackplaneError>;

    /// Occupied channels of an app whose name starts with `prefix`, with their counts.
    async fn channels(&self, app_id: &str, prefix: &str) -> Result<Vec<(String, ChannelCounts)>, BackplaneError>;

    /// Counts of one channel (zero when unoccupied).
    async fn channel(&self, app_id: &str, channel: &str) -> Result<ChannelCounts, BackplaneError>;
}
