//! Configuration: the embedded demo default, a TOML file, and `FERROCAST_<SECTION>__<KEY>`
//! environment overrides, validated before anything starts.
//!
//! Every mistake is reported as one line naming the key, and the process exits with code 2:
//! a node that silently ignores a typo in a limit is worse than one that refuses to start.

use std::collections::{HashMap, HashSet};

use ferrocast_broker::AppConfig;
use serde::Deserialize;
use thiserror::Error;

use crate::logging::{self, LogConfig};

/// Prefix of environment overrides; only `FERROCAST_<SECTION>__<KEY>` names are read, so other
/// `FERROCAST_*` variables (e.g. a test harness's) do not count as unknown keys.
const ENV_PREFIX: &str = "FERROCAST_";

/// Smallest `server.max_queued_bytes`: one large reply (a full presence roster) must fit under
/// the backpressure watermark (half of it).
const MIN_QUEUED_BYTES: usize = 64 * 1024;

/// Longest `apps.cache_ttl_s`: the reference's "up to 30 minutes" (§11).
const MAX_CACHE_TTL_S: u64 = 1800;

/// Most `backplane.buckets`: Redis Cluster's hash slots.
const MAX_BUCKETS: u32 = 16384;

/// Webhook event types a `[[apps.webhooks]]` entry may name.
const WEBHOOK_EVENTS: &[&str] = &[
    "channel_occupied",
    "channel_vacated",
    "member_added",
    "member_removed",
    "client_event",
    "cache_miss",
    "subscription_count",
];

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub host: String,
    /// WebSocket `/app/{key}`, REST `/apps/{id}/...`, `/healthz`, `/readyz`.
    pub port: u16,
    /// `/metrics`.
    pub metrics_port: u16,
    /// Default: hostname plus a random suffix.
    pub node_id: Option<String>,
    pub activity_timeout_s: u64,
    pub shutdown_grace_s: u64,
    /// Frames a socket may have queued before it is closed with 4100 as a slow consumer.
    pub max_queued_frames: usize,
    /// Bytes a socket may have queued before it is closed with 4100; at half of it (or of
    /// `max_queued_frames`) the node stops reading the socket's input until its queue drains
    /// to a quarter.
    pub max_queued_bytes: usize,
    /// Runtime worker threads; 0 = one per CPU core.
    pub worker_threads: usize,
    /// From accept (PROXY header and TLS handshake included), or from the first byte of a
    /// later request on a kept-alive connection, its headers must be complete within this. A
    /// WebSocket handshake is such a request.
    pub request_header_timeout_s: u64,
    /// A REST request body must be read in full within this (else 408 and the connection closes).
    pub request_body_timeout_s: u64,
    /// An HTTP connection with no request in progress is closed after this.
    pub keep_alive_timeout_s: u64,
    /// File descriptors kept free for everything but client connections (metrics port, Redis,
    /// webhooks, files): client connections are capped at the open-file limit minus this.
    pub reserved_file_descriptors: u64,
    /// Concurrent connections per client IP; 0 = unlimited.
    pub max_connections_per_ip: u32,
    /// New connections per second per client IP; 0 = unlimited.
    pub max_connection_rate_per_ip: u32,
    /// Proxies in front of the node that append to `X-Forwarded-For`; 0 = never read it.
    pub trusted_proxy_hops: u32,
    /// Every client connection starts with a PROXY protocol header (v2, or v1).
    pub proxy_protocol: bool,
    /// PEM certificate chain; with `tls_key`, the client port speaks only TLS.
    pub tls_cert: Option<String>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 6001,
            metrics_port: 9601,
            node_id: None,
            activity_timeout_s: 120,
            shutdown_grace_s: 10,
            max_queued_frames: 4096,
            max_queued_bytes: 1 << 20,
            worker_threads: 0,
            request_header_timeout_s: 10,
            request_body_timeout_s: 10,
            keep_alive_timeout_s: 30,
            reserved_file_descriptors: 256,
            max_connections_per_ip: 1000,
            max_connection_rate_per_ip: 200,
            trusted_proxy_hops: 0,
            proxy_protocol: false,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// `[backplane]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackplaneConfig {
    /// `memory` (single node), `redis` (cluster through one Redis) or `redis-cluster` (cluster
    /// through a Redis Cluster, sharded pub/sub).
    pub driver: String,
    /// The Redis primary: `redis://` or `rediss://` (TLS). With `sentinels`, only its scheme,
    /// credentials and database are used.
    pub url: String,
    /// `redis-cluster`: seed nodes of the Redis Cluster, `redis://host:port` or `rediss://`
    /// (all of one scheme); the node finds the other shards from them.
    pub urls: Vec<String>,
    /// `redis://host:port` (or `rediss://`) of Redis Sentinels that name the primary: the node
    /// asks them on every (re)connect, so it follows a failover.
    pub sentinels: Vec<String>,
    /// The name the sentinels monitor the primary under (required with `sentinels`).
    pub sentinel_master: String,
    /// PEM file of CA certificates trusted for `rediss://` besides the system store.
    pub tls_ca_file: String,
    /// PEM client certificate (chain) and key, for a Redis that requires client certificates.
    pub tls_cert_file: String,
    pub tls_key_file: String,
    /// Namespaces every key and channel so several clusters can share one Redis.
    pub prefix: String,
    /// A node whose heartbeat is older than this is considered dead and reaped by its peers.
    pub node_ttl_s: u64,
    /// Messages kept per channel in its replay log, for nodes that reconnect to Redis to
    /// deliver what they missed; 0 turns the logs off (then a reconnect loses what was
    /// published meanwhile).
    pub replay_log_max_len: u64,
    /// How long a replay log keeps messages (and an idle one lives): the longest Redis outage
    /// or reconnect a node can bridge without loss.
    pub replay_log_ttl_s: u64,
    /// Buckets the keyspace is divided into (docs/design/redis-cluster.md): each bucket's keys
    /// share one hash slot, so one Redis Cluster shard. Default: 1 for `redis`, 256 for
    /// `redis-cluster`. Every node of a cluster must use the same value; changing it needs a
    /// full restart.
    pub buckets: Option<u32>,
}

/// Buckets of `redis-cluster` by default: 256 spread evenly over up to ~30 shards.
const CLUSTER_BUCKETS: u32 = 256;

impl BackplaneConfig {
    /// `buckets`, or the driver's default.
    pub fn buckets(&self) -> u32 {
        self.buckets.unwrap_or(match self.driver.as_str() {
            "redis-cluster" => CLUSTER_BUCKETS,
            _ => 1,
        })
    }
}

