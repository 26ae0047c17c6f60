//! Heartbeats and reaping.
//!
//! Every `node_ttl / 3` a node refreshes its heartbeat key (expiring after `node_ttl`) and
//! looks for registered nodes whose heartbeat has expired. For each, it asks the node registry
//! to decide the reap (`lua/reap_claim.lua`): the first caller removes the dead node from the
//! registry, so exactly one reaper wins. The winner then drops the dead node's connections,
//! subscriptions, presence sockets and signed-in users bucket by bucket
//! (`lua/bucket_reap.lua`); each bucket's drop deletes the node's records there in the same
//! atomic step, so whatever vanished is found once, and the reaper hands it to its node
//! ([`ferrocast_broker::DeliverySink::dropped`]), which announces the members removed and
//! reports them to webhooks. The reaper also inherits the dead node's pending leaves that still
//! stand (written with each leave): its node confirms them when their delay ends, so a node
//! killed inside the leave delay still has its `member_removed` / `channel_vacated` reported,
//! once.
//!
//! A reap under way is listed in the registry until every bucket is dropped; if its reaper
//! dies half-way, any node finishes it. A node that comes back while it is being reaped
//! registers under a new incarnation, and the reap leaves alone the buckets it resynced since.
//!
//! If the heartbeat finds this node unregistered while its link is up (a peer reaped it during
//! a stall), it bumps the link generation so the node re-registers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ferrocast_broker::{BackplaneError, Dropped, Link};
use redis::Value;
use tracing::{info, warn};

use crate::cluster_state::{int, rows, standing_leaves, string, BucketRun, Invocation};
use crate::RedisBackplane;

/// Refresh the heartbeat; true if this node is registered.
pub(crate) async fn beat(backplane: &RedisBackplane) -> Result<bool, BackplaneError> {
    let keys = vec![backplane.keys.heartbeat(backplane.node_id()), backplane.keys.nodes()];
    let args = vec![
        backplane.node_id().to_owned(),
        backplane.options.node_ttl.as_millis().to_string(),
    ];
    let registered = backplane.eval(&backplane.scripts().heartbeat, keys, args).await?;
    Ok(crate::cluster_state::int(&registered) == Some(1))
}

/// Heartbeat and reaper loop, for as long as the process runs.
pub async fn run(backplane: Arc<RedisBackplane>) {
    let period = (backplane.options.node_ttl / 3).max(Duration::from_millis(200));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let Link::Up { generation } = *backplane.link.borrow() else {
            continue;
        };
        match beat(&backplane).await {
            Ok(true) => {}
            Ok(false) => {
                // Reaped by a peer (or the first registration is still running): re-register.
                // Only bump if the link did not change meanwhile.
                let next = generation + 1;
                if backplane
                    .generation
                    .compare_exchange(generation, next, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    warn!("this node was not registered in the cluster; re-registering");
                    backplane.link.send_replace(Link::Up { generation: next });
                }
            }
            Err(e) => warn!(error = %e, "heartbeat failed"),
        }
        if let Err(e) = reap_dead(&backplane).await {
            warn!(error = %e, "looking for dead nodes failed");
        }
        if let Err(e) = resume_reaps(&backplane).await {
            warn!(error = %e, "finishing abandoned reaps failed");
        }
    }
}

async fn reap_dead(backplane: &RedisBackplane) -> Result<(), BackplaneError> {
    let nodes_key = backplane.keys.nodes();
    let nodes: Vec<String> = backplane
        .with_conn(|mut conn| async move { redis::cmd("SMEMBERS").arg(nodes_key).query_async(&mut conn).await })
        .await?;
    let others: Vec<String> = nodes.into_iter().filter(|n| n != backplane.node_id()).collect();
    if others.is_empty() {
        return Ok(());
    }
    let hb_keys: Vec<String> = others.iter().map(|n| backplane.keys.heartbeat(n)).collect();
    let alive: Vec<bool> = backplane
        .with_conn(|mut conn| async move {
            let mut pipe = redis::pipe();
            for key in &hb_keys {
                pipe.exists(key);
            }
            pipe.query_async(&mut conn).await
        })
        .await?;
    for (node, _) in others.iter().zip(alive).filter(|(_, alive)| !alive) {
        reap(backplane, node).await?;
    }
    Ok(())
}

/// Remove this node from the cluster (after draining) and announce the members that vanished.
/// Its pending leaves that stand over keep it registered without a heartbeat, so a peer reaps
/// it once it is gone and inherits them (`lua/deregister.lua`).
pub async fn deregister(backplane: &RedisBackplane) -> Result<(), BackplaneError> {
    let node = backplane.node_id().to_owned();
    let mut dropped = Dropped::default();
    let mut leaves_left = false;
    for bucket in backplane.keys.all_buckets() {
        let run = BucketRun {
            script: &backplane.scripts().bucket_deregister,
            node: &node,
            incarnation: "",
            heir: &node,
            before: Vec::new(),
            snapshot: Invocation::default(),
        };
        let parts = backplane
            .run_bucket_script(&run, bucket)
            .await?
            .ok_or_else(|| BackplaneError::malformed("deregister"))?;
        let [members, channels, users, left] = parts.as_slice() else {
            return Err(BackplaneError::malformed("deregister"));
        };
        add_dropped(&mut dropped, members, channels, users, None)?;
        leaves_left |= int(left) == Some(1);
    }
    let keys = vec![
        backplane.keys.nodes(),
        backplane.keys.heartbeat(&node),
        backplane.keys.incarnations(),
    ];
    let args = vec![node.clone(), u8::from(leaves_left).to_string()];
    backplane.eval(&backplane.scripts().deregister, keys, args).await?;
    announce(backplane, &node, dropped);
    Ok(())
}

