//! Micro-benchmarks of the publish hot path: building an event frame once (JSON + WebSocket
//! header) and fanning it out to 10,000 local subscribers' bounded queues.
//! Run with `cargo bench -p ferrocast-broker --bench fanout` (or `make bench`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ferrocast_broker::frame;
use ferrocast_broker::ConnectionHandle;
use ferrocast_broker::ConnectionOutbox;
use ferrocast_broker::{ChannelKey, LocalChannels};
use ferrocast_protocol::outbound::channel_event;

const SUBSCRIBERS: usize = 10_000;

fn data(bytes: usize) -> String {
    let mut data = String::from(r#"{"id":42,"text":""#);
    data.extend(std::iter::repeat_n('x', bytes.saturating_sub(data.len() + 2)));
    data.push_str(r#""}"#);
    data
}

fn build_frame(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    group.throughput(Throughput::Elements(1));
    for size in [100, 1_000] {
        let data = data(size);
        group.bench_function(format!("channel_event_text_{size}B"), |b| {
            b.iter(|| {
                let json = channel_event(black_box("order-shipped"), black_box("orders"), black_box(&data), None);
                frame::text(&json)
            })
        });
    }
    group.finish();
}

fn fan_out(c: &mut Criterion) {
    let channels = LocalChannels::new();
    let key = ChannelKey::new("app-id", "orders");
    let mut outboxes: Vec<ConnectionOutbox> = Vec::with_capacity(SUBSCRIBERS);
    let mut handles = Vec::with_capacity(SUBSCRIBERS);
    for i in 0..SUBSCRIBERS {
        let (handle, outbox) = ConnectionHandle::new(format!("1.{i}").into(), 64);
        channels.add(&key, &handle, None);
        channels.activate(&key, handle.socket_id(), Vec::new(), 0, []);
        handles.push(handle);
        outboxes.push(outbox);
    }
    let data = data(100);
    let drain = |outboxes: &mut Vec<ConnectionOutbox>| {
        for outbox in outboxes.iter_mut() {
            while outbox.frames.try_recv().is_ok() {}
        }
    };

    let mut group = c.benchmark_group("fan_out");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    // One publish: frame built once (only because the channel has local subscribers), then a
    // clone of the bytes queued to each of the 10k sockets. Queues are drained between
    // iterations, outside the measured time, so no socket ever looks slow.
    group.bench_function("10k_subscribers_one_event", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let sent = channels.fan_out_with(&key, None, || {
                    frame::text(&channel_event("order-shipped", "orders", &data, None))
                });
                total += start.elapsed();
                assert_eq!(sent, SUBSCRIBERS);
                drain(&mut outboxes);
            }
            total
        })
    });
    group.finish();
    assert!(
        handles.iter().all(|h| !h.is_closing()),
        "no subscriber may be closed as slow"
    );

    // The lookup cost alone: a channel with no local subscribers builds nothing.
    let mut group = c.benchmark_group("fan_out");
    group.throughput(Throughput::Elements(1));
    let empty = ChannelKey::new("app-id", "nobody-here");
    group.bench_function("no_local_subscribers", |b| {
        b.iter_batched(
            || (),
            |()| {
                channels.fan_out_with(black_box(&empty), None, || {
                    unreachable!("no frame for an empty channel")
                })
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, build_frame, fan_out);
criterion_main!(benches);
