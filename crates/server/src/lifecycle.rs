//! Readiness and draining, shared by the HTTP server and every connection.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Whether the node takes traffic, and the signal that it is shutting down.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    shutdown: CancellationToken,
    open_connections: AtomicUsize,
    all_closed: Notify,
}

/// Counts a WebSocket connection as open until dropped, so draining knows when it is done.
pub struct ConnectionGuard<'a>(&'a Lifecycle);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        if self.0.open_connections.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_closed.notify_waiters();
        }
    }
}

impl Lifecycle {
    pub fn new() -> Self {
        Self::default()
    }

    /// `/readyz`: ready unless draining.
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Acquire)
    }

    /// Start draining: `/readyz` turns 503 at once and connections begin to close with 4200.
    pub fn begin_shutdown(&self) {
        self.draining.store(true, Ordering::Release);
        self.shutdown.cancel();
    }

    /// Count an open connection for as long as the guard lives.
    pub fn track_connection(&self) -> ConnectionGuard<'_> {
        self.open_connections.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard(self)
    }

    /// Resolves once no connection is open.
    pub async fn connections_closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            if self.open_connections.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Resolves when the node starts shutting down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}
