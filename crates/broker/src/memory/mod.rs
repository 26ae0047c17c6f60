//! The in-process backplane and cluster state: a single node is its own cluster.
//!
//! Used by `ferrocast` without `--config` and by any single-node deployment. Same contracts as
//! the Redis implementations, so the node core cannot tell them apart: each concern's impl is in
//! its own file, checked by the same contract tests as Redis ([`crate::contract`]).

mod cache;
mod connections;
mod count_updates;
mod leaves;
mod occupancy;
mod presence;
mod rates;
mod registration;
mod users;
mod webhook_queue;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use tokio::sync::watch;

use crate::backplane::{Backplane, ChannelMessage, DeliverySink, Link};
use crate::cluster::{ChannelCounts, LeaveToken, RateKind};
use crate::error::BackplaneError;
use crate::local_channels::ChannelKey;
use crate::rate_limit::SharedLimiter;

pub use cache::MemoryEventCache;
pub use webhook_queue::MemoryWebhookQueue;

/// Delivers every published message straight to the local sink.
pub struct MemoryBackplane {
    sink: OnceLock<Arc<dyn DeliverySink>>,
    link: watch::Sender<Link>,
    /// Where `publish_cached` keeps cache channels' events; shared with the cluster state that
    /// reads them (see [`MemoryClusterState::backplane`]).
    cache: Arc<MemoryEventCache>,
}

impl MemoryBackplane {
    /// A backplane with a cache of its own: cached events are not visible to any
    /// [`MemoryClusterState`]. Use [`MemoryClusterState::backplane`] for a working pair.
    pub fn new() -> Self {
        Self::with_cache(Arc::default())
    }

    fn with_cache(cache: Arc<MemoryEventCache>) -> Self {
        Self {
            sink: OnceLock::new(),
            link: watch::Sender::new(Link::Up { generation: 1 }),
            cache,
        }
    }
}

impl Default for MemoryBackplane {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Backplane for MemoryBackplane {
    fn set_sink(&self, sink: Arc<dyn DeliverySink>) {
        let _ = self.sink.set(sink);
    }

    async fn publish(&self, message: ChannelMessage) -> Result<(), BackplaneError> {
        match self.sink.get() {
            Some(sink) => {
                sink.deliver(&message);
                Ok(())
            }
            None => Err(BackplaneError::LinkDown),
        }
    }

    /// Stores, then delivers: on one node nothing can read the cache in between.
    async fn publish_cached(&self, messages: Vec<ChannelMessage>, ttl: Duration) -> Result<(), BackplaneError> {
        if self.sink.get().is_none() {
            return Err(BackplaneError::LinkDown);
        }
        self.cache.store(&messages, ttl);
        self.publish_many(messages).await
    }

    async fn subscribe(&self, _app_id: &str, _channel: &str) -> Result<(), BackplaneError> {
        Ok(())
    }

    async fn unsubscribe(&self, _app_id: &str, _channel: &str) -> Result<(), BackplaneError> {
        Ok(())
    }

    /// Always up: a single node is its own cluster.
    fn link(&self) -> watch::Receiver<Link> {
        self.link.subscribe()
    }
}

#[derive(Debug)]
pub(super) struct PresenceChannel {
    /// user id → (user_info JSON, sockets); ordered so rosters are stable.
    pub(super) members: BTreeMap<String, (String, HashSet<String>)>,
    /// The presence sequence (see [`crate::cluster::PresenceRoster`]): bumped with every
    /// membership change; starts from the clock (µs) so a recreated channel counts on from
    /// above any sequence a subscriber may remember.
    pub(super) seq: u64,
}

impl Default for PresenceChannel {
    fn default() -> Self {
        Self {
            members: BTreeMap::new(),
            seq: crate::observer::unix_micros(),
        }
    }
}

/// Presence and counts in this process, sharded per channel.
#[derive(Debug, Default)]
pub struct MemoryClusterState {
    pub(super) connections: DashMap<String, u64>,
    pub(super) subscriptions: DashMap<ChannelKey, u64>,
    /// Claims on `subscription_count` updates: changes not yet published, per channel.
    pub(super) count_claims: DashMap<ChannelKey, u64>,
    pub(super) presence: DashMap<ChannelKey, PresenceChannel>,
    /// Pending leaves (see [`LeaveToken`]) by [`leave_key`]: the token that may confirm them.
    pub(super) leaves: DashMap<String, u64>,
    pub(super) next_token: AtomicU64,
    /// Per-app REST budgets: on a single node, the node's own limiter is the cluster's.
    pub(super) rates: DashMap<(String, RateKind), SharedLimiter>,
    /// Cache channels' events, written by the paired backplane.
    pub(super) cache: Arc<MemoryEventCache>,
    /// Signed-in sockets per `app\nuser` (absent = offline).
    pub(super) users: DashMap<String, u64>,
}

/// `app\nchannel` for a vacancy, `app\nchannel\nuser` for a presence departure.
pub(super) fn leave_key(app_id: &str, channel: &str, user_id: Option<&str>) -> String {
    match user_id {
        Some(user) => format!("{app_id}\n{channel}\n{user}"),
        None => format!("{app_id}\n{channel}"),
    }
}

impl MemoryClusterState {
    pub fn new() -> Self {
        Self::default()
    }

    /// The backplane of this single-node cluster: what it publishes to cache channels is what
    /// this state's [`crate::EventCache`] reads.
    pub fn backplane(&self) -> MemoryBackplane {
        MemoryBackplane::with_cache(self.cache.clone())
    }

    pub(super) fn pending_leave(&self, key: String) -> LeaveToken {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed) + 1;
        self.leaves.insert(key, token);
        LeaveToken(token.to_string())
    }

    pub(super) fn counts(&self, key: &ChannelKey) -> ChannelCounts {
        ChannelCounts {
            subscriptions: self.subscriptions.get(key).map(|c| *c).unwrap_or(0),
            users: self.presence.get(key).map(|p| p.members.len() as u64).unwrap_or(0),
        }
    }
}
