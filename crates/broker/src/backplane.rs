//! How a node reaches the rest of the cluster.
//!
//! [`Backplane`] carries channel messages between nodes; [`ClusterState`] holds what must be
//! consistent cluster-wide (presence, subscription and connection counts). A single node uses
//! the in-process implementations in [`crate::memory`]; a cluster uses Redis. The node core
//! calls only these traits.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::BackplaneError;

/// One event on one channel, as it travels between nodes. The receiving node builds the frame
/// once from it and shares the bytes with all its local subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMessage {
    pub app_id: String,
    pub channel: String,
    pub event: String,
    pub data: String,
    /// Set on client events relayed on presence channels.
    pub user_id: Option<String>,
    /// The socket that must not receive it (REST `socket_id`, or a client event's sender).
    pub exclude_socket: Option<String>,
    /// When it was published (Unix microseconds), for the publish-to-fan-out latency.
    #[serde(default)]
    pub published_at_us: u64,
}

/// Where a backplane hands the messages it receives: the node's local fan-out.
pub trait DeliverySink: Send + Sync {
    fn deliver(&self, message: &ChannelMessage);
    /// The cluster state dropped a gone node's registrations (a peer reaped it, or it
    /// deregistered while draining). Called once, on the node that dropped them, so that node
    /// reports the members and channels that vanished (webhooks).
    fn dropped(&self, _dropped: &Dropped) {}
}

/// What vanished cluster-wide when a node's registrations were dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped {
    /// (app id, channel, user id) that are members no more.
    pub members: Vec<(String, String, String)>,
    /// (app id, channel) left without any subscriber.
    pub channels: Vec<(String, String)>,
}

/// A leave that can still be taken back: a channel lost its last subscriber, or a user their
/// last connection on a presence channel. Its webhook (`channel_vacated`, `member_removed`)
/// is due only if [`ClusterState::confirm_leave`] succeeds after the leave delay; a return in
/// between (a new subscriber, the user rejoining) cancels it, and then no `channel_occupied` /
/// `member_added` is reported either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveToken(pub String);

/// The state of a node's link to the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Connected, registered and able to publish and receive. The generation changes whenever
    /// the node must re-register its local state (reconnect, or found reaped by a peer).
    Up { generation: u64 },
    /// Not connected: the node must not claim to be ready.
    Down,
}

/// Publish/subscribe between nodes.
///
/// `subscribe` is called once per local subscription (implementations keep their own reference
/// count per channel) and must only return once messages published anywhere afterwards will
/// reach the sink; `unsubscribe` once per local unsubscription.
#[async_trait]
pub trait Backplane: Send + Sync {
    /// Register where received messages go. Called once, before any other method.
    fn set_sink(&self, sink: Arc<dyn DeliverySink>);
    async fn publish(&self, message: ChannelMessage) -> Result<(), BackplaneError>;
    /// Publish several messages, in order; implementations send them in one round trip.
    async fn publish_many(&self, messages: Vec<ChannelMessage>) -> Result<(), BackplaneError> {
        for message in messages {
            self.publish(message).await?;
        }
        Ok(())
    }
    async fn subscribe(&self, app_id: &str, channel: &str) -> Result<(), BackplaneError>;
    async fn unsubscribe(&self, app_id: &str, channel: &str) -> Result<(), BackplaneError>;
    /// Watch the link state. The node re-registers its state on each new `Up` generation and
    /// reports ready only while the link is up and registered.
    fn link(&self) -> watch::Receiver<Link>;
}

/// Everything this node holds locally, for re-registering in the cluster state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSnapshot {
    /// (app id, open connections).
    pub connections: Vec<(String, u64)>,
    /// (app id, channel, subscribed local sockets).
    pub subscriptions: Vec<(String, String, u64)>,
    /// (app id, channel, user id, user_info JSON, local sockets of that user).
    pub presence: Vec<(String, String, String, String, u64)>,
}

/// Presence changes caused by a re-registration, to announce with member_added/removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResyncOutcome {
    /// (app id, channel, user id, user_info JSON) that are members again.
    pub added: Vec<(String, String, String, String)>,
    /// (app id, channel, user id) that are members no more.
    pub removed: Vec<(String, String, String)>,
    /// The state store lost its data since this node last registered: other nodes may not have
    /// re-registered yet.
    pub store_was_reset: bool,
}

/// Result of a presence join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceJoin {
    /// Joined; `added` when this was the user's first connection anywhere. `roster` is the
    /// member list (user id, user_info JSON) after the join, the joiner included. `returned`
    /// when the user had left within the leave delay: that pending leave is cancelled, so
    /// neither `member_removed` nor `member_added` is reported to webhooks.
    Joined {
        added: bool,
        roster: Vec<(String, String)>,
        returned: bool,
    },
    /// The channel already has the maximum number of distinct members.
    Full,
}

