//! Server → client frames (reference §1.2, §1.4, §1.6, §3.3–3.5).
//!
//! `data` is always a string on the wire; members are emitted in the order `event`, `data`,
//! `channel`, `user_id` because some clients match on the raw prefix. Each function returns the
//! JSON text of one frame; the broker wraps it into a WebSocket frame once and shares the bytes
//! with every recipient.

use serde::Serialize;

use crate::json::push_str_literal;

/// A server → client frame. Serialise with [`ServerMessage::to_json`].
#[derive(Debug, Clone, Serialize)]
pub struct ServerMessage<'a> {
    pub event: &'a str,
    pub data: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<&'a str>,
}

impl ServerMessage<'_> {
    /// The frame's JSON text, byte-identical to `serde_json::to_string(self)` but written
    /// directly (this runs once per published event, so it avoids the serializer machinery).
    pub fn to_json(&self) -> String {
        let extra = self.channel.map_or(0, str::len) + self.user_id.map_or(0, str::len);
        let mut out = String::with_capacity(48 + self.event.len() + self.data.len() * 9 / 8 + extra);
        out.push_str("{\"event\":");
        push_str_literal(&mut out, self.event);
        out.push_str(",\"data\":");
        push_str_literal(&mut out, self.data);
        if let Some(channel) = self.channel {
            out.push_str(",\"channel\":");
            push_str_literal(&mut out, channel);
        }
        if let Some(user_id) = self.user_id {
            out.push_str(",\"user_id\":");
            push_str_literal(&mut out, user_id);
        }
        out.push('}');
        out
    }
}

/// `pusher:connection_established` with `{"socket_id":…,"activity_timeout":…}` as string data.
/// pusher-js aborts the handshake unless `activity_timeout` is a positive integer.
pub fn connection_established(socket_id: &str, activity_timeout_s: u64) -> String {
    let mut data = String::from("{\"socket_id\":");
    push_str_literal(&mut data, socket_id);
    data.push_str(",\"activity_timeout\":");
    data.push_str(&activity_timeout_s.to_string());
    data.push('}');
    frame("pusher:connection_established", &data, None)
}

/// A frame without `user_id`.
fn frame(event: &str, data: &str, channel: Option<&str>) -> String {
    ServerMessage {
        event,
        data,
        channel,
        user_id: None,
    }
    .to_json()
}

/// `pusher:error` with `{"code":code|null,"message":message}` as string data.
/// `None` gives `"code":null`, as the official service sends for subscription failures.
pub fn error(code: Option<u16>, message: &str) -> String {
    let mut data = String::from("{\"code\":");
    match code {
        Some(code) => data.push_str(&code.to_string()),
        None => data.push_str("null"),
    }
    data.push_str(",\"message\":");
    push_str_literal(&mut data, message);
    data.push('}');
    frame("pusher:error", &data, None)
}

/// `{"event":"pusher:ping","data":"{}"}`.
pub fn ping() -> String {
    r#"{"event":"pusher:ping","data":"{}"}"#.to_owned()
}

/// `{"event":"pusher:pong","data":"{}"}`.
pub fn pong() -> String {
    r#"{"event":"pusher:pong","data":"{}"}"#.to_owned()
}

/// `pusher_internal:subscription_succeeded`; `data` is `"{}"` or a presence roster
/// (see [`crate::presence::roster_json`]).
pub fn subscription_succeeded(channel: &str, data: &str) -> String {
    frame("pusher_internal:subscription_succeeded", data, Some(channel))
}

/// Category of a broker-side subscription failure, sent as `type` in
/// `pusher:subscription_error`, with an HTTP-like `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionErrorKind {
    /// Missing, malformed or wrong `auth` signature: `AuthError`, 401.
    Auth,
    /// Invalid or reserved channel name: `InvalidChannel`, 400.
    InvalidChannel,
    /// Presence `channel_data` missing or malformed: `InvalidChannelData`, 400.
    InvalidChannelData,
    /// Presence channel full, member too large or too many subscriptions: `LimitReached`, 403.
    LimitReached,
    /// Too many subscribe requests per second: `LimitReached`, 429 (retry later).
    RateLimited,
    /// The backplane could not register the subscription: `ServerError`, 503.
    Unavailable,
}

