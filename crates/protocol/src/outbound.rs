//! Server → client frames (reference §1.2, §1.4, §1.6, §3.3–3.5).
//!
//! `data` is always a string on the wire; members are emitted in the order `event`, `data`,
//! `channel`, `user_id` because some clients match on the raw prefix. Each function returns the
//! JSON text of one frame; the broker wraps it into a WebSocket frame once and shares the bytes
//! with every recipient.

use serde::Serialize;

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
    /// The frame's JSON text.
    pub fn to_json(&self) -> String {
        todo!()
    }
}

/// `pusher:connection_established` with `{"socket_id":…,"activity_timeout":…}` as string data.
pub fn connection_established(socket_id: &str, activity_timeout_s: u64) -> String {
    todo!("{socket_id}{activity_timeout_s}")
}

/// `pusher:error` with `{"code":code|null,"message":message}` as string data.
pub fn error(code: Option<u16>, message: &str) -> String {
    todo!("{code:?}{message}")
}

/// `{"event":"pusher:ping","data":"{}"}`.
pub fn ping() -> String {
    todo!()
}

/// `{"event":"pusher:pong","data":"{}"}`.
pub fn pong() -> String {
    todo!()
}

/// `pusher_internal:subscription_succeeded`; `data` is `"{}"` or a presence roster
/// (see [`crate::presence::roster_json`]).
pub fn subscription_succeeded(channel: &str, data: &str) -> String {
    todo!("{channel}{data}")
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
    /// Presence channel full or member too large: `LimitReached`, 403.
    LimitReached,
    /// The backplane could not register the subscription: `ServerError`, 503.
    Unavailable,
}

impl SubscriptionErrorKind {
    pub fn type_name(self) -> &'static str {
        todo!()
    }
    pub fn status(self) -> u16 {
        todo!()
    }
}

/// `pusher:subscription_error` on `channel` with `{"type":…,"error":…,"status":…}` string data.
pub fn subscription_error(channel: &str, kind: SubscriptionErrorKind, message: &str) -> String {
    todo!("{channel}{kind:?}{message}")
}

/// `pusher_internal:member_added` with `{"user_id":…,"user_info":…}`; `user_info_json` is the
/// member's `user_info` as JSON text (`null` when it had none).
pub fn member_added(channel: &str, user_id: &str, user_info_json: &str) -> String {
    todo!("{channel}{user_id}{user_info_json}")
}

/// `pusher_internal:member_removed` with `{"user_id":…}`.
pub fn member_removed(channel: &str, user_id: &str) -> String {
    todo!("{channel}{user_id}")
}

/// An application or client event on a channel; `user_id` only for client events on presence
/// channels.
pub fn channel_event(event: &str, channel: &str, data: &str, user_id: Option<&str>) -> String {
    todo!("{event}{channel}{data}{user_id:?}")
}
