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
use crate::keys::{Bucket, LaneKeys};
use crate::RedisBackplane;

impl RedisBackplane {
    fn lane_keys(&self, lane: &LaneId) -> LaneKeys {
        self.keys.webhook_lane(&lane.app_id, &lane.endpoint, lane.lane)
    }

    /// A dead letter's id as the API shows it: the stream id, after its bucket when there are
    /// several (ids are unique per bucket's stream only).
    fn letter_id(&self, bucket: Bucket, id: String) -> String {
        match self.keys.bucket_count() {
            1 => id,
            _ => format!("{}:{id}", bucket.0),
        }
    }

    /// The bucket and stream id a dead letter's API id names (`None`: not one of ours).
    fn parse_letter_id(&self, id: &str) -> Option<(Bucket, String)> {
        match id.split_once(':') {
            Some((bucket, id)) => {
                let bucket: u32 = bucket.parse().ok()?;
                (bucket < self.keys.bucket_count()).then(|| (Bucket(bucket), id.to_owned()))
            }
            None => (self.keys.bucket_count() == 1).then(|| (Bucket(0), id.to_owned())),
        }
    }

    /// The dead letters of `app_id`: the oldest `max` of every bucket (one pipelined round
    /// trip), or those named by `ids`, each with its bucket, oldest first.
    async fn read_dead_letters(
        &self,
        app_id: &str,
        ids: &[String],
        max: usize,
    ) -> Result<Vec<(Bucket, DeadLetter)>, BackplaneError> {
        let mut reads: Vec<(Bucket, String, String, String)> = Vec::new();
        if ids.is_empty() {
            for bucket in self.keys.all_buckets() {
                reads.push((bucket, "-".into(), "+".into(), max.max(1).to_string()));
            }
        } else {
            for id in ids {
                if let Some((bucket, id)) = self.parse_letter_id(id) {
                    reads.push((bucket, id.clone(), id, "1".into()));
                }
            }
        }
        let commands = reads
            .iter()
            .map(|(bucket, from, to, count)| {
                let mut cmd = redis::cmd("XRANGE");
                cmd.arg(self.keys.bucket(*bucket).dead_letters(app_id))
                    .arg(from)
                    .arg(to)
                    .arg("COUNT")
                    .arg(count);
                cmd
            })
            .collect();
        let replies = self.query_all(commands).await?;
        let bad = || malformed("webhook dead letters");
        let mut letters = Vec::new();
        for ((bucket, ..), reply) in reads.iter().zip(&replies) {
            for entry in array(reply).ok_or_else(bad)? {
                letters.push((*bucket, dead_letter(entry).ok_or_else(bad)?));
            }
        }
        letters.sort_by_key(|(_, letter)| stream_order(&letter.id));
        letters.truncate(max.max(1).max(ids.len()));
        Ok(letters)
    }
}

