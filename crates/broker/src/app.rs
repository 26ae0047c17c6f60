//! Apps: credentials, feature switches and limits, as configured.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use serde::Deserialize;

/// One `[[apps.webhooks]]` entry: where to POST the app's webhooks, and which.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Event types to send; empty means all.
    #[serde(default)]
    pub events: Vec<String>,
}

impl WebhookConfig {
    /// Whether this webhook receives events named `name`.
    pub fn wants(&self, name: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == name)
    }
}

/// One `[[apps]]` entry: every key of the config contract, with Pusher's published defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppConfig {
    pub id: String,
    pub key: String,
    pub secret: String,
    /// Name of an environment variable holding the secret, instead of `secret` (resolved
    /// into `secret` when the configuration is loaded).
    pub secret_env: Option<String>,
    pub enabled: bool,
    pub enable_client_messages: bool,
    pub enable_user_authentication: bool,
    pub enable_subscription_count: bool,
    /// Several webhook events per request (Pusher's "batch webhooks").
    pub enable_webhook_batching: bool,
    pub user_authentication_timeout_s: u64,
    /// 0 = unlimited.
    pub max_connections: u64,
    pub max_client_events_per_second: u32,
    /// 0 = unlimited.
    pub max_backend_events_per_second: u64,
    /// 0 = unlimited.
    pub max_read_requests_per_second: u64,
    pub max_presence_members_per_channel: u64,
    pub max_presence_member_size_kb: u64,
    pub max_channel_name_length: usize,
    pub max_event_channels_at_once: usize,
    pub max_event_name_length: usize,
    pub max_event_payload_kb: u64,
    pub max_event_batch_size: usize,
    /// Channels one socket may be subscribed to at once (at least 1).
    pub max_subscriptions_per_connection: usize,
    /// `pusher:subscribe` requests per second per socket (token bucket, burst
    /// `max_subscriptions_per_connection`); 0 = unlimited.
    pub max_subscription_requests_per_second: u32,
    /// How long the last REST event of a cache channel is kept (seconds, 1..=1800).
    pub cache_ttl_s: u64,
    /// Empty = any origin.
    pub allowed_origins: Vec<String>,
    pub webhooks: Vec<WebhookConfig>,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            key: String::new(),
            secret: String::new(),
            secret_env: None,
            enabled: true,
            enable_client_messages: false,
            enable_user_authentication: false,
            enable_subscription_count: false,
            enable_webhook_batching: false,
            user_authentication_timeout_s: 30,
            max_connections: 0,
            max_client_events_per_second: 10,
            max_backend_events_per_second: 0,
            max_read_requests_per_second: 0,
            max_presence_members_per_channel: 100,
            max_presence_member_size_kb: 1,
            max_channel_name_length: 164,
            max_event_channels_at_once: 100,
            max_event_name_length: 200,
            max_event_payload_kb: 10,
            max_event_batch_size: 10,
            max_subscriptions_per_connection: 200,
            max_subscription_requests_per_second: 50,
            cache_ttl_s: 1800,
            allowed_origins: Vec::new(),
            webhooks: Vec::new(),
        }
    }
}

impl AppConfig {
    /// Largest accepted event `data`, in bytes.
    pub fn max_payload_bytes(&self) -> usize {
        (self.max_event_payload_kb as usize).saturating_mul(1024)
    }

    /// How long a cache channel's last event is kept.
    pub fn cache_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.cache_ttl_s)
    }

    /// Largest accepted presence `user_info`, in bytes.
    pub fn max_member_bytes(&self) -> usize {
        (self.max_presence_member_size_kb as usize).saturating_mul(1024)
    }

    /// Whether a WebSocket `Origin` header value may connect.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        if self.allowed_origins.is_empty() {
            return true;
        }
        origin.is_some_and(|o| {
            self.allowed_origins
                .iter()
                .any(|a| a == "*" || a.eq_ignore_ascii_case(o))
        })
    }
}

/// A configured app. Its REST budgets are cluster-wide, kept by the cluster state
/// ([`crate::ClusterState::take_rate`]).
#[derive(Debug)]
pub struct App {
    pub config: AppConfig,
    /// Connections open on this node, for re-registering them in the cluster state.
    pub local_connections: AtomicU64,
}

impl App {
    pub fn new(config: AppConfig) -> Self {
        Self {
            local_connections: AtomicU64::new(0),
            config,
        }
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }
}

/// Every app this node serves, found by id (REST) or key (WebSocket).
#[derive(Debug, Default)]
pub struct AppRegistry {
    by_id: HashMap<String, Arc<App>>,
    by_key: HashMap<String, Arc<App>>,
}

impl AppRegistry {
    /// Build the registry; duplicate ids or keys are a configuration error, reported by the
    /// server before this is called.
    pub fn new(apps: impl IntoIterator<Item = AppConfig>) -> Self {
        let mut registry = Self::default();
        for config in apps {
            let app = Arc::new(App::new(config));
            registry.by_id.insert(app.config.id.clone(), app.clone());
            registry.by_key.insert(app.config.key.clone(), app);
        }
        registry
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id.get(id)
    }

    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.by_id.values()
    }
}
