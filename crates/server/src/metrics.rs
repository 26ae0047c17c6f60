//! Prometheus metrics, served on their own port so scraping never competes with clients.
//!
//! Per-app handles are resolved once per connection (see [`AppMetrics`]) so the hot path only
//! touches atomics, never the label maps.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// Every metric of the node.
pub struct Metrics {
    registry: Registry,
    connections: IntGaugeVec,
    connections_opened: IntCounterVec,
    connections_closed: IntCounterVec,
    ws_messages_in: IntCounterVec,
    ws_messages_out: IntCounterVec,
    ws_bytes_out: IntCounterVec,
    slow_consumers: IntCounterVec,
    rest_requests: IntCounterVec,
    pub cluster: ClusterMetrics,
}

/// The node's link to the cluster, refreshed from the backplane's own counters at each scrape.
pub struct ClusterMetrics {
    pub ready: IntGauge,
    pub published: IntCounter,
    pub received: IntCounter,
    pub errors: IntCounter,
    pub reconnects: IntCounter,
    pub decode_errors: IntCounter,
    pub reaped_nodes: IntCounter,
}

impl ClusterMetrics {
    fn new(registry: &Registry) -> Self {
        let one = |name: &str, help: &str| counter(registry, name, help, &[]).with_label_values(&[] as &[&str]);
        let ready = IntGauge::new(
            "backplane_up",
            "1 while the node is joined to the cluster (link up and registered)",
        )
        .unwrap_or_else(|e| panic!("metric backplane_up: {e}"));
        registry
            .register(Box::new(ready.clone()))
            .unwrap_or_else(|e| panic!("metric backplane_up: {e}"));
        Self {
            ready,
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
    pub messages_in: IntCounter,
    pub messages_out: IntCounter,
    pub bytes_out: IntCounter,
    pub slow_consumers: IntCounter,
    closed: IntCounterVec,
    app_id: String,
}

impl AppMetrics {
    /// Count a closed connection by its close code.
    pub fn closed(&self, code: u16) {
        self.closed
            .with_label_values(&[self.app_id.as_str(), &code.to_string()])
            .inc();
    }
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    c
}

impl Metrics {
    /// Build and register every metric. Names are constants, so a failure here is a bug in
    /// this file, caught by the tests, never a runtime condition.
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("ferrocast".into()), None).unwrap_or_else(|e| panic!("registry: {e}"));
        let connections = IntGaugeVec::new(Opts::new("connections", "Open WebSocket connections"), &["app_id"])
            .unwrap_or_else(|e| panic!("metric connections: {e}"));
        registry
            .register(Box::new(connections.clone()))
            .unwrap_or_else(|e| panic!("metric connections: {e}"));
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            let _ = registry.register(Box::new(pc));
        }
        Self {
            connections_opened: counter(
                &registry,
                "connections_opened_total",
                "WebSocket connections accepted",
                &["app_id"],
            ),
            connections_closed: counter(
                &registry,
                "connections_closed_total",
                "WebSocket connections closed, by close code",
                &["app_id", "code"],
            ),
            ws_messages_in: counter(
                &registry,
                "ws_messages_in_total",
                "Frames received from clients",
                &["app_id"],
            ),
            ws_messages_out: counter(
                &registry,
                "ws_messages_out_total",
                "Frames written to clients",
                &["app_id"],
            ),
            ws_bytes_out: counter(&registry, "ws_bytes_out_total", "Bytes written to clients", &["app_id"]),
            slow_consumers: counter(
                &registry,
                "slow_consumer_disconnects_total",
                "Connections closed with 4100 because their queue was full",
                &["app_id"],
            ),
            rest_requests: counter(
                &registry,
                "rest_requests_total",
                "REST API requests by route and HTTP status",
                &["route", "status"],
            ),
            cluster: ClusterMetrics::new(&registry),
            connections,
            registry,
        }
    }

    pub fn app(&self, app_id: &str) -> AppMetrics {
        AppMetrics {
            connections: self.connections.with_label_values(&[app_id]),
            opened: self.connections_opened.with_label_values(&[app_id]),
            messages_in: self.ws_messages_in.with_label_values(&[app_id]),
            messages_out: self.ws_messages_out.with_label_values(&[app_id]),
            bytes_out: self.ws_bytes_out.with_label_values(&[app_id]),
            slow_consumers: self.slow_consumers.with_label_values(&[app_id]),
            closed: self.connections_closed.clone(),
            app_id: app_id.to_owned(),
        }
    }

    pub fn rest_request(&self, route: &str, status: u16) {
        self.rest_requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prefixed_metrics_with_labels() {
        let m = Metrics::new();
        let app = m.app("app-1");
        app.connections.inc();
        app.messages_out.inc_by(3);
        app.closed(4100);
        m.rest_request("events", 401);
        let text = m.render();
        assert!(text.contains("ferrocast_connections{app_id=\"app-1\"} 1"), "{text}");
        assert!(text.contains("ferrocast_ws_messages_out_total{app_id=\"app-1\"} 3"));
        assert!(text.contains("ferrocast_connections_closed_total{app_id=\"app-1\",code=\"4100\"} 1"));
        assert!(text.contains("ferrocast_rest_requests_total{route=\"events\",status=\"401\"} 1"));
    }
}
