//! Client → server frames (reference §1.4, §3, §4, §6.1).
//!
//! pusher-js sends `data` as a JSON object; other clients send it as a string holding JSON.
//! Both are accepted for every `pusher:*` command. Unknown `pusher:*` events are ignored (the
//! caller gets [`ClientMessage::IgnoredPusherEvent`]) so that newer clients keep working.

use thiserror::Error;

/// `pusher:subscribe` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub channel: String,
    /// `None` when absent; pusher-js sends `""` for public channels.
    pub auth: Option<String>,
    /// The exact `channel_data` string received (it is hashed as received, never re-serialised).
    pub channel_data: Option<String>,
}

/// A `client-*` event sent by a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEvent {
    pub event: String,
    pub channel: String,
    /// `data` normalised to a string: a JSON string is taken unchanged (unescaped), any other
    /// JSON value becomes its compact JSON text; absent `data` becomes `""`.
    pub data: String,
}

/// One parsed client frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    Ping,
    Pong,
    Subscribe(Subscribe),
    Unsubscribe { channel: String },
    /// `pusher:signin` with the exact `user_data` string.
    Signin { auth: String, user_data: String },
    ClientEvent(ClientEvent),
    /// A `pusher:*` event this node does not know; ignored without an error.
    IgnoredPusherEvent(String),
}

/// Why a frame could not be understood. The message is sent back in a `pusher:error`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("frame is not valid JSON")]
    InvalidJson,
    #[error("frame is not a JSON object")]
    NotAnObject,
    #[error("frame has no string 'event' member")]
    MissingEvent,
    #[error("'{event}' needs a 'data' object (or a string holding one)")]
    InvalidData { event: String },
    #[error("'{event}' needs a string '{field}'")]
    MissingField { event: String, field: &'static str },
    #[error("unknown event '{0}': only pusher:* commands and client-* events are accepted")]
    UnknownEvent(String),
}

/// Parse one text frame. Never panics, whatever the input.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ParseError> {
    todo!("{text}")
}
