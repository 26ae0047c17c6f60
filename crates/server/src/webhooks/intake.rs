//! One lane's intake: moves the events the node reported into the queue, one at a time so
//! they keep their order, and wakes the lane's consumer. An event is safe from a crash of this
//! node once its enqueue returned; until then (normally well under a millisecond) it is only
//! in this process.

use std::sync::Arc;
use std::time::Duration;

use ferrocast_broker::{Enqueued, LaneId, NewJob};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::{Job, Shared};
use crate::metrics::AppWebhookMetrics;

/// Pause between attempts while the queue's store is unreachable.
const STORE_RETRY: Duration = Duration::from_millis(250);

pub(super) struct Intake {
    pub(super) lane: LaneId,
    /// Jobs the lane's queue may hold (see `Shared::lane_cap`).
    pub(super) cap: usize,
    pub(super) shared: Arc<Shared>,
    pub(super) metrics: AppWebhookMetrics,
    pub(super) wake: Arc<Notify>,
    /// Cancelled when the intake has queued its last event (shutdown).
    pub(super) done: CancellationToken,
}

impl Intake {
    pub(super) async fn run(self, mut rx: mpsc::Receiver<Job>) {
        loop {
            let job = tokio::select! {
                biased;
                job = rx.recv() => job,
                () = self.shared.closing.cancelled() => rx.try_recv().ok(),
            };
            let Some(job) = job else { break };
            self.put(job).await;
        }
        self.done.cancel();
        self.wake.notify_one();
    }

    /// Queue one event, retrying while the store is unreachable, until its retry window ends
    /// (or the node's shutdown deadline passes): then it is counted as lost and logged.
    async fn put(&self, job: Job) {
        let window_ms = self.shared.settings.retry_window_s.saturating_mul(1000);
        let expires_ms = job.created_ms.saturating_add(window_ms);
        let mut first_failure = true;
        loop {
            let request = NewJob {
                lane: &self.lane,
                event_json: &job.event_json,
                created_ms: job.created_ms,
                cap: self.cap,
            };
            match self.shared.queue.enqueue(request).await {
                Ok(Enqueued::Queued) => return self.wake.notify_one(),
                Ok(Enqueued::Full) => {
                    warn!(app_id = %self.lane.app_id, event = job.name, endpoint = %self.lane.endpoint, lane = self.lane.lane, "webhook lane at its cap: event refused");
                    return self.metrics.failed("queue_full", 1);
                }
                Err(e) => {
                    let now = std::time::Instant::now();
                    if ferrocast_broker::unix_millis() >= expires_ms || self.shared.past_deadline(now) {
                        error!(app_id = %self.lane.app_id, event = job.name, error = %e, "webhook event could not be queued: lost");
                        return self.metrics.failed("queue_unavailable", 1);
                    }
                    if first_failure {
                        warn!(app_id = %self.lane.app_id, event = job.name, error = %e, "webhook event could not be queued yet; retrying until its retry window ends");
                        first_failure = false;
                    }
                    tokio::time::sleep(STORE_RETRY).await;
                }
            }
        }
    }
}
