//! Measurements shared by the scenarios (histograms, counters, CPU windows, event-loop lag)
//! and the report every scenario returns: a human summary plus one JSON object.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::sys;

/// Tester CPU above this share of one core means the numbers may be the tester's limit.
pub const SATURATION_CPU_PCT: f64 = 90.0;

/// A latency histogram in nanoseconds (1 ns .. 1 h, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// Percentiles of a nanosecond histogram, in microseconds.
pub fn latency_json(h: &Histogram<u64>) -> Value {
    let us = |ns: u64| (ns as f64 / 1000.0 * 10.0).round() / 10.0;
    if h.is_empty() {
        return json!({"count": 0});
    }
    json!({
        "count": h.len(),
        "p50_us": us(h.value_at_quantile(0.50)),
        "p90_us": us(h.value_at_quantile(0.90)),
        "p99_us": us(h.value_at_quantile(0.99)),
        "p99_9_us": us(h.value_at_quantile(0.999)),
        "max_us": us(h.max()),
        "mean_us": us(h.mean() as u64),
    })
}

/// `p50 0.31 ms, p90 …` for the human summary.
pub fn latency_line(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    let ms = |ns: u64| ns as f64 / 1e6;
    format!(
        "p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({} samples)",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.len()
    )
}

/// Named counters (error kinds, close codes).
#[derive(Debug, Default)]
pub struct Counters(RefCell<BTreeMap<String, u64>>);

impl Counters {
    pub fn add(&self, name: impl Into<String>) {
        *self.0.borrow_mut().entry(name.into()).or_default() += 1;
    }

    pub fn total(&self) -> u64 {
        self.0.borrow().values().sum()
    }

    pub fn json(&self) -> Value {
        Value::Object(self.0.borrow().iter().map(|(k, v)| (k.clone(), json!(v))).collect())
    }

    pub fn line(&self) -> String {
        let map = self.0.borrow();
        if map.is_empty() {
            return "none".into();
        }
        map.iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Measures how long the event loop is busy: every 5 ms a probe task yields and records how
/// long it takes to be polled again, i.e. how long the tasks and I/O already ready ahead of it
/// keep the single thread busy. Large values mean the tester's own queueing is part of its
/// measurements (timer granularity does not enter: the probe is woken by the yield, not a timer).
pub struct LagMonitor {
    hist: Rc<RefCell<Histogram<u64>>>,
    stop: CancellationToken,
}

impl LagMonitor {
    pub fn start() -> Self {
        let hist = Rc::new(RefCell::new(histogram()));
        let stop = CancellationToken::new();
        let (h, s) = (hist.clone(), stop.clone());
        tokio::task::spawn_local(async move {
            while !s.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let yielded = Instant::now();
                tokio::task::yield_now().await;
                h.borrow_mut()
                    .saturating_record(yielded.elapsed().as_nanos().max(1) as u64);
            }
        });
        Self { hist, stop }
    }

    /// (p99, max) lateness.
    pub fn finish(self) -> (Duration, Duration) {
        self.stop.cancel();
        let h = self.hist.borrow();
        if h.is_empty() {
            return (Duration::ZERO, Duration::ZERO);
        }
        (
            Duration::from_nanos(h.value_at_quantile(0.99)),
            Duration::from_nanos(h.max()),
        )
    }
}

/// CPU use of the tester and of the given server processes over a window.
pub struct CpuWindow {
    wall: Instant,
    own: Duration,
    servers: Vec<(u32, Option<Duration>)>,
    machine: Option<(Duration, Duration)>,
    listen_overflows: Option<u64>,
    lag: LagMonitor,
}

/// The result of a [`CpuWindow`].
pub struct CpuUsage {
    /// How long the window lasted.
    pub wall: Duration,
    pub tester_pct: f64,
    pub lag_p99: Duration,
    pub lag_max: Duration,
    pub servers: Vec<(u32, Option<f64>, Option<u64>)>,
    /// Busy CPU of the whole machine, in % of one core (all processes, all cores).
    pub machine_pct: Option<f64>,
    /// Connections the kernel dropped because an accept queue was full (machine-wide).
    pub listen_overflows: Option<u64>,
}

impl CpuWindow {
    pub fn start(server_pids: &[u32]) -> Self {
        Self {
            wall: Instant::now(),
            own: sys::own_cpu_time(),
            servers: server_pids.iter().map(|&p| (p, sys::process_cpu_time(p))).collect(),
            machine: sys::machine_cpu_time(),
            listen_overflows: sys::listen_overflows(),
            lag: LagMonitor::start(),
        }
    }

