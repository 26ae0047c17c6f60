//! The in-process backplane and cluster state: a single node is its own cluster.
//!
//! Used by `ferrocast` without `--config` and by any single-node deployment. Same contracts as
//! the Redis implementations, so the node core cannot tell them apart.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use dashmap::DashMap;
use tokio::sync::watch;

use crate::backplane::{
    Backplane, ChannelCounts, ChannelMessage, ClusterState, DeliverySink, Link, NodeSnapshot, PresenceJoin,
    ResyncOutcome,
};
use crate::error::BackplaneError;
use crate::local_channels::ChannelKey;

/// Delivers every published message straight to the local sink.
pub struct MemoryBackplane {
    sink: OnceLock<Arc<dyn DeliverySink>>,
    link: watch::Sender<Link>,
}

impl MemoryBackplane {
    pub fn new() -> Self {
        Self {
            sink: OnceLock::new(),
            link: watch::Sender::new(Link::Up { generation: 1 }),
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
            None => Err(BackplaneError("no delivery sink registered".into())),
        }
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

#[derive(Debug, Default)]
struct PresenceChannel {
    /// user id → (user_info JSON, sockets); ordered so rosters are stable.
    members: BTreeMap<String, (String, HashSet<String>)>,
}

/// Presence and counts in this process, sharded per channel.
#[derive(Debug, Default)]
pub struct MemoryClusterState {
    connections: DashMap<String, u64>,
    subscriptions: DashMap<ChannelKey, u64>,
    presence: DashMap<ChannelKey, PresenceChannel>,
}

impl MemoryClusterState {
    pub fn new() -> Self {
        Self::default()
    }

    fn counts(&self, key: &ChannelKey) -> ChannelCounts {
        ChannelCounts {
            subscriptions: self.subscriptions.get(key).map(|c| *c).unwrap_or(0),
            users: self.presence.get(key).map(|p| p.members.len() as u64).unwrap_or(0),
        }
    }
}

#[async_trait]
impl ClusterState for MemoryClusterState {
    async fn connection_opened(&self, app_id: &str, max: u64) -> Result<bool, BackplaneError> {
        let mut count = self.connections.entry(app_id.to_owned()).or_insert(0);
        if max > 0 && *count >= max {
            return Ok(false);
        }
        *count += 1;
        Ok(true)
    }

    async fn connection_closed(&self, app_id: &str) -> Result<(), BackplaneError> {
        if let Some(mut count) = self.connections.get_mut(app_id) {
            *count = count.saturating_sub(1);
        }
        Ok(())
    }

    async fn subscription_added(&self, app_id: &str, channel: &str) -> Result<(), BackplaneError> {
        *self.subscriptions.entry(ChannelKey::new(app_id, channel)).or_insert(0) += 1;
        Ok(())
    }

    async fn subscription_removed(&self, app_id: &str, channel: &str) -> Result<(), BackplaneError> {
        let key = ChannelKey::new(app_id, channel);
        if let Some(mut count) = self.subscriptions.get_mut(&key) {
            *count = count.saturating_sub(1);
        }
        self.subscriptions.remove_if(&key, |_, c| *c == 0);
        Ok(())
    }

    async fn presence_join(
        &self,
        app_id: &str,
        channel: &str,
        socket_id: &str,
        user_id: &str,
        user_info: &str,
        max_members: u64,
    ) -> Result<PresenceJoin, BackplaneError> {
        let mut ch = self.presence.entry(ChannelKey::new(app_id, channel)).or_default();
        let is_new = !ch.members.contains_key(user_id);
        if is_new && max_members > 0 && ch.members.len() as u64 >= max_members {
            return Ok(PresenceJoin::Full);
        }
        let member = ch
            .members
            .entry(user_id.to_owned())
            .or_insert_with(|| (user_info.to_owned(), HashSet::new()));
        member.1.insert(socket_id.to_owned());
        let roster = ch
            .members
            .iter()
            .map(|(id, (info, _))| (id.clone(), info.clone()))
            .collect();
        Ok(PresenceJoin::Joined { added: is_new, roster })
    }

    async fn presence_leave(
        &self,
        app_id: &str,
        channel: &str,
        socket_id: &str,
        user_id: &str,
    ) -> Result<bool, BackplaneError> {
        let key = ChannelKey::new(app_id, channel);
        let removed = {
            let Some(mut ch) = self.presence.get_mut(&key) else {
                return Ok(false);
            };
            let Some(member) = ch.members.get_mut(user_id) else {
                return Ok(false);
            };
            if !member.1.remove(socket_id) || !member.1.is_empty() {
                return Ok(false);
            }
            ch.members.remove(user_id);
            true
        };
        self.presence.remove_if(&key, |_, ch| ch.members.is_empty());
        Ok(removed)
    }

    async fn presence_members(&self, app_id: &str, channel: &str) -> Result<Vec<(String, String)>, BackplaneError> {
        Ok(self
            .presence
            .get(&ChannelKey::new(app_id, channel))
            .map(|ch| {
                ch.members
                    .iter()
                    .map(|(id, (info, _))| (id.clone(), info.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn channels(&self, app_id: &str, prefix: &str) -> Result<Vec<(String, ChannelCounts)>, BackplaneError> {
        let mut names: HashMap<String, ChannelKey> = HashMap::new();
        for entry in self.subscriptions.iter() {
            let key = entry.key();
            if &*key.app_id == app_id && key.channel.starts_with(prefix) && *entry.value() > 0 {
                names.insert(key.channel.to_string(), key.clone());
            }
        }
        let mut out: Vec<_> = names.into_iter().map(|(name, key)| (name, self.counts(&key))).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn channel(&self, app_id: &str, channel: &str) -> Result<ChannelCounts, BackplaneError> {
        Ok(self.counts(&ChannelKey::new(app_id, channel)))
    }

    /// In-process state is never lost, so there is nothing to re-register.
    async fn resync(&self, _snapshot: &NodeSnapshot) -> Result<ResyncOutcome, BackplaneError> {
        Ok(ResyncOutcome::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn presence_adds_once_per_user_and_removes_after_last_socket() {
        let s = MemoryClusterState::new();
        let j = s
            .presence_join("a", "presence-x", "1.1", "u1", "{}", 100)
            .await
            .unwrap();
        assert_eq!(
            j,
            PresenceJoin::Joined {
                added: true,
                roster: vec![("u1".into(), "{}".into())]
            }
        );
        let j = s
            .presence_join("a", "presence-x", "1.2", "u1", "{}", 100)
            .await
            .unwrap();
        assert!(matches!(j, PresenceJoin::Joined { added: false, .. }));
        assert!(!s.presence_leave("a", "presence-x", "1.1", "u1").await.unwrap());
        assert!(
            !s.presence_leave("a", "presence-x", "1.1", "u1").await.unwrap(),
            "leave is idempotent"
        );
        assert!(s.presence_leave("a", "presence-x", "1.2", "u1").await.unwrap());
        assert!(s.presence_members("a", "presence-x").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn presence_limit_counts_distinct_users() {
        let s = MemoryClusterState::new();
        s.presence_join("a", "p", "1.1", "u1", "null", 2).await.unwrap();
        s.presence_join("a", "p", "1.2", "u2", "null", 2).await.unwrap();
        assert_eq!(
            s.presence_join("a", "p", "1.3", "u3", "null", 2).await.unwrap(),
            PresenceJoin::Full
        );
        assert!(matches!(
            s.presence_join("a", "p", "1.4", "u2", "null", 2).await.unwrap(),
            PresenceJoin::Joined { added: false, .. }
        ));
    }

    #[tokio::test]
    async fn connection_quota_is_enforced_and_released() {
        let s = MemoryClusterState::new();
        assert!(s.connection_opened("a", 2).await.unwrap());
        assert!(s.connection_opened("a", 2).await.unwrap());
        assert!(!s.connection_opened("a", 2).await.unwrap());
        s.connection_closed("a").await.unwrap();
        assert!(s.connection_opened("a", 2).await.unwrap());
        assert!(s.connection_opened("b", 0).await.unwrap());
    }

    #[tokio::test]
    async fn channel_listing_filters_by_app_and_prefix() {
        let s = MemoryClusterState::new();
        s.subscription_added("a", "presence-1").await.unwrap();
        s.subscription_added("a", "public").await.unwrap();
        s.subscription_added("b", "presence-2").await.unwrap();
        let list = s.channels("a", "presence-").await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].0, "presence-1");
        s.subscription_removed("a", "presence-1").await.unwrap();
        assert!(s.channels("a", "presence-").await.unwrap().is_empty());
    }
}
