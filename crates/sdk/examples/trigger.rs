//! Publishing through the HTTP API: a trigger, a batch, the occupied channels, one channel's info,
//! and a message to a signed-in user.
//!
//! Start a broker first (`make run` starts one with the demo app), then:
//!
//! ```text
//! cargo run -p ferrocast-sdk --example trigger
//! ```

#[path = "common/mod.rs"]
mod common;

use ferrocast_sdk::{BatchEvent, ChannelsQuery, TriggerParams};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), ferrocast_sdk::Error> {
    let client = common::client_from_env()?;

    client
        .trigger(
            &["orders", "private-orders-42"],
            "order-shipped",
            &json!({"id": 42}),
            &TriggerParams::default(),
        )
        .await?;
    println!("triggered order-shipped on orders and private-orders-42");

    client
        .trigger_batch(&[
            BatchEvent::new("orders", "order-created", json!({"id": 43})),
            BatchEvent::new("orders", "order-created", json!({"id": 44})),
        ])
        .await?;
    println!("triggered a batch of 2");

    let channels = client.channels(&ChannelsQuery::default()).await?;
    println!("occupied channels: {:?}", channels.channels.keys().collect::<Vec<_>>());
    let info = client.channel_info("orders", &[]).await?;
    println!("orders occupied: {:?}", info.occupied);

    client
        .send_to_user("u-17", "hello", &json!({"text": "just for you"}))
        .await?;
    println!("sent hello to user u-17");

    // A refused request is a typed error with the HTTP status.
    match client.users("orders").await {
        Err(e) => println!("users of a public channel: {e} (status {:?})", e.status()),
        Ok(users) => println!("users: {users:?}"),
    }
    Ok(())
}
