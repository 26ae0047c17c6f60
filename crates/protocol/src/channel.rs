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
        if name.starts_with(SERVER_TO_USER_PREFIX) {
            ChannelKind::ServerToUser
        } else if name.starts_with("private-encrypted-") {
            ChannelKind::PrivateEncrypted
        } else if name.starts_with("private-") {
            ChannelKind::Private
        } else if name.starts_with("presence-") {
            ChannelKind::Presence
        } else {
            ChannelKind::Public
        }
    }

    /// Whether subscribing needs an `auth` signature. `#server-to-user-` channels need none:
    /// pusher-js sends `auth: ""` and the broker checks the connection's signin instead.
    pub fn requires_auth(self) -> bool {
        matches!(
            self,
            ChannelKind::Private | ChannelKind::PrivateEncrypted | ChannelKind::Presence
        )
    }

    /// Whether `client-*` events may be sent on this kind (private and presence only).
    /// Encrypted channels refuse them because a plaintext payload would break every
    /// subscriber's decryption (reference §4).
    pub fn allows_client_events(self) -> bool {
        matches!(self, ChannelKind::Private | ChannelKind::Presence)
    }
}

/// Whether the name is one of the cache variants (`cache-`, `private-cache-`,
/// `private-encrypted-cache-`, `presence-cache-`).
pub fn is_cache(name: &str) -> bool {
    [
        "cache-",
        "private-cache-",
        "private-encrypted-cache-",
        "presence-cache-",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
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
    if name.is_empty() {
        return Err(ChannelNameError::Empty);
    }
    if name.len() > max_len {
        return Err(ChannelNameError::TooLong { max: max_len });
    }
    if name.starts_with('#') {
        return match name.strip_prefix(SERVER_TO_USER_PREFIX) {
            Some(user_id) if !user_id.is_empty() => {
                if has_valid_charset(user_id) {
                    Ok(ChannelKind::ServerToUser)
                } else {
                    Err(ChannelNameError::InvalidCharacters)
                }
            }
            _ => Err(ChannelNameError::Reserved),
        };
    }
    if has_valid_charset(name) {
        Ok(ChannelKind::of(name))
    } else {
        Err(ChannelNameError::InvalidCharacters)
    }
}

/// `^[A-Za-z0-9_\-=@,.;]+$` without the emptiness check.
pub(crate) fn has_valid_charset(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';'))
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
/// Length counts bytes; the `pusher:` and `pusher_internal:` namespaces belong to the service.
pub fn validate_event_name(name: &str, max_len: usize) -> Result<(), EventNameError> {
    if name.is_empty() {
        return Err(EventNameError::Empty);
    }
    if name.len() > max_len {
        return Err(EventNameError::TooLong { max: max_len });
    }
    if name.starts_with("pusher:") || name.starts_with("pusher_internal:") {
        return Err(EventNameError::Reserved);
    }
    Ok(())
}

