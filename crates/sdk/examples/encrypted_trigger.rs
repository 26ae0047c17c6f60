//! End-to-end encryption: a payload to a `private-encrypted-` channel is sealed with the channel's
//! key (derived from the master key) and a fresh nonce; the broker only relays ciphertext.
//!
//! Start a broker first (`make run`), then:
//!
//! ```text
//! FERROCAST_ENCRYPTION_MASTER_KEY=$(head -c32 /dev/urandom | base64) \
//!   cargo run -p ferrocast-sdk --example encrypted_trigger
//! ```

#[path = "common/mod.rs"]
mod common;

use ferrocast_sdk::{Error, TriggerParams};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    if std::env::var("FERROCAST_ENCRYPTION_MASTER_KEY").is_err() {
        eprintln!(
            "set FERROCAST_ENCRYPTION_MASTER_KEY to the base64 of 32 random bytes (head -c32 /dev/urandom | base64)"
        );
        std::process::exit(2);
    }
    let client = common::client_from_env()?;
    let channel = "private-encrypted-vault";
    let payload = json!({"amount": 100, "currency": "EUR"});

    // What goes over the wire: {"nonce":"…","ciphertext":"…"}.
    let sealed = client.event_data(channel, &payload)?;
    println!("on the wire: {sealed}");
    println!("opened again: {}", client.decrypt(channel, &sealed)?);

    client
        .trigger(&[channel], "deposit", &payload, &TriggerParams::default())
        .await?;
    println!("triggered deposit on {channel}");

    // One payload cannot be encrypted for several channels at once.
    match client
        .trigger(&[channel, "public"], "deposit", &payload, &TriggerParams::default())
        .await
    {
        Err(e @ Error::EncryptedMultiChannel(_)) => println!("refused as expected: {e}"),
        other => println!("unexpected: {other:?}"),
    }
    Ok(())
}
