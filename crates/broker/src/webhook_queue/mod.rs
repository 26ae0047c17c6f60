//! Durable webhook jobs: where the server's dispatcher puts the webhook events a node decided,
//! and where the node that delivers them takes them from.
//!
//! The dispatcher splits each app endpoint into a few *lanes* (chosen by channel with
//! [`crate::shard_of`]), so the events of one channel reach an endpoint in order. A lane is
//! consumed by exactly one node at a time: the holder of its *lease*. The holder claims the
//! lane's head, sends it, and acknowledges it only after a 2xx; until then the jobs stay in the
//! queue, so a node that crashes loses nothing: the next lease holder claims the same jobs
//! again, first, in the same order (at-least-once, never reordered within a lane).
//!
//! Two implementations keep the same contract ([`crate::contract`]): the in-process queue of a
//! single node ([`crate::MemoryWebhookQueue`]) and Redis Streams (crate
//! `ferrocast-backplane-redis`).

use std::time::Duration;

use async_trait::async_trait;

use crate::error::BackplaneError;

/// One lane of one app endpoint. `endpoint` is a stable id of the endpoint (a hash of its URL,
/// not its position in the config), so every node names the same queue for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LaneId {
    pub app_id: String,
    pub endpoint: String,
    pub lane: u16,
}

impl LaneId {
    /// The idempotency key of the job stored under `id` in this lane: stable across retries,
    /// takeovers and restarts because the id is the queue's, not the sender's. Ids are unique
    /// per lane only (each lane is its own stream), so the key names the lane too.
    pub fn job_key(&self, id: &str) -> String {
        format!("{}:{}:{}:{}", self.app_id, self.endpoint, self.lane, id)
    }
}

/// A job to queue: one webhook event (its JSON object) for one lane.
#[derive(Debug, Clone, Copy)]
pub struct NewJob<'a> {
    pub lane: &'a LaneId,
    /// The event as it goes into the request body's `events` array.
    pub event_json: &'a str,
    /// When the event happened (Unix ms): the body's `time_ms` and the start of its retry window.
    pub created_ms: u64,
    /// Most jobs the lane may hold; a full lane refuses the job rather than drop older ones.
    pub cap: usize,
}

/// What became of a [`NewJob`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Queued,
    /// The lane holds `cap` jobs already: the job was not queued (the caller counts it).
    Full,
}

/// A job waiting in a lane, as claimed or listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    /// The queue's id of the job (a stream entry id); ordered within a lane.
    pub id: String,
    /// The job's idempotency key: [`LaneId::job_key`] of its first id, kept through replays.
    pub key: String,
    pub event_json: String,
    pub created_ms: u64,
    /// Start of its retry window (Unix ms): `created_ms`, or when it was replayed.
    pub retry_from_ms: u64,
}

/// Ask for a lane's next jobs as node `node`, taking or renewing its lease for `lease`.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    pub lane: &'a LaneId,
    pub node: &'a str,
    pub max: usize,
    pub lease: Duration,
}

/// The answer to a [`ClaimRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Another node holds the lane's lease.
    NotOwner,
    /// This node holds the lease. `jobs` is the lane's head (at most `max`, oldest first):
    /// jobs claimed before and not yet acknowledged come first, so a retried or taken-over
    /// batch is the same batch. `took_over` says the lease was just taken and jobs a previous
    /// holder had claimed were taken with it.
    Owned { jobs: Vec<QueuedJob>, took_over: bool },
}

/// Move jobs that could not be delivered to the app's dead letters.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetterRequest<'a> {
    pub lane: &'a LaneId,
    pub jobs: &'a [QueuedJob],
    pub reason: &'a str,
    pub failed_ms: u64,
    /// Most dead letters the app keeps; the oldest go first beyond it.
    pub cap: usize,
}

/// A job kept after its retries ran out, until an operator replays it (or it is trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Id in the app's dead letters (what [`ReplayRequest::ids`] names).
    pub id: String,
    pub endpoint: String,
    pub lane: u16,
    /// The idempotency key the job was sent with, and will be replayed with.
    pub key: String,
    pub event_json: String,
    pub created_ms: u64,
    pub reason: String,
    pub failed_ms: u64,
}

/// Put dead letters of `app_id` back into their lanes: the ones named in `ids`, or, when `ids`
/// is empty, the oldest `max`.
#[derive(Debug, Clone, Copy)]
pub struct ReplayRequest<'a> {
    pub app_id: &'a str,
    pub ids: &'a [String],
    pub max: usize,
    /// The lanes' cap, as for [`NewJob::cap`]: a dead letter whose lane is full stays put.
    pub cap: usize,
    /// Replayed jobs start a new retry window from here (Unix ms).
    pub now_ms: u64,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    pub replayed: usize,
    /// Left in the dead letters because their lane was full.
    pub refused: usize,
}

/// An app's queue at a glance, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Jobs not yet acknowledged, in every lane of every endpoint.
    pub depth: u64,
    /// Creation time (Unix ms) of the oldest of them.
    pub oldest_created_ms: Option<u64>,
    pub dead_letters: u64,
}

/// The webhook job queue of the cluster. Every method on one lane is one atomic step and one round
/// trip to the store; the per-app reads (dead letters, replay, stats) gather from every part of a
/// sharded store.
#[async_trait]
pub trait WebhookQueue: Send + Sync {
    async fn enqueue(&self, job: NewJob<'_>) -> Result<Enqueued, BackplaneError>;
    /// Take or renew the lane's lease and return its head (see [`Claim`]).
    async fn claim(&self, request: ClaimRequest<'_>) -> Result<Claim, BackplaneError>;
    /// Extend the lease while a claimed batch is still being retried; false if the lease is
    /// gone (another node took the lane: drop the batch, that node sends it).
    async fn renew(&self, lane: &LaneId, node: &str, lease: Duration) -> Result<bool, BackplaneError>;
    /// Give up the lease (draining) so another node continues the lane at once.
    async fn release(&self, lane: &LaneId, node: &str) -> Result<(), BackplaneError>;
    /// Remove delivered jobs.
    async fn ack(&self, lane: &LaneId, ids: &[String]) -> Result<(), BackplaneError>;
    /// Move jobs to the app's dead letters and out of their lane, in one step.
    async fn dead_letter(&self, request: DeadLetterRequest<'_>) -> Result<(), BackplaneError>;
    /// The app's oldest `max` dead letters.
    async fn dead_letters(&self, app_id: &str, max: usize) -> Result<Vec<DeadLetter>, BackplaneError>;
    async fn replay(&self, request: ReplayRequest<'_>) -> Result<Replayed, BackplaneError>;
    async fn stats(&self, app_id: &str) -> Result<QueueStats, BackplaneError>;
}
