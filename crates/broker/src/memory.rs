//! The in-process backplane and cluster state: a single node is its own cluster.
//!
//! Used by `ferrocast` without `--config` and by any single-node deployment. Same contracts as
//! the Redis implementations, so the node core cannot tell them apart.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use dashmap::DashMap;
use tokio::sync::watch;

use crate::backplane::{
    Backplane, ChannelCounts, ChannelMessage, ClusterState, DeliverySink, LeaveToken, Link, NodeSnapshot, PresenceJoin,
    PresenceLeave, RateDecision, RateKind, ResyncOutcome,
};
use crate::error::BackplaneError;
use crate::local_channels::ChannelKey;
use crate::rate_limit::SharedLimiter;

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
    /// Pending leaves (see [`LeaveToken`]) by [`leave_key`]: the token that may confirm them.
    leaves: DashMap<String, u64>,
    next_token: AtomicU64,
    /// Per-app REST budgets: on a single node, the node's own limiter is the cluster's.
    rates: DashMap<(String, RateKind), SharedLimiter>,
}

/// `app\nchannel` for a vacancy, `app\nchannel\nuser` for a presence departure.
fn leave_key(app_id: &str, channel: &str, user_id: Option<&str>) -> String {
    match user_id {
        Some(user) => format!("{app_id}\n{channel}\n{user}"),
        None => format!("{app_id}\n{channel}"),
    }
}

impl MemoryClusterState {
    pub fn new() -> Self {
        Self::default()
    }

    fn pending_leave(&self, key: String) -> LeaveToken {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed) + 1;
        self.leaves.insert(key, token);
        LeaveToken(token.to_string())
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

    async fn subscription_added(&self, app_id: &str, channel: &str) -> Result<bool, BackplaneError> {
        let mut count = self.subscriptions.entry(ChannelKey::new(app_id, channel)).or_insert(0);
        *count += 1;
        // Still holding the channel's entry: a concurrent leave cannot interleave.
        let occupied = *count == 1 && self.leaves.remove(&leave_key(app_id, channel, None)).is_none();
        Ok(occupied)
    }

    async fn subscription_removed(
        &self,
        app_id: &str,
        channel: &str,
        pending: bool,
    ) -> Result<Option<LeaveToken>, BackplaneError> {
        let key = ChannelKey::new(app_id, channel);
        let emptied = match self.subscriptions.get_mut(&key) {
            Some(mut count) if *count > 0 => {
                *count -= 1;
                (*count == 0 && pending).then(|| self.pending_leave(leave_key(app_id, channel, None)))
            }
            _ => None,
        };
        self.subscriptions.remove_if(&key, |_, c| *c == 0);
        Ok(emptied)
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
        let returned = is_new && self.leaves.remove(&leave_key(app_id, channel, Some(user_id))).is_some();
        Ok(PresenceJoin::Joined {
            added: is_new,
            roster,
            returned,
        })
    }

    async fn presence_leave(
        &self,
        app_id: &str,
        channel: &str,
        socket_id: &str,
        user_id: &str,
        pending: bool,
    ) -> Result<PresenceLeave, BackplaneError> {
        let key = ChannelKey::new(app_id, channel);
        let token = {
            let Some(mut ch) = self.presence.get_mut(&key) else {
                return Ok(PresenceLeave::Stayed);
            };
            let Some(member) = ch.members.get_mut(user_id) else {
                return Ok(PresenceLeave::Stayed);
            };
            if !member.1.remove(socket_id) || !member.1.is_empty() {
                return Ok(PresenceLeave::Stayed);
            }
            ch.members.remove(user_id);
            pending.then(|| self.pending_leave(leave_key(app_id, channel, Some(user_id))))
        };
        self.presence.remove_if(&key, |_, ch| ch.members.is_empty());
        Ok(PresenceLeave::Left(token))
    }

