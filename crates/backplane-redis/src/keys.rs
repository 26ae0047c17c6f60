//! Names of Redis keys and pub/sub channels. The layout of the keys the scripts use is
//! documented in `src/lua/common.lua`.

/// Key and channel names for one node under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    node: String,
}

impl Keys {
    pub fn new(prefix: &str, node: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            node: node.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The pub/sub channel carrying an app channel's events.
    pub fn event_channel(&self, app_id: &str, channel: &str) -> String {
        format!("{}:ev:{}:{}", self.prefix, app_id, channel)
    }

    /// An app channel's replay log (a stream of its recent envelopes, see `replay`).
    pub fn log(&self, app_id: &str, channel: &str) -> String {
        format!("{}:log:{}:{}", self.prefix, app_id, channel)
    }

    /// Numbers the messages of an app channel's replay log (1, 2, ...; it expires with the
    /// log), so a reader that finds entries trimmed knows how many it missed.
    pub fn log_counter(&self, app_id: &str, channel: &str) -> String {
        format!("{}:logn:{}:{}", self.prefix, app_id, channel)
    }

    /// The replay log of the app channel a pub/sub channel name (from
    /// [`event_channel`](Self::event_channel)) carries.
    pub fn log_of_event_channel(&self, name: &str) -> Option<String> {
        let rest = name.strip_prefix(&self.prefix)?.strip_prefix(":ev:")?;
        Some(format!("{}:log:{}", self.prefix, rest))
    }

    /// Names the current incarnation of the cluster state (see `lua/resync.lua`).
    pub fn epoch(&self) -> String {
        format!("{}:epoch", self.prefix)
    }

    /// An app channel's cached event (cache channels, `SET PX` with the publish).
    pub fn cache(&self, app_id: &str, channel: &str) -> String {
        format!("{}:cache:{}:{}", self.prefix, app_id, channel)
    }

    /// Held for a few seconds after a channel's cache miss was reported (`SET NX PX`), so a
    /// burst of subscribers yields one `cache_miss` webhook.
    pub fn cache_miss(&self, app_id: &str, channel: &str) -> String {
        format!("{}:cachemiss:{}:{}", self.prefix, app_id, channel)
    }

    /// The node's private channel, used to prove a publish comes back before reporting ready.
    pub fn probe_channel(&self) -> String {
        format!("{}:probe:{}", self.prefix, self.node)
    }

    /// The set of registered nodes.
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// The counter of an app's cluster-wide per-second budget of one kind (`events`, `reads`).
    pub fn rate(&self, app_id: &str, kind: &str) -> String {
        format!("{}:rate:{}:{}", self.prefix, app_id, kind)
    }

    /// A node's heartbeat key.
    pub fn heartbeat(&self, node: &str) -> String {
        format!("{}:hb:{}", self.prefix, node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_distinct_per_app_and_channel() {
        let k = Keys::new("fc", "node-a");
        assert_eq!(k.event_channel("1", "presence-x"), "fc:ev:1:presence-x");
        assert_ne!(k.event_channel("1", "a"), k.event_channel("2", "a"));
        assert_eq!(k.probe_channel(), "fc:probe:node-a");
        assert_eq!(k.heartbeat("node-b"), "fc:hb:node-b");
        assert_eq!(k.nodes(), "fc:nodes");
        assert_eq!(k.rate("1", "events"), "fc:rate:1:events");
        assert_ne!(k.rate("1", "events"), k.rate("1", "reads"));
        assert_eq!(k.cache("1", "cache-a"), "fc:cache:1:cache-a");
        assert_ne!(k.cache("1", "cache-a"), k.cache_miss("1", "cache-a"));
        assert_eq!(k.log("1", "a:b"), "fc:log:1:a:b");
        assert_eq!(k.log_counter("1", "a:b"), "fc:logn:1:a:b");
        assert_eq!(
            k.log_of_event_channel(&k.event_channel("1", "a:b")),
            Some(k.log("1", "a:b"))
        );
        assert_eq!(k.log_of_event_channel("other:ev:1:a"), None);
        assert_eq!(k.epoch(), "fc:epoch");
    }
}
