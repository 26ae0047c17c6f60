//! Command line: options common to every scenario, and one subcommand per scenario.

use std::net::Ipv4Addr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Load tester for Pusher Channels (protocol v7) servers.
///
/// Speaks only the public protocol (WebSocket and signed REST), so it runs against any
/// Pusher-compatible server. Each scenario prints a human summary; with --json, one JSON line
/// with every number on stdout (the summary then goes to stderr).
#[derive(Debug, Parser)]
#[command(name = "ferrocast-loadtest", version)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Clone, Args)]
pub struct Common {
    /// WebSocket node URLs, comma separated; connections are spread over them round-robin.
    #[arg(long, global = true, value_delimiter = ',', default_value = "ws://127.0.0.1:6001")]
    pub url: Vec<String>,
    /// Node that receives the REST calls (publishes, presence checks).
    #[arg(long, global = true, default_value = "http://127.0.0.1:6001")]
    pub rest: String,
    #[arg(long, global = true, default_value = "app-id")]
    pub app_id: String,
    #[arg(long, global = true, default_value = "app-key")]
    pub key: String,
    #[arg(long, global = true, default_value = "app-secret")]
    pub secret: String,
    /// How long the measured phase lasts (e.g. 10s, 500ms, 2m); each scenario has its default.
    #[arg(long, global = true, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Print one JSON line with all numbers on stdout (the human summary goes to stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Server process id(s), comma separated: report their RSS (/proc/PID/status) and CPU time.
    #[arg(long, global = true, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Spread client source addresses, e.g. 127.0.0.1-127.0.0.8 or 127.0.0.1,127.0.0.2 (each
    /// address has its own ephemeral port range); sockets bind to them before connecting.
    #[arg(long, global = true, value_parser = parse_source_ips)]
    pub source_ips: Option<SourceIps>,
    /// Connections being opened at once (setup phases and the connect scenario).
    #[arg(long, global = true)]
    pub concurrency: Option<usize>,
    /// Channel name prefix (default: lt-<pid>, so concurrent runs do not share channels).
    #[arg(long, global = true)]
    pub prefix: Option<String>,
    /// Exit with status 1 unless the run was clean: no errors, no unexpected closes and (for
    /// fan-out) a delivery ratio of exactly 1.0.
    #[arg(long, global = true)]
    pub strict: bool,
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// N subscribers over C channels, a REST publisher at a fixed or maximal rate; delivery
    /// ratio, throughput and end-to-end latency.
    Fanout(FanoutArgs),
    /// Subscribers on one node (--url), publisher on another (--rest): fan-out across a cluster.
    Cluster(FanoutArgs),
    /// N idle subscribed connections: connect rate and server memory per connection.
    Idle(IdleArgs),
    /// Presence join/leave cycles (subscribe with channel_data, wait for success, unsubscribe).
    Churn(ChurnArgs),
    /// New connections per second, each subscribing to a private channel with signed auth.
    Connect(ConnectArgs),
}

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Subscriber connections [fanout: 500, cluster: 200].
    #[arg(long)]
    pub subscribers: Option<usize>,
    /// Channels; subscriber i joins channel i % C and events go round-robin over channels.
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Published events per second; 0 = as fast as possible (with --inflight requests in
    /// flight) [fanout: 0, cluster: 200].
    #[arg(long)]
    pub rate: Option<f64>,
    /// REST requests in flight at most (one HTTP/1.1 connection each).
    #[arg(long, default_value_t = 8)]
    pub inflight: usize,
    /// Events per REST call: 1 uses /events, 2..=10 uses /batch_events.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=10))]
    pub batch: u16,
    /// Size of each event's data string (it embeds the send time).
    #[arg(long, default_value_t = 64)]
    pub payload_bytes: usize,
    /// Stop after this many events (default: publish for --duration).
    #[arg(long)]
    pub messages: Option<u64>,
    /// At max rate: pause the publisher while more than this many events per subscriber are
    /// published but not yet received (0 = never pause: a pure flood). Keeps the measured
    /// throughput the sustainable one instead of filling server queues until slow-consumer closes.
    #[arg(long, default_value_t = 64)]
    pub max_backlog: u64,
    /// At a fixed --rate, subscribers read with recvmsg and SO_TIMESTAMPNS to also report the
    /// latency until data reached their socket (without the tester's own queueing); this turns
    /// that off. (Never used at max rate, where it would cost the tester CPU.)
    #[arg(long)]
    pub no_rx_timestamps: bool,
    /// After publishing, wait at most this long for the remaining deliveries.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub drain: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Idle subscribed connections.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Public channels they subscribe to (connection i joins channel i % C).
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Subscribe to presence channels instead (signed `channel_data`, user `lt-user-{i}`, so every
    /// connection is one member): what a held presence member costs (see the server's
    /// per-channel member limit).
    #[arg(long)]
    pub presence: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    /// Connections doing join/leave cycles.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Presence channels (connection i uses channel i % M).
    #[arg(long, default_value_t = 10)]
    pub channels: usize,
    /// Join/leave cycles per second over all connections; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Stop after this many cycles in total (default: run for --duration).
    #[arg(long)]
    pub cycles: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Private channels the new connections subscribe to (round-robin).
    #[arg(long, default_value_t = 100)]
    pub channels: usize,
    /// Stop after this many connections (default: run for --duration).
    #[arg(long)]
    pub connections: Option<u64>,
    /// Sign each connection in (`pusher:signin` as user `{prefix}-u{i % 1000}`, signed like an
    /// app server would) and wait for `signin_success` before subscribing.
    #[arg(long)]
    pub signin: bool,
}

/// Source addresses to bind client sockets to.
#[derive(Debug, Clone)]
pub struct SourceIps(pub Vec<Ipv4Addr>);

/// `10`, `2.5s`, `500ms`, `2m`: a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration '{text}' (e.g. 10s, 500ms, 2m)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("invalid duration '{text}'"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// `127.0.0.1-127.0.0.8`, `127.0.0.1,127.0.0.5` or a single address.
pub fn parse_source_ips(text: &str) -> Result<SourceIps, String> {
    let parse = |s: &str| {
        s.trim()
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("invalid IPv4 address '{s}'"))
    };
    let mut out = Vec::new();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (u32::from(parse(first)?), u32::from(parse(last)?));
                if last < first || last - first > 65_535 {
                    return Err(format!("invalid address range '{part}'"));
                }
                out.extend((first..=last).map(Ipv4Addr::from));
            }
            None => out.push(parse(part)?),
        }
    }
    if out.is_empty() {
        return Err("no source address given".into());
    }
    Ok(SourceIps(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2.5s").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn source_ip_ranges() {
        let ips = parse_source_ips("127.0.0.1-127.0.0.3,127.0.0.9").unwrap().0;
        let expected: Vec<Ipv4Addr> = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.9"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(ips, expected);
        assert!(parse_source_ips("127.0.0.3-127.0.0.1").is_err());
        assert!(parse_source_ips("nope").is_err());
    }

    #[test]
    fn cli_parses_global_options_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "ferrocast-loadtest",
            "fanout",
            "--url",
            "ws://127.0.0.1:1,ws://127.0.0.1:2",
            "--subscribers",
            "20",
            "--json",
        ])
        .unwrap();
        assert_eq!(cli.common.url.len(), 2);
        assert!(cli.common.json);
        match cli.scenario {
            Scenario::Fanout(args) => assert_eq!(args.subscribers, Some(20)),
            other => panic!("unexpected {other:?}"),
        }
    }
}
