//! The `ferrocast` server: the edge of a node.
//!
//! Layout:
//! - [`config`]: configuration loading (embedded default, TOML, environment) and validation.
//! - [`http`]: the listeners, routing, `/healthz`, `/readyz` and `/metrics`.
//! - [`net`]: what a connection may hold before routing: deadlines, descriptor reserve,
//!   per-IP caps, PROXY protocol, TLS.
//! - [`websocket`]: one WebSocket connection: admission, reader loop, writer task.
//! - [`rest`]: the Pusher HTTP API.
//! - [`api_error`]: the one mapping from REST failures to HTTP responses.
//! - [`metrics`]: Prometheus metrics.
//! - [`webhooks`]: webhook delivery: queues per app endpoint, signing, retries.
//! - [`lifecycle`]: readiness and draining.
//! - [`state`]: what requests and connections share.
//! - [`run`]: wiring a node together and running it until a signal.

// Unsafe code is refused everywhere but the one audited call site (`net::fd`, raising the open
// files limit through libc), which allows it explicitly.
#![deny(unsafe_code)]

pub mod api_error;
pub mod config;
pub mod http;
pub mod lifecycle;
pub mod metrics;
pub mod net;
pub mod rest;
pub mod run;
pub mod state;
pub mod webhooks;
pub mod websocket;
