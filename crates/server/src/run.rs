//! Wire a node from its configuration and run it until SIGTERM/SIGINT, then drain: close the
//! connections spread over the grace period, let their delayed leaves be confirmed, leave the
//! cluster, flush the webhook queues, exit.

use std::sync::Arc;
use std::time::Duration;

use ferrocast_backplane_redis::{RedisBackplane, RedisOptions, RedisTls, ReplayLog, SentinelOptions};
use ferrocast_broker::{AppRegistry, Backplane, ClusterState, Node, NodeOptions};
use ferrocast_broker::{MemoryClusterState, MemoryWebhookQueue, WebhookQueue};
use tokio::net::{TcpListener, TcpSocket};
use tracing::{info, warn};

use crate::config::{self, Config};
use crate::lifecycle::Lifecycle;
use crate::metrics::{Metrics, MetricsObserver};
use crate::reload::{ConfigSource, Reloader};
use crate::state::ServerState;
use crate::webhooks::{Dispatcher, QueueMode};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error(transparent)]
    Redis(#[from] ferrocast_backplane_redis::RedisSetupError),
    #[error(transparent)]
    Webhooks(#[from] crate::webhooks::ClientError),
    #[error(transparent)]
    Edge(#[from] crate::net::EdgeError),
    #[error("registry.url: {0}")]
    Registry(ferrocast_registry_postgres::RegistryError),
    #[error("{key}: cannot read {path}: {source}")]
    File {
        key: &'static str,
        path: String,
        source: std::io::Error,
    },
}

impl StartError {
    /// A configuration the node cannot use (exit code 2, like an invalid config file).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            StartError::Edge(crate::net::EdgeError::Tls(_))
                | StartError::File { .. }
                | StartError::Registry(_)
                | StartError::Redis(
                    ferrocast_backplane_redis::RedisSetupError::Tls(_)
                        | ferrocast_backplane_redis::RedisSetupError::BadSentinel(_)
                        | ferrocast_backplane_redis::RedisSetupError::BadUrl(_)
                )
        )
    }
}

/// How often idle per-IP entries are dropped.
const IP_SWEEP_EVERY: Duration = Duration::from_secs(5);

/// The cluster link a node runs on.
pub enum ClusterLink {
    Memory,
    Redis(Arc<RedisBackplane>),
}

/// Pending connections the kernel queues before `accept`: a reconnect storm after another node
/// drains must not overflow it (the usual default of 128 does, and costs clients a 1 s SYN retry).
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(host: &str, port: u16) -> Result<TcpListener, StartError> {
    let addr = format!("{host}:{port}");
    let fail = |source| StartError::Bind {
        addr: addr.clone(),
        source,
    };
    let resolved = tokio::net::lookup_host(&addr)
        .await
        .map_err(fail)?
        .next()
        .ok_or_else(|| fail(std::io::Error::new(std::io::ErrorKind::NotFound, "no address")))?;
    let socket = if resolved.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(fail)?;
    socket.set_reuseaddr(true).map_err(fail)?;
    socket.bind(resolved).map_err(fail)?;
    socket.listen(LISTEN_BACKLOG).map_err(fail)
}

/// The TLS files of `[backplane]`, read now so a missing one stops the start.
fn redis_tls(backplane: &config::BackplaneConfig) -> Result<RedisTls, StartError> {
    let read = |key: &'static str, path: &str| -> Result<Option<Vec<u8>>, StartError> {
        if path.is_empty() {
            return Ok(None);
        }
        std::fs::read(path).map(Some).map_err(|source| StartError::File {
            key,
            path: path.to_owned(),
            source,
        })
    };
    let extra_ca_pem = read("backplane.tls_ca_file", &backplane.tls_ca_file)?;
    let cert = read("backplane.tls_cert_file", &backplane.tls_cert_file)?;
    let key = read("backplane.tls_key_file", &backplane.tls_key_file)?;
    Ok(RedisTls {
        extra_ca_pem,
        client_cert_pem: cert.zip(key),
    })
}

/// The backplane settings of `[backplane]`, its TLS files read.
fn redis_options(backplane: &config::BackplaneConfig, node_id: String) -> Result<RedisOptions, StartError> {
    Ok(RedisOptions {
        url: backplane.url.clone(),
        sentinel: (!backplane.sentinels.is_empty()).then(|| SentinelOptions {
            urls: backplane.sentinels.clone(),
            master: backplane.sentinel_master.clone(),
        }),
        tls: redis_tls(backplane)?,
        prefix: backplane.prefix.clone(),
        node_id,
        node_ttl: Duration::from_secs(backplane.node_ttl_s),
        replay_log: ReplayLog {
            max_len: backplane.replay_log_max_len,
            ttl: Duration::from_secs(backplane.replay_log_ttl_s),
        },
        buckets: backplane.buckets(),
        cluster_urls: match backplane.driver.as_str() {
            "redis-cluster" => backplane.urls.clone(),
            _ => Vec::new(),
        },
    })
}

