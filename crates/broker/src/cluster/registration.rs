//! A node's registrations as a whole: re-registering after an outage, and what vanished when a
//! node's registrations were dropped.

use async_trait::async_trait;

use super::InheritedLeave;
use crate::error::BackplaneError;

/// What vanished cluster-wide when a node's registrations were dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped {
    /// (app id, channel, user id, presence sequence of the removal) that are members no more.
    pub members: Vec<(String, String, String, u64)>,
    /// (app id, channel) left without any subscriber.
    pub channels: Vec<(String, String)>,
    /// (app id, user id) whose last signed-in socket was on the dropped node: offline now.
    pub users: Vec<(String, String)>,
    /// Leaves the dropped node had pending and had not confirmed (it died inside the leave
    /// delay), still standing: the node told of this drop confirms them when their delay ends.
    pub leaves: Vec<InheritedLeave>,
}

/// Everything this node holds locally, for re-registering in the cluster state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSnapshot {
    /// (app id, open connections).
    pub connections: Vec<(String, u64)>,
    /// (app id, channel, subscribed local sockets).
    pub subscriptions: Vec<(String, String, u64)>,
    /// (app id, channel, user id, user_info JSON, that user's local socket ids): socket ids, so
    /// a later leave of one socket is told apart from a repeated or foreign one.
    pub presence: Vec<(String, String, String, String, Vec<String>)>,
    /// (app id, user id, local signed-in sockets of that user).
    pub users: Vec<(String, String, u64)>,
}

/// Presence changes caused by a re-registration, to announce with member_added/removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResyncOutcome {
    /// (app id, channel, user id, user_info JSON, presence sequence) that are members again.
    pub added: Vec<(String, String, String, String, u64)>,
    /// (app id, channel, user id, presence sequence) that are members no more.
    pub removed: Vec<(String, String, String, u64)>,
    /// (app id, user id) online again (signed-in sockets re-registered where none were).
    pub users_online: Vec<(String, String)>,
    /// (app id, user id) offline now (this node's last signed-in sockets of them are gone).
    pub users_offline: Vec<(String, String)>,
    /// (app id, channel) that had no subscriber and have some now (channel_occupied is due).
    pub channels_occupied: Vec<(String, String)>,
    /// (app id, channel) left without subscribers: a decrement whose outcome this node never
    /// learnt (it timed out) is settled by the resync, which reports the vacancy.
    pub channels_vacated: Vec<(String, String)>,
    /// This node's pending leaves that still stand in the store: a leave that took effect after
    /// the node gave up waiting for it, or one its previous process left when it restarted.
    /// The node confirms them when their delay ends (duplicates of its own confirm once).
    pub leaves: Vec<InheritedLeave>,
    /// The state store lost its data (all of it, or a part: one shard of a Redis Cluster) since
    /// this node last registered: other nodes may not have re-registered yet. The lists above
    /// hold only real changes: where the data was lost, every member, channel and user
    /// re-registered would look new, and the store leaves those out (watchers and webhooks were
    /// told before the loss; sockets' rosters predate it).
    pub store_was_reset: bool,
}

/// Replaces everything registered for one node.
#[async_trait]
pub trait NodeRegistration: Send + Sync {
    /// Replace everything registered for this node with `snapshot` (atomically per part of the
    /// store: one Redis, or one bucket of a Redis Cluster) and report which presence members
    /// appeared or vanished cluster-wide as a result (nodes drop announcements that tell their
    /// sockets nothing new).
    async fn resync(&self, snapshot: &NodeSnapshot) -> Result<ResyncOutcome, BackplaneError>;
}
