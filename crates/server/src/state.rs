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
}
