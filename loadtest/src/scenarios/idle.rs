//! `idle`: N subscribed connections that stay idle (answering `pusher:ping`): how fast they
//! connect, and with --server-pid how much server memory each one costs.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fastwebsockets::OpCode;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{setup_timeout, Ctx, Setup, SYN_RETRANSMIT_NOTE};
use crate::cli::IdleArgs;
use crate::pusher::{close_code, event_name, Client, ClientError};
use crate::report::{histogram, latency_json, latency_line, round1, round3, Counters, CpuWindow, Report};
use crate::sys;

const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(20);

struct Shared {
    setup: Setup,
    alive: Cell<usize>,
    errors: Counters,
    closes: Counters,
    pings: Cell<u64>,
    connect_latency: std::cell::RefCell<hdrhistogram::Histogram<u64>>,
}

async fn connection(
    ctx: Rc<Ctx>,
    shared: Rc<Shared>,
    index: usize,
    channel: Rc<str>,
    gate: Rc<Semaphore>,
    stop: CancellationToken,
) {
    let permit = gate.acquire().await;
    let started = Instant::now();
    let setup = async {
        let mut client = Client::open(&ctx.dialer, ctx.endpoint(index), &ctx.common.key).await?;
        if channel.starts_with("presence-") {
            let channel_data = json!({"user_id": format!("lt-user-{index}"), "user_info": {"i": index}}).to_string();
            let auth = ctx.presence_auth(&client.socket_id, &channel, &channel_data);
            client.subscribe(&channel, Some(&auth), Some(&channel_data)).await?;
        } else {
            client.subscribe(&channel, None, None).await?;
        }
        client.wait_subscribed(&channel, SUBSCRIBE_TIMEOUT, |_| {}).await?;
        Ok::<_, ClientError>(client)
    };
    let result = setup.await;
    drop(permit);
    let mut client = match result {
        Ok(client) => client,
        Err(e) => return shared.setup.connection_failed(&e, &shared.errors, &shared.alive),
    };
    shared
        .connect_latency
        .borrow_mut()
        .saturating_record(started.elapsed().as_nanos().max(1) as u64);
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
            Ok(frame) if frame.opcode == OpCode::Text => {
                let is_ping = event_name(&frame.payload) == Some(b"pusher:ping");
                drop(frame);
                if is_ping {
                    shared.pings.set(shared.pings.get() + 1);
                    if client.pong().await.is_err() {
                        shared.errors.add("pong_failed");
                    }
                }
            }
            Ok(frame) if frame.opcode == OpCode::Close => {
                shared.closes.add(
                    close_code(&frame)
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "none".into()),
                );
                open = false;
                break;
            }
            Ok(_) => {}
            Err(e) => {
                shared.errors.add(ClientError::Ws(e).kind());
                open = false;
                break;
            }
        }
    }
    if open {
        client.close(Duration::from_secs(1)).await;
    }
    shared.alive.set(shared.alive.get() - 1);
}

fn total_rss(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| sys::rss_kb(p)).sum()
}

