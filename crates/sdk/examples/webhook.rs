//! Webhook verification: check `X-Pusher-Key` and `X-Pusher-Signature` over the exact body, then
//! read the typed events.
//!
//! ```text
//! cargo run -p ferrocast-sdk --example webhook
//! ```
//!
//! In an app, call `client.verify_webhook_headers(request.headers(), &body_bytes)` in the handler
//! of the webhook URL configured for the app, and answer 2xx once handled (401 when refused).

#[path = "common/mod.rs"]
mod common;

use ferrocast_sdk::signing::hmac_sha256_hex;
use ferrocast_sdk::{WebhookError, WebhookEvent};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = common::client_from_env()?;
    let secret = common::env("FERROCAST_SECRET", "app-secret");

    // What the broker would POST (signed here with the app secret to play its part).
    let body = br#"{"time_ms":1700000000123,"events":[{"name":"channel_occupied","channel":"presence-room-7"},{"name":"member_added","channel":"presence-room-7","user_id":"u-17"}]}"#;
    let signature = hmac_sha256_hex(&secret, body);

    let webhook = client.verify_webhook(Some(client.key()), Some(&signature), body)?;
    println!("webhook created at {} ms", webhook.time_ms);
    for event in &webhook.events {
        match event {
            WebhookEvent::ChannelOccupied { channel } => println!("occupied: {channel}"),
            WebhookEvent::MemberAdded { channel, user_id } => println!("{user_id} joined {channel}"),
            other => println!("other event: {other:?}"),
        }
    }

    // A body altered on the way is refused.
    let tampered = br#"{"time_ms":1700000000123,"events":[]}"#;
    match client.verify_webhook(Some(client.key()), Some(&signature), tampered) {
        Err(WebhookError::BadSignature) => println!("tampered body refused"),
        other => println!("unexpected: {other:?}"),
    }
    Ok(())
}

#[test]
fn runs() {
    if let Err(e) = main() {
        panic!("example failed: {e}");
    }
}
