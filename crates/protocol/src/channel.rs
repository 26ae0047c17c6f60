//! Channel kinds and the naming rules for channels and events (reference §2).

use thiserror::Error;

/// Prefix of the per-user channel that only the signed-in owner may subscribe to.
pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

/// What a channel name says about how it may be used. Checked in the order of reference §2.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    Public,
    Private,
    PrivateEncrypted,
    Presence,
    /// `#server-to-user-{id}`.
    ServerToUser,
}

impl ChannelKind {
    /// Classify a name by prefix only (no validation).
    pub fn of(name: &str) -> ChannelKind {
        todo!("{name}")
    }

    /// Whether subscribing needs an `auth` signature.
    pub fn requires_auth(self) -> bool {
        todo!()
    }

    /// Whether `client-*` events may be sent on this kind (private and presence only).
    pub fn allows_client_events(self) -> bool {
        todo!()
    }
}

/// Whether the name is one of the cache variants (`cache-`, `private-cache-`,
/// `private-encrypted-cache-`, `presence-cache-`).
pub fn is_cache(name: &str) -> bool {
    todo!("{name}")
}

/// Why a channel name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChannelNameError {
    #[error("channel name is empty")]
    Empty,
    #[error("channel name is longer than {max} characters")]
    TooLong { max: usize },
    #[error("channel name contains characters outside A-Z a-z 0-9 _ - = @ , . ;")]
    InvalidCharacters,
    #[error("channel names starting with '#' are reserved")]
    Reserved,
}

/// Validate a channel name a client subscribes to or the REST API publishes to.
///
/// `#server-to-user-{id}` is accepted (the id part must follow the same charset) and any other
/// `#` name is [`ChannelNameError::Reserved`]. Length counts bytes of the whole name.
pub fn validate_channel_name(name: &str, max_len: usize) -> Result<ChannelKind, ChannelNameError> {
    todo!("{name}{max_len}")
}

/// Why an event name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventNameError {
    #[error("event name is empty")]
    Empty,
    #[error("event name is longer than {max} characters")]
    TooLong { max: usize },
    #[error("event names starting with 'pusher:' or 'pusher_internal:' are reserved")]
    Reserved,
}

/// Validate an event name published through the REST API or sent as a client event.
pub fn validate_event_name(name: &str, max_len: usize) -> Result<(), EventNameError> {
    todo!("{name}{max_len}")
}

/// Whether `name` is a client event name (`client-` prefix).
pub fn is_client_event(name: &str) -> bool {
    name.starts_with("client-")
}
