//! The cluster-state contract of `ferrocast_broker::contract`, on a real Redis: the same checks
//! the in-process state passes, so the two cannot drift.

mod common;

use std::time::Duration;

use common::{backplane, wait_up, Redis};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keeps_the_cluster_state_contract() {
    let redis = Redis::start();
    let (a, _) = backplane(&redis, "node-a", Duration::from_secs(15));
    wait_up(&a).await;
    ferrocast_broker::contract::all(&*a, "app-a", "app-b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keeps_the_event_cache_contract() {
    let redis = Redis::start();
    let (a, _) = backplane(&redis, "node-a", Duration::from_secs(15));
    wait_up(&a).await;
    ferrocast_broker::contract::event_cache_keeps_the_last_event_expires_and_claims_misses_once(
        &*a, &*a, "app-a", "app-b",
    )
    .await;
}

/// The drift the contract found (Redis counted sockets per node and ignored the socket id, so
/// a repeated or foreign leave decremented) is fixed: sockets are tracked by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_presence_leave_is_per_socket() {
    let redis = Redis::start();
    let (a, _) = backplane(&redis, "node-a", Duration::from_secs(15));
    wait_up(&a).await;
    ferrocast_broker::contract::presence_leave_is_per_socket(&*a, "app-a", "app-b").await;
}

/// Two nodes on one Redis: a leave made through one is confirmed (once) through the other, as
/// when a survivor inherits a dead node's pending leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pending_leaves_are_confirmed_once_by_any_node() {
    let redis = Redis::start();
    let (a, _) = backplane(&redis, "node-a", Duration::from_secs(15));
    let (b, _) = backplane(&redis, "node-b", Duration::from_secs(15));
    wait_up(&a).await;
    wait_up(&b).await;
    ferrocast_broker::contract::pending_leaves_are_confirmed_once_by_any_node(&*a, &*b, "app-a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keeps_the_webhook_queue_contract() {
    let redis = Redis::start();
    let (a, _) = backplane(&redis, "node-a", Duration::from_secs(15));
    let (b, _) = backplane(&redis, "node-b", Duration::from_secs(15));
    wait_up(&a).await;
    wait_up(&b).await;
    ferrocast_broker::contract::webhook_queue_all(&*a, "app-a").await;
    ferrocast_broker::contract::a_lane_has_one_holder_and_is_taken_over_in_order(&*a, &*b, "app-t").await;
}
