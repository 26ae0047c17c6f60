//! Channel authorization: what an app's `/pusher/auth` endpoint answers for a private, a presence
//! and an encrypted channel.
//!
//! ```text
//! cargo run -p ferrocast-sdk --example auth [SOCKET_ID]
//! ```

#[path = "common/mod.rs"]
mod common;

use ferrocast_sdk::PresenceMember;

fn main() -> Result<(), ferrocast_sdk::Error> {
    // The master key would come from your secret store; this one is only an example.
    let master_key = common::env(
        "FERROCAST_ENCRYPTION_MASTER_KEY",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    );
    let client = common::client_with_master_key(Some(&master_key))?;
    // pusher-js POSTs socket_id and channel_name; check that the logged-in user may use the channel
    // (answer 403 otherwise), then sign.
    let socket_id = std::env::args().nth(1).unwrap_or_else(|| "98765.4321".to_owned());

    let private = client.authorize_channel(&socket_id, "private-orders-42")?;
    println!("private-orders-42:       {}", private.to_json());

    let member = PresenceMember::new("u-17").with_info(serde_json::json!({"name": "Ada Lovelace"}));
    let presence = client.authorize_presence_channel(&socket_id, "presence-room-7", &member)?;
    println!("presence-room-7:         {}", presence.to_json());

    // Encrypted channels also get the channel's shared secret (pusher-js keeps it to decrypt).
    let encrypted = client.authorize_channel(&socket_id, "private-encrypted-vault")?;
    println!("private-encrypted-vault: {}", encrypted.to_json());
    Ok(())
}

#[test]
fn runs() {
    if let Err(e) = main() {
        panic!("example failed: {e}");
    }
}
