//! How a node exchanges messages with the rest of the cluster.
//!
//! [`Backplane`] carries channel messages between nodes; what must be consistent cluster-wide
//! is in [`crate::cluster`]. A single node uses the in-process implementations in
//! [`crate::memory`]; a cluster uses Redis. The node core calls only these traits.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::cluster::Dropped;
use crate::error::BackplaneError;

/// One message on one channel, as it travels between nodes. The receiving node builds the frame
/// once from it and shares the bytes with all its local subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMessage {
    pub app_id: String,
    pub channel: String,
    pub payload: Payload,
    /// The socket that must not receive it (REST `socket_id`, or a client event's sender).
    pub exclude_socket: Option<String>,
    /// When it was published (Unix microseconds), for the publish-to-fan-out latency.
    #[serde(default)]
    pub published_at_us: u64,
}

/// What a [`ChannelMessage`] carries. Protocol changes travel typed, so a receiving node acts
/// on them without parsing JSON again, and only the frame its sockets get is JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// An application event (REST) or a client event, delivered as is.
    Event {
        event: String,
        data: String,
        /// Set on client events relayed on presence channels.
        user_id: Option<String>,
    },
    /// A user's first connection joined a presence channel; `seq` is the channel's presence
    /// sequence of that change (see [`crate::cluster::PresenceRoster`]).
    MemberAdded {
        user_id: String,
        user_info: String,
        seq: u64,
    },
    /// A user's last connection left a presence channel, at presence sequence `seq`.
    MemberRemoved { user_id: String, seq: u64 },
    /// The channel's cluster-wide subscription count (apps with `enable_subscription_count`),
    /// published by the holder of the channel's count claim (see `node::subscription_count`).
    SubscriptionCount { count: u64 },
    /// A watched user came online (first signed-in socket anywhere) or went offline (last one
    /// gone); published on `#watch-{user_id}`, turned into `pusher_internal:watchlist_events`
    /// for the local sockets watching them.
    WatchlistChange { user_id: String, online: bool },
    /// Close every socket signed in as the user (4009); published on
    /// `#server-to-user-{user_id}`, so it reaches exactly the nodes holding such sockets.
    Terminate { user_id: String },
}

impl ChannelMessage {
    /// An event for `channel` of `app_id`, stamped now.
    pub fn new(app_id: &str, channel: &str, payload: Payload) -> Self {
        Self {
            app_id: app_id.to_owned(),
            channel: channel.to_owned(),
            payload,
            exclude_socket: None,
            published_at_us: crate::observer::unix_micros(),
        }
    }

    /// The same message, not delivered to `socket_id`.
    pub fn excluding(mut self, socket_id: Option<&str>) -> Self {
        self.exclude_socket = socket_id.map(str::to_owned);
        self
    }

    /// The `(event, data)` to keep as its channel's cached event when published with
    /// [`Backplane::publish_cached`]: application events on cache channels only (member changes
    /// and client events never are; the node publishes client events with `publish`).
    pub fn cache_entry(&self) -> Option<(&str, &str)> {
        match &self.payload {
            Payload::Event {
                event,
                data,
                user_id: None,
            } if ferrocast_protocol::channel::is_cache(&self.channel) => Some((event, data)),
            _ => None,
        }
    }

    /// The event name its frame carries (for metrics and logs).
    pub fn event_name(&self) -> &str {
        match &self.payload {
            Payload::Event { event, .. } => event,
            Payload::MemberAdded { .. } => MEMBER_ADDED,
            Payload::MemberRemoved { .. } => MEMBER_REMOVED,
            Payload::SubscriptionCount { .. } => SUBSCRIPTION_COUNT,
            Payload::WatchlistChange { .. } => WATCHLIST_EVENTS,
            Payload::Terminate { .. } => "pusher:error",
        }
    }
}

/// The event name of a member-added frame.
pub const MEMBER_ADDED: &str = "pusher_internal:member_added";
/// The event name of a member-removed frame.
pub const MEMBER_REMOVED: &str = "pusher_internal:member_removed";
/// The event name of a subscription-count frame.
pub const SUBSCRIPTION_COUNT: &str = "pusher_internal:subscription_count";

/// The event name of a watchlist frame.
pub const WATCHLIST_EVENTS: &str = "pusher_internal:watchlist_events";

/// Where a backplane hands the messages it receives: the node's local fan-out.
pub trait DeliverySink: Send + Sync {
    fn deliver(&self, message: &ChannelMessage);
    /// The cluster state dropped a gone node's registrations (a peer reaped it, or it
    /// deregistered while draining). Called once, on the node that dropped them, so that node
    /// reports the members and channels that vanished (webhooks) and the users now offline.
    fn dropped(&self, _dropped: &Dropped) {}
}

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
    /// Publish `messages` as [`publish_many`](Self::publish_many) does and, in the same round
    /// trip, keep each one with a [`ChannelMessage::cache_entry`] as its channel's cached event
    /// for `ttl` (read back through [`crate::EventCache`]). All or nothing as far as the
    /// caller can tell: an error means the publish must be reported failed. The node calls it
    /// only when a publish names a cache channel, so other publishes pay nothing.
    async fn publish_cached(&self, messages: Vec<ChannelMessage>, ttl: Duration) -> Result<(), BackplaneError>;
    async fn subscribe(&self, app_id: &str, channel: &str) -> Result<(), BackplaneError>;
    async fn unsubscribe(&self, app_id: &str, channel: &str) -> Result<(), BackplaneError>;
    /// Watch the link state. The node re-registers its state on each new `Up` generation and
    /// reports ready only while the link is up and registered.
    fn link(&self) -> watch::Receiver<Link>;
}
