//! This node's subscribers per channel, and local fan-out.
//!
//! The index is a sharded map (no global lock): publishing looks up one channel, clones its
//! `Arc`, releases the shard and then walks that channel's subscribers under a read lock while
//! queueing the same frame bytes to each. Subscribing write-locks only that channel.
//!
//! A subscriber is added *held*: it is in the index (so nothing published after its
//! registration can miss it) but frames for it are kept aside until the node
//! [activates](LocalChannels::activate) it with its `subscription_succeeded` (and whatever must
//! follow it first). Then the held frames follow, minus member events its roster already
//! reflects. So no event precedes the success frame on any channel type, and on presence
//! channels a socket's roster plus its member events are exactly the membership (see
//! [`PresenceView`]). Held frames are bounded; a subscriber over the bound is closed as a slow
//! consumer. Active subscribers cost two integer comparisons per message (held? roster newer?).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use dashmap::DashMap;
use ferrocast_protocol::codes::close;

use crate::connection::ConnectionHandle;
use crate::presence_view::PresenceView;

/// The sequence given to frames that are not member events: never at or below a roster's.
const NOT_A_MEMBER_EVENT: u64 = u64::MAX;

/// The `roster_seq` of a held subscriber: its frames go to the channel's `held` map. A sentinel
/// rather than another field keeps the subscriber (walked for every message) at 24 bytes.
const HELD: u64 = u64::MAX - 1;

/// Frames held per subscriber until activation when no bound is given.
pub const DEFAULT_HOLD_LIMIT: usize = 1024;

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

/// A channel named by borrowed strings, to look one up without building a [`ChannelKey`] (two
/// allocations per received message otherwise). Hashes and compares as [`ChannelKey`] does
/// (its derived `Hash` hashes the two strings in order).
pub trait ChannelKeyRef {
    /// The app id and the channel name.
    fn parts(&self) -> (&str, &str);
}

impl ChannelKeyRef for ChannelKey {
    fn parts(&self) -> (&str, &str) {
        (&self.app_id, &self.channel)
    }
}

impl ChannelKeyRef for (&str, &str) {
    fn parts(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl<'a> std::borrow::Borrow<dyn ChannelKeyRef + 'a> for ChannelKey {
    fn borrow(&self) -> &(dyn ChannelKeyRef + 'a) {
        self
    }
}

impl std::hash::Hash for dyn ChannelKeyRef + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let (app_id, channel) = self.parts();
        app_id.hash(state);
        channel.hash(state);
    }
}

impl PartialEq for dyn ChannelKeyRef + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn ChannelKeyRef + '_ {}

/// A presence member as this node remembers it, for re-registration after an outage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMember {
    pub user_id: String,
    pub user_info: String,
}

/// A frame kept for a subscriber not yet activated: bytes, presence sequence (or
/// [`NOT_A_MEMBER_EVENT`]), publish time.
type HeldFrame = (Bytes, u64, u64);

#[derive(Debug)]
struct Subscriber {
    conn: ConnectionHandle,
    member: Option<Arc<LocalMember>>,
    /// The presence sequence of the roster this socket received: member events at or below it
    /// are already reflected there. 0 on other channels; [`HELD`] until activated.
    roster_seq: u64,
}

/// What a held subscriber is owed: the roster sequence it had before (when held again), and
/// the frames that arrived meanwhile.
#[derive(Debug, Default)]
struct Held {
    previous_seq: u64,
    frames: Vec<HeldFrame>,
}

#[derive(Debug, Default)]
struct LocalChannel {
    subscribers: RwLock<HashMap<Arc<str>, Subscriber>>,
    /// Held subscribers' frames, by socket id. Changed only under `subscribers`' lock (read
    /// for a frame, write for hold/activate/remove), so none is lost between the two.
    held: Mutex<HashMap<Arc<str>, Held>>,
    /// On presence channels: the order of member events and what local sockets believe (see
    /// [`PresenceView`]).
    view: Mutex<PresenceView>,
}

/// One channel in [`LocalChannels::snapshot`]: its key, local subscriber count, and each
/// presence member with its local socket ids.
pub type ChannelSnapshot = (ChannelKey, u64, Vec<(LocalMember, Vec<String>)>);

