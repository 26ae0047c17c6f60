//! Channel messages over Redis pub/sub, with interest-based routing.
//!
//! A node is subscribed to an app channel's Redis channel exactly while it has local
//! subscribers: `subscribe`/`unsubscribe` keep a reference count per channel, and only the
//! first and last send SUBSCRIBE/UNSUBSCRIBE to the supervisor, which owns the one pub/sub
//! connection and applies them in order. Callers wait until Redis acknowledged the SUBSCRIBE.
//!
//! The supervisor reconnects with backoff whenever the connection fails, re-subscribes every
//! channel with interest, proves that a publish comes back through its own probe channel, and
//! only then reports the link up with a new generation. Before that it delivers, from each
//! channel's replay log, what was published since the last message it delivered there (see
//! [`crate::replay`]), so a reconnect loses nothing that Redis kept.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::mapref::entry::Entry;
use ferrocast_broker::{Backplane, BackplaneError, ChannelMessage, DeliverySink, Link};
use futures_util::{FutureExt, StreamExt};
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::replay::{self, Positions};
use crate::{envelope, RedisBackplane};

/// Reconnect backoff: from this, doubling while connecting fails...
const MIN_RETRY: Duration = Duration::from_millis(100);
/// ...up to this, so every node is back within about two seconds of Redis (nodes wait longer
/// than that before reconciling presence after Redis lost its data).
const MAX_RETRY: Duration = Duration::from_secs(2);
/// How long a subscriber waits for Redis to acknowledge its channel's SUBSCRIBE.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the idle pub/sub connection is pinged to notice a dead Redis.
const PING_INTERVAL: Duration = Duration::from_secs(1);
/// How long a ping may take before Redis counts as unreachable: with the interval, a hung
/// Redis turns the node not-ready within two seconds.
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// A reconnect asked for within this long after connecting is not repeated.
const RECONNECT_DEBOUNCE: Duration = Duration::from_secs(2);
/// At most this many received messages are delivered in one pass of the serve loop.
const MAX_BURST: usize = 64;
/// How long the readiness probe may take to come back.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Local interest in one Redis channel.
#[derive(Debug)]
pub struct Interest {
    refs: usize,
    /// True once Redis acknowledged the SUBSCRIBE on the current connection.
    pub(crate) ready: watch::Sender<bool>,
}

/// Work for the supervisor's pub/sub connection.
#[derive(Debug)]
pub enum Command {
    Subscribe(String),
    Unsubscribe(String),
    /// Drop the connection and connect again (the server turned out not to be the primary).
    Reconnect,
}

#[async_trait]
impl Backplane for RedisBackplane {
    fn set_sink(&self, sink: Arc<dyn DeliverySink>) {
        let _ = self.sink.set(sink);
    }

    async fn publish(&self, message: ChannelMessage) -> Result<(), BackplaneError> {
        self.send(vec![message], None).await
    }

    async fn publish_many(&self, messages: Vec<ChannelMessage>) -> Result<(), BackplaneError> {
        self.send(messages, None).await
    }

    /// Each message's cache entry (if any) is kept in the same atomic step as its publish, so
    /// no node can read a cache older than a live event it delivered.
    async fn publish_cached(&self, messages: Vec<ChannelMessage>, ttl: Duration) -> Result<(), BackplaneError> {
        self.send(messages, Some(ttl)).await
    }

    async fn subscribe(&self, app_id: &str, channel: &str) -> Result<(), BackplaneError> {
        if *self.link.borrow() == Link::Down {
            return Err(BackplaneError::LinkDown);
        }
        let name = self.keys.channel(app_id, channel).events();
        let mut ready = match self.interest.entry(name.clone()) {
            Entry::Occupied(mut e) => {
                e.get_mut().refs += 1;
                e.get().ready.subscribe()
            }
            Entry::Vacant(e) => {
                let (ready, rx) = watch::channel(false);
                e.insert(Interest { refs: 1, ready });
                let _ = self.commands.send(Command::Subscribe(name));
                rx
            }
        };
        let acknowledged = matches!(
            tokio::time::timeout(SUBSCRIBE_TIMEOUT, ready.wait_for(|r| *r)).await,
            Ok(Ok(_))
        );
        match acknowledged {
            true => Ok(()),
            false => {
                self.unsubscribe(app_id, channel).await?;
                Err(BackplaneError::Timeout(SUBSCRIBE_TIMEOUT))
            }
        }
    }