impl Default for BackplaneConfig {
    fn default() -> Self {
        Self {
            driver: "memory".into(),
            url: "redis://127.0.0.1:6379".into(),
            urls: Vec::new(),
            sentinels: Vec::new(),
            sentinel_master: String::new(),
            tls_ca_file: String::new(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            prefix: "ferrocast".into(),
            node_ttl_s: 15,
            replay_log_max_len: 2000,
            replay_log_ttl_s: 30,
            buckets: None,
        }
    }
}

/// `[webhooks]`: how webhook events are decided and delivered, for every app.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// How long a channel must stay empty (a member away) before `channel_vacated`
    /// (`member_removed`) is sent; a return within it cancels both.
    pub leave_delay_ms: u64,
    /// Per request.
    pub timeout_ms: u64,
    /// Base of the retry delays after a failed request: each delay is drawn at random between
    /// this and three times the last one (decorrelated jitter), at most 60 s.
    pub retry_backoff_ms: u64,
    /// A webhook undelivered this long after it was created is abandoned.
    pub retry_window_s: u64,
    /// Events waiting per app endpoint, split evenly over its lanes (with Redis: the cap of each
    /// lane's stream, plus the batch in flight); a lane at its cap refuses new events (counted `queue_full`, logged).
    pub queue_capacity: usize,
    /// Events per request for apps with `enable_webhook_batching`.
    pub max_batch_size: usize,
    /// On shutdown, how long queued webhooks may still be delivered.
    pub flush_timeout_s: u64,
    /// Dead letters kept per app (events whose retry window ended); the oldest go beyond it.
    pub dead_letter_max_len: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            leave_delay_ms: 3000,
            timeout_ms: 5000,
            retry_backoff_ms: 1000,
            retry_window_s: 300,
            queue_capacity: 10_000,
            max_batch_size: 50,
            flush_timeout_s: 5,
            dead_letter_max_len: 10_000,
        }
    }
}

/// `[registry]`: where the apps come from.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// `file` (the `[[apps]]` of this file, reloaded live) or `postgres` (the `ferrocast_apps`
    /// table; `[[apps]]` must then be empty).
    pub driver: String,
    /// `postgres://user:password@host:5432/db` (`FERROCAST_REGISTRY__URL`); never logged with
    /// its password.
    pub url: String,
    /// Every app is read again this often, the safety net for a lost notification (seconds).
    pub refresh_s: u64,
    /// Apply pending schema migrations at start (else run `ferrocast migrate` first).
    pub migrate: bool,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            driver: "file".into(),
            url: String::new(),
            refresh_s: 30,
            migrate: true,
        }
    }
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = ferrocast_registry_postgres::PgUrl::parse(&self.url)
            .map(|u| u.to_string())
            .unwrap_or_else(|_| {
                if self.url.is_empty() {
                    String::new()
                } else {
                    "<unparsed>".into()
                }
            });
        f.debug_struct("RegistryConfig")
            .field("driver", &self.driver)
            .field("url", &url)
            .field("refresh_s", &self.refresh_s)
            .field("migrate", &self.migrate)
            .finish()
    }
}

impl RegistryConfig {
    pub fn is_postgres(&self) -> bool {
        self.driver == "postgres"
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub backplane: BackplaneConfig,
    pub webhooks: WebhooksConfig,
    pub registry: RegistryConfig,
    pub log: LogConfig,
    pub apps: Vec<AppConfig>,
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn key(key: &str, problem: impl std::fmt::Display) -> Self {
        Self(format!("{key}: {problem}"))
    }
}

/// The demo app used when `ferrocast` runs without `--config`.
pub fn demo_app() -> AppConfig {
    AppConfig {
        id: "app-id".into(),
        key: "app-key".into(),
        secret: "app-secret".into(),
        ..AppConfig::default()
    }
}

/// Load from `file` (or the embedded default when `None`) plus environment overrides from
/// `env`, resolve the apps' `secret_env` from `env`, then validate.
pub fn load(file: Option<&str>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    let mut builder = config::Config::builder();
    match file {
        Some(path) => {
            if !std::path::Path::new(path).is_file() {
                return Err(ConfigError(format!("--config: no such file: {path}")));
            }
            builder = builder.add_source(config::File::new(path, config::FileFormat::Toml));
        }
        // The demo app, unless the environment selects the postgres registry (whose apps are
        // in the database, and which refuses [[apps]]).
        None if !env_selects_postgres(&env) => {
            let demo = toml_of_demo();
            builder = builder.add_source(config::File::from_str(&demo, config::FileFormat::Toml));
        }
        None => {}
    }
    let overrides: config::Map<String, String> = env_overrides(env.iter().cloned());
    builder = builder.add_source(
        config::Environment::default()
            .source(Some(overrides))
            .separator("__")
            .try_parsing(true),
    );
    let raw = builder.build().map_err(|e| ConfigError(redact(&e.to_string())))?;
    let mut config: Config = raw.try_deserialize().map_err(|e| ConfigError(redact(&e.to_string())))?;
    resolve_secret_env(&mut config.apps, &env)?;
    resolve_log_filter(&mut config.log, &env)?;
    validate(&config)?;
    Ok(config)
}

/// A parse or type error without what could be a secret, on one line: the TOML parser quotes
/// the offending source line (which may be `secret = "..."`), and a type error quotes the value.
fn redact(message: &str) -> String {
    let snippet = |line: &str| {
        let t = line.trim_start().trim_start_matches(|c: char| c.is_ascii_digit());
        t.trim_start().starts_with('|')
    };
    let mut text = message
        .lines()
        .filter(|l| !snippet(l) && !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(start) = text.find("invalid type: ") {
        let from = start + "invalid type: ".len();
        if let Some(len) = text[from..].find(", expected") {
            let kind = text[from..from + len]
                .split_whitespace()
                .next()
                .unwrap_or("value")
                .to_owned();
            text.replace_range(from..from + len, &kind);
        }
    }
    text
}

/// Set the `secret` of every app with `secret_env` from that environment variable. The two
/// keys exclude each other; a variable that is missing, not valid UTF-8 (absent from `env`) or
/// blank is a configuration error naming the key.
fn resolve_secret_env(apps: &mut [AppConfig], env: &[(String, String)]) -> Result<(), ConfigError> {
    for (i, app) in apps.iter_mut().enumerate() {
        let Some(name) = app.secret_env.as_deref() else {
            continue;
        };
        let at = format!("apps[{i}].secret_env");
        if !app.secret.is_empty() {
            return Err(ConfigError::key(&at, "set either secret or secret_env, not both"));
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ConfigError::key(
                &at,
                format!("{name:?} is not an environment variable name (letters, digits, '_')"),
            ));
        }
        let value = env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ConfigError::key(&at, format!("the environment variable {name} is not set")))?;
        if value.trim().is_empty() {
            return Err(ConfigError::key(
                &at,
                format!("the environment variable {name} is empty"),
            ));
        }
        app.secret = value.to_owned();
    }
    Ok(())
}