/// Everything [`start`] would refuse as a configuration error, without binding a port or
/// connecting to Redis: the files the config names (TLS certificates and keys, CA bundles) are
/// read and parsed, the Redis and Sentinel URLs checked. For `ferrocast check-config`.
pub fn check(config: &Config) -> Result<(), StartError> {
    crate::net::Edge::check(&config.server)?;
    if matches!(config.backplane.driver.as_str(), "redis" | "redis-cluster") {
        RedisBackplane::check(&redis_options(&config.backplane, config::node_id(&config.server))?)?;
    }
    Ok(())
}

/// Bind both listeners and build the shared state.
/// `source` and `as_loaded` (the configuration as `config::load` returned it, before command-line
/// overrides) are what apps reloads start from.
pub async fn start(
    config: Config,
    source: ConfigSource,
    as_loaded: Config,
) -> Result<(Arc<ServerState>, TcpListener, TcpListener), StartError> {
    // Every series of the configured apps exists from here on, at zero.
    let metrics = Arc::new(Metrics::for_apps(config.apps.iter().map(|app| app.id.as_str())));
    // Before anything opens descriptors or binds: a bad certificate must stop the start.
    let edge = crate::net::Edge::new(&config.server, &metrics)?;
    let host = config.server.host.as_str();
    let listener = bind(host, config.server.port).await?;
    let metrics_listener = bind(host, config.server.metrics_port).await?;
    let node_id = config::node_id(&config.server);
    let (backplane, cluster, link): (Arc<dyn Backplane>, Arc<dyn ClusterState>, ClusterLink) =
        match config.backplane.driver.as_str() {
            "redis" | "redis-cluster" => {
                let redis = RedisBackplane::start(redis_options(&config.backplane, node_id.clone())?)?;
                (redis.clone(), redis.clone(), ClusterLink::Redis(redis))
            }
            _ => {
                // One cache store shared by both halves (see `MemoryClusterState::backplane`).
                let state = MemoryClusterState::new();
                (Arc::new(state.backplane()), Arc::new(state), ClusterLink::Memory)
            }
        };
    info!(node_id, driver = %config.backplane.driver, "node starting");
    if let ClusterLink::Redis(redis) = &link {
        let lag = metrics.cluster.pubsub_lag.clone();
        redis.set_lag_observer(Box::new(move |seconds| lag.observe(seconds)));
    }
    let (queue, durable): (Arc<dyn WebhookQueue>, bool) = match &link {
        ClusterLink::Redis(redis) => (redis.clone(), true),
        ClusterLink::Memory => (Arc::new(MemoryWebhookQueue::new()), false),
    };
    let mode = QueueMode {
        node_id: node_id.clone(),
        durable,
        // A crashed holder's lanes move when its heartbeat would have expired too.
        lease: Duration::from_secs(config.backplane.node_ttl_s),
    };
    let webhooks = Dispatcher::start(&config.apps, &config.webhooks, &metrics, queue, mode)?;
    let options = NodeOptions {
        observer: Arc::new(MetricsObserver(metrics.clone())),
        queue_capacity: config.server.max_queued_frames,
        queue_bytes: config.server.max_queued_bytes,
        socket_id_prefix: rand::random::<u32>() % 1_000_000_000,
        webhooks: webhooks.clone(),
        leave_delay: Duration::from_millis(config.webhooks.leave_delay_ms),
    };
    let registry = postgres_registry(&config.registry)?;
    let node = Node::new(AppRegistry::new(config.apps.clone()), backplane, cluster, options);
    if let Some(registry) = &registry {
        node.set_app_source(registry.clone());
    } else {
        metrics.registry.up.set(1);
        metrics.registry.loaded.set(1);
    }
    let state = Arc::new(ServerState {
        node,
        config,
        reloader: Reloader::new(source, as_loaded),
        metrics,
        lifecycle: Lifecycle::new(),
        link,
        webhooks,
        edge,
        registry,
        applying: std::sync::Mutex::new(()),
    });
    Ok((state, listener, metrics_listener))
}

/// The postgres registry of `[registry]`, not yet started (see [`run`]); `None` for `file`.
fn postgres_registry(
    registry: &config::RegistryConfig,
) -> Result<Option<Arc<ferrocast_registry_postgres::PostgresRegistry>>, StartError> {
    use ferrocast_registry_postgres::{PgUrl, PostgresRegistry, RegistryOptions};
    if !registry.is_postgres() {
        return Ok(None);
    }
    let url = PgUrl::parse(&registry.url).map_err(StartError::Registry)?;
    let options = RegistryOptions {
        refresh_every: Duration::from_secs(registry.refresh_s),
        migrate: registry.migrate,
    };
    info!(url = %url, refresh_s = registry.refresh_s, "apps from PostgreSQL");
    PostgresRegistry::new(&url, options)
        .map(Some)
        .map_err(StartError::Registry)
}

