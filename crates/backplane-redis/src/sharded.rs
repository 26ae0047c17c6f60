//! Sharded pub/sub on a Redis Cluster (`SSUBSCRIBE` / `SPUBLISH`): a message goes only to the
//! shard that owns its channel's slot, so pub/sub grows with the shards (classic pub/sub copies
//! every message to every node of a cluster).
//!
//! One subscriber connection (RESP3; one socket per shard primary inside it) carries only
//! subscribe commands; messages and topology news arrive as pushes. The client restores no
//! shard subscription by itself (measured on redis 1.8 / Redis 7.0), so this module keeps the
//! node's list of wanted channels (the interest map) authoritative:
//!
//! - a `sunsubscribe` the node did not ask for means the channel's slot moved (resharding, or a
//!   manual failover): the channel is subscribed again, which the client routes to the new owner
//!   after following `MOVED`, and what was published meanwhile is read from the channel's replay
//!   log, which moved with the slot (it is in the same bucket);
//! - a lost shard connection (its primary died) puts the link down, as an outage of one Redis
//!   does: the node reconnects to the new topology, replays, and resyncs presence.
//!
//! Channels are (re)subscribed one bucket at a time: the channels of one bucket share a slot,
//! and one `SSUBSCRIBE` may name several channels only if they do.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::conn::{Commands, Conn};
use crate::pubsub::{apply, deliver, rand_nonce, ChannelSubscriber, Command};
use crate::replay::{self, Positions};
use crate::RedisBackplane;

/// How often every shard primary is pinged to notice a dead or hung one.
const PING_INTERVAL: Duration = Duration::from_secs(1);
/// How long the pings may take.
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// How long connecting, and the readiness probe, may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The subscriber connection and its pushes.
pub(crate) struct Shards {
    conn: ClusterConnection,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
}

/// Connect, subscribe every interest channel, deliver what the replay logs hold beyond what was
/// delivered, refresh the heartbeat and prove a publish comes back.
pub(crate) async fn connect(backplane: &RedisBackplane, positions: &mut Positions) -> Result<Shards, String> {
    let Commands::Cluster { target, .. } = &backplane.commands_to else {
        return Err("not a Redis Cluster".into());
    };
    let (tx, pushes) = mpsc::unbounded_channel();
    let conn = tokio::time::timeout(PROBE_TIMEOUT, target.subscriber(tx))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let mut shards = Shards { conn, pushes };
    let probe_channel = backplane.keys.probe_channel();
    shards
        .conn
        .ssubscribe(&probe_channel)
        .await
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = backplane.interest.iter().map(|e| e.key().clone()).collect();
    subscribe_by_bucket(backplane, &mut shards.conn, &names)
        .await
        .map_err(|e| e.to_string())?;
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
    probe(backplane, positions, &probe_channel, &mut shards).await?;
    Ok(shards)
}

/// `SSUBSCRIBE` `names`, one command per bucket (one slot).
async fn subscribe_by_bucket(
    backplane: &RedisBackplane,
    conn: &mut ClusterConnection,
    names: &[String],
) -> redis::RedisResult<()> {
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort_by_key(|name| backplane.keys.bucket_of_event_channel(name));
    for group in
        sorted.chunk_by(|a, b| backplane.keys.bucket_of_event_channel(a) == backplane.keys.bucket_of_event_channel(b))
    {
        for chunk in group.chunks(500) {
            conn.ssubscribe(chunk.to_vec()).await?;
        }
    }
    Ok(())
}

/// `SPUBLISH` a nonce to our own probe channel and wait for it, delivering anything else that
/// arrives meanwhile.
async fn probe(
    backplane: &RedisBackplane,
    positions: &mut Positions,
    channel: &str,
    shards: &mut Shards,
) -> Result<(), String> {
    let nonce = format!("probe-{}", rand_nonce());
    let (channel_owned, payload) = (channel.to_owned(), nonce.clone());
    backplane
        .with_conn(|mut conn| async move {
            redis::cmd("SPUBLISH")
                .arg(channel_owned)
                .arg(payload)
                .query_async::<i64>(&mut conn)
                .await
        })
        .await
        .map_err(|e| e.to_string())?;
    let wait = async {
        while let Some(push) = shards.pushes.recv().await {
            match message(&push) {
                Some((name, payload)) if name == channel && payload == nonce.as_bytes() => return Ok(()),
                Some((name, _)) if name == channel => {}
                Some((name, payload)) => deliver(backplane, positions, name, payload),
                None if push.kind == PushKind::Disconnection => {
                    return Err("a shard connection closed during the probe".to_string())
                }
                None => {}
            }
        }
        Err("subscriber connection closed during the probe".to_string())
    };
    tokio::time::timeout(PROBE_TIMEOUT, wait)
        .await
        .map_err(|_| "probe did not come back".to_string())?
}

