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
//! from above its old ids (unless Redis' clock went back). Each entry also carries its number in
//! the log (1, 2, ..., from a counter written with it): a node that finds entries trimmed past
//! its position knows exactly how many messages its sockets lost, from the number of the last
//! one it delivered and of the first one the log still keeps.

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

/// A message's place in its log: its id and its number (0 = unknown: a mark, not a message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogPosition {
    pub id: LogId,
    pub number: u64,
}

impl LogPosition {
    /// Parse `<ms>-<seq>:<number>` (or a bare id, number unknown).
    fn parse(text: &[u8]) -> Option<Self> {
        match text.iter().position(|b| *b == b':') {
            Some(colon) => Some(Self {
                id: LogId::parse(&text[..colon])?,
                number: std::str::from_utf8(&text[colon + 1..]).ok()?.parse().ok()?,
            }),
            None => Some(Self {
                id: LogId::parse(text)?,
                number: 0,
            }),
        }
    }
}

/// Split a received payload into its log position (messages published with a log) and its
/// envelope. Envelopes are MessagePack and never start with an ASCII digit.
pub fn split(payload: &[u8]) -> (Option<LogPosition>, &[u8]) {
    if payload.first().is_some_and(u8::is_ascii_digit) {
        if let Some(space) = payload.iter().position(|b| *b == b' ') {
            if let Some(position) = LogPosition::parse(&payload[..space]) {
                return (Some(position), &payload[space + 1..]);
            }
        }
    }
    (None, payload)
}

/// What the supervisor delivered last per pub/sub channel. Owned by the supervisor task alone:
/// no lock on the delivery path.
#[derive(Debug, Default)]
pub struct Positions {
    last: HashMap<String, LogPosition>,
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
        let id = LogId {
            ms: now.saturating_sub(MARK_MARGIN_MS),
            seq: 0,
        };
        self.last.insert(channel.to_owned(), LogPosition { id, number: 0 });
    }

    /// The channel was unsubscribed.
    pub fn forget(&mut self, channel: &str) {
        self.last.remove(channel);
    }

    /// Whether a message at `at` is new for `channel` (then it becomes the position). Channels
    /// without a position (no interest) take everything.
    pub fn accept(&mut self, channel: &str, at: LogPosition) -> bool {
        match self.last.get_mut(channel) {
            Some(last) if at.id <= last.id => false,
            Some(last) => {
                *last = at;
                true
            }
            None => true,
        }
    }

    fn position(&self, channel: &str) -> Option<LogPosition> {
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
    /// The messages lost that way: exact when the position came from a delivered message,
    /// counted as one when it was a mark (nothing delivered on the channel yet).
    pub trimmed: u64,
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
    catch_up_channels(backplane, positions, channels).await
}

