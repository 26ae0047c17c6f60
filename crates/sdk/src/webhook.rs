//! Webhook verification and typed webhook events (protocol reference §10).

use serde::{Deserialize, Serialize};

use crate::signing::{constant_time_eq, hmac_sha256_hex};

/// Why a webhook request was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No `X-Pusher-Key` header.
    #[error("missing X-Pusher-Key header")]
    MissingKey,
    /// `X-Pusher-Key` is not this app's key.
    #[error("X-Pusher-Key does not match the app key")]
    KeyMismatch,
    /// No `X-Pusher-Signature` header.
    #[error("missing X-Pusher-Signature header")]
    MissingSignature,
    /// `X-Pusher-Signature` is not the HMAC-SHA256 of the body with the app secret.
    #[error("X-Pusher-Signature does not match the body")]
    BadSignature,
    /// A `Content-Type` other than `application/json`.
    #[error("unexpected Content-Type {0:?} (expected application/json)")]
    ContentType(String),
    /// The (authentic) body is not a webhook JSON document.
    #[error("invalid webhook body: {0}")]
    Body(#[from] serde_json::Error),
}

/// A verified webhook request: when it was created and its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// Unix time in milliseconds at which the broker created the webhook.
    pub time_ms: u64,
    /// The events, in order.
    pub events: Vec<WebhookEvent>,
}

/// One webhook event, by its `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum WebhookEvent {
    /// A channel went from 0 to 1 subscriber.
    ChannelOccupied {
        /// The channel.
        channel: String,
    },
    /// A channel went from 1 to 0 subscriber.
    ChannelVacated {
        /// The channel.
        channel: String,
    },
    /// The first connection of a user joined a presence channel.
    MemberAdded {
        /// The presence channel.
        channel: String,
        /// The user id.
        user_id: String,
    },
    /// The last connection of a user left a presence channel.
    MemberRemoved {
        /// The presence channel.
        channel: String,
        /// The user id.
        user_id: String,
    },
    /// A client event was accepted on a private or presence channel.
    ClientEvent {
        /// The channel.
        channel: String,
        /// The client event name (`client-…`).
        event: String,
        /// The event data, as the string that went over the wire.
        data: String,
        /// The sender's socket id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        socket_id: Option<String>,
        /// The sender's user id (presence channels only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
    },
    /// A client subscribed to a cache channel whose cache is empty.
    CacheMiss {
        /// The cache channel.
        channel: String,
    },
    /// The number of subscriptions of a (non-presence) channel changed.
    SubscriptionCount {
        /// The channel.
        channel: String,
        /// The new number of subscribed connections.
        subscription_count: u64,
    },
    /// An event name this SDK does not know (kept so that new broker events do not fail a batch).
    #[serde(other)]
    Unknown,
}

/// Checks a webhook request of the app (`key`, `secret`) and parses it.
///
/// `x_pusher_key` and `x_pusher_signature` are the header values, `body` the exact bytes
/// received (never a re-serialisation). The signature is compared in constant time.
pub fn verify(
    key: &str,
    secret: &str,
    x_pusher_key: Option<&str>,
    x_pusher_signature: Option<&str>,
    body: &[u8],
) -> Result<Webhook, WebhookError> {
    let got_key = x_pusher_key.ok_or(WebhookError::MissingKey)?;
    if !constant_time_eq(got_key.as_bytes(), key.as_bytes()) {
        return Err(WebhookError::KeyMismatch);
    }
    let signature = x_pusher_signature.ok_or(WebhookError::MissingSignature)?;
    let expected = hmac_sha256_hex(secret, body);
    if !constant_time_eq(signature.trim().to_ascii_lowercase().as_bytes(), expected.as_bytes()) {
        return Err(WebhookError::BadSignature);
    }
    Ok(serde_json::from_slice(body)?)
}

