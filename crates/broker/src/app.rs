//! Apps: credentials, feature switches and limits, as configured.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use serde::Deserialize;

use crate::connection::ConnectionHandle;
use crate::frame;

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
/// Its `Debug` output shows whether a secret is set, never the secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppConfig {
    pub id: String,
    pub key: String,
    pub secret: String,
    /// Name of an environment variable holding the secret, instead of `secret` (resolved
    /// into `secret` when the configuration is loaded).
    pub secret_env: Option<String>,
    /// The secret before a rotation: signatures made with it are still accepted until
    /// `previous_secret_expires_at`, so clients and backends can move to `secret` without
    /// downtime. Never equal to `secret`.
    pub previous_secret: Option<String>,
    /// When `previous_secret` stops being accepted: Unix seconds (the same instant on every
    /// node, whenever each reloaded). Required with `previous_secret`.
    pub previous_secret_expires_at: Option<u64>,
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

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |secret: Option<&str>| match secret {
            Some(s) if !s.is_empty() => "<redacted>",
            Some(_) => "<empty>",
            None => "<none>",
        };
        f.debug_struct("AppConfig")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("secret", &redacted(Some(&self.secret)))
            .field("secret_env", &self.secret_env)
            .field("previous_secret", &redacted(self.previous_secret.as_deref()))
            .field("previous_secret_expires_at", &self.previous_secret_expires_at)
            .field("enabled", &self.enabled)
            .field("enable_client_messages", &self.enable_client_messages)
            .field("enable_user_authentication", &self.enable_user_authentication)
            .field("enable_subscription_count", &self.enable_subscription_count)
            .field("enable_webhook_batching", &self.enable_webhook_batching)
            .field("user_authentication_timeout_s", &self.user_authentication_timeout_s)
            .field("max_connections", &self.max_connections)
            .field("max_client_events_per_second", &self.max_client_events_per_second)
            .field("max_backend_events_per_second", &self.max_backend_events_per_second)
            .field("max_read_requests_per_second", &self.max_read_requests_per_second)
            .field(
                "max_presence_members_per_channel",
                &self.max_presence_members_per_channel,
            )
            .field("max_presence_member_size_kb", &self.max_presence_member_size_kb)
            .field("max_channel_name_length", &self.max_channel_name_length)
            .field("max_event_channels_at_once", &self.max_event_channels_at_once)
            .field("max_event_name_length", &self.max_event_name_length)
            .field("max_event_payload_kb", &self.max_event_payload_kb)
            .field("max_event_batch_size", &self.max_event_batch_size)
            .field(
                "max_subscriptions_per_connection",
                &self.max_subscriptions_per_connection,
            )
            .field(
                "max_subscription_requests_per_second",
                &self.max_subscription_requests_per_second,
            )
            .field("cache_ttl_s", &self.cache_ttl_s)
            .field("allowed_origins", &self.allowed_origins)
            .field("webhooks", &self.webhooks)
            .finish()
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            key: String::new(),
            secret: String::new(),
            secret_env: None,
            previous_secret: None,
            previous_secret_expires_at: None,
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

    /// `previous_secret` while it is still accepted at `now_unix` (seconds).
    pub fn previous_secret_at(&self, now_unix: u64) -> Option<&str> {
        match (&self.previous_secret, self.previous_secret_expires_at) {
            (Some(previous), Some(expires)) if now_unix < expires => Some(previous),
            _ => None,
        }
    }

    /// Check a signature with `secret` and, while it is accepted, `previous_secret`: `verify`
    /// runs for each (both always, each a constant-time comparison), and the first error is
    /// returned when neither matches.
    pub fn verify_signed<E>(&self, now_unix: u64, verify: impl Fn(&str) -> Result<(), E>) -> Result<(), E> {
        let current = verify(&self.secret);
        let Some(previous) = self.previous_secret_at(now_unix) else {
            return current;
        };
        match (current, verify(previous)) {
            (Ok(()), _) | (_, Ok(())) => Ok(()),
            (Err(e), Err(_)) => Err(e),
        }
    }

    /// The same app with every secret blanked, to compare what else changed.
    fn without_secrets(&self) -> Self {
        Self {
            secret: String::new(),
            previous_secret: None,
            previous_secret_expires_at: None,
            secret_env: None,
            ..self.clone()
        }
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

/// A configured app: its identity (the id), its current configuration (replaced on reload) and
/// the runtime state of this node, which a reload that keeps the id keeps too.
///
/// Sessions hold an `Arc<App>` for their lifetime, so they read the configuration through
/// [`App::config`] on every action: a reload's new limits and secrets apply to the next action
/// of an open connection. The lock is a `std` `RwLock` held only to clone an `Arc` (no await,
/// no work under it): readers never wait for each other, and a reload's write is rare.
#[derive(Debug)]
pub struct App {
    id: String,
    config: RwLock<Arc<AppConfig>>,
    /// Connections open on this node, for re-registering them in the cluster state.
    pub local_connections: AtomicU64,
    /// The sockets open on this node, to close them when the app is disabled or removed.
    sockets: DashMap<Arc<str>, ConnectionHandle>,
    /// Set when a reload removed the app: sockets still being admitted are refused.
    removed: AtomicBool,
}

impl App {
    pub fn new(config: AppConfig) -> Self {
        Self {
            id: config.id.clone(),
            config: RwLock::new(Arc::new(config)),
            local_connections: AtomicU64::new(0),
            sockets: DashMap::new(),
            removed: AtomicBool::new(false),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The app's configuration now (a reload may replace it at any time).
    pub fn config(&self) -> Arc<AppConfig> {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_config(&self, config: Arc<AppConfig>) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = config;
    }

    /// Whether a reload removed the app.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// Whether new connections and REST calls are refused (disabled or removed).
    pub fn is_refused(&self) -> bool {
        self.is_removed() || !self.config().enabled
    }

    pub(crate) fn track(&self, conn: &ConnectionHandle) {
        self.sockets.insert(conn.socket_id_arc().clone(), conn.clone());
    }

    pub(crate) fn untrack(&self, conn: &ConnectionHandle) {
        self.sockets.remove(conn.socket_id());
    }

    /// Sockets of this app open on this node.
    pub fn open_sockets(&self) -> usize {
        self.sockets.len()
    }

    /// Close every socket of the app on this node: `pusher:error` `code`, then close `code`.
    pub fn close_sockets(&self, code: u16, message: &str) -> usize {
        let error = frame::text(&ferrocast_protocol::outbound::error(Some(code), message));
        let conns: Vec<ConnectionHandle> = self.sockets.iter().map(|e| e.value().clone()).collect();
        for conn in &conns {
            conn.send(error.clone());
            conn.close(code);
        }
        conns.len()
    }
}

/// What a reload changed about one app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppChangeKind {
    Added,
    Removed,
    Disabled,
    Enabled,
    /// `secret` changed (never logged: only that it changed).
    SecretChanged,
    /// `previous_secret` or its expiry changed.
    PreviousSecretChanged,
    KeyChanged,
    /// Any limit or feature switch (everything not listed here).
    LimitsChanged,
    WebhooksChanged,
}

impl AppChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Disabled => "disabled",
            Self::Enabled => "enabled",
            Self::SecretChanged => "secret",
            Self::PreviousSecretChanged => "previous_secret",
            Self::KeyChanged => "key",
            Self::LimitsChanged => "limits",
            Self::WebhooksChanged => "webhooks",
        }
    }
}

