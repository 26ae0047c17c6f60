//! Prometheus metrics, served on their own port so scraping never competes with clients.
//!
//! Per-app handles are resolved once per connection (see [`AppMetrics`]) so the per-frame path
//! only touches atomics, never the label maps. The node core reports deliveries and limit
//! rejections through [`NodeObserver`], implemented here.
//!
//! Every series whose label values are known in advance (the configured apps, message kinds,
//! limits, close codes the node uses, REST routes, webhook events and reasons, ...) is created
//! at zero when the registry is built ([`Metrics::for_apps`], [`WebhookMetrics::app`]): a scrape
//! right after start already has them, so dashboards and `rate()` / absence alerts work on a
//! quiet node. Nothing is labelled per channel or per socket.

use std::cell::RefCell;

use ferrocast_broker::audit::AuthDenial;
use ferrocast_broker::{CacheReplay, Limit, MessageKind, NodeObserver};
use ferrocast_protocol::codes::close;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::rest::Route;

/// The prefix of every metric name.
const NAMESPACE: &str = "ferrocast";

/// Close codes a connection is known in advance to end with, exported at zero for each app: the
/// client's own closes (1000 normal, 1001 going away), the transport errors the node closes with
/// (1002, 1003, 1007, 1009), a peer gone without a close frame (1006), and the node's own closes
/// (4009 unauthorized or terminated by the app, 4100 slow consumer, 4200 drain, 4201 pong
/// timeout). Any other code a client closes with is counted as `other`.
pub const CLOSE_CODES: [u16; 11] = [
    1000,
    1001,
    close::PROTOCOL_ERROR,
    close::UNSUPPORTED_DATA,
    crate::websocket::ABNORMAL,
    close::INVALID_PAYLOAD,
    close::MESSAGE_TOO_BIG,
    close::UNAUTHORIZED,
    close::OVER_CAPACITY,
    close::RECONNECT,
    close::PONG_TIMEOUT,
];

/// Webhook event names, the `event` label of `ferrocast_webhook_events_total` (anything else is
/// counted as `unknown`).
pub const WEBHOOK_EVENTS: [&str; 7] = [
    "channel_occupied",
    "channel_vacated",
    "member_added",
    "member_removed",
    "client_event",
    "cache_miss",
    "subscription_count",
];

/// Why webhook events are abandoned, the `reason` label of `ferrocast_webhook_failures_total`.
pub const WEBHOOK_FAILURE_REASONS: [&str; 5] = [
    "expired",
    "queue_full",
    "shutdown",
    "queue_unavailable",
    "cluster_state_unavailable",
];

/// The route label of requests to no API route (answered 404).
const UNKNOWN_ROUTE: &str = "unknown";

/// Latency buckets from 50 µs to 5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The registry while it is filled: remembers the name of every family registered, so a test
/// can check that each one is exported from the start (a labelled family without any series is
/// left out of a scrape).
struct Families {
    registry: Registry,
    names: RefCell<Vec<String>>,
}

// Metric names and labels are constants of this file: registering them cannot fail at run
// time unless this file is wrong, which the tests below catch.
fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Families, c: C) -> C {
    for desc in c.desc() {
        registry
            .names
            .borrow_mut()
            .push(format!("{NAMESPACE}_{}", desc.fq_name));
    }
    registry
        .registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric registration: {e}"));
    c
}

fn counter(registry: &Families, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(registry, c)
}

fn gauge(registry: &Families, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(registry, g)
}

/// `ferrocast_build_info{version,commit} 1`: joined on other series, it tells which build each
/// node runs during a rolling upgrade.
fn build_info(registry: &Families) -> IntGauge {
    let info = gauge(
        registry,
        "build_info",
        "Always 1; the labels are the version and git commit of the running binary (ferrocast --version)",
        &["version", "commit"],
    )
    .with_label_values(&[crate::VERSION, crate::COMMIT]);
    info.set(1);
    info
}

/// Webhook request buckets from 5 ms up to the longest request timeout (60 s).
const WEBHOOK_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

fn histogram(registry: &Families, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    histogram_with(registry, name, help, labels, LATENCY_BUCKETS)
}

fn histogram_with(registry: &Families, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let h = HistogramVec::new(opts, labels).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(registry, h)
}