impl SubscriptionErrorKind {
    /// The `type` string: pusher-js forwards it to `pusher:subscription_error` listeners, which
    /// already see `AuthError` for auth-endpoint failures, so broker failures use the same shape.
    pub fn type_name(self) -> &'static str {
        match self {
            SubscriptionErrorKind::Auth => "AuthError",
            SubscriptionErrorKind::InvalidChannel => "InvalidChannel",
            SubscriptionErrorKind::InvalidChannelData => "InvalidChannelData",
            SubscriptionErrorKind::LimitReached | SubscriptionErrorKind::RateLimited => "LimitReached",
            SubscriptionErrorKind::Unavailable => "ServerError",
        }
    }

    /// The HTTP-like `status` listeners use to tell retryable failures (503) from refusals.
    pub fn status(self) -> u16 {
        match self {
            SubscriptionErrorKind::Auth => 401,
            SubscriptionErrorKind::InvalidChannel | SubscriptionErrorKind::InvalidChannelData => 400,
            SubscriptionErrorKind::LimitReached => 403,
            SubscriptionErrorKind::RateLimited => 429,
            SubscriptionErrorKind::Unavailable => 503,
        }
    }
}

/// `pusher:subscription_error` on `channel` with `{"type":…,"error":…,"status":…}` string data.
pub fn subscription_error(channel: &str, kind: SubscriptionErrorKind, message: &str) -> String {
    let mut data = String::from("{\"type\":");
    push_str_literal(&mut data, kind.type_name());
    data.push_str(",\"error\":");
    push_str_literal(&mut data, message);
    data.push_str(",\"status\":");
    data.push_str(&kind.status().to_string());
    data.push('}');
    frame("pusher:subscription_error", &data, Some(channel))
}

/// `pusher_internal:member_added` with `{"user_id":…,"user_info":…}`; `user_info_json` is the
/// member's `user_info` as JSON text (`null` when it had none).
pub fn member_added(channel: &str, user_id: &str, user_info_json: &str) -> String {
    let data = member_added_data(user_id, user_info_json);
    frame("pusher_internal:member_added", &data, Some(channel))
}

/// The `data` string of `member_added`, `{"user_id":…,"user_info":…}` (for a backplane message
/// whose frame is built on the receiving node).
/// `user_info_json` is inserted as raw JSON; an empty one is treated as `null` so the data
/// stays valid JSON.
pub fn member_added_data(user_id: &str, user_info_json: &str) -> String {
    let user_info = if user_info_json.is_empty() {
        "null"
    } else {
        user_info_json
    };
    let mut data = String::with_capacity(32 + user_id.len() + user_info.len());
    data.push_str("{\"user_id\":");
    push_str_literal(&mut data, user_id);
    data.push_str(",\"user_info\":");
    data.push_str(user_info);
    data.push('}');
    data
}

/// The `data` string of `member_removed`, `{"user_id":…}`.
pub fn member_removed_data(user_id: &str) -> String {
    let mut data = String::from("{\"user_id\":");
    push_str_literal(&mut data, user_id);
    data.push('}');
    data
}

/// The `data` string of `pusher_internal:subscription_count`, `{"subscription_count":N}`.
pub fn subscription_count_data(count: u64) -> String {
    format!("{{\"subscription_count\":{count}}}")
}

/// `pusher_internal:member_removed` with `{"user_id":…}`.
pub fn member_removed(channel: &str, user_id: &str) -> String {
    let data = member_removed_data(user_id);
    frame("pusher_internal:member_removed", &data, Some(channel))
}

/// `pusher:cache_miss` for a new subscriber of a cache channel with nothing cached (§7). The
/// `data` member is undocumented and ignored by pusher-js; `"{}"` keeps strict clients happy.
pub fn cache_miss(channel: &str) -> String {
    channel_event("pusher:cache_miss", channel, "{}", None)
}

/// An application or client event on a channel; `user_id` only for client events on presence
/// channels.
/// `data` is forwarded as the publisher's exact string (escaped once as a JSON string member).
pub fn channel_event(event: &str, channel: &str, data: &str, user_id: Option<&str>) -> String {
    ServerMessage {
        event,
        data,
        channel: Some(channel),
        user_id,
    }
    .to_json()
}
