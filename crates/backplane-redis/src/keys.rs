//! Names of Redis keys and pub/sub channels, computed here and handed to the scripts in
//! `KEYS[]` (no script builds a key name), so that Redis Cluster can route every script and
//! check that it stays in one slot.
//!
//! The keyspace is divided into buckets (`docs/design/redis-cluster.md`): every key carries the
//! hash tag `{P:b}` of its bucket, so the keys of one bucket share one slot. A channel's keys,
//! its pub/sub channel, the app's index of the channels in that bucket and each node's record
//! of what it holds there all live in the channel's bucket, which keeps every atomic decision
//! inside one slot. One Redis uses one bucket.

/// One bucket of the keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket(pub u32);

/// Key and channel names for one node under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    node: String,
    buckets: u32,
}

/// FNV-1a (64 bit) of `parts` joined by `\n`: fixed forever, since every node of a cluster must
/// put a channel in the same bucket.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hash ^= u64::from(b'\n');
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for byte in part.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

impl Keys {
    /// `buckets` is at least 1 (0 counts as 1).
    pub fn new(prefix: &str, node: &str, buckets: u32) -> Self {
        Self {
            prefix: prefix.to_owned(),
            node: node.to_owned(),
            buckets: buckets.max(1),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Every bucket, in order.
    pub fn all_buckets(&self) -> impl Iterator<Item = Bucket> {
        (0..self.buckets).map(Bucket)
    }

    /// How many buckets the keyspace has.
    pub fn bucket_count(&self) -> u32 {
        self.buckets
    }

    fn bucket_of(&self, parts: &[&str]) -> Bucket {
        Bucket((fnv1a(parts) % u64::from(self.buckets)) as u32)
    }

    /// The bucket of everything about one channel of an app.
    pub fn channel_bucket(&self, app_id: &str, channel: &str) -> Bucket {
        self.bucket_of(&[app_id, channel])
    }

    /// The bucket of an app's connection count.
    pub fn app_bucket(&self, app_id: &str) -> Bucket {
        self.bucket_of(&[app_id])
    }

    /// The bucket of a signed-in user of an app.
    pub fn user_bucket(&self, app_id: &str, user_id: &str) -> Bucket {
        self.bucket_of(&[app_id, user_id])
    }

    /// The bucket of one webhook lane of an app's endpoint: lanes spread over buckets, so one
    /// app's webhooks do not pin one shard.
    pub fn lane_bucket(&self, app_id: &str, endpoint: &str, lane: u16) -> Bucket {
        self.bucket_of(&[app_id, endpoint, &lane.to_string()])
    }

    /// The keys of one webhook lane (in its bucket).
    pub fn webhook_lane(&self, app_id: &str, endpoint: &str, lane: u16) -> LaneKeys {
        let shared = self.bucket(self.lane_bucket(app_id, endpoint, lane));
        LaneKeys {
            stream: format!("{}:whq:{app_id}:{endpoint}:{lane}", shared.tag),
            lease: format!("{}:whl:{app_id}:{endpoint}:{lane}", shared.tag),
            member: format!("{endpoint}:{lane}"),
            shared,
        }
    }

    /// The names of one bucket's shared keys.
    pub fn bucket(&self, bucket: Bucket) -> BucketKeys {
        BucketKeys {
            tag: format!("{{{}:{}}}", self.prefix, bucket.0),
        }
    }

    /// The names of one channel's keys (in its bucket).
    pub fn channel(&self, app_id: &str, channel: &str) -> ChannelKeys {
        let bucket = self.channel_bucket(app_id, channel);
        ChannelKeys {
            base: format!("{{{}:{}}}:{{}}:{app_id}:{channel}", self.prefix, bucket.0),
            shared: self.bucket(bucket),
        }
    }

    /// The replay log of the channel a pub/sub channel name (from [`ChannelKeys::events`])
    /// carries: the same name with `log` for `ev`.
    pub fn log_of_event_channel(&self, name: &str) -> Option<String> {
        let rest = name
            .strip_prefix('{')?
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(':')?;
        let (bucket, rest) = rest.split_once("}:ev:")?;
        bucket.parse::<u32>().ok()?;
        Some(format!("{{{}:{bucket}}}:log:{rest}", self.prefix))
    }

    /// The bucket of a channel's pub/sub channel (from [`ChannelKeys::events`]).
    pub fn bucket_of_event_channel(&self, name: &str) -> Option<Bucket> {
        let rest = name
            .strip_prefix('{')?
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(':')?;
        let (bucket, _) = rest.split_once("}:ev:")?;
        bucket.parse().ok().map(Bucket)
    }

    /// The pub/sub channel of the node's readiness probe.
    pub fn probe_channel(&self) -> String {
        format!("{{{}}}:probe:{}", self.prefix, self.node)
    }

    /// The set of registered nodes (same slot as the heartbeats: the reap decision reads both).
    pub fn nodes(&self) -> String {
        format!("{{{}}}:nodes", self.prefix)
    }

    /// HASH node → its incarnation (see `lua/register.lua`).
    pub fn incarnations(&self) -> String {
        format!("{{{}}}:inc", self.prefix)
    }

    /// ZSET "node\nincarnation" → when its reap was decided (ms): reaps under way, which any
    /// node finishes if the reaper dies half-way.
    pub fn reaping(&self) -> String {
        format!("{{{}}}:reaping", self.prefix)
    }

    /// A node's heartbeat key.
    pub fn heartbeat(&self, node: &str) -> String {
        format!("{{{}}}:hb:{}", self.prefix, node)
    }

    /// The counter of an app's cluster-wide per-second budget of one kind (`events`, `reads`).
    pub fn rate(&self, app_id: &str, kind: &str) -> String {
        format!("{}:rate:{}:{}", self.prefix, app_id, kind)
    }
}

/// The keys a bucket's channels, apps and users share, and each node's records there.
#[derive(Debug, Clone)]
pub struct BucketKeys {
    tag: String,
}

impl BucketKeys {
    /// Names the current incarnation of this bucket's state (see `lua/resync.lua`).
    pub fn epoch(&self) -> String {
        format!("{}:epoch", self.tag)
    }

    /// HASH channel → subscriptions cluster-wide, of the app's channels in this bucket.
    pub fn channel_index(&self, app_id: &str) -> String {
        format!("{}:chans:{app_id}", self.tag)
    }

    /// HASH node → open connections of the app (in the app's bucket).
    pub fn connections(&self, app_id: &str) -> String {
        format!("{}:conns:{app_id}", self.tag)
    }

    /// HASH user → signed-in sockets cluster-wide, of the app's users in this bucket.
    pub fn users_total(&self, app_id: &str) -> String {
        format!("{}:ut:{app_id}", self.tag)
    }

    /// HASH "user\nnode" → signed-in sockets of the user on that node.
    pub fn users_per_node(&self, app_id: &str) -> String {
        format!("{}:uc:{app_id}", self.tag)
    }

    /// SET "endpoint:lane" of the app's webhook lanes in this bucket that were ever queued to.
    pub fn webhook_lanes(&self, app_id: &str) -> String {
        format!("{}:whlanes:{app_id}", self.tag)
    }

    /// STREAM of the dead letters of the app's webhook lanes in this bucket.
    pub fn dead_letters(&self, app_id: &str) -> String {
        format!("{}:whd:{app_id}", self.tag)
    }

    /// The stream of the app's lane `member` ("endpoint:lane", from [`Self::webhook_lanes`]).
    pub fn lane_stream(&self, app_id: &str, member: &str) -> String {
        format!("{}:whq:{app_id}:{member}", self.tag)
    }

    /// SET of what `node` holds in this bucket, by kind: `apps`, `chans`, `pres`, `users`; ZSET
    /// `leaves`, the pending leaves it must confirm; STR `inc`, its incarnation.
    pub fn node_record(&self, node: &str, kind: NodeRecord) -> String {
        format!("{}:node:{node}:{}", self.tag, kind.name())
    }
}

/// The keys of one webhook lane (layout in `lua/wh_common.lua`).
#[derive(Debug, Clone)]
pub struct LaneKeys {
    /// STREAM of the lane's jobs.
    pub stream: String,
    /// STR: the node holding the lane's lease.
    pub lease: String,
    /// The lane's member in its bucket's set of the app's lanes: `endpoint:lane`.
    pub member: String,
    /// The keys of the lane's bucket.
    pub shared: BucketKeys,
}

/// The records a node keeps per bucket (see `lua/common.lua` for their members).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRecord {
    Apps,
    Channels,
    Presence,
    Users,
    Leaves,
    /// STR: the incarnation the node last resynced the bucket under.
    Incarnation,
}

impl NodeRecord {
    fn name(self) -> &'static str {
        match self {
            NodeRecord::Apps => "apps",
            NodeRecord::Channels => "chans",
            NodeRecord::Presence => "pres",
            NodeRecord::Users => "users",
            NodeRecord::Leaves => "leaves",
            NodeRecord::Incarnation => "inc",
        }
    }
}

