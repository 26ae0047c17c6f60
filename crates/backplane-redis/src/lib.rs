//! The Redis backplane: several Ferrocast nodes behave as one.
//!
//! [`RedisBackplane`] implements both traits of the node core: [`Backplane`] (channel messages
//! over Redis pub/sub) and [`ClusterState`] (presence, subscription and connection counts in
//! Redis, changed atomically by Lua scripts). The node core knows nothing of Redis.
//!
//! - Interest-based routing: a node subscribes to a Redis channel per (app, channel) only while
//!   it has local subscribers; a publish is one script that appends the MessagePack envelope to
//!   the channel's replay log and `PUBLISH`es it with its log id.
//! - A subscription is acknowledged by Redis before the node reports it done, so nothing
//!   published after a client saw `subscription_succeeded` is missed.
//! - Each node refreshes a heartbeat key; a live node that finds a dead one reaps its
//!   registrations in one script (exactly one reaper wins) and announces the members removed.
//! - When Redis goes away the link goes down (the node reports not ready), the supervisor
//!   reconnects with backoff, re-subscribes every interest channel, delivers from the replay
//!   logs what it missed (dropping live duplicates after), proves a publish comes back,
//!   and only then reports the link up with a new generation, on which the node re-registers
//!   its local state.
//!
//! Layout:
//! - `target`: where Redis is (a URL, or the primary Sentinel names) and TLS to it.
//! - `pool`: the pool of command connections to the current primary.
//! - `shared`: the one multiplexed connection that carries every publish, pipelined.
//! - [`keys`]: names of Redis keys and channels.
//! - [`envelope`]: the versioned MessagePack message format.
//! - [`scripts`]: the Lua scripts (sources in `src/lua/`).
//! - [`cluster_state`]: [`ClusterState`] on the scripts.
//! - [`pubsub`]: interest reference counts and the pub/sub supervisor.
//! - [`liveness`]: heartbeat and reaping of dead nodes.
//! - [`replay`]: replay logs and positions: gap-free delivery across a reconnect.
//! - `webhook_queue`: [`ferrocast_broker::WebhookQueue`] on Redis Streams (lanes, leases,
//!   takeover with `XAUTOCLAIM`, dead letters).

#![forbid(unsafe_code)]

mod cluster_state;
pub mod envelope;
mod keys;
mod liveness;
mod pool;
mod pubsub;
mod replay;
mod scripts;
mod shared;
mod target;
mod webhook_queue;

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use ferrocast_broker::{BackplaneError, DeliverySink, Link};
use tokio::sync::{mpsc, watch};

pub use ferrocast_broker::{Backplane, ClusterState};
pub use replay::ReplayLog;
pub use target::{RedisTls, SentinelOptions};

/// How long one Redis command may take before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// Settings of the Redis backplane.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// The primary's `redis://` or `rediss://` URL. With [`sentinel`](Self::sentinel), only
    /// its scheme, credentials and database are used.
    pub url: String,
    /// Find the primary through Redis Sentinel, and follow it when it fails over.
    pub sentinel: Option<SentinelOptions>,
    /// Certificates for `rediss://`.
    pub tls: RedisTls,
    /// Namespaces every key and channel.
    pub prefix: String,
    /// This node's id, unique in the cluster.
    pub node_id: String,
    /// A node whose heartbeat is older than this is dead and gets reaped.
    pub node_ttl: Duration,
    /// How each channel's replay log is bounded (see [`ReplayLog`]).
    pub replay_log: ReplayLog,
}

/// Counters of the backplane, read by the server's metrics.
#[derive(Debug, Default)]
pub struct RedisStats {
    pub published: AtomicU64,
    pub received: AtomicU64,
    pub errors: AtomicU64,
    pub reconnects: AtomicU64,
    pub decode_errors: AtomicU64,
    pub reaped_nodes: AtomicU64,
    /// Messages delivered from the replay logs after reconnects.
    pub replayed: AtomicU64,
    /// Messages delivered from the replay logs by the last reconnect.
    pub last_replayed: AtomicU64,
    /// Channels found with their replay log trimmed past this node's position after a
    /// reconnect: messages lost for their subscribers (logged with the channel).
    pub replay_gaps: AtomicU64,
    /// The messages lost that way (exact from the log entries' numbers; one per gap where the
    /// node had delivered nothing on the channel yet).
    pub replay_trimmed: AtomicU64,
    /// Live messages dropped because the replay had already delivered them.
    pub duplicates_dropped: AtomicU64,
    /// Round trip of the last ping on the pub/sub connection, in microseconds.
    pub ping_rtt_us: AtomicU64,
}

/// Receives the pub/sub lag of each message (seconds from its publish on any node to its
/// receipt here; across hosts it includes clock skew).
pub type LagObserver = Box<dyn Fn(f64) + Send + Sync>;

/// Why the backplane could not be created (bad URL); connection problems are not errors here,
/// they only keep the link down.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error("backplane.url: {0}")]
    BadUrl(String),
    #[error("backplane.sentinels: {0}")]
    BadSentinel(String),
    #[error("backplane TLS: {0}")]
    Tls(String),
}

