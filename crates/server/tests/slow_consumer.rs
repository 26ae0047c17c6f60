//! A subscriber that stops reading is closed with 4100 and counted; the others get everything.

mod common;

use std::time::{Duration, Instant};

use common::{Frame, Node, Ws, APP};

const EVENTS: usize = 3000;

#[test]
fn a_slow_consumer_is_disconnected_and_counted_while_others_receive_every_event() {
    let node = Node::start("max_queued_frames = 64", APP);
    let mut slow = Ws::connect(node.port);
    slow.subscribe("firehose");
    let mut healthy = Ws::connect(node.port);
    healthy.subscribe("firehose");
    // The slow client never reads again: its kernel buffers fill, then its 64-frame queue.
    let reader = std::thread::spawn(move || {
        let mut events = 0;
        while let Some(frame) = healthy.read(Duration::from_secs(5)) {
            if matches!(&frame, Frame::Text(t) if t.contains("\"event\":\"tick\"")) {
                events += 1;
                if events == EVENTS {
                    break;
                }
            }
        }
        events
    });
    // Far more than loopback socket buffers hold (they grow to a few MB).
    let data = "x".repeat(9_000);
    for _ in 0..EVENTS / 10 {
        assert_eq!(node.trigger_batch("firehose", "tick", &data, 10), 200);
    }
    assert_eq!(
        reader.join().unwrap(),
        EVENTS,
        "the client that keeps up receives every event"
    );
    let series = "ferrocast_slow_consumer_disconnects_total{app_id=\"app-id\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.metric(series) != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "slow consumer not counted:\n{}",
            node.metrics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        node.metric("ferrocast_connections_closed_total{app_id=\"app-id\",code=\"4100\"}"),
        Some(1.0)
    );
    drop(slow);
}