/// The channel and payload of a sharded message push.
fn message(push: &PushInfo) -> Option<(&str, &[u8])> {
    if push.kind != PushKind::SMessage {
        return None;
    }
    let [Value::BulkString(channel), Value::BulkString(payload)] = push.data.as_slice() else {
        return None;
    };
    Some((std::str::from_utf8(channel).ok()?, payload))
}

/// Run the subscriber until a shard connection fails; returns why.
pub(crate) async fn serve(
    backplane: &RedisBackplane,
    positions: &mut Positions,
    mut shards: Shards,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> &'static str {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    let probe_channel = backplane.keys.probe_channel();
    loop {
        tokio::select! {
            push = shards.pushes.recv() => {
                let Some(push) = push else { return "subscriber connection closed" };
                match push.kind {
                    PushKind::SMessage => match message(&push) {
                        Some((name, _)) if name == probe_channel => {}
                        Some((name, payload)) => deliver(backplane, positions, name, payload),
                        None => warn!("unreadable sharded message push"),
                    },
                    PushKind::SUnsubscribe => {
                        if let Err(e) = moved(backplane, positions, &mut shards.conn, &push.data, &probe_channel).await {
                            warn!(error = %e, "subscribing again after a slot moved failed");
                            return "resubscribe after a slot move failed";
                        }
                    }
                    PushKind::Disconnection => return "a shard connection was lost",
                    _ => {}
                }
            }
            command = commands.recv() => {
                let Some(command) = command else { return "backplane dropped" };
                if let Err(e) = apply(backplane, positions, &mut shards.conn, command).await {
                    warn!(error = %e, "redis (un)subscribe failed");
                    return "subscribe command failed";
                }
            }
            _ = ping.tick() => {
                let sent = std::time::Instant::now();
                match tokio::time::timeout(PING_TIMEOUT, ping_primaries(backplane)).await {
                    Ok(Ok(())) => {
                        let rtt = sent.elapsed().as_micros() as u64;
                        backplane.stats.ping_rtt_us.store(rtt, Ordering::Relaxed);
                    }
                    _ => return "ping failed",
                }
            }
        }
    }
}

/// `PING` every shard primary, through the command connection.
async fn ping_primaries(backplane: &RedisBackplane) -> redis::RedisResult<()> {
    let Ok(Conn::Cluster(mut conn)) = backplane.commands_to.get().await else {
        return Err(redis::RedisError::from(std::io::Error::other("no cluster connection")));
    };
    let route = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, Some(ResponsePolicy::AllSucceeded)));
    conn.route_command(redis::cmd("PING"), route).await.map(drop)
}

/// A `sunsubscribe` push: if the node still wants the channel, its slot moved. Subscribe again
/// (the client finds the new owner) and deliver from the log what was published meanwhile.
async fn moved(
    backplane: &RedisBackplane,
    positions: &mut Positions,
    conn: &mut ClusterConnection,
    data: &[Value],
    probe_channel: &str,
) -> redis::RedisResult<()> {
    let Some(Value::BulkString(name)) = data.first() else {
        return Ok(());
    };
    let Ok(name) = std::str::from_utf8(name) else {
        return Ok(());
    };
    let wanted = name == probe_channel || backplane.interest.contains_key(name);
    if !wanted {
        return Ok(());
    }
    info!(channel = name, "a channel's slot moved: subscribing on its new owner");
    backplane.stats.resubscribed.fetch_add(1, Ordering::Relaxed);
    conn.ssubscribe(name).await?;
    if name != probe_channel && backplane.options.replay_log.enabled() {
        if let Err(e) = replay::catch_up_channels(backplane, positions, &[name.to_owned()]).await {
            warn!(error = %e, channel = name, "replay after a slot move failed");
            return Err(redis::RedisError::from(std::io::Error::other(
                "replay after a slot move",
            )));
        }
    }
    Ok(())
}

impl ChannelSubscriber for ClusterConnection {
    async fn subscribe_channel(&mut self, name: &str) -> redis::RedisResult<()> {
        self.ssubscribe(name).await
    }

    async fn unsubscribe_channel(&mut self, name: &str) -> redis::RedisResult<()> {
        self.sunsubscribe(name).await
    }
}
