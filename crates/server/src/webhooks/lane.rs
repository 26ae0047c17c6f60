//! One lane of one endpoint, the consumer side: while this node holds the lane's lease, it
//! claims the lane's head (with batching, up to `max_batch_size` jobs), signs the body once,
//! and sends it until the endpoint answers 2xx (then acknowledges it), the retry window closes
//! (then moves it to the dead letters), or another node took the lane over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrocast_broker::{unix_millis, AppConfig, Claim, ClaimRequest, DeadLetterRequest, LaneId, QueuedJob};
use ferrocast_protocol::webhook;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::request::{self, IDEMPOTENCY_HEADER};
use super::Shared;
use crate::metrics::AppWebhookMetrics;

/// How often a lane looks again while the queue's store is unreachable.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// How often an idle lane this node holds looks for jobs queued by other nodes (this node's
/// own enqueues wake it at once). A lane held elsewhere looks every quarter lease.
const POLL: Duration = Duration::from_millis(200);

pub(super) struct Lane {
    id: LaneId,
    url: String,
    /// The app's configuration now: a reload's new key, secret and batching apply to the next
    /// request.
    app: super::AppCell,
    shared: Arc<Shared>,
    metrics: AppWebhookMetrics,
}

/// How one request went.
enum Attempt {
    Delivered,
    Failed(String),
}

/// Why a lane stopped sending a batch.
enum Outcome {
    /// Acknowledged, dead-lettered or abandoned: the lane goes on with its next jobs.
    Done,
    /// Another node took the lane over (this one stalled past its lease): it sends the batch;
    /// this node goes back to waiting for the lease.
    Lost,
    /// The node is draining and a request failed: the jobs stay queued for the next holder.
    Stop,
}

impl Lane {
    pub(super) fn new(
        app: super::AppCell,
        id: LaneId,
        url: &str,
        shared: Arc<Shared>,
        metrics: AppWebhookMetrics,
    ) -> Self {
        Self {
            id,
            url: url.to_owned(),
            app,
            shared,
            metrics,
        }
    }

    fn app(&self) -> Arc<AppConfig> {
        self.app.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn closing(&self) -> bool {
        self.shared.closing.is_cancelled()
    }

    /// Deliver the lane's jobs until shutdown (then: see [`super::Dispatcher::shutdown`]).
    pub(super) async fn run(self, wake: Arc<Notify>, intake_done: CancellationToken) {
        let mut store_failing = false;
        loop {
            if self.shared.past_deadline(Instant::now()) {
                break;
            }
            let claim = self
                .shared
                .queue
                .claim(ClaimRequest {
                    lane: &self.id,
                    node: &self.shared.mode.node_id,
                    max: batch_size(&self.app(), &self.shared.settings),
                    lease: self.shared.mode.lease,
                })
                .await;
            let mut idle = POLL;
            let claim_ok = claim.is_ok();
            let jobs = match claim {
                Ok(Claim::Owned { jobs, took_over }) => {
                    if took_over {
                        info!(app_id = %self.id.app_id, endpoint = %self.id.endpoint, lane = self.id.lane, "took over a webhook lane with undelivered jobs");
                        self.metrics.takeovers.inc();
                    }
                    jobs
                }
                Ok(Claim::NotOwner) => {
                    // Held elsewhere: the lease can only free up when its holder drains (then
                    // this node's next look finds it) or stops renewing (after a whole lease).
                    idle = (self.shared.mode.lease / 4).max(POLL);
                    Vec::new()
                }
                Err(e) => {
                    // Logged once per outage, not on every look; retried every second.
                    if !store_failing {
                        warn!(app_id = %self.id.app_id, error = %e, "claiming webhook jobs failed; retrying every second");
                    }
                    store_failing = true;
                    idle = STORE_RETRY;
                    Vec::new()
                }
            };
            if store_failing && claim_ok {
                info!(app_id = %self.id.app_id, "claiming webhook jobs works again");
                store_failing = false;
            }
            if jobs.is_empty() {
                // Nothing to send: at shutdown, done once the intake queued its last event.
                if self.closing() && intake_done.is_cancelled() {
                    break;
                }
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(idle) => {}
                    () = self.shared.closing.cancelled(), if !self.closing() => {}
                }
                continue;
            }
            match self.deliver(jobs).await {
                Outcome::Done | Outcome::Lost => {}
                Outcome::Stop => break,
            }
        }
        self.stop().await;
    }

