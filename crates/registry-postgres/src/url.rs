//! The registry's connection URL: parsed once, checked for what this build supports, and shown
//! everywhere (logs, errors) without its password.

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};

use crate::RegistryError;

/// How long a connection attempt may take unless the URL sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed `postgres://` URL (or key=value connection string).
#[derive(Clone)]
pub struct PgUrl {
    config: tokio_postgres::Config,
    shown: String,
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PgUrl {
    /// Parse `url`. TLS is not built in: `sslmode=require` is refused here rather than failing
    /// at every connect (the default `prefer` connects without TLS).
    pub fn parse(url: &str) -> Result<Self, RegistryError> {
        if url.trim().is_empty() {
            return Err(RegistryError::Url(
                "is required (postgres://user:password@host:5432/db)".into(),
            ));
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(RegistryError::Url("must be a postgres:// or postgresql:// URL".into()));
        }
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| RegistryError::Url(format!("not a valid PostgreSQL URL ({e})")))?;
        if config.get_ssl_mode() == SslMode::Require {
            return Err(RegistryError::Url(
                "sslmode=require is not supported: this build connects to PostgreSQL without TLS \
                 (use a private network, or a TLS-terminating proxy such as PgBouncer)"
                    .into(),
            ));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("ferrocast");
        }
        let shown = describe(&config);
        Ok(Self { config, shown })
    }

    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }
}

/// `postgres://user@host:port/db`: what logs and errors show of a URL (never the password).
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = config
                .get_ports()
                .get(i)
                .or(config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let user = config.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let db = config.get_dbname().unwrap_or("");
    format!("postgres://{user}{}/{db}", hosts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown() {
        let url = PgUrl::parse("postgres://ferro:s3cr3t-pw@db.example:6543/apps").unwrap();
        assert_eq!(url.to_string(), "postgres://ferro@db.example:6543/apps");
        assert!(!format!("{url:?}").contains("s3cr3t"));
        assert_eq!(url.config().get_password(), Some(&b"s3cr3t-pw"[..]));
    }

    #[test]
    fn bad_urls_are_refused_without_quoting_them() {
        for (url, needle) in [
            ("", "required"),
            ("mysql://u:pw@h/db", "postgres://"),
            ("postgres://u:pw@h/db?sslmode=require", "sslmode=require"),
            ("postgres://u:pw@h/db?bogus_option=1", "not a valid"),
        ] {
            let e = PgUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(needle) && !e.contains("pw@"), "{url}: {e}");
        }
        assert!(PgUrl::parse("postgresql://h/db?sslmode=disable").is_ok());
    }
}
