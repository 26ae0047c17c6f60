//! `churn`: presence join/leave cycles. Each connection repeatedly subscribes to its presence
//! channel with signed `channel_data`, waits for `subscription_succeeded` (the roster), and
//! unsubscribes. Afterwards the REST API must report every channel empty again.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{setup_timeout, Ctx, Setup};
use crate::cli::ChurnArgs;
use crate::pusher::{event_name, Client, ClientError};
use crate::report::{histogram, latency_json, latency_line, round1, round3, Counters, CpuWindow, Report};

const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

struct Shared {
    setup: Setup,
    alive: Cell<usize>,
    errors: Counters,
    cycles: Cell<u64>,
    started: Cell<u64>,
    cap: Option<u64>,
    deadline: Cell<Option<Instant>>,
    join_latency: RefCell<Histogram<u64>>,
    member_added: Cell<u64>,
    member_removed: Cell<u64>,
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    ctx: Rc<Ctx>,
    shared: Rc<Shared>,
    index: usize,
    channel: Rc<str>,
    interval: Option<Duration>,
    gate: Rc<Semaphore>,
    go: CancellationToken,
) {
    let permit = gate.acquire().await;
    let result = Client::open(&ctx.dialer, ctx.endpoint(index), &ctx.common.key).await;
    drop(permit);
    let mut client = match result {
        Ok(client) => client,
        Err(e) => return shared.setup.connection_failed(&e, &shared.errors, &shared.alive),
    };
    shared.setup.ok();
    go.cancelled().await;
    let Some(deadline) = shared.deadline.get() else {
        return;
    };

    let channel_data = json!({"user_id": format!("lt-user-{index}"), "user_info": {"i": index}}).to_string();
    let auth = ctx.presence_auth(&client.socket_id, &channel, &channel_data);
    // Spread the connections' cycles over the interval.
    let mut next = Instant::now()
        + interval
            .map(|i| i.mul_f64((index % 1000) as f64 / 1000.0))
            .unwrap_or_default();
    let mut open = true;
    loop {
        if Instant::now() >= deadline || shared.cap.is_some_and(|cap| shared.started.get() >= cap) {
            break;
        }
        if let Some(interval) = interval {
            if next >= deadline {
                break;
            }
            tokio::time::sleep_until(next.into()).await;
            next += interval;
        }
        shared.started.set(shared.started.get() + 1);
        let t0 = Instant::now();
        let joined = async {
            client.subscribe(&channel, Some(&auth), Some(&channel_data)).await?;
            client
                .wait_subscribed(&channel, SUBSCRIBE_TIMEOUT, |text| match event_name(text) {
                    Some(b"pusher_internal:member_added") => shared.member_added.set(shared.member_added.get() + 1),
                    Some(b"pusher_internal:member_removed") => {
                        shared.member_removed.set(shared.member_removed.get() + 1)
                    }
                    _ => {}
                })
                .await?;
            client.unsubscribe(&channel).await
        };
        match joined.await {
            Ok(()) => {
                shared
                    .join_latency
                    .borrow_mut()
                    .saturating_record(t0.elapsed().as_nanos().max(1) as u64);
                shared.cycles.set(shared.cycles.get() + 1);
            }
            Err(e) => {
                shared.errors.add(e.kind());
                if matches!(e, ClientError::Closed(_) | ClientError::Ws(_) | ClientError::Timeout(_)) {
                    open = false;
                    break;
                }
                // A refused subscription: try again later rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    if open {
        client.close(Duration::from_secs(1)).await;
    }
    shared.alive.set(shared.alive.get() - 1);
}

/// Presence members the REST API still lists on `channel`.
async fn members_left(ctx: &Ctx, channel: &str) -> Result<usize, String> {
    let path = ctx.rest.app_path(&format!("channels/{channel}/users"));
    let body = ctx
        .rest
        .request(&ctx.dialer, "GET", &path, &[], Bytes::new())
        .await
        .map_err(|e| e.to_string())?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| format!("bad /users body: {e}"))?;
    value
        .get("users")
        .and_then(Value::as_array)
        .map(Vec::len)
        .ok_or_else(|| "/users body has no users array".to_owned())
}

pub async fn run(ctx: Rc<Ctx>, args: ChurnArgs) -> Result<Report, String> {
    let n = args.connections;
    let m = args.channels.max(1);
    let duration = ctx.duration(Duration::from_secs(10));
    if n == 0 {
        return Err("--connections must be at least 1".into());
    }
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        return Err("--rate must be a non-negative number".into());
    }
    ctx.check_fds(n as u64)?;
    let per_channel = n.div_ceil(m);
    if per_channel > 100 {
        ctx.log(&format!(
            "warning: up to {per_channel} users per presence channel; servers limit members (Pusher: 100)"
        ));
    }
    let interval = (args.rate > 0.0).then(|| Duration::from_secs_f64(n as f64 / args.rate));
    let channels: Vec<Rc<str>> = (0..m)
        .map(|i| Rc::from(format!("presence-{}-churn-{i}", ctx.prefix)))
        .collect();
    let shared = Rc::new(Shared {
        setup: Setup::default(),
        alive: Cell::new(n),
        errors: Counters::default(),
        cycles: Cell::new(0),
        started: Cell::new(0),
        cap: args.cycles,
        deadline: Cell::new(None),
        join_latency: RefCell::new(histogram()),
        member_added: Cell::new(0),
        member_removed: Cell::new(0),
    });
    let go = CancellationToken::new();
    let gate = Rc::new(Semaphore::new(ctx.concurrency(256)));
    ctx.log(&format!(
        "churn: {n} connections over {m} presence channel(s) on {}",
        ctx.urls().join(", ")
    ));
    for i in 0..n {
        tokio::task::spawn_local(worker(
            ctx.clone(),
            shared.clone(),
            i,
            channels[i % m].clone(),
            interval,
            gate.clone(),
            go.clone(),
        ));
    }
    shared.setup.wait(&ctx, n, setup_timeout(n)).await;
    let ready = shared.setup.ready.get();

    let window = CpuWindow::start(&ctx.common.server_pid);
    let start = Instant::now();
    shared.deadline.set(Some(start + duration));
    go.cancel();
    while shared.alive.get() > 0 && start.elapsed() < duration + SUBSCRIBE_TIMEOUT + Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    let usage = window.finish();
    let cycles = shared.cycles.get();
    let cycles_per_s = cycles as f64 / elapsed.as_secs_f64();

    // Every member must be gone once all connections have left.
    let mut leftover = Vec::new();
    let mut check_errors = Vec::new();
    for channel in &channels {
        let give_up = Instant::now() + Duration::from_secs(5);
        loop {
            match members_left(&ctx, channel).await {
                Ok(0) => break,
                Ok(k) if Instant::now() >= give_up => {
                    leftover.push(format!("{channel}: {k} member(s)"));
                    break;
                }
                Err(e) if Instant::now() >= give_up => {
                    check_errors.push(format!("{channel}: {e}"));
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    let latency = shared.join_latency.borrow();
    let mut report = Report::new("churn");
    report.set("urls", ctx.urls());
    report.set("rest", ctx.rest.endpoint().url.clone());
    report.set("connections", n);
    report.set("connected", ready);
    report.set("channels", m);
    report.set("rate_target", args.rate);
    report.set("duration_s", round3(elapsed.as_secs_f64()));
    report.set("cycles", cycles);
    report.set("cycles_per_s", round1(cycles_per_s));
    report.set("join_latency", latency_json(&latency));
    report.set("member_added_seen", shared.member_added.get());
    report.set("member_removed_seen", shared.member_removed.get());
    report.set("presence_leftover", leftover.clone());
    report.set("presence_check_errors", check_errors.clone());
    report.set("errors", shared.errors.json());
    report.set("tester", usage.tester_json());
    report.set("servers", usage.servers_json());
    report.set("machine", usage.machine_json());

    report.line(format!(
        "churn: {ready}/{n} connections over {m} presence channel(s) via {}",
        ctx.urls().join(", ")
    ));
    report.line(format!(
        "{cycles} join/leave cycles in {:.2} s = {cycles_per_s:.0} cycles/s{}",
        elapsed.as_secs_f64(),
        if args.rate > 0.0 {
            format!(" (target {} /s)", args.rate)
        } else {
            " (as fast as possible)".into()
        }
    ));
    report.line(format!(
        "subscribe → subscription_succeeded: {}",
        latency_line(&latency)
    ));
    report.line(format!(
        "member events seen by other members: {} added, {} removed",
        shared.member_added.get(),
        shared.member_removed.get()
    ));
    report.line(format!(
        "presence after the run: {}",
        if leftover.is_empty() && check_errors.is_empty() {
            "every channel empty".to_owned()
        } else {
            [leftover.clone(), check_errors.clone()].concat().join("; ")
        }
    ));
    report.line(format!("errors: {}", shared.errors.line()));
    for line in usage.lines() {
        report.line(line);
    }
    if let Some(e) = shared.setup.first_error.borrow().as_ref() {
        report.line(format!("first setup error: {e}"));
    }
    if ready < n {
        report.fail(format!("{} of {n} connections failed", n - ready));
    }
    if cycles == 0 {
        report.fail("no join/leave cycle completed");
    }
    if shared.errors.total() > 0 {
        report.fail(format!("errors: {}", shared.errors.line()));
    }
    if !leftover.is_empty() {
        report.fail(format!("presence members left behind: {}", leftover.join("; ")));
    }
    if !check_errors.is_empty() {
        report.fail(format!("presence check failed: {}", check_errors.join("; ")));
    }
    drop(latency);
    Ok(report)
}
