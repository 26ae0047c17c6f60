//! This node's subscribers per channel, and local fan-out.
//!
//! The index is a sharded map (no global lock): publishing looks up one channel, clones its
//! `Arc`, releases the shard and then walks that channel's subscribers under a read lock while
//! queueing the same frame bytes to each. Subscribing write-locks only that channel.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use dashmap::DashMap;

use crate::connection::ConnectionHandle;
use crate::presence_view::PresenceView;

/// Identifies a channel of an app.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelKey {
    pub app_id: Arc<str>,
    pub channel: Arc<str>,
}

impl ChannelKey {
    pub fn new(app_id: &str, channel: &str) -> Self {
        Self {
            app_id: app_id.into(),
            channel: channel.into(),
        }
    }
}

/// A presence member as this node remembers it, for re-registration after an outage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMember {
    pub user_id: String,
    pub user_info: String,
}

#[derive(Debug)]
struct Subscriber {
    conn: ConnectionHandle,
    member: Option<Arc<LocalMember>>,
}

#[derive(Debug, Default)]
struct LocalChannel {
    subscribers: RwLock<HashMap<Arc<str>, Subscriber>>,
    /// On presence channels: the members this node's sockets have been told about. Filters
    /// duplicate member_added / member_removed and is what reconciliation after an outage
    /// compares with the cluster's roster.
    view: std::sync::Mutex<PresenceView>,
}

/// One channel in [`LocalChannels::snapshot`]: its key, local subscriber count, and each
/// presence member with its number of local sockets.
pub type ChannelSnapshot = (ChannelKey, u64, Vec<(LocalMember, u64)>);

/// The sharded index.
#[derive(Debug, Default)]
pub struct LocalChannels {
    channels: DashMap<ChannelKey, Arc<LocalChannel>>,
}

impl LocalChannels {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a subscriber (with its presence identity, if any); false if this socket was already
    /// subscribed.
    pub fn add(&self, key: &ChannelKey, conn: &ConnectionHandle, member: Option<Arc<LocalMember>>) -> bool {
        // Holding the shard entry while inserting makes add/remove of the same channel
        // linearizable, so First/Last transitions are never lost or doubled.
        let entry = self.channels.entry(key.clone()).or_default();
        let mut subs = entry.subscribers.write().unwrap_or_else(|e| e.into_inner());
        if subs.contains_key(conn.socket_id()) {
            return false;
        }
        subs.insert(
            conn.socket_id_arc().clone(),
            Subscriber {
                conn: conn.clone(),
                member,
            },
        );
        true
    }

    /// Remove a subscriber; false if it was not subscribed. The channel's entry goes with its
    /// last subscriber.
    pub fn remove(&self, key: &ChannelKey, socket_id: &str) -> bool {
        let Some(entry) = self.channels.get(key) else {
            return false;
        };
        let (removed, now_empty) = {
            let mut subs = entry.subscribers.write().unwrap_or_else(|e| e.into_inner());
            (subs.remove(socket_id).is_some(), subs.is_empty())
        };
        drop(entry);
        if removed && now_empty {
            // Re-check under the shard lock: someone may have subscribed in between.
            self.channels.remove_if(key, |_, ch| {
                ch.subscribers.read().map(|s| s.is_empty()).unwrap_or(false)
            });
        }
        removed
    }

    /// Queue `frame` to every local subscriber of the channel except `exclude`. Returns how many
    /// sockets it was queued to.
    pub fn fan_out(&self, key: &ChannelKey, frame: &Bytes, exclude: Option<&str>) -> usize {
        self.fan_out_with(key, exclude, || frame.clone())
    }

    /// Like [`fan_out`](Self::fan_out), but builds the frame only if the channel has local
    /// subscribers, so messages for channels without local interest cost no encoding.
    pub fn fan_out_with(&self, key: &ChannelKey, exclude: Option<&str>, build: impl FnOnce() -> Bytes) -> usize {
        self.fan_out_published(key, exclude, 0, || Some(build()))
    }

    /// Like [`fan_out_with`](Self::fan_out_with), for a message published at `published_at_us`
    /// (Unix µs): the writers measure the latency to the socket from it. `build` may decide the
    /// message tells the local sockets nothing (`None`): then nothing is sent.
    pub fn fan_out_published(
        &self,
        key: &ChannelKey,
        exclude: Option<&str>,
        published_at_us: u64,
        build: impl FnOnce() -> Option<Bytes>,
    ) -> usize {
        let Some(channel) = self.channels.get(key).map(|c| c.value().clone()) else {
            return 0;
        };
        let Some(frame) = build() else {
            return 0;
        };
        let subs = channel.subscribers.read().unwrap_or_else(|e| e.into_inner());
        let mut sent = 0;
        for (socket_id, sub) in subs.iter() {
            if exclude == Some(&**socket_id) {
                continue;
            }
            if sub.conn.send_published(frame.clone(), published_at_us) {
                sent += 1;
            }
        }
        sent
    }

    /// The handles of the channel's local subscribers (to close them all, for instance).
    pub fn connections(&self, key: &ChannelKey) -> Vec<ConnectionHandle> {
        let Some(channel) = self.channels.get(key).map(|c| c.value().clone()) else {
            return Vec::new();
        };
        let subs = channel.subscribers.read().unwrap_or_else(|e| e.into_inner());
        subs.values().map(|s| s.conn.clone()).collect()
    }