/// Result of a presence leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceLeave {
    /// The user still has a connection on the channel (or the socket was not theirs).
    Stayed,
    /// That was the user's last connection: a member no more. The token of the pending
    /// departure, when one was asked for.
    Left(Option<LeaveToken>),
}

impl PresenceLeave {
    /// Whether the user is a member no more.
    pub fn left(&self) -> bool {
        matches!(self, PresenceLeave::Left(_))
    }

    /// The token of the pending departure, if the user left and one was asked for.
    pub fn into_token(self) -> Option<LeaveToken> {
        match self {
            PresenceLeave::Left(token) => token,
            PresenceLeave::Stayed => None,
        }
    }
}

/// Counts of one channel, for the REST API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelCounts {
    /// Subscribed connections, all kinds.
    pub subscriptions: u64,
    /// Distinct presence members (presence channels only).
    pub users: u64,
}

/// Which per-app budget a [`ClusterState::take_rate`] draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKind {
    /// `max_backend_events_per_second`: one unit per (event, channel) published over REST.
    BackendEvents,
    /// `max_read_requests_per_second`: one unit per REST read (channels, channel, users).
    ReadRequests,
}

impl RateKind {
    /// Short name, used in storage keys.
    pub fn label(self) -> &'static str {
        match self {
            RateKind::BackendEvents => "events",
            RateKind::ReadRequests => "reads",
        }
    }
}

/// The answer of [`ClusterState::take_rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// The units were taken. When false nothing was taken.
    pub allowed: bool,
    /// How long until the current one-second window ends and the budget is whole again.
    pub resets_in: Duration,
}

/// Cluster-wide state. Every method is atomic with respect to concurrent callers on any node.
#[async_trait]
pub trait ClusterState: Send + Sync {
    /// Count a new connection for `app_id` unless that would exceed `max` (0 = unlimited).
    async fn connection_opened(&self, app_id: &str, max: u64) -> Result<bool, BackplaneError>;
    async fn connection_closed(&self, app_id: &str) -> Result<(), BackplaneError>;

    /// One more subscribed connection on a channel. True when this occupied the channel
    /// (0 → 1 subscribers cluster-wide) and did not cancel a pending vacancy: then
    /// `channel_occupied` is due.
    async fn subscription_added(&self, app_id: &str, channel: &str) -> Result<bool, BackplaneError>;
    /// One less subscribed connection on a channel. When that left it empty and `pending` is
    /// set (the app has webhooks), the vacancy is kept pending and its token returned.
    async fn subscription_removed(
        &self,
        app_id: &str,
        channel: &str,
        pending: bool,
    ) -> Result<Option<LeaveToken>, BackplaneError>;

    /// Add `socket_id` as a connection of `user_id` (with `user_info` JSON), refusing a new
    /// distinct member past `max_members` (0 = unlimited).
    async fn presence_join(
        &self,
        app_id: &str,
        channel: &str,
        socket_id: &str,
        user_id: &str,
        user_info: &str,
        max_members: u64,
    ) -> Result<PresenceJoin, BackplaneError>;

    /// Remove `socket_id` from `user_id`. When that was the user's last connection and
    /// `pending` is set (the app has webhooks), the departure is kept pending under a token.
    async fn presence_leave(
        &self,
        app_id: &str,
        channel: &str,
        socket_id: &str,
        user_id: &str,
        pending: bool,
    ) -> Result<PresenceLeave, BackplaneError>;

    /// Whether a leave still stands (nobody returned since): true at most once per token.
    /// `user_id` is `None` for a channel vacancy, the member for a presence departure.
    async fn confirm_leave(
        &self,
        app_id: &str,
        channel: &str,
        user_id: Option<&str>,
        token: &LeaveToken,
    ) -> Result<bool, BackplaneError>;

    /// Distinct members of a presence channel: (user id, user_info JSON).
    async fn presence_members(&self, app_id: &str, channel: &str) -> Result<Vec<(String, String)>, BackplaneError>;

    /// Occupied channels of an app whose name starts with `prefix`, with their counts.
    async fn channels(&self, app_id: &str, prefix: &str) -> Result<Vec<(String, ChannelCounts)>, BackplaneError>;

    /// Counts of one channel (zero when unoccupied).
    async fn channel(&self, app_id: &str, channel: &str) -> Result<ChannelCounts, BackplaneError>;

    /// Replace everything registered for this node with `snapshot`, atomically, and report
    /// which presence members appeared or vanished cluster-wide as a result (after the store
    /// lost its data, every member re-registered appears added; nodes drop announcements that
    /// tell their sockets nothing new).
    async fn resync(&self, snapshot: &NodeSnapshot) -> Result<ResyncOutcome, BackplaneError>;

    /// Take `units` from the app's cluster-wide `kind` budget of `per_second` units per
    /// one-second window, all or nothing. `per_second` is never 0 here: callers skip
    /// unlimited budgets without asking.
    async fn take_rate(
        &self,
        app_id: &str,
        kind: RateKind,
        units: u64,
        per_second: u64,
    ) -> Result<RateDecision, BackplaneError>;
}
