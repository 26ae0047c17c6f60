//! `fanout` and `cluster`: N subscribers over C public channels, a REST publisher, and the
//! delivery ratio, throughput and end-to-end latency of what arrives.
//!
//! Every event's `data` embeds its send time (ns since the Unix epoch) after a marker that
//! cannot occur in channel or event names, so a subscriber finds it with one substring search
//! and no JSON parsing. Expected deliveries are counted per accepted event as the number of
//! subscribers of its channel (including the event's share while its request is in flight,
//! because deliveries may arrive before the HTTP response).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fastwebsockets::OpCode;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{setup_timeout, Ctx, Setup};
use crate::cli::FanoutArgs;
use crate::pusher::{close_code, event_name, pusher_error, Client, ClientError};
use crate::report::{histogram, latency_json, latency_line, round1, round3, Counters, CpuWindow, Report};
use crate::sys::now_ns;

const EVENT: &str = "lt-event";
/// Precedes the send time in `data`; `~` is not allowed in channel or event names.
const MARKER: &[u8] = b"~lt~";
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(20);

struct Shared {
    received: Cell<u64>,
    /// Deliveries owed for accepted events.
    expected: Cell<u64>,
    /// Deliveries owed for events whose request is still in flight.
    pending: Cell<u64>,
    latency: RefCell<Histogram<u64>>,
    /// Per event number: (first, last) receive time, for the fan-out spread.
    events: RefCell<HashMap<u64, (u64, u64)>>,
    /// Send → kernel receive time of the subscriber's socket (with rx timestamps).
    arrival_latency: RefCell<Histogram<u64>>,
    /// Latency of each event's first delivery.
    first_latency: RefCell<Histogram<u64>>,
    /// Wall-clock time (ns) of the latest delivery (0 = none yet).
    last_delivery_ns: Cell<u64>,
    errors: Counters,
    closes: Counters,
    setup: Setup,
    alive: Cell<usize>,
    /// Subscribers read with kernel receive timestamps.
    rx_timestamps: bool,
    /// Subscribers per channel.
    subs: RefCell<Vec<u64>>,
    /// Outstanding deliveries above which the max-rate publisher pauses (0 = never).
    backlog_limit: Cell<u64>,
    publisher_waiting: Cell<bool>,
    resume: Notify,
}

impl Shared {
    fn outstanding(&self) -> u64 {
        (self.expected.get() + self.pending.get()).saturating_sub(self.received.get())
    }

    fn on_delivery(&self, sent_ns: u64, seq: u64, rx_ns: Option<u64>) {
        let now = now_ns();
        let latency = now.saturating_sub(sent_ns).max(1);
        self.received.set(self.received.get() + 1);
        self.latency.borrow_mut().saturating_record(latency);
        if let Some(rx) = rx_ns.filter(|&rx| rx > 0) {
            self.arrival_latency
                .borrow_mut()
                .saturating_record(rx.saturating_sub(sent_ns).max(1));
        }
        let mut events = self.events.borrow_mut();
        if let Some((_, last)) = events.get_mut(&seq) {
            *last = now;
        } else if events.len() < TRACKED_EVENTS {
            events.insert(seq, (now, now));
            self.first_latency.borrow_mut().saturating_record(latency);
        }
        drop(events);
        self.last_delivery_ns.set(now);
        if self.publisher_waiting.get() && self.outstanding() <= self.backlog_limit.get() / 2 {
            self.publisher_waiting.set(false);
            self.resume.notify_waiters();
        }
    }
}

/// Events whose first and last delivery are tracked (to bound memory on long runs).
const TRACKED_EVENTS: usize = 1_000_000;

/// The (send time, event number) embedded in an event frame, if it is one of ours.
fn sent_time(frame: &[u8]) -> Option<(u64, u64)> {
    // memchr for the marker's first byte (SIMD, no searcher to build per frame), then compare.
    let at = memchr::memchr_iter(MARKER[0], frame).find(|&i| frame[i..].starts_with(MARKER))?;
    let rest = &frame[at + MARKER.len()..];
    let (sent, rest) = leading_number(rest)?;
    let (seq, _) = leading_number(rest.strip_prefix(b"~")?)?;
    Some((sent, seq))
}

fn leading_number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let len = bytes.iter().position(|b| !b.is_ascii_digit()).unwrap_or(bytes.len());
    if len == 0 || len > 19 {
        return None;
    }
    let value = bytes[..len].iter().fold(0u64, |v, b| v * 10 + u64::from(b - b'0'));
    Some((value, &bytes[len..]))
}