/// Every metric of the node.
pub struct Metrics {
    prom: Registry,
    /// Every family registered here (not the process collector's), with its prefix.
    families: Vec<String>,
    connections: IntGaugeVec,
    connections_opened: IntCounterVec,
    connections_closed: IntCounterVec,
    ws_messages_in: IntCounterVec,
    ws_bytes_in: IntCounterVec,
    ws_messages_out: IntCounterVec,
    ws_bytes_out: IntCounterVec,
    slow_consumers: IntCounterVec,
    input_paused: IntCounterVec,
    auth_denied: IntCounterVec,
    rest_requests: IntCounterVec,
    rest_duration: HistogramVec,
    /// Per route (by label), its 200 counter and its duration histogram: resolved once, so a
    /// request that succeeds costs no label lookup (nor a status string).
    rest_ok: Vec<(&'static str, IntCounter, Histogram)>,
    delivered: IntCounterVec,
    fan_out_latency: Histogram,
    socket_latency: Histogram,
    limit_rejections: IntCounterVec,
    cache_replays: IntCounterVec,
    subscription_count_updates: IntCounterVec,
    registration_repairs: IntCounter,
    /// Always 1; its labels say which build runs (`ferrocast --version`).
    _build_info: IntGauge,
    subscriptions: IntGaugeVec,
    channels: IntGaugeVec,
    presence_members: IntGaugeVec,
    pub cluster: ClusterMetrics,
    pub webhooks: WebhookMetrics,
    pub edge: EdgeMetrics,
    pub registry: RegistryMetrics,
}

/// The app registry (`[registry]`), refreshed from the postgres registry's own counters at each
/// scrape. With the `file` driver, `registry_up` and `registry_loaded` are 1 and the rest stay 0.
pub struct RegistryMetrics {
    pub up: IntGauge,
    pub loaded: IntGauge,
    pub apps: IntGauge,
    pub errors: IntCounter,
    pub reloads: IntCounter,
    pub notifications: IntCounter,
    pub last_reload: IntGauge,
    lookups: IntCounterVec,
}

/// The `result` label of `ferrocast_registry_lookups_total`.
pub const REGISTRY_LOOKUP_RESULTS: [&str; 5] = ["found", "not_found", "cached", "limited", "error"];

impl RegistryMetrics {
    fn new(r: &Families) -> Self {
        let plain_gauge = |name: &str, help: &str| gauge(r, name, help, &[]).with_label_values(&[] as &[&str]);
        let plain_counter = |name: &str, help: &str| counter(r, name, help, &[]).with_label_values(&[] as &[&str]);
        let lookups = counter(
            r,
            "registry_lookups_total",
            "Lookups in PostgreSQL of app keys and ids the node did not know, by result: found, not_found, cached (not found a moment ago), limited (over the lookup rate or concurrency), error",
            &["result"],
        );
        for result in REGISTRY_LOOKUP_RESULTS {
            lookups.with_label_values(&[result]);
        }
        Self {
            up: plain_gauge(
                "registry_up",
                "1 while the app registry answers (postgres: the last query succeeded; file: always)",
            ),
            loaded: plain_gauge(
                "registry_loaded",
                "1 once the node has loaded its apps (postgres: the first full read; not ready before)",
            ),
            apps: plain_gauge("registry_apps", "Apps read from PostgreSQL by the last full read"),
            errors: plain_counter(
                "registry_errors_total",
                "Failed PostgreSQL queries and connections of the app registry (the cached apps stay in use)",
            ),
            reloads: plain_counter(
                "registry_reloads_total",
                "Full reads of the apps table (start, notification, reconnect, periodic, lookup)",
            ),
            notifications: plain_counter(
                "registry_notifications_total",
                "Change notifications received from PostgreSQL (LISTEN on the apps table's channel)",
            ),
            last_reload: plain_gauge(
                "registry_last_reload_timestamp_seconds",
                "Unix time of the last successful full read of the apps table",
            ),
            lookups,
        }
    }

