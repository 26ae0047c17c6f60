//! What must be consistent cluster-wide, one small trait per concern (as centrifuge splits its
//! Broker and PresenceManager), so each can be read, implemented and contract-tested alone:
//!
//! - [`ConnectionQuota`]: open connections per app (`max_connections`).
//! - [`ChannelOccupancy`]: subscriptions per channel; occupancy, listings and counts.
//! - [`CountUpdates`]: who publishes a channel's next `subscription_count` (coalescing).
//! - [`PendingLeaves`]: the cancellable delay before `channel_vacated` / `member_removed`.
//! - [`PresenceRoster`]: presence members per channel, once per user.
//! - [`RateBudgets`]: per-app REST budgets.
//! - [`UserDirectory`]: signed-in users and whether they are online (watchlists).
//! - [`NodeRegistration`]: a node's registrations as a whole (resync after an outage).
//! - [`EventCache`]: the last event of each cache channel (reads; the write shares the publish).
//!
//! [`ClusterState`] is every concern at once: what a node is given. A single node uses the
//! in-process implementation ([`crate::memory::MemoryClusterState`]); a cluster uses Redis. Every
//! method is atomic with respect to concurrent callers on any node.

mod cache;
mod connections;
mod count_updates;
mod leaves;
mod occupancy;
mod presence;
mod rates;
mod registration;
mod users;

pub use cache::{CachedEvent, EventCache, MISS_REPORT_HOLD};
pub use connections::ConnectionQuota;
pub use count_updates::CountUpdates;
pub use leaves::{InheritedLeave, LeavePolicy, LeaveToken, PendingLeaves};
pub use occupancy::{ChannelCounts, ChannelOccupancy};
pub use presence::{PresenceJoin, PresenceJoinRequest, PresenceLeave, PresenceLeaveRequest, PresenceRoster, Roster};
pub use rates::{RateBudgets, RateDecision, RateKind};
pub use registration::{Dropped, NodeRegistration, NodeSnapshot, ResyncOutcome};
pub use users::{UserDirectory, UserSocket, UserStatus, UserTransition};

/// Every concern of the cluster state. Implemented automatically for any type that implements
/// them all; a new concern is one more trait here.
pub trait ClusterState:
    ConnectionQuota
    + ChannelOccupancy
    + CountUpdates
    + PendingLeaves
    + PresenceRoster
    + RateBudgets
    + NodeRegistration
    + EventCache
    + UserDirectory
{
}

impl<T> ClusterState for T where
    T: ConnectionQuota
        + ChannelOccupancy
        + CountUpdates
        + PendingLeaves
        + PresenceRoster
        + RateBudgets
        + NodeRegistration
        + EventCache
        + UserDirectory
        + ?Sized
{
}
