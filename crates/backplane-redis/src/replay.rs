//! Replay logs: gap-free delivery across a reconnect.
//!
//! Redis pub/sub forgets: whatever is published while a node's pub/sub connection is down (or
//! before its new SUBSCRIBE reached Redis) never reaches it. So every publish also appends the
//! message to its channel's replay log, a Redis Stream capped by length and age, in the same
//! script (`lua/publish.lua`), and the published bytes carry the message's log id.
//!
//! The supervisor keeps a [`Positions`] table: for each channel with local interest, the id of
//! the last message it delivered, or, before any arrived, a mark taken from Redis' clock when
//! the channel was subscribed. After a reconnect, once every channel is subscribed again, it
//! reads each log after its position ([`catch_up`]), delivers what it missed in order, and from
//! then on drops live messages at or below the position: each message reaches the local
//! fan-out once, in log order. If Redis lost its data (the cluster epoch changed), positions
//! from before mean nothing and every log is read from its start.
//!
//! Log ids are Redis' `<ms>-<seq>` stream ids, so a log recreated after it expired counts on
//! from above its old ids (unless Redis' clock went back).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferrocast_broker::BackplaneError;
use redis::Value;
use tracing::{info, warn};

use crate::RedisBackplane;

/// How a channel's replay log is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayLog {
    /// Entries kept per channel (approximately: Redis trims whole stream nodes); 0 turns the
    /// logs off (plain PUBLISH, no replay).
    pub max_len: u64,
    /// Entries older than this are trimmed, and an idle log expires after it.
    pub ttl: Duration,
}

impl Default for ReplayLog {
    fn default() -> Self {
        Self {
            max_len: 2000,
            ttl: Duration::from_secs(30),
        }
    }
}

impl ReplayLog {
    pub fn enabled(&self) -> bool {
        self.max_len > 0
    }
}

/// How far before Redis' estimated clock a new subscription's mark is set: covers the error of
/// the estimate (half a round trip at connect, plus drift), so no message published after the
/// SUBSCRIBE can sort before the mark.
const MARK_MARGIN_MS: u64 = 100;

/// Channels read per replay script call.
const CHANNELS_PER_CALL: usize = 50;

/// A message's position in its channel's log: a Redis stream id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct LogId {
    pub ms: u64,
    pub seq: u64,
}

impl LogId {
    /// Before every entry: read a log from its start.
    pub const ZERO: LogId = LogId { ms: 0, seq: 0 };