    /// Copy the postgres registry's counters (see [`ClusterMetrics::sync`]).
    pub fn sync(&self, stats: &ferrocast_registry_postgres::RegistryStats) {
        use std::sync::atomic::Ordering::Relaxed;
        self.up.set(i64::from(stats.up.load(Relaxed)));
        self.loaded.set(i64::from(stats.loaded.load(Relaxed)));
        self.apps.set(stats.apps.load(Relaxed) as i64);
        self.last_reload.set(stats.last_reload_unix.load(Relaxed) as i64);
        ClusterMetrics::sync(&self.errors, stats.errors.load(Relaxed));
        ClusterMetrics::sync(&self.reloads, stats.reloads.load(Relaxed));
        ClusterMetrics::sync(&self.notifications, stats.notifications.load(Relaxed));
        let totals = [
            stats.lookups_found.load(Relaxed),
            stats.lookups_not_found.load(Relaxed),
            stats.lookups_cached.load(Relaxed),
            stats.lookups_limited.load(Relaxed),
            stats.lookups_failed.load(Relaxed),
        ];
        for (result, total) in REGISTRY_LOOKUP_RESULTS.iter().zip(totals) {
            ClusterMetrics::sync(&self.lookups.with_label_values(&[result]), total);
        }
    }
}

/// The listeners: deadlines hit, accept failures, refused connections, TLS reloads. Every
/// labelled handle is resolved here once, so the accept path only touches atomics.
pub struct EdgeMetrics {
    pub header_timeouts: IntCounter,
    pub body_timeouts: IntCounter,
    pub keep_alive_timeouts: IntCounter,
    pub accept_errors: IntCounter,
    pub refused_node_full: IntCounter,
    pub refused_ip_connections: IntCounter,
    pub refused_ip_rate: IntCounter,
    pub refused_metrics_full: IntCounter,
    /// Open TCP connections of the client listener (HTTP and WebSocket).
    pub open_tcp: IntGauge,
    pub tls_reload_ok: IntCounter,
    pub tls_reload_error: IntCounter,
    /// Reloads of the config file's `[[apps]]` (SIGHUP or file change).
    pub config_reload_ok: IntCounter,
    pub config_reload_refused: IntCounter,
    /// Unix seconds of the last configuration loaded and applied (the start, then each reload).
    pub config_last_success: IntGauge,
}

impl EdgeMetrics {
    fn new(r: &Families) -> Self {
        let timeouts = counter(
            r,
            "http_timeouts_total",
            "HTTP connections closed by a deadline: header (incl. PROXY header, TLS and WebSocket handshake), body, keep_alive",
            &["phase"],
        );
        let refused = counter(
            r,
            "connections_refused_total",
            "Connections refused: node_full (open-file reserve), ip_connections, ip_rate (per-IP caps), metrics_full (metrics port cap)",
            &["reason"],
        );
        let reloads = counter(
            r,
            "tls_reloads_total",
            "TLS certificate reloads (SIGHUP or file change), by result: ok, or error (the certificate in use is kept)",
            &["result"],
        );
        let config_reloads = counter(
            r,
            "config_reloads_total",
            "Reloads of the config file's apps (SIGHUP or file change), by result: ok, or refused (the file does not load or validate; the running apps are kept)",
            &["result"],
        );
        let one = |c: &IntCounterVec, l: &str| c.with_label_values(&[l]);
        let config_last_success = gauge(
            r,
            "config_last_reload_success_timestamp_seconds",
            "Unix time of the last configuration loaded and applied: the start, then each successful reload",
            &[],
        )
        .with_label_values(&[] as &[&str]);
        config_last_success.set(ferrocast_broker::unix_seconds() as i64);
        Self {
            config_reload_ok: one(&config_reloads, "ok"),
            config_reload_refused: one(&config_reloads, "refused"),
            config_last_success,
            header_timeouts: one(&timeouts, "header"),
            body_timeouts: one(&timeouts, "body"),
            keep_alive_timeouts: one(&timeouts, "keep_alive"),
            accept_errors: counter(
                r,
                "accept_errors_total",
                "Failed accepts on the listeners (e.g. out of file descriptors)",
                &[],
            )
            .with_label_values(&[] as &[&str]),
            refused_node_full: one(&refused, "node_full"),
            refused_ip_connections: one(&refused, "ip_connections"),
            refused_ip_rate: one(&refused, "ip_rate"),
            refused_metrics_full: one(&refused, "metrics_full"),
            open_tcp: gauge(
                r,
                "open_tcp_connections",
                "Open TCP connections on the client listener",
                &[],
            )
            .with_label_values(&[] as &[&str]),
            tls_reload_ok: one(&reloads, "ok"),
            tls_reload_error: one(&reloads, "error"),
        }
    }
}

/// Webhook delivery: what waits, what went out, what was retried and what was given up.
pub struct WebhookMetrics {
    queue_depth: IntGaugeVec,
    oldest_age: IntGaugeVec,
    dead_letter_depth: IntGaugeVec,
    takeovers: IntCounterVec,
    dead_letters: IntCounterVec,
    deliveries: IntCounterVec,
    events: IntCounterVec,
    retries: IntCounterVec,
    failures: IntCounterVec,
    pub request_duration: Histogram,
}

/// The webhook handles of one app, resolved once at startup.
#[derive(Clone)]
pub struct AppWebhookMetrics {
    /// Set from the queue's stats by a periodic refresh, not per event.
    pub queue_depth: IntGauge,
    pub oldest_age: IntGauge,
    pub dead_letter_depth: IntGauge,
    pub takeovers: IntCounter,
    pub dead_letters: IntCounter,
    pub deliveries: IntCounter,
    pub retries: IntCounter,
    events: IntCounterVec,
    failures: IntCounterVec,
    app_id: String,
}

impl AppWebhookMetrics {
    /// `count` events named `event` were delivered.
    pub fn delivered(&self, event: &str, count: u64) {
        self.events
            .with_label_values(&[self.app_id.as_str(), event])
            .inc_by(count);
    }

