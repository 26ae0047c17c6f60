//! Where Redis is, and how to reach it: a fixed URL, or the primary that Redis Sentinel names,
//! over plain TCP or TLS.
//!
//! Every new connection (pooled commands, the pub/sub connection) asks the [`Target`] for a
//! client. For a fixed URL that is always the same; with Sentinel it asks the sentinels for the
//! current primary (and checks that it says it is one), so after a failover the connections
//! that broke reconnect to the new primary and the node resyncs as after any outage.
//!
//! TLS (`rediss://`) trusts the system's certificate store (or `SSL_CERT_FILE`) plus the extra
//! CA certificates given, and can present a client certificate.

use base64::Engine as _;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ClientTlsConfig, ConnectionAddr, IntoConnectionInfo, TlsCertificates, TlsMode};

use crate::RedisSetupError;

/// TLS settings for `rediss://` connections (to Redis and to the sentinels).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// PEM certificates of CAs to trust besides the system store (a private CA).
    pub extra_ca_pem: Option<Vec<u8>>,
    /// PEM client certificate chain and private key, for Redis servers that require one.
    pub client_cert_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("extra_ca", &self.extra_ca_pem.is_some())
            .field("client_cert", &self.client_cert_pem.is_some())
            .finish()
    }
}

impl RedisTls {
    fn is_default(&self) -> bool {
        self.extra_ca_pem.is_none() && self.client_cert_pem.is_none()
    }

    /// The certificates for the redis client, `None` when the defaults (system store, no
    /// client certificate) apply.
    pub(crate) fn certificates(&self) -> Result<Option<TlsCertificates>, RedisSetupError> {
        if self.is_default() {
            return Ok(None);
        }
        let root_cert = match &self.extra_ca_pem {
            Some(extra) => Some(system_roots_plus(extra)?),
            None => None,
        };
        let client_tls = self.client_cert_pem.as_ref().map(|(cert, key)| ClientTlsConfig {
            client_cert: cert.clone(),
            client_key: key.clone(),
        });
        Ok(Some(TlsCertificates { client_tls, root_cert }))
    }
}

/// The system's trust anchors (honouring `SSL_CERT_FILE` / `SSL_CERT_DIR`) as PEM, followed by
/// `extra`: the redis client takes one PEM bundle, which replaces the system store.
fn system_roots_plus(extra: &[u8]) -> Result<Vec<u8>, RedisSetupError> {
    let found = rustls_native_certs::load_native_certs();
    let mut pem = Vec::new();
    for cert in found.certs {
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        for line in b64.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    if !extra
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(RedisSetupError::Tls("the CA file holds no PEM certificate".into()));
    }
    pem.extend_from_slice(extra);
    pem.push(b'\n');
    Ok(pem)
}

/// Sentinel discovery of the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelOptions {
    /// `redis://[:password@]host:port` (or `rediss://`) of each sentinel.
    pub urls: Vec<String>,
    /// The name the sentinels monitor the primary under.
    pub master: String,
}