/// The keys of one channel of an app.
#[derive(Debug, Clone)]
pub struct ChannelKeys {
    /// `{P:b}:{}:app:channel`, the `{}` replaced by the kind of key.
    base: String,
    pub shared: BucketKeys,
}

impl ChannelKeys {
    fn named(&self, kind: &str) -> String {
        self.base.replacen("{}", kind, 1)
    }

    /// The pub/sub channel carrying the channel's events.
    pub fn events(&self) -> String {
        self.named("ev")
    }

    /// The replay log (a stream of recent envelopes, see `replay`).
    pub fn log(&self) -> String {
        self.named("log")
    }

    /// Numbers the replay log's messages (1, 2, ...; it expires with the log), so a reader that
    /// finds entries trimmed knows how many it missed.
    pub fn log_counter(&self) -> String {
        self.named("logn")
    }

    /// The cached event (cache channels).
    pub fn cache(&self) -> String {
        self.named("cache")
    }

    /// Held for a few seconds after a cache miss was reported.
    pub fn cache_miss(&self) -> String {
        self.named("cachemiss")
    }

    /// HASH node → subscriptions on that node.
    pub fn subscriptions(&self) -> String {
        self.named("chan")
    }

    /// Token of a pending vacancy.
    pub fn vacancy(&self) -> String {
        self.named("vac")
    }

