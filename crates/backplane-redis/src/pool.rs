//! The pool of multiplexed command connections, on [`deadpool`].
//!
//! `deadpool-redis` pools connections to one fixed URL (or through its own Sentinel manager,
//! which cannot take TLS certificates); this manager asks the [`Target`] for the current
//! primary each time it opens a connection, so one pool serves a fixed Redis, a TLS Redis with a
//! private CA or client certificate, and a Sentinel-managed primary that moves.

use std::sync::Arc;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use redis::aio::{ConnectionLike, MultiplexedConnection};

use crate::target::Target;

pub(crate) struct Manager {
    target: Arc<Target>,
}

impl Manager {
    pub(crate) fn new(target: Arc<Target>) -> Self {
        Self { target }
    }
}

impl managed::Manager for Manager {
    type Type = MultiplexedConnection;
    type Error = redis::RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, redis::RedisError> {
        self.target.client().await?.get_multiplexed_async_connection().await
    }

    /// A connection is reused only if it still answers (a broken one would fail its next
    /// command; one to a demoted primary is dropped by [`crate::RedisBackplane::with_conn`]).
    async fn recycle(&self, conn: &mut MultiplexedConnection, _: &Metrics) -> RecycleResult<redis::RedisError> {
        let pong: String = redis::cmd("PING").query_async(conn).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(RecycleError::message("unexpected PING reply"))
        }
    }
}

pub(crate) type Pool = managed::Pool<Manager>;

/// A pooled connection, returned to the pool when dropped.
pub(crate) struct Connection(managed::Object<Manager>);

impl From<managed::Object<Manager>> for Connection {
    fn from(object: managed::Object<Manager>) -> Self {
        Self(object)
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        self.0.req_packed_commands(cmd, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}