/// One app a reload changed, and how. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppChange {
    pub id: String,
    pub what: Vec<AppChangeKind>,
}

impl AppChange {
    pub fn has(&self, kind: AppChangeKind) -> bool {
        self.what.contains(&kind)
    }

    /// `what` as a comma-separated list, for a log line.
    pub fn describe(&self) -> String {
        self.what.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",")
    }
}

/// What changed between two app lists, per app id (sorted by id).
pub fn diff_apps(old: &[Arc<AppConfig>], new: &[AppConfig]) -> Vec<AppChange> {
    let old_by_id: HashMap<&str, &AppConfig> = old.iter().map(|c| (c.id.as_str(), c.as_ref())).collect();
    let new_ids: std::collections::HashSet<&str> = new.iter().map(|c| c.id.as_str()).collect();
    let mut changes = Vec::new();
    for config in new {
        let Some(before) = old_by_id.get(config.id.as_str()) else {
            changes.push(AppChange {
                id: config.id.clone(),
                what: vec![AppChangeKind::Added],
            });
            continue;
        };
        let mut what = Vec::new();
        match (before.enabled, config.enabled) {
            (true, false) => what.push(AppChangeKind::Disabled),
            (false, true) => what.push(AppChangeKind::Enabled),
            _ => {}
        }
        if before.secret != config.secret {
            what.push(AppChangeKind::SecretChanged);
        }
        if before.previous_secret != config.previous_secret
            || before.previous_secret_expires_at != config.previous_secret_expires_at
        {
            what.push(AppChangeKind::PreviousSecretChanged);
        }
        if before.key != config.key {
            what.push(AppChangeKind::KeyChanged);
        }
        if before.webhooks != config.webhooks || before.enable_webhook_batching != config.enable_webhook_batching {
            what.push(AppChangeKind::WebhooksChanged);
        }
        let rest = |c: &AppConfig| AppConfig {
            enabled: true,
            key: String::new(),
            webhooks: Vec::new(),
            enable_webhook_batching: false,
            ..c.without_secrets()
        };
        if rest(before) != rest(config) {
            what.push(AppChangeKind::LimitsChanged);
        }
        if !what.is_empty() {
            changes.push(AppChange {
                id: config.id.clone(),
                what,
            });
        }
    }
    for before in old.iter().filter(|c| !new_ids.contains(c.id.as_str())) {
        changes.push(AppChange {
            id: before.id.clone(),
            what: vec![AppChangeKind::Removed],
        });
    }
    changes.sort_by(|a, b| a.id.cmp(&b.id));
    changes
}