/// Hands out clients for the current Redis primary.
pub(crate) enum Target {
    Direct(redis::Client),
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

impl Target {
    /// `url` is the primary's URL (with Sentinel: only its scheme, credentials and database
    /// are used; the sentinels name the host).
    pub(crate) fn new(url: &str, sentinel: Option<&SentinelOptions>, tls: &RedisTls) -> Result<Self, RedisSetupError> {
        let bad_url = |e: redis::RedisError| RedisSetupError::BadUrl(e.to_string());
        let certificates = tls.certificates()?;
        let info = url.into_connection_info().map_err(bad_url)?;
        let secure = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
        if !secure && !tls.is_default() {
            return Err(RedisSetupError::Tls(
                "TLS files are set but backplane.url is not a rediss:// URL".into(),
            ));
        }
        let Some(sentinel) = sentinel else {
            let client = match certificates {
                Some(certs) => redis::Client::build_with_tls(info, certs),
                None => redis::Client::open(info),
            }
            .map_err(bad_url)?;
            return Ok(Self::Direct(client));
        };
        let mut addrs = Vec::with_capacity(sentinel.urls.len());
        let mut sentinel_auth = None;
        let mut sentinel_tls = false;
        for url in &sentinel.urls {
            let info = url
                .as_str()
                .into_connection_info()
                .map_err(|e| RedisSetupError::BadSentinel(format!("{url}: {e}")))?;
            sentinel_tls |= matches!(info.addr(), ConnectionAddr::TcpTls { .. });
            let settings = info.redis_settings();
            if sentinel_auth.is_none() && settings.password().is_some() {
                sentinel_auth = Some((
                    settings.username().map(str::to_owned),
                    settings.password().map(str::to_owned),
                ));
            }
            addrs.push(info.addr().clone());
        }
        let mut builder =
            SentinelClientBuilder::new(addrs, &sentinel.master, SentinelServerType::Master).map_err(bad_url)?;
        let primary = info.redis_settings();
        builder = builder.set_client_to_redis_db(primary.db());
        if let Some(user) = primary.username() {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = primary.password() {
            builder = builder.set_client_to_redis_password(password);
        }
        if secure {
            builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
        }
        if sentinel_tls {
            builder = builder.set_client_to_sentinel_tls_mode(TlsMode::Secure);
        }
        if let Some(certs) = certificates {
            if secure {
                builder = builder.set_client_to_redis_certificates(certs.clone());
            }
            if sentinel_tls {
                builder = builder.set_client_to_sentinel_certificates(certs);
            }
        }
        if let Some((user, password)) = sentinel_auth {
            if let Some(user) = user {
                builder = builder.set_client_to_sentinel_username(user);
            }
            if let Some(password) = password {
                builder = builder.set_client_to_sentinel_password(password);
            }
        }
        let client = builder
            .build()
            .map_err(|e| RedisSetupError::BadSentinel(e.to_string()))?;
        Ok(Self::Sentinel(tokio::sync::Mutex::new(client)))
    }

    /// A client for the primary as of now. Boxed: the Sentinel lookup is a deep future, and
    /// every pooled command's future would otherwise embed its type.
    pub(crate) fn client(&self) -> futures_util::future::BoxFuture<'_, redis::RedisResult<redis::Client>> {
        Box::pin(async move {
            match self {
                Self::Direct(client) => Ok(client.clone()),
                Self::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_TLS: RedisTls = RedisTls {
        extra_ca_pem: None,
        client_cert_pem: None,
    };

    fn ca() -> RedisTls {
        // Not a valid certificate: only its PEM framing is looked at before a connection.
        let pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_vec();
        RedisTls {
            extra_ca_pem: Some(pem),
            client_cert_pem: None,
        }
    }

    #[test]
    fn plain_and_tls_urls_make_direct_targets() {
        assert!(matches!(
            Target::new("redis://127.0.0.1:6379", None, &NO_TLS),
            Ok(Target::Direct(_))
        ));
        assert!(matches!(
            Target::new("rediss://127.0.0.1:6380", None, &NO_TLS),
            Ok(Target::Direct(_))
        ));
    }

    #[test]
    fn tls_files_need_a_rediss_url() {
        let err = Target::new("redis://127.0.0.1:6379", None, &ca())
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("rediss://")));
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let tls = RedisTls {
            extra_ca_pem: Some(b"not a certificate".to_vec()),
            client_cert_pem: None,
        };
        let err = Target::new("rediss://127.0.0.1:6380", None, &tls)
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("no PEM certificate")));
    }

    #[test]
    fn the_extra_ca_is_appended_to_the_system_store() {
        let extra = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let bundle = system_roots_plus(extra).map_err(|e| e.to_string());
        let bundle = bundle.as_deref().unwrap_or_default();
        assert!(bundle.ends_with(b"-----END CERTIFICATE-----\n\n"));
        assert!(bundle.windows(extra.len()).any(|w| w == extra));
    }

    #[test]
    fn sentinel_targets_take_every_sentinel_and_refuse_bad_urls() {
        let sentinel = SentinelOptions {
            urls: vec!["redis://127.0.0.1:26379".into(), "redis://:pw@127.0.0.1:26380".into()],
            master: "mymaster".into(),
        };
        assert!(matches!(
            Target::new("redis://:secret@ignored:1/2", Some(&sentinel), &NO_TLS),
            Ok(Target::Sentinel(_))
        ));
        let bad = SentinelOptions {
            urls: vec!["http://nope".into()],
            master: "mymaster".into(),
        };
        let err = Target::new("redis://x:1", Some(&bad), &NO_TLS)
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.starts_with("backplane.sentinels")));
    }
}