    /// A socket on the channel received `roster` (see [`PresenceView`]).
    pub fn learn_roster<'a>(&self, key: &ChannelKey, roster: impl IntoIterator<Item = &'a str>) {
        if let Some(channel) = self.channels.get(key).map(|c| c.value().clone()) {
            channel
                .view
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .learn_roster(roster);
        }
    }

    /// Record a member_added (`added`) or member_removed for the channel's sockets; false when
    /// it would tell them nothing new, so it is not sent.
    pub fn apply_presence_change(&self, key: &ChannelKey, user_id: &str, added: bool) -> bool {
        let Some(channel) = self.channels.get(key).map(|c| c.value().clone()) else {
            return true;
        };
        let mut view = channel.view.lock().unwrap_or_else(|e| e.into_inner());
        view.apply(user_id, added)
    }

    /// The presence view of every local channel whose sockets hold a roster.
    pub fn presence_views(&self) -> Vec<(ChannelKey, PresenceView)> {
        self.all()
            .into_iter()
            .filter_map(|(key, channel)| {
                let view = channel.view.lock().unwrap_or_else(|e| e.into_inner()).clone();
                view.is_known().then_some((key, view))
            })
            .collect()
    }

    /// Whether any local socket on the channel is the presence member `user_id`.
    pub fn has_member(&self, key: &ChannelKey, user_id: &str) -> bool {
        let Some(channel) = self.channels.get(key).map(|c| c.value().clone()) else {
            return false;
        };
        let subs = channel.subscribers.read().unwrap_or_else(|e| e.into_inner());
        subs.values()
            .any(|s| s.member.as_ref().is_some_and(|m| m.user_id == user_id))
    }

    /// Every channel, cloned out of the map so no shard stays locked while each is inspected.
    fn all(&self) -> Vec<(ChannelKey, Arc<LocalChannel>)> {
        self.channels
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }

    /// Every channel with at least one local subscriber.
    pub fn keys(&self) -> Vec<ChannelKey> {
        self.channels.iter().map(|e| e.key().clone()).collect()
    }

    /// Per channel: the number of local subscribers and, per presence user, its user_info and
    /// number of local sockets. Used to re-register this node's state in the cluster.
    pub fn snapshot(&self) -> Vec<ChannelSnapshot> {
        self.all()
            .into_iter()
            .filter_map(|(key, channel)| {
                let subs = channel.subscribers.read().unwrap_or_else(|e| e.into_inner());
                if subs.is_empty() {
                    return None;
                }
                let mut members: HashMap<&str, (&LocalMember, u64)> = HashMap::new();
                for member in subs.values().filter_map(|s| s.member.as_deref()) {
                    members.entry(member.user_id.as_str()).or_insert((member, 0)).1 += 1;
                }
                let members = members.into_values().map(|(m, n)| (m.clone(), n)).collect();
                Some((key, subs.len() as u64, members))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(id: &str) -> (ConnectionHandle, crate::connection::ConnectionOutbox) {
        ConnectionHandle::new(id.into(), 16)
    }

    #[test]
    fn add_and_remove_are_idempotent_and_the_last_leaver_drops_the_channel() {
        let idx = LocalChannels::new();
        let key = ChannelKey::new("a", "c");
        let (c1, _o1) = conn("1.1");
        let (c2, _o2) = conn("1.2");
        assert!(idx.add(&key, &c1, None));
        assert!(!idx.add(&key, &c1, None), "a socket is added once");
        assert!(idx.add(&key, &c2, None));
        assert!(idx.remove(&key, "1.1"));
        assert!(!idx.remove(&key, "1.1"), "and removed once");
        assert_eq!(idx.keys().len(), 1);
        assert!(idx.remove(&key, "1.2"));
        assert!(idx.keys().is_empty(), "the last subscriber takes the channel with it");
    }

    #[test]
    fn fan_out_shares_bytes_and_honours_exclusion() {
        let idx = LocalChannels::new();
        let key = ChannelKey::new("a", "c");
        let (c1, mut o1) = conn("1.1");
        let (c2, mut o2) = conn("1.2");
        idx.add(&key, &c1, None);
        idx.add(&key, &c2, None);
        let frame = Bytes::from_static(b"frame");
        assert_eq!(idx.fan_out(&key, &frame, Some("1.1")), 1);
        assert!(o1.frames.try_recv().is_err());
        let got = o2.frames.try_recv().unwrap();
        assert_eq!(got.as_ptr(), frame.as_ptr(), "recipients share one allocation");
        assert_eq!(idx.fan_out(&ChannelKey::new("a", "other"), &frame, None), 0);
        assert_eq!(idx.fan_out(&ChannelKey::new("b", "c"), &frame, None), 0);
    }

    #[test]
    fn snapshot_counts_sockets_per_channel_and_per_presence_user() {
        let idx = LocalChannels::new();
        let key = ChannelKey::new("a", "presence-x");
        let member = |id: &str| {
            Some(Arc::new(LocalMember {
                user_id: id.into(),
                user_info: "null".into(),
            }))
        };
        let conns: Vec<_> = (0..3).map(|i| conn(&format!("1.{i}"))).collect();
        idx.add(&key, &conns[0].0, member("u1"));
        idx.add(&key, &conns[1].0, member("u1"));
        idx.add(&key, &conns[2].0, member("u2"));
        let snap = idx.snapshot();
        assert_eq!(snap.len(), 1);
        let (k, subs, mut members) = snap.into_iter().next().unwrap();
        assert_eq!((k, subs), (key, 3));
        members.sort_by(|a, b| a.0.user_id.cmp(&b.0.user_id));
        let counts: Vec<_> = members.iter().map(|(m, n)| (m.user_id.as_str(), *n)).collect();
        assert_eq!(counts, vec![("u1", 2), ("u2", 1)]);
    }
}