    /// Claim on the next subscription_count update.
    pub fn count_claim(&self) -> String {
        self.named("scc")
    }

    /// HASH user → user_info JSON: the presence members.
    pub fn members(&self) -> String {
        self.named("pm")
    }

    /// HASH user → sockets cluster-wide.
    pub fn member_sockets(&self) -> String {
        self.named("pt")
    }

    /// HASH "user\nnode" → sockets of the user on that node.
    pub fn member_sockets_per_node(&self) -> String {
        self.named("pc")
    }

    /// SET "user\nsocket": the presence sockets `node` holds on the channel.
    pub fn node_sockets(&self, node: &str) -> String {
        format!("{}:{node}", self.named("ps"))
    }

    /// The presence sequence.
    pub fn presence_seq(&self) -> String {
        self.named("pseq")
    }

    /// Token of a pending departure of `user`.
    pub fn departure(&self, user: &str) -> String {
        format!("{}:{user}", self.named("gone"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis Cluster's slot of a key (CRC16/XMODEM of its hash tag, mod 16384): the property
    /// the layout exists for.
    fn slot(key: &str) -> u16 {
        let bytes = key.as_bytes();
        let tagged = key
            .find('{')
            .and_then(|open| key[open + 1..].find('}').map(|len| (open + 1, len)))
            .filter(|(_, len)| *len > 0)
            .map(|(start, len)| &bytes[start..start + len]);
        let mut crc: u16 = 0;
        for &b in tagged.unwrap_or(bytes) {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc % 16384
    }

    #[test]
    fn crc16_matches_redis() {
        // Values from CLUSTER KEYSLOT.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("123456789"), 12739);
    }

    #[test]
    fn a_channel_and_its_bucket_records_share_one_slot() {
        let k = Keys::new("fc", "node-a", 64);
        let c = k.channel("app", "presence-room");
        let keys = [
            c.events(),
            c.log(),
            c.log_counter(),
            c.cache(),
            c.cache_miss(),
            c.subscriptions(),
            c.vacancy(),
            c.count_claim(),
            c.members(),
            c.member_sockets(),
            c.member_sockets_per_node(),
            c.node_sockets("node-b"),
            c.presence_seq(),
            c.departure("u:1"),
            c.shared.channel_index("app"),
            c.shared.epoch(),
            c.shared.node_record("node-b", NodeRecord::Channels),
            c.shared.node_record("node-b", NodeRecord::Leaves),
        ];
        let first = slot(&keys[0]);
        for key in &keys {
            assert_eq!(slot(key), first, "{key}");
        }
        let app = k.bucket(k.app_bucket("app"));
        assert_eq!(
            slot(&app.connections("app")),
            slot(&app.node_record("node-b", NodeRecord::Apps))
        );
        assert_eq!(slot(&k.nodes()), slot(&k.heartbeat("node-z")));
        assert_eq!(slot(&k.nodes()), slot(&k.incarnations()));
        let lane = k.webhook_lane("app", "e1", 3);
        let b = &lane.shared;
        for key in [
            &lane.lease,
            &b.webhook_lanes("app"),
            &b.dead_letters("app"),
            &b.lane_stream("app", &lane.member),
        ] {
            assert_eq!(slot(key), slot(&lane.stream), "{key}");
        }
        assert_eq!(slot(&k.nodes()), slot(&k.reaping()));
    }

    #[test]
    fn names_are_distinct_per_app_channel_and_kind() {
        let k = Keys::new("fc", "node-a", 1);
        let c = k.channel("1", "a:b");
        assert_eq!(c.events(), "{fc:0}:ev:1:a:b");
        assert_eq!(c.log(), "{fc:0}:log:1:a:b");
        assert_eq!(c.departure("u"), "{fc:0}:gone:1:a:b:u");
        assert_eq!(c.node_sockets("n"), "{fc:0}:ps:1:a:b:n");
        assert_ne!(k.channel("1", "a").events(), k.channel("2", "a").events());
        assert_eq!(k.nodes(), "{fc}:nodes");
        assert_eq!(k.heartbeat("node-b"), "{fc}:hb:node-b");
        assert_eq!(k.probe_channel(), "{fc}:probe:node-a");
        assert_ne!(k.rate("1", "events"), k.rate("1", "reads"));
        assert_eq!(k.log_of_event_channel(&c.events()), Some(c.log()));
        assert_eq!(k.log_of_event_channel("{other:0}:ev:1:a"), None);
        assert_eq!(k.log_of_event_channel("{fc}:probe:node-a"), None);
        assert_eq!(k.bucket_of_event_channel(&c.events()), Some(Bucket(0)));
        assert_eq!(k.bucket_of_event_channel("{fc}:probe:node-a"), None);
    }

    #[test]
    fn buckets_spread_channels_and_stay_fixed() {
        let k = Keys::new("fc", "n", 16);
        let mut seen = std::collections::HashSet::new();
        for i in 0..400 {
            seen.insert(k.channel_bucket("app", &format!("room-{i}")));
        }
        assert_eq!(seen.len(), 16, "400 channels reach every one of 16 buckets");
        // Fixed forever: a change would split a running cluster's view of its keys.
        assert_eq!(fnv1a(&["app", "room-1"]), fnv1a(&["app", "room-1"]));
        assert_eq!(fnv1a(&[""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(Keys::new("fc", "n", 1).channel_bucket("a", "b"), Bucket(0));
    }
}
