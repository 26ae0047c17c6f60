//! Webhooks (reference §10): the events a node reports to the app server, the request body
//! and its signature.
//!
//! The body is built once per request and signed over its exact bytes; the receiver (the
//! official SDKs' `webhook().isValid()`) recomputes the HMAC over what it received.

use serde::Serialize;

use crate::signature;

/// `Content-Type` of every webhook request. The Node SDK refuses anything else, even with a
/// `charset` parameter.
pub const CONTENT_TYPE: &str = "application/json";
/// Header carrying the app key.
pub const KEY_HEADER: &str = "X-Pusher-Key";
/// Header carrying the lowercase hex HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "X-Pusher-Signature";

/// One webhook event, serialized with `name` first as in the reference's examples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum WebhookEvent {
    /// A channel went from no subscriber to one, cluster-wide.
    ChannelOccupied { channel: String },
    /// A channel lost its last subscriber and stayed empty for the leave delay.
    ChannelVacated { channel: String },
    /// A user's first connection joined a presence channel.
    MemberAdded { channel: String, user_id: String },
    /// A user's last connection left a presence channel and did not return within the delay.
    MemberRemoved { channel: String, user_id: String },
    /// A client event was accepted; `data` is the string relayed on the wire.
    ClientEvent {
        channel: String,
        event: String,
        data: String,
        socket_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
    },
    /// A socket subscribed to a cache channel with nothing cached (reported at most once per
    /// channel every few seconds, cluster-wide).
    CacheMiss { channel: String },
    /// A non-presence channel's subscription count changed (apps with
    /// `enable_subscription_count`; coalesced like the frame).
    SubscriptionCount { channel: String, subscription_count: u64 },
}

impl WebhookEvent {
    /// The event's `name`, as configured in a webhook's `events` filter.
    pub fn name(&self) -> &'static str {
        match self {
            WebhookEvent::ChannelOccupied { .. } => "channel_occupied",
            WebhookEvent::ChannelVacated { .. } => "channel_vacated",
            WebhookEvent::MemberAdded { .. } => "member_added",
            WebhookEvent::MemberRemoved { .. } => "member_removed",
            WebhookEvent::ClientEvent { .. } => "client_event",
            WebhookEvent::CacheMiss { .. } => "cache_miss",
            WebhookEvent::SubscriptionCount { .. } => "subscription_count",
        }
    }

    /// The channel the event is about (every event has one): the key that keeps the events of
    /// one channel in order.
    pub fn channel(&self) -> &str {
        match self {
            WebhookEvent::ChannelOccupied { channel }
            | WebhookEvent::ChannelVacated { channel }
            | WebhookEvent::MemberAdded { channel, .. }
            | WebhookEvent::MemberRemoved { channel, .. }
            | WebhookEvent::ClientEvent { channel, .. }
            | WebhookEvent::CacheMiss { channel } => channel,
            WebhookEvent::SubscriptionCount { channel, .. } => channel,
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    time_ms: u64,
    events: &'a [WebhookEvent],
}

/// The request body: `time_ms` is when the (first) event was created, not when it is sent, so
/// receivers can tell a delayed delivery.
pub fn body(time_ms: u64, events: &[WebhookEvent]) -> String {
    // Serializing plain strings and integers cannot fail.
    serde_json::to_string(&Body { time_ms, events }).unwrap_or_default()
}

/// `X-Pusher-Signature` for `body`: hex HMAC-SHA256 keyed with the app secret.
pub fn sign(secret: &str, body: &str) -> String {
    signature::sign(secret, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_name_first() {
        let e = WebhookEvent::MemberRemoved {
            channel: "presence-room-7".into(),
            user_id: "u-17".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"name":"member_removed","channel":"presence-room-7","user_id":"u-17"}"#
        );
        assert_eq!(e.name(), "member_removed");
        assert_eq!(e.channel(), "presence-room-7");
    }

    #[test]
    fn cache_miss_names_its_channel() {
        let e = WebhookEvent::CacheMiss {
            channel: "cache-a".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"name":"cache_miss","channel":"cache-a"}"#
        );
        assert_eq!(e.name(), "cache_miss");
    }

    #[test]
    fn subscription_count_has_the_reference_shape() {
        let e = WebhookEvent::SubscriptionCount {
            channel: "my-channel".into(),
            subscription_count: 3,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"name":"subscription_count","channel":"my-channel","subscription_count":3}"#
        );
        assert_eq!(e.name(), "subscription_count");
    }

    #[test]
    fn client_event_omits_user_id_off_presence() {
        let e = WebhookEvent::ClientEvent {
            channel: "private-a".into(),
            event: "client-x".into(),
            data: "{\"a\":1}".into(),
            socket_id: "1.2".into(),
            user_id: None,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"name":"client_event","channel":"private-a","event":"client-x","data":"{\"a\":1}","socket_id":"1.2"}"#
        );
    }
}
