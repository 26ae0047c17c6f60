//! [`WebhookQueue`] on Redis Streams (key layout in `src/lua/wh_common.lua`).
//!
//! One stream per (app, endpoint, lane) with one consumer group; each node is a consumer named
//! by its node id. Exactly one node consumes a lane at a time: the holder of the lane's lease
//! key (`SET NX PX`, renewed by every claim while the node is alive, released when it drains).
//! A crashed node stops renewing, its leases expire after `node_ttl` (the same time after which
//! its heartbeat expires and peers reap it), and the next node to claim the lane first takes
//! the dead holder's pending entries with `XAUTOCLAIM` and sends them, in id order, before any
//! new entry: that is how order per lane survives a takeover. Entries are acknowledged (`XACK`
//! and `XDEL`) only after a 2xx, so the stream length is the undelivered count, and a full
//! lane refuses new jobs instead of trimming undelivered ones.

use std::time::Duration;

use async_trait::async_trait;
use ferrocast_broker::{
    BackplaneError, Claim, ClaimRequest, DeadLetter, DeadLetterRequest, Enqueued, LaneId, NewJob, QueueStats,
    QueuedJob, ReplayRequest, Replayed, WebhookQueue,
};
use redis::Value;

use crate::cluster_state::{array, int, malformed, string};
use crate::RedisBackplane;

impl RedisBackplane {
    /// `prefix, app, endpoint, lane, extra...` as script arguments.
    fn lane_args(&self, lane: &LaneId, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            self.keys.prefix().to_owned(),
            lane.app_id.clone(),
            lane.endpoint.clone(),
            lane.lane.to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().clamp(1, u64::MAX as u128).to_string()
}

/// A stream entry's `{field, value, ...}` as a lookup.
fn field<'a>(flat: &'a [Value], name: &str) -> Option<&'a Value> {
    flat.chunks(2)
        .find(|kv| kv.first().and_then(string).as_deref() == Some(name))
        .and_then(|kv| kv.get(1))
}

fn number(flat: &[Value], name: &str) -> Option<u64> {
    field(flat, name).and_then(int).and_then(|n| u64::try_from(n).ok())
}

/// `{id, {ev, .., ms, .., from, .., ik?, ..}}` into a job of `lane`.
fn job(lane: &LaneId, entry: &Value) -> Option<QueuedJob> {
    let [id, fields] = array(entry)? else { return None };
    let id = string(id)?;
    let flat = array(fields)?;
    let created_ms = number(flat, "ms")?;
    Some(QueuedJob {
        key: field(flat, "ik").and_then(string).unwrap_or_else(|| lane.job_key(&id)),
        event_json: field(flat, "ev").and_then(string)?,
        created_ms,
        retry_from_ms: number(flat, "from").unwrap_or(created_ms),
        id,
    })
}

fn dead_letter(entry: &Value) -> Option<DeadLetter> {
    let [id, fields] = array(entry)? else { return None };
    let flat = array(fields)?;
    Some(DeadLetter {
        id: string(id)?,
        endpoint: field(flat, "ep").and_then(string)?,
        lane: number(flat, "ln").and_then(|n| u16::try_from(n).ok())?,
        key: field(flat, "ik").and_then(string)?,
        event_json: field(flat, "ev").and_then(string)?,
        created_ms: number(flat, "ms")?,
        reason: field(flat, "why").and_then(string)?,
        failed_ms: number(flat, "at")?,
    })
}

#[async_trait]
impl WebhookQueue for RedisBackplane {
    async fn enqueue(&self, job: NewJob<'_>) -> Result<Enqueued, BackplaneError> {
        let args = self.lane_args(
            job.lane,
            &[&job.cap.to_string(), job.event_json, &job.created_ms.to_string()],
        );
        let reply = self.eval(&self.scripts.wh_enqueue, Vec::new(), args).await?;
        match int(&reply) {
            Some(1) => Ok(Enqueued::Queued),
            Some(0) => Ok(Enqueued::Full),
            _ => Err(malformed("webhook enqueue")),
        }
    }