    async fn unsubscribe(&self, app_id: &str, channel: &str) -> Result<(), BackplaneError> {
        let name = self.keys.channel(app_id, channel).events();
        if let Entry::Occupied(mut e) = self.interest.entry(name.clone()) {
            e.get_mut().refs = e.get().refs.saturating_sub(1);
            if e.get().refs == 0 {
                e.remove();
                let _ = self.commands.send(Command::Unsubscribe(name));
            }
        }
        Ok(())
    }

    fn link(&self) -> watch::Receiver<Link> {
        self.link.subscribe()
    }
}

impl RedisBackplane {
    /// Publish `messages` in order, one round trip per bucket they reach: through the
    /// replay-log script (one atomic step), or, with the logs off, a pipeline of PUBLISH (a
    /// MULTI when caching).
    async fn send(&self, messages: Vec<ChannelMessage>, cache_ttl: Option<Duration>) -> Result<(), BackplaneError> {
        let count = messages.len() as u64;
        if count == 0 {
            return Ok(());
        }
        for group in self.by_bucket(messages) {
            if self.options.replay_log.enabled() {
                self.send_logged(&group, cache_ttl).await?;
            } else {
                self.send_plain(&group, cache_ttl).await?;
            }
        }
        self.stats.published.fetch_add(count, Ordering::Relaxed);
        Ok(())
    }

    /// `messages` split by bucket, each in its order: one script (or transaction) reaches one
    /// bucket's keys, so one slot of a Redis Cluster. The order per channel holds, since a
    /// channel is in one bucket; with one bucket (one Redis) the whole batch stays one step.
    fn by_bucket(&self, messages: Vec<ChannelMessage>) -> Vec<Vec<ChannelMessage>> {
        if self.keys.bucket_count() == 1 {
            return vec![messages];
        }
        let mut groups: Vec<(crate::keys::Bucket, Vec<ChannelMessage>)> = Vec::new();
        for message in messages {
            let bucket = self.keys.channel_bucket(&message.app_id, &message.channel);
            match groups.iter_mut().find(|(b, _)| *b == bucket) {
                Some((_, group)) => group.push(message),
                None => groups.push((bucket, vec![message])),
            }
        }
        groups.into_iter().map(|(_, group)| group).collect()
    }

    async fn send_logged(
        &self,
        messages: &[ChannelMessage],
        cache_ttl: Option<Duration>,
    ) -> Result<(), BackplaneError> {
        let log = self.options.replay_log;
        let mut keys: Vec<String> = Vec::with_capacity(4 * messages.len());
        let mut args: Vec<Vec<u8>> = Vec::with_capacity(3 + 2 * messages.len());
        args.push(log.max_len.to_string().into_bytes());
        args.push(millis(log.ttl).to_string().into_bytes());
        args.push(millis(cache_ttl.unwrap_or_default()).to_string().into_bytes());
        for message in messages {
            let c = self.keys.channel(&message.app_id, &message.channel);
            keys.extend([c.log(), c.log_counter(), c.events(), c.cache()]);
            args.push(envelope::encode(message));
            match message.cache_entry().filter(|_| cache_ttl.is_some()) {
                Some((event, data)) => args.push(crate::cluster_state::encode_cached(event, data)),
                None => args.push(Vec::new()),
            }
        }
        let script = &self.scripts().publish;
        self.with_shared(|mut conn| async move {
            let mut invocation = script.prepare_invoke();
            for key in &keys {
                invocation.key(key);
            }
            for arg in &args {
                invocation.arg(arg);
            }
            invocation.invoke_async::<i64>(&mut conn).await
        })
        .await?;
        Ok(())
    }

