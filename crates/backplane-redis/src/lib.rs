//! The Redis backplane: several Ferrocast nodes behave as one, on one Redis or a Redis Cluster.
//!
//! [`RedisBackplane`] implements both traits of the node core: [`Backplane`] (channel messages
//! over Redis pub/sub) and [`ClusterState`] (presence, subscription and connection counts in
//! Redis, changed atomically by Lua scripts). The node core knows nothing of Redis.
//!
//! - Interest-based routing: a node subscribes to a Redis channel per (app, channel) only while
//!   it has local subscribers; a publish is one script that appends the MessagePack envelope to
//!   the channel's replay log and `PUBLISH`es it (`SPUBLISH` on a Redis Cluster) with its log id.
//! - A subscription is acknowledged by Redis before the node reports it done, so nothing
//!   published after a client saw `subscription_succeeded` is missed.
//! - Every key carries its bucket's hash tag and every script gets its keys in `KEYS[]` and
//!   stays in one bucket, so each atomic decision is in one slot of a Redis Cluster.
//! - Each node refreshes a heartbeat key; a live node that finds a dead one wins its reap in the
//!   node registry (exactly one reaper wins), drops its registrations bucket by bucket and
//!   announces the members removed.
//! - When Redis goes away the link goes down (the node reports not ready), the supervisor
//!   reconnects with backoff, re-subscribes every interest channel, delivers from the replay
//!   logs what it missed (dropping live duplicates after), proves a publish comes back,
//!   and only then reports the link up with a new generation, on which the node re-registers
//!   its local state.
//!
//! Layout:
//! - `target`: where one Redis is (a URL, or the primary Sentinel names) and TLS to it.
//! - `cluster`: where a Redis Cluster is (seeds, TLS) and its two connections.
//! - `conn`: the command connection of either: `pool` (one Redis: pooled command connections)
//!   and `shared` (one Redis: the multiplexed connection every publish shares, pipelined), or
//!   the cluster connection.
//! - [`keys`]: names of Redis keys and channels, by bucket.
//! - [`envelope`]: the versioned MessagePack message format.
//! - [`scripts`]: the Lua scripts (sources in `src/lua/`).
//! - [`cluster_state`]: [`ClusterState`] on the scripts.
//! - [`pubsub`]: interest reference counts and the pub/sub supervisor (one Redis).
//! - `sharded`: sharded pub/sub on a Redis Cluster, following slot moves.
//! - [`liveness`]: heartbeat and reaping of dead nodes.
//! - [`replay`]: replay logs and positions: gap-free delivery across a reconnect.
//! - `webhook_queue`: [`ferrocast_broker::WebhookQueue`] on Redis Streams (lanes, leases,
//!   takeover with `XAUTOCLAIM`, dead letters).

#![forbid(unsafe_code)]

mod cluster;
mod cluster_state;
mod conn;
pub mod envelope;
mod keys;
mod liveness;
mod pool;
mod pubsub;
mod replay;
mod scripts;
mod sharded;
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
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

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
    /// Buckets of the keyspace (`docs/design/redis-cluster.md`): 1 for one Redis. Part of the
    /// cluster's identity, like the prefix: every node must use the same number.
    pub buckets: u32,
    /// Seed nodes of a Redis Cluster (`redis://` or `rediss://`); empty for one Redis
    /// ([`url`](Self::url), or [`sentinel`](Self::sentinel)).
    pub cluster_urls: Vec<String>,
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
    /// Channels subscribed again because their slot moved to another shard (Redis Cluster).
    pub resubscribed: AtomicU64,
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
    pub(crate) commands_to: conn::Commands,
    /// One Redis (`None` with a Redis Cluster, whose transport is in `commands_to`).
    pub(crate) target: Option<Arc<target::Target>>,
    /// The scripts in each [`scripts::ScriptForm`], and (one Redis) whether the connected one
    /// takes them declared.
    scripts: [scripts::Scripts; 3],
    pub(crate) declared_scripts: std::sync::atomic::AtomicBool,
    pub(crate) sink: OnceLock<Arc<dyn DeliverySink>>,
    /// Told, for each message received from Redis, how long after its publish it arrived.
    pub(crate) lag_observer: OnceLock<LagObserver>,
    pub(crate) interest: DashMap<String, pubsub::Interest>,
    pub(crate) commands: mpsc::UnboundedSender<pubsub::Command>,
    pub(crate) link: watch::Sender<Link>,
    pub(crate) generation: AtomicU64,
    /// Counter of the tokens of pending leaves (see `lua/sub_remove.lua`).
    pub(crate) leave_tokens: AtomicU64,
    /// The epoch of each bucket this node last resynced under (see `lua/bucket_resync.lua`).
    pub(crate) epoch: std::sync::Mutex<Vec<String>>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pub stats: RedisStats,
}