    async fn confirm_leave(
        &self,
        app_id: &str,
        channel: &str,
        user_id: Option<&str>,
        token: &LeaveToken,
    ) -> Result<bool, BackplaneError> {
        let key = leave_key(app_id, channel, user_id);
        Ok(self
            .leaves
            .remove_if(&key, |_, pending| pending.to_string() == token.0)
            .is_some())
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

    async fn take_rate(
        &self,
        app_id: &str,
        kind: RateKind,
        units: u64,
        per_second: u64,
    ) -> Result<RateDecision, BackplaneError> {
        let key = (app_id.to_owned(), kind);
        if let Some(limiter) = self.rates.get(&key).filter(|l| l.per_second() == per_second) {
            return Ok(limiter.take(units));
        }
        let mut limiter = self.rates.entry(key).or_insert_with(|| SharedLimiter::new(per_second));
        if limiter.per_second() != per_second {
            *limiter = SharedLimiter::new(per_second);
        }
        Ok(limiter.take(units))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn rate_budgets_are_all_or_nothing_per_app_and_kind() {
        let s = MemoryClusterState::new();
        let take = |app: &'static str, kind, units| {
            let s = &s;
            async move { s.take_rate(app, kind, units, 10).await.unwrap() }
        };
        // The window starts with the first take, so these all fall in it.
        assert!(take("a", RateKind::BackendEvents, 7).await.allowed);
        let refused = take("a", RateKind::BackendEvents, 5).await;
        assert!(!refused.allowed);
        assert!(refused.resets_in > Duration::ZERO && refused.resets_in <= Duration::from_secs(1));
        assert!(
            take("a", RateKind::BackendEvents, 3).await.allowed,
            "the refused 5 were not taken"
        );
        assert!(!take("a", RateKind::BackendEvents, 1).await.allowed);
        assert!(
            take("a", RateKind::ReadRequests, 10).await.allowed,
            "reads have their own budget"
        );
        assert!(
            take("b", RateKind::BackendEvents, 10).await.allowed,
            "apps have their own budget"
        );
        assert!(!take("b", RateKind::BackendEvents, 1).await.allowed);
        // A changed budget starts afresh.
        assert!(s.take_rate("a", RateKind::BackendEvents, 20, 20).await.unwrap().allowed);
    }

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
                roster: vec![("u1".into(), "{}".into())],
                returned: false,
            }
        );
        let j = s
            .presence_join("a", "presence-x", "1.2", "u1", "{}", 100)
            .await
            .unwrap();
        assert!(matches!(j, PresenceJoin::Joined { added: false, .. }));
        assert!(s.presence_leave("a", "presence-x", "1.1", "u1", true).await.unwrap() == PresenceLeave::Stayed);
        assert!(
            s.presence_leave("a", "presence-x", "1.1", "u1", true).await.unwrap() == PresenceLeave::Stayed,
            "leave is idempotent"
        );
        assert!(s
            .presence_leave("a", "presence-x", "1.2", "u1", true)
            .await
            .unwrap()
            .left());
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
        s.subscription_removed("a", "presence-1", true).await.unwrap();
        assert!(s.channels("a", "presence-").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn vacancy_is_confirmed_once_unless_the_channel_is_reoccupied() {
        let s = MemoryClusterState::new();
        assert!(s.subscription_added("a", "c").await.unwrap(), "0 -> 1 occupies");
        assert!(!s.subscription_added("a", "c").await.unwrap());
        assert_eq!(s.subscription_removed("a", "c", true).await.unwrap(), None);
        let token = s.subscription_removed("a", "c", true).await.unwrap().expect("emptied");
        assert!(s.confirm_leave("a", "c", None, &token).await.unwrap());
        assert!(!s.confirm_leave("a", "c", None, &token).await.unwrap(), "only once");

        let token = {
            assert!(s.subscription_added("a", "c").await.unwrap());
            s.subscription_removed("a", "c", true).await.unwrap().expect("emptied")
        };
        assert!(
            !s.subscription_added("a", "c").await.unwrap(),
            "back within the delay: no new occupancy"
        );
        assert!(
            !s.confirm_leave("a", "c", None, &token).await.unwrap(),
            "and no vacancy"
        );
        assert_eq!(s.subscription_removed("x", "never", true).await.unwrap(), None);
    }

    #[tokio::test]
    async fn departure_is_cancelled_by_a_rejoin() {
        let s = MemoryClusterState::new();
        s.presence_join("a", "p", "1.1", "u1", "{}", 0).await.unwrap();
        let token = s
            .presence_leave("a", "p", "1.1", "u1", true)
            .await
            .unwrap()
            .into_token()
            .expect("last socket");
        let rejoin = s.presence_join("a", "p", "1.2", "u1", "{}", 0).await.unwrap();
        assert!(matches!(
            rejoin,
            PresenceJoin::Joined {
                added: true,
                returned: true,
                ..
            }
        ));
        assert!(!s.confirm_leave("a", "p", Some("u1"), &token).await.unwrap());
        let token = s
            .presence_leave("a", "p", "1.2", "u1", true)
            .await
            .unwrap()
            .into_token()
            .expect("last socket");
        assert!(
            !s.confirm_leave("a", "p", Some("u2"), &token).await.unwrap(),
            "another user"
        );
        assert!(s.confirm_leave("a", "p", Some("u1"), &token).await.unwrap());
    }
}
