//! The `ferrocast` server: the edge of a node.
//!
//! Layout:
//! - [`apps`]: the one code path every app source (config file, PostgreSQL) applies apps through.
//! - [`config`]: configuration loading (embedded default, TOML, environment) and validation.
//! - [`http`]: the listeners, routing, `/healthz`, `/readyz` and `/metrics`.
//! - [`net`]: what a connection may hold before routing: deadlines, descriptor reserve,
//!   per-IP caps, PROXY protocol, TLS.
//! - [`websocket`]: one WebSocket connection: admission, reader loop, writer task.
//! - [`rest`]: the Pusher HTTP API.
//! - [`api_error`]: the one mapping from REST failures to HTTP responses.
//! - [`metrics`]: Prometheus metrics.
//! - [`logging`]: the log format and filter.
//! - [`webhooks`]: webhook delivery: queues per app endpoint, signing, retries.
//! - [`lifecycle`]: readiness and draining.
//! - [`state`]: what requests and connections share.
//! - [`run`]: wiring a node together and running it until a signal.

#![forbid(unsafe_code)]

pub mod api_error;
pub mod apps;
pub mod config;
pub mod http;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod reload;
pub mod rest;
pub mod run;
pub mod state;
pub mod webhooks;
pub mod websocket;

/// The version of this build (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit this build was made from (12 hex digits), or `unknown` (see `build.rs`).
pub const COMMIT: &str = env!("FERROCAST_COMMIT");
