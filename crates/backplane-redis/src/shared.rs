//! One multiplexed connection shared by every publish.
//!
//! A pooled connection is taken by one command at a time (and the pool checks it with a `PING`
//! each time it hands it out), so concurrent publishes paid two round trips each and woke a
//! worker for each. Publishes instead clone one [`MultiplexedConnection`]: redis-rs queues
//! concurrent commands on it and writes them together, in the order they were sent, so a
//! burst of REST publishes costs one write and one read on each side. Per-channel order per
//! publisher holds as on one pooled connection: a command is on the wire before its caller
//! hears back.
//!
//! The connection is made on first use from the [`Target`] (fixed URL or the primary Sentinel
//! names, TLS as configured), and dropped when a command on it fails in a way that needs a new
//! connection (I/O, a dropped connection, a timeout, or a READONLY reply after a failover); the
//! next publish connects again, to the primary the target finds then.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redis::aio::MultiplexedConnection;

use crate::target::Target;

pub(crate) struct Shared {
    target: Arc<Target>,
    /// The current connection and its number (to drop only the one that failed).
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    /// Held while connecting: one connection attempt at a time.
    connecting: tokio::sync::Mutex<()>,
    made: AtomicU64,
}

impl Shared {
    pub(crate) fn new(target: Arc<Target>) -> Self {
        Self {
            target,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            made: AtomicU64::new(0),
        }
    }

    fn cached(&self) -> Option<(u64, MultiplexedConnection)> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The shared connection (a cheap clone), connecting first if there is none.
    pub(crate) async fn get(&self) -> redis::RedisResult<(u64, MultiplexedConnection)> {
        if let Some(conn) = self.cached() {
            return Ok(conn);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(conn) = self.cached() {
            return Ok(conn);
        }
        let conn = self.target.client().await?.get_multiplexed_async_connection().await?;
        let id = self.made.fetch_add(1, Ordering::Relaxed) + 1;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some((id, conn.clone()));
        Ok((id, conn))
    }

    /// Drop connection `id` if it is still the current one: the next [`get`](Self::get)
    /// connects again.
    pub(crate) fn discard(&self, id: u64) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|(current_id, _)| *current_id == id) {
            *current = None;
        }
    }

    /// Drop whatever connection there is (the server it points to is no longer the primary).
    pub(crate) fn discard_all(&self) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Whether a command's error means its connection is unusable (rather than a reply error of
/// that one command).
pub(crate) fn needs_new_connection(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || e.is_timeout()
        || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
}
