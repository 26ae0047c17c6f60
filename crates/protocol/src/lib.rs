//! The Pusher Channels protocol (v7), as pure data: no I/O, no async runtime.
//!
//! Everything a Ferrocast node must agree on with pusher-js and the official server SDKs lives
//! here, so it can be tested byte for byte against the reference vectors in
//! `shared/pusher-protocol.md` without a network.
//!
//! Every parser here takes untrusted input (frames, `channel_data`, `auth`, query strings) and
//! never panics on it: bad input is an error value. Tests in `tests/fuzz_*.rs` check this with
//! tens of thousands of random and mutated inputs, and the cargo-fuzz targets in `fuzz/`
//! (`make fuzz`) with coverage-guided ones.
//!
//! Layout:
//! - [`codes`]: WebSocket close codes and `pusher:error` codes.
//! - [`channel`]: channel kinds, channel and event name validation.
//! - [`inbound`]: parsing client → server frames into [`inbound::ClientMessage`].
//! - [`outbound`]: building server → client frames (JSON text) in the wire member order.
//! - [`presence`]: presence `channel_data` parsing and the roster payload.
//! - [`signature`]: HMAC-SHA256 channel/user auth signatures and socket ids.
//! - [`rest`]: HTTP API request signing and the request bodies of the REST API.
//! - [`user`]: `pusher:signin` user data, per-user channel names, signin/watchlist frames.
//! - [`webhook`]: webhook events, the request body and its signature.

#![forbid(unsafe_code)]

pub mod channel;
pub mod codes;
pub mod inbound;
mod json;
pub mod outbound;
pub mod presence;
pub mod rest;
pub mod signature;
pub mod user;
pub mod webhook;
