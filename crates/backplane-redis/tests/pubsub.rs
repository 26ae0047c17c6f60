//! Channel messages between two backplanes through a real Redis.

mod common;

use std::time::Duration;

use common::{backplane, eventually, message, wait_up, Redis};
use ferrocast_broker::{Backplane, Link};

const TTL: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_receives_only_channels_it_is_interested_in() {
    let redis = Redis::start();
    let (a, sink_a) = backplane(&redis, "node-a", TTL);
    let (b, _) = backplane(&redis, "node-b", TTL);
    wait_up(&a).await;
    wait_up(&b).await;
    a.subscribe("app", "wanted").await.unwrap();
    a.subscribe("app", "wanted").await.unwrap();
    b.publish(message("unwanted", "e1")).await.unwrap();
    b.publish(message("wanted", "e2")).await.unwrap();
    eventually("wanted event", Duration::from_secs(5), || {
        sink_a.events().contains(&"wanted:e2".into())
    })
    .await;
    assert_eq!(
        sink_a.events(),
        vec!["wanted:e2"],
        "no traffic for channels without interest"
    );
    a.unsubscribe("app", "wanted").await.unwrap();
    b.publish(message("wanted", "e3")).await.unwrap();
    eventually(
        "still subscribed after one of two unsubscribes",
        Duration::from_secs(5),
        || sink_a.events().contains(&"wanted:e3".into()),
    )
    .await;
    a.unsubscribe("app", "wanted").await.unwrap();
    a.subscribe("app", "control").await.unwrap();
    b.publish(message("wanted", "e4")).await.unwrap();
    b.publish(message("control", "e5")).await.unwrap();
    eventually("control event", Duration::from_secs(5), || {
        sink_a.events().contains(&"control:e5".into())
    })
    .await;
    assert!(
        !sink_a.events().contains(&"wanted:e4".into()),
        "interest dropped after the last unsubscribe"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_message_after_subscribe_returns_is_delivered() {
    let redis = Redis::start();
    let (a, sink_a) = backplane(&redis, "node-a", TTL);
    let (b, _) = backplane(&redis, "node-b", TTL);
    wait_up(&a).await;
    wait_up(&b).await;
    for i in 0..50 {
        let channel = format!("fresh-{i}");
        a.subscribe("app", &channel).await.unwrap();
        b.publish(message(&channel, "first")).await.unwrap();
    }
    eventually("all 50 first messages", Duration::from_secs(5), || {
        sink_a.events().len() == 50
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_goes_down_with_redis_and_comes_back_resubscribed() {
    let mut redis = Redis::start();
    let (a, sink_a) = backplane(&redis, "node-a", TTL);
    let (b, _) = backplane(&redis, "node-b", TTL);
    let first = wait_up(&a).await;
    wait_up(&b).await;
    a.subscribe("app", "durable").await.unwrap();
    redis.kill();
    let mut link = a.link();
    tokio::time::timeout(Duration::from_secs(5), link.wait_for(|l| *l == Link::Down))
        .await
        .unwrap()
        .unwrap();
    assert!(
        b.publish(message("durable", "lost")).await.is_err(),
        "publishing fails loudly while Redis is gone"
    );
    redis.restart();
    let second = wait_up(&a).await;
    assert!(second > first, "a new generation tells the node to re-register");
    wait_up(&b).await;
    b.publish(message("durable", "after")).await.unwrap();
    eventually("delivery after reconnect", Duration::from_secs(5), || {
        sink_a.events().contains(&"durable:after".into())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_published_in_order_in_one_call() {
    let redis = Redis::start();
    let (a, sink_a) = backplane(&redis, "node-a", TTL);
    let (b, _) = backplane(&redis, "node-b", TTL);
    wait_up(&a).await;
    wait_up(&b).await;
    a.subscribe("app", "one").await.unwrap();
    a.subscribe("app", "two").await.unwrap();
    let batch = vec![message("one", "e1"), message("two", "e2"), message("one", "e3")];
    b.publish_many(batch).await.unwrap();
    eventually("whole batch", Duration::from_secs(5), || sink_a.events().len() == 3).await;
    let events = sink_a.events();
    if redis.buckets() == 1 {
        // One Redis, one bucket: the batch is one script, delivered as it was sent.
        assert_eq!(events, vec!["one:e1", "two:e2", "one:e3"]);
    } else {
        // One script per bucket: the order holds per channel.
        let of = |channel: &str| {
            events
                .iter()
                .filter(|e| e.starts_with(channel))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            (of("one:"), of("two:")),
            (vec!["one:e1".into(), "one:e3".into()], vec!["two:e2".into()])
        );
    }
}

/// Drop every pub/sub connection: nodes notice, reconnect and resubscribe after their backoff.
async fn kill_pubsub_connections(redis: &Redis) {
    let mut conn = redis.client().get_multiplexed_async_connection().await.unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(killed >= 1, "a pub/sub connection was killed");
}

async fn link_down(b: &ferrocast_backplane_redis::RedisBackplane) {
    let mut link = b.link();
    tokio::time::timeout(Duration::from_secs(5), link.wait_for(|l| *l == Link::Down))
        .await
        .expect("link down in time")
        .expect("link watch open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_published_while_a_node_reconnected_is_replayed_once_in_order() {
    let redis = Redis::start();
    let (a, sink_a) = backplane(&redis, "node-a", TTL);
    let (b, _) = backplane(&redis, "node-b", TTL);
    wait_up(&a).await;
    wait_up(&b).await;
    a.subscribe("app", "c").await.unwrap();
    b.publish(message("c", "before")).await.unwrap();
    eventually("live event", Duration::from_secs(5), || sink_a.events().len() == 1).await;
    kill_pubsub_connections(&redis).await;
    link_down(&a).await;
    // Published while node A has no pub/sub connection: pub/sub alone would lose these.
    for i in 0..20 {
        b.publish(message("c", &format!("gap-{i}"))).await.unwrap();
    }
    wait_up(&a).await;
    b.publish(message("c", "after")).await.unwrap();
    let mut expected = vec!["c:before".to_string()];
    expected.extend((0..20).map(|i| format!("c:gap-{i}")));
    expected.push("c:after".into());
    eventually("every event", Duration::from_secs(10), || {
        sink_a.events().len() >= expected.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink_a.events(), expected, "each once, in publish order");
    assert_eq!(a.stats.replayed.load(std::sync::atomic::Ordering::Relaxed), 20);
    assert_eq!(a.stats.replay_gaps.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(a.stats.replay_trimmed.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_trimmed_past_a_nodes_position_is_counted_as_a_gap() {
    let redis = Redis::start();
    let (a, sink_a) = backplane(&redis, "node-a", TTL);
    let (b, _) = common::backplane_with(&redis, "node-b", TTL, |o| o.replay_log.max_len = 5);
    wait_up(&a).await;
    wait_up(&b).await;
    a.subscribe("app", "c").await.unwrap();
    b.publish(message("c", "seen")).await.unwrap();
    eventually("live event", Duration::from_secs(5), || sink_a.events().len() == 1).await;
    kill_pubsub_connections(&redis).await;
    link_down(&a).await;
    // Far beyond the 5 kept: Redis trims whole stream nodes (100 entries) at a time.
    let burst: Vec<_> = (0..300).map(|i| message("c", &format!("burst-{i}"))).collect();
    b.publish_many(burst).await.unwrap();
    wait_up(&a).await;
    assert_eq!(a.stats.replay_gaps.load(std::sync::atomic::Ordering::Relaxed), 1);
    let replayed = a.stats.replayed.load(std::sync::atomic::Ordering::Relaxed) as usize;
    assert!(replayed > 0 && replayed < 300, "what the log kept: {replayed}");
    // Exactly the messages neither delivered live nor replayed: counted from the entry numbers.
    let trimmed = a.stats.replay_trimmed.load(std::sync::atomic::Ordering::Relaxed) as usize;
    assert_eq!(trimmed, 300 - replayed, "lost to trimming");
    // What was replayed is the newest part, in order.
    let events = sink_a.events();
    let tail: Vec<String> = (300 - replayed..300).map(|i| format!("c:burst-{i}")).collect();
    assert_eq!(events[1..], tail[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_lost_its_data_what_is_published_before_a_node_is_back_reaches_it() {
    let mut redis = Redis::start();
    let (a, sink_a) = backplane(&redis, "node-a", TTL);
    let (b, _) = backplane(&redis, "node-b", TTL);
    wait_up(&a).await;
    wait_up(&b).await;
    a.subscribe("app", "c").await.unwrap();
    // The epoch is written by the first registration (the node core's resync).
    ferrocast_broker::NodeRegistration::resync(&*a, &Default::default())
        .await
        .unwrap();
    b.publish(message("c", "old")).await.unwrap();
    eventually("live event", Duration::from_secs(5), || sink_a.events().len() == 1).await;
    redis.restart();
    wait_up(&b).await;
    // Node B registers first, under a new epoch, and publishes before node A is back.
    ferrocast_broker::NodeRegistration::resync(&*b, &Default::default())
        .await
        .unwrap();
    b.publish(message("c", "new")).await.unwrap();
    eventually("replayed event", Duration::from_secs(10), || sink_a.events().len() == 2).await;
    assert_eq!(sink_a.events(), vec!["c:old", "c:new"]);
}