/// As [`catch_up`], for some of the channels (one whose slot moved to another shard of a Redis
/// Cluster): the positions of the others stay.
pub async fn catch_up_channels(
    backplane: &RedisBackplane,
    positions: &mut Positions,
    channels: &[String],
) -> Result<CatchUp, BackplaneError> {
    positions.set_clock(redis_time_ms(backplane).await?);
    let reset_buckets = buckets_reset(backplane).await?;
    let mut outcome = CatchUp {
        reset: !reset_buckets.is_empty(),
        ..CatchUp::default()
    };
    let mut due: Vec<(String, LogPosition)> = Vec::new();
    for name in channels {
        let reset = backplane
            .keys
            .bucket_of_event_channel(name)
            .is_some_and(|b| reset_buckets.contains(&b));
        match positions.position(name) {
            Some(_) if reset => {
                positions.last.insert(name.clone(), LogPosition::default());
                due.push((name.clone(), LogPosition::default()));
            }
            Some(from) => due.push((name.clone(), from)),
            None => positions.mark(name),
        }
    }
    let page = backplane.options.replay_log.max_len.max(1);
    while !due.is_empty() {
        let mut more = Vec::new();
        // One script reads the logs of one bucket (one slot) at a time.
        due.sort_by_key(|(name, _)| backplane.keys.bucket_of_event_channel(name));
        let chunks = due
            .chunk_by(|(a, _), (b, _)| {
                backplane.keys.bucket_of_event_channel(a) == backplane.keys.bucket_of_event_channel(b)
            })
            .flat_map(|bucket| bucket.chunks(CHANNELS_PER_CALL));
        for chunk in chunks {
            let replies = read_logs(backplane, chunk, page).await?;
            for ((name, from), (entries, first_kept)) in chunk.iter().zip(replies) {
                if first_kept > from.id {
                    let lost = lost_to_trimming(*from, entries.first().map(|(at, _)| at.number));
                    if lost > 0 {
                        outcome.gaps += 1;
                        outcome.trimmed += lost;
                        warn!(channel = %name, from = %from.id, first_kept = %first_kept, lost, "replay log trimmed past this node's position: messages lost for its subscribers");
                    }
                }
                let full = entries.len() as u64 >= page;
                let mut last = *from;
                for (at, envelope) in entries {
                    last = at;
                    if positions.accept(name, at) {
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
    stats.replay_trimmed.fetch_add(outcome.trimmed, Ordering::Relaxed);
    if outcome.replayed > 0 || outcome.gaps > 0 || outcome.reset {
        info!(
            replayed = outcome.replayed,
            gaps = outcome.gaps,
            trimmed = outcome.trimmed,
            store_was_reset = outcome.reset,
            "caught up from the replay logs"
        );
    }
    Ok(outcome)
}

/// How many messages a reader at `from` lost when its log was trimmed past it, given the number
/// of the first entry the log still keeps after it: those numbered in between. Unknown (counted
/// as one) when `from` is a mark or no entry is left to compare with.
fn lost_to_trimming(from: LogPosition, first_kept_number: Option<u64>) -> u64 {
    match first_kept_number {
        Some(first) if from.number > 0 && first > 0 => first.saturating_sub(from.number + 1),
        _ => 1,
    }
}

/// Redis' clock in milliseconds (`TIME`): log ids are minted from it.
pub(crate) async fn redis_time_ms(backplane: &RedisBackplane) -> Result<u64, BackplaneError> {
    let (secs, micros): (u64, u64) = backplane
        .with_conn(|mut conn| async move { redis::cmd("TIME").query_async(&mut conn).await })
        .await?;
    Ok(secs.saturating_mul(1000).saturating_add(micros / 1000))
}

/// The buckets whose epoch differs from the one this node last resynced under: Redis lost
/// their data, logs included, so positions in them mean nothing.
async fn buckets_reset(backplane: &RedisBackplane) -> Result<Vec<crate::keys::Bucket>, BackplaneError> {
    let known: Vec<(crate::keys::Bucket, String)> = backplane
        .keys
        .all_buckets()
        .map(|b| (b, backplane.known_epoch(b)))
        .filter(|(_, epoch)| !epoch.is_empty())
        .collect();
    if known.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = known.iter().map(|(b, _)| backplane.keys.bucket(*b).epoch()).collect();
    let commands = names
        .iter()
        .map(|name| {
            let mut cmd = redis::cmd("GET");
            cmd.arg(name);
            cmd
        })
        .collect();
    let current: Vec<Option<String>> = backplane
        .query_all(commands)
        .await?
        .into_iter()
        .map(|v| redis::from_redis_value(v).map_err(|_| BackplaneError::malformed("epoch")))
        .collect::<Result<_, _>>()?;
    Ok(known
        .into_iter()
        .zip(current)
        .filter(|((_, known), current)| current.as_deref() != Some(known.as_str()))
        .map(|((b, _), _)| b)
        .collect())
}

type LogPage = (Vec<(LogPosition, Vec<u8>)>, LogId);

/// One replay script call for a chunk of channels: their entries after each position, and the
/// first entry each log still keeps if it trimmed any (`0-0` otherwise). A position below it
/// means trimmed entries may have followed it; the entries' numbers tell how many did (see
/// [`lost_to_trimming`]).
async fn read_logs(
    backplane: &RedisBackplane,
    chunk: &[(String, LogPosition)],
    page: u64,
) -> Result<Vec<LogPage>, BackplaneError> {
    let mut keys = Vec::with_capacity(chunk.len());
    let mut args = vec![page.to_string()];
    for (name, from) in chunk {
        let log = backplane
            .keys
            .log_of_event_channel(name)
            .ok_or_else(|| BackplaneError::malformed("replay channel name"))?;
        keys.push(log);
        args.push(from.id.to_string());
    }
    let reply = backplane.eval(&backplane.scripts().replay, keys, args).await?;
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
        // Fields are ["m", envelope, "n", number] (no number: written before numbering).
        let envelope = fields.get(1).and_then(bytes)?;
        let number = match fields.get(3) {
            Some(n) => std::str::from_utf8(bytes(n)?).ok()?.parse().ok()?,
            None => 0,
        };
        let id = LogId::parse(bytes(id)?)?;
        out.push((LogPosition { id, number }, envelope.to_vec()));
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

    fn at(ms: u64, seq: u64, number: u64) -> LogPosition {
        LogPosition {
            id: LogId { ms, seq },
            number,
        }
    }

    #[test]
    fn payloads_split_into_position_and_envelope() {
        assert_eq!(split(b"17-2:5 \x92\x03x"), (Some(at(17, 2, 5)), &b"\x92\x03x"[..]));
        // A bare id (published before numbering): number unknown.
        assert_eq!(split(b"17-2 \x92"), (Some(at(17, 2, 0)), &b"\x92"[..]));
        // Envelopes without a position (logs off) pass whole.
        assert_eq!(split(b"\x92\x03 1-1"), (None, &b"\x92\x03 1-1"[..]));
        assert_eq!(split(b"17x2 \x92"), (None, &b"17x2 \x92"[..]));
        assert_eq!(split(b"17-2:x \x92"), (None, &b"17-2:x \x92"[..]));
    }

    #[test]
    fn positions_drop_what_was_delivered_and_forget_on_unsubscribe() {
        let mut p = Positions::default();
        p.set_clock(10_000);
        p.mark("c");
        // Before the mark: published before the subscription.
        assert!(!p.accept("c", at(9_000, 0, 1)));
        assert!(p.accept("c", at(10_001, 0, 2)));
        assert!(!p.accept("c", at(10_001, 0, 2)), "a duplicate");
        assert!(p.accept("c", at(10_001, 1, 3)));
        // A second mark keeps the position.
        p.mark("c");
        assert!(!p.accept("c", at(10_001, 1, 3)));
        assert_eq!(p.position("c").map(|x| x.number), Some(3));
        p.forget("c");
        assert!(p.accept("c", at(1, 0, 1)), "no interest: not filtered");
    }

    #[test]
    fn trimmed_messages_are_counted_from_the_entry_numbers() {
        // Delivered #10, the log now starts at #15: #11..#14 are lost.
        assert_eq!(lost_to_trimming(at(5, 0, 10), Some(15)), 4);
        // Delivered #10 and the log starts right after it: nothing lost (no false alarm).
        assert_eq!(lost_to_trimming(at(5, 0, 10), Some(11)), 0);
        // A mark (nothing delivered yet) or nothing to compare with: at least one.
        assert_eq!(lost_to_trimming(at(5, 0, 0), Some(15)), 1);
        assert_eq!(lost_to_trimming(at(5, 0, 10), None), 1);
    }
}
