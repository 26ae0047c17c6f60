//! Webhook delivery: the node reports events ([`WebhookSink`]); the dispatcher puts them into
//! the cluster's [`WebhookQueue`] and POSTs them, signed, off the socket path.
//!
//! Each app endpoint has a few lanes, chosen by channel, so the events of one channel reach an
//! endpoint in order and a slow endpoint holds up only its own lanes. A lane's jobs live in the
//! queue (Redis Streams in a cluster, in process on a single node) until the endpoint answered
//! 2xx: a node that crashes loses nothing once an event is queued, and the node that takes its
//! lanes over sends the same requests again with the same `Idempotency-Key`. An event whose
//! retry window ends goes to the app's dead letters, for an operator to list and replay. Nothing
//! is dropped silently: a full lane, a dead letter and the memory backplane's shutdown deadline
//! are counted and logged.
//!
//! - [`intake`]: per lane, moves reported events into the queue in order.
//! - [`lane`]: per lane, the consumer: claims, batches, signs, sends, retries, acknowledges.
//! - [`request`]: the request body, idempotency key and retry delays.
//! - [`admin`]: dead letters for the REST admin endpoints, and the queue metrics refresh.

mod admin;
mod intake;
mod lane;
mod request;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use ferrocast_broker::{AppConfig, LaneId, WebhookQueue, WebhookSink};
use ferrocast_protocol::webhook::WebhookEvent;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::WebhooksConfig;
use crate::metrics::{AppWebhookMetrics, Metrics};

pub use admin::{DeadLetterView, ReplayOutcome, MAX_PAGE};

/// Lanes per endpoint: enough that one busy channel does not hold up the others.
const LANES: usize = 4;

/// One event on its way into the queue, with when it was created (Unix ms).
pub(crate) struct Job {
    event_json: String,
    name: &'static str,
    created_ms: u64,
}

/// Why the HTTP client could not be built (TLS backend).
#[derive(Debug, thiserror::Error)]
#[error("webhook HTTP client: {0}")]
pub struct ClientError(String);

/// Where the queue lives, which decides what shutdown does with what is left in it.
#[derive(Debug, Clone)]
pub struct QueueMode {
    /// This node's id: the consumer and lease holder name in a shared queue.
    pub node_id: String,
    /// Shared by the cluster (Redis): undelivered jobs stay for the other nodes at shutdown.
    /// In process: whatever is left at the flush deadline is lost (counted `shutdown`).
    pub durable: bool,
    /// How long a lane's lease lasts without renewal: a crashed holder's lanes move after this.
    pub lease: Duration,
}

/// What every lane of the node shares.
pub(crate) struct Shared {
    client: reqwest::Client,
    settings: WebhooksConfig,
    queue: Arc<dyn WebhookQueue>,
    mode: QueueMode,
    /// Set at shutdown: lanes deliver what they can until the deadline, then stop.
    closing: CancellationToken,
    deadline: OnceLock<Instant>,
    request_duration: prometheus::Histogram,
}

impl Shared {
    /// Whether the shutdown deadline has passed (never before shutdown).
    fn past_deadline(&self, at: Instant) -> bool {
        self.deadline.get().is_some_and(|d| at >= *d)
    }

    /// Jobs waiting in a lane at most: its share of `queue_capacity`.
    fn lane_waiting(&self) -> usize {
        self.settings.queue_capacity.div_ceil(LANES).max(1)
    }

    /// Jobs a lane's queue holds at most: the waiting ones and the batch in flight (which stays
    /// queued until acknowledged), so the cap means what it meant for the in-process lanes.
    fn lane_cap(&self, batch: usize) -> usize {
        self.lane_waiting().saturating_add(batch.max(1))
    }
}

/// An app's configuration as its lanes read it, replaced by [`Dispatcher::reconfigure`].
pub(crate) type AppCell = Arc<RwLock<Arc<AppConfig>>>;

/// One webhook URL of an app: its lanes, started once and kept for the process's life (a
/// reload that drops the URL stops routing events to it; what is queued is still delivered, and
/// a reload that brings it back reuses these lanes, so a lane never has two consumers here).
struct Endpoint {
    url: String,
    /// Stable id of the URL (every node computes the same one).
    id: String,
    lanes: Vec<LaneHandle>,
}

/// One configured `[[apps.webhooks]]` entry: which events go to which endpoint.
struct Route {
    config: ferrocast_broker::WebhookConfig,
    endpoint: Arc<Endpoint>,
}