    async fn send_plain(&self, messages: &[ChannelMessage], cache_ttl: Option<Duration>) -> Result<(), BackplaneError> {
        let mut pipe = redis::pipe();
        if let Some(ttl) = cache_ttl {
            pipe.atomic();
            for message in messages {
                if let Some((event, data)) = message.cache_entry() {
                    pipe.cmd("SET")
                        .arg(self.keys.channel(&message.app_id, &message.channel).cache())
                        .arg(crate::cluster_state::encode_cached(event, data))
                        .arg("PX")
                        .arg(millis(ttl))
                        .ignore();
                }
            }
        }
        for message in messages {
            pipe.cmd(self.publish_command())
                .arg(self.keys.channel(&message.app_id, &message.channel).events())
                .arg(envelope::encode(message))
                .ignore();
        }
        self.with_shared(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }
}

/// Whole milliseconds, at least 1 (Redis refuses a zero PX).
fn millis(d: Duration) -> u64 {
    d.as_millis().clamp(1, u64::MAX as u128) as u64
}

/// Keep a pub/sub connection alive for as long as the process runs.
pub async fn supervise(backplane: Arc<RedisBackplane>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut delay = MIN_RETRY;
    let mut positions = Positions::default();
    loop {
        let connected = match backplane.commands_to.is_cluster() {
            false => connect(&backplane, &mut positions).await.map(Subscriber::One),
            true => crate::sharded::connect(&backplane, &mut positions)
                .await
                .map(Subscriber::Sharded),
        };
        match connected {
            Ok(subscriber) => {
                delay = MIN_RETRY;
                // Publishes made before this link may sit on a connection to a Redis that went
                // away meanwhile: the next one connects afresh, as the pub/sub connection did.
                backplane.commands_to.discard_shared();
                let generation = backplane.generation.fetch_add(1, Ordering::AcqRel) + 1;
                backplane.link.send_replace(Link::Up { generation });
                info!(generation, "redis backplane link up");
                let reason = match subscriber {
                    Subscriber::One((sink, stream)) => {
                        serve(&backplane, &mut positions, sink, stream, &mut commands).await
                    }
                    Subscriber::Sharded(shards) => {
                        crate::sharded::serve(&backplane, &mut positions, shards, &mut commands).await
                    }
                };
                backplane.link.send_replace(Link::Down);
                for entry in backplane.interest.iter() {
                    entry.ready.send_replace(false);
                }
                backplane.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                backplane.commands_to.reset().await;
                warn!(reason, "redis backplane link down; reconnecting");
                // A link that keeps dropping right after connecting cannot spin faster than this.
                tokio::time::sleep(MIN_RETRY).await;
            }
            Err(e) => {
                backplane.stats.errors.fetch_add(1, Ordering::Relaxed);
                backplane.commands_to.reset().await;
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "redis backplane unavailable");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY);
            }
        }
    }
}

/// The pub/sub connection of one Redis, or the sharded subscriber of a Redis Cluster.
enum Subscriber {
    One((PubSubSink, PubSubStream)),
    Sharded(crate::sharded::Shards),
}

/// Declare the scripts with `#!lua` on Redis 7 and later (see [`crate::scripts::Scripts`]),
/// as the server just connected to reports its version.
async fn detect_script_form(backplane: &RedisBackplane) -> Result<(), BackplaneError> {
    let info: String = backplane
        .with_conn(|mut conn| async move { redis::cmd("INFO").arg("server").query_async(&mut conn).await })
        .await?;
    let major = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .and_then(|version| version.split('.').next()?.trim().parse::<u32>().ok())
        .unwrap_or(0);
    backplane.declared_scripts.store(major >= 7, Ordering::Relaxed);
    Ok(())
}

