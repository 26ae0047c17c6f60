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
    /// Every kind, for metrics exported from the start (see [`Limit::ALL`]).
    pub const ALL: [MessageKind; 3] = [MessageKind::ClientEvent, MessageKind::ApiEvent, MessageKind::Protocol];

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
    /// Every limit, so metrics can export each one at zero from the start. A new variant must
    /// be added here too: the `every_variant_is_listed` test fails otherwise.
    pub const ALL: [Limit; 13] = [
        Limit::ConnectionQuota,
        Limit::ClientEventRate,
        Limit::ClientEventSize,
        Limit::PresenceMembers,
        Limit::PresenceMemberSize,
        Limit::ChannelNameLength,
        Limit::BackendEventRate,
        Limit::ReadRequestRate,
        Limit::EventPayloadSize,
        Limit::EventChannels,
        Limit::BatchSize,
        Limit::SubscriptionsPerConnection,
        Limit::SubscriptionRate,
    ];

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
    /// Every outcome, for metrics exported from the start (see [`Limit::ALL`]).
    pub const ALL: [CacheReplay; 3] = [CacheReplay::Hit, CacheReplay::Miss, CacheReplay::Unavailable];

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

    /// The position of each variant in its `ALL` list. The matches are exhaustive, so a new
    /// variant does not compile until it has a position here, and the test below then fails
    /// until `ALL` lists it there.
    fn limit_position(l: Limit) -> usize {
        use Limit::*;
        match l {
            ConnectionQuota => 0,
            ClientEventRate => 1,
            ClientEventSize => 2,
            PresenceMembers => 3,
            PresenceMemberSize => 4,
            ChannelNameLength => 5,
            BackendEventRate => 6,
            ReadRequestRate => 7,
            EventPayloadSize => 8,
            EventChannels => 9,
            BatchSize => 10,
            SubscriptionsPerConnection => 11,
            SubscriptionRate => 12,
        }
    }

    fn kind_position(k: MessageKind) -> usize {
        match k {
            MessageKind::ClientEvent => 0,
            MessageKind::ApiEvent => 1,
            MessageKind::Protocol => 2,
        }
    }

    fn replay_position(r: CacheReplay) -> usize {
        match r {
            CacheReplay::Hit => 0,
            CacheReplay::Miss => 1,
            CacheReplay::Unavailable => 2,
        }
    }

    fn assert_listed<T: Copy + std::fmt::Debug>(all: &[T], position: fn(T) -> usize, label: fn(T) -> &'static str) {
        let positions: Vec<usize> = all.iter().map(|v| position(*v)).collect();
        assert_eq!(
            positions,
            (0..all.len()).collect::<Vec<_>>(),
            "ALL must list every variant once, in order"
        );
        let mut labels: Vec<&str> = all.iter().map(|v| label(*v)).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), all.len(), "labels must be distinct");
    }

    #[test]
    fn every_variant_is_listed() {
        assert_listed(&Limit::ALL, limit_position, Limit::label);
        assert_listed(&MessageKind::ALL, kind_position, MessageKind::label);
        assert_listed(&CacheReplay::ALL, replay_position, CacheReplay::label);
    }
}