/// The node's side of one lane: where events go in and how its consumer is woken.
struct LaneHandle {
    intake: mpsc::Sender<Job>,
    wake: Arc<Notify>,
}

/// The webhooks of one app.
struct AppHooks {
    endpoints: Vec<Route>,
    metrics: AppWebhookMetrics,
}

/// Delivers every app's webhooks. Built at startup, reconfigured when the apps are reloaded;
/// `emit` never blocks (it holds a read lock only to clone an `Arc`).
pub struct Dispatcher {
    apps: RwLock<Arc<HashMap<String, Arc<AppHooks>>>>,
    /// Every endpoint started, by (app id, endpoint id), and each app's configuration cell.
    started: Mutex<Started>,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
    tasks: TaskTracker,
    upkeep: CancellationToken,
    closed: AtomicBool,
}

/// A stable id of an endpoint URL (FNV-1a, 64 bits, hex): the same on every node and across
/// restarts, unlike the endpoint's position in the config.
pub fn endpoint_id(url: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in url.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

impl Dispatcher {
    /// Start the lanes of every app's endpoints on `queue`. Must run inside the runtime.
    pub fn start(
        apps: &[AppConfig],
        settings: &WebhooksConfig,
        metrics: &Arc<Metrics>,
        queue: Arc<dyn WebhookQueue>,
        mode: QueueMode,
    ) -> Result<Arc<Self>, ClientError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ferrocast/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError(e.to_string()))?;
        let shared = Arc::new(Shared {
            client,
            settings: settings.clone(),
            queue,
            mode,
            closing: CancellationToken::new(),
            deadline: OnceLock::new(),
            request_duration: metrics.webhooks.request_duration.clone(),
        });
        let tasks = TaskTracker::new();
        tasks.close();
        let upkeep = CancellationToken::new();
        let dispatcher = Arc::new(Self {
            apps: RwLock::default(),
            started: Mutex::default(),
            metrics: metrics.clone(),
            shared,
            tasks,
            upkeep,
            closed: AtomicBool::new(false),
        });
        dispatcher.reconfigure(apps);
        tokio::spawn(admin::refresh_metrics(dispatcher.clone()));
        Ok(dispatcher)
    }

    /// The apps with webhooks now.
    fn hooks(&self) -> Arc<HashMap<String, Arc<AppHooks>>> {
        self.apps.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Take a new app list: the next event of each app goes to its new `webhooks`, signed with
    /// its current secret and key, batched per its current `enable_webhook_batching`. Lanes of
    /// URLs not seen before start here (inside the runtime).
    pub fn reconfigure(&self, apps: &[AppConfig]) {
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        let mut hooks = HashMap::new();
        for app in apps {
            let cell = match started.cells.get(&app.id) {
                Some(cell) => {
                    *cell.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(app.clone());
                    cell.clone()
                }
                None => {
                    let cell: AppCell = Arc::new(RwLock::new(Arc::new(app.clone())));
                    started.cells.insert(app.id.clone(), cell.clone());
                    cell
                }
            };
            if app.webhooks.is_empty() {
                continue;
            }
            let app_metrics = self.metrics.webhooks.app(&app.id);
            let endpoints = app
                .webhooks
                .iter()
                .map(|config| {
                    let id = endpoint_id(&config.url);
                    let endpoint = started
                        .endpoints
                        .entry((app.id.clone(), id.clone()))
                        .or_insert_with(|| Arc::new(self.start_endpoint(app, &cell, &config.url, id, &app_metrics)))
                        .clone();
                    Route {
                        config: config.clone(),
                        endpoint,
                    }
                })
                .collect();
            hooks.insert(
                app.id.clone(),
                Arc::new(AppHooks {
                    endpoints,
                    metrics: app_metrics,
                }),
            );
        }
        *self.apps.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(hooks);
    }

    /// Start the lanes of one endpoint.
    fn start_endpoint(
        &self,
        app: &AppConfig,
        cell: &AppCell,
        url: &str,
        id: String,
        app_metrics: &AppWebhookMetrics,
    ) -> Endpoint {
        let shared = &self.shared;
        let lanes = (0..LANES)
            .map(|n| {
                let lane_id = LaneId {
                    app_id: app.id.clone(),
                    endpoint: id.clone(),
                    lane: n as u16,
                };
                let (tx, rx) = mpsc::channel(shared.lane_waiting());
                let wake = Arc::new(Notify::new());
                let intake_done = CancellationToken::new();
                let intake = intake::Intake {
                    cap: shared.lane_cap(lane::batch_size(app, &shared.settings)),
                    lane: lane_id.clone(),
                    shared: shared.clone(),
                    metrics: app_metrics.clone(),
                    wake: wake.clone(),
                    done: intake_done.clone(),
                };
                self.tasks.spawn(intake.run(rx));
                let lane = lane::Lane::new(cell.clone(), lane_id, url, shared.clone(), app_metrics.clone());
                self.tasks.spawn(lane.run(wake.clone(), intake_done));
                LaneHandle { intake: tx, wake }
            })
            .collect();
        Endpoint {
            url: url.to_owned(),
            id,
            lanes,
        }
    }

    /// Stop taking events and deliver what is queued for at most `flush`. In process, what is
    /// still queued then is counted as failed (`shutdown`) and logged; with a shared queue it
    /// stays there and the lanes' leases are released, so another node continues at once.
    pub async fn shutdown(&self, flush: Duration) {
        if self
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .endpoints
            .is_empty()
        {
            self.upkeep.cancel();
            return;
        }
        self.closed.store(true, Ordering::Release);
        let _ = self.shared.deadline.set(Instant::now() + flush);
        self.shared.closing.cancel();
        // Lanes give up at the deadline by themselves; the slack covers their last count.
        if tokio::time::timeout(flush + Duration::from_secs(2), self.tasks.wait())
            .await
            .is_err()
        {
            warn!("webhook lanes still busy after the flush timeout; exiting anyway");
        } else {
            info!("webhook lanes stopped");
        }
        self.upkeep.cancel();
    }

    /// Wake every lane of `app_id` (after a replay put jobs back).
    fn wake(&self, app_id: &str) {
        if let Some(app) = self.hooks().get(app_id) {
            app.endpoints
                .iter()
                .flat_map(|e| &e.endpoint.lanes)
                .for_each(|l| l.wake.notify_one());
        }
    }
}