    async fn claim(&self, request: ClaimRequest<'_>) -> Result<Claim, BackplaneError> {
        let args = self.lane_args(
            request.lane,
            &[request.node, &millis(request.lease), &request.max.max(1).to_string()],
        );
        let reply = self.eval(&self.scripts.wh_claim, Vec::new(), args).await?;
        let bad = || malformed("webhook claim");
        match array(&reply).ok_or_else(bad)? {
            [owner] if int(owner) == Some(0) => Ok(Claim::NotOwner),
            [owner, took, entries] if int(owner) == Some(1) => {
                let jobs = array(entries)
                    .ok_or_else(bad)?
                    .iter()
                    .map(|e| job(request.lane, e))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(bad)?;
                Ok(Claim::Owned {
                    jobs,
                    took_over: int(took) == Some(1),
                })
            }
            _ => Err(bad()),
        }
    }

    async fn renew(&self, lane: &LaneId, node: &str, lease: Duration) -> Result<bool, BackplaneError> {
        let reply = self
            .eval(
                &self.scripts.wh_lease,
                Vec::new(),
                self.lane_args(lane, &[node, &millis(lease)]),
            )
            .await?;
        Ok(int(&reply) == Some(1))
    }

    async fn release(&self, lane: &LaneId, node: &str) -> Result<(), BackplaneError> {
        self.eval(&self.scripts.wh_lease, Vec::new(), self.lane_args(lane, &[node, ""]))
            .await
            .map(drop)
    }

    async fn ack(&self, lane: &LaneId, ids: &[String]) -> Result<(), BackplaneError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut args = self.lane_args(lane, &[]);
        args.extend(ids.iter().cloned());
        self.eval(&self.scripts.wh_ack, Vec::new(), args).await.map(drop)
    }

    async fn dead_letter(&self, request: DeadLetterRequest<'_>) -> Result<(), BackplaneError> {
        let mut args = self.lane_args(
            request.lane,
            &[
                request.reason,
                &request.failed_ms.to_string(),
                &request.cap.max(1).to_string(),
            ],
        );
        for job in request.jobs {
            args.push(job.id.clone());
            args.push(job.key.clone());
        }
        self.eval(&self.scripts.wh_dead, Vec::new(), args).await.map(drop)
    }

    async fn dead_letters(&self, app_id: &str, max: usize) -> Result<Vec<DeadLetter>, BackplaneError> {
        let key = format!("{}:whd:{app_id}", self.keys.prefix());
        let reply = self
            .with_conn(|mut conn| async move {
                redis::cmd("XRANGE")
                    .arg(key)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(max.max(1))
                    .query_async::<Value>(&mut conn)
                    .await
            })
            .await?;
        let bad = || malformed("webhook dead letters");
        array(&reply)
            .ok_or_else(bad)?
            .iter()
            .map(dead_letter)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)
    }

    async fn replay(&self, request: ReplayRequest<'_>) -> Result<Replayed, BackplaneError> {
        let mut args = vec![
            self.keys.prefix().to_owned(),
            request.app_id.to_owned(),
            request.cap.to_string(),
            request.now_ms.to_string(),
            request.max.max(1).to_string(),
        ];
        args.extend(request.ids.iter().cloned());
        let reply = self.eval(&self.scripts.wh_replay, Vec::new(), args).await?;
        match array(&reply).ok_or_else(|| malformed("webhook replay"))? {
            [replayed, refused] => Ok(Replayed {
                replayed: int(replayed).unwrap_or(0).max(0) as usize,
                refused: int(refused).unwrap_or(0).max(0) as usize,
            }),
            _ => Err(malformed("webhook replay")),
        }
    }

    async fn stats(&self, app_id: &str) -> Result<QueueStats, BackplaneError> {
        let args = vec![self.keys.prefix().to_owned(), app_id.to_owned()];
        let reply = self.eval(&self.scripts.wh_stats, Vec::new(), args).await?;
        let bad = || malformed("webhook stats");
        match array(&reply).ok_or_else(bad)? {
            [depth, oldest, dead] => Ok(QueueStats {
                depth: int(depth).ok_or_else(bad)?.max(0) as u64,
                oldest_created_ms: int(oldest).and_then(|o| u64::try_from(o).ok()),
                dead_letters: int(dead).ok_or_else(bad)?.max(0) as u64,
            }),
            _ => Err(bad()),
        }
    }
}
