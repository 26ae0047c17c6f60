//! Webhook delivery: the node reports events ([`WebhookSink`]); the dispatcher queues them per
//! app endpoint and POSTs them, signed, off the socket path.
//!
//! Each endpoint has a few lanes, chosen by channel, each a bounded queue drained by one task
//! that sends a request at a time and retries it until it succeeds or expires: the events of
//! one channel reach an endpoint in order, and a slow endpoint holds up only its own lanes.
//! Nothing is dropped silently: a full queue, an expired retry window and the shutdown deadline
//! are counted in `ferrocast_webhook_failures_total` and logged.
//!
//! - [`lane`]: one lane's worker: batching, signing, sending, retrying.

mod lane;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ferrocast_broker::{AppConfig, WebhookSink};
use ferrocast_protocol::webhook::WebhookEvent;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::WebhooksConfig;
use crate::metrics::{AppWebhookMetrics, Metrics};

/// Lanes per endpoint: enough that one busy channel does not hold up the others.
const LANES: usize = 4;

/// One event waiting in a lane, with when it was created (Unix ms).
pub(crate) struct Job {
    event: WebhookEvent,
    created_ms: u64,
}

/// Why the HTTP client could not be built (TLS backend).
#[derive(Debug, thiserror::Error)]
#[error("webhook HTTP client: {0}")]
pub struct ClientError(String);

/// What every lane of the node shares.
pub(crate) struct Shared {
    client: reqwest::Client,
    settings: WebhooksConfig,
    /// Set at shutdown: lanes drain what is queued, then stop; retries stop at the deadline.
    closing: CancellationToken,
    deadline: OnceLock<Instant>,
    request_duration: prometheus::Histogram,
}

impl Shared {
    /// Whether the shutdown deadline has passed (never before shutdown).
    fn past_deadline(&self, at: Instant) -> bool {
        self.deadline.get().is_some_and(|d| at >= *d)
    }
}

/// One configured webhook URL of an app.
struct Endpoint {
    config: ferrocast_broker::WebhookConfig,
    lanes: Vec<mpsc::Sender<Job>>,
}

/// The webhooks of one app.
struct AppHooks {
    endpoints: Vec<Endpoint>,
    metrics: AppWebhookMetrics,
}

/// Delivers every app's webhooks. Built once at startup; `emit` never blocks or locks.
pub struct Dispatcher {
    apps: HashMap<String, AppHooks>,
    shared: Arc<Shared>,
    lanes: TaskTracker,
    closed: AtomicBool,
}

impl Dispatcher {
    /// Start the lanes of every app's endpoints. Must run inside the runtime.
    pub fn start(apps: &[AppConfig], settings: &WebhooksConfig, metrics: &Metrics) -> Result<Arc<Self>, ClientError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ferrocast/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError(e.to_string()))?;
        let shared = Arc::new(Shared {
            client,
            settings: settings.clone(),
            closing: CancellationToken::new(),
            deadline: OnceLock::new(),
            request_duration: metrics.webhooks.request_duration.clone(),
        });
        let lanes = TaskTracker::new();
        let per_lane = settings.queue_capacity.div_ceil(LANES).max(1);
        let mut hooks = HashMap::new();
        for app in apps.iter().filter(|a| !a.webhooks.is_empty()) {
            let app_metrics = metrics.webhooks.app(&app.id);
            let endpoints = app
                .webhooks
                .iter()
                .map(|config| {
                    let senders = (0..LANES)
                        .map(|_| {
                            let (tx, rx) = mpsc::channel(per_lane);
                            let lane = lane::Lane::new(app, &config.url, shared.clone(), app_metrics.clone());
                            lanes.spawn(lane.run(rx));
                            tx
                        })
                        .collect();
                    Endpoint {
                        config: config.clone(),
                        lanes: senders,
                    }
                })
                .collect();
            hooks.insert(
                app.id.clone(),
                AppHooks {
                    endpoints,
                    metrics: app_metrics,
                },
            );
        }
        lanes.close();
        Ok(Arc::new(Self {
            apps: hooks,
            shared,
            lanes,
            closed: AtomicBool::new(false),
        }))
    }

    /// Stop taking events and deliver what is queued for at most `flush`; what is still queued
    /// or being retried then is counted as failed (`shutdown`) and logged.
    pub async fn shutdown(&self, flush: Duration) {
        if self.apps.is_empty() {
            return;
        }
        self.closed.store(true, Ordering::Release);
        let _ = self.shared.deadline.set(Instant::now() + flush);
        self.shared.closing.cancel();
        // Lanes give up at the deadline by themselves; the slack covers their last count.
        if tokio::time::timeout(flush + Duration::from_secs(1), self.lanes.wait())
            .await
            .is_err()
        {
            warn!("webhook lanes still busy after the flush timeout; exiting anyway");
        } else {
            info!("webhook queues flushed");
        }
    }
}

fn lane_of(channel: &str) -> usize {
    ferrocast_broker::shard_of(channel, LANES)
}

impl WebhookSink for Dispatcher {
    fn enabled(&self, app_id: &str) -> bool {
        self.apps.contains_key(app_id)
    }

    fn emit(&self, app_id: &str, event: WebhookEvent, created_ms: u64) {
        let Some(app) = self.apps.get(app_id) else {
            return;
        };
        let name = event.name();
        if self.closed.load(Ordering::Acquire) {
            warn!(app_id, event = name, "webhook event after shutdown began: not sent");
            return app.metrics.failed("shutdown", 1);
        }
        let lane = lane_of(event.channel());
        let wanted: Vec<&Endpoint> = app.endpoints.iter().filter(|e| e.config.wants(name)).collect();
        let mut event = Some(event);
        for (i, endpoint) in wanted.iter().enumerate() {
            // The last endpoint takes the event itself; the others a copy.
            let event = if i + 1 == wanted.len() {
                event.take()
            } else {
                event.clone()
            };
            let Some(event) = event else { return };
            match endpoint.lanes[lane].try_send(Job { event, created_ms }) {
                Ok(()) => app.metrics.queue_depth.inc(),
                Err(_) => {
                    warn!(app_id, event = name, url = %endpoint.config.url, "webhook queue full: event dropped");
                    app.metrics.failed("queue_full", 1);
                }
            }
        }
    }

    fn lost(&self, app_id: &str, _event: &'static str, reason: &'static str) {
        if let Some(app) = self.apps.get(app_id) {
            app.metrics.failed(reason, 1);
        }
    }
}
