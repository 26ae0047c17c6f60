//! `ferrocast keygen`: credentials for a new app, from `rand`'s thread-local CSPRNG (seeded
//! and reseeded from the operating system).
//!
//! The id is 7 digits like Pusher's (some client libraries expect digits); the key is 20 hex
//! digits (it is public: it travels in every WebSocket URL); the secret 40 hex digits (160 bits);
//! the master key, for end-to-end encrypted channels, 32 bytes in base64 as the SDKs take it.

use std::process::ExitCode;

use base64::Engine;
use rand::{Rng, RngCore};

/// A fresh app id, key and secret (also what `ferrocast apps add` generates).
pub fn credentials() -> (String, String, String) {
    let mut rng = rand::rng();
    let id = rng.random_range(1_000_000..10_000_000u32).to_string();
    let key = random_hex(&mut rng, 10);
    let secret = random_hex(&mut rng, 20);
    (id, key, secret)
}

pub fn run(toml: bool) -> ExitCode {
    let (id, key, secret) = credentials();
    let mut rng = rand::rng();
    let mut master = [0u8; 32];
    rng.fill_bytes(&mut master);
    let master = base64::engine::general_purpose::STANDARD.encode(master);
    if toml {
        println!("[[apps]]");
        println!("id = \"{id}\"");
        println!("key = \"{key}\"");
        println!("secret = \"{secret}\"");
        println!("# The encryption master key is for your app server's SDK (private-encrypted- channels),");
        println!("# never for ferrocast: the broker must not be able to read those events.");
        println!("# encryption_master_key_base64 = \"{master}\"");
    } else {
        println!("FERROCAST_APP_ID={id}");
        println!("FERROCAST_APP_KEY={key}");
        println!("FERROCAST_APP_SECRET={secret}");
        println!("FERROCAST_ENCRYPTION_MASTER_KEY={master}");
    }
    ExitCode::SUCCESS
}

fn random_hex(rng: &mut impl RngCore, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rng.fill_bytes(&mut buf);
    hex::encode(buf)
}