/// A member event as [`LocalChannels::fan_out_member`] orders it.
#[derive(Debug, Clone, Copy)]
pub struct MemberChange<'a> {
    pub user_id: &'a str,
    /// The channel's presence sequence of the change.
    pub seq: u64,
    /// Added (else removed).
    pub added: bool,
    /// The socket that must not receive it (the joiner itself).
    pub exclude: Option<&'a str>,
}

/// The sharded index.
#[derive(Debug)]
pub struct LocalChannels {
    channels: DashMap<ChannelKey, Arc<LocalChannel>>,
    /// Frames a subscriber may have held before activation.
    hold_limit: usize,
}

impl Default for LocalChannels {
    fn default() -> Self {
        Self::with_hold_limit(DEFAULT_HOLD_LIMIT)
    }
}

impl LocalChannels {
    pub fn new() -> Self {
        Self::default()
    }

    /// An index whose subscribers may have `hold_limit` frames held before activation (the
    /// node uses its per-socket queue bound).
    pub fn with_hold_limit(hold_limit: usize) -> Self {
        Self {
            channels: DashMap::new(),
            hold_limit: hold_limit.max(1),
        }
    }

    /// Add a held subscriber (with its presence identity, if any); false if this socket was
    /// already subscribed. Nothing reaches it before [`activate`](Self::activate).
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
                roster_seq: HELD,
            },
        );
        let mut held = entry.held.lock().unwrap_or_else(|e| e.into_inner());
        held.insert(conn.socket_id_arc().clone(), Held::default());
        true
    }

    /// Hold an active subscriber's frames again (it is about to be sent a new roster); false
    /// if it is not subscribed.
    pub fn hold(&self, key: &ChannelKey, socket_id: &str) -> bool {
        let Some(channel) = self.channel(key) else {
            return false;
        };
        let mut subs = channel.subscribers.write().unwrap_or_else(|e| e.into_inner());
        let Some(sub) = subs.get_mut(socket_id) else {
            return false;
        };
        if sub.roster_seq != HELD {
            let mut held = channel.held.lock().unwrap_or_else(|e| e.into_inner());
            let entry = Held {
                previous_seq: sub.roster_seq,
                frames: Vec::new(),
            };
            held.insert(sub.conn.socket_id_arc().clone(), entry);
            sub.roster_seq = HELD;
        }
        true
    }

    /// Activate a held subscriber: queue `first` (its success frame, then anything that must
    /// precede channel traffic), then the frames held meanwhile minus member events at or
    /// below `roster_seq` (the presence sequence of the roster in `first`; 0 elsewhere). From
    /// then on it gets frames directly. `roster` lists the members the roster names. False if
    /// the socket is not subscribed.
    pub fn activate<'a>(
        &self,
        key: &ChannelKey,
        socket_id: &str,
        first: Vec<Bytes>,
        roster_seq: u64,
        roster: impl IntoIterator<Item = &'a str>,
    ) -> bool {
        let Some(channel) = self.channel(key) else {
            return false;
        };
        // The write lock excludes fan-out: nothing can slip between the held frames and the
        // first direct one.
        let mut subs = channel.subscribers.write().unwrap_or_else(|e| e.into_inner());
        let Some(sub) = subs.get_mut(socket_id) else {
            return false;
        };
        channel
            .view
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .learn_roster(roster);
        let held = match sub.roster_seq {
            HELD => {
                let mut held = channel.held.lock().unwrap_or_else(|e| e.into_inner());
                held.remove(socket_id).unwrap_or_default()
            }
            // Already active (a repeated activation): nothing was held.
            seq => Held {
                previous_seq: seq,
                frames: Vec::new(),
            },
        };
        sub.roster_seq = held.previous_seq.max(roster_seq);
        for frame in first {
            sub.conn.send(frame);
        }
        for (frame, seq, published_at_us) in held.frames {
            if seq > sub.roster_seq {
                sub.conn.send_published(frame, published_at_us);
            }
        }
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
            let removed = subs.remove(socket_id);
            if removed.as_ref().is_some_and(|s| s.roster_seq == HELD) {
                entry.held.lock().unwrap_or_else(|e| e.into_inner()).remove(socket_id);
            }
            (removed.is_some(), subs.is_empty())
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
    /// sockets it was queued to (or held for).
    pub fn fan_out(&self, key: &ChannelKey, frame: &Bytes, exclude: Option<&str>) -> usize {
        self.fan_out_with(key, exclude, || frame.clone())
    }

    /// Like [`fan_out`](Self::fan_out), but builds the frame only if the channel has local
    /// subscribers, so messages for channels without local interest cost no encoding.
    pub fn fan_out_with(&self, key: &ChannelKey, exclude: Option<&str>, build: impl FnOnce() -> Bytes) -> usize {
        self.fan_out_published(key, exclude, 0, build)
    }

    /// Like [`fan_out_with`](Self::fan_out_with), for a message published at `published_at_us`
    /// (Unix µs): the writers measure the latency to the socket from it.
    pub fn fan_out_published(
        &self,
        key: &ChannelKey,
        exclude: Option<&str>,
        published_at_us: u64,
        build: impl FnOnce() -> Bytes,
    ) -> usize {
        let Some(channel) = self.channel(key) else {
            return 0;
        };
        let frame = build();
        self.send_all(&channel, &frame, exclude, NOT_A_MEMBER_EVENT, published_at_us)
    }

    /// Fan out a member event of `user_id` (`added` or removed) at presence sequence `seq`:
    /// dropped when an event as new for that user was already delivered, and not sent to
    /// sockets whose roster reflects it. `build` runs only if some socket may need it.
    pub fn fan_out_member(
        &self,
        key: &ChannelKey,
        change: MemberChange<'_>,
        published_at_us: u64,
        build: impl FnOnce() -> Bytes,
    ) -> usize {
        let Some(channel) = self.channel(key) else {
            return 0;
        };
        let newer =
            channel
                .view
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .apply(change.user_id, change.seq, change.added);
        if !newer {
            return 0;
        }
        let frame = build();
        self.send_all(&channel, &frame, change.exclude, change.seq, published_at_us)
    }

    /// The one loop every message takes: queue to active subscribers whose roster does not
    /// reflect `seq`, hold for the others.
    fn send_all(
        &self,
        channel: &LocalChannel,
        frame: &Bytes,
        exclude: Option<&str>,
        seq: u64,
        published_at_us: u64,
    ) -> usize {
        let subs = channel.subscribers.read().unwrap_or_else(|e| e.into_inner());
        let mut sent = 0;
        for (socket_id, sub) in subs.iter() {
            let queued = if sub.roster_seq == HELD {
                exclude != Some(&**socket_id)
                    && self.hold_frame(channel, socket_id, sub, (frame.clone(), seq, published_at_us))
            } else if seq <= sub.roster_seq || exclude == Some(&**socket_id) {
                continue;
            } else {
                sub.conn.send_published(frame.clone(), published_at_us)
            };
            if queued {
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

    /// Keep a frame for a subscriber not yet activated; over the bound it is closed as a slow
    /// consumer (counted with the other 4100 closes) and keeps nothing more.
    fn hold_frame(&self, channel: &LocalChannel, socket_id: &str, sub: &Subscriber, frame: HeldFrame) -> bool {
        if sub.conn.is_closing() {
            return false;
        }
        let mut held = channel.held.lock().unwrap_or_else(|e| e.into_inner());
        let Some(held) = held.get_mut(socket_id) else {
            return false;
        };
        if held.frames.len() >= self.hold_limit {
            held.frames = Vec::new();
            sub.conn.close(close::OVER_CAPACITY);
            return false;
        }
        held.frames.push(frame);
        true
    }

    fn channel(&self, key: &ChannelKey) -> Option<Arc<LocalChannel>> {
        self.channels.get(key).map(|c| c.value().clone())
    }

    /// [`fan_out_published`](Self::fan_out_published) of a channel named by borrowed strings:
    /// the receiving node's path, which looks the channel up once and allocates no key.
    pub fn fan_out_published_to(
        &self,
        app_id: &str,
        channel: &str,
        exclude: Option<&str>,
        published_at_us: u64,
        build: impl FnOnce() -> Bytes,
    ) -> usize {
        let key: &dyn ChannelKeyRef = &(app_id, channel);
        let Some(channel) = self.channels.get(key).map(|c| c.value().clone()) else {
            return 0;
        };
        let frame = build();
        self.send_all(&channel, &frame, exclude, NOT_A_MEMBER_EVENT, published_at_us)
    }

    /// Per local presence channel whose sockets know members: who they may believe present.
    pub fn presence_beliefs(&self) -> Vec<(ChannelKey, Vec<String>)> {
        self.all()
            .into_iter()
            .filter_map(|(key, channel)| {
                let view = channel.view.lock().unwrap_or_else(|e| e.into_inner());
                view.is_known()
                    .then(|| (key, view.present().map(str::to_owned).collect()))
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
    /// local socket ids. Used to re-register this node's state in the cluster.
    pub fn snapshot(&self) -> Vec<ChannelSnapshot> {
        self.all()
            .into_iter()
            .filter_map(|(key, channel)| {
                let subs = channel.subscribers.read().unwrap_or_else(|e| e.into_inner());
                if subs.is_empty() {
                    return None;
                }
                let mut members: HashMap<&str, (&LocalMember, Vec<String>)> = HashMap::new();
                for (socket_id, sub) in subs.iter() {
                    if let Some(member) = sub.member.as_deref() {
                        let sockets = &mut members.entry(member.user_id.as_str()).or_insert((member, Vec::new())).1;
                        sockets.push(socket_id.to_string());
                    }
                }
                let members = members.into_values().map(|(m, s)| (m.clone(), s)).collect();
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
        idx.activate(&key, "1.1", Vec::new(), 0, []);
        idx.activate(&key, "1.2", Vec::new(), 0, []);
        let frame = Bytes::from_static(b"frame");
        assert_eq!(idx.fan_out(&key, &frame, Some("1.1")), 1);
        assert!(o1.frames.try_recv().is_err());
        let got = o2.frames.try_recv().unwrap();
        assert_eq!(got.as_ptr(), frame.as_ptr(), "recipients share one allocation");
        assert_eq!(idx.fan_out(&ChannelKey::new("a", "other"), &frame, None), 0);
        assert_eq!(idx.fan_out(&ChannelKey::new("b", "c"), &frame, None), 0);
    }

    #[test]
    fn borrowed_lookup_finds_the_same_channels_as_keys() {
        let idx = LocalChannels::new();
        let key = ChannelKey::new("a", "c");
        let (c1, mut o1) = conn("1.1");
        idx.add(&key, &c1, None);
        idx.activate(&key, "1.1", Vec::new(), 0, []);
        let frame = Bytes::from_static(b"frame");
        assert_eq!(idx.fan_out_published_to("a", "c", None, 0, || frame.clone()), 1);
        assert_eq!(o1.frames.try_recv().unwrap().as_ptr(), frame.as_ptr());
        assert_eq!(idx.fan_out_published_to("a", "c", Some("1.1"), 0, || frame.clone()), 0);
        assert_eq!(idx.fan_out_published_to("a", "other", None, 0, || frame.clone()), 0);
        assert_eq!(idx.fan_out_published_to("ac", "", None, 0, || frame.clone()), 0);
        assert_eq!(idx.fan_out_published_to("", "ac", None, 0, || frame.clone()), 0);
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
        let counts: Vec<_> = members.iter().map(|(m, s)| (m.user_id.as_str(), s.len())).collect();
        assert_eq!(counts, vec![("u1", 2), ("u2", 1)]);
    }

    fn drain(o: &mut crate::connection::ConnectionOutbox) -> Vec<Bytes> {
        let mut got = Vec::new();
        while let Ok(f) = o.frames.try_recv() {
            got.push(f.frame);
        }
        got
    }

    fn member(user_id: &str, seq: u64, added: bool) -> MemberChange<'_> {
        MemberChange {
            user_id,
            seq,
            added,
            exclude: None,
        }
    }

    #[test]
    fn nothing_precedes_the_success_frame_and_held_frames_follow_it_in_order() {
        let idx = LocalChannels::new();
        let key = ChannelKey::new("a", "c");
        let (c1, mut o1) = conn("1.1");
        idx.add(&key, &c1, None);
        assert_eq!(idx.fan_out(&key, &Bytes::from_static(b"e1"), None), 1, "held");
        assert!(drain(&mut o1).is_empty(), "nothing before activation");
        idx.fan_out(&key, &Bytes::from_static(b"e2"), None);
        let first = vec![Bytes::from_static(b"ok"), Bytes::from_static(b"cached")];
        assert!(idx.activate(&key, "1.1", first, 0, []));
        idx.fan_out(&key, &Bytes::from_static(b"e3"), None);
        assert_eq!(
            drain(&mut o1),
            ["ok", "cached", "e1", "e2", "e3"].map(|s| Bytes::from(s.as_bytes()))
        );
    }

    #[test]
    fn member_events_the_roster_reflects_are_dropped_held_or_not() {
        let idx = LocalChannels::new();
        let key = ChannelKey::new("a", "presence-c");
        let (old, mut o_old) = conn("1.1");
        let (new, mut o_new) = conn("1.2");
        idx.add(&key, &old, None);
        idx.activate(&key, "1.1", vec![Bytes::from_static(b"ok-old")], 10, ["a"]);
        idx.add(&key, &new, None);
        // x joined at 11 and y at 12; the newcomer's roster (read at 12) lists both.
        idx.fan_out_member(&key, member("x", 11, true), 0, || Bytes::from_static(b"+x"));
        idx.activate(&key, "1.2", vec![Bytes::from_static(b"ok-new")], 12, ["a", "x", "y"]);
        idx.fan_out_member(&key, member("y", 12, true), 0, || Bytes::from_static(b"+y"));
        idx.fan_out_member(&key, member("a", 13, false), 0, || Bytes::from_static(b"-a"));
        let frames = |v: &[&'static str]| v.iter().map(|s| Bytes::from_static(s.as_bytes())).collect::<Vec<_>>();
        assert_eq!(drain(&mut o_old), frames(&["ok-old", "+x", "+y", "-a"]));
        assert_eq!(
            drain(&mut o_new),
            frames(&["ok-new", "-a"]),
            "+x and +y are in its roster"
        );
    }

    #[test]
    fn an_older_event_of_a_user_arriving_late_is_dropped_for_everyone() {
        let idx = LocalChannels::new();
        let key = ChannelKey::new("a", "presence-c");
        let (c1, mut o1) = conn("1.1");
        idx.add(&key, &c1, None);
        idx.activate(&key, "1.1", Vec::new(), 1, ["me"]);
        assert_eq!(
            idx.fan_out_member(&key, member("u", 6, false), 0, || Bytes::from_static(b"-u")),
            1
        );
        assert_eq!(
            idx.fan_out_member(&key, member("u", 5, true), 0, || Bytes::from_static(b"+u")),
            0
        );
        assert_eq!(drain(&mut o1), [Bytes::from_static(b"-u")]);
    }

    #[test]
    fn a_held_subscriber_over_the_bound_is_closed_as_slow() {
        let idx = LocalChannels::with_hold_limit(2);
        let key = ChannelKey::new("a", "c");
        let (c1, _o1) = conn("1.1");
        idx.add(&key, &c1, None);
        for _ in 0..2 {
            assert_eq!(idx.fan_out(&key, &Bytes::from_static(b"e"), None), 1);
        }
        assert_eq!(idx.fan_out(&key, &Bytes::from_static(b"e"), None), 0);
        assert_eq!(c1.close_code(), Some(close::OVER_CAPACITY));
    }

    #[test]
    fn a_resubscribe_holds_again_until_the_new_roster_is_out() {
        let idx = LocalChannels::new();
        let key = ChannelKey::new("a", "presence-c");
        let (c1, mut o1) = conn("1.1");
        idx.add(&key, &c1, None);
        idx.activate(&key, "1.1", vec![Bytes::from_static(b"ok1")], 3, ["me"]);
        assert!(idx.hold(&key, "1.1"));
        idx.fan_out_member(&key, member("z", 4, true), 0, || Bytes::from_static(b"+z"));
        idx.activate(&key, "1.1", vec![Bytes::from_static(b"ok2")], 4, ["me", "z"]);
        assert_eq!(drain(&mut o1), [Bytes::from_static(b"ok1"), Bytes::from_static(b"ok2")]);
    }
}
