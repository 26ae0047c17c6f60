// Shared by the examples: the app's credentials from the environment, defaulting to the demo app
// of `ferrocast` started without arguments (`make run`).
#![allow(dead_code)]

use ferrocast_sdk::{Client, Config};

pub fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// FERROCAST_URL, FERROCAST_APP_ID, FERROCAST_KEY, FERROCAST_SECRET and, when set,
/// FERROCAST_ENCRYPTION_MASTER_KEY (base64 of 32 bytes).
pub fn client_from_env() -> Result<Client, ferrocast_sdk::Error> {
    client_with_master_key(std::env::var("FERROCAST_ENCRYPTION_MASTER_KEY").ok().as_deref())
}

/// The same with an explicit base64 master key (or none).
pub fn client_with_master_key(master_key: Option<&str>) -> Result<Client, ferrocast_sdk::Error> {
    let mut config = Config::new(
        env("FERROCAST_APP_ID", "app-id"),
        env("FERROCAST_KEY", "app-key"),
        env("FERROCAST_SECRET", "app-secret"),
    )
    .base_url(env("FERROCAST_URL", "http://127.0.0.1:6001"));
    if let Some(key) = master_key {
        config = config.master_key_base64(key)?;
    }
    Client::new(config)
}
