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
    assert_eq!(sink_a.events(), vec!["one:e1", "two:e2", "one:e3"]);
}