/// One immutable set of apps, found by id (REST) or key (WebSocket).
#[derive(Debug, Default)]
pub struct AppSet {
    by_id: HashMap<String, Arc<App>>,
    by_key: HashMap<String, Arc<App>>,
}

impl AppSet {
    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id.get(id)
    }

    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// Every app this node serves: the seam the node and the server read apps through, whatever
/// their source (the `[[apps]]` of the config file today). A source hands a whole new list to
/// [`AppRegistry::replace`] (through `Node::apply_apps`), which swaps the set at once.
///
/// Lookups happen per connection and per REST call. The set is an `Arc` behind a `std`
/// `RwLock` that is held only to clone that `Arc` (no await, no work under it), so readers
/// never block each other and a reload (rare) waits only for those few instructions; this
/// needs no extra dependency and costs about what an atomic swap cell would.
#[derive(Debug, Default)]
pub struct AppRegistry {
    current: RwLock<Arc<AppSet>>,
}

impl AppRegistry {
    /// Build the registry; duplicate ids or keys are a configuration error, reported by the
    /// server before this is called.
    pub fn new(apps: impl IntoIterator<Item = AppConfig>) -> Self {
        let registry = Self::default();
        registry.replace(apps.into_iter().collect());
        registry
    }

    /// The current set (a reload replaces it; this one stays valid for as long as it is held).
    pub fn snapshot(&self) -> Arc<AppSet> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn by_id(&self, id: &str) -> Option<Arc<App>> {
        self.snapshot().by_id(id).cloned()
    }

    pub fn by_key(&self, key: &str) -> Option<Arc<App>> {
        self.snapshot().by_key(key).cloned()
    }

    /// Every app's configuration now, sorted by id.
    pub fn configs(&self) -> Vec<Arc<AppConfig>> {
        let mut configs: Vec<_> = self.snapshot().iter().map(|a| a.config()).collect();
        configs.sort_by(|a, b| a.id.cmp(&b.id));
        configs
    }

