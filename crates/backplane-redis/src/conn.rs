//! The command connection, whichever the topology: a pooled multiplexed connection to one
//! Redis (the current primary), or the cluster connection of a Redis Cluster. Both behave as
//! one `ConnectionLike`, so every command and script is written once.

use ferrocast_broker::BackplaneError;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::cluster::ClusterTarget;
use crate::pool;
use crate::shared::Shared;

/// Where commands go.
pub(crate) enum Commands {
    /// One Redis (direct or through Sentinel): a pool for commands, one multiplexed connection
    /// that every publish shares (see `shared`).
    Single { pool: pool::Pool, shared: Shared },
    /// A Redis Cluster: one multiplexed connection, made on first use and kept (it reconnects
    /// to shards itself).
    Cluster {
        target: ClusterTarget,
        conn: tokio::sync::Mutex<Option<ClusterConnection>>,
    },
}

/// A command connection.
pub(crate) enum Conn {
    Pooled(pool::Connection),
    Shared(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Commands {
    pub(crate) async fn get(&self) -> Result<Conn, BackplaneError> {
        match self {
            Self::Single { pool, .. } => pool
                .get()
                .await
                .map(|conn| Conn::Pooled(conn.into()))
                .map_err(BackplaneError::store),
            Self::Cluster { target, conn } => {
                let mut held = conn.lock().await;
                if let Some(conn) = held.as_ref() {
                    return Ok(Conn::Cluster(conn.clone()));
                }
                let fresh = target.commands().await.map_err(BackplaneError::store)?;
                *held = Some(fresh.clone());
                Ok(Conn::Cluster(fresh))
            }
        }
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// Forget the cluster connection, so the next command connects again from the seeds and
    /// learns the topology afresh. The link went down: a shard died, and the old connection
    /// may keep waiting on it past the failover.
    pub(crate) async fn reset(&self) {
        if let Self::Cluster { conn, .. } = self {
            *conn.lock().await = None;
        }
    }

    /// Drop the idle connections to one Redis (its primary moved).
    pub(crate) fn drop_idle(&self) {
        if let Self::Single { pool, shared } = self {
            pool.retain(|_, _| false);
            shared.discard_all();
        }
    }

    /// Drop the shared publish connection of one Redis: the link came up again, and a
    /// connection made before may point to a Redis that went away meanwhile.
    pub(crate) fn discard_shared(&self) {
        if let Self::Single { shared, .. } = self {
            shared.discard_all();
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Pooled(conn) => conn.req_packed_command(cmd),
            Self::Shared(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Pooled(conn) => conn.req_packed_commands(cmd, offset, count),
            Self::Shared(conn) => conn.req_packed_commands(cmd, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Pooled(conn) => conn.get_db(),
            Self::Shared(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}