    /// `count` events were abandoned for `reason` (one of [`WEBHOOK_FAILURE_REASONS`]).
    pub fn failed(&self, reason: &str, count: u64) {
        debug_assert!(
            WEBHOOK_FAILURE_REASONS.contains(&reason),
            "webhook failure reason {reason:?} is missing from WEBHOOK_FAILURE_REASONS"
        );
        self.failures
            .with_label_values(&[self.app_id.as_str(), reason])
            .inc_by(count);
    }
}

impl WebhookMetrics {
    fn new(r: &Families) -> Self {
        Self {
            queue_depth: gauge(
                r,
                "webhook_queue_depth",
                "Webhook events waiting to be sent (queued and not yet acknowledged, every node's)",
                &["app_id"],
            ),
            oldest_age: gauge(
                r,
                "webhook_oldest_job_age_seconds",
                "Age of the oldest webhook event waiting to be sent",
                &["app_id"],
            ),
            dead_letter_depth: gauge(
                r,
                "webhook_dead_letter_depth",
                "Webhook events kept as dead letters, waiting for a replay",
                &["app_id"],
            ),
            takeovers: counter(
                r,
                "webhook_takeovers_total",
                "Webhook lanes this node took over with jobs a previous holder had claimed",
                &["app_id"],
            ),
            dead_letters: counter(
                r,
                "webhook_dead_letters_total",
                "Webhook events moved to the dead letters after their retry window",
                &["app_id"],
            ),
            deliveries: counter(
                r,
                "webhook_deliveries_total",
                "Webhook requests answered with 2xx",
                &["app_id"],
            ),
            events: counter(
                r,
                "webhook_events_total",
                "Webhook events delivered, by event name",
                &["app_id", "event"],
            ),
            retries: counter(
                r,
                "webhook_retries_total",
                "Webhook requests retried after a failure",
                &["app_id"],
            ),
            failures: counter(
                r,
                "webhook_failures_total",
                "Webhook events abandoned, by reason: expired (moved to the dead letters), queue_full, shutdown, queue_unavailable, cluster_state_unavailable",
                &["app_id", "reason"],
            ),
            request_duration: histogram_with(
                r,
                "webhook_request_duration_seconds",
                "Webhook request time, failures included",
                &[],
                WEBHOOK_BUCKETS,
            )
            .with_label_values(&[] as &[&str]),
        }
    }

    /// The handles of an app with webhooks; its event and failure series start at zero.
    pub fn app(&self, app_id: &str) -> AppWebhookMetrics {
        for event in WEBHOOK_EVENTS {
            self.events.with_label_values(&[app_id, event]);
        }
        for reason in WEBHOOK_FAILURE_REASONS {
            self.failures.with_label_values(&[app_id, reason]);
        }
        AppWebhookMetrics {
            queue_depth: self.queue_depth.with_label_values(&[app_id]),
            oldest_age: self.oldest_age.with_label_values(&[app_id]),
            dead_letter_depth: self.dead_letter_depth.with_label_values(&[app_id]),
            takeovers: self.takeovers.with_label_values(&[app_id]),
            dead_letters: self.dead_letters.with_label_values(&[app_id]),
            deliveries: self.deliveries.with_label_values(&[app_id]),
            retries: self.retries.with_label_values(&[app_id]),
            events: self.events.clone(),
            failures: self.failures.clone(),
            app_id: app_id.to_owned(),
        }
    }
}

/// The node's link to the cluster, refreshed from the backplane's own counters at each scrape.
pub struct ClusterMetrics {
    pub ready: IntGauge,
    pub rtt: prometheus::Gauge,
    /// Observed by the backplane itself, once per received message.
    pub pubsub_lag: Histogram,
    pub published: IntCounter,
    pub received: IntCounter,
    pub errors: IntCounter,
    pub reconnects: IntCounter,
    pub decode_errors: IntCounter,
    pub reaped_nodes: IntCounter,
    pub replayed: IntCounter,
    pub last_replayed: IntGauge,
    pub replay_gaps: IntCounter,
    pub replay_trimmed: IntCounter,
    pub duplicates_dropped: IntCounter,
    pub resubscribed: IntCounter,
}

impl ClusterMetrics {
    fn new(registry: &Families) -> Self {
        let one = |name: &str, help: &str| counter(registry, name, help, &[]).with_label_values(&[] as &[&str]);
        let ready = gauge(
            registry,
            "backplane_up",
            "1 while the node is joined to the cluster (link up and registered)",
            &[],
        )
        .with_label_values(&[] as &[&str]);
        let rtt = prometheus::Gauge::new(
            "backplane_rtt_seconds",
            "Round trip of the last ping to Redis on the pub/sub connection",
        )
        .unwrap_or_else(|e| panic!("metric backplane_rtt_seconds: {e}"));
        let pubsub_lag = histogram(
            registry,
            "backplane_pubsub_lag_seconds",
            "Time from publish (on any node) to receipt from Redis pub/sub on this node; across hosts it includes clock skew",
            &[],
        )
        .with_label_values(&[] as &[&str]);
        Self {
            ready,
            rtt: register(registry, rtt),
            pubsub_lag,
            published: one("backplane_published_total", "Messages published to the backplane"),
            received: one("backplane_received_total", "Messages received from the backplane"),
            errors: one(
                "backplane_errors_total",
                "Failed backplane commands and connection attempts",
            ),
            reconnects: one(
                "backplane_reconnects_total",
                "Times the backplane link went down and was re-established",
            ),
            decode_errors: one(
                "backplane_decode_errors_total",
                "Backplane messages dropped as unreadable",
            ),
            reaped_nodes: one("node_reaped_total", "Dead nodes whose registrations this node removed"),
            replayed: one(
                "backplane_replayed_total",
                "Messages delivered from the channels' replay logs after reconnects to Redis",
            ),
            last_replayed: gauge(
                registry,
                "backplane_last_replayed",
                "Messages delivered from the replay logs by the last reconnect to Redis",
                &[],
            )
            .with_label_values(&[] as &[&str]),
            replay_gaps: one(
                "backplane_replay_gaps_total",
                "Channels whose replay log was trimmed past this node's position when it reconnected: messages lost for their subscribers (each logged)",
            ),
            replay_trimmed: one(
                "backplane_replay_trimmed_total",
                "Messages lost for this node's subscribers because their replay log was trimmed before the node read it after a reconnect",
            ),
            duplicates_dropped: one(
                "backplane_duplicates_dropped_total",
                "Live messages dropped because the replay after a reconnect had delivered them",
            ),
            resubscribed: one(
                "backplane_resubscribed_total",
                "Channels subscribed again on their new shard after their slot moved (Redis Cluster resharding or manual failover)",
            ),
        }
    }