/// Like [`verify`], reading `X-Pusher-Key`, `X-Pusher-Signature` and `Content-Type` (which must be
/// `application/json`, parameters such as `charset` tolerated) from request headers.
pub fn verify_headers(
    key: &str,
    secret: &str,
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> Result<Webhook, WebhookError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ct) = header("content-type") {
        let media = ct.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return Err(WebhookError::ContentType(ct.to_owned()));
        }
    } else {
        return Err(WebhookError::ContentType(String::new()));
    }
    verify(key, secret, header("x-pusher-key"), header("x-pusher-signature"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "3f6a2c9b81e04d7d5a10";
    const SECRET: &str = "9e1d7b4c2a85f03e6b12";
    const BODY: &str =
        r#"{"time_ms":1700000000123,"events":[{"name":"channel_occupied","channel":"presence-room-7"}]}"#;
    const SIG: &str = "e52af5451a3066b4bd4a0c3a0107418b9ce970c5ac7c01385f529b1f1e3df1c8";

    #[test]
    fn reference_12_6() {
        let hook = verify(KEY, SECRET, Some(KEY), Some(SIG), BODY.as_bytes()).unwrap();
        assert_eq!(hook.time_ms, 1_700_000_000_123);
        assert_eq!(
            hook.events,
            vec![WebhookEvent::ChannelOccupied {
                channel: "presence-room-7".into()
            }]
        );
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            verify(KEY, SECRET, None, Some(SIG), BODY.as_bytes()),
            Err(WebhookError::MissingKey)
        ));
        assert!(matches!(
            verify(KEY, SECRET, Some("other"), Some(SIG), BODY.as_bytes()),
            Err(WebhookError::KeyMismatch)
        ));
        assert!(matches!(
            verify(KEY, SECRET, Some(KEY), None, BODY.as_bytes()),
            Err(WebhookError::MissingSignature)
        ));
        let altered = BODY.replace("room-7", "room-8");
        assert!(matches!(
            verify(KEY, SECRET, Some(KEY), Some(SIG), altered.as_bytes()),
            Err(WebhookError::BadSignature)
        ));
        let sig = hmac_sha256_hex(SECRET, b"not json");
        assert!(matches!(
            verify(KEY, SECRET, Some(KEY), Some(&sig), b"not json"),
            Err(WebhookError::Body(_))
        ));
    }

    #[test]
    fn every_event_kind() {
        let body = r#"{"time_ms":1,"events":[
            {"name":"channel_occupied","channel":"a"},
            {"name":"channel_vacated","channel":"a"},
            {"name":"member_added","channel":"presence-r","user_id":"u-1"},
            {"name":"member_removed","channel":"presence-r","user_id":"u-1"},
            {"name":"client_event","channel":"presence-r","event":"client-typing","data":"{\"active\":true}","socket_id":"1.2","user_id":"u-1"},
            {"name":"cache_miss","channel":"cache-x"},
            {"name":"subscription_count","channel":"a","subscription_count":3},
            {"name":"from_the_future","channel":"a"}]}"#;
        let sig = hmac_sha256_hex(SECRET, body.as_bytes());
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/json"),
        );
        headers.insert("x-pusher-key", hyper::header::HeaderValue::from_static(KEY));
        headers.insert(
            "x-pusher-signature",
            hyper::header::HeaderValue::from_str(&sig).unwrap(),
        );
        let hook = verify_headers(KEY, SECRET, &headers, body.as_bytes()).unwrap();
        assert_eq!(hook.events.len(), 8);
        assert_eq!(
            hook.events[4],
            WebhookEvent::ClientEvent {
                channel: "presence-r".into(),
                event: "client-typing".into(),
                data: r#"{"active":true}"#.into(),
                socket_id: Some("1.2".into()),
                user_id: Some("u-1".into()),
            }
        );
        assert_eq!(
            hook.events[6],
            WebhookEvent::SubscriptionCount {
                channel: "a".into(),
                subscription_count: 3
            }
        );
        assert_eq!(hook.events[7], WebhookEvent::Unknown);
        headers.insert("content-type", hyper::header::HeaderValue::from_static("text/plain"));
        assert!(matches!(
            verify_headers(KEY, SECRET, &headers, body.as_bytes()),
            Err(WebhookError::ContentType(_))
        ));
    }
}