/// Serve until a termination signal, then drain for at most `shutdown_grace_s`.
pub async fn run(state: Arc<ServerState>, listener: TcpListener, metrics_listener: TcpListener) {
    // Handlers first: a SIGTERM or SIGHUP that arrives as soon as the node answers must not hit
    // the default action (terminate).
    let signals = Signals::install();
    let link = tokio::spawn(state.node.clone().maintain_cluster_link());
    let server = tokio::spawn(crate::http::serve(state.clone(), listener));
    let metrics = tokio::spawn(crate::http::serve_metrics(state.clone(), metrics_listener));
    let edge = tokio::spawn(maintain_edge(state.clone(), signals.hangup));
    let reload = tokio::spawn(Reloader::watch(state.clone()));
    let registry = state
        .registry
        .clone()
        .map(|registry| tokio::spawn(registry.run(crate::apps::postgres_applier(&state))));
    wait_for_signal(signals.terminate).await;
    info!("shutting down: draining connections");
    state.lifecycle.begin_shutdown();
    let grace = Duration::from_secs(state.config.server.shutdown_grace_s);
    let _ = server.await;
    // Connections close themselves with 4200 spread over 80% of the grace period; the rest is
    // slack for their last writes and presence departures.
    if tokio::time::timeout(grace, state.lifecycle.connections_closed())
        .await
        .is_err()
    {
        warn!("grace period over with connections still open; exiting anyway");
    }
    tokio::join!(settle_leaves(&state), settle_subscription_counts(&state));
    if let ClusterLink::Redis(redis) = &state.link {
        if let Err(e) = redis.deregister().await {
            warn!(error = %e, "could not deregister from the cluster; peers will reap this node");
        }
    }
    let flush = Duration::from_secs(state.config.webhooks.flush_timeout_s);
    state.webhooks.shutdown(flush).await;
    metrics.abort();
    edge.abort();
    reload.abort();
    if let Some(registry) = registry {
        registry.abort();
    }
    link.abort();
    info!("shutdown complete");
}

/// Let the delayed leaves of the closed connections be confirmed (their `channel_vacated` /
/// `member_removed` webhooks decided) while the node is still in the cluster.
async fn settle_leaves(state: &ServerState) {
    let bound = Duration::from_millis(state.config.webhooks.leave_delay_ms) + Duration::from_secs(2);
    if tokio::time::timeout(bound, state.node.settle_leaves()).await.is_err() {
        warn!("delayed leaves still unconfirmed; their webhooks may be missing");
    }
}

/// Let the `subscription_count` updates the closed connections caused be published while the
/// node is still in the cluster: the first within 100 ms, the trailing one after a 1 s interval.
async fn settle_subscription_counts(state: &ServerState) {
    let bound = Duration::from_secs(3);
    if tokio::time::timeout(bound, state.node.settle_subscription_counts())
        .await
        .is_err()
    {
        warn!("subscription_count updates still running at exit; peers publish the next change");
    }
}

/// Background upkeep of the listeners: drop idle per-IP entries, reload the TLS certificate
/// when its files change or on SIGHUP. SIGHUP also reloads the apps of the config file (see
/// [`crate::reload`]); it is handled even without TLS: its default action would terminate the
/// node.
async fn maintain_edge(state: Arc<ServerState>, hangup: Option<SignalStream>) {
    let sweeper = {
        let limits = state.edge.ip_limits.clone();
        async move {
            let mut every = tokio::time::interval(IP_SWEEP_EVERY);
            loop {
                every.tick().await;
                limits.sweep();
            }
        }
    };
    let files = {
        let (tls, metrics) = (state.edge.tls.clone(), state.metrics.clone());
        async move {
            match tls {
                Some(tls) => tls.watch_files(metrics).await,
                None => std::future::pending().await,
            }
        }
    };
    tokio::join!(sweeper, files, on_sighup(&state, hangup));
}

#[cfg(unix)]
type SignalStream = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type SignalStream = ();

/// The signal streams, registered with the OS when created.
struct Signals {
    terminate: Option<SignalStream>,
    hangup: Option<SignalStream>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let install = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(stream) => Some(stream),
                Err(e) => {
                    warn!(error = %e, "cannot handle {name}");
                    None
                }
            };
            Self {
                terminate: install(SignalKind::terminate(), "SIGTERM"),
                hangup: install(SignalKind::hangup(), "SIGHUP"),
            }
        }
        #[cfg(not(unix))]
        Self {
            terminate: None,
            hangup: None,
        }
    }
}

async fn on_sighup(state: &ServerState, hangup: Option<SignalStream>) {
    #[cfg(unix)]
    if let Some(mut hup) = hangup {
        while hup.recv().await.is_some() {
            match &state.edge.tls {
                Some(tls) => tls.reload("SIGHUP", &state.metrics.edge),
                None => info!("SIGHUP: no TLS certificate to reload"),
            }
            state.reloader.reload(state, "SIGHUP");
        }
    }
    #[cfg(not(unix))]
    let _ = (state, hangup);
    std::future::pending::<()>().await
}

async fn wait_for_signal(terminate: Option<SignalStream>) {
    #[cfg(unix)]
    if let Some(mut term) = terminate {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        return;
    }
    #[cfg(not(unix))]
    let _ = terminate;
    let _ = tokio::signal::ctrl_c().await;
}
