//! The operator's view of the queue: dead letters listed and replayed through the REST admin
//! endpoints, and the queue gauges, refreshed from the queue's stats every
//! [`REFRESH_EVERY`] rather than on every event.

use std::sync::Arc;
use std::time::Duration;

use ferrocast_broker::{unix_millis, BackplaneError, ReplayRequest};
use serde::Serialize;
use tracing::{info, warn};

use super::Dispatcher;

/// How often the queue gauges are refreshed: one stats call per app with webhooks.
const REFRESH_EVERY: Duration = Duration::from_millis(500);

/// Most dead letters one list or replay request handles.
pub const MAX_PAGE: usize = 1000;

/// One dead letter as the admin endpoint shows it.
#[derive(Debug, Serialize)]
pub struct DeadLetterView {
    pub id: String,
    /// The endpoint's URL when it is still configured (else `null`), and its stable id.
    pub url: Option<String>,
    pub endpoint: String,
    pub lane: u16,
    pub idempotency_key: String,
    pub created_ms: u64,
    pub failed_ms: u64,
    pub reason: String,
    /// The event as it was (and will be) sent.
    pub event: serde_json::Value,
}

/// What a replay request did.
#[derive(Debug, Serialize)]
pub struct ReplayOutcome {
    pub replayed: usize,
    /// Left in the dead letters because their lane was at its cap.
    pub refused: usize,
}

impl Dispatcher {
    /// The app's oldest `max` dead letters.
    pub async fn dead_letters(&self, app_id: &str, max: usize) -> Result<Vec<DeadLetterView>, BackplaneError> {
        let letters = self.shared.queue.dead_letters(app_id, max.clamp(1, MAX_PAGE)).await?;
        let hooks = self.hooks();
        let url = |endpoint: &str| {
            hooks.get(app_id).and_then(|app| {
                app.endpoints
                    .iter()
                    .find(|e| e.endpoint.id == endpoint)
                    .map(|e| e.endpoint.url.clone())
            })
        };
        Ok(letters
            .into_iter()
            .map(|d| DeadLetterView {
                url: url(&d.endpoint),
                event: serde_json::from_str(&d.event_json).unwrap_or(serde_json::Value::Null),
                id: d.id,
                endpoint: d.endpoint,
                lane: d.lane,
                idempotency_key: d.key,
                created_ms: d.created_ms,
                failed_ms: d.failed_ms,
                reason: d.reason,
            })
            .collect())
    }

    /// Put the named dead letters (or, with none named, the oldest `max`) back into their
    /// lanes, with their idempotency keys and a new retry window.
    pub async fn replay(&self, app_id: &str, ids: &[String], max: usize) -> Result<ReplayOutcome, BackplaneError> {
        let ids = &ids[..ids.len().min(MAX_PAGE)];
        let done = self
            .shared
            .queue
            .replay(ReplayRequest {
                app_id,
                ids,
                max: max.clamp(1, MAX_PAGE),
                cap: self.shared.lane_cap(self.shared.settings.max_batch_size),
                now_ms: unix_millis(),
            })
            .await?;
        info!(
            app_id,
            replayed = done.replayed,
            refused = done.refused,
            "webhook dead letters replayed"
        );
        self.wake(app_id);
        Ok(ReplayOutcome {
            replayed: done.replayed,
            refused: done.refused,
        })
    }
}

/// Keep the queue gauges of every app current until shutdown.
pub(super) async fn refresh_metrics(dispatcher: Arc<Dispatcher>) {
    let mut every = tokio::time::interval(REFRESH_EVERY);
    // Apps whose stats could not be read: logged once per outage, not every refresh.
    let mut failing: std::collections::HashSet<String> = std::collections::HashSet::new();
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = dispatcher.upkeep.cancelled() => return,
        }
        let hooks = dispatcher.hooks();
        for (app_id, app) in hooks.iter() {
            match dispatcher.shared.queue.stats(app_id).await {
                Ok(stats) => {
                    failing.remove(app_id);
                    let m = &app.metrics;
                    m.queue_depth.set(stats.depth as i64);
                    m.dead_letter_depth.set(stats.dead_letters as i64);
                    let age_ms = stats
                        .oldest_created_ms
                        .map_or(0, |created| unix_millis().saturating_sub(created));
                    m.oldest_age.set((age_ms / 1000) as i64);
                }
                Err(e) => {
                    if failing.insert(app_id.clone()) {
                        warn!(app_id, error = %e, "reading the webhook queue stats failed; the queue gauges keep their last value");
                    }
                }
            }
        }
    }
}