/// `data` of an event: JSON text `{"m":"~lt~<ns>~<seq>","p":"xxx…"}` of about `size` bytes.
fn event_data(sent_ns: u64, seq: u64, size: usize) -> String {
    let mut data = format!("{{\"m\":\"~lt~{sent_ns}~{seq}\",\"p\":\"");
    let pad = size.saturating_sub(data.len() + 2);
    data.extend(std::iter::repeat_n('x', pad));
    data.push_str("\"}");
    data
}

/// The REST path and body publishing one event per channel in `channels` (batch if > 1).
/// Events are numbered from `first_seq`.
fn publish_body(ctx: &Ctx, channels: &[&str], first_seq: u64, payload_bytes: usize) -> (String, Bytes) {
    let sent = now_ns();
    if channels.len() == 1 {
        let data = event_data(sent, first_seq, payload_bytes);
        let body = json!({"name": EVENT, "channels": [channels[0]], "data": data});
        (ctx.rest.app_path("events"), Bytes::from(body.to_string()))
    } else {
        let batch: Vec<_> = channels
            .iter()
            .enumerate()
            .map(|(k, ch)| json!({"channel": ch, "name": EVENT, "data": event_data(sent, first_seq + k as u64, payload_bytes)}))
            .collect();
        (
            ctx.rest.app_path("batch_events"),
            Bytes::from(json!({ "batch": batch }).to_string()),
        )
    }
}

async fn subscriber(
    ctx: Rc<Ctx>,
    shared: Rc<Shared>,
    index: usize,
    channel_index: usize,
    channel: Rc<str>,
    gate: Rc<Semaphore>,
    stop: CancellationToken,
) {
    let rx_timestamps = shared.rx_timestamps;
    let permit = gate.acquire().await;
    let setup = async {
        let mut client = Client::open_with(&ctx.dialer, ctx.endpoint(index), &ctx.common.key, rx_timestamps).await?;
        client.subscribe(&channel, None, None).await?;
        client.wait_subscribed(&channel, SUBSCRIBE_TIMEOUT, |_| {}).await?;
        Ok::<_, ClientError>(client)
    };
    let result = setup.await;
    drop(permit);
    let mut client = match result {
        Ok(client) => client,
        Err(e) => return shared.setup.connection_failed(&e, &shared.errors, &shared.alive),
    };
    shared.subs.borrow_mut()[channel_index] += 1;
    shared.setup.ok();

    let cancelled = stop.cancelled();
    tokio::pin!(cancelled);
    let mut open = true;
    loop {
        let frame = tokio::select! {
            biased;
            _ = &mut cancelled => break,
            frame = client.ws.read_frame() => frame,
        };
        match frame {
            Ok(frame) => match frame.opcode {
                OpCode::Text => {
                    if let Some((sent, seq)) = sent_time(&frame.payload) {
                        shared.on_delivery(sent, seq, client.rx_time.as_ref().map(|t| t.get()));
                        continue;
                    }
                    let is_ping = match event_name(&frame.payload) {
                        Some(b"pusher:ping") => true,
                        Some(b"pusher:error") => {
                            shared.errors.add(pusher_error(&frame.payload).kind());
                            false
                        }
                        _ => false,
                    };
                    drop(frame);
                    if is_ping && client.pong().await.is_err() {
                        shared.errors.add("pong_failed");
                    }
                }
                OpCode::Close => {
                    let code = close_code(&frame)
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "none".into());
                    shared.closes.add(code);
                    open = false;
                    break;
                }
                _ => {}
            },
            Err(e) => {
                shared.errors.add(ClientError::Ws(e).kind());
                open = false;
                break;
            }
        }
    }
    if open {
        client.close(Duration::from_millis(500)).await;
    }
    shared.alive.set(shared.alive.get() - 1);
}

struct PublishStats {
    events_ok: Cell<u64>,
    requests_ok: Cell<u64>,
    requests_failed: Cell<u64>,
    rtt: RefCell<Histogram<u64>>,
    first_error: RefCell<Option<String>>,
}

