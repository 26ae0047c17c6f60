#!/usr/bin/env python3
"""Write docs/benchmarks.md from the results of loadtest/scripts/bench.sh.

Inputs: the JSON lines of the load tester runs ({"bench": name, "result": {...}}), the commands
that produced them, criterion's estimates (target/criterion/**/new/estimates.json) and, when
perf was available, flat profiles. The hand-written part of the existing document between
<!-- analysis:begin --> and <!-- analysis:end --> is carried over unchanged.
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess

BEGIN, END = "<!-- analysis:begin -->", "<!-- analysis:end -->"


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kb = int(line.split()[1])
    except OSError:
        pass
    commit = sh("git", "rev-parse", "--short", "HEAD")
    dirty = " (with uncommitted changes)" if sh("git", "status", "--porcelain", "--untracked-files=no") else ""
    return {
        "nproc": sh("nproc") or str(os.cpu_count()),
        "model": model,
        "mem": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "rustc": sh("rustc", "--version"),
        "redis": sh("redis-server", "--version").split(" sha=")[0],
        "commit": f"{commit}{dirty}" if commit else "?",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def load_results(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                item = json.loads(line)
                out[item["bench"]] = item["result"]
    return out


def fmt_int(x):
    return "–" if x is None else f"{x:,.0f}"


def ms(lat, key):
    if not lat or key not in lat:
        return "–"
    return f"{lat[key] / 1000:.3f}"


def cpu_of(r, tester="tester", servers="servers", mach="machine"):
    t = r.get(tester) or {}
    s = r.get(servers) or []
    m = r.get(mach) or {}
    scpu = sum((x.get("cpu_pct") or 0) for x in s)
    return t, s, m, scpu


def limits(r, tester="tester", servers="servers", mach="machine"):
    """One sentence on what the CPU numbers say limited the run."""
    if not r or "error" in r:
        return "run failed"
    t, s, m, scpu = cpu_of(r, tester, servers, mach)
    ncpu = int(m.get("cpus") or 2)
    busy = m.get("busy_pct_of_one_core")
    other = m.get("other_processes_pct_of_one_core") or 0
    tcpu = t.get("cpu_pct") or 0
    reasons = []
    if t.get("saturated"):
        reasons.append(f"**tester saturated** ({tcpu:.0f}% of its single core)")
    if busy is not None and busy >= 0.9 * ncpu * 100:
        reasons.append(f"**machine CPU full** ({busy:.0f}% of {ncpu * 100}%)")
    if other >= 20:
        reasons.append(f"**other processes** took {other:.0f}% of a core")
    split = f"tester {tcpu:.0f}%, server(s) {scpu:.0f}%, other {other:.0f}% (of one core; {ncpu} cores)"
    lag = t.get("loop_lag_p99_us")
    if lag is not None:
        split += f"; tester event-loop delay p99 {lag / 1000:.2f} ms"
    if not reasons:
        reasons.append("neither tester nor CPU saturated")
    return "; ".join(reasons) + f" — {split}"


def status(ok):
    if ok is None:
        return "not measured"
    return "**met**" if ok else "**not met**"


def criterion_rows(root):
    rows = []
    if not root or not os.path.isdir(root):
        return rows
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
            continue
        try:
            with open(os.path.join(dirpath, "estimates.json")) as f:
                est = json.load(f)
            with open(os.path.join(dirpath, "benchmark.json")) as f:
                bench = json.load(f)
        except (OSError, ValueError):
            continue
        mean = est["mean"]["point_estimate"]
        lo = est["mean"]["confidence_interval"]["lower_bound"]
        hi = est["mean"]["confidence_interval"]["upper_bound"]
        elements = (bench.get("throughput") or {}).get("Elements")
        rows.append((bench.get("full_id") or bench.get("title") or dirpath, mean, lo, hi, elements))
    rows.sort()
    return rows


def generic_command(cmd):
    """The command with this run's ports and PIDs replaced by the README's defaults."""
    ports = []
    for port in re.findall(r"127\.0\.0\.1:(\d+)", cmd):
        if port not in ports:
            ports.append(port)
    for i, port in enumerate(ports):
        cmd = cmd.replace(f"127.0.0.1:{port}", f"127.0.0.1:{6001 + i}")
    cmd = re.sub(r"--server-pid [0-9,]+", "--server-pid $SERVER_PID", cmd)
    return cmd.replace(" --source-ips", " \\\n    --source-ips")


def human_time(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.3f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def read(path):
    try:
        with open(path) as f:
            return f.read().rstrip()
    except OSError:
        return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--commands", required=True)
    ap.add_argument("--criterion", default="")
    ap.add_argument("--perf", default="")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    res = load_results(args.results)
    mc = machine()
    previous = read(args.out)
    if BEGIN in previous and END in previous:
        analysis = previous[previous.index(BEGIN) + len(BEGIN): previous.index(END)].strip("\n")
    else:
        analysis = "_Not written yet: read the numbers above._"

    fan = res.get("fanout_500_max") or {}
    fan10 = res.get("fanout_500_max_batch10") or {}
    single = res.get("latency_single") or {}
    clus = res.get("latency_cluster") or {}
    idle = res.get("idle_10k") or {}
    conn = res.get("connect_private") or {}
    signin = res.get("connect_signin") or {}
    churn = res.get("churn_presence") or {}
    chat_max = res.get("chat_redis_max") or {}
    chat_4k = res.get("chat_redis_4000") or {}
    chat_single = res.get("chat_single_max") or {}

    def clean_fanout(r):
        return r.get("delivery_ratio") == 1.0 and not r.get("errors") and not r.get("close_codes")

    candidates = [(r, label) for r, label in ((fan, "/events"), (fan10, "batch_events ×10")) if r.get("delivered_per_s") is not None]
    best = max(candidates, key=lambda c: (clean_fanout(c[0]), c[0]["delivered_per_s"]), default=(None, None))
    best_r, best_label = best

    p99 = lambda r: (r.get("latency") or {}).get("p99_us")  # noqa: E731
    per_conn = idle.get("server_rss_per_connection_bytes")

    goals = [
        (
            "Fan-out, 500 subscribers on one channel, max rate",
            "≥ 400,000 delivered/s, delivery ratio 1.0",
            f"{fmt_int(best_r.get('delivered_per_s'))} /s, ratio {best_r.get('delivery_ratio')} ({best_label})" if best_r else "–",
            status(best_r and best_r["delivered_per_s"] >= 400_000 and clean_fanout(best_r)) if best_r else status(None),
            limits(best_r) if best_r else "–",
        ),
        (
            "Latency, 200 subscribers × 200 publishes/s, one node",
            "p99 < 1.5 ms",
            f"p99 {ms(single.get('latency'), 'p99_us')} ms (p50 {ms(single.get('latency'), 'p50_us')}); at socket arrival p99 {ms(single.get('arrival_latency'), 'p99_us')} ms",
            status(p99(single) < 1500 and clean_fanout(single)) if p99(single) is not None else status(None),
            limits(single),
        ),
        (
            "Latency, same load across a 2-node cluster (Redis)",
            "p99 < 3 ms",
            f"p99 {ms(clus.get('latency'), 'p99_us')} ms (p50 {ms(clus.get('latency'), 'p50_us')}); at socket arrival p99 {ms(clus.get('arrival_latency'), 'p99_us')} ms",
            status(p99(clus) < 3000 and clean_fanout(clus)) if p99(clus) is not None else status(None),
            limits(clus),
        ),
        (
            "Chat-like through Redis: 4,000 channels × 1 subscriber on node A, REST on node B, max rate",
            "≥ 40,000 events per server core-second (both nodes)",
            (f"{fmt_int(1e6 / chat_max['server_cpu_us_per_event'])} /core-s "
             f"({chat_max['server_cpu_us_per_event']:.1f} µs per event, {fmt_int(chat_max.get('accepted_per_s'))} events/s); "
             f"one node: {fmt_int(1e6 / chat_single['server_cpu_us_per_event']) if chat_single.get('server_cpu_us_per_event') else '–'} /core-s")
            if chat_max.get("server_cpu_us_per_event") else "–",
            status(1e6 / chat_max["server_cpu_us_per_event"] >= 40_000 and clean_fanout(chat_max)) if chat_max.get("server_cpu_us_per_event") else status(None),
            limits(chat_max) if chat_max else "–",
        ),
        (
            "Chat-like through Redis at 4,000 events/s",
            "p99 < 1.5 ms",
            f"p99 {ms(chat_4k.get('latency'), 'p99_us')} ms (p50 {ms(chat_4k.get('latency'), 'p50_us')})",
            status(p99(chat_4k) < 1500 and clean_fanout(chat_4k)) if p99(chat_4k) is not None else status(None),
            limits(chat_4k) if chat_4k else "–",
        ),
        (
            "10,000 idle subscribed connections",
            "≤ 8 KiB server RSS each",
            f"{per_conn / 1024:.2f} KiB each" if per_conn is not None else "–",
            status(per_conn <= 8192 and idle.get("connected") == idle.get("connections")) if per_conn is not None else status(None),
            "server memory per connection (not a CPU limit)",
        ),
        (
            "New connections/s, each subscribing to a private channel",
            "≥ 5,000 /s",
            f"{fmt_int(conn.get('connections_per_s'))} /s",
            status(conn.get("connections_per_s", 0) >= 5000 and not conn.get("errors")) if conn.get("connections_per_s") is not None else status(None),
            limits(conn),
        ),
        (
            "New connections/s with sign-in: connect, `pusher:signin`, private subscribe",
            "≥ 5,000 /s",
            f"{fmt_int(signin.get('connections_per_s'))} /s",
            status(signin.get("connections_per_s", 0) >= 5000 and not signin.get("errors")) if signin.get("connections_per_s") is not None else status(None),
            limits(signin),
        ),
    ]

    L = []
    w = L.append
    w("# Benchmarks")
    w("")
    w(f"Generated by `make bench` (`loadtest/scripts/bench.sh`) on {mc['date']}, commit {mc['commit']}. "
      "Every number below is from that run; rerun it to refresh them (the analysis section is hand-written "
      "and kept across runs — check it still matches).")
    w("")
    w("## Machine")
    w("")
    w(f"- CPU: {mc['nproc']} × {mc['model']} (`nproc` = {mc['nproc']})")
    w(f"- Memory: {mc['mem']}")
    w(f"- Kernel {mc['kernel']}; {mc['rustc']}; {mc['redis'] or 'redis-server ?'}")
    w("- The load tester, the node(s) and Redis all run on this one machine and share its cores, "
      "so every figure is a whole-system figure. Each result records the CPU used by the tester, "
      "by the server process(es) and by any **other** process during the measurement. Before each run the "
      "script waits for the machine to be quiet (at most 25% of one core busy); a scenario during which other "
      "processes used more than that is measured again (3 attempts at most, the last one is kept and its "
      "*other* figure shows it).")
    w("")
    w("## Goals and where we stand")
    w("")
    w("| goal | target | measured | status | what limited it (CPU split over the measurement) |")
    w("|---|---|---|---|---|")
    for g in goals:
        w("| " + " | ".join(g) + " |")
    w("")
    w("## Method")
    w("")
    w("- **Tester**: `ferrocast-loadtest` (this repository, `loadtest/`), one single-threaded tokio runtime; "
      "it speaks only the public protocol (WebSocket `/app/{key}` + signed REST), so the same runs work "
      "against soketi or sockudo. It reports its own CPU time (getrusage) and event-loop delay, and flags "
      "itself SATURATED above 90% of one core — a saturated tester means the figure is the tester's limit. "
      "Client sockets are spread over source addresses 127.0.0.1–127.0.0.8.")
    w("- **Nodes**: the release `ferrocast` binary started per scenario on free ports with a temporary TOML "
      "(memory backplane; `max_queued_frames` 16384 for the max-rate fan-out, default 4096 otherwise). "
      "The cluster case runs a throw-away `redis-server` and two nodes with `driver = \"redis\"`.")
    w("- **Fan-out at max rate**: 500 subscribers on one public channel; the publisher keeps 8 REST requests "
      "in flight and pauses while more than 64 events per subscriber are published but not yet received, "
      "so the figure is the sustained delivery rate with nothing dropped (a pure flood, `--max-backlog 0`, "
      "only fills server queues until slow consumers are closed with 4100). Delivered/s = messages received "
      "by all subscribers / time to the last delivery; the *paused* column counts how often the publisher "
      "waited for deliveries (0 means the REST round trip, not delivery, limited the publish rate). Run once with `/events` (1 event per request, 32 requests "
      "in flight) and once with `/batch_events` (10 events per request, 8 in flight).")
    w("- **Latency**: each event's `data` embeds its send time (ns, CLOCK_REALTIME) taken just before the REST "
      "request is written; latency = receive time − send time for every delivery, so it includes REST "
      "handling, fan-out, the socket write and the tester's own read (hdrhistogram, all deliveries counted). "
      "200 subscribers on one channel, 200 events/s (40,000 deliveries/s), open loop. Two diagnostics per event: "
      "the latency of its *first* delivery (publish path + one socket write + one tester read) and its *spread*, "
      "the time from its first to its last subscriber (the server writing 200 sockets and the tester reading them, "
      "on the same 2 cores). And the *arrival* latency: the same measurement taken at the kernel receive "
      "timestamp of the subscriber's socket (`SO_TIMESTAMPNS` via `recvmsg`; on loopback ≈ when the server's write "
      "completed), which leaves out the tester's own queueing. All times in ms.")
    w("- **Idle**: 10,000 connections, each subscribed to one of 100 public channels; server RSS (VmRSS) is "
      "read before connecting and after holding them idle (1 s settle + the hold), per connection = growth / "
      "connections. Connect rate = connections / time until all are subscribed (256 opening at once).")
    w("- **Connect**: 64 concurrent loops of TCP connect → WebSocket handshake → `connection_established` → "
      "`pusher:subscribe` to a private channel with a signed `auth` → `subscription_succeeded` → close.")
    w("- **Churn** (informational, no goal): presence subscribe with `channel_data` → `subscription_succeeded` → "
      "unsubscribe, as fast as possible on 100 connections over 10 channels; afterwards the REST API must "
      "list no member.")
    w("")
    w("## Results")
    w("")
    w("### Fan-out: 500 subscribers, one channel, max rate")
    w("")
    w("| publish | accepted events/s | delivered/s | delivery ratio | latency p50 / p99 / max (ms) | REST round trip p50 (ms) | publisher paused for backlog | errors | close codes | CPU: tester / server / other (% of a core) |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for r in (fan, fan10):
        if not r:
            continue
        label = ("/events" if r.get("batch", 1) == 1 else f"/batch_events ×{r.get('batch')}") + f", {r.get('inflight')} in flight"
        t, s, m, scpu = cpu_of(r)
        lat = r.get("latency")
        w(f"| {label} | {fmt_int(r.get('accepted_per_s'))} | {fmt_int(r.get('delivered_per_s'))} | {r.get('delivery_ratio')} "
          f"| {ms(lat, 'p50_us')} / {ms(lat, 'p99_us')} / {ms(lat, 'max_us')} | {ms(r.get('publish_rtt'), 'p50_us')} "
          f"| {r.get('backlog_pauses')} times | {json.dumps(r.get('errors') or {})} | {json.dumps(r.get('close_codes') or {})} "
          f"| {t.get('cpu_pct')}{' SATURATED' if t.get('saturated') else ''} / {scpu:.0f} / {m.get('other_processes_pct_of_one_core')} |")
    w("")
    w("### Latency: 200 subscribers × 200 events/s")
    w("")
    w("| setup | delivered/s | ratio | p50 | p90 | p99 | p99.9 | max (ms) | arrival at socket p50 / p99 | first delivery p50 / p99 | spread p50 / p99 | REST round trip p50 / p99 | CPU: tester / servers / other | tester loop delay p99 (ms) |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r, label in ((single, "one node"), (clus, "2 nodes + Redis: subscribers on A, publisher on B")):
        if not r:
            continue
        t, s, m, scpu = cpu_of(r)
        lat = r.get("latency")
        w(f"| {label} | {fmt_int(r.get('delivered_per_s'))} | {r.get('delivery_ratio')} | {ms(lat, 'p50_us')} | {ms(lat, 'p90_us')} "
          f"| {ms(lat, 'p99_us')} | {ms(lat, 'p99_9_us')} | {ms(lat, 'max_us')} "
          f"| {ms(r.get('arrival_latency'), 'p50_us')} / {ms(r.get('arrival_latency'), 'p99_us')} "
          f"| {ms(r.get('first_delivery_latency'), 'p50_us')} / {ms(r.get('first_delivery_latency'), 'p99_us')} "
          f"| {ms(r.get('fanout_spread'), 'p50_us')} / {ms(r.get('fanout_spread'), 'p99_us')} "
          f"| {ms(r.get('publish_rtt'), 'p50_us')} / {ms(r.get('publish_rtt'), 'p99_us')} "
          f"| {t.get('cpu_pct')} / {scpu:.0f} / {m.get('other_processes_pct_of_one_core')} | {(t.get('loop_lag_p99_us') or 0) / 1000:.2f} |")
    w("")
    w("### Idle connections")
    w("")
    if idle:
        cl = idle.get("connect_latency") or {}
        w(f"- {idle.get('connected')} of {idle.get('connections')} connections subscribed over {idle.get('channels')} channels "
          f"in {idle.get('connect_s')} s = **{fmt_int(idle.get('connect_per_s'))} connections/s** "
          f"(per connection p50 {ms(cl, 'p50_us')} ms, p99 {ms(cl, 'p99_us')} ms, max {ms(cl, 'max_us')} ms); "
          f"the first 99% were subscribed after {idle.get('connect_99pct_s')} s = {fmt_int(idle.get('connect_99pct_per_s'))} /s.")
        drops = (idle.get("machine_connect") or {}).get("listen_overflows")
        if (cl.get("max_us") or 0) >= 900_000 or drops:
            w(f"- The kernel counted {drops} `ListenOverflows` while connecting: connections that took ≥ 1 s waited for "
              "a TCP SYN retransmission because the server's accept queue was full.")
        b, a = idle.get("server_rss_before_kb"), idle.get("server_rss_after_kb")
        if b is not None and a is not None:
            w(f"- Server RSS {b / 1024:.1f} MiB before → {idle.get('server_rss_connected_kb', 0) / 1024:.1f} MiB connected → "
              f"{a / 1024:.1f} MiB after {idle.get('hold_s')} s idle = **{per_conn / 1024:.2f} KiB per connection**.")
        w(f"- Still open after the hold: {idle.get('still_open_after_hold')}; errors {json.dumps(idle.get('errors') or {})}, "
          f"close codes {json.dumps(idle.get('close_codes') or {})}.")
        w(f"- While connecting: {limits(idle, 'tester_connect', 'servers_connect', 'machine_connect')}.")
    w("")
    w("### Connect rate (private-channel auth)")
    w("")
    if conn:
        est, sub = conn.get("established_latency") or {}, conn.get("subscribed_latency") or {}
        w(f"- {fmt_int(conn.get('completed'))} connections in {conn.get('duration_s')} s = **{fmt_int(conn.get('connections_per_s'))} /s** "
          f"({conn.get('concurrency')} concurrent loops); errors {json.dumps(conn.get('errors') or {})}.")
        w(f"- connect → `connection_established` p50 {ms(est, 'p50_us')} ms, p99 {ms(est, 'p99_us')} ms; "
          f"→ `subscription_succeeded` p50 {ms(sub, 'p50_us')} ms, p99 {ms(sub, 'p99_us')} ms.")
        w(f"- {limits(conn)}.")
    w("")
    w("### Connect rate with sign-in (`connect --signin`)")
    w("")
    if signin:
        est, sub = signin.get("established_latency") or {}, signin.get("subscribed_latency") or {}
        w(f"- {fmt_int(signin.get('completed'))} connections in {signin.get('duration_s')} s = **{fmt_int(signin.get('connections_per_s'))} /s** "
          f"({signin.get('concurrency')} concurrent loops, each signing in as one of 1,000 user ids before its private subscribe); "
          f"errors {json.dumps(signin.get('errors') or {})}.")
        w(f"- connect → `connection_established` p50 {ms(est, 'p50_us')} ms, p99 {ms(est, 'p99_us')} ms; "
          f"→ `subscription_succeeded` p50 {ms(sub, 'p50_us')} ms, p99 {ms(sub, 'p99_us')} ms.")
        w(f"- {limits(signin)}.")
    w("")
    w("### Presence churn (informational)")
    w("")
    if churn:
        jl = churn.get("join_latency") or {}
        w(f"- {fmt_int(churn.get('cycles'))} join/leave cycles in {churn.get('duration_s')} s = **{fmt_int(churn.get('cycles_per_s'))} cycles/s** "
          f"on {churn.get('connections')} connections / {churn.get('channels')} channels; subscribe → success p50 "
          f"{ms(jl, 'p50_us')} ms, p99 {ms(jl, 'p99_us')} ms; members left after the run: "
          f"{json.dumps(churn.get('presence_leftover') or [])}; errors {json.dumps(churn.get('errors') or {})}.")
        w(f"- {limits(churn)}.")
    w("")
    w("### Micro-benchmarks (criterion)")
    w("")
    rows = criterion_rows(args.criterion)
    if rows:
        w("| benchmark | mean | 95% CI | per element |")
        w("|---|---|---|---|")
        for name, mean, lo, hi, elements in rows:
            per = f"{human_time(mean / elements)} × {elements:,}" if elements and elements > 1 else ""
            w(f"| `{name}` | {human_time(mean)} | {human_time(lo)} – {human_time(hi)} | {per} |")
        w("")
        w("From `cargo bench -p ferrocast-protocol --bench protocol` and `cargo bench -p ferrocast-broker --bench fanout` "
          "(`crates/protocol/benches/protocol.rs`, `crates/broker/benches/fanout.rs`). The fan-out bench queues one "
          "pre-built frame to 10,000 `ConnectionHandle` queues through `LocalChannels::fan_out_with`; queues are "
          "drained outside the timed section.")
    else:
        w("_No criterion results found (run `make bench`, which runs them first)._")
    w("")
    w("## Profile of the max-rate fan-out (perf)")
    w("")
    if args.perf and os.path.isdir(args.perf):
        w("`perf record -e cpu-clock -F 999 -a` for 4 s in the middle of a separate 8 s max-rate fan-out "
          "(500 subscribers, `/events`, 32 in flight; hardware counters are not available in this VM, so this samples the CPU clock). "
          "Share of all samples per thread name (`tokio-rt-worker` = server workers, `ferrocast-loadt` = tester, "
          "`swapper` = idle):")
        w("")
        w("```")
        w(read(os.path.join(args.perf, "by_comm.txt")) or "(empty)")
        w("```")
        w("")
        w("Share of all samples per binary (`[kernel.kallsyms]` = the kernel, mostly TCP over loopback):")
        w("")
        w("```")
        w(read(os.path.join(args.perf, "by_dso.txt")) or "(empty)")
        w("```")
        w("")
        w("Top symbols in the server process (share of all samples):")
        w("")
        w("```")
        w(read(os.path.join(args.perf, "server_symbols.txt")) or "(empty)")
        w("```")
        w("")
        w("Top symbols in the tester:")
        w("")
        w("```")
        w(read(os.path.join(args.perf, "tester_symbols.txt")) or "(empty)")
        w("```")
    else:
        w("_perf was not available (install `linux-perf`; sampling uses the `cpu-clock` software event)._")
    w("")
    w("## Analysis")
    w("")
    w(BEGIN)
    w(analysis)
    w(END)
    w("")
    w("## Reproduce")
    w("")
    w("```sh")
    w("make bench                     # criterion benches, then loadtest/scripts/bench.sh → this file")
    w("make loadtest-smoke            # tiny run of every scenario; fails unless delivery is exact")
    w("```")
    w("")
    w("By hand, against any Pusher-compatible server (start a node first, e.g. `make run`):")
    w("")
    w("```sh")
    w("cargo build --release -p ferrocast-loadtest")
    for line in read(args.commands).splitlines():
        name, _, cmd = line.partition(": ")
        w(f"# {name}")
        w("./target/release/" + generic_command(cmd))
    w("```")
    w("")
    w("Every scenario prints a human summary, or with `--json` one JSON line with every number; "
      "`--server-pid` adds server CPU and RSS, `--strict` exits 1 unless the run was clean. "
      "`ferrocast-loadtest --help` and `ferrocast-loadtest SCENARIO --help` list all options.")
    w("")
    w("## Raw results")
    w("")
    w("<details><summary>JSON lines of this run</summary>")
    w("")
    w("```json")
    for name, r in res.items():
        w(json.dumps({"bench": name, "result": r}, ensure_ascii=False))
    w("```")
    w("")
    w("</details>")
    w("")

    with open(args.out, "w") as f:
        f.write("\n".join(L))


if __name__ == "__main__":
    main()