    /// Parse `<ms>-<seq>`.
    pub fn parse(text: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(text).ok()?;
        let (ms, seq) = text.split_once('-')?;
        Some(Self {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for LogId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Split a received payload into its log id (messages published with a log) and its envelope.
/// Envelopes are MessagePack and never start with an ASCII digit.
pub fn split(payload: &[u8]) -> (Option<LogId>, &[u8]) {
    if payload.first().is_some_and(u8::is_ascii_digit) {
        if let Some(space) = payload.iter().position(|b| *b == b' ') {
            if let Some(id) = LogId::parse(&payload[..space]) {
                return (Some(id), &payload[space + 1..]);
            }
        }
    }
    (None, payload)
}

/// What the supervisor delivered last per pub/sub channel. Owned by the supervisor task alone:
/// no lock on the delivery path.
#[derive(Debug, Default)]
pub struct Positions {
    last: HashMap<String, LogId>,
    /// Redis' clock (ms) when last read, and when.
    clock: Option<(u64, Instant)>,
}

impl Positions {
    /// A channel is being subscribed: unless it has a position, start it at Redis' clock now
    /// (minus a margin), so a replay after the next reconnect brings what came after.
    pub fn mark(&mut self, channel: &str) {
        if self.last.contains_key(channel) {
            return;
        }
        let now = self.redis_now_ms();
        self.last.insert(
            channel.to_owned(),
            LogId {
                ms: now.saturating_sub(MARK_MARGIN_MS),
                seq: 0,
            },
        );
    }

    /// The channel was unsubscribed.
    pub fn forget(&mut self, channel: &str) {
        self.last.remove(channel);
    }

    /// Whether a message at `id` is new for `channel` (then it becomes the position). Channels
    /// without a position (no interest) take everything.
    pub fn accept(&mut self, channel: &str, id: LogId) -> bool {
        match self.last.get_mut(channel) {
            Some(last) if id <= *last => false,
            Some(last) => {
                *last = id;
                true
            }
            None => true,
        }
    }

    fn position(&self, channel: &str) -> Option<LogId> {
        self.last.get(channel).copied()
    }

    fn set_clock(&mut self, redis_ms: u64) {
        self.clock = Some((redis_ms, Instant::now()));
    }

    fn redis_now_ms(&self) -> u64 {
        match self.clock {
            Some((ms, at)) => ms.saturating_add(at.elapsed().as_millis() as u64),
            // Before the first TIME: our own clock (only until the first connect).
            None => ferrocast_broker::unix_micros() / 1000,
        }
    }
}

/// What one catch-up did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// Messages delivered from the logs.
    pub replayed: u64,
    /// Channels whose log was trimmed past their position: messages lost for them (see
    /// [`read_logs`]).
    pub gaps: u64,
    /// Redis lost its data since the positions were taken: logs were read from their start.
    pub reset: bool,
}

/// After a reconnect, with `channels` subscribed again: deliver from each channel's log what
/// arrived after its position, in order. Channels without a position (their SUBSCRIBE never
/// reached Redis before) get a mark instead: their subscribers were not told they are
/// subscribed yet, so nothing before now is theirs.
pub async fn catch_up(
    backplane: &RedisBackplane,
    positions: &mut Positions,
    channels: &[String],
) -> Result<CatchUp, BackplaneError> {
    let wanted: std::collections::HashSet<&str> = channels.iter().map(String::as_str).collect();
    positions.last.retain(|name, _| wanted.contains(name.as_str()));
    positions.set_clock(redis_time_ms(backplane).await?);
    let mut outcome = CatchUp {
        reset: store_was_reset(backplane).await?,
        ..CatchUp::default()
    };
    let mut due: Vec<(String, LogId)> = Vec::new();
    for name in channels {
        match positions.position(name) {
            Some(_) if outcome.reset => due.push((name.clone(), LogId::ZERO)),
            Some(from) => due.push((name.clone(), from)),
            None => positions.mark(name),
        }
    }
    if outcome.reset {
        for (name, _) in &due {
            positions.last.insert(name.clone(), LogId::ZERO);
        }
    }
    let page = backplane.options.replay_log.max_len.max(1);
    while !due.is_empty() {
        let mut more = Vec::new();
        for chunk in due.chunks(CHANNELS_PER_CALL) {
            let replies = read_logs(backplane, chunk, page).await?;
            for ((name, from), (entries, first_kept)) in chunk.iter().zip(replies) {
                if first_kept > *from {
                    outcome.gaps += 1;
                    warn!(channel = %name, from = %from, first_kept = %first_kept, "replay log trimmed past this node's position: messages lost for its subscribers");
                }
                let full = entries.len() as u64 >= page;
                let mut last = *from;
                for (id, envelope) in entries {
                    last = id;
                    if positions.accept(name, id) {
                        crate::pubsub::deliver_envelope(backplane, &envelope);
                        outcome.replayed += 1;
                    }
                }
                if full {
                    more.push((name.clone(), last));
                }
            }
        }
        due = more;
    }
    let stats = &backplane.stats;
    stats.replayed.fetch_add(outcome.replayed, Ordering::Relaxed);
    stats.last_replayed.store(outcome.replayed, Ordering::Relaxed);
    stats.replay_gaps.fetch_add(outcome.gaps, Ordering::Relaxed);
    if outcome.replayed > 0 || outcome.gaps > 0 || outcome.reset {
        info!(
            replayed = outcome.replayed,
            gaps = outcome.gaps,
            store_was_reset = outcome.reset,
            "caught up from the replay logs"
        );
    }
    Ok(outcome)
}

/// Redis' clock in milliseconds (`TIME`): log ids are minted from it.
async fn redis_time_ms(backplane: &RedisBackplane) -> Result<u64, BackplaneError> {
    let (secs, micros): (u64, u64) = backplane
        .with_conn(|mut conn| async move { redis::cmd("TIME").query_async(&mut conn).await })
        .await?;
    Ok(secs.saturating_mul(1000).saturating_add(micros / 1000))
}

/// Whether Redis holds another cluster epoch than the one this node last registered under.
async fn store_was_reset(backplane: &RedisBackplane) -> Result<bool, BackplaneError> {
    let known = backplane.epoch.lock().map(|e| e.clone()).unwrap_or_default();
    if known.is_empty() {
        return Ok(false);
    }
    let key = backplane.keys.epoch();
    let current: Option<String> = backplane
        .with_conn(|mut conn| async move { redis::cmd("GET").arg(key).query_async(&mut conn).await })
        .await?;
    Ok(current.as_deref() != Some(known.as_str()))
}

type LogPage = (Vec<(LogId, Vec<u8>)>, LogId);

/// One replay script call for a chunk of channels: their entries after each position, and the
/// first entry each log still keeps if it trimmed any (`ZERO` otherwise). A position below it
/// means trimmed entries may have followed it: counted as a gap (one false alarm is possible,
/// when the position was exactly the last entry trimmed; never a missed one).
async fn read_logs(
    backplane: &RedisBackplane,
    chunk: &[(String, LogId)],
    page: u64,
) -> Result<Vec<LogPage>, BackplaneError> {
    let mut args = vec![page.to_string()];
    for (name, from) in chunk {
        let log = backplane
            .keys
            .log_of_event_channel(name)
            .ok_or_else(|| BackplaneError::malformed("replay channel name"))?;
        args.push(log);
        args.push(from.to_string());
    }
    let reply = backplane.eval(&backplane.scripts.replay, args).await?;
    let bad = || BackplaneError::malformed("replay");
    let Value::Array(per_channel) = reply else {
        return Err(bad());
    };
    if per_channel.len() != chunk.len() {
        return Err(bad());
    }
    per_channel.iter().map(|v| parse_page(v).ok_or_else(bad)).collect()
}

fn parse_page(value: &Value) -> Option<LogPage> {
    let Value::Array(parts) = value else { return None };
    let [entries, first_kept] = parts.as_slice() else {
        return None;
    };
    let first_kept = LogId::parse(bytes(first_kept)?)?;
    let Value::Array(entries) = entries else { return None };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(pair) = entry else { return None };
        let [id, fields] = pair.as_slice() else { return None };
        let Value::Array(fields) = fields else { return None };
        // Fields are ["m", envelope].
        let envelope = fields.get(1).and_then(bytes)?;
        out.push((LogId::parse(bytes(id)?)?, envelope.to_vec()));
    }
    Some((out, first_kept))
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ids_parse_and_order() {
        let a = LogId::parse(b"1700000000000-3").unwrap();
        assert_eq!(
            a,
            LogId {
                ms: 1700000000000,
                seq: 3
            }
        );
        assert!(LogId::parse(b"1700000000000-4").unwrap() > a);
        assert!(LogId::parse(b"1700000000001-0").unwrap() > a);
        assert_eq!(a.to_string(), "1700000000000-3");
        for bad in [&b""[..], b"12", b"a-1", b"1-", b"-1"] {
            assert_eq!(LogId::parse(bad), None);
        }
    }

    #[test]
    fn payloads_split_into_position_and_envelope() {
        assert_eq!(
            split(b"17-2 \x92\x03x"),
            (Some(LogId { ms: 17, seq: 2 }), &b"\x92\x03x"[..])
        );
        // Envelopes without a position (logs off) pass whole.
        assert_eq!(split(b"\x92\x03 1-1"), (None, &b"\x92\x03 1-1"[..]));
        assert_eq!(split(b"17x2 \x92"), (None, &b"17x2 \x92"[..]));
    }

    #[test]
    fn positions_drop_what_was_delivered_and_forget_on_unsubscribe() {
        let mut p = Positions::default();
        p.set_clock(10_000);
        p.mark("c");
        // Before the mark: published before the subscription.
        assert!(!p.accept("c", LogId { ms: 9_000, seq: 0 }));
        assert!(p.accept("c", LogId { ms: 10_001, seq: 0 }));
        assert!(!p.accept("c", LogId { ms: 10_001, seq: 0 }), "a duplicate");
        assert!(p.accept("c", LogId { ms: 10_001, seq: 1 }));
        // A second mark keeps the position.
        p.mark("c");
        assert!(!p.accept("c", LogId { ms: 10_001, seq: 1 }));
        p.forget("c");
        assert!(p.accept("c", LogId { ms: 1, seq: 0 }), "no interest: not filtered");
    }
}