/// `FERROCAST_LOG` replaces `[log] filter` (set but empty counts as unset, as Compose passes an
/// unset `${VAR:-}`); either must be a filter that shows something.
fn resolve_log_filter(log: &mut LogConfig, env: &[(String, String)]) -> Result<(), ConfigError> {
    let from_env = env
        .iter()
        .rev()
        .find(|(k, v)| k == logging::FILTER_ENV && !v.is_empty());
    let key = match from_env {
        Some((name, value)) => {
            log.filter = value.clone();
            name.as_str()
        }
        None => "log.filter",
    };
    logging::parse_filter(&log.filter)
        .map(drop)
        .map_err(|e| ConfigError::key(key, e))
}

/// Whether `FERROCAST_REGISTRY__DRIVER=postgres` is set.
fn env_selects_postgres(env: &[(String, String)]) -> bool {
    env.iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case("FERROCAST_REGISTRY__DRIVER"))
        .is_some_and(|(_, v)| v == "postgres")
}

fn toml_of_demo() -> String {
    let app = demo_app();
    format!(
        "[[apps]]\nid = \"{}\"\nkey = \"{}\"\nsecret = \"{}\"\n",
        app.id, app.key, app.secret
    )
}

/// Keep only `FERROCAST_<SECTION>__<KEY>` variables, lowercased, without the prefix.
fn env_overrides(env: impl IntoIterator<Item = (String, String)>) -> config::Map<String, String> {
    env.into_iter()
        .filter_map(|(name, value)| {
            let rest = name.strip_prefix(ENV_PREFIX)?;
            rest.contains("__").then(|| (rest.to_ascii_lowercase(), value))
        })
        .collect()
}

fn validate(config: &Config) -> Result<(), ConfigError> {
    let server = &config.server;
    if server.port == server.metrics_port {
        return Err(ConfigError::key("server.metrics_port", "must differ from server.port"));
    }
    if server.activity_timeout_s == 0 {
        return Err(ConfigError::key(
            "server.activity_timeout_s",
            "must be at least 1 (pusher-js refuses 0)",
        ));
    }
    if server.max_queued_frames == 0 {
        return Err(ConfigError::key("server.max_queued_frames", "must be at least 1"));
    }
    if server.max_queued_bytes < MIN_QUEUED_BYTES {
        return Err(ConfigError::key(
            "server.max_queued_bytes",
            format!("must be at least {MIN_QUEUED_BYTES}, is {}", server.max_queued_bytes),
        ));
    }
    validate_edge(server)?;
    if server
        .node_id
        .as_deref()
        .is_some_and(|id| id.is_empty() || !id.chars().all(is_name_char))
    {
        return Err(ConfigError::key(
            "server.node_id",
            "must be non-empty: letters, digits, '_', '-', '.'",
        ));
    }
    match config.backplane.driver.as_str() {
        "memory" => {}
        "redis" => validate_redis(&config.backplane)?,
        "redis-cluster" => validate_redis_cluster(&config.backplane)?,
        other => {
            return Err(ConfigError::key(
                "backplane.driver",
                format!("unknown driver {other:?}; expected \"memory\", \"redis\" or \"redis-cluster\""),
            ))
        }
    }
    validate_webhooks(&config.webhooks)?;
    validate_registry(&config.registry)?;
    if config.registry.is_postgres() {
        if !config.apps.is_empty() {
            return Err(ConfigError::key(
                "apps",
                "must be empty with registry.driver = \"postgres\" (the apps are in PostgreSQL: ferrocast apps add)",
            ));
        }
        return Ok(());
    }
    if config.apps.is_empty() {
        return Err(ConfigError::key("apps", "at least one [[apps]] entry is required"));
    }
    validate_apps(&config.apps)
}

/// Shortest and longest `registry.refresh_s`.
const REFRESH_S: (u64, u64) = (5, 3600);

fn validate_registry(registry: &RegistryConfig) -> Result<(), ConfigError> {
    match registry.driver.as_str() {
        "file" => Ok(()),
        "postgres" => {
            ferrocast_registry_postgres::PgUrl::parse(&registry.url)
                .map_err(|e| ConfigError::key("registry.url", e))?;
            let (min, max) = REFRESH_S;
            if !(min..=max).contains(&registry.refresh_s) {
                return Err(ConfigError::key(
                    "registry.refresh_s",
                    format!("must be between {min} and {max}, is {}", registry.refresh_s),
                ));
            }
            Ok(())
        }
        other => Err(ConfigError::key(
            "registry.driver",
            format!("unknown driver {other:?}; expected \"file\" or \"postgres\""),
        )),
    }
}

fn validate_edge(server: &ServerConfig) -> Result<(), ConfigError> {
    let bounds: [(&str, u64, u64, u64); 7] = [
        ("request_header_timeout_s", server.request_header_timeout_s, 1, 3600),
        ("request_body_timeout_s", server.request_body_timeout_s, 1, 3600),
        ("keep_alive_timeout_s", server.keep_alive_timeout_s, 1, 3600),
        (
            "reserved_file_descriptors",
            server.reserved_file_descriptors,
            32,
            1_000_000,
        ),
        (
            "max_connections_per_ip",
            u64::from(server.max_connections_per_ip),
            0,
            10_000_000,
        ),
        (
            "max_connection_rate_per_ip",
            u64::from(server.max_connection_rate_per_ip),
            0,
            10_000_000,
        ),
        ("trusted_proxy_hops", u64::from(server.trusted_proxy_hops), 0, 16),
    ];
    for (key, value, min, max) in bounds {
        if !(min..=max).contains(&value) {
            return Err(ConfigError::key(
                &format!("server.{key}"),
                format!("must be between {min} and {max}, is {value}"),
            ));
        }
    }
    if server.proxy_protocol && server.trusted_proxy_hops > 0 {
        return Err(ConfigError::key(
            "server.trusted_proxy_hops",
            "must be 0 when server.proxy_protocol is true (the PROXY header names the client)",
        ));
    }
    match (&server.tls_cert, &server.tls_key) {
        (Some(c), Some(k)) if !c.is_empty() && !k.is_empty() => Ok(()),
        (None, None) => Ok(()),
        _ => Err(ConfigError::key(
            "server.tls_cert",
            "server.tls_cert and server.tls_key must be set together (both non-empty) or not at all",
        )),
    }
}

fn validate_webhooks(w: &WebhooksConfig) -> Result<(), ConfigError> {
    let bounds: [(&str, u64, u64, u64); 8] = [
        ("leave_delay_ms", w.leave_delay_ms, 0, 10_000),
        ("timeout_ms", w.timeout_ms, 100, 60_000),
        ("retry_backoff_ms", w.retry_backoff_ms, 10, 60_000),
        ("retry_window_s", w.retry_window_s, 1, 86_400),
        ("queue_capacity", w.queue_capacity as u64, 1, 10_000_000),
        ("max_batch_size", w.max_batch_size as u64, 1, 1000),
        ("flush_timeout_s", w.flush_timeout_s, 0, 600),
        ("dead_letter_max_len", w.dead_letter_max_len as u64, 1, 1_000_000),
    ];
    for (key, value, min, max) in bounds {
        if !(min..=max).contains(&value) {
            return Err(ConfigError::key(
                &format!("webhooks.{key}"),
                format!("must be between {min} and {max}, is {value}"),
            ));
        }
    }
    Ok(())
}

