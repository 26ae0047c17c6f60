//! Native TLS on the client port (rustls on the `ring` provider), for deployments without a
//! TLS-terminating load balancer.
//!
//! The certificate is resolved per handshake from a slot that a reload swaps: on SIGHUP, and
//! when the files change (their resolved paths are polled, so a Kubernetes Secret or
//! cert-manager update, which swaps a symlink, is seen). A reload that fails (unreadable,
//! not PEM, key not matching the certificate) keeps the certificate in use and logs an error.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tracing::{error, info};

use crate::metrics::EdgeMetrics;

/// How often the certificate files are checked for a change.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server.tls_cert {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("server.tls_key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("server.tls_key {key} does not match the certificate in server.tls_cert {cert}: {reason}")]
    Mismatch { cert: String, key: String, reason: String },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// What a path resolves to, to notice a changed file or a swapped symlink.
type Fingerprint = Vec<Option<(PathBuf, SystemTime, u64, u64)>>;

/// The client port's TLS: the acceptor and the certificate it serves.
pub struct Tls {
    cert_path: String,
    key_path: String,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
    seen: Mutex<Fingerprint>,
}

/// The certificate in use, read once per handshake.
struct Current(RwLock<Arc<CertifiedKey>>);

impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Current")
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(tokio_rustls::rustls::crypto::ring::default_provider())
}

/// Read and check a certificate chain and its key.
fn load_pair(cert_path: &str, key_path: &str) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: cert_path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_err("no PEM certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::Key {
        path: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    let certified = CertifiedKey::from_der(certs, key, &provider()).map_err(|e| TlsError::Mismatch {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(Arc::new(certified))
}

fn fingerprint(paths: &[&str]) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    paths
        .iter()
        .map(|p| {
            let resolved = std::fs::canonicalize(Path::new(p)).ok()?;
            let meta = std::fs::metadata(&resolved).ok()?;
            Some((resolved, meta.modified().ok()?, meta.len(), meta.ino()))
        })
        .collect()
}

impl Tls {
    /// Load and check the pair; an error here stops the node from starting.
    pub fn load(cert_path: &str, key_path: &str) -> Result<Self, TlsError> {
        let seen = fingerprint(&[cert_path, key_path]);
        let current = Arc::new(Current(RwLock::new(load_pair(cert_path, key_path)?)));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            seen: Mutex::new(seen),
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Load the files again; on failure keep the certificate in use.
    pub fn reload(&self, why: &str, metrics: &EdgeMetrics) {
        let seen = fingerprint(&[&self.cert_path, &self.key_path]);
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = seen;
        match load_pair(&self.cert_path, &self.key_path) {
            Ok(pair) => {
                *self.current.0.write().unwrap_or_else(|p| p.into_inner()) = pair;
                metrics.tls_reload_ok.inc();
                info!(why, cert = %self.cert_path, "TLS certificate reloaded");
            }
            Err(e) => {
                metrics.tls_reload_error.inc();
                error!(why, error = %e, "TLS certificate reload failed; keeping the certificate in use");
            }
        }
    }

    /// Whether the files (or what their paths resolve to) changed since the last load.
    fn changed(&self) -> bool {
        let now = fingerprint(&[&self.cert_path, &self.key_path]);
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) != now
    }

    /// Reload whenever the files change, until the task is aborted.
    pub async fn watch_files(self: Arc<Self>, metrics: Arc<crate::metrics::Metrics>) {
        let mut every = tokio::time::interval(POLL_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if self.changed() {
                self.reload("file changed", &metrics.edge);
            }
        }
    }
}
