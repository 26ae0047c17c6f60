//! The edge of the node's listeners: everything a client can make us hold before a request
//! reaches routing is bounded here.
//!
//! - [`accept`]: the accept loop (backoff on errors such as EMFILE) and the cap on open
//!   connections that keeps a reserve of file descriptors for health, metrics and Redis.
//! - [`deadline`]: header, body and keep-alive deadlines of one HTTP connection.
//! - [`proxy_header`]: the PROXY protocol header a load balancer puts before the bytes.
//! - [`client_ip`]: who the client is behind `X-Forwarded-For`.
//! - [`ip_limits`]: concurrent connections and new connections per second per client IP.
//! - [`tls`]: the client port's certificate, reloaded on SIGHUP or file change.
//! - [`stream`]: plain or TLS, and the halves a WebSocket is split into.
//! - [`fd`]: the open-file limit.

mod accept;
mod client_ip;
mod deadline;
mod fd;
mod ip_limits;
mod proxy_header;
mod stream;
mod tls;

use std::sync::Arc;
use std::time::Duration;

pub use accept::{accept_loop, OpenConnections, OpenSlot};
pub use client_ip::{forwarded_client, ForwardedError};
pub use deadline::{watch, Clock, Deadlines, Watched};
pub use fd::raise_nofile_limit;
pub use ip_limits::{IpLimiter, IpSlot, Refusal};
pub use proxy_header::{read_proxy_header, ProxyHeaderError};
pub use stream::{into_halves, ClientRead, ClientStream, ClientWrite};
pub use tls::{Tls, TlsError};

use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// Concurrent connections the metrics listener serves (`/metrics`, `/healthz`, `/readyz`):
/// enough for probes and scrapers, small enough to fit in the descriptor reserve.
pub const METRICS_MAX_CONNECTIONS: usize = 64;

/// The listeners' shared limits, built once at start.
pub struct Edge {
    pub deadlines: Deadlines,
    /// Client listener connections, capped at the open-file limit minus the reserve.
    pub open: Arc<OpenConnections>,
    /// Metrics listener connections.
    pub metrics_open: Arc<OpenConnections>,
    pub ip_limits: Arc<IpLimiter>,
    pub tls: Option<Arc<Tls>>,
    pub proxy_protocol: bool,
    pub trusted_proxy_hops: u32,
}

/// Why the edge could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("the open-file limit {nofile} leaves no room for client connections with server.reserved_file_descriptors = {reserved}; raise `ulimit -n` or lower the reserve")]
    NoDescriptors { nofile: u64, reserved: u64 },
}

/// Smallest useful number of client connections once the reserve is taken.
const MIN_CLIENT_CONNECTIONS: u64 = 16;

impl Edge {
    /// Load the configured TLS certificate and key, as [`Edge::new`] does, and nothing else:
    /// what `ferrocast check-config` runs.
    pub fn check(server: &ServerConfig) -> Result<(), EdgeError> {
        if let (Some(cert), Some(key)) = (&server.tls_cert, &server.tls_key) {
            Tls::load(cert, key)?;
        }
        Ok(())
    }

    pub fn new(server: &ServerConfig, metrics: &Metrics) -> Result<Self, EdgeError> {
        let nofile = raise_nofile_limit();
        let reserved = server.reserved_file_descriptors;
        let cap = nofile.saturating_sub(reserved);
        if cap < MIN_CLIENT_CONNECTIONS {
            return Err(EdgeError::NoDescriptors { nofile, reserved });
        }
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        tracing::info!(
            open_file_limit = nofile,
            reserved,
            max_client_connections = cap,
            "client connections capped at the open-file limit minus the reserve"
        );
        let tls = match (&server.tls_cert, &server.tls_key) {
            (Some(cert), Some(key)) => Some(Arc::new(Tls::load(cert, key)?)),
            _ => None,
        };
        Ok(Self {
            deadlines: Deadlines {
                header: Duration::from_secs(server.request_header_timeout_s),
                body: Duration::from_secs(server.request_body_timeout_s),
                keep_alive: Duration::from_secs(server.keep_alive_timeout_s),
            },
            open: OpenConnections::new(cap, Some(metrics.edge.open_tcp.clone())),
            metrics_open: OpenConnections::new(METRICS_MAX_CONNECTIONS, None),
            ip_limits: IpLimiter::new(server.max_connections_per_ip, server.max_connection_rate_per_ip),
            tls,
            proxy_protocol: server.proxy_protocol,
            trusted_proxy_hops: server.trusted_proxy_hops,
        })
    }
}