    /// Swap in a new list of apps (ids and keys unique, as validated by the caller) and return
    /// what changed, with the apps that were removed (marked so, not yet closed). Apps whose id
    /// stays keep their runtime state (connection counts, open sockets); their configuration is
    /// replaced. Calls must not overlap (the server's reloader holds a lock around each): two
    /// at once could leave a mix of both lists.
    pub fn replace(&self, apps: Vec<AppConfig>) -> (Vec<AppChange>, Vec<Arc<App>>) {
        let old = self.snapshot();
        let old_configs: Vec<Arc<AppConfig>> = old.iter().map(|a| a.config()).collect();
        let changes = diff_apps(&old_configs, &apps);
        let mut next = AppSet::default();
        for config in apps {
            let app = match old.by_id(&config.id) {
                Some(app) => {
                    if *app.config() != config {
                        app.set_config(Arc::new(config));
                    }
                    app.clone()
                }
                None => Arc::new(App::new(config)),
            };
            next.by_key.insert(app.config().key.clone(), app.clone());
            next.by_id.insert(app.id().to_owned(), app);
        }
        let removed: Vec<Arc<App>> = old
            .iter()
            .filter(|a| !next.by_id.contains_key(a.id()))
            .cloned()
            .collect();
        for app in &removed {
            app.removed.store(true, Ordering::Release);
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        (changes, removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str, key: &str, secret: &str) -> AppConfig {
        AppConfig {
            id: id.into(),
            key: key.into(),
            secret: secret.into(),
            ..AppConfig::default()
        }
    }

    fn kinds(changes: &[AppChange], id: &str) -> Vec<AppChangeKind> {
        changes
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.what.clone())
            .unwrap_or_default()
    }

    #[test]
    fn replace_keeps_the_runtime_state_of_kept_apps_and_reports_each_change() {
        let registry = AppRegistry::new([app("a", "ka", "sa"), app("b", "kb", "sb"), app("c", "kc", "sc")]);
        let a = registry.by_id("a").unwrap();
        a.local_connections.store(7, Ordering::Relaxed);
        let b = registry.by_id("b").unwrap();

        let mut a2 = app("a", "ka", "sa2");
        a2.max_connections = 5;
        let mut b2 = app("b", "kb2", "sb");
        b2.enabled = false;
        b2.webhooks = vec![WebhookConfig {
            url: "http://example.test/h".into(),
            events: vec![],
        }];
        let (changes, removed) = registry.replace(vec![a2, b2, app("d", "kd", "sd")]);

        assert_eq!(
            kinds(&changes, "a"),
            [AppChangeKind::SecretChanged, AppChangeKind::LimitsChanged]
        );
        assert_eq!(
            kinds(&changes, "b"),
            [
                AppChangeKind::Disabled,
                AppChangeKind::KeyChanged,
                AppChangeKind::WebhooksChanged
            ]
        );
        assert_eq!(kinds(&changes, "c"), [AppChangeKind::Removed]);
        assert_eq!(kinds(&changes, "d"), [AppChangeKind::Added]);
        assert_eq!(removed.len(), 1);
        assert!(removed[0].is_removed() && removed[0].id() == "c");

        // Same Arc, same counters, new configuration (seen by holders of the old Arc too).
        let a_now = registry.by_id("a").unwrap();
        assert!(Arc::ptr_eq(&a, &a_now));
        assert_eq!(a.local_connections.load(Ordering::Relaxed), 7);
        assert_eq!(a.config().secret, "sa2");
        assert_eq!(a.config().max_connections, 5);
        // The key index follows the new key; the old key no longer finds the app.
        assert!(registry.by_key("kb").is_none());
        assert!(Arc::ptr_eq(&registry.by_key("kb2").unwrap(), &b));
        assert!(b.is_refused());
        assert!(registry.by_id("c").is_none() && registry.by_key("kc").is_none());
        assert!(registry.by_id("d").is_some());

        // The same list again changes nothing.
        let same: Vec<AppConfig> = registry.configs().iter().map(|c| (**c).clone()).collect();
        let (changes, removed) = registry.replace(same);
        assert!(changes.is_empty() && removed.is_empty(), "{changes:?}");
    }

    #[test]
    fn re_enabling_and_previous_secret_changes_are_reported() {
        let mut off = app("a", "ka", "sa");
        off.enabled = false;
        let registry = AppRegistry::new([off]);
        let mut on = app("a", "ka", "sa");
        on.previous_secret = Some("old".into());
        on.previous_secret_expires_at = Some(10);
        let (changes, _) = registry.replace(vec![on]);
        assert_eq!(
            kinds(&changes, "a"),
            [AppChangeKind::Enabled, AppChangeKind::PreviousSecretChanged]
        );
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let mut c = app("a", "ka", "very-secret");
        c.previous_secret = Some("older-secret".into());
        let text = format!("{c:?}");
        assert!(
            !text.contains("very-secret") && !text.contains("older-secret"),
            "{text}"
        );
        assert!(text.contains("ka") && text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn the_previous_secret_is_accepted_until_it_expires() {
        let mut c = app("a", "ka", "new");
        c.previous_secret = Some("old".into());
        c.previous_secret_expires_at = Some(100);
        let check = |given: &str| {
            let given = given.to_owned();
            move |secret: &str| {
                if secret == given {
                    Ok(())
                } else {
                    Err(secret.to_owned())
                }
            }
        };
        assert_eq!(c.verify_signed(99, check("new")), Ok(()));
        assert_eq!(c.verify_signed(99, check("old")), Ok(()));
        // The error is the current secret's.
        assert_eq!(c.verify_signed(99, check("x")), Err("new".to_owned()));
        assert_eq!(c.verify_signed(100, check("old")), Err("new".to_owned()));
        assert_eq!(c.verify_signed(100, check("new")), Ok(()));
        c.previous_secret_expires_at = None;
        assert_eq!(c.verify_signed(0, check("old")), Err("new".to_owned()));
    }
}
