//! Server → client frames, byte for byte against the reference (§1.2, §1.4–1.6, §3.3–3.5, §4–6).

use ferrocast_protocol::codes;
use ferrocast_protocol::outbound::{
    channel_event, connection_established, error, member_added, member_added_data, member_removed, member_removed_data,
    ping, pong, subscription_error, subscription_succeeded, ServerMessage, SubscriptionErrorKind,
};
use ferrocast_protocol::presence::roster_json;
use serde_json::Value;

#[test]
fn connection_established_1_2() {
    assert_eq!(
        connection_established("264774.13368624", 120),
        r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"264774.13368624\",\"activity_timeout\":120}"}"#
    );
}

#[test]
fn error_frames_1_6() {
    assert_eq!(
        error(
            Some(codes::error::CLIENT_EVENT_RATE_LIMIT),
            "client event rate limit exceeded"
        ),
        r#"{"event":"pusher:error","data":"{\"code\":4301,\"message\":\"client event rate limit exceeded\"}"}"#
    );
    assert_eq!(
        error(
            Some(codes::error::WATCHLIST_OVER_LIMIT),
            "watchlist over limit: kept the first 100 ids"
        ),
        r#"{"event":"pusher:error","data":"{\"code\":4302,\"message\":\"watchlist over limit: kept the first 100 ids\"}"}"#
    );
    assert_eq!(
        error(
            None,
            "Invalid signature: Expected HMAC SHA256 hex digest of 1.2:private-a"
        ),
        r#"{"event":"pusher:error","data":"{\"code\":null,\"message\":\"Invalid signature: Expected HMAC SHA256 hex digest of 1.2:private-a\"}"}"#
    );
    // Quotes in the message are escaped twice: once inside data, once for data itself.
    assert_eq!(
        error(None, "bad \"x\""),
        r#"{"event":"pusher:error","data":"{\"code\":null,\"message\":\"bad \\\"x\\\"\"}"}"#
    );
}

