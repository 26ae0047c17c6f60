//! Cluster-wide REST budgets on a real Redis: two backplanes acting as two nodes share one
//! budget per app and kind, counted on Redis's clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{backplane, wait_up, Redis};
use ferrocast_backplane_redis::RedisBackplane;
use ferrocast_broker::{RateBudgets, RateKind};

const TTL: Duration = Duration::from_secs(15);

/// Redis's clock: (seconds, microseconds).
async fn redis_time(redis: &Redis) -> (u64, u64) {
    let mut conn = redis.client().get_multiplexed_async_connection().await.unwrap();
    let (s, us): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    (s, us)
}

/// Wait until Redis's clock is early in a second, so a short burst stays in one window.
async fn start_of_a_second(redis: &Redis) -> u64 {
    loop {
        let (s, us) = redis_time(redis).await;
        if us < 200_000 {
            return s;
        }
        tokio::time::sleep(Duration::from_micros(1_000_000 - us)).await;
    }
}

async fn two_nodes(redis: &Redis) -> (Arc<RedisBackplane>, Arc<RedisBackplane>) {
    let (a, _) = backplane(redis, "node-a", TTL);
    let (b, _) = backplane(redis, "node-b", TTL);
    wait_up(&a).await;
    wait_up(&b).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_together_never_exceed_one_budget_in_a_window() {
    let redis = Redis::start();
    let (a, b) = two_nodes(&redis).await;
    // A window is one Redis second; retry the (millisecond-long) burst if it straddled two.
    for _ in 0..5 {
        let second = start_of_a_second(&redis).await;
        let calls = (0..40).map(|i| {
            let node = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { node.take_rate("app", RateKind::BackendEvents, 1, 10).await })
        });
        let mut allowed = 0;
        for call in calls {
            let decision = call.await.unwrap().unwrap();
            assert!(decision.resets_in <= Duration::from_secs(1), "{decision:?}");
            allowed += u32::from(decision.allowed);
        }
        if redis_time(&redis).await.0 != second {
            continue;
        }
        assert_eq!(allowed, 10, "40 calls on two nodes against a budget of 10 per second");
        return;
    }
    panic!("no burst fitted in one Redis second in five tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_does_not_fit_takes_nothing() {
    let redis = Redis::start();
    let (a, b) = two_nodes(&redis).await;
    for _ in 0..5 {
        let second = start_of_a_second(&redis).await;
        let seven = a.take_rate("app", RateKind::BackendEvents, 7, 10).await.unwrap();
        let five = b.take_rate("app", RateKind::BackendEvents, 5, 10).await.unwrap();
        let three = b.take_rate("app", RateKind::BackendEvents, 3, 10).await.unwrap();
        let one_more = a.take_rate("app", RateKind::BackendEvents, 1, 10).await.unwrap();
        if redis_time(&redis).await.0 != second {
            continue;
        }
        assert!(seven.allowed && !five.allowed && three.allowed && !one_more.allowed);
        assert!(five.resets_in > Duration::ZERO && five.resets_in <= Duration::from_secs(1));
        // More units than the whole budget never fit.
        assert!(
            !a.take_rate("app", RateKind::BackendEvents, 11, 10)
                .await
                .unwrap()
                .allowed
        );
        return;
    }
    panic!("no run fitted in one Redis second in five tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_are_per_app_and_kind_and_their_keys_expire() {
    let redis = Redis::start();
    let (a, _b) = two_nodes(&redis).await;
    for _ in 0..5 {
        let second = start_of_a_second(&redis).await;
        let events = a.take_rate("app", RateKind::BackendEvents, 2, 2).await.unwrap();
        let reads = a.take_rate("app", RateKind::ReadRequests, 2, 2).await.unwrap();
        let other_app = a.take_rate("other", RateKind::BackendEvents, 2, 2).await.unwrap();
        let over = a.take_rate("app", RateKind::ReadRequests, 1, 2).await.unwrap();
        if redis_time(&redis).await.0 != second {
            continue;
        }
        assert!(events.allowed && reads.allowed && other_app.allowed && !over.allowed);
        let mut conn = redis.client().get_multiplexed_async_connection().await.unwrap();
        for key in ["t:rate:app:events", "t:rate:app:reads", "t:rate:other:events"] {
            let ttl: i64 = redis::cmd("PTTL").arg(key).query_async(&mut conn).await.unwrap();
            assert!(ttl > 0 && ttl <= 2000, "{key} expires: {ttl}");
        }
        return;
    }
    panic!("no run fitted in one Redis second in five tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_budget_is_an_error_not_unlimited() {
    let mut redis = Redis::start();
    let (a, _b) = two_nodes(&redis).await;
    assert!(a.take_rate("app", RateKind::ReadRequests, 1, 5).await.is_ok());
    redis.kill();
    let result = a.take_rate("app", RateKind::ReadRequests, 1, 5).await;
    assert!(result.is_err(), "{result:?}");
}