/// A stream id's order (`ms-seq`): ids of different streams compare by time.
fn stream_order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(u64::MAX), seq.parse().unwrap_or(u64::MAX))
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
        let lane = self.lane_keys(job.lane);
        let keys = vec![lane.stream, lane.shared.webhook_lanes(&job.lane.app_id)];
        let args = vec![
            lane.member,
            job.cap.to_string(),
            job.event_json.to_owned(),
            job.created_ms.to_string(),
        ];
        let reply = self.eval(&self.scripts().wh_enqueue, keys, args).await?;
        match int(&reply) {
            Some(1) => Ok(Enqueued::Queued),
            Some(0) => Ok(Enqueued::Full),
            _ => Err(malformed("webhook enqueue")),
        }
    }

    async fn claim(&self, request: ClaimRequest<'_>) -> Result<Claim, BackplaneError> {
        let lane = self.lane_keys(request.lane);
        let args = vec![
            request.node.to_owned(),
            millis(request.lease),
            request.max.max(1).to_string(),
        ];
        let reply = self
            .eval(&self.scripts().wh_claim, vec![lane.stream, lane.lease], args)
            .await?;
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
        let keys = vec![self.lane_keys(lane).lease];
        let args = vec![node.to_owned(), millis(lease)];
        let reply = self.eval(&self.scripts().wh_lease, keys, args).await?;
        Ok(int(&reply) == Some(1))
    }

    async fn release(&self, lane: &LaneId, node: &str) -> Result<(), BackplaneError> {
        let keys = vec![self.lane_keys(lane).lease];
        let args = vec![node.to_owned(), String::new()];
        self.eval(&self.scripts().wh_lease, keys, args).await.map(drop)
    }

    async fn ack(&self, lane: &LaneId, ids: &[String]) -> Result<(), BackplaneError> {
        if ids.is_empty() {
            return Ok(());
        }
        let keys = vec![self.lane_keys(lane).stream];
        self.eval(&self.scripts().wh_ack, keys, ids.to_vec()).await.map(drop)
    }

    async fn dead_letter(&self, request: DeadLetterRequest<'_>) -> Result<(), BackplaneError> {
        let lane = self.lane_keys(request.lane);
        let keys = vec![lane.stream, lane.shared.dead_letters(&request.lane.app_id)];
        let mut args = vec![
            request.lane.endpoint.clone(),
            request.lane.lane.to_string(),
            request.reason.to_owned(),
            request.failed_ms.to_string(),
            request.cap.max(1).to_string(),
        ];
        for job in request.jobs {
            args.push(job.id.clone());
            args.push(job.key.clone());
        }
        self.eval(&self.scripts().wh_dead, keys, args).await.map(drop)
    }

    async fn dead_letters(&self, app_id: &str, max: usize) -> Result<Vec<DeadLetter>, BackplaneError> {
        let letters = self.read_dead_letters(app_id, &[], max).await?;
        Ok(letters
            .into_iter()
            .map(|(bucket, mut letter)| {
                letter.id = self.letter_id(bucket, std::mem::take(&mut letter.id));
                letter
            })
            .collect())
    }

    /// The letters are read first (to name their lanes' keys), then put back bucket by bucket;
    /// the script skips a letter that another replay took meanwhile.
    async fn replay(&self, request: ReplayRequest<'_>) -> Result<Replayed, BackplaneError> {
        let letters = self.read_dead_letters(request.app_id, request.ids, request.max).await?;
        let mut done = Replayed::default();
        for bucket in self.keys.all_buckets() {
            let b = self.keys.bucket(bucket);
            let mut keys = vec![b.dead_letters(request.app_id), b.webhook_lanes(request.app_id)];
            let mut args = vec![request.cap.to_string(), request.now_ms.to_string()];
            for (_, letter) in letters.iter().filter(|(lb, _)| *lb == bucket) {
                let lane = self.keys.webhook_lane(request.app_id, &letter.endpoint, letter.lane);
                keys.push(lane.stream);
                args.extend([
                    letter.id.clone(),
                    lane.member,
                    letter.endpoint.clone(),
                    letter.lane.to_string(),
                ]);
            }
            if keys.len() == 2 {
                continue;
            }
            let reply = self.eval(&self.scripts().wh_replay, keys, args).await?;
            match array(&reply).ok_or_else(|| malformed("webhook replay"))? {
                [replayed, refused] => {
                    done.replayed += int(replayed).unwrap_or(0).max(0) as usize;
                    done.refused += int(refused).unwrap_or(0).max(0) as usize;
                }
                _ => return Err(malformed("webhook replay")),
            }
        }
        Ok(done)
    }

    /// Read without a script (a snapshot, not a decision): each bucket's lanes of the app, then
    /// every lane's length and oldest entry and each bucket's dead letters, one round trip each.
    async fn stats(&self, app_id: &str) -> Result<QueueStats, BackplaneError> {
        let sets: Vec<String> = self
            .keys
            .all_buckets()
            .map(|b| self.keys.bucket(b).webhook_lanes(app_id))
            .collect();
        let commands = sets
            .iter()
            .map(|set| {
                let mut cmd = redis::cmd("SMEMBERS");
                cmd.arg(set);
                cmd
            })
            .collect();
        let members: Vec<Vec<String>> = self
            .query_all(commands)
            .await?
            .into_iter()
            .map(|v| redis::from_redis_value(v).map_err(|_| malformed("webhook stats")))
            .collect::<Result<_, _>>()?;
        let mut streams = Vec::new();
        let mut dead = Vec::new();
        for (bucket, lanes) in self.keys.all_buckets().zip(&members) {
            let b = self.keys.bucket(bucket);
            streams.extend(lanes.iter().map(|member| b.lane_stream(app_id, member)));
            dead.push(b.dead_letters(app_id));
        }
        let lane_count = streams.len();
        let mut commands = Vec::with_capacity(2 * lane_count + dead.len());
        for stream in &streams {
            let mut len = redis::cmd("XLEN");
            len.arg(stream);
            let mut first = redis::cmd("XRANGE");
            first.arg(stream).arg("-").arg("+").arg("COUNT").arg(1);
            commands.extend([len, first]);
        }
        for key in &dead {
            let mut len = redis::cmd("XLEN");
            len.arg(key);
            commands.push(len);
        }
        let replies = self.query_all(commands).await?;
        let bad = || malformed("webhook stats");
        let (lanes, dead) = replies.split_at(2 * lane_count);
        let mut stats = QueueStats::default();
        for pair in lanes.chunks(2) {
            let [len, first] = pair else { return Err(bad()) };
            stats.depth += int(len).ok_or_else(bad)?.max(0) as u64;
            let oldest = array(first)
                .and_then(|entries| entries.first())
                .and_then(array)
                .and_then(|entry| number(array(entry.get(1)?)?, "ms"));
            if let Some(ms) = oldest {
                stats.oldest_created_ms = Some(stats.oldest_created_ms.map_or(ms, |o| o.min(ms)));
            }
        }
        for len in dead {
            stats.dead_letters += int(len).ok_or_else(bad)?.max(0) as u64;
        }
        Ok(stats)
    }
}
