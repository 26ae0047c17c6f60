//! Client → server frames (reference §1.4, §3, §4, §6.1).
//!
//! pusher-js sends `data` as a JSON object; other clients send it as a string holding JSON.
//! Both are accepted for every `pusher:*` command. Unknown `pusher:*` events are ignored (the
//! caller gets [`ClientMessage::IgnoredPusherEvent`]) so that newer clients keep working.

use serde_json::value::RawValue;
use thiserror::Error;

use crate::channel::is_client_event;
use crate::json::{self, Kind};

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
    Unsubscribe {
        channel: String,
    },
    /// `pusher:signin` with the exact `user_data` string.
    Signin {
        auth: String,
        user_data: String,
    },
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
///
/// Only `event`, `channel` and `data` are read; other members are skipped without being
/// decoded (and without recursion, so deeply nested junk costs nothing but a scan). For
/// duplicated members the last one wins, as with `JSON.parse` in pusher-js.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ParseError> {
    let [event, channel, data] = envelope(text)?;
    let event = event.and_then(json::decode_string).ok_or(ParseError::MissingEvent)?;
    match event.as_str() {
        "pusher:ping" => Ok(ClientMessage::Ping),
        "pusher:pong" => Ok(ClientMessage::Pong),
        "pusher:subscribe" => parse_subscribe(&event, data).map(ClientMessage::Subscribe),
        "pusher:unsubscribe" => with_command(&event, data, ["channel"], |[channel]| {
            let channel = required_string(&event, "channel", channel)?;
            Ok(ClientMessage::Unsubscribe { channel })
        }),
        "pusher:signin" => with_command(&event, data, ["auth", "user_data"], |[auth, user_data]| {
            let auth = required_string(&event, "auth", auth)?;
            let user_data = json_text(user_data)
                .ok()
                .flatten()
                .ok_or_else(|| missing_field(&event, "user_data"))?;
            Ok(ClientMessage::Signin { auth, user_data })
        }),
        _ if is_client_event(&event) => parse_client_event(event, channel, data),
        _ if event.starts_with("pusher:") => Ok(ClientMessage::IgnoredPusherEvent(event)),
        _ => Err(ParseError::UnknownEvent(event)),
    }
}

/// The `event`, `channel` and `data` members of the frame object.
fn envelope(text: &str) -> Result<[Option<&RawValue>; 3], ParseError> {
    json::pick_members(text, ["event", "channel", "data"]).map_err(|_| {
        let looks_like_object = text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{');
        if !looks_like_object && json::is_valid(text) {
            ParseError::NotAnObject
        } else {
            ParseError::InvalidJson
        }
    })
}

fn parse_subscribe(event: &str, data: Option<&RawValue>) -> Result<Subscribe, ParseError> {
    with_command(
        event,
        data,
        ["channel", "auth", "channel_data"],
        |[channel, auth, channel_data]| {
            let channel = required_string(event, "channel", channel)?;
            let auth = optional_string(auth).map_err(|()| missing_field(event, "auth"))?;
            let channel_data = json_text(channel_data).map_err(|()| missing_field(event, "channel_data"))?;
            Ok(Subscribe {
                channel,
                auth,
                channel_data,
            })
        },
    )
}

fn parse_client_event(
    event: String,
    channel: Option<&RawValue>,
    data: Option<&RawValue>,
) -> Result<ClientMessage, ParseError> {
    let channel = required_string(&event, "channel", channel)?;
    let data = match data {
        None => String::new(),
        Some(raw) if json::kind(raw) == Kind::String => match json::decode_string(raw) {
            Some(text) => text,
            None => return Err(ParseError::InvalidData { event }),
        },
        Some(raw) => json::compact(raw.get()),
    };
    Ok(ClientMessage::ClientEvent(ClientEvent { event, channel, data }))
}

/// Run `read` on the members `names` of a command's `data` object, which is either the object
/// itself or a string holding one (clients other than pusher-js encode `data` as a string).
fn with_command<T, const N: usize>(
    event: &str,
    data: Option<&RawValue>,
    names: [&'static str; N],
    read: impl FnOnce([Option<&RawValue>; N]) -> Result<T, ParseError>,
) -> Result<T, ParseError> {
    let invalid = || ParseError::InvalidData {
        event: event.to_owned(),
    };
    let raw = data.ok_or_else(invalid)?;
    let decoded;
    let text = match json::kind(raw) {
        Kind::Object => raw.get(),
        Kind::String => {
            decoded = json::decode_string(raw).ok_or_else(invalid)?;
            decoded.as_str()
        }
        _ => return Err(invalid()),
    };
    let fields = json::pick_members(text, names).map_err(|_| invalid())?;
    read(fields)
}

fn missing_field(event: &str, field: &'static str) -> ParseError {
    ParseError::MissingField {
        event: event.to_owned(),
        field,
    }
}

/// A member that must be a string.
fn required_string(event: &str, field: &'static str, raw: Option<&RawValue>) -> Result<String, ParseError> {
    optional_string(raw)
        .ok()
        .flatten()
        .ok_or_else(|| missing_field(event, field))
}

/// A member that must be a string when present; `null` counts as absent.
fn optional_string(raw: Option<&RawValue>) -> Result<Option<String>, ()> {
    match raw {
        None => Ok(None),
        Some(raw) => match json::kind(raw) {
            Kind::Null => Ok(None),
            Kind::String => json::decode_string(raw).map(Some).ok_or(()),
            _ => Err(()),
        },
    }
}

/// A member holding JSON text that is signed as received (`channel_data`, `user_data`): a string
/// is taken unchanged; an object (clients that skip the string encoding) becomes its compact
/// text in the order sent; `null` counts as absent.
fn json_text(raw: Option<&RawValue>) -> Result<Option<String>, ()> {
    match raw {
        Some(raw) if json::kind(raw) == Kind::Object => Ok(Some(json::compact(raw.get()))),
        other => optional_string(other),
    }
}