    /// Bring a counter up to a monotonic total kept elsewhere.
    pub fn sync(counter: &IntCounter, total: u64) {
        let current = counter.get();
        if total > current {
            counter.inc_by(total - current);
        }
    }
}

/// The handles of one app, cloned into each of its connections.
#[derive(Clone)]
pub struct AppMetrics {
    pub connections: IntGauge,
    pub opened: IntCounter,
    pub client_events_in: IntCounter,
    pub protocol_in: IntCounter,
    pub bytes_in: IntCounter,
    pub messages_out: IntCounter,
    pub bytes_out: IntCounter,
    pub slow_consumers: IntCounter,
    /// Times a connection's reader stopped reading input because its output queue was full.
    pub input_paused: IntCounter,
    /// Shared by every app: one series, sampled once per socket write.
    pub publish_to_socket: Histogram,
    closed: IntCounterVec,
    app_id: String,
}

impl AppMetrics {
    /// Count a closed connection by its close code. Codes outside [`CLOSE_CODES`] are counted as
    /// `other`: a client may close with any of ~4,000 valid codes, and each would otherwise
    /// become a series of its own (a client could grow the registry at will).
    pub fn closed(&self, code: u16) {
        let label = if CLOSE_CODES.contains(&code) {
            code.to_string()
        } else {
            "other".to_owned()
        };
        self.closed.with_label_values(&[self.app_id.as_str(), &label]).inc();
    }
}

impl Metrics {
    /// The metrics of a node without apps (tests).
    pub fn new() -> Self {
        Self::for_apps(std::iter::empty::<&str>())
    }