/// Connect, re-subscribe every interest channel, deliver what the replay logs hold beyond
/// what was delivered, register the heartbeat and prove a publish comes back.
async fn connect(backplane: &RedisBackplane, positions: &mut Positions) -> Result<(PubSubSink, PubSubStream), String> {
    let Some(target) = &backplane.target else {
        return Err("no single Redis to connect to".into());
    };
    let pubsub = tokio::time::timeout(PROBE_TIMEOUT, async { target.client().await?.get_async_pubsub().await })
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let (mut sink, mut stream) = pubsub.split();
    detect_script_form(backplane).await.map_err(|e| e.to_string())?;
    let probe_channel = backplane.keys.probe_channel();
    sink.subscribe(&probe_channel).await.map_err(|e| e.to_string())?;
    let names: Vec<String> = backplane.interest.iter().map(|e| e.key().clone()).collect();
    for chunk in names.chunks(500) {
        sink.subscribe(chunk).await.map_err(|e| e.to_string())?;
    }
    // Live messages wait in the connection meanwhile; those the logs already gave are dropped.
    if backplane.options.replay_log.enabled() {
        replay::catch_up(backplane, positions, &names)
            .await
            .map_err(|e| format!("replay: {e}"))?;
    }
    for name in &names {
        if let Some(entry) = backplane.interest.get(name) {
            entry.ready.send_replace(true);
        }
    }
    crate::liveness::beat(backplane).await.map_err(|e| e.to_string())?;
    probe(backplane, positions, &probe_channel, &mut stream).await?;
    Ok((sink, stream))
}

/// Publish a nonce to our own probe channel and wait for it, delivering anything else that
/// arrives meanwhile.
async fn probe(
    backplane: &RedisBackplane,
    positions: &mut Positions,
    channel: &str,
    stream: &mut PubSubStream,
) -> Result<(), String> {
    let nonce = format!("probe-{}", rand_nonce());
    let (channel_owned, payload) = (channel.to_owned(), nonce.clone());
    backplane
        .with_conn(|mut conn| async move {
            redis::cmd("PUBLISH")
                .arg(channel_owned)
                .arg(payload)
                .query_async::<i64>(&mut conn)
                .await
        })
        .await
        .map_err(|e| e.to_string())?;
    let wait = async {
        while let Some(msg) = stream.next().await {
            if msg.get_channel_name() == channel {
                if msg.get_payload_bytes() == nonce.as_bytes() {
                    return Ok(());
                }
            } else {
                deliver(backplane, positions, msg.get_channel_name(), msg.get_payload_bytes());
            }
        }
        Err("pub/sub connection closed during the probe".to_string())
    };
    tokio::time::timeout(PROBE_TIMEOUT, wait)
        .await
        .map_err(|_| "probe did not come back".to_string())?
}

pub(crate) fn rand_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Run the connection until it fails; returns why.
async fn serve(
    backplane: &RedisBackplane,
    positions: &mut Positions,
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> &'static str {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    let probe_channel = backplane.keys.probe_channel();
    let connected = std::time::Instant::now();
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else { return "pub/sub connection closed" };
                receive(backplane, positions, &probe_channel, msg);
                // Deliver what else has arrived before going back to the select: a burst of
                // messages costs one pass through it (bounded, so commands and pings still run).
                for _ in 1..MAX_BURST {
                    match stream.next().now_or_never() {
                        Some(Some(msg)) => receive(backplane, positions, &probe_channel, msg),
                        Some(None) => return "pub/sub connection closed",
                        None => break,
                    }
                }
            }
            command = commands.recv() => {
                let Some(command) = command else { return "backplane dropped" };
                if matches!(command, Command::Reconnect) {
                    // Writes refused as READONLY come in bursts: one reconnect answers them all
                    // (those queued before this connection was made are stale).
                    if connected.elapsed() > RECONNECT_DEBOUNCE {
                        return "the server is no longer the primary";
                    }
                    continue;
                }
                if let Err(e) = apply(backplane, positions, &mut sink, command).await {
                    warn!(error = %e, "redis (un)subscribe failed");
                    return "subscribe command failed";
                }
            }
            _ = ping.tick() => {
                let sent = std::time::Instant::now();
                match tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {
                        let rtt = sent.elapsed().as_micros() as u64;
                        backplane.stats.ping_rtt_us.store(rtt, Ordering::Relaxed);
                    }
                    _ => return "ping failed",
                }
            }
        }
    }
}

