//! The client frame parser over arbitrary text.
//!
//! Checks: no panic; the error message formats; a parsed message, written back as a frame in
//! the string-`data` form other clients use, parses to the same message.
#![no_main]

use ferrocast_protocol::inbound::{parse_client_message, ClientMessage};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// A frame that must parse to `message`.
fn frame(message: &ClientMessage) -> Value {
    let command = |event: &str, data: Value| json!({ "event": event, "data": data.to_string() });
    match message {
        ClientMessage::Ping => json!({ "event": "pusher:ping" }),
        ClientMessage::Pong => json!({ "event": "pusher:pong" }),
        ClientMessage::Subscribe(s) => {
            let mut data = json!({ "channel": s.channel });
            if let Some(auth) = &s.auth {
                data["auth"] = json!(auth);
            }
            if let Some(channel_data) = &s.channel_data {
                data["channel_data"] = json!(channel_data);
            }
            command("pusher:subscribe", data)
        }
        ClientMessage::Unsubscribe { channel } => command("pusher:unsubscribe", json!({ "channel": channel })),
        ClientMessage::Signin { auth, user_data } => {
            command("pusher:signin", json!({ "auth": auth, "user_data": user_data }))
        }
        ClientMessage::ClientEvent(e) => json!({ "event": e.event, "channel": e.channel, "data": e.data }),
        ClientMessage::IgnoredPusherEvent(event) => json!({ "event": event }),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_client_message(text) {
        Ok(message) => {
            let again = frame(&message).to_string();
            assert_eq!(parse_client_message(&again), Ok(message), "frame {again}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