#[test]
fn ping_pong_1_5() {
    assert_eq!(ping(), r#"{"event":"pusher:ping","data":"{}"}"#);
    assert_eq!(pong(), r#"{"event":"pusher:pong","data":"{}"}"#);
}

#[test]
fn subscription_succeeded_3_3() {
    assert_eq!(
        subscription_succeeded("private-orders-42", "{}"),
        r#"{"event":"pusher_internal:subscription_succeeded","data":"{}","channel":"private-orders-42"}"#
    );
    let roster = roster_json([("u-17", r#"{"name":"Ada Lovelace"}"#), ("u-2", r#"{"name":"Grace"}"#)]);
    assert_eq!(
        subscription_succeeded("presence-room-7", &roster),
        r#"{"event":"pusher_internal:subscription_succeeded","data":"{\"presence\":{\"ids\":[\"u-17\",\"u-2\"],\"hash\":{\"u-17\":{\"name\":\"Ada Lovelace\"},\"u-2\":{\"name\":\"Grace\"}},\"count\":2}}","channel":"presence-room-7"}"#
    );
}

#[test]
fn membership_3_4() {
    assert_eq!(
        member_added("presence-room-7", "u-17", r#"{"name":"Ada Lovelace"}"#),
        r#"{"event":"pusher_internal:member_added","data":"{\"user_id\":\"u-17\",\"user_info\":{\"name\":\"Ada Lovelace\"}}","channel":"presence-room-7"}"#
    );
    assert_eq!(
        member_added("presence-room-7", "10", "null"),
        r#"{"event":"pusher_internal:member_added","data":"{\"user_id\":\"10\",\"user_info\":null}","channel":"presence-room-7"}"#
    );
    assert_eq!(member_added("p", "u", ""), member_added("p", "u", "null"));
    assert_eq!(
        member_removed("presence-room-7", "u-17"),
        r#"{"event":"pusher_internal:member_removed","data":"{\"user_id\":\"u-17\"}","channel":"presence-room-7"}"#
    );
    assert_eq!(
        member_added_data("u-17", r#"{"name":"Ada Lovelace"}"#),
        r#"{"user_id":"u-17","user_info":{"name":"Ada Lovelace"}}"#
    );
    assert_eq!(member_added_data("u", ""), r#"{"user_id":"u","user_info":null}"#);
    assert_eq!(member_removed_data("u-17"), r#"{"user_id":"u-17"}"#);
    assert_eq!(member_removed_data("a\"b"), r#"{"user_id":"a\"b"}"#);
}

#[test]
fn subscription_errors_3_5() {
    assert_eq!(
        subscription_error("private-a", SubscriptionErrorKind::Auth, "<msg>"),
        r#"{"event":"pusher:subscription_error","data":"{\"type\":\"AuthError\",\"error\":\"<msg>\",\"status\":401}","channel":"private-a"}"#
    );
    let table = [
        (SubscriptionErrorKind::Auth, "AuthError", 401),
        (SubscriptionErrorKind::InvalidChannel, "InvalidChannel", 400),
        (SubscriptionErrorKind::InvalidChannelData, "InvalidChannelData", 400),
        (SubscriptionErrorKind::LimitReached, "LimitReached", 403),
        (SubscriptionErrorKind::Unavailable, "ServerError", 503),
    ];
    for (kind, type_name, status) in table {
        assert_eq!(kind.type_name(), type_name);
        assert_eq!(kind.status(), status);
        let frame: Value = serde_json::from_str(&subscription_error("c", kind, "m")).unwrap();
        let data: Value = serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
        assert_eq!(
            data,
            serde_json::json!({"type": type_name, "error": "m", "status": status})
        );
        assert_eq!(frame["channel"], "c");
    }
}

#[test]
fn client_and_application_events_4_5() {
    assert_eq!(
        channel_event("client-typing", "presence-room-7", r#"{"active":true}"#, Some("u-17")),
        r#"{"event":"client-typing","data":"{\"active\":true}","channel":"presence-room-7","user_id":"u-17"}"#
    );
    assert_eq!(
        channel_event("order-shipped", "private-orders-42", r#"{"id":42}"#, None),
        r#"{"event":"order-shipped","data":"{\"id\":42}","channel":"private-orders-42"}"#
    );
    // Any string is legal data and is forwarded as that exact string.
    assert_eq!(
        channel_event("e", "c", "hello\n", None),
        r#"{"event":"e","data":"hello\n","channel":"c"}"#
    );
    let encrypted =
        r#"{"nonce":"ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7","ciphertext":"hU6KWlKz2DFP5xXXnOfdKatj3Z8fRsy2YNph2muj"}"#;
    let frame: Value = serde_json::from_str(&channel_event("e", "private-encrypted-vault", encrypted, None)).unwrap();
    assert_eq!(frame["data"], encrypted);
}

#[test]
fn to_json_matches_serde_and_member_order() {
    let strings = [
        "",
        "x",
        "\"\\/",
        "\u{0}\u{1f}\u{7f}\n\t",
        "日本語 🎉",
        r#"{"a":[1,"b"]}"#,
    ];
    for event in strings {
        for data in strings {
            for channel in [None, Some("presence-x"), Some("\"")] {
                for user_id in [None, Some("u-1"), Some("\u{8}")] {
                    let message = ServerMessage {
                        event,
                        data,
                        channel,
                        user_id,
                    };
                    let json = message.to_json();
                    assert_eq!(json, serde_json::to_string(&message).unwrap());
                    let value: Value = serde_json::from_str(&json).unwrap();
                    assert_eq!(value["data"], data);
                    assert_eq!(value.get("channel").and_then(Value::as_str), channel);
                    assert_eq!(value.get("user_id").and_then(Value::as_str), user_id);
                }
            }
        }
    }
    let json = ServerMessage {
        event: "e",
        data: "d",
        channel: Some("c"),
        user_id: Some("u"),
    }
    .to_json();
    assert_eq!(json, r#"{"event":"e","data":"d","channel":"c","user_id":"u"}"#);
}

#[test]
fn frames_are_json_with_string_data() {
    let frames = [
        connection_established("1.2", 120),
        error(None, "m"),
        error(Some(4301), "m"),
        ping(),
        pong(),
        subscription_succeeded("c", "{}"),
        subscription_error("c", SubscriptionErrorKind::LimitReached, "full"),
        member_added("c", "u", r#"{"x":[1,2]}"#),
        member_removed("c", "u"),
        channel_event("e", "c", "d", Some("u")),
    ];
    for frame in frames {
        let value: Value = serde_json::from_str(&frame).unwrap();
        let data = value["data"].as_str().unwrap_or_else(|| panic!("{frame}"));
        if value["event"] != "e" {
            // Internal payloads are JSON objects encoded as a string.
            assert!(serde_json::from_str::<Value>(data).unwrap().is_object(), "{frame}");
        }
        assert!(frame.starts_with(r#"{"event":""#), "{frame}");
    }
}
