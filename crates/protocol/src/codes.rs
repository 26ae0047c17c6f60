//! Close codes and error codes of protocol v7 (reference §1.7).
//!
//! 4000–4099: the client must not reconnect unchanged; 4100–4199: reconnect with backoff;
//! 4200–4299: reconnect at once. 43xx are only ever sent inside `pusher:error` frames, never as
//! close codes, because pusher-js treats a 43xx close as "refused" and stays offline.

/// WebSocket close codes sent by the broker.
pub mod close {
    /// The app only accepts TLS connections.
    pub const TLS_ONLY: u16 = 4000;
    /// No app has the key in the URL.
    pub const UNKNOWN_APP: u16 = 4001;
    /// The app exists but is disabled.
    pub const APP_DISABLED: u16 = 4003;
    /// The app is over its connection quota (`max_connections`).
    pub const OVER_CONNECTION_QUOTA: u16 = 4004;
    /// The WebSocket path is not `/app/{key}`.
    pub const PATH_NOT_FOUND: u16 = 4005;
    /// The `version` query parameter is malformed.
    pub const INVALID_VERSION_FORMAT: u16 = 4006;
    /// The `protocol` query parameter names a version we do not speak.
    pub const UNSUPPORTED_PROTOCOL: u16 = 4007;
    /// No `protocol` query parameter.
    pub const NO_PROTOCOL: u16 = 4008;
    /// The connection is not authorized (origin not allowed, terminated by the app).
    pub const UNAUTHORIZED: u16 = 4009;
    /// The broker is over capacity or the client could not keep up (slow consumer).
    pub const OVER_CAPACITY: u16 = 4100;
    /// Generic "reconnect now": used when a node drains.
    pub const RECONNECT: u16 = 4200;
    /// No pong (or any frame) arrived after the server pinged.
    pub const PONG_TIMEOUT: u16 = 4201;
    /// Standard WebSocket codes used for malformed transport input.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A text frame that is not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A frame larger than the node accepts.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// A WebSocket protocol violation (bad opcode, bad fragmentation, ...).
    pub const PROTOCOL_ERROR: u16 = 1002;
}

/// `code` values of `pusher:error` frames that are not close codes.
pub mod error {
    /// A client event was dropped because the connection exceeded its per-second budget.
    pub const CLIENT_EVENT_RATE_LIMIT: u16 = 4301;
    /// A signin watchlist had more than 100 ids; only the first 100 were kept.
    pub const WATCHLIST_OVER_LIMIT: u16 = 4302;
}