/// Both halves of the cluster link on one Redis.
pub struct RedisBackplane {
    pub(crate) options: RedisOptions,
    pub(crate) keys: keys::Keys,
    pub(crate) pool: pool::Pool,
    /// The connection publishes share (see `shared`).
    pub(crate) shared: shared::Shared,
    pub(crate) target: Arc<target::Target>,
    pub(crate) scripts: scripts::Scripts,
    pub(crate) sink: OnceLock<Arc<dyn DeliverySink>>,
    /// Told, for each message received from Redis, how long after its publish it arrived.
    pub(crate) lag_observer: OnceLock<LagObserver>,
    pub(crate) interest: DashMap<String, pubsub::Interest>,
    pub(crate) commands: mpsc::UnboundedSender<pubsub::Command>,
    pub(crate) link: watch::Sender<Link>,
    pub(crate) generation: AtomicU64,
    /// Counter of the tokens of pending leaves (see `lua/sub_remove.lua`).
    pub(crate) leave_tokens: AtomicU64,
    /// The cluster-state epoch this node last registered under (see `lua/resync.lua`).
    pub(crate) epoch: std::sync::Mutex<String>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pub stats: RedisStats,
}

impl RedisBackplane {
    /// Check `options` as [`start`](Self::start) does (URLs, Sentinel list, TLS certificates)
    /// without connecting: what `ferrocast check-config` runs.
    pub fn check(options: &RedisOptions) -> Result<(), RedisSetupError> {
        target::Target::new(&options.url, options.sentinel.as_ref(), &options.tls).map(drop)
    }

    /// Create the backplane and start its supervisor and heartbeat tasks. Returns at once; the
    /// link comes up when Redis is reachable.
    pub fn start(options: RedisOptions) -> Result<Arc<Self>, RedisSetupError> {
        let target = Arc::new(target::Target::new(
            &options.url,
            options.sentinel.as_ref(),
            &options.tls,
        )?);
        let pool = pool::Pool::builder(pool::Manager::new(target.clone()))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| RedisSetupError::BadUrl(e.to_string()))?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let backplane = Arc::new(Self {
            keys: keys::Keys::new(&options.prefix, &options.node_id, 1),
            options,
            pool,
            shared: shared::Shared::new(target.clone()),
            target,
            scripts: scripts::Scripts::new(),
            sink: OnceLock::new(),
            lag_observer: OnceLock::new(),
            interest: DashMap::new(),
            commands,
            link: watch::Sender::new(Link::Down),
            generation: AtomicU64::new(0),
            // Random start: a restarted node with the same id mints no token of its past.
            leave_tokens: AtomicU64::new(pubsub::rand_nonce() >> 8),
            epoch: std::sync::Mutex::new(String::new()),
            tasks: std::sync::Mutex::new(Vec::new()),
            stats: RedisStats::default(),
        });
        let supervisor = tokio::spawn(pubsub::supervise(backplane.clone(), command_rx));
        let heartbeat = tokio::spawn(liveness::run(backplane.clone()));
        if let Ok(mut tasks) = backplane.tasks.lock() {
            tasks.extend([supervisor, heartbeat]);
        }
        Ok(backplane)
    }

    /// Stop the supervisor and heartbeat at once, as if the process died: no deregistration,
    /// the heartbeat expires and peers reap this node.
    pub fn halt(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.drain(..).for_each(|t| t.abort());
        }
        self.link.send_replace(Link::Down);
    }

    /// Remove this node's registrations from the cluster (call after its connections closed)
    /// and announce the presence members that vanished.
    pub async fn deregister(&self) -> Result<(), BackplaneError> {
        self.link.send_replace(Link::Down);
        liveness::deregister(self).await
    }

    /// Where the pub/sub lag of received messages goes (metrics). Set once; later calls are
    /// ignored.
    pub fn set_lag_observer(&self, observer: LagObserver) {
        let _ = self.lag_observer.set(observer);
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.options.node_id
    }

    /// Run one Redis operation on a pooled connection, failing after [`COMMAND_TIMEOUT`].
    pub(crate) async fn with_conn<T, F, Fut>(&self, op: F) -> Result<T, BackplaneError>
    where
        F: FnOnce(pool::Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let conn = self.pool.get().await.map_err(BackplaneError::store)?;
            op(conn.into()).await.map_err(|e| {
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly) {
                    self.primary_demoted();
                }
                BackplaneError::store(e)
            })
        };
        let result = match tokio::time::timeout(COMMAND_TIMEOUT, attempt).await {
            Ok(result) => result,
            Err(_) => Err(BackplaneError::Timeout(COMMAND_TIMEOUT)),
        };
        if result.is_err() {
            self.stats.errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }

    /// Run one Redis operation on the shared multiplexed connection (see `shared`), failing
    /// after [`COMMAND_TIMEOUT`]. A failure that leaves the connection unusable drops it: the
    /// next call connects again (to the primary the target names then).
    pub(crate) async fn with_shared<T, F, Fut>(&self, op: F) -> Result<T, BackplaneError>
    where
        F: FnOnce(redis::aio::MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let mut used = None;
        let attempt = async {
            let (id, conn) = self.shared.get().await.map_err(BackplaneError::store)?;
            used = Some(id);
            op(conn).await.map_err(|e| {
                if shared::needs_new_connection(&e) {
                    self.shared.discard(id);
                }
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly) {
                    self.primary_demoted();
                }
                BackplaneError::store(e)
            })
        };
        let result = match tokio::time::timeout(COMMAND_TIMEOUT, attempt).await {
            Ok(result) => result,
            Err(_) => {
                if let Some(id) = used {
                    self.shared.discard(id);
                }
                Err(BackplaneError::Timeout(COMMAND_TIMEOUT))
            }
        };
        if result.is_err() {
            self.stats.errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }

    /// A write was refused as READONLY: the server this node talks to is a replica now (its
    /// primary failed over and it came back demoted). Drop the idle connections to it and
    /// reconnect pub/sub, which finds the new primary and makes the node resync.
    fn primary_demoted(&self) {
        self.pool.retain(|_, _| false);
        self.shared.discard_all();
        let _ = self.commands.send(pubsub::Command::Reconnect);
        tracing::warn!("redis answered READONLY: reconnecting to the current primary");
    }
}
