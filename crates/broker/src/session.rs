//! Per-connection protocol state, owned by the connection's reader task.
//!
//! Frames from one socket are handled one at a time, so a session needs no locks: the only
//! state other tasks touch is the [`ConnectionHandle`] (its outbound queue).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ferrocast_protocol::outbound::{self, SubscriptionErrorKind};

use crate::app::App;
use crate::connection::ConnectionHandle;
use crate::frame;
use crate::rate_limit::{TokenBucket, WindowLimiter};

/// What a node remembers about one of the socket's subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The member's user id on a presence channel.
    pub presence_user: Option<String>,
}

/// The user a socket signed in as (`pusher:signin`); a socket carries one id for its lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignedIn {
    pub(crate) id: String,
    /// `user_info` as compact JSON text (`"null"` when absent).
    pub(crate) user_info: String,
    /// Watched user ids this node holds interest in for the socket (at most 100).
    pub(crate) watchlist: Vec<String>,
}

/// One connected socket.
#[derive(Debug)]
pub struct Session {
    pub app: Arc<App>,
    pub conn: ConnectionHandle,
    pub(crate) subscriptions: HashMap<String, Subscription>,
    /// Boxed: most sockets never sign in, and an idle one should carry 8 bytes for this, not 72.
    pub(crate) user: Option<Box<SignedIn>>,
    pub(crate) client_events: WindowLimiter,
    pub(crate) subscribe_requests: TokenBucket,
    pub(crate) epoch: Instant,
}

impl Session {
    pub(crate) fn new(app: Arc<App>, conn: ConnectionHandle) -> Self {
        let client_events = WindowLimiter::new(app.config().max_client_events_per_second);
        let burst = u32::try_from(app.config().max_subscriptions_per_connection).unwrap_or(u32::MAX);
        let subscribe_requests = TokenBucket::new(app.config().max_subscription_requests_per_second, burst);
        Self {
            app,
            conn,
            subscriptions: HashMap::new(),
            user: None,
            client_events,
            subscribe_requests,
            epoch: Instant::now(),
        }
    }

    pub fn socket_id(&self) -> &str {
        self.conn.socket_id()
    }

    /// Whether the socket signed in (`pusher:signin` succeeded).
    pub fn is_signed_in(&self) -> bool {
        self.user.is_some()
    }

    /// The user id the socket signed in as.
    pub fn user_id(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.id.as_str())
    }

    /// Queue a JSON frame to this socket.
    pub fn send_json(&self, json: &str) -> bool {
        self.conn.send(frame::text(json))
    }

    /// Queue a `pusher:error`.
    pub fn send_error(&self, code: Option<u16>, message: &str) {
        self.send_json(&outbound::error(code, message));
    }

    /// Refuse a subscription: `pusher:subscription_error` on the channel, then the
    /// official-style `pusher:error` with a null code. The socket stays open.
    pub fn send_subscription_error(&self, channel: &str, kind: SubscriptionErrorKind, message: &str) {
        self.send_json(&outbound::subscription_error(channel, kind, message));
        self.send_error(None, message);
    }
}
