//! What a node reports about its own work, for metrics. The node core stays free of any
//! metrics library: the server implements [`NodeObserver`] with Prometheus.

/// Which kind of message a frame carries, by event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// `client-*` events relayed between sockets.
    ClientEvent,
    /// Events published through the REST API.
    ApiEvent,
    /// `pusher:*` / `pusher_internal:*` frames (presence changes, replies).
    Protocol,
}

impl MessageKind {
    pub fn of(event: &str) -> Self {
        if event.starts_with("client-") {
            MessageKind::ClientEvent
        } else if event.starts_with("pusher:") || event.starts_with("pusher_internal:") {
            MessageKind::Protocol
        } else {
            MessageKind::ApiEvent
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            MessageKind::ClientEvent => "client_event",
            MessageKind::ApiEvent => "api_event",
            MessageKind::Protocol => "protocol",
        }
    }
}

/// A limit that refused something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    ConnectionQuota,
    ClientEventRate,
    ClientEventSize,
    PresenceMembers,
    PresenceMemberSize,
    ChannelNameLength,
    BackendEventRate,
    ReadRequestRate,
    EventPayloadSize,
    EventChannels,
    BatchSize,
    SubscriptionsPerConnection,
    SubscriptionRate,
}

impl Limit {
    pub fn label(self) -> &'static str {
        match self {
            Limit::ConnectionQuota => "max_connections",
            Limit::ClientEventRate => "max_client_events_per_second",
            Limit::ClientEventSize => "client_event_payload",
            Limit::PresenceMembers => "max_presence_members_per_channel",
            Limit::PresenceMemberSize => "max_presence_member_size_kb",
            Limit::ChannelNameLength => "max_channel_name_length",
            Limit::BackendEventRate => "max_backend_events_per_second",
            Limit::ReadRequestRate => "max_read_requests_per_second",
            Limit::EventPayloadSize => "max_event_payload_kb",
            Limit::EventChannels => "max_event_channels_at_once",
            Limit::BatchSize => "max_event_batch_size",
            Limit::SubscriptionsPerConnection => "max_subscriptions_per_connection",
            Limit::SubscriptionRate => "max_subscription_requests_per_second",
        }
    }
}

/// What a new subscriber of a cache channel was sent after its success frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheReplay {
    /// The cached event.
    Hit,
    /// `pusher:cache_miss`.
    Miss,
    /// Nothing: the cache could not be read.
    Unavailable,
}

impl CacheReplay {
    pub fn label(self) -> &'static str {
        match self {
            CacheReplay::Hit => "hit",
            CacheReplay::Miss => "miss",
            CacheReplay::Unavailable => "unavailable",
        }
    }
}

/// Receives the node's measurements. Every method has a no-op default.
pub trait NodeObserver: Send + Sync {
    /// One message was queued to `recipients` local sockets, `latency_s` after it was published
    /// (on this or another node).
    fn delivered(&self, _app_id: &str, _kind: MessageKind, _recipients: usize, _latency_s: f64) {}
    /// Something was refused by `limit`.
    fn limit_rejected(&self, _app_id: &str, _limit: Limit) {}
    /// Authentication was denied (see [`crate::audit`]).
    fn auth_denied(&self, _reason: crate::audit::AuthDenial) {}
    /// A new subscriber of a cache channel got `outcome`.
    fn cache_replayed(&self, _app_id: &str, _outcome: CacheReplay) {}
    /// This node published one coalesced `subscription_count` update of a channel.
    fn subscription_count_published(&self, _app_id: &str) {}
    /// The node resynced its registrations because a cluster-state write failed or timed out.
    fn registrations_repaired(&self) {}
}

/// Observes nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl NodeObserver for NoObserver {}

pub use crate::clock::unix_micros;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_event_names() {
        assert_eq!(MessageKind::of("client-typing"), MessageKind::ClientEvent);
        assert_eq!(MessageKind::of("pusher_internal:member_added"), MessageKind::Protocol);
        assert_eq!(MessageKind::of("order-shipped"), MessageKind::ApiEvent);
    }
}