fn validate_redis(backplane: &BackplaneConfig) -> Result<(), ConfigError> {
    if !(backplane.url.starts_with("redis://") || backplane.url.starts_with("rediss://")) {
        return Err(ConfigError::key("backplane.url", "must be a redis:// or rediss:// URL"));
    }
    if !backplane.urls.is_empty() {
        return Err(ConfigError::key(
            "backplane.urls",
            "is for driver = \"redis-cluster\"; one Redis takes backplane.url",
        ));
    }
    for (i, url) in backplane.sentinels.iter().enumerate() {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(ConfigError::key(
                &format!("backplane.sentinels[{i}]"),
                "must be a redis:// or rediss:// URL",
            ));
        }
    }
    if backplane.sentinels.is_empty() != backplane.sentinel_master.is_empty() {
        return Err(ConfigError::key(
            "backplane.sentinel_master",
            "must be set together with backplane.sentinels",
        ));
    }
    if backplane.tls_cert_file.is_empty() != backplane.tls_key_file.is_empty() {
        return Err(ConfigError::key(
            "backplane.tls_key_file",
            "must be set together with backplane.tls_cert_file",
        ));
    }
    let tls_files = !(backplane.tls_ca_file.is_empty() && backplane.tls_cert_file.is_empty());
    if tls_files && !backplane.url.starts_with("rediss://") {
        return Err(ConfigError::key(
            "backplane.url",
            "must be a rediss:// URL when backplane.tls_ca_file or tls_cert_file is set",
        ));
    }
    validate_redis_common(backplane)
}

/// `[backplane]` of the `redis-cluster` driver.
fn validate_redis_cluster(backplane: &BackplaneConfig) -> Result<(), ConfigError> {
    if backplane.urls.is_empty() {
        return Err(ConfigError::key(
            "backplane.urls",
            "must list at least one seed node of the Redis Cluster",
        ));
    }
    let secure = backplane.urls.iter().all(|url| url.starts_with("rediss://"));
    for (i, url) in backplane.urls.iter().enumerate() {
        let ok = match secure {
            true => url.starts_with("rediss://"),
            false => url.starts_with("redis://"),
        };
        if !ok {
            return Err(ConfigError::key(
                &format!("backplane.urls[{i}]"),
                "must be a redis:// or rediss:// URL, all of one scheme",
            ));
        }
    }
    if !backplane.sentinels.is_empty() {
        return Err(ConfigError::key(
            "backplane.sentinels",
            "is for one Redis: a Redis Cluster fails over by itself",
        ));
    }
    if backplane.tls_cert_file.is_empty() != backplane.tls_key_file.is_empty() {
        return Err(ConfigError::key(
            "backplane.tls_key_file",
            "must be set together with backplane.tls_cert_file",
        ));
    }
    let tls_files = !(backplane.tls_ca_file.is_empty() && backplane.tls_cert_file.is_empty());
    if tls_files && !secure {
        return Err(ConfigError::key(
            "backplane.urls",
            "must be rediss:// URLs when backplane.tls_ca_file or tls_cert_file is set",
        ));
    }
    validate_redis_common(backplane)
}

/// What both Redis drivers share.
fn validate_redis_common(backplane: &BackplaneConfig) -> Result<(), ConfigError> {
    if backplane.prefix.is_empty() || !backplane.prefix.chars().all(is_name_char) {
        return Err(ConfigError::key(
            "backplane.prefix",
            "must be non-empty: letters, digits, '_', '-', '.'",
        ));
    }
    if !(1..=MAX_BUCKETS).contains(&backplane.buckets()) {
        return Err(ConfigError::key("backplane.buckets", "must be 1 to 16384"));
    }
    if backplane.node_ttl_s < 2 {
        return Err(ConfigError::key("backplane.node_ttl_s", "must be at least 2"));
    }
    if backplane.replay_log_max_len > 0 && backplane.replay_log_ttl_s == 0 {
        return Err(ConfigError::key(
            "backplane.replay_log_ttl_s",
            "must be at least 1 while replay_log_max_len is set",
        ));
    }
    Ok(())
}

/// Characters allowed in app ids, node ids and the key prefix: they become parts of Redis keys.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Mistakes that do not stop the node but must be seen: one line each, logged at WARN at start.
/// `from_file` is false for the no-argument demo, which warns about its credentials itself.
pub fn warnings(config: &Config, from_file: bool) -> Vec<String> {
    let demo = demo_app();
    let mut warnings = Vec::new();
    for (i, app) in config.apps.iter().enumerate() {
        if from_file && (app.key == demo.key || app.secret == demo.secret) {
            warnings.push(format!(
                "apps[{i}] (id {:?}) uses the public demo credentials ({}): anyone can sign requests for it; set your own key and secret",
                app.id,
                if app.secret == demo.secret { "secret \"app-secret\"" } else { "key \"app-key\"" },
            ));
        }
        let roster = largest_roster_bytes(app);
        if config.server.max_queued_bytes < roster.saturating_mul(2) {
            warnings.push(format!(
                "server.max_queued_bytes ({}) is less than twice the largest presence roster of apps[{i}] (about {roster} bytes: max_presence_members_per_channel x max_presence_member_size_kb): such a subscribe can close its own socket with 4100",
                config.server.max_queued_bytes
            ));
        }
        if let Some(j) = config.apps[..i].iter().position(|other| other.secret == app.secret) {
            warnings.push(format!(
                "apps[{i}].secret: the same secret as apps[{j}]: whoever holds one app's secret can sign for the other; give each app its own"
            ));
        }
    }
    warnings
}

/// The size of a full presence roster frame of `app`, roughly: members times (user_info + id).
fn largest_roster_bytes(app: &AppConfig) -> usize {
    let per_member = app.max_member_bytes().saturating_add(256);
    usize::try_from(app.max_presence_members_per_channel)
        .unwrap_or(usize::MAX)
        .saturating_mul(per_member)
}

