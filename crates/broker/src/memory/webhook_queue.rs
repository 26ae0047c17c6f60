//! [`WebhookQueue`] in process, for a single node: a queue per lane behind one mutex (held for
//! a few pointer moves, never across an await). The lease is always this node's: there is no
//! other node to take a lane over.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::BackplaneError;
use crate::webhook_queue::{
    Claim, ClaimRequest, DeadLetter, DeadLetterRequest, Enqueued, LaneId, NewJob, QueueStats, QueuedJob, ReplayRequest,
    Replayed, WebhookQueue,
};

#[derive(Default)]
struct Queues {
    lanes: BTreeMap<LaneId, VecDeque<QueuedJob>>,
    dead: HashMap<String, VecDeque<DeadLetter>>,
}

/// The webhook queue of a single node (memory backplane).
#[derive(Default)]
pub struct MemoryWebhookQueue {
    queues: Mutex<Queues>,
    next_id: AtomicU64,
}

impl MemoryWebhookQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ids ordered like stream ids: `{ms}-{n}` with one counter for the process.
    fn id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", crate::clock::unix_millis())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        // A poisoned lock only means a panic elsewhere mid-update of plain collections.
        self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl WebhookQueue for MemoryWebhookQueue {
    async fn enqueue(&self, job: NewJob<'_>) -> Result<Enqueued, BackplaneError> {
        let id = self.id();
        let mut q = self.lock();
        let lane = q.lanes.entry(job.lane.clone()).or_default();
        if lane.len() >= job.cap {
            return Ok(Enqueued::Full);
        }
        lane.push_back(QueuedJob {
            key: job.lane.job_key(&id),
            id,
            event_json: job.event_json.to_owned(),
            created_ms: job.created_ms,
            retry_from_ms: job.created_ms,
        });
        Ok(Enqueued::Queued)
    }

    async fn claim(&self, request: ClaimRequest<'_>) -> Result<Claim, BackplaneError> {
        let q = self.lock();
        let jobs = q
            .lanes
            .get(request.lane)
            .map(|lane| lane.iter().take(request.max).cloned().collect())
            .unwrap_or_default();
        Ok(Claim::Owned { jobs, took_over: false })
    }

    async fn renew(&self, _lane: &LaneId, _node: &str, _lease: Duration) -> Result<bool, BackplaneError> {
        Ok(true)
    }

    async fn release(&self, _lane: &LaneId, _node: &str) -> Result<(), BackplaneError> {
        Ok(())
    }

    async fn ack(&self, lane: &LaneId, ids: &[String]) -> Result<(), BackplaneError> {
        let mut q = self.lock();
        if let Some(jobs) = q.lanes.get_mut(lane) {
            jobs.retain(|j| !ids.contains(&j.id));
        }
        Ok(())
    }

    async fn dead_letter(&self, request: DeadLetterRequest<'_>) -> Result<(), BackplaneError> {
        let ids: Vec<String> = request.jobs.iter().map(|_| self.id()).collect();
        let mut q = self.lock();
        let claimed: Vec<&str> = request.jobs.iter().map(|j| j.id.as_str()).collect();
        let mut moved = Vec::new();
        if let Some(jobs) = q.lanes.get_mut(request.lane) {
            jobs.retain(|j| {
                let dead = claimed.contains(&j.id.as_str());
                if dead {
                    moved.push(j.clone());
                }
                !dead
            });
        }
        let dead = q.dead.entry(request.lane.app_id.clone()).or_default();
        for (job, id) in moved.into_iter().zip(ids) {
            dead.push_back(DeadLetter {
                id,
                endpoint: request.lane.endpoint.clone(),
                lane: request.lane.lane,
                key: job.key,
                event_json: job.event_json,
                created_ms: job.created_ms,
                reason: request.reason.to_owned(),
                failed_ms: request.failed_ms,
            });
        }
        while dead.len() > request.cap {
            dead.pop_front();
        }
        Ok(())
    }

    async fn dead_letters(&self, app_id: &str, max: usize) -> Result<Vec<DeadLetter>, BackplaneError> {
        let q = self.lock();
        Ok(q.dead
            .get(app_id)
            .map(|d| d.iter().take(max).cloned().collect())
            .unwrap_or_default())
    }

    async fn replay(&self, request: ReplayRequest<'_>) -> Result<Replayed, BackplaneError> {
        let mut q = self.lock();
        let Queues { lanes, dead } = &mut *q;
        let Some(letters) = dead.get_mut(request.app_id) else {
            return Ok(Replayed::default());
        };
        let chosen: Vec<String> = if request.ids.is_empty() {
            letters.iter().take(request.max).map(|d| d.id.clone()).collect()
        } else {
            request.ids.to_vec()
        };
        let mut done = Replayed::default();
        for id in chosen {
            let Some(at) = letters.iter().position(|d| d.id == id) else {
                continue;
            };
            let letter = &letters[at];
            let lane_id = LaneId {
                app_id: request.app_id.to_owned(),
                endpoint: letter.endpoint.clone(),
                lane: letter.lane,
            };
            let lane = lanes.entry(lane_id).or_default();
            if lane.len() >= request.cap {
                done.refused += 1;
                continue;
            }
            let n = self.next_id.fetch_add(1, Ordering::Relaxed);
            let Some(letter) = letters.remove(at) else { continue };
            lane.push_back(QueuedJob {
                id: format!("{}-{n}", request.now_ms),
                key: letter.key,
                event_json: letter.event_json,
                created_ms: letter.created_ms,
                retry_from_ms: request.now_ms,
            });
            done.replayed += 1;
        }
        Ok(done)
    }

    async fn stats(&self, app_id: &str) -> Result<QueueStats, BackplaneError> {
        let q = self.lock();
        let mut stats = QueueStats::default();
        for job in q
            .lanes
            .iter()
            .filter(|(l, _)| l.app_id == app_id)
            .flat_map(|(_, jobs)| jobs)
        {
            stats.depth += 1;
            stats.oldest_created_ms = Some(
                stats
                    .oldest_created_ms
                    .map_or(job.created_ms, |o| o.min(job.created_ms)),
            );
        }
        stats.dead_letters = q.dead.get(app_id).map_or(0, |d| d.len() as u64);
        Ok(stats)
    }
}