pub async fn run(ctx: Rc<Ctx>, args: IdleArgs) -> Result<Report, String> {
    let n = args.connections;
    let c = args.channels.max(1);
    let hold = ctx.duration(Duration::from_secs(5));
    if n == 0 {
        return Err("--connections must be at least 1".into());
    }
    ctx.check_fds(n as u64)?;
    let pids = ctx.common.server_pid.clone();
    let rss_before = total_rss(&pids);

    let kind = if args.presence { "presence-" } else { "" };
    let channels: Vec<Rc<str>> = (0..c)
        .map(|i| Rc::from(format!("{kind}{}-idle-{i}", ctx.prefix)))
        .collect();
    let shared = Rc::new(Shared {
        setup: Setup::default(),
        alive: Cell::new(n),
        errors: Counters::default(),
        closes: Counters::default(),
        pings: Cell::new(0),
        connect_latency: std::cell::RefCell::new(histogram()),
    });
    let stop = CancellationToken::new();
    let concurrency = ctx.concurrency(256);
    let gate = Rc::new(Semaphore::new(concurrency));
    ctx.log(&format!(
        "idle: opening {n} subscribed connections ({c} channel(s), {concurrency} at once) to {}",
        ctx.urls().join(", ")
    ));
    let window = CpuWindow::start(&pids);
    for i in 0..n {
        tokio::task::spawn_local(connection(
            ctx.clone(),
            shared.clone(),
            i,
            channels[i % c].clone(),
            gate.clone(),
            stop.clone(),
        ));
    }
    let connect_time = shared.setup.wait(&ctx, n, setup_timeout(n)).await;
    let connect_usage = window.finish();
    let ready = shared.setup.ready.get();
    let rate = ready as f64 / connect_time.as_secs_f64().max(1e-6);
    ctx.log(&format!(
        "{ready} connected and subscribed in {:.2} s ({rate:.0}/s); holding them idle for {:.1} s",
        connect_time.as_secs_f64(),
        hold.as_secs_f64()
    ));

    // Let the server settle (allocator, lazily freed buffers) before and after holding.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_connected = total_rss(&pids);
    let hold_window = CpuWindow::start(&pids);
    tokio::time::sleep(hold).await;
    let hold_usage = hold_window.finish();
    let rss_after = total_rss(&pids);
    let still_open = shared.alive.get();

    stop.cancel();
    let wait_close = Instant::now();
    while shared.alive.get() > 0 && wait_close.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let latency = shared.connect_latency.borrow();
    let mut report = Report::new("idle");
    report.set("urls", ctx.urls());
    report.set("connections", n);
    report.set("connected", ready);
    report.set("channels", c);
    report.set("presence", args.presence);
    report.set("concurrency", concurrency);
    report.set("connect_s", round3(connect_time.as_secs_f64()));
    report.set("connect_per_s", round1(rate));
    let ready_99 = shared.setup.ready_99.get();
    let rate_99 = ready_99.map(|t| (n as f64 * 0.99).ceil() / t.as_secs_f64().max(1e-6));
    report.set("connect_99pct_s", ready_99.map(|t| round3(t.as_secs_f64())));
    report.set("connect_99pct_per_s", rate_99.map(round1));
    report.set("connect_latency", latency_json(&latency));
    report.set("hold_s", round3(hold.as_secs_f64()));
    report.set("still_open_after_hold", still_open);
    report.set("pings_answered", shared.pings.get());
    report.set("errors", shared.errors.json());
    report.set("close_codes", shared.closes.json());
    report.set("tester_connect", connect_usage.tester_json());
    report.set("tester_hold", hold_usage.tester_json());
    report.set("servers_connect", connect_usage.servers_json());
    report.set("servers_hold", hold_usage.servers_json());
    report.set("machine_connect", connect_usage.machine_json());
    report.set("server_rss_before_kb", rss_before);
    report.set("server_rss_connected_kb", rss_connected);
    report.set("server_rss_after_kb", rss_after);
    let per_conn = rss_before
        .zip(rss_after)
        .filter(|_| ready > 0)
        .map(|(b, a)| (a.saturating_sub(b) as f64 * 1024.0) / ready as f64);
    report.set("server_rss_per_connection_bytes", per_conn.map(|b| b.round()));

    report.line(format!(
        "idle: {ready}/{n} subscribed connections over {c} public channel(s) via {}",
        ctx.urls().join(", ")
    ));
    report.line(format!(
        "connect + subscribe: {:.2} s for all = {rate:.0} connections/s ({concurrency} at once); per connection {}",
        connect_time.as_secs_f64(),
        latency_line(&latency)
    ));
    if let (Some(t), Some(r)) = (ready_99, rate_99) {
        report.line(format!(
            "the first 99% were subscribed after {:.2} s = {r:.0} connections/s",
            t.as_secs_f64()
        ));
    }
    if latency.max() >= 900_000_000 {
        report.line(SYN_RETRANSMIT_NOTE);
    }
    report.line(format!(
        "held {:.1} s: {still_open} still open, {} pings answered",
        hold.as_secs_f64(),
        shared.pings.get()
    ));
    match (rss_before, rss_connected, rss_after, per_conn) {
        (Some(b), Some(c), Some(a), Some(per)) => report.line(format!(
            "server RSS: {:.1} MiB before, {:.1} MiB connected, {:.1} MiB after holding = {:.2} KiB per connection",
            b as f64 / 1024.0,
            c as f64 / 1024.0,
            a as f64 / 1024.0,
            per / 1024.0
        )),
        _ if pids.is_empty() => report.line("server RSS: not measured (pass --server-pid)"),
        _ => report.line("server RSS: could not read /proc/PID/status"),
    }
    report.line(format!("errors: {}", shared.errors.line()));
    report.line(format!("close codes: {}", shared.closes.line()));
    for line in connect_usage.lines() {
        report.line(format!("while connecting, {line}"));
    }
    if let Some(e) = shared.setup.first_error.borrow().as_ref() {
        report.line(format!("first setup error: {e}"));
    }
    if ready < n {
        report.fail(format!("{} of {n} connections failed", n - ready));
    }
    if still_open < ready {
        report.fail(format!("{} connections closed while idle", ready - still_open));
    }
    if shared.errors.total() > 0 {
        report.fail(format!("errors: {}", shared.errors.line()));
    }
    if shared.closes.total() > 0 {
        report.fail(format!("server closed connections: {}", shared.closes.line()));
    }
    drop(latency);
    Ok(report)
}
