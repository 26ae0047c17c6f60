//! The Ferrocast node core: everything a node does between a parsed client frame and the bytes
//! queued for a socket, with no knowledge of HTTP, WebSockets or Redis.
//!
//! The split follows centrifuge: the [`Node`] owns local state (sessions and the channel index)
//! and talks to the rest of the cluster only through two traits, [`Backplane`] (publish and
//! receive channel messages) and [`ClusterState`] (presence, subscription and connection
//! counts). Both have an in-process implementation in [`memory`]; the Redis ones live in their
//! own crate.
//!
//! Layout:
//! - [`app`]: app credentials, limits and the registry that finds an app by id or key.
//! - [`audit`]: the rate-limited audit log of denied authentication.
//! - [`frame`]: pre-encoded WebSocket text frames, built once and shared by every recipient.
//! - [`gate`]: the sharded resync gate that makes re-registration atomic without a global lock.
//! - [`connection`]: the handle through which a node queues frames to one socket (bounded).
//! - [`rate_limit`]: fixed-window per-second limiters for client, backend and read traffic, and
//!   the per-connection subscribe token bucket.
//! - [`local_channels`]: the sharded index of this node's subscribers per channel; fan-out.
//! - [`presence_view`]: what a node's sockets were told about a presence channel's members.
//! - [`backplane`]: the [`Backplane`] and [`ClusterState`] traits and the message they carry.
//! - [`memory`]: the in-process backplane and cluster state for a single node.
//! - [`session`]: per-connection protocol state (subscriptions, presence identity, budget).
//! - [`node`]: the node itself: connect, subscribe, client events, publish, REST reads,
//!   readiness and re-registration after a backplane outage.
//! - [`observer`]: the measurements a node reports, for the server's metrics.
//! - [`webhook`]: where a node reports webhook events, for the server's dispatcher.
//! - [`error`]: typed errors of the above.

pub mod app;
pub mod audit;
pub mod backplane;
pub mod connection;
pub mod error;
pub mod frame;
pub mod gate;
pub mod local_channels;
pub mod memory;
pub mod node;
pub mod observer;
pub mod presence_view;
pub mod rate_limit;
pub mod session;
pub mod webhook;

pub use app::{App, AppConfig, AppRegistry, WebhookConfig};
pub use backplane::{
    Backplane, ChannelCounts, ChannelMessage, ClusterState, DeliverySink, Dropped, LeaveToken, Link, NodeSnapshot,
    PresenceJoin, PresenceLeave, RateDecision, RateKind, ResyncOutcome,
};
pub use connection::ConnectionHandle;
pub use error::{BackplaneError, ConnectError, PublishError};
pub use node::{LocalStats, Node, NodeOptions, PublishRequest};
pub use observer::{Limit, MessageKind, NodeObserver};
pub use session::Session;
pub use webhook::{NoWebhooks, WebhookSink};
