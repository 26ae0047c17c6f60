//! One lane of one endpoint: takes the next event (and, with batching, whatever else is
//! queued), signs the body once, and sends it until the endpoint answers 2xx, the retry window
//! closes, or the node's shutdown deadline passes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrocast_broker::unix_millis;
use ferrocast_broker::AppConfig;
use ferrocast_protocol::webhook::{self, WebhookEvent};
use tokio::sync::mpsc;
use tracing::{error, warn};

use super::{Job, Shared};
use crate::metrics::AppWebhookMetrics;

/// Retries back off exponentially up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub(super) struct Lane {
    url: String,
    key: String,
    secret: String,
    batch: usize,
    shared: Arc<Shared>,
    metrics: AppWebhookMetrics,
}

/// How one request went.
enum Attempt {
    Delivered,
    Failed(String),
}

impl Lane {
    pub(super) fn new(app: &AppConfig, url: &str, shared: Arc<Shared>, metrics: AppWebhookMetrics) -> Self {
        let batch = if app.enable_webhook_batching {
            shared.settings.max_batch_size
        } else {
            1
        };
        Self {
            url: url.to_owned(),
            key: app.key.clone(),
            secret: app.secret.clone(),
            batch,
            shared,
            metrics,
        }
    }

    /// Deliver queued events until shutdown has drained the queue (or passed its deadline).
    pub(super) async fn run(self, mut rx: mpsc::Receiver<Job>) {
        loop {
            let first = tokio::select! {
                biased;
                job = rx.recv() => job,
                () = self.shared.closing.cancelled() => rx.try_recv().ok(),
            };
            let Some(first) = first else { break };
            let mut jobs = vec![first];
            while jobs.len() < self.batch {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.metrics.queue_depth.sub(jobs.len() as i64);
            if self.shared.past_deadline(Instant::now()) {
                error!(url = %self.url, events = jobs.len(), "webhooks abandoned: flush timeout over at shutdown");
                self.abandon(&jobs, "shutdown");
                continue;
            }
            self.deliver(jobs).await;
        }
    }

    /// Send one request for `jobs`, retrying with backoff.
    async fn deliver(&self, jobs: Vec<Job>) {
        let created_ms = jobs.iter().map(|j| j.created_ms).min().unwrap_or_else(unix_millis);
        let events: Vec<WebhookEvent> = jobs.into_iter().map(|j| j.event).collect();
        let body = webhook::body(created_ms, &events);
        let signature = webhook::sign(&self.secret, &body);
        let settings = &self.shared.settings;
        let expires_ms = created_ms.saturating_add(settings.retry_window_s.saturating_mul(1000));
        let mut backoff = Duration::from_millis(settings.retry_backoff_ms);
        let mut attempt = 1u32;
        loop {
            let why = match self.attempt(&body, &signature).await {
                Attempt::Delivered => return self.delivered(&events),
                Attempt::Failed(why) => why,
            };
            let retry_at = Instant::now() + backoff;
            if unix_millis().saturating_add(backoff.as_millis() as u64) > expires_ms {
                error!(url = %self.url, events = events.len(), attempt, error = %why, "webhook abandoned: retry window over");
                return self.abandon(&events, "expired");
            }
            if self.shared.past_deadline(retry_at) {
                error!(url = %self.url, events = events.len(), attempt, error = %why, "webhook abandoned: node shutting down");
                return self.abandon(&events, "shutdown");
            }
            warn!(url = %self.url, attempt, error = %why, retry_in_ms = backoff.as_millis() as u64, "webhook failed; retrying");
            tokio::time::sleep(backoff).await;
            self.metrics.retries.inc();
            backoff = (backoff * 2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }

    async fn attempt(&self, body: &str, signature: &str) -> Attempt {
        let started = Instant::now();
        let mut request = self
            .shared
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, webhook::CONTENT_TYPE)
            .header(webhook::KEY_HEADER, &self.key)
            .header(webhook::SIGNATURE_HEADER, signature)
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

    fn delivered(&self, events: &[WebhookEvent]) {
        self.metrics.deliveries.inc();
        for event in events {
            self.metrics.delivered(event.name(), 1);
        }
    }

    fn abandon<T>(&self, events: &[T], reason: &'static str) {
        self.metrics.failed(reason, events.len() as u64);
    }
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