    pub fn finish(self) -> CpuUsage {
        let wall = self.wall.elapsed().max(Duration::from_micros(1));
        let pct = |d: Duration| d.as_secs_f64() / wall.as_secs_f64() * 100.0;
        let tester_pct = pct(sys::own_cpu_time().saturating_sub(self.own));
        let servers = self
            .servers
            .iter()
            .map(|&(pid, before)| {
                let cpu = before
                    .zip(sys::process_cpu_time(pid))
                    .map(|(b, a)| pct(a.saturating_sub(b)));
                (pid, cpu, sys::rss_kb(pid))
            })
            .collect();
        let (lag_p99, lag_max) = self.lag.finish();
        let machine_pct = self
            .machine
            .zip(sys::machine_cpu_time())
            .map(|((busy0, _), (busy1, _))| pct(busy1.saturating_sub(busy0)));
        let listen_overflows = self
            .listen_overflows
            .zip(sys::listen_overflows())
            .map(|(before, after)| after.saturating_sub(before));
        CpuUsage {
            wall,
            machine_pct,
            listen_overflows,
            tester_pct,
            lag_p99,
            lag_max,
            servers,
        }
    }
}

impl CpuUsage {
    pub fn saturated(&self) -> bool {
        self.tester_pct >= SATURATION_CPU_PCT
    }

    pub fn tester_json(&self) -> Value {
        json!({
            "cpu_pct": round1(self.tester_pct),
            "saturated": self.saturated(),
            "loop_lag_p99_us": self.lag_p99.as_micros() as u64,
            "loop_lag_max_us": self.lag_max.as_micros() as u64,
        })
    }

    /// CPU used by everything but the tester and the listed servers, in % of one core: other
    /// load on the machine that competed with the measurement.
    pub fn other_pct(&self) -> Option<f64> {
        let servers: f64 = self.servers.iter().filter_map(|(_, cpu, _)| *cpu).sum();
        self.machine_pct.map(|m| (m - self.tester_pct - servers).max(0.0))
    }

    pub fn machine_json(&self) -> Value {
        json!({
            "cpus": sys::cpu_count(),
            "busy_pct_of_one_core": self.machine_pct.map(round1),
            "other_processes_pct_of_one_core": self.other_pct().map(round1),
            "listen_overflows": self.listen_overflows,
        })
    }

    /// Server CPU time (all listed processes, Redis included if listed) per unit of work, in µs:
    /// the cost of one event whatever the rate, comparable across machines' core counts.
    pub fn server_cpu_us_per(&self, units: u64) -> Option<f64> {
        if units == 0 || self.servers.is_empty() {
            return None;
        }
        let pct: Option<f64> = self.servers.iter().map(|(_, cpu, _)| *cpu).sum();
        pct.map(|p| p / 100.0 * self.wall.as_secs_f64() * 1e6 / units as f64)
    }

    pub fn servers_json(&self) -> Value {
        Value::Array(
            self.servers
                .iter()
                .map(|(pid, cpu, rss)| json!({"pid": pid, "cpu_pct": cpu.map(round1), "rss_kb": rss}))
                .collect(),
        )
    }

    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "tester: {:.0}% of one core, event-loop delay p99 {:.2} ms / max {:.2} ms{}",
            self.tester_pct,
            self.lag_p99.as_secs_f64() * 1e3,
            self.lag_max.as_secs_f64() * 1e3,
            if self.saturated() {
                "  SATURATED (numbers may be the tester's limit)"
            } else {
                ""
            }
        )];
        if let (Some(machine), Some(other)) = (self.machine_pct, self.other_pct()) {
            out.push(format!(
                "machine: {machine:.0}% of one core busy over {} CPUs; other processes {other:.0}%{}",
                sys::cpu_count(),
                if other >= 20.0 {
                    "  (OTHER LOAD competed with this measurement)"
                } else {
                    ""
                }
            ));
        }
        if let Some(drops) = self.listen_overflows.filter(|&d| d > 0) {
            out.push(format!(
                "kernel: {drops} connection attempts dropped because an accept queue was full (ListenOverflows)"
            ));
        }
        for (pid, cpu, rss) in &self.servers {
            out.push(format!(
                "server pid {pid}: CPU {}, RSS {}",
                cpu.map(|c| format!("{c:.0}% of one core"))
                    .unwrap_or_else(|| "?".into()),
                rss.map(|r| format!("{:.1} MiB", r as f64 / 1024.0))
                    .unwrap_or_else(|| "?".into())
            ));
        }
        out
    }
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// What a scenario returns.
pub struct Report {
    pub scenario: &'static str,
    pub fields: Map<String, Value>,
    pub lines: Vec<String>,
    /// Reasons the run is not clean (what --strict fails on).
    pub failures: Vec<String>,
}

impl Report {
    pub fn new(scenario: &'static str) -> Self {
        let mut fields = Map::new();
        fields.insert("scenario".into(), scenario.into());
        Self {
            scenario,
            fields,
            lines: Vec::new(),
            failures: Vec::new(),
        }
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.fields.insert(key.to_owned(), value.into());
    }

    pub fn line(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    pub fn fail(&mut self, reason: impl Into<String>) {
        self.failures.push(reason.into());
    }

    /// Human summary (to stdout, or stderr when `json`), then the JSON line on stdout.
    pub fn print(&mut self, json: bool) {
        self.set("clean", self.failures.is_empty());
        self.set("failures", self.failures.clone());
        let mut text = format!("== {} ==\n", self.scenario);
        for line in &self.lines {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
        if self.failures.is_empty() {
            text.push_str("  result: clean\n");
        } else {
            text.push_str(&format!("  result: NOT CLEAN: {}\n", self.failures.join("; ")));
        }
        if json {
            eprint!("{text}");
            println!("{}", Value::Object(self.fields.clone()));
        } else {
            print!("{text}");
        }
    }
}