/// Reap `dead` if this node wins the decision, then drop its buckets.
async fn reap(backplane: &RedisBackplane, dead: &str) -> Result<(), BackplaneError> {
    let keys = vec![
        backplane.keys.heartbeat(dead),
        backplane.keys.nodes(),
        backplane.keys.incarnations(),
        backplane.keys.reaping(),
    ];
    let reply = backplane
        .eval(&backplane.scripts().reap_claim, keys, vec![dead.to_owned()])
        .await?;
    let Some(incarnation) = string(&reply) else {
        return Ok(());
    };
    backplane.stats.reaped_nodes.fetch_add(1, Ordering::Relaxed);
    finish_reap(backplane, dead, &incarnation).await
}

/// Reaps decided more than this long ago and still listed: their reaper died half-way.
const REAP_ABANDONED_AFTER: Duration = Duration::from_secs(10);

/// Finish the reaps whose reaper died half-way (any node may: each bucket is dropped once).
async fn resume_reaps(backplane: &RedisBackplane) -> Result<(), BackplaneError> {
    let key = backplane.keys.reaping();
    let before = crate::replay::redis_time_ms(backplane)
        .await?
        .saturating_sub(REAP_ABANDONED_AFTER.as_millis() as u64);
    let abandoned: Vec<String> = backplane
        .with_conn(|mut conn| async move {
            redis::cmd("ZRANGE")
                .arg(key)
                .arg("-inf")
                .arg(before)
                .arg("BYSCORE")
                .query_async(&mut conn)
                .await
        })
        .await?;
    for entry in abandoned {
        let Some((dead, incarnation)) = entry.split_once('\n') else {
            continue;
        };
        warn!(
            node = dead,
            "finishing the reap of a node whose reaper stopped half-way"
        );
        finish_reap(backplane, dead, incarnation).await?;
    }
    Ok(())
}

/// Drop every bucket of `dead` (as of `incarnation`), inheriting its pending leaves, then
/// announce what vanished and take the reap off the list of reaps under way.
async fn finish_reap(backplane: &RedisBackplane, dead: &str, incarnation: &str) -> Result<(), BackplaneError> {
    let heir = backplane.node_id().to_owned();
    let mut dropped = Dropped::default();
    for bucket in backplane.keys.all_buckets() {
        let run = BucketRun {
            script: &backplane.scripts().reap,
            node: dead,
            incarnation,
            heir: &heir,
            before: Vec::new(),
            snapshot: Invocation::default(),
        };
        // `None`: the node came back and resynced this bucket since; what it holds is live.
        let Some(parts) = backplane.run_bucket_script(&run, bucket).await? else {
            continue;
        };
        let [members, channels, users, leaves] = parts.as_slice() else {
            return Err(BackplaneError::malformed("reap"));
        };
        add_dropped(&mut dropped, members, channels, users, Some(leaves))?;
    }
    let key = backplane.keys.reaping();
    let entry = format!("{dead}\n{incarnation}");
    backplane
        .with_conn(|mut conn| async move {
            redis::cmd("ZREM")
                .arg(key)
                .arg(entry)
                .query_async::<i64>(&mut conn)
                .await
        })
        .await?;
    announce(backplane, dead, dropped);
    Ok(())
}

/// Add one bucket's drop (`lua/bucket_reap.lua`, `lua/bucket_deregister.lua`) to `dropped`.
fn add_dropped(
    dropped: &mut Dropped,
    members: &Value,
    channels: &Value,
    users: &Value,
    leaves: Option<&Value>,
) -> Result<(), BackplaneError> {
    let bad = || BackplaneError::malformed("reap");
    for row in rows(channels).ok_or_else(bad)? {
        let [app_id, channel] = <[String; 2]>::try_from(row).map_err(|_| bad())?;
        dropped.channels.push((app_id, channel));
    }
    for row in rows(members).ok_or_else(bad)? {
        let [app_id, channel, user_id, _info, seq] = <[String; 5]>::try_from(row).map_err(|_| bad())?;
        let seq = seq.parse().map_err(|_| bad())?;
        dropped.members.push((app_id, channel, user_id, seq));
    }
    for row in rows(users).ok_or_else(bad)? {
        let [app_id, user_id] = <[String; 2]>::try_from(row).map_err(|_| bad())?;
        dropped.users.push((app_id, user_id));
    }
    if let Some(leaves) = leaves {
        // The drop is done: a malformed leave is skipped (and logged), not the whole report.
        dropped.leaves.extend(standing_leaves(rows(leaves).ok_or_else(bad)?));
    }
    Ok(())
}

/// Hand what vanished with `dead` to this node, which announces it.
fn announce(backplane: &RedisBackplane, dead: &str, dropped: Dropped) {
    info!(
        node = dead,
        members_removed = dropped.members.len(),
        leaves_inherited = dropped.leaves.len(),
        "removed a node's registrations from the cluster"
    );
    match backplane.sink.get() {
        Some(sink) => sink.dropped(&dropped),
        None => warn!(
            node = dead,
            "reaped before a node was attached: its members are not announced"
        ),
    }
}
