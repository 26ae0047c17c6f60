//! The message format between nodes: MessagePack with a version, so nodes of different
//! versions in one cluster refuse what they cannot read instead of misreading it.

use ferrocast_broker::ChannelMessage;
use serde::{Deserialize, Serialize};

/// The version this build writes and reads. 2: typed payloads (member changes travel as
/// variants, not as JSON for the receiver to parse again). 3: member changes carry the channel's
/// presence sequence.
pub const VERSION: u8 = 3;

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    v: u8,
    message: ChannelMessage,
}

/// Why a received payload was dropped.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed envelope: {0}")]
    Malformed(String),
    #[error("envelope version {0} is not supported (this node speaks {VERSION})")]
    Version(u8),
}

pub fn encode(message: &ChannelMessage) -> Vec<u8> {
    #[derive(Serialize)]
    struct EnvelopeRef<'a> {
        v: u8,
        message: &'a ChannelMessage,
    }
    // Serializing plain strings and options into a Vec cannot fail.
    rmp_serde::to_vec(&EnvelopeRef { v: VERSION, message }).unwrap_or_default()
}

pub fn decode(bytes: &[u8]) -> Result<ChannelMessage, DecodeError> {
    let envelope: Envelope = rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if envelope.v != VERSION {
        return Err(DecodeError::Version(envelope.v));
    }
    Ok(envelope.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrocast_broker::Payload;

    fn message() -> ChannelMessage {
        ChannelMessage {
            app_id: "1".into(),
            channel: "presence-x".into(),
            payload: Payload::Event {
                event: "client-typing".into(),
                data: "{\"a\":1}".into(),
                user_id: Some("u1".into()),
            },
            exclude_socket: Some("1.2".into()),
            published_at_us: 0,
        }
    }

    #[test]
    fn round_trip() {
        assert_eq!(decode(&encode(&message())).unwrap(), message());
        let payloads = [
            Payload::MemberAdded {
                user_id: "u1".into(),
                user_info: "{\"n\":1}".into(),
                seq: 7,
            },
            Payload::MemberRemoved {
                user_id: "u1".into(),
                seq: 8,
            },
            Payload::SubscriptionCount { count: 42 },
            Payload::WatchlistChange {
                user_id: "u1".into(),
                online: true,
            },
            Payload::Terminate { user_id: "u1".into() },
        ];
        for payload in payloads {
            let m = ChannelMessage { payload, ..message() };
            assert_eq!(decode(&encode(&m)).unwrap(), m);
        }
    }

    #[test]
    fn other_versions_and_garbage_are_refused() {
        let bytes = rmp_serde::to_vec(&Envelope {
            v: 1,
            message: message(),
        })
        .unwrap();
        assert!(matches!(decode(&bytes), Err(DecodeError::Version(1))));
        assert!(matches!(decode(b"\xff\x00garbage"), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode(b""), Err(DecodeError::Malformed(_))));
    }
}
