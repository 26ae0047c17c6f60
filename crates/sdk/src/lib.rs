//! # ferrocast-sdk
//!
//! A server SDK for Ferrocast and any other Pusher Channels (protocol 7)
//! broker, for the app servers behind the clients:
//!
//! - **Channel authorization** for private, presence and end-to-end encrypted channels
//!   ([`Client::authorize_channel`], [`Client::authorize_presence_channel`]);
//! - **User authentication** for `pusher.signin()`, with `user_info` and `watchlist`
//!   ([`Client::authenticate_user`]);
//! - **End-to-end encryption** of payloads to `private-encrypted-` channels with NaCl
//!   `crypto_secretbox` (XSalsa20-Poly1305), as pusher-js expects ([`MasterKey`]);
//! - **The HTTP API**: trigger, batch trigger, channel list and info, presence users, sending to a
//!   user, terminating a user's connections ([`Client::trigger`] …), over one kept-alive hyper
//!   connection pool, with signed requests and typed errors ([`Error`]);
//! - **Webhook verification** and typed webhook events ([`webhook::verify`], [`WebhookEvent`]).
//!
//! Signatures, shared secrets and query strings are byte-identical to the official Node SDK
//! (`pusher` on npm); the crate's tests check it against that package.
//!
//! ```
//! use ferrocast_sdk::{Client, Config, PresenceMember};
//!
//! # fn main() -> Result<(), ferrocast_sdk::Error> {
//! let client = Client::new(
//!     Config::new("451", "3f6a2c9b81e04d7d5a10", "9e1d7b4c2a85f03e6b12")
//!         .base_url("http://127.0.0.1:6001")
//!         .master_key_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")?,
//! )?;
//! // The body of the channel-authorization endpoint's 200 answer:
//! let auth = client.authorize_channel("98765.4321", "private-orders-42")?;
//! assert_eq!(
//!     auth.to_json(),
//!     r#"{"auth":"3f6a2c9b81e04d7d5a10:49eb49805d292b7b95f14f5529e4d2cefacfae802c505ef0d400355235accf7e"}"#
//! );
//! let member = PresenceMember::new("u-17").with_info(serde_json::json!({"name": "Ada Lovelace"}));
//! let presence = client.authorize_presence_channel("98765.4321", "presence-room-7", &member)?;
//! assert!(presence.channel_data.is_some());
//! let encrypted = client.authorize_channel("98765.4321", "private-encrypted-vault")?;
//! assert_eq!(encrypted.shared_secret.as_deref(), Some("wp8Orjt2S4H4n8dDP7pa2A9reduRTTedbaiVnjqomsc="));
//! # Ok(())
//! # }
//! ```
//!
//! Publishing needs a Tokio runtime:
//!
//! ```no_run
//! # async fn run(client: ferrocast_sdk::Client) -> Result<(), ferrocast_sdk::Error> {
//! use ferrocast_sdk::TriggerParams;
//! client.trigger(&["orders"], "order-shipped", &serde_json::json!({"id": 42}), &TriggerParams::default()).await?;
//! // Sealed with the channel's key; the broker only sees ciphertext.
//! client.trigger(&["private-encrypted-vault"], "deposit", &serde_json::json!({"amount": 100}), &TriggerParams::default()).await?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod auth;
mod client;
pub mod encryption;
mod error;
pub mod signing;
pub mod webhook;

pub use auth::{ChannelAuth, PresenceMember, UserAuth, UserData};
pub use client::{
    BatchEvent, BatchResponse, CachedEvent, ChannelInfo, ChannelList, ChannelsQuery, Client, Config, TriggerParams,
    TriggerResponse, User, DEFAULT_BASE_URL, DEFAULT_TIMEOUT,
};
pub use encryption::{is_encrypted_channel, EncryptedPayload, MasterKey};
pub use error::{Error, Result};
pub use webhook::{Webhook, WebhookError, WebhookEvent};
