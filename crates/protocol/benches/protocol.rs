//! Micro-benchmarks of the per-frame protocol work: parsing client frames and verifying channel
//! auth signatures. Run with `cargo bench -p ferrocast-protocol --bench protocol` (or `make bench`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferrocast_protocol::inbound::parse_client_message;
use ferrocast_protocol::signature::{channel_string_to_sign, sign, verify_auth};

const KEY: &str = "278d425bdf160c739803";
const SECRET: &str = "7ad3773142a6692b25b8";
const SOCKET_ID: &str = "1234.1234";

fn parse(c: &mut Criterion) {
    let channel = "private-orders-42";
    let auth = format!(
        "{KEY}:{}",
        sign(SECRET, &channel_string_to_sign(SOCKET_ID, channel, None))
    );
    // What pusher-js sends: `data` as an object.
    let subscribe = format!(r#"{{"event":"pusher:subscribe","data":{{"auth":"{auth}","channel":"{channel}"}}}}"#);
    let client_event = r#"{"event":"client-typing","channel":"private-orders-42","data":{"user":"u-17","text":"hello there, how are you?"}}"#;

    let mut group = c.benchmark_group("parse_client_message");
    group.throughput(Throughput::Elements(1));
    group.bench_function("subscribe_private", |b| {
        b.iter(|| parse_client_message(black_box(&subscribe)).unwrap())
    });
    group.bench_function("client_event", |b| {
        b.iter(|| parse_client_message(black_box(client_event)).unwrap())
    });
    group.finish();
}

fn verify(c: &mut Criterion) {
    let private = "private-orders-42";
    let private_signed = channel_string_to_sign(SOCKET_ID, private, None);
    let private_auth = format!("{KEY}:{}", sign(SECRET, &private_signed));
    let presence = "presence-room-7";
    let channel_data = r#"{"user_id":"u-17","user_info":{"name":"Ada Lovelace"}}"#;
    let presence_signed = channel_string_to_sign(SOCKET_ID, presence, Some(channel_data));
    let presence_auth = format!("{KEY}:{}", sign(SECRET, &presence_signed));

    let mut group = c.benchmark_group("verify_auth");
    group.throughput(Throughput::Elements(1));
    // Includes building the string to sign, as a subscribe does.
    group.bench_function("private", |b| {
        b.iter(|| {
            let signed = channel_string_to_sign(black_box(SOCKET_ID), black_box(private), None);
            verify_auth(KEY, SECRET, &signed, Some(black_box(&private_auth))).unwrap()
        })
    });
    group.bench_function("presence", |b| {
        b.iter(|| {
            let signed = channel_string_to_sign(black_box(SOCKET_ID), black_box(presence), Some(channel_data));
            verify_auth(KEY, SECRET, &signed, Some(black_box(&presence_auth))).unwrap()
        })
    });
    group.bench_function("private_bad_signature", |b| {
        let bad = format!("{KEY}:{}", "0".repeat(64));
        b.iter(|| verify_auth(KEY, SECRET, black_box(&private_signed), Some(black_box(&bad))).unwrap_err())
    });
    group.finish();
}

criterion_group!(benches, parse, verify);
criterion_main!(benches);