    /// At shutdown: with a shared queue, release the lease so another node continues at once
    /// (the jobs stay queued); in process, count what is left as lost.
    async fn stop(&self) {
        let shared = &self.shared;
        if shared.mode.durable {
            if let Err(e) = shared.queue.release(&self.id, &shared.mode.node_id).await {
                warn!(app_id = %self.id.app_id, error = %e, "could not release a webhook lane; it moves when the lease expires");
            }
            return;
        }
        let left = shared
            .queue
            .claim(ClaimRequest {
                lane: &self.id,
                node: &shared.mode.node_id,
                max: usize::MAX >> 1,
                lease: shared.mode.lease,
            })
            .await;
        if let Ok(Claim::Owned { jobs, .. }) = left {
            if !jobs.is_empty() {
                error!(url = %self.url, events = jobs.len(), "webhooks abandoned: flush timeout over at shutdown");
                self.metrics.failed("shutdown", jobs.len() as u64);
                self.ack(&jobs).await;
            }
        }
    }

    /// Send one request for `jobs`, retrying with backoff.
    async fn deliver(&self, jobs: Vec<QueuedJob>) -> Outcome {
        let body = request::body(&jobs);
        let key = request::idempotency_key(&jobs);
        let app = self.app();
        let signature = webhook::sign(&app.secret, &body);
        let settings = &self.shared.settings;
        let from_ms = jobs.iter().map(|j| j.retry_from_ms).min().unwrap_or_else(unix_millis);
        let expires_ms = from_ms.saturating_add(settings.retry_window_s.saturating_mul(1000));
        let base = Duration::from_millis(settings.retry_backoff_ms);
        let mut backoff = base;
        let mut attempt = 1u32;
        loop {
            let why = match self.attempt(&app.key, &body, &signature, &key).await {
                Attempt::Delivered => {
                    self.delivered(&jobs);
                    self.ack(&jobs).await;
                    return Outcome::Done;
                }
                Attempt::Failed(why) => why,
            };
            if self.closing() && self.shared.mode.durable {
                warn!(url = %self.url, attempt, error = %why, "webhook failed while draining; left queued for another node");
                return Outcome::Stop;
            }
            backoff = if attempt == 1 {
                base
            } else {
                request::next_backoff(base, backoff)
            };
            let retry_at = Instant::now() + backoff;
            if unix_millis().saturating_add(backoff.as_millis() as u64) > expires_ms {
                error!(url = %self.url, events = jobs.len(), attempt, error = %why, idempotency_key = %key, "webhook retry window over: moved to the dead letters");
                self.dead_letter(&jobs).await;
                return Outcome::Done;
            }
            if self.shared.past_deadline(retry_at) {
                error!(url = %self.url, events = jobs.len(), attempt, error = %why, "webhook abandoned: node shutting down");
                self.metrics.failed("shutdown", jobs.len() as u64);
                self.ack(&jobs).await;
                return Outcome::Done;
            }
            warn!(url = %self.url, attempt, error = %why, retry_in_ms = backoff.as_millis() as u64, "webhook failed; retrying");
            match self.wait(backoff).await {
                Outcome::Done => {}
                Outcome::Lost => {
                    info!(url = %self.url, idempotency_key = %key, "webhook lane taken over by another node; it sends this batch");
                    return Outcome::Lost;
                }
                Outcome::Stop => {
                    info!(url = %self.url, idempotency_key = %key, "draining while a webhook waits for its retry; left queued for another node");
                    return Outcome::Stop;
                }
            }
            self.metrics.retries.inc();
            attempt += 1;
        }
    }