/// What [`Dispatcher::reconfigure`] started so far.
#[derive(Default)]
struct Started {
    endpoints: HashMap<(String, String), Arc<Endpoint>>,
    cells: HashMap<String, AppCell>,
}

fn lane_of(channel: &str) -> usize {
    ferrocast_broker::shard_of(channel, LANES)
}

impl WebhookSink for Dispatcher {
    fn enabled(&self, app_id: &str) -> bool {
        self.hooks().contains_key(app_id)
    }

    fn emit(&self, app_id: &str, event: WebhookEvent, created_ms: u64) {
        let hooks = self.hooks();
        let Some(app) = hooks.get(app_id) else {
            return;
        };
        let name = event.name();
        if self.closed.load(Ordering::Acquire) {
            warn!(app_id, event = name, "webhook event after shutdown began: not sent");
            return app.metrics.failed("shutdown", 1);
        }
        let lane = lane_of(event.channel());
        let wanted: Vec<&Route> = app.endpoints.iter().filter(|e| e.config.wants(name)).collect();
        if wanted.is_empty() {
            return;
        }
        // Serializing plain strings and integers cannot fail.
        let event_json = serde_json::to_string(&event).unwrap_or_default();
        for endpoint in wanted {
            let Some(handle) = endpoint.endpoint.lanes.get(lane) else {
                continue;
            };
            let job = Job {
                event_json: event_json.clone(),
                name,
                created_ms,
            };
            if handle.intake.try_send(job).is_err() {
                warn!(app_id, event = name, url = %endpoint.config.url, "webhook queue full: event refused");
                app.metrics.failed("queue_full", 1);
            }
        }
    }

    fn lost(&self, app_id: &str, _event: &'static str, reason: &'static str) {
        if let Some(app) = self.hooks().get(app_id) {
            app.metrics.failed(reason, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint_id;

    #[test]
    fn endpoint_ids_are_fnv1a_of_the_url_and_differ_per_url() {
        // FNV-1a 64 reference values: every node and every version must agree on them, or a
        // restarted node would no longer find its endpoints' queues.
        assert_eq!(endpoint_id(""), "cbf29ce484222325");
        assert_eq!(endpoint_id("a"), "af63dc4c8601ec8c");
        assert_ne!(endpoint_id("http://x/a"), endpoint_id("http://x/b"));
    }
}
