//! `connect`: new connections per second, each subscribing to a private channel with a signed
//! `auth` (HMAC over `socket_id:channel`) before closing again. Measures the connect + auth rate.
//! With `--signin` each connection first signs in (`pusher:signin`, HMAC over
//! `socket_id::user::user_data`) and waits for `signin_success`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::Ctx;
use crate::cli::ConnectArgs;
use crate::pusher::{Client, ClientError};
use crate::report::{histogram, latency_json, latency_line, round1, round3, Counters, CpuWindow, Report};

const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Distinct user ids the connections sign in as (round-robin), so users have several sockets.
const SIGNIN_USERS: u64 = 1000;

struct Shared {
    started: Cell<u64>,
    completed: Cell<u64>,
    alive: Cell<usize>,
    errors: Counters,
    first_error: RefCell<Option<String>>,
    established: RefCell<Histogram<u64>>,
    subscribed: RefCell<Histogram<u64>>,
    signed_in: RefCell<Histogram<u64>>,
}

async fn worker(ctx: Rc<Ctx>, shared: Rc<Shared>, channels: Rc<[String]>, deadline: Instant, args: ConnectArgs) {
    let cap = args.connections;
    loop {
        if Instant::now() >= deadline || cap.is_some_and(|cap| shared.started.get() >= cap) {
            break;
        }
        let index = shared.started.get();
        shared.started.set(index + 1);
        let channel = &channels[index as usize % channels.len()];
        let t0 = Instant::now();
        let attempt = async {
            let mut client = Client::open(&ctx.dialer, ctx.endpoint(index as usize), &ctx.common.key).await?;
            let established = t0.elapsed();
            let mut signed_in = None;
            if args.signin {
                let user_data = format!("{{\"id\":\"{}-u{}\"}}", ctx.prefix, index % SIGNIN_USERS);
                let auth = ctx.signin_auth(&client.socket_id, &user_data);
                client.signin(&auth, &user_data).await?;
                client.wait_signed_in(SUBSCRIBE_TIMEOUT).await?;
                signed_in = Some(t0.elapsed());
            }
            let auth = ctx.private_auth(&client.socket_id, channel);
            client.subscribe(channel, Some(&auth), None).await?;
            client.wait_subscribed(channel, SUBSCRIBE_TIMEOUT, |_| {}).await?;
            Ok::<_, ClientError>((client, established, signed_in))
        };
        match attempt.await {
            Ok((client, established, signed_in)) => {
                let subscribed = t0.elapsed();
                if let Some(signed_in) = signed_in {
                    shared
                        .signed_in
                        .borrow_mut()
                        .saturating_record(signed_in.as_nanos().max(1) as u64);
                }
                shared
                    .established
                    .borrow_mut()
                    .saturating_record(established.as_nanos().max(1) as u64);
                shared
                    .subscribed
                    .borrow_mut()
                    .saturating_record(subscribed.as_nanos().max(1) as u64);
                shared.completed.set(shared.completed.get() + 1);
                client.close(Duration::from_secs(1)).await;
            }
            Err(e) => {
                shared.errors.add(e.kind());
                shared.first_error.borrow_mut().get_or_insert_with(|| e.to_string());
                // Do not spin on a server that refuses connections.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    shared.alive.set(shared.alive.get() - 1);
}

pub async fn run(ctx: Rc<Ctx>, args: ConnectArgs) -> Result<Report, String> {
    let duration = ctx.duration(Duration::from_secs(5));
    let concurrency = ctx.concurrency(64);
    let c = args.channels.max(1);
    ctx.check_fds(concurrency as u64)?;
    let channels: Rc<[String]> = (0..c)
        .map(|i| format!("private-{}-connect-{i}", ctx.prefix))
        .collect::<Vec<_>>()
        .into();
    let shared = Rc::new(Shared {
        started: Cell::new(0),
        completed: Cell::new(0),
        alive: Cell::new(concurrency),
        errors: Counters::default(),
        first_error: RefCell::new(None),
        established: RefCell::new(histogram()),
        subscribed: RefCell::new(histogram()),
        signed_in: RefCell::new(histogram()),
    });
    let steps = if args.signin {
        "connect → signin → private subscribe → close"
    } else {
        "connect → private subscribe → close"
    };
    ctx.log(&format!(
        "connect: {concurrency} concurrent {steps} loops against {} for {:.1} s",
        ctx.urls().join(", "),
        duration.as_secs_f64()
    ));
    let window = CpuWindow::start(&ctx.common.server_pid);
    let start = Instant::now();
    let deadline = start + duration;
    for _ in 0..concurrency {
        tokio::task::spawn_local(worker(
            ctx.clone(),
            shared.clone(),
            channels.clone(),
            deadline,
            args.clone(),
        ));
    }
    while shared.alive.get() > 0 && start.elapsed() < duration + SUBSCRIBE_TIMEOUT + Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    let usage = window.finish();
    let completed = shared.completed.get();
    let rate = completed as f64 / elapsed.as_secs_f64();

    let established = shared.established.borrow();
    let subscribed = shared.subscribed.borrow();
    let signed_in = shared.signed_in.borrow();
    let mut report = Report::new("connect");
    report.set("signin", args.signin);
    report.set("urls", ctx.urls());
    report.set("concurrency", concurrency);
    report.set("channels", c);
    report.set("duration_s", round3(elapsed.as_secs_f64()));
    report.set("attempted", shared.started.get());
    report.set("completed", completed);
    report.set("connections_per_s", round1(rate));
    report.set("established_latency", latency_json(&established));
    report.set("subscribed_latency", latency_json(&subscribed));
    if args.signin {
        report.set("signed_in_latency", latency_json(&signed_in));
    }
    report.set("errors", shared.errors.json());
    report.set("tester", usage.tester_json());
    report.set("servers", usage.servers_json());
    report.set("machine", usage.machine_json());

    report.line(format!(
        "connect: {concurrency} concurrent loops of {steps} (signed auth), via {}",
        ctx.urls().join(", ")
    ));
    report.line(format!(
        "{completed} of {} connections subscribed in {:.2} s = {rate:.0} connections/s",
        shared.started.get(),
        elapsed.as_secs_f64()
    ));
    report.line(format!(
        "connect → connection_established: {}",
        latency_line(&established)
    ));
    if args.signin {
        report.line(format!("connect → signin_success: {}", latency_line(&signed_in)));
    }
    report.line(format!(
        "connect → subscription_succeeded: {}",
        latency_line(&subscribed)
    ));
    if established.max() >= 900_000_000 {
        report.line(super::SYN_RETRANSMIT_NOTE);
    }
    report.line(format!("errors: {}", shared.errors.line()));
    for line in usage.lines() {
        report.line(line);
    }
    if let Some(e) = shared.first_error.borrow().as_ref() {
        report.line(format!("first error: {e}"));
    }
    if completed == 0 {
        report.fail("no connection completed");
    }
    if shared.errors.total() > 0 {
        report.fail(format!("errors: {}", shared.errors.line()));
    }
    drop(established);
    drop(subscribed);
    drop(signed_in);
    Ok(report)
}