/// One message from the pub/sub connection: our probe's are ignored, others delivered.
fn receive(backplane: &RedisBackplane, positions: &mut Positions, probe_channel: &str, msg: redis::Msg) {
    if msg.get_channel_name() != probe_channel {
        deliver(backplane, positions, msg.get_channel_name(), msg.get_payload_bytes());
    }
}

/// The (un)subscribe half of a pub/sub link: plain `SUBSCRIBE` on one Redis, sharded
/// `SSUBSCRIBE` on a Redis Cluster. [`apply`] is the same for both.
pub(crate) trait ChannelSubscriber {
    async fn subscribe_channel(&mut self, name: &str) -> redis::RedisResult<()>;
    async fn unsubscribe_channel(&mut self, name: &str) -> redis::RedisResult<()>;
}

impl ChannelSubscriber for PubSubSink {
    async fn subscribe_channel(&mut self, name: &str) -> redis::RedisResult<()> {
        self.subscribe(name).await
    }

    async fn unsubscribe_channel(&mut self, name: &str) -> redis::RedisResult<()> {
        self.unsubscribe(name).await
    }
}

/// Apply a queued (un)subscribe if it still matches the interest map (the map is the truth:
/// a stale command for a channel whose interest changed since is skipped). `Reconnect` is the
/// caller's business: only a Sentinel-managed link has a read-only primary to leave.
pub(crate) async fn apply(
    backplane: &RedisBackplane,
    positions: &mut Positions,
    link: &mut impl ChannelSubscriber,
    command: Command,
) -> redis::RedisResult<()> {
    match command {
        Command::Subscribe(name) => {
            if !backplane.interest.contains_key(&name) {
                return Ok(());
            }
            positions.mark(&name);
            link.subscribe_channel(&name).await?;
            if let Some(entry) = backplane.interest.get(&name) {
                entry.ready.send_replace(true);
            }
        }
        Command::Unsubscribe(name) => {
            if backplane.interest.contains_key(&name) {
                return Ok(());
            }
            link.unsubscribe_channel(&name).await?;
            positions.forget(&name);
        }
        Command::Reconnect => {}
    }
    Ok(())
}

/// Hand one received message to the local fan-out, unless the replay already delivered it.
pub(crate) fn deliver(backplane: &RedisBackplane, positions: &mut Positions, channel: &str, payload: &[u8]) {
    let (position, envelope) = replay::split(payload);
    if let Some(position) = position {
        if !positions.accept(channel, position) {
            backplane.stats.duplicates_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    deliver_envelope(backplane, envelope);
}

/// Decode one envelope and hand it to the local fan-out.
pub(crate) fn deliver_envelope(backplane: &RedisBackplane, payload: &[u8]) {
    match envelope::decode(payload) {
        Ok(message) => {
            backplane.stats.received.fetch_add(1, Ordering::Relaxed);
            if let Some(observe) = backplane.lag_observer.get() {
                let lag_us = ferrocast_broker::unix_micros().saturating_sub(message.published_at_us);
                observe(lag_us as f64 / 1e6);
            }
            if let Some(sink) = backplane.sink.get() {
                sink.deliver(&message);
            }
        }
        Err(e) => {
            backplane.stats.decode_errors.fetch_add(1, Ordering::Relaxed);
            warn!(error = %e, "dropped an unreadable backplane message");
        }
    }
}
