//! The `redis-cluster` transport: where a Redis Cluster is (seed URLs, TLS) and the two
//! connections a node keeps to it.
//!
//! - Commands and scripts go through one `cluster_async::ClusterConnection`: multiplexed, one
//!   connection per shard, following `MOVED`/`ASK` and refreshing its slot map. A script is
//!   routed by its first key; every key of a script is in one bucket, so one slot.
//! - Sharded pub/sub (`SSUBSCRIBE`) goes through a second one, in RESP3 with a push channel:
//!   that connection carries subscribe commands only, since a push that arrives while a request
//!   is pending on it can be taken as that request's reply (measured; see
//!   `docs/design/redis-cluster.md`).

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionAddr, IntoConnectionInfo, PushInfo, TlsCertificates};
use tokio::sync::mpsc;

use crate::target::RedisTls;
use crate::{RedisSetupError, COMMAND_TIMEOUT};

/// The seeds of a Redis Cluster and how to reach them.
pub(crate) struct ClusterTarget {
    seeds: Vec<String>,
    certificates: Option<TlsCertificates>,
}

impl ClusterTarget {
    /// `urls`: `redis://` or `rediss://` seed nodes (every one of the same scheme); the client
    /// finds the other shards from them.
    pub(crate) fn new(urls: &[String], tls: &RedisTls) -> Result<Self, RedisSetupError> {
        if urls.is_empty() {
            return Err(RedisSetupError::BadUrl("backplane.urls: at least one seed node".into()));
        }
        let mut secure = None;
        for url in urls {
            let info = url
                .as_str()
                .into_connection_info()
                .map_err(|e| RedisSetupError::BadUrl(format!("backplane.urls: {e}")))?;
            let tls_url = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
            if *secure.get_or_insert(tls_url) != tls_url {
                return Err(RedisSetupError::BadUrl(
                    "backplane.urls: mixes redis:// and rediss:// seeds".into(),
                ));
            }
        }
        let certificates = tls.certificates()?;
        if secure == Some(false) && certificates.is_some() {
            return Err(RedisSetupError::Tls(
                "TLS files are set but backplane.urls are not rediss:// URLs".into(),
            ));
        }
        Ok(Self {
            seeds: urls.to_vec(),
            certificates,
        })
    }

    fn builder(&self) -> ClusterClientBuilder {
        let mut builder = ClusterClientBuilder::new(self.seeds.clone())
            .connection_timeout(COMMAND_TIMEOUT)
            .response_timeout(COMMAND_TIMEOUT);
        if let Some(certificates) = &self.certificates {
            builder = builder.certs(certificates.clone());
        }
        builder
    }

    fn client(builder: ClusterClientBuilder) -> redis::RedisResult<ClusterClient> {
        builder.build()
    }

    /// The multiplexed command connection.
    pub(crate) async fn commands(&self) -> redis::RedisResult<ClusterConnection> {
        Self::client(self.builder())?.get_async_connection().await
    }

    /// A connection for sharded pub/sub: its pushes (messages, `sunsubscribe`, disconnections)
    /// go to `pushes`.
    pub(crate) async fn subscriber(
        &self,
        pushes: mpsc::UnboundedSender<PushInfo>,
    ) -> redis::RedisResult<ClusterConnection> {
        let builder = self
            .builder()
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(pushes);
        Self::client(builder)?.get_async_connection().await
    }
}
