//! Heartbeats and reaping.
//!
//! Every `node_ttl / 3` a node refreshes its heartbeat key (expiring after `node_ttl`) and
//! looks for registered nodes whose heartbeat has expired. For each, it runs the reap script:
//! the first caller removes the dead node from the node set and drops its connections,
//! subscriptions and presence sockets in the same atomic step, so exactly one reaper wins, and
//! that reaper hands what vanished to its node ([`ferrocast_broker::DeliverySink::dropped`]),
//! which announces the members removed and reports them to webhooks. The reaper also inherits
//! the dead node's pending leaves that still stand (`P:node:n:leaves`, written with each leave):
//! its node confirms them when their delay ends, so a node killed inside the leave delay still
//! has its `member_removed` / `channel_vacated` reported, once.
//!
//! If the heartbeat finds this node unregistered while its link is up (a peer reaped it during
//! a stall), it bumps the link generation so the node re-registers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ferrocast_broker::{BackplaneError, Dropped, Link};
use redis::Value;
use tracing::{info, warn};

use crate::cluster_state::{rows, standing_leaves};
use crate::RedisBackplane;

/// Refresh the heartbeat; true if this node is registered.
pub(crate) async fn beat(backplane: &RedisBackplane) -> Result<bool, BackplaneError> {
    let keys = vec![backplane.keys.heartbeat(backplane.node_id()), backplane.keys.nodes()];
    let args = vec![
        backplane.node_id().to_owned(),
        backplane.options.node_ttl.as_millis().to_string(),
    ];
    let registered = backplane.eval(&backplane.scripts.heartbeat, keys, args).await?;
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
pub async fn deregister(backplane: &RedisBackplane) -> Result<(), BackplaneError> {
    let node = backplane.node_id().to_owned();
    let mut args = backplane.registry_args(&node);
    args.push(node.clone());
    drop_and_announce(backplane, &backplane.scripts.deregister, &node, args).await
}

/// Reap `dead`, inheriting its pending leaves if this node wins.
async fn reap(backplane: &RedisBackplane, dead: &str) -> Result<(), BackplaneError> {
    let mut args = backplane.registry_args(dead);
    args.extend([dead.to_owned(), backplane.node_id().to_owned()]);
    drop_and_announce(backplane, &backplane.scripts.reap, dead, args).await
}

async fn drop_and_announce(
    backplane: &RedisBackplane,
    script: &redis::Script,
    dead: &str,
    args: Vec<String>,
) -> Result<(), BackplaneError> {
    let reply = backplane
        .with_conn(|mut conn| async move {
            let mut invocation = script.prepare_invoke();
            for arg in &args {
                invocation.arg(arg);
            }
            invocation.invoke_async::<Value>(&mut conn).await
        })
        .await?;
    if matches!(reply, Value::Nil) {
        return Ok(());
    }
    let bad = || BackplaneError::malformed("reap");
    let (removed, vacated, offline, leaves) = match &reply {
        Value::Array(parts) => match parts.as_slice() {
            [members, channels, users, leaves] => (
                rows(members).ok_or_else(bad)?,
                rows(channels).ok_or_else(bad)?,
                rows(users).ok_or_else(bad)?,
                rows(leaves).ok_or_else(bad)?,
            ),
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    if dead != backplane.node_id() {
        backplane.stats.reaped_nodes.fetch_add(1, Ordering::Relaxed);
    }
    info!(
        node = dead,
        members_removed = removed.len(),
        leaves_inherited = leaves.len(),
        "removed a node's registrations from the cluster"
    );
    let mut dropped = Dropped::default();
    for row in vacated {
        let [app_id, channel] = <[String; 2]>::try_from(row).map_err(|_| bad())?;
        dropped.channels.push((app_id, channel));
    }
    for row in removed {
        let [app_id, channel, user_id, _info, seq] = <[String; 5]>::try_from(row).map_err(|_| bad())?;
        let seq = seq.parse().map_err(|_| bad())?;
        dropped.members.push((app_id, channel, user_id, seq));
    }
    for row in offline {
        let [app_id, user_id] = <[String; 2]>::try_from(row).map_err(|_| bad())?;
        dropped.users.push((app_id, user_id));
    }
    // The reap is done: a malformed leave is skipped (and logged), not the whole report.
    dropped.leaves = standing_leaves(leaves);
    match backplane.sink.get() {
        Some(sink) => sink.dropped(&dropped),
        None => warn!(
            node = dead,
            "reaped before a node was attached: its members are not announced"
        ),
    }
    Ok(())
}
