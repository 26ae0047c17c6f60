//! The Ferrocast node core: everything a node does between a parsed client frame and the bytes
//! queued for a socket, with no knowledge of HTTP, WebSockets or Redis.
//!
//! The split follows centrifuge: the [`Node`] owns local state (sessions and the channel index)
//! and talks to the rest of the cluster only through [`Backplane`] (publish and receive channel
//! messages) and [`ClusterState`], a bundle of one small trait per concern (connections,
//! occupancy, pending leaves, presence, rates, users, registration, cache channels). All have an in-process
//! implementation (`memory`); the Redis ones live in their own crate. The [`contract`] tests
//! run against both, so they cannot drift.
//!
//! Modules are private; what other crates use is re-exported here (`frame` and `audit` stay
//! public as namespaces of free functions).
//!
//! Layout:
//! - `app`: app credentials, limits and the registry that finds an app by id or key.
//! - `app_source`: [`AppSource`], the hook the node asks about an unknown key or id.
//! - [`audit`]: the rate-limited audit log of denied authentication.
//! - [`frame`]: pre-encoded WebSocket text frames, built once and shared by every recipient.
//! - `gate`: the sharded resync gate that makes re-registration atomic without a global lock.
//! - `connection`: the handle through which a node queues frames to one socket (bounded).
//! - `rate_limit`: fixed-window per-second limiters for client, backend and read traffic, and
//!   the per-connection subscribe token bucket.
//! - `local_channels`: the sharded index of this node's subscribers per channel; fan-out, with
//!   new subscribers held until their success frame is out.
//! - `presence_view`: the order of a presence channel's member events (last sequence per user)
//!   and who local sockets believe present.
//! - `backplane`: the [`Backplane`] trait and the typed [`ChannelMessage`] it carries.
//! - `cluster`: [`ClusterState`], one trait per concern, with named request/response types.
//! - `memory`: the in-process backplane and cluster state for a single node.
//! - [`contract`]: the behaviour every [`ClusterState`] implementation must show (tests).
//! - `session`: per-connection protocol state (subscriptions, presence identity, budget).
//! - `node`: the node itself: connect, subscribe, client events, publish, REST reads,
//!   readiness and re-registration after a backplane outage.
//! - `observer`: the measurements a node reports, for the server's metrics.
//! - `webhook`: where a node reports webhook events, for the server's dispatcher.
//! - `webhook_queue`: [`WebhookQueue`], the durable queue of webhook jobs the dispatcher
//!   delivers from (lanes, leases, acknowledgements, dead letters).
//! - `error`: typed errors of the above.
//! - `clock`, `shard`: the one wall/process clock and the one key-to-shard hash everything uses.

#![forbid(unsafe_code)]

mod app;
mod app_source;
pub mod audit;
mod backplane;
mod clock;
mod cluster;
mod connection;
#[cfg(any(test, feature = "contract"))]
pub mod contract;
mod error;
pub mod frame;
mod gate;
mod local_channels;
mod memory;
mod node;
mod observer;
mod presence_view;
mod rate_limit;
mod session;
mod shard;
mod webhook;
mod webhook_queue;

pub use app::{diff_apps, App, AppChange, AppChangeKind, AppConfig, AppRegistry, WebhookConfig};
pub use app_source::{AppLookup, AppSource};
pub use backplane::{
    Backplane, ChannelMessage, DeliverySink, Link, Payload, MEMBER_ADDED, MEMBER_REMOVED, SUBSCRIPTION_COUNT,
};
pub use clock::{process_millis, process_seconds, unix_seconds};
pub use cluster::{
    CachedEvent, ChannelCounts, ChannelOccupancy, ClusterState, ConnectionQuota, CountUpdates, Dropped, EventCache,
    InheritedLeave, LeavePolicy, LeaveToken, NodeRegistration, NodeSnapshot, PendingLeaves, PresenceJoin,
    PresenceJoinRequest, PresenceLeave, PresenceLeaveRequest, PresenceRoster, RateBudgets, RateDecision, RateKind,
    ResyncOutcome, Roster, UserDirectory, UserSocket, UserStatus, UserTransition, MISS_REPORT_HOLD,
};
pub use connection::{ConnectionHandle, ConnectionOutbox, Outgoing};
pub use error::{BackplaneError, ConnectError, PublishError};
pub use local_channels::{ChannelKey, LocalChannels};
pub use memory::{MemoryBackplane, MemoryClusterState, MemoryWebhookQueue};
pub use node::{LocalStats, Node, NodeOptions, PublishRequest};
pub use observer::{unix_micros, CacheReplay, Limit, MessageKind, NoObserver, NodeObserver};
pub use session::Session;
pub use shard::shard_of;
pub use webhook::{unix_millis, NoWebhooks, WebhookSink};
pub use webhook_queue::{
    Claim, ClaimRequest, DeadLetter, DeadLetterRequest, Enqueued, LaneId, NewJob, QueueStats, QueuedJob, ReplayRequest,
    Replayed, WebhookQueue,
};