/// The configured node id, or the hostname plus a random suffix.
pub fn node_id(server: &ServerConfig) -> String {
    if let Some(id) = &server.node_id {
        return id.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().chars().filter(|c| is_name_char(*c)).collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    format!("{host}-{:06x}", rand::random::<u32>() & 0xFF_FFFF)
}

fn validate_apps(apps: &[AppConfig]) -> Result<(), ConfigError> {
    let mut ids = HashSet::new();
    let mut keys = HashMap::new();
    for (i, app) in apps.iter().enumerate() {
        let at = |field: &str| format!("apps[{i}].{field}");
        validate_app(&format!("apps[{i}]"), app)?;
        if !ids.insert(app.id.as_str()) {
            return Err(ConfigError::key(&at("id"), format!("duplicate app id {:?}", app.id)));
        }
        if keys.insert(app.key.as_str(), i).is_some() {
            return Err(ConfigError::key(&at("key"), format!("duplicate app key {:?}", app.key)));
        }
    }
    Ok(())
}

/// Check one app's values (not its uniqueness among others); errors name `{prefix}.{field}`.
/// Also what the postgres registry checks of every row before serving it.
pub fn validate_app(prefix: &str, app: &AppConfig) -> Result<(), ConfigError> {
    {
        let at = |field: &str| format!("{prefix}.{field}");
        for (field, value) in [("id", &app.id), ("key", &app.key), ("secret", &app.secret)] {
            if value.is_empty() {
                let problem = if field == "secret" {
                    "is required (or secret_env, the environment variable holding it) and must not be empty"
                } else {
                    "is required and must not be empty"
                };
                return Err(ConfigError::key(&at(field), problem));
            }
        }
        if app.secret.trim().is_empty() {
            return Err(ConfigError::key(&at("secret"), "must not be blank"));
        }
        if app.secret == app.key {
            return Err(ConfigError::key(
                &at("secret"),
                "must differ from the app's key (the key is public: anyone could sign with it)",
            ));
        }
        match (&app.previous_secret, app.previous_secret_expires_at) {
            (Some(previous), Some(_)) => {
                if previous.trim().is_empty() {
                    return Err(ConfigError::key(&at("previous_secret"), "must not be blank"));
                }
                if *previous == app.secret {
                    return Err(ConfigError::key(
                        &at("previous_secret"),
                        "must differ from secret (it is the secret before a rotation)",
                    ));
                }
                if *previous == app.key {
                    return Err(ConfigError::key(
                        &at("previous_secret"),
                        "must differ from the app's key",
                    ));
                }
            }
            (Some(_), None) => {
                return Err(ConfigError::key(
                    &at("previous_secret_expires_at"),
                    "is required with previous_secret (Unix seconds when the previous secret stops being accepted)",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::key(
                    &at("previous_secret_expires_at"),
                    "is set without previous_secret",
                ))
            }
            (None, None) => {}
        }
        if !app.id.chars().all(is_name_char) {
            return Err(ConfigError::key(
                &at("id"),
                "may only contain letters, digits, '_', '-', '.'",
            ));
        }
        if app.key.contains(':') || app.key.contains('/') {
            return Err(ConfigError::key(&at("key"), "must not contain ':' or '/'"));
        }
        if app.max_subscriptions_per_connection == 0 {
            return Err(ConfigError::key(
                &at("max_subscriptions_per_connection"),
                "must be at least 1",
            ));
        }
        let positive = [
            ("max_channel_name_length", app.max_channel_name_length as u64),
            ("max_event_channels_at_once", app.max_event_channels_at_once as u64),
            ("max_event_name_length", app.max_event_name_length as u64),
            ("max_event_payload_kb", app.max_event_payload_kb),
            ("max_event_batch_size", app.max_event_batch_size as u64),
            ("max_presence_member_size_kb", app.max_presence_member_size_kb),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::key(&at(field), "must be at least 1"));
        }
        if !(1..=MAX_CACHE_TTL_S).contains(&app.cache_ttl_s) {
            return Err(ConfigError::key(
                &at("cache_ttl_s"),
                format!(
                    "must be between 1 and {MAX_CACHE_TTL_S} (Pusher's 30 minutes), is {}",
                    app.cache_ttl_s
                ),
            ));
        }
        for (j, hook) in app.webhooks.iter().enumerate() {
            if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) || hook.url.len() < 10 {
                return Err(ConfigError::key(
                    &at(&format!("webhooks[{j}].url")),
                    format!("{:?} is not an http(s) URL", hook.url),
                ));
            }
            if let Some(bad) = hook.events.iter().find(|e| !WEBHOOK_EVENTS.contains(&e.as_str())) {
                return Err(ConfigError::key(
                    &at(&format!("webhooks[{j}].events")),
                    format!("unknown event {bad:?}; expected one of {}", WEBHOOK_EVENTS.join(", ")),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(contents: &str) -> tempfile_path::TempPath {
        tempfile_path::TempPath::new(contents)
    }

    /// A tiny temp-file helper so tests need no extra crate.
    mod tempfile_path {
        use std::path::PathBuf;
        use std::sync::atomic::{AtomicU32, Ordering};

        pub struct TempPath(pub PathBuf);
        static N: AtomicU32 = AtomicU32::new(0);

        impl TempPath {
            pub fn new(contents: &str) -> Self {
                let n = N.fetch_add(1, Ordering::Relaxed);
                let path = std::env::temp_dir().join(format!("ferrocast-config-{}-{n}.toml", std::process::id()));
                std::fs::write(&path, contents).unwrap();
                Self(path)
            }
            pub fn as_str(&self) -> &str {
                self.0.to_str().unwrap()
            }
        }

        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    const APP: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n";

    #[test]
    fn embedded_default_is_the_demo_app_on_the_memory_backplane() {
        let c = load(None, []).unwrap();
        assert_eq!(c.apps, vec![demo_app()]);
        assert_eq!(c.server.port, 6001);
        assert_eq!(c.server.metrics_port, 9601);
        assert_eq!(c.backplane.driver, "memory");
    }

    #[test]
    fn log_filter_from_file_then_ferrocast_log_and_checked() {
        use crate::logging::LogFormat;
        let f = write(&format!("[log]\nformat = \"json\"\nfilter = \"warn\"\n{APP}"));
        let var = |v: &str| [("FERROCAST_LOG".to_string(), v.to_string())];
        let c = load(Some(f.as_str()), []).unwrap();
        assert_eq!((c.log.format, c.log.filter.as_str()), (LogFormat::Json, "warn"));
        let c = load(Some(f.as_str()), var("debug,hyper=info")).unwrap();
        assert_eq!(c.log.filter, "debug,hyper=info", "FERROCAST_LOG replaces [log] filter");
        assert_eq!(
            load(Some(f.as_str()), var("")).unwrap().log.filter,
            "warn",
            "empty counts as unset"
        );
        let e = load(Some(f.as_str()), var("verbose")).unwrap_err().to_string();
        assert!(e.starts_with("FERROCAST_LOG: "), "{e}");
        let g = write(&format!("[log]\nfilter = \"loud\"\n{APP}"));
        let e = load(Some(g.as_str()), []).unwrap_err().to_string();
        assert!(e.starts_with("log.filter: "), "{e}");
        let env = [("FERROCAST_LOG__FORMAT".to_string(), "text".to_string())];
        assert_eq!(load(Some(f.as_str()), env).unwrap().log.format, LogFormat::Text);
    }

    #[test]
    fn file_values_and_env_overrides_apply() {
        let f = write(&format!(
            "[server]\nport = 7000\nmetrics_port = 7001\n{APP}max_connections = 5\n"
        ));
        let env = [
            ("FERROCAST_SERVER__PORT".to_string(), "7100".to_string()),
            ("FERROCAST_BIN".into(), "/x".into()),
        ];
        let c = load(Some(f.as_str()), env).unwrap();
        assert_eq!(c.server.port, 7100);
        assert_eq!(c.server.metrics_port, 7001);
        assert_eq!(c.apps[0].max_connections, 5);
        assert_eq!(c.apps[0].max_client_events_per_second, 10, "defaults fill the rest");
    }

    #[test]
    fn unknown_keys_are_named() {
        let f = write(&format!("[server]\nbogus = 1\n{APP}"));
        let e = load(Some(f.as_str()), []).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let f = write(&format!("{APP}max_conections = 1\n"));
        let e = load(Some(f.as_str()), []).unwrap_err().to_string();
        assert!(e.contains("max_conections"), "{e}");
        let f = write(APP);
        let env = [("FERROCAST_SERVER__PROT".to_string(), "1".to_string())];
        let e = load(Some(f.as_str()), env).unwrap_err().to_string();
        assert!(e.contains("prot"), "{e}");
    }

    #[test]
    fn redis_tls_and_sentinel_settings_are_checked_together() {
        let redis = |extra: &str| write(&format!("[backplane]\ndriver = \"redis\"\n{extra}\n{APP}"));
        let error = |extra: &str| {
            load(Some(redis(extra).as_str()), [])
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        let ok = |extra: &str| load(Some(redis(extra).as_str()), []).map(|_| ());
        assert!(ok("url = \"rediss://r:6380\"\ntls_ca_file = \"/ca.pem\"").is_ok());
        assert!(error("url = \"redis://r:6379\"\ntls_ca_file = \"/ca.pem\"").contains("backplane.url"));
        assert!(error("url = \"rediss://r\"\ntls_cert_file = \"/c.pem\"").contains("backplane.tls_key_file"));
        assert!(ok("url = \"rediss://r\"\ntls_cert_file = \"/c.pem\"\ntls_key_file = \"/k.pem\"").is_ok());
        assert!(ok("sentinels = [\"redis://s1:26379\", \"redis://s2:26379\"]\nsentinel_master = \"m\"").is_ok());
        assert!(error("sentinels = [\"redis://s1:26379\"]").contains("backplane.sentinel_master"));
        assert!(error("sentinel_master = \"m\"").contains("backplane.sentinel_master"));
        assert!(error("sentinels = [\"s1:26379\"]\nsentinel_master = \"m\"").contains("backplane.sentinels[0]"));
        let env = [(
            "FERROCAST_BACKPLANE__SENTINEL_MASTER".to_string(),
            "from-env".to_string(),
        )];
        let f = redis("sentinels = [\"redis://s1:26379\"]");
        let c = load(Some(f.as_str()), env).map_err(|e| e.to_string());
        assert_eq!(c.map(|c| c.backplane.sentinel_master).as_deref(), Ok("from-env"));
    }

    #[test]
    fn redis_cluster_settings_are_checked() {
        let cluster = |extra: &str| write(&format!("[backplane]\ndriver = \"redis-cluster\"\n{extra}\n{APP}"));
        let load_with = |extra: &str| load(Some(cluster(extra).as_str()), []).map_err(|e| e.to_string());
        let error = |extra: &str| load_with(extra).map(|_| ()).unwrap_err();
        let seeds = "urls = [\"redis://10.0.0.1:6379\", \"redis://10.0.0.2:6379\"]";
        let c = load_with(seeds).unwrap();
        assert_eq!(
            (c.backplane.urls.len(), c.backplane.buckets()),
            (2, 256),
            "256 buckets by default"
        );
        let c = load_with(&format!("{seeds}\nbuckets = 16")).unwrap();
        assert_eq!(c.backplane.buckets(), 16);
        assert!(error("").contains("backplane.urls"), "seeds are required");
        assert!(error("urls = [\"redis://a:1\", \"rediss://b:1\"]").contains("backplane.urls[1]"));
        assert!(error("urls = [\"http://a:1\"]").contains("backplane.urls[0]"));
        assert!(error(&format!("{seeds}\ntls_ca_file = \"/ca.pem\"")).contains("backplane.urls"));
        assert!(load_with("urls = [\"rediss://a:1\"]\ntls_ca_file = \"/ca.pem\"").is_ok());
        let sentinels = format!("{seeds}\nsentinels = [\"redis://s:26379\"]\nsentinel_master = \"m\"");
        assert!(error(&sentinels).contains("backplane.sentinels"));
        assert!(error(&format!("{seeds}\nbuckets = 0")).contains("backplane.buckets"));
        assert!(error(&format!("{seeds}\nbuckets = 16385")).contains("backplane.buckets"));
        // One Redis takes `url`, never `urls`; its default is one bucket.
        let one = |extra: &str| write(&format!("[backplane]\ndriver = \"redis\"\n{extra}\n{APP}"));
        let e = load(Some(one(seeds).as_str()), []).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("backplane.urls"), "{e}");
        let c = load(Some(one("").as_str()), []).map_err(|e| e.to_string()).unwrap();
        assert_eq!(c.backplane.buckets(), 1);
    }

    #[test]
    fn bad_values_are_named() {
        let f = write(&format!("[server]\nport = \"abc\"\n{APP}"));
        let e = load(Some(f.as_str()), []).unwrap_err().to_string();
        assert!(e.contains("port"), "{e}");
        let f = write(&format!("{APP}[[apps]]\nid = \"a b\"\nkey = \"k3\"\nsecret = \"s\"\n"));
        assert!(load(Some(f.as_str()), [])
            .unwrap_err()
            .to_string()
            .contains("apps[1].id"));
        let f = write(&format!("[backplane]\ndriver = \"redis\"\nurl = \"http://x\"\n{APP}"));
        assert!(load(Some(f.as_str()), [])
            .unwrap_err()
            .to_string()
            .contains("backplane.url"));
        let f = write(&format!("[backplane]\ndriver = \"etcd\"\n{APP}"));
        assert!(load(Some(f.as_str()), [])
            .unwrap_err()
            .to_string()
            .contains("backplane.driver"));
        let f = write(&format!("{APP}[[apps]]\nid = \"1\"\nkey = \"k2\"\nsecret = \"s\"\n"));
        assert!(load(Some(f.as_str()), [])
            .unwrap_err()
            .to_string()
            .contains("apps[1].id"));
        let f = write(&format!("{APP}[[apps.webhooks]]\nurl = \"ftp://x\"\n"));
        assert!(load(Some(f.as_str()), [])
            .unwrap_err()
            .to_string()
            .contains("apps[0].webhooks[0].url"));
        let f = write(&format!(
            "{APP}[[apps.webhooks]]\nurl = \"http://127.0.0.1:1/hook\"\nevents = [\"nope\"]\n"
        ));
        assert!(load(Some(f.as_str()), [])
            .unwrap_err()
            .to_string()
            .contains("webhooks[0].events"));
    }

    #[test]
    fn webhook_settings_have_defaults_and_bounds() {
        let c = load(None, []).unwrap();
        assert_eq!(c.webhooks.leave_delay_ms, 3000);
        assert_eq!(c.webhooks.retry_window_s, 300);
        let f = write(&format!(
            "[webhooks]\nleave_delay_ms = 500\nmax_batch_size = 10\n{APP}enable_webhook_batching = true\n"
        ));
        let c = load(Some(f.as_str()), []).unwrap();
        assert_eq!((c.webhooks.leave_delay_ms, c.webhooks.max_batch_size), (500, 10));
        assert!(c.apps[0].enable_webhook_batching);
        let f = write(&format!("[webhooks]\nleave_delay_ms = 60000\n{APP}"));
        let e = load(Some(f.as_str()), []).unwrap_err().to_string();
        assert!(e.contains("webhooks.leave_delay_ms"), "{e}");
        let f = write(&format!("[webhooks]\nretries = 3\n{APP}"));
        let e = load(Some(f.as_str()), []).unwrap_err().to_string();
        assert!(e.contains("retries"), "{e}");
    }

    #[test]
    fn blank_secrets_and_secrets_equal_to_the_key_are_refused() {
        for secret in ["\"\"", "\"   \"", "\"\\t\""] {
            let f = write(&format!("[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = {secret}\n"));
            let e = load(Some(f.as_str()), []).unwrap_err().to_string();
            assert!(e.contains("apps[0].secret"), "{secret}: {e}");
        }
        let f = write("[[apps]]\nid = \"1\"\nkey = \"same\"\nsecret = \"same\"\n");
        let e = load(Some(f.as_str()), []).unwrap_err().to_string();
        assert!(e.contains("apps[0].secret") && e.contains("key"), "{e}");
    }

    #[test]
    fn parse_and_type_errors_never_quote_a_value() {
        let f = write("[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"hidden-value\n");
        let e = load(Some(f.as_str()), []).unwrap_err().to_string();
        assert!(
            e.contains("line 4") && !e.contains("hidden-value") && !e.contains('\n'),
            "{e}"
        );
        let f = write("[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = [\"a-secret\"]\n");
        let e = load(Some(f.as_str()), []).unwrap_err().to_string();
        assert!(e.contains("secret") && !e.contains("a-secret"), "{e}");
        let f = write("[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nmax_connections = \"x\"\n");
        let e = load(Some(f.as_str()), []).unwrap_err().to_string();
        assert!(
            e.contains("max_connections") && e.contains("invalid type: string"),
            "{e}"
        );
    }

    #[test]
    fn previous_secrets_are_checked() {
        let ok = write(&format!(
            "{APP}previous_secret = \"old\"\nprevious_secret_expires_at = 1900000000\n"
        ));
        let c = load(Some(ok.as_str()), []).unwrap();
        assert_eq!(c.apps[0].previous_secret.as_deref(), Some("old"));
        assert_eq!(c.apps[0].previous_secret_expires_at, Some(1_900_000_000));
        for (extra, key, needle) in [
            (
                "previous_secret = \"s\"\nprevious_secret_expires_at = 1\n",
                "apps[0].previous_secret:",
                "differ from secret",
            ),
            (
                "previous_secret = \"old\"\n",
                "apps[0].previous_secret_expires_at:",
                "required",
            ),
            (
                "previous_secret_expires_at = 1\n",
                "apps[0].previous_secret_expires_at:",
                "without",
            ),
            (
                "previous_secret = \" \"\nprevious_secret_expires_at = 1\n",
                "apps[0].previous_secret:",
                "blank",
            ),
        ] {
            let f = write(&format!("{APP}{extra}"));
            let e = load(Some(f.as_str()), []).unwrap_err().to_string();
            assert!(e.starts_with(key) && e.contains(needle), "{extra}: {e}");
            assert!(!e.contains("\"s\""), "{e}");
        }
    }

    #[test]
    fn demo_credentials_and_shared_secrets_are_warned_about() {
        let c = load(None, []).unwrap();
        assert!(warnings(&c, false).is_empty(), "the demo warns on its own");
        assert_eq!(warnings(&c, true).len(), 1, "the demo credentials in a file");
        let f = write(&format!("{APP}[[apps]]\nid = \"2\"\nkey = \"k2\"\nsecret = \"s\"\n"));
        let c = load(Some(f.as_str()), []).unwrap();
        let w = warnings(&c, true);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("apps[1].secret") && w[0].contains("apps[0]"), "{w:?}");
        let f = write("[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"own\"\n");
        let w = warnings(&load(Some(f.as_str()), []).unwrap(), true);
        assert!(w.len() == 1 && w[0].contains("demo"), "{w:?}");
        let f = write(APP);
        assert!(warnings(&load(Some(f.as_str()), []).unwrap(), true).is_empty());
        let f = write(&format!("[server]\nmax_queued_bytes = 65536\n{APP}"));
        let w = warnings(&load(Some(f.as_str()), []).unwrap(), true);
        assert!(w.len() == 1 && w[0].contains("server.max_queued_bytes"), "{w:?}");
    }

    #[test]
    fn output_and_subscription_limits_have_defaults_and_bounds() {
        let c = load(None, []).unwrap();
        assert_eq!(c.server.max_queued_bytes, 1_048_576);
        assert_eq!(c.apps[0].max_subscriptions_per_connection, 200);
        assert_eq!(c.apps[0].max_subscription_requests_per_second, 50);
        let f = write(&format!("[server]\nmax_queued_bytes = 65535\n{APP}"));
        let e = load(Some(f.as_str()), []).unwrap_err().to_string();
        assert!(e.contains("server.max_queued_bytes"), "{e}");
        let f = write(&format!("{APP}max_subscriptions_per_connection = 0\n"));
        let e = load(Some(f.as_str()), []).unwrap_err().to_string();
        assert!(e.contains("apps[0].max_subscriptions_per_connection"), "{e}");
        let f = write(&format!("{APP}cache_ttl_s = 0\n"));
        assert!(load(Some(f.as_str()), [])
            .unwrap_err()
            .to_string()
            .contains("apps[0].cache_ttl_s"));
        let f = write(&format!("{APP}cache_ttl_s = 1801\n"));
        assert!(load(Some(f.as_str()), [])
            .unwrap_err()
            .to_string()
            .contains("apps[0].cache_ttl_s"));
        let f = write(&format!("{APP}cache_ttl_s = 2\n"));
        assert_eq!(load(Some(f.as_str()), []).unwrap().apps[0].cache_ttl_s, 2);
        let f = write(&format!("{APP}max_subscription_requests_per_second = 0\n"));
        assert_eq!(
            load(Some(f.as_str()), []).unwrap().apps[0].max_subscription_requests_per_second,
            0
        );
    }

    #[test]
    fn edge_settings_have_defaults_and_bounds() {
        let c = load(None, []).unwrap();
        let s = &c.server;
        assert_eq!(
            (
                s.request_header_timeout_s,
                s.request_body_timeout_s,
                s.keep_alive_timeout_s
            ),
            (10, 10, 30)
        );
        assert_eq!(
            (
                s.reserved_file_descriptors,
                s.max_connections_per_ip,
                s.max_connection_rate_per_ip
            ),
            (256, 1000, 200)
        );
        assert_eq!(
            (s.trusted_proxy_hops, s.proxy_protocol, s.tls_cert.clone()),
            (0, false, None)
        );
        for (bad, key) in [
            ("request_header_timeout_s = 0", "server.request_header_timeout_s"),
            ("reserved_file_descriptors = 31", "server.reserved_file_descriptors"),
            ("trusted_proxy_hops = 17", "server.trusted_proxy_hops"),
            ("tls_cert = \"/x.pem\"", "server.tls_cert"),
            (
                "proxy_protocol = true\ntrusted_proxy_hops = 1",
                "server.trusted_proxy_hops",
            ),
        ] {
            let f = write(&format!("[server]\n{bad}\n{APP}"));
            let e = load(Some(f.as_str()), []).unwrap_err().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
        let f = write(&format!(
            "[server]\nmax_connections_per_ip = 0\nproxy_protocol = true\n{APP}"
        ));
        let c = load(Some(f.as_str()), []).unwrap();
        assert!(c.server.proxy_protocol && c.server.max_connections_per_ip == 0);
    }

    #[test]
    fn secret_env_takes_the_secret_from_the_environment() {
        let f = write("[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret_env = \"APP_ONE_SECRET\"\n");
        let env = [
            ("APP_ONE_SECRET".to_string(), "from-env".to_string()),
            ("OTHER".into(), "x".into()),
        ];
        let c = load(Some(f.as_str()), env).unwrap();
        assert_eq!(c.apps[0].secret, "from-env");
        assert_eq!(c.apps[0].secret_env.as_deref(), Some("APP_ONE_SECRET"));
        // The other checks see the resolved secret.
        let env = [("APP_ONE_SECRET".to_string(), "k".to_string())];
        let e = load(Some(f.as_str()), env).unwrap_err().to_string();
        assert!(e.contains("apps[0].secret") && e.contains("key"), "{e}");
    }

    #[test]
    fn secret_env_errors_name_the_key() {
        let f = write(&format!(
            "{APP}[[apps]]\nid = \"2\"\nkey = \"k2\"\nsecret_env = \"APP_TWO\"\n"
        ));
        let e = load(Some(f.as_str()), []).unwrap_err().to_string();
        assert!(
            e.starts_with("apps[1].secret_env:") && e.contains("APP_TWO") && e.contains("not set"),
            "{e}"
        );
        for blank in ["", "  "] {
            let env = [("APP_TWO".to_string(), blank.to_string())];
            let e = load(Some(f.as_str()), env).unwrap_err().to_string();
            assert!(
                e.starts_with("apps[1].secret_env:") && e.contains("empty"),
                "{blank:?}: {e}"
            );
        }
        let f = write("[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nsecret_env = \"S\"\n");
        let env = [("S".to_string(), "x".to_string())];
        let e = load(Some(f.as_str()), env).unwrap_err().to_string();
        assert!(e.starts_with("apps[0].secret_env:") && e.contains("not both"), "{e}");
        let f = write("[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret_env = \"A-B\"\n");
        let e = load(Some(f.as_str()), []).unwrap_err().to_string();
        assert!(e.starts_with("apps[0].secret_env:"), "{e}");
        // Neither secret nor secret_env: the secret is required, as before.
        let f = write("[[apps]]\nid = \"1\"\nkey = \"k\"\n");
        let e = load(Some(f.as_str()), []).unwrap_err().to_string();
        assert!(e.contains("apps[0].secret"), "{e}");
    }

    #[test]
    fn the_postgres_registry_needs_a_url_and_no_apps() {
        let pg = "[registry]\ndriver = \"postgres\"\nurl = \"postgres://ferro:pw-hidden@db:5432/apps\"\n";
        let f = write(pg);
        let c = load(Some(f.as_str()), []).unwrap();
        assert!(c.registry.is_postgres() && c.apps.is_empty());
        assert_eq!((c.registry.refresh_s, c.registry.migrate), (30, true));
        assert!(!format!("{c:?}").contains("pw-hidden"), "Debug shows no password");
        let f = write(&format!("{pg}{APP}"));
        let e = load(Some(f.as_str()), []).unwrap_err().to_string();
        assert!(e.starts_with("apps: must be empty"), "{e}");
        for (extra, key) in [
            ("[registry]\ndriver = \"postgres\"\n", "registry.url"),
            (
                "[registry]\ndriver = \"postgres\"\nurl = \"mysql://u:pw-hidden@h/d\"\n",
                "registry.url",
            ),
            (
                "[registry]\ndriver = \"postgres\"\nurl = \"postgres://u:pw-hidden@h/d?sslmode=require\"\n",
                "registry.url",
            ),
            (
                "[registry]\ndriver = \"postgres\"\nurl = \"postgres://h/d\"\nrefresh_s = 1\n",
                "registry.refresh_s",
            ),
            ("[registry]\ndriver = \"etcd\"\n", "registry.driver"),
        ] {
            let f = write(extra);
            let e = load(Some(f.as_str()), []).unwrap_err().to_string();
            assert!(
                e.starts_with(key) && !e.contains("pw-hidden") && !e.contains('\n'),
                "{extra}: {e}"
            );
        }
        // The URL from the environment; without --config no demo app is added.
        let env = [
            ("FERROCAST_REGISTRY__DRIVER".to_string(), "postgres".to_string()),
            (
                "FERROCAST_REGISTRY__URL".to_string(),
                "postgres://u:p@h:5433/d".to_string(),
            ),
        ];
        let c = load(None, env).unwrap();
        assert!(c.registry.is_postgres() && c.apps.is_empty());
        assert_eq!(c.registry.url, "postgres://u:p@h:5433/d");
        // The file driver still needs apps, and ignores the url.
        let f = write("[registry]\ndriver = \"file\"\n");
        let e = load(Some(f.as_str()), []).unwrap_err().to_string();
        assert!(e.starts_with("apps:"), "{e}");
    }

    #[test]
    fn validate_app_names_the_prefix() {
        let app = AppConfig {
            id: "1".into(),
            key: "k".into(),
            secret: "s".into(),
            max_event_payload_kb: 0,
            ..AppConfig::default()
        };
        let e = validate_app("app \"1\"", &app).unwrap_err().to_string();
        assert!(e.starts_with("app \"1\".max_event_payload_kb:"), "{e}");
    }

    #[test]
    fn missing_file_is_reported() {
        let e = load(Some("/nonexistent/ferrocast.toml"), []).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ferrocast.toml"));
    }
}
