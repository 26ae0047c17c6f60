//! The scenarios and what they share: endpoints, the dialer, the REST client, setup tracking.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::cli::{Cli, Common, Scenario};
use crate::net::{Dialer, Endpoint, RestClient};
use crate::report::{Counters, Report};

pub mod churn;
pub mod connect;
pub mod fanout;
pub mod idle;

/// File descriptors kept free for the runtime, REST connections and stdio.
const FD_RESERVE: u64 = 64;

/// Everything a scenario needs to reach the servers.
pub struct Ctx {
    pub common: Common,
    pub ws: Vec<Endpoint>,
    pub rest: RestClient,
    pub dialer: Dialer,
    pub prefix: String,
    pub fd_limit: u64,
}

impl Ctx {
    fn new(common: Common, fd_limit: u64) -> Result<Self, String> {
        if common.url.is_empty() {
            return Err("--url needs at least one ws:// URL".into());
        }
        let ws = common
            .url
            .iter()
            .map(|u| Endpoint::parse(u.trim(), &["ws", "http"]))
            .collect::<Result<Vec<_>, _>>()?;
        let rest_endpoint = Endpoint::parse(common.rest.trim(), &["http", "ws"])?;
        let rest = RestClient::new(rest_endpoint, &common.app_id, &common.key, &common.secret);
        let dialer = Dialer::new(common.source_ips.clone().map(|s| s.0).unwrap_or_default());
        let prefix = common
            .prefix
            .clone()
            .unwrap_or_else(|| format!("lt-{}", std::process::id()));
        Ok(Self {
            common,
            ws,
            rest,
            dialer,
            prefix,
            fd_limit,
        })
    }

    /// The WebSocket node for connection `i` (round-robin).
    pub fn endpoint(&self, i: usize) -> &Endpoint {
        &self.ws[i % self.ws.len()]
    }

    pub fn urls(&self) -> Vec<String> {
        self.ws.iter().map(|e| e.url.clone()).collect()
    }

    /// Refuse to start when `connections` sockets cannot be open at once.
    pub fn check_fds(&self, connections: u64) -> Result<(), String> {
        if connections + FD_RESERVE > self.fd_limit {
            return Err(format!(
                "{connections} connections need about {} file descriptors, but this process may open {} \
                 (RLIMIT_NOFILE, already raised to the hard limit): lower the count or raise the hard limit",
                connections + FD_RESERVE,
                self.fd_limit
            ));
        }
        Ok(())
    }

    pub fn concurrency(&self, default: usize) -> usize {
        self.common.concurrency.unwrap_or(default).max(1)
    }

    pub fn duration(&self, default: Duration) -> Duration {
        self.common.duration.unwrap_or(default)
    }

    /// Progress messages go to stderr.
    pub fn log(&self, message: &str) {
        eprintln!("[ferrocast-loadtest] {message}");
    }

    /// Auth for a private channel: `key:HMAC(secret, socket_id:channel)`.
    pub fn private_auth(&self, socket_id: &str, channel: &str) -> String {
        let to_sign = ferrocast_protocol::signature::channel_string_to_sign(socket_id, channel, None);
        format!(
            "{}:{}",
            self.common.key,
            ferrocast_protocol::signature::sign(&self.common.secret, &to_sign)
        )
    }

    /// Auth for a user sign-in: `key:HMAC(secret, socket_id::user::user_data)`.
    pub fn signin_auth(&self, socket_id: &str, user_data: &str) -> String {
        let to_sign = ferrocast_protocol::signature::user_string_to_sign(socket_id, user_data);
        format!(
            "{}:{}",
            self.common.key,
            ferrocast_protocol::signature::sign(&self.common.secret, &to_sign)
        )
    }

    /// Auth for a presence channel: `key:HMAC(secret, socket_id:channel:channel_data)`.
    pub fn presence_auth(&self, socket_id: &str, channel: &str, channel_data: &str) -> String {
        let to_sign = ferrocast_protocol::signature::channel_string_to_sign(socket_id, channel, Some(channel_data));
        format!(
            "{}:{}",
            self.common.key,
            ferrocast_protocol::signature::sign(&self.common.secret, &to_sign)
        )
    }
}

/// Counts connections that finished their setup (subscribed) or failed it.
#[derive(Debug, Default)]
pub struct Setup {
    pub ready: Cell<usize>,
    pub failed: Cell<usize>,
    pub first_error: std::cell::RefCell<Option<String>>,
    /// When 99% of the connections were ready (measured by [`wait`](Self::wait)).
    pub ready_99: Cell<Option<Duration>>,
}

impl Setup {
    pub fn ok(&self) {
        self.ready.set(self.ready.get() + 1);
    }

    pub fn fail(&self, error: &dyn std::fmt::Display) {
        self.failed.set(self.failed.get() + 1);
        let mut first = self.first_error.borrow_mut();
        if first.is_none() {
            *first = Some(error.to_string());
        }
    }

    /// A connection's setup failed: count it under `setup_<kind>` and as one fewer alive.
    pub fn connection_failed(&self, error: &crate::pusher::ClientError, errors: &Counters, alive: &Cell<usize>) {
        errors.add(format!("setup_{}", error.kind()));
        self.fail(error);
        alive.set(alive.get() - 1);
    }

    /// Wait until `n` connections are ready or failed (or `timeout`), logging progress.
    /// Returns the time it took.
    pub async fn wait(&self, ctx: &Ctx, n: usize, timeout: Duration) -> Duration {
        let start = Instant::now();
        let mut last_log = start;
        while self.ready.get() + self.failed.get() < n && start.elapsed() < timeout {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if self.ready_99.get().is_none() && self.ready.get() * 100 >= n * 99 {
                self.ready_99.set(Some(start.elapsed()));
            }
            if last_log.elapsed() >= Duration::from_secs(2) {
                last_log = Instant::now();
                ctx.log(&format!(
                    "  {} of {n} connections ready, {} failed",
                    self.ready.get(),
                    self.failed.get()
                ));
            }
        }
        let elapsed = start.elapsed();
        if self.ready_99.get().is_none() && self.ready.get() * 100 >= n * 99 {
            self.ready_99.set(Some(elapsed));
        }
        elapsed
    }
}

/// Printed when some connection took about a second or more to open: the first TCP SYN
/// retransmission happens after 1 s, so such outliers usually mean dropped SYNs.
pub const SYN_RETRANSMIT_NOTE: &str = "note: some connections took ≥ 1 s to open, the TCP SYN retransmit time: \
     SYNs were probably dropped (server listen backlog full: see `nstat -az TcpExtListenOverflows`)";

/// Time allowed for setting up `n` connections.
pub fn setup_timeout(n: usize) -> Duration {
    Duration::from_secs(30) + Duration::from_millis(n as u64 * 5)
}

/// Run the chosen scenario.
pub async fn run(cli: Cli, fd_limit: u64) -> Result<Report, String> {
    let ctx = Rc::new(Ctx::new(cli.common, fd_limit)?);
    match cli.scenario {
        Scenario::Fanout(args) => fanout::run(ctx, args, false).await,
        Scenario::Cluster(args) => fanout::run(ctx, args, true).await,
        Scenario::Idle(args) => idle::run(ctx, args).await,
        Scenario::Churn(args) => churn::run(ctx, args).await,
        Scenario::Connect(args) => connect::run(ctx, args).await,
    }
}