    /// The metrics of a node serving `app_ids`: every series whose labels are known in advance
    /// starts at zero (the webhook series of an app start with [`WebhookMetrics::app`]).
    pub fn for_apps<'a>(app_ids: impl IntoIterator<Item = &'a str>) -> Self {
        let registry = Registry::new_custom(Some(NAMESPACE.into()), None).unwrap_or_else(|e| panic!("registry: {e}"));
        #[cfg(target_os = "linux")]
        {
            let _ = registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()));
        }
        let families = Families {
            registry,
            names: RefCell::new(Vec::new()),
        };
        let mut metrics = Self::register_all(&families);
        metrics.rest_ok = Route::ALL
            .iter()
            .map(|route| {
                (
                    route.label(),
                    metrics.rest_requests.with_label_values(&[route.label(), "200"]),
                    metrics.rest_duration.with_label_values(&[route.label()]),
                )
            })
            .collect();
        metrics.rest_requests.with_label_values(&[UNKNOWN_ROUTE, "404"]);
        metrics.rest_duration.with_label_values(&[UNKNOWN_ROUTE]);
        for reason in AuthDenial::ALL {
            metrics.auth_denied.with_label_values(&[reason.label()]);
        }
        for app_id in app_ids {
            metrics.start_app(app_id);
        }
        metrics
    }

    /// Create the series of one app at zero.
    pub fn start_app(&self, app_id: &str) {
        let _handles = self.app(app_id);
        self.connections_closed.with_label_values(&[app_id, "other"]);
        for code in CLOSE_CODES {
            self.connections_closed.with_label_values(&[app_id, &code.to_string()]);
        }
        for kind in MessageKind::ALL {
            self.delivered.with_label_values(&[app_id, kind.label()]);
        }
        for limit in Limit::ALL {
            self.limit_rejections.with_label_values(&[app_id, limit.label()]);
        }
        for outcome in CacheReplay::ALL {
            self.cache_replays.with_label_values(&[app_id, outcome.label()]);
        }
        self.subscription_count_updates.with_label_values(&[app_id]);
        self.set_local(app_id, 0, 0, 0);
    }

    fn register_all(families: &Families) -> Self {
        let r = families;
        let app = &["app_id"];
        Self {
            connections: gauge(r, "connections", "Open WebSocket connections", app),
            connections_opened: counter(r, "connections_opened_total", "WebSocket connections accepted", app),
            connections_closed: counter(r, "connections_closed_total", "WebSocket connections closed, by close code (other: any code not exported from the start; connections refused at the handshake are not counted)", &["app_id", "code"]),
            ws_messages_in: counter(r, "ws_messages_in_total", "Frames received from clients, by kind: client_event (client-* events) or protocol (every other frame)", &["app_id", "kind"]),
            ws_bytes_in: counter(r, "ws_bytes_in_total", "Bytes of frames received from clients", app),
            ws_messages_out: counter(r, "ws_messages_out_total", "Frames written to clients", app),
            ws_bytes_out: counter(r, "ws_bytes_out_total", "Bytes written to clients", app),
            slow_consumers: counter(r, "slow_consumer_disconnects_total", "Connections closed with 4100 because their queue was full (frames or bytes)", app),
            input_paused: counter(r, "input_paused_total", "Times a connection stopped reading input because its output queue was over the high watermark", app),
            auth_denied: counter(r, "auth_denied_total", "Denied authentication, by reason: subscription_signature, signin_signature, rest_signature, rest_timestamp, unknown_app_key, origin_not_allowed, app_disabled", &["reason"]),
            rest_requests: counter(r, "rest_requests_total", "REST API requests by route and HTTP status (route unknown: a path that is no API route)", &["route", "status"]),
            rest_duration: histogram(r, "rest_request_duration_seconds", "REST API request handling time, by route", &["route"]),
            rest_ok: Vec::new(),
            delivered: counter(r, "messages_delivered_total", "Frames queued to local sockets, by message kind: api_event, client_event or protocol", &["app_id", "kind"]),
            fan_out_latency: histogram(
                r,
                "publish_to_fanout_seconds",
                "Time from publish (REST accept or client frame, on any node) to local fan-out; across hosts it includes clock skew",
                &[],
            )
            .with_label_values(&[] as &[&str]),
            socket_latency: histogram(
                r,
                "publish_to_socket_seconds",
                "Time from publish (REST accept or client frame, on any node) to the frame written to a socket, sampled once per socket write (its oldest frame); across hosts it includes clock skew",
                &[],
            )
            .with_label_values(&[] as &[&str]),
            limit_rejections: counter(r, "limit_rejections_total", "Requests refused by a limit or rate limit, by limit (named by its config key)", &["app_id", "limit"]),
            cache_replays: counter(r, "cache_replays_total", "What new subscribers of cache channels were sent: hit (the cached event), miss (pusher:cache_miss), unavailable (nothing: cache unreadable)", &["app_id", "result"]),
            subscription_count_updates: counter(
                r,
                "subscription_count_updates_total",
                "Coalesced subscription_count updates this node published (one per channel per interval cluster-wide)",
                &["app_id"],
            ),
            registration_repairs: counter(
                r,
                "registration_repairs_total",
                "Resyncs of this node's registrations after a cluster-state write failed or timed out (its outcome unknown)",
                &[],
            )
            .with_label_values(&[] as &[&str]),
            _build_info: build_info(r),
            subscriptions: gauge(r, "subscriptions", "Channel subscriptions of sockets on this node", app),
            channels: gauge(r, "occupied_channels", "Channels with at least one subscriber on this node", app),
            presence_members: gauge(r, "presence_members", "Distinct presence members per channel with a socket on this node, summed", app),
            cluster: ClusterMetrics::new(r),
            webhooks: WebhookMetrics::new(r),
            edge: EdgeMetrics::new(r),
            registry: RegistryMetrics::new(r),
            prom: r.registry.clone(),
            families: r.names.borrow().clone(),
        }
    }

    /// Families registered here that a scrape would leave out because they have no series yet.
    pub fn unexported_families(&self) -> Vec<String> {
        let exported: std::collections::HashSet<String> = self
            .prom
            .gather()
            .iter()
            .map(|family| family.name().to_owned())
            .collect();
        self.families
            .iter()
            .filter(|name| !exported.contains(*name))
            .cloned()
            .collect()
    }

    pub fn app(&self, app_id: &str) -> AppMetrics {
        AppMetrics {
            connections: self.connections.with_label_values(&[app_id]),
            opened: self.connections_opened.with_label_values(&[app_id]),
            client_events_in: self
                .ws_messages_in
                .with_label_values(&[app_id, MessageKind::ClientEvent.label()]),
            protocol_in: self
                .ws_messages_in
                .with_label_values(&[app_id, MessageKind::Protocol.label()]),
            bytes_in: self.ws_bytes_in.with_label_values(&[app_id]),
            messages_out: self.ws_messages_out.with_label_values(&[app_id]),
            bytes_out: self.ws_bytes_out.with_label_values(&[app_id]),
            slow_consumers: self.slow_consumers.with_label_values(&[app_id]),
            input_paused: self.input_paused.with_label_values(&[app_id]),
            publish_to_socket: self.socket_latency.clone(),
            closed: self.connections_closed.clone(),
            app_id: app_id.to_owned(),
        }
    }

    /// Count one denied authentication (see [`ferrocast_broker::audit`]).
    pub fn auth_denied(&self, reason: AuthDenial) {
        self.auth_denied.with_label_values(&[reason.label()]).inc();
    }

    pub fn rest_request(&self, route: &str, status: u16, seconds: f64) {
        if status == 200 {
            if let Some((_, ok, duration)) = self.rest_ok.iter().find(|(label, _, _)| *label == route) {
                ok.inc();
                duration.observe(seconds);
                return;
            }
        }
        self.rest_requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
        self.rest_duration.with_label_values(&[route]).observe(seconds);
    }

    /// Set the local gauges of one app.
    pub fn set_local(&self, app_id: &str, subscriptions: u64, channels: u64, presence_members: u64) {
        self.subscriptions
            .with_label_values(&[app_id])
            .set(subscriptions as i64);
        self.channels.with_label_values(&[app_id]).set(channels as i64);
        self.presence_members
            .with_label_values(&[app_id])
            .set(presence_members as i64);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.prom.gather(), &mut buf) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The node core's measurements go to the registry; shared with the node as its observer.
