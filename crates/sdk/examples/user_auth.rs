//! User authentication: what an app's `/pusher/user-auth` endpoint answers for `pusher.signin()`,
//! with `user_info` and a watchlist.
//!
//! ```text
//! cargo run -p ferrocast-sdk --example user_auth [SOCKET_ID]
//! ```

#[path = "common/mod.rs"]
mod common;

use ferrocast_sdk::UserData;

fn main() -> Result<(), ferrocast_sdk::Error> {
    let client = common::client_from_env()?;
    let socket_id = std::env::args().nth(1).unwrap_or_else(|| "98765.4321".to_owned());
    let user = UserData::new("u-17")
        .with_info(serde_json::json!({"name": "Ada Lovelace"}))
        .with_watchlist(["u-2", "u-3"]);
    let answer = client.authenticate_user(&socket_id, &user)?;
    println!("{}", answer.to_json());
    Ok(())
}

#[test]
fn runs() {
    if let Err(e) = main() {
        panic!("example failed: {e}");
    }
}