/// Whether `name` is a client event name (`client-` prefix).
pub fn is_client_event(name: &str) -> bool {
    name.starts_with("client-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_prefix_order() {
        let cases = [
            ("#server-to-user-u-17", ChannelKind::ServerToUser),
            ("private-encrypted-vault", ChannelKind::PrivateEncrypted),
            ("private-encrypted-cache-x", ChannelKind::PrivateEncrypted),
            ("private-orders-42", ChannelKind::Private),
            ("private-cache-x", ChannelKind::Private),
            ("presence-room-7", ChannelKind::Presence),
            ("presence-cache-x", ChannelKind::Presence),
            ("orders", ChannelKind::Public),
            ("cache-scores", ChannelKind::Public),
            ("privatefoo", ChannelKind::Public),
            ("Private-x", ChannelKind::Public),
            ("", ChannelKind::Public),
        ];
        for (name, kind) in cases {
            assert_eq!(ChannelKind::of(name), kind, "{name}");
        }
    }

    #[test]
    fn auth_and_client_event_rules() {
        use ChannelKind::*;
        let table = [
            (Public, false, false),
            (Private, true, true),
            (PrivateEncrypted, true, false),
            (Presence, true, true),
            (ServerToUser, false, false),
        ];
        for (kind, auth, client_events) in table {
            assert_eq!(kind.requires_auth(), auth, "{kind:?}");
            assert_eq!(kind.allows_client_events(), client_events, "{kind:?}");
        }
    }

    #[test]
    fn cache_variants() {
        for name in [
            "cache-a",
            "private-cache-a",
            "private-encrypted-cache-a",
            "presence-cache-a",
        ] {
            assert!(is_cache(name), "{name}");
        }
        for name in [
            "cache",
            "my-cache-a",
            "private-a",
            "presence-a",
            "private-encrypted-a",
            "#cache-a",
        ] {
            assert!(!is_cache(name), "{name}");
        }
    }

    #[test]
    fn channel_names() {
        let ok = [
            ("my-channel", ChannelKind::Public),
            ("A-Za-z0-9_-=@,.;", ChannelKind::Public),
            ("private-orders-42", ChannelKind::Private),
            ("presence-room-7", ChannelKind::Presence),
            ("private-encrypted-vault", ChannelKind::PrivateEncrypted),
            ("#server-to-user-u-17", ChannelKind::ServerToUser),
            ("#server-to-user-a@b.c", ChannelKind::ServerToUser),
        ];
        for (name, kind) in ok {
            assert_eq!(validate_channel_name(name, 164), Ok(kind), "{name}");
        }
        let bad = [
            ("", ChannelNameError::Empty),
            ("a b", ChannelNameError::InvalidCharacters),
            ("a/b", ChannelNameError::InvalidCharacters),
            ("a:b", ChannelNameError::InvalidCharacters),
            ("é", ChannelNameError::InvalidCharacters),
            ("a#b", ChannelNameError::InvalidCharacters),
            ("a\0", ChannelNameError::InvalidCharacters),
            ("#", ChannelNameError::Reserved),
            ("#foo", ChannelNameError::Reserved),
            ("#server-to-user-", ChannelNameError::Reserved),
            ("#server-to-user", ChannelNameError::Reserved),
            ("#server-to-user-u 1", ChannelNameError::InvalidCharacters),
            ("#server-to-user-#", ChannelNameError::InvalidCharacters),
        ];
        for (name, error) in bad {
            assert_eq!(validate_channel_name(name, 164), Err(error), "{name:?}");
        }
    }

    #[test]
    fn channel_name_length_counts_bytes() {
        let name = "a".repeat(164);
        assert_eq!(validate_channel_name(&name, 164), Ok(ChannelKind::Public));
        let name = "a".repeat(165);
        assert_eq!(
            validate_channel_name(&name, 164),
            Err(ChannelNameError::TooLong { max: 164 })
        );
        let long_user = format!("{SERVER_TO_USER_PREFIX}{}", "u".repeat(200));
        assert_eq!(
            validate_channel_name(&long_user, 164),
            Err(ChannelNameError::TooLong { max: 164 })
        );
        // Three 2-byte characters exceed a 5-byte limit before the charset is looked at.
        assert_eq!(
            validate_channel_name("ééé", 5),
            Err(ChannelNameError::TooLong { max: 5 })
        );
    }

    #[test]
    fn event_names() {
        assert_eq!(validate_event_name("order-shipped", 200), Ok(()));
        assert_eq!(validate_event_name("client-typing", 200), Ok(()));
        assert_eq!(validate_event_name("pusher", 200), Ok(()));
        assert_eq!(validate_event_name("pusherx:y", 200), Ok(()));
        assert_eq!(validate_event_name(&"e".repeat(200), 200), Ok(()));
        assert_eq!(validate_event_name("", 200), Err(EventNameError::Empty));
        assert_eq!(
            validate_event_name(&"e".repeat(201), 200),
            Err(EventNameError::TooLong { max: 200 })
        );
        assert_eq!(validate_event_name("pusher:ping", 200), Err(EventNameError::Reserved));
        assert_eq!(
            validate_event_name("pusher_internal:member_added", 200),
            Err(EventNameError::Reserved)
        );
    }

    #[test]
    fn client_event_prefix() {
        assert!(is_client_event("client-typing"));
        assert!(!is_client_event("client"));
        assert!(!is_client_event("Client-typing"));
    }
}