pub struct MetricsObserver(pub std::sync::Arc<Metrics>);

impl NodeObserver for MetricsObserver {
    fn delivered(&self, app_id: &str, kind: MessageKind, recipients: usize, latency_s: f64) {
        self.0
            .delivered
            .with_label_values(&[app_id, kind.label()])
            .inc_by(recipients as u64);
        self.0.fan_out_latency.observe(latency_s);
    }

    fn limit_rejected(&self, app_id: &str, limit: Limit) {
        self.0
            .limit_rejections
            .with_label_values(&[app_id, limit.label()])
            .inc();
    }

    fn auth_denied(&self, reason: AuthDenial) {
        self.0.auth_denied(reason);
    }

    fn cache_replayed(&self, app_id: &str, outcome: CacheReplay) {
        self.0.cache_replays.with_label_values(&[app_id, outcome.label()]).inc();
    }

    fn subscription_count_published(&self, app_id: &str) {
        self.0.subscription_count_updates.with_label_values(&[app_id]).inc();
    }

    fn registrations_repaired(&self) {
        self.0.registration_repairs.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prefixed_metrics_with_labels() {
        let m = std::sync::Arc::new(Metrics::new());
        let app = m.app("app-1");
        app.connections.inc();
        app.messages_out.inc_by(3);
        app.closed(4100);
        app.closed(3999);
        app.closed(4321);
        m.rest_request("events", 401, 0.002);
        let observer = MetricsObserver(m.clone());
        observer.delivered("app-1", MessageKind::ApiEvent, 5, 0.0003);
        observer.limit_rejected("app-1", Limit::ClientEventRate);
        observer.subscription_count_published("app-1");
        observer.auth_denied(AuthDenial::SubscriptionSignature);
        app.input_paused.inc();
        m.edge.header_timeouts.inc();
        m.edge.refused_ip_rate.inc();
        let text = m.render();
        for line in [
            "ferrocast_http_timeouts_total{phase=\"header\"} 1",
            "ferrocast_http_timeouts_total{phase=\"keep_alive\"} 0",
            "ferrocast_connections_refused_total{reason=\"ip_rate\"} 1",
            "ferrocast_open_tcp_connections 0",
            "ferrocast_accept_errors_total 0",
            "ferrocast_tls_reloads_total{result=\"ok\"} 0",
            "ferrocast_config_reloads_total{result=\"refused\"} 0",
            "ferrocast_connections{app_id=\"app-1\"} 1",
            "ferrocast_ws_messages_out_total{app_id=\"app-1\"} 3",
            "ferrocast_connections_closed_total{app_id=\"app-1\",code=\"4100\"} 1",
            // Codes not known in advance share one series: a client cannot mint new ones.
            "ferrocast_connections_closed_total{app_id=\"app-1\",code=\"other\"} 2",
            "ferrocast_rest_requests_total{route=\"events\",status=\"401\"} 1",
            "ferrocast_rest_request_duration_seconds_count{route=\"events\"} 1",
            "ferrocast_messages_delivered_total{app_id=\"app-1\",kind=\"api_event\"} 5",
            "ferrocast_publish_to_fanout_seconds_count 1",
            "ferrocast_limit_rejections_total{app_id=\"app-1\",limit=\"max_client_events_per_second\"} 1",
            "ferrocast_backplane_up 0",
            "ferrocast_subscription_count_updates_total{app_id=\"app-1\"} 1",
            "ferrocast_auth_denied_total{reason=\"subscription_signature\"} 1",
            "ferrocast_input_paused_total{app_id=\"app-1\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }

    #[test]
    fn series_of_known_labels_exist_from_the_start() {
        let m = Metrics::for_apps(["app-1", "app-2"]);
        let _hooks = m.webhooks.app("app-2");
        let unexported = m.unexported_families();
        assert!(
            unexported.is_empty(),
            "families without a series at start (pre-create their known labels): {unexported:?}"
        );
        let text = m.render();
        let mut expected = vec![
            "ferrocast_connections{app_id=\"app-1\"} 0".to_owned(),
            "ferrocast_connections_opened_total{app_id=\"app-2\"} 0".to_owned(),
            "ferrocast_ws_messages_in_total{app_id=\"app-1\",kind=\"client_event\"} 0".to_owned(),
            "ferrocast_ws_messages_in_total{app_id=\"app-1\",kind=\"protocol\"} 0".to_owned(),
            "ferrocast_ws_bytes_in_total{app_id=\"app-1\"} 0".to_owned(),
            "ferrocast_ws_messages_out_total{app_id=\"app-1\"} 0".to_owned(),
            "ferrocast_ws_bytes_out_total{app_id=\"app-1\"} 0".to_owned(),
            "ferrocast_slow_consumer_disconnects_total{app_id=\"app-1\"} 0".to_owned(),
            "ferrocast_input_paused_total{app_id=\"app-1\"} 0".to_owned(),
            "ferrocast_subscription_count_updates_total{app_id=\"app-1\"} 0".to_owned(),
            "ferrocast_subscriptions{app_id=\"app-1\"} 0".to_owned(),
            "ferrocast_occupied_channels{app_id=\"app-1\"} 0".to_owned(),
            "ferrocast_presence_members{app_id=\"app-1\"} 0".to_owned(),
            "ferrocast_rest_requests_total{route=\"unknown\",status=\"404\"} 0".to_owned(),
            "ferrocast_rest_request_duration_seconds_count{route=\"unknown\"} 0".to_owned(),
            "ferrocast_registration_repairs_total 0".to_owned(),
            "ferrocast_backplane_replay_trimmed_total 0".to_owned(),
            "ferrocast_webhook_queue_depth{app_id=\"app-2\"} 0".to_owned(),
            "ferrocast_webhook_deliveries_total{app_id=\"app-2\"} 0".to_owned(),
            "ferrocast_webhook_takeovers_total{app_id=\"app-2\"} 0".to_owned(),
        ];
        for app in ["app-1", "app-2"] {
            for code in CLOSE_CODES {
                expected.push(format!(
                    "ferrocast_connections_closed_total{{app_id=\"{app}\",code=\"{code}\"}} 0"
                ));
            }
            for kind in MessageKind::ALL {
                let kind = kind.label();
                expected.push(format!(
                    "ferrocast_messages_delivered_total{{app_id=\"{app}\",kind=\"{kind}\"}} 0"
                ));
            }
            for limit in Limit::ALL {
                let limit = limit.label();
                expected.push(format!(
                    "ferrocast_limit_rejections_total{{app_id=\"{app}\",limit=\"{limit}\"}} 0"
                ));
            }
            for result in CacheReplay::ALL {
                let result = result.label();
                expected.push(format!(
                    "ferrocast_cache_replays_total{{app_id=\"{app}\",result=\"{result}\"}} 0"
                ));
            }
        }
        for route in Route::ALL {
            let route = route.label();
            expected.push(format!(
                "ferrocast_rest_requests_total{{route=\"{route}\",status=\"200\"}} 0"
            ));
            expected.push(format!(
                "ferrocast_rest_request_duration_seconds_count{{route=\"{route}\"}} 0"
            ));
        }
        for reason in AuthDenial::ALL {
            let reason = reason.label();
            expected.push(format!("ferrocast_auth_denied_total{{reason=\"{reason}\"}} 0"));
        }
        for event in WEBHOOK_EVENTS {
            expected.push(format!(
                "ferrocast_webhook_events_total{{app_id=\"app-2\",event=\"{event}\"}} 0"
            ));
        }
        for reason in WEBHOOK_FAILURE_REASONS {
            expected.push(format!(
                "ferrocast_webhook_failures_total{{app_id=\"app-2\",reason=\"{reason}\"}} 0"
            ));
        }
        let lines: std::collections::HashSet<&str> = text.lines().collect();
        for line in &expected {
            assert!(lines.contains(line.as_str()), "missing {line:?} in:\n{text}");
        }
        // Webhook series only for apps with webhooks; nothing per channel or socket.
        assert!(
            !text.contains("ferrocast_webhook_events_total{app_id=\"app-1\""),
            "{text}"
        );
    }

    #[test]
    fn an_app_with_webhooks_is_needed_for_the_webhook_families() {
        let m = Metrics::for_apps(["app-1"]);
        let mut unexported = m.unexported_families();
        unexported.sort();
        assert_eq!(
            unexported,
            [
                "ferrocast_webhook_dead_letter_depth",
                "ferrocast_webhook_dead_letters_total",
                "ferrocast_webhook_deliveries_total",
                "ferrocast_webhook_events_total",
                "ferrocast_webhook_failures_total",
                "ferrocast_webhook_oldest_job_age_seconds",
                "ferrocast_webhook_queue_depth",
                "ferrocast_webhook_retries_total",
                "ferrocast_webhook_takeovers_total",
            ]
        );
    }
}