    /// Sleep `delay`, renewing the lease on the way: `Done` when the delay is over, `Lost` if
    /// the lease was lost, `Stop` if the node began draining with a shared queue (the retry is
    /// then the next holder's).
    async fn wait(&self, delay: Duration) -> Outcome {
        let shared = &self.shared;
        let step = (shared.mode.lease / 3).max(Duration::from_millis(50));
        let until = Instant::now() + delay;
        loop {
            let now = Instant::now();
            if now >= until {
                break;
            }
            let draining = async {
                if shared.mode.durable {
                    shared.closing.cancelled().await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                () = tokio::time::sleep((until - now).min(step)) => {}
                () = draining => return Outcome::Stop,
            }
            match shared
                .queue
                .renew(&self.id, &shared.mode.node_id, shared.mode.lease)
                .await
            {
                Ok(true) => {}
                Ok(false) => return Outcome::Lost,
                // The store is away: keep the batch; a new holder would send the same key.
                Err(e) => warn!(app_id = %self.id.app_id, error = %e, "renewing a webhook lane failed"),
            }
        }
        Outcome::Done
    }

    async fn attempt(&self, app_key: &str, body: &str, signature: &str, key: &str) -> Attempt {
        let started = Instant::now();
        let mut request = self
            .shared
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, webhook::CONTENT_TYPE)
            .header(webhook::KEY_HEADER, app_key)
            .header(webhook::SIGNATURE_HEADER, signature)
            .header(IDEMPOTENCY_HEADER, key)
            .body(body.to_owned());
        if let Some(deadline) = self.shared.deadline.get() {
            request = request.timeout(
                deadline
                    .saturating_duration_since(started)
                    .max(Duration::from_millis(1)),
            );
        }
        let outcome = match request.send().await {
            Ok(response) if response.status().is_success() => Attempt::Delivered,
            Ok(response) => Attempt::Failed(format!("HTTP {}", response.status())),
            Err(e) => Attempt::Failed(error_chain(&e)),
        };
        self.shared.request_duration.observe(started.elapsed().as_secs_f64());
        outcome
    }

    /// Remove delivered (or abandoned) jobs from the queue. If the store cannot be reached the
    /// jobs are sent again later, with the same key.
    async fn ack(&self, jobs: &[QueuedJob]) {
        let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
        for _ in 0..3 {
            match self.shared.queue.ack(&self.id, &ids).await {
                Ok(()) => return,
                Err(e) => warn!(app_id = %self.id.app_id, error = %e, "acknowledging webhook jobs failed"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn dead_letter(&self, jobs: &[QueuedJob]) {
        self.metrics.failed("expired", jobs.len() as u64);
        let request = DeadLetterRequest {
            lane: &self.id,
            jobs,
            reason: "expired",
            failed_ms: unix_millis(),
            cap: self.shared.settings.dead_letter_max_len,
        };
        match self.shared.queue.dead_letter(request).await {
            Ok(()) => self.metrics.dead_letters.inc_by(jobs.len() as u64),
            Err(e) => {
                error!(app_id = %self.id.app_id, error = %e, "moving webhook jobs to the dead letters failed; they stay queued and are retried");
            }
        }
    }

    fn delivered(&self, jobs: &[QueuedJob]) {
        self.metrics.deliveries.inc();
        for job in jobs {
            self.metrics.delivered(event_name(&job.event_json), 1);
        }
    }
}

/// Jobs per request for `app`.
pub(super) fn batch_size(app: &AppConfig, settings: &crate::config::WebhooksConfig) -> usize {
    if app.enable_webhook_batching {
        settings.max_batch_size
    } else {
        1
    }
}

/// The `name` of a queued event (for the per-event metric).
fn event_name(json: &str) -> &'static str {
    #[derive(serde::Deserialize)]
    struct Named<'a> {
        #[serde(borrow)]
        name: std::borrow::Cow<'a, str>,
    }
    serde_json::from_str::<Named<'_>>(json)
        .ok()
        .and_then(|n| crate::metrics::WEBHOOK_EVENTS.iter().find(|k| **k == n.name).copied())
        .unwrap_or("unknown")
}

/// A reqwest error with its causes ("error sending request: connection refused").
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