impl RedisBackplane {
    /// Check `options` as [`start`](Self::start) does (URLs, Sentinel list, TLS certificates)
    /// without connecting: what `ferrocast check-config` runs.
    pub fn check(options: &RedisOptions) -> Result<(), RedisSetupError> {
        match options.cluster_urls.is_empty() {
            true => target::Target::new(&options.url, options.sentinel.as_ref(), &options.tls).map(drop),
            false => cluster::ClusterTarget::new(&options.cluster_urls, &options.tls).map(drop),
        }
    }

    /// Create the backplane and start its supervisor and heartbeat tasks. Returns at once; the
    /// link comes up when Redis is reachable.
    pub fn start(options: RedisOptions) -> Result<Arc<Self>, RedisSetupError> {
        let (commands_to, target) = match options.cluster_urls.is_empty() {
            true => {
                let target = Arc::new(target::Target::new(
                    &options.url,
                    options.sentinel.as_ref(),
                    &options.tls,
                )?);
                let pool = pool::Pool::builder(pool::Manager::new(target.clone()))
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .map_err(|e| RedisSetupError::BadUrl(e.to_string()))?;
                let shared = shared::Shared::new(target.clone());
                (conn::Commands::Single { pool, shared }, Some(target))
            }
            false => {
                let target = cluster::ClusterTarget::new(&options.cluster_urls, &options.tls)?;
                let conn = tokio::sync::Mutex::new(None);
                (conn::Commands::Cluster { target, conn }, None)
            }
        };
        let (commands, command_rx) = mpsc::unbounded_channel();
        let backplane = Arc::new(Self {
            keys: keys::Keys::new(&options.prefix, &options.node_id, options.buckets),
            epoch: std::sync::Mutex::new(vec![String::new(); options.buckets.max(1) as usize]),
            options,
            commands_to,
            target,
            scripts: [
                scripts::Scripts::new(scripts::ScriptForm::Plain),
                scripts::Scripts::new(scripts::ScriptForm::Declared),
                scripts::Scripts::new(scripts::ScriptForm::Sharded),
            ],
            declared_scripts: std::sync::atomic::AtomicBool::new(false),
            sink: OnceLock::new(),
            lag_observer: OnceLock::new(),
            interest: DashMap::new(),
            commands,
            link: watch::Sender::new(Link::Down),
            generation: AtomicU64::new(0),
            // Random start: a restarted node with the same id mints no token of its past.
            leave_tokens: AtomicU64::new(pubsub::rand_nonce() >> 8),
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

    /// The scripts in the form the connected Redis takes.
    pub(crate) fn scripts(&self) -> &scripts::Scripts {
        if self.commands_to.is_cluster() {
            return &self.scripts[2];
        }
        let declared = self.declared_scripts.load(std::sync::atomic::Ordering::Relaxed);
        &self.scripts[usize::from(declared)]
    }

    /// The publish command: `SPUBLISH` (sharded) on a Redis Cluster, else `PUBLISH`.
    pub(crate) fn publish_command(&self) -> &'static str {
        if self.commands_to.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.options.node_id
    }

    /// Run one Redis operation on a pooled connection, failing after [`COMMAND_TIMEOUT`].
    pub(crate) async fn with_conn<T, F, Fut>(&self, op: F) -> Result<T, BackplaneError>
    where
        F: FnOnce(conn::Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let conn = self.commands_to.get().await?;
            op(conn).await.map_err(|e| {
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
    /// next call connects again (to the primary the target names then). On a Redis Cluster the
    /// cluster connection is multiplexed already: the operation runs there.
    pub(crate) async fn with_shared<T, F, Fut>(&self, op: F) -> Result<T, BackplaneError>
    where
        F: FnOnce(conn::Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn::Commands::Single { shared, .. } = &self.commands_to else {
            return self.with_conn(op).await;
        };
        let mut used = None;
        let attempt = async {
            let (id, conn) = shared.get().await.map_err(BackplaneError::store)?;
            used = Some(id);
            op(conn::Conn::Shared(conn)).await.map_err(|e| {
                if shared::needs_new_connection(&e) {
                    shared.discard(id);
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
                    shared.discard(id);
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
        self.commands_to.drop_idle();
        let _ = self.commands.send(pubsub::Command::Reconnect);
        tracing::warn!("redis answered READONLY: reconnecting to the current primary");
    }
}
