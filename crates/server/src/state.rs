//! What every request and connection of a node shares.

use std::sync::Arc;

use ferrocast_broker::Node;

use crate::config::Config;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::net::Edge;
use crate::run::ClusterLink;
use crate::webhooks::Dispatcher;

pub struct ServerState {
    pub node: Arc<Node>,
    /// The configuration the node started with. Its `apps` are those of the start: the apps
    /// now are the node's ([`Node::apps`]), which a reload replaces.
    pub config: Config,
    /// Reloads the apps from the config file (SIGHUP, file change).
    pub reloader: crate::reload::Reloader,
    pub metrics: Arc<Metrics>,
    pub lifecycle: Lifecycle,
    pub link: ClusterLink,
    pub webhooks: Arc<Dispatcher>,
    /// The listeners' limits: deadlines, connection caps, TLS.
    pub edge: Edge,
    /// The `postgres` app registry (`[registry] driver = "postgres"`); `None` with `file`.
    pub registry: Option<Arc<ferrocast_registry_postgres::PostgresRegistry>>,
    /// Held while a new list of apps is applied (see [`crate::apps::apply`]).
    pub applying: std::sync::Mutex<()>,
}

impl ServerState {
    /// Whether the node has its apps: always with the `file` source, after the first full read
    /// with `postgres` (a node that never loaded them is not ready).
    pub fn apps_loaded(&self) -> bool {
        self.registry.as_ref().is_none_or(|r| r.is_loaded())
    }
}