pub async fn run(ctx: Rc<Ctx>, args: FanoutArgs, cluster: bool) -> Result<crate::report::Report, String> {
    let name = if cluster { "cluster" } else { "fanout" };
    let n = args.subscribers.unwrap_or(if cluster { 200 } else { 500 });
    let rate = args.rate.unwrap_or(if cluster { 200.0 } else { 0.0 });
    let c = args.channels.max(1);
    let inflight = args.inflight.max(1);
    let batch = usize::from(args.batch);
    let duration = ctx.duration(Duration::from_secs(10));
    if n == 0 {
        return Err("--subscribers must be at least 1".into());
    }
    if !(rate >= 0.0 && rate.is_finite()) {
        return Err("--rate must be a non-negative number".into());
    }
    if cluster && ctx.ws.iter().any(|e| e.addr == ctx.rest.endpoint().addr) {
        return Err("cluster: --rest must name another node than the --url subscriber node(s)".into());
    }
    ctx.check_fds((n + inflight) as u64)?;
    // Kernel receive timestamps cost a recvmsg per read; worth it for latency runs only.
    let rx_timestamps = rate > 0.0 && !args.no_rx_timestamps;

    let channels: Vec<Rc<str>> = (0..c).map(|i| Rc::from(format!("{}-fanout-{i}", ctx.prefix))).collect();
    let shared = Rc::new(Shared {
        received: Cell::new(0),
        expected: Cell::new(0),
        pending: Cell::new(0),
        latency: RefCell::new(histogram()),
        events: RefCell::new(HashMap::new()),
        first_latency: RefCell::new(histogram()),
        arrival_latency: RefCell::new(histogram()),
        last_delivery_ns: Cell::new(0),
        errors: Counters::default(),
        closes: Counters::default(),
        setup: Setup::default(),
        alive: Cell::new(n),
        rx_timestamps,
        subs: RefCell::new(vec![0; c]),
        backlog_limit: Cell::new(0),
        publisher_waiting: Cell::new(false),
        resume: Notify::new(),
    });
    let stop = CancellationToken::new();
    let gate = Rc::new(Semaphore::new(ctx.concurrency(256)));

    ctx.log(&format!(
        "{name}: connecting {n} subscribers to {} over {c} channel(s)",
        ctx.urls().join(", ")
    ));
    for i in 0..n {
        tokio::task::spawn_local(subscriber(
            ctx.clone(),
            shared.clone(),
            i,
            i % c,
            channels[i % c].clone(),
            gate.clone(),
            stop.clone(),
        ));
    }
    let setup_time = shared.setup.wait(&ctx, n, setup_timeout(n)).await;
    let ready = shared.setup.ready.get();
    ctx.log(&format!(
        "{ready} subscribed in {:.2} s; publishing {} for {:.1} s",
        setup_time.as_secs_f64(),
        if rate > 0.0 {
            format!("{rate} events/s")
        } else {
            format!("at max rate ({inflight} requests in flight)")
        },
        duration.as_secs_f64()
    ));
    if rate == 0.0 && args.max_backlog > 0 {
        shared.backlog_limit.set(args.max_backlog * ready as u64);
    }

    // ---- publish ----
    let stats = Rc::new(PublishStats {
        events_ok: Cell::new(0),
        requests_ok: Cell::new(0),
        requests_failed: Cell::new(0),
        rtt: RefCell::new(histogram()),
        first_error: RefCell::new(None),
    });
    let window = CpuWindow::start(&ctx.common.server_pid);
    let start = Instant::now();
    let start_ns = now_ns();
    let stop_at = start + duration;
    let slots = std::sync::Arc::new(Semaphore::new(inflight));
    let mut next_event: u64 = 0;
    let mut late_max = Duration::ZERO;
    let mut backlog_pauses: u64 = 0;
    let mut published_events: u64 = 0;
    if ready > 0 {
        loop {
            let now = Instant::now();
            if now >= stop_at || args.messages.is_some_and(|m| published_events >= m) {
                break;
            }
            if rate > 0.0 {
                let due = start + Duration::from_secs_f64(next_event as f64 / rate);
                if due > now {
                    if due >= stop_at {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                } else {
                    late_max = late_max.max(now - due);
                }
            } else if shared.backlog_limit.get() > 0 && shared.outstanding() > shared.backlog_limit.get() {
                backlog_pauses += 1;
                while shared.outstanding() > shared.backlog_limit.get() && Instant::now() < stop_at {
                    let resumed = shared.resume.notified();
                    shared.publisher_waiting.set(true);
                    let _ = tokio::time::timeout(Duration::from_millis(100), resumed).await;
                }
                continue;
            }
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let count = match args.messages {
                Some(m) => (m - published_events).min(batch as u64) as usize,
                None => batch,
            };
            let first_seq = next_event;
            let picked: Vec<usize> = (0..count)
                .map(|k| ((next_event + k as u64) % c as u64) as usize)
                .collect();
            next_event += count as u64;
            published_events += count as u64;
            let owed: u64 = {
                let subs = shared.subs.borrow();
                picked.iter().map(|&ch| subs[ch]).sum()
            };
            shared.pending.set(shared.pending.get() + owed);
            let (ctx, shared, stats, channels) = (ctx.clone(), shared.clone(), stats.clone(), channels.clone());
            let payload_bytes = args.payload_bytes;
            tokio::task::spawn_local(async move {
                let names: Vec<&str> = picked.iter().map(|&i| &*channels[i]).collect();
                let (path, body) = publish_body(&ctx, &names, first_seq, payload_bytes);
                let sent = Instant::now();
                let result = ctx.rest.request(&ctx.dialer, "POST", &path, &[], body).await;
                stats
                    .rtt
                    .borrow_mut()
                    .saturating_record(sent.elapsed().as_nanos().max(1) as u64);
                shared.pending.set(shared.pending.get() - owed);
                match result {
                    Ok(_) => {
                        shared.expected.set(shared.expected.get() + owed);
                        stats.events_ok.set(stats.events_ok.get() + names.len() as u64);
                        stats.requests_ok.set(stats.requests_ok.get() + 1);
                    }
                    Err(e) => {
                        shared.errors.add(e.kind());
                        stats.requests_failed.set(stats.requests_failed.get() + 1);
                        stats.first_error.borrow_mut().get_or_insert_with(|| e.to_string());
                    }
                }
                drop(permit);
            });
        }
    }
    // Wait for the requests still in flight.
    let _all = slots.acquire_many(inflight as u32).await;
    let publish_time = start.elapsed();

    // ---- drain ----
    let drain_start = Instant::now();
    while shared.received.get() < shared.expected.get() && drain_start.elapsed() < args.drain {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let usage = window.finish();
    let delivery_time = match shared.last_delivery_ns.get() {
        0 => publish_time,
        last => Duration::from_nanos(last.saturating_sub(start_ns)),
    }
    .max(Duration::from_micros(1));

    // ---- stop subscribers ----
    stop.cancel();
    let wait_close = Instant::now();
    while shared.alive.get() > 0 && wait_close.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // ---- report ----
    let received = shared.received.get();
    let expected = shared.expected.get();
    let ratio = if expected == 0 {
        0.0
    } else {
        received as f64 / expected as f64
    };
    let events_ok = stats.events_ok.get();
    let accepted_per_s = events_ok as f64 / publish_time.as_secs_f64();
    let delivered_per_s = received as f64 / delivery_time.as_secs_f64();
    let latency = shared.latency.borrow();
    let first_latency = shared.first_latency.borrow();
    let arrival_latency = shared.arrival_latency.borrow();
    let mut spread = histogram();
    for (first, last) in shared.events.borrow().values() {
        spread.saturating_record((last - first).max(1));
    }
    let rtt = stats.rtt.borrow();

    let mut report = Report::new(name);
    report.set("urls", ctx.urls());
    report.set("rest", ctx.rest.endpoint().url.clone());
    report.set("subscribers", n);
    report.set("subscribers_ready", ready);
    report.set("setup_s", round3(setup_time.as_secs_f64()));
    report.set("channels", c);
    report.set("rate_target", rate);
    report.set("inflight", inflight);
    report.set("batch", batch);
    report.set("payload_bytes", args.payload_bytes);
    report.set(
        "max_backlog_per_subscriber",
        if rate == 0.0 { args.max_backlog } else { 0 },
    );
    report.set("backlog_pauses", backlog_pauses);
    report.set("publish_s", round3(publish_time.as_secs_f64()));
    report.set("published_events", events_ok);
    report.set("publish_requests", stats.requests_ok.get());
    report.set("publish_errors", stats.requests_failed.get());
    report.set("accepted_per_s", round1(accepted_per_s));
    report.set("publisher_late_max_ms", round3(late_max.as_secs_f64() * 1e3));
    report.set("expected", expected);
    report.set("received", received);
    report.set("delivery_ratio", ratio);
    report.set("delivered_per_s", round1(delivered_per_s));
    report.set("latency", latency_json(&latency));
    report.set("first_delivery_latency", latency_json(&first_latency));
    report.set("arrival_latency", latency_json(&arrival_latency));
    report.set("fanout_spread", latency_json(&spread));
    report.set("publish_rtt", latency_json(&rtt));
    report.set("errors", shared.errors.json());
    report.set("close_codes", shared.closes.json());
    report.set("tester", usage.tester_json());
    report.set("servers", usage.servers_json());
    // Over the CPU window (publish and drain), per event accepted.
    let cpu_per_event = usage.server_cpu_us_per(events_ok);
    report.set("server_cpu_us_per_event", cpu_per_event.map(round3));
    report.set("machine", usage.machine_json());

    let mode = if rate > 0.0 {
        format!("{rate} events/s")
    } else if args.max_backlog > 0 {
        format!(
            "max rate, {inflight} requests in flight, paused above {} undelivered events per subscriber",
            args.max_backlog
        )
    } else {
        format!("max rate (flood), {inflight} requests in flight")
    };
    if cluster {
        report.line(format!(
            "cluster fan-out: {ready}/{n} subscribers on {} ← publisher on {} (another node)",
            ctx.urls().join(", "),
            ctx.rest.endpoint().url
        ));
    } else {
        report.line(format!(
            "fan-out: {ready}/{n} subscribers on {c} channel(s) via {}, publisher {}",
            ctx.urls().join(", "),
            ctx.rest.endpoint().url
        ));
    }
    report.line(format!(
        "publisher: {mode}, batch {batch}, {}-byte data",
        args.payload_bytes
    ));
    report.line(format!(
        "published: {events_ok} events accepted in {:.2} s = {:.0} events/s ({} requests, {} failed)",
        publish_time.as_secs_f64(),
        accepted_per_s,
        stats.requests_ok.get(),
        stats.requests_failed.get()
    ));
    if rate > 0.0 && late_max > Duration::from_millis(5) {
        report.line(format!(
            "publisher fell behind its schedule by up to {:.1} ms",
            late_max.as_secs_f64() * 1e3
        ));
    }
    report.line(format!(
        "delivered: {received} of {expected} expected (ratio {ratio:.6}) = {delivered_per_s:.0} messages/s"
    ));
    if let Some(us) = cpu_per_event {
        report.line(format!(
            "server CPU per event: {us:.1} µs (all server processes listed, over publish and drain) = {:.0} events per server core-second",
            1e6 / us.max(f64::MIN_POSITIVE)
        ));
    }
    report.line(format!("end-to-end latency: {}", latency_line(&latency)));
    report.line(format!(
        "  of each event's first delivery: {}",
        latency_line(&first_latency)
    ));
    report.line(format!(
        "  first → last subscriber of an event (spread): {}",
        latency_line(&spread)
    ));
    if rx_timestamps {
        report.line(format!(
            "  until it reached the subscriber's socket (kernel RX timestamp, excludes the tester's read): {}",
            latency_line(&arrival_latency)
        ));
    }
    report.line(format!("REST round trip: {}", latency_line(&rtt)));
    report.line(format!("errors: {}", shared.errors.line()));
    report.line(format!("close codes: {}", shared.closes.line()));
    for line in usage.lines() {
        report.line(line);
    }
    if let Some(e) = stats.first_error.borrow().as_ref() {
        report.line(format!("first publish error: {e}"));
    }
    if let Some(e) = shared.setup.first_error.borrow().as_ref() {
        report.line(format!("first setup error: {e}"));
    }

    if ready < n {
        report.fail(format!("{} of {n} subscribers failed to subscribe", n - ready));
    }
    if events_ok == 0 {
        report.fail("no event was accepted");
    }
    if received != expected {
        report.fail(format!("delivery ratio {ratio:.6} ({received} of {expected})"));
    }
    if shared.errors.total() > 0 {
        report.fail(format!("errors: {}", shared.errors.line()));
    }
    if shared.closes.total() > 0 {
        report.fail(format!("server closed subscribers: {}", shared.closes.line()));
    }
    drop(latency);
    drop(first_latency);
    drop(arrival_latency);
    drop(rtt);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_time_round_trips_through_an_escaped_frame() {
        let data = event_data(1_234_567_890_123_456_789, 42, 100);
        assert_eq!(data.len(), 100);
        assert!(serde_json::from_str::<serde_json::Value>(&data).is_ok());
        let frame = json!({"event": EVENT, "data": data, "channel": "c~1"}).to_string();
        assert_eq!(sent_time(frame.as_bytes()), Some((1_234_567_890_123_456_789, 42)));
        assert_eq!(sent_time(br#"{"event":"x","data":"{}"}"#), None);
        assert_eq!(sent_time(br#"{"data":"~lt~12"}"#), None);
        // Small sizes still carry the time.
        assert_eq!(sent_time(event_data(5, 7, 0).as_bytes()), Some((5, 7)));
    }
}
