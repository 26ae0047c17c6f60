#!/usr/bin/env bash
# Redis memory per connection, subscribed channel, presence member, replay-log entry and queued
# webhook job (docs/operations.md, "Redis sizing"), measured with the load tester.
#
# One real redis-server and two ferrocast nodes (release binaries; `make build` and
# `cargo build --release -p ferrocast-loadtest` first). Each step holds a load for a few seconds
# and reads Redis `INFO memory` used_memory (median of 3 reads) right before and while it is held;
# the step's delta is the difference. A cost per unit is the slope between two sizes of the same
# load, so fixed costs (a key per app, the tester's own connections) cancel out; webhook jobs are
# costed on the second step, whose lanes (streams, consumer groups) the first one created.
#
#   loadtest/scripts/redis_sizing.sh            # about 2 minutes on 2 cores
#   SCALE=2 loadtest/scripts/redis_sizing.sh    # twice the sizes (needs ulimit -n > 2 × 10k + margin)
#
# Prints one line per step, then the table of costs. Exits non-zero when a step was not clean
# (not every connection subscribed, not every event accepted) or a tool is missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap lt_cleanup EXIT

SCALE="${SCALE:-1}"
HOLD="${HOLD:-4s}"
SOURCE_IPS="127.0.0.1-127.0.0.8"

for tool in redis-server redis-cli python3 curl; do
    command -v "$tool" >/dev/null || { echo "redis_sizing.sh: $tool is required (make redis-deps installs redis-server)" >&2; exit 1; }
done
for bin in "$FERROCAST_BIN" "$LOADTEST_BIN"; do
    [ -x "$bin" ] || { echo "redis_sizing.sh: $bin is missing: cargo build --release -p ferrocast-server -p ferrocast-loadtest" >&2; exit 1; }
done
need_fds=$((10000 * SCALE + 1000))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_fds" ]; then
    echo "redis_sizing.sh: ulimit -n is $(ulimit -n), the largest step needs $need_fds" >&2
    exit 1
fi

# REDIS_SERVER: the redis-server binary (default: the one on PATH).
RPORT=$(lt_free_port)
"${REDIS_SERVER:-redis-server}" --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$LT_TMP" --logfile "$LT_TMP/redis.log" &
LT_PIDS+=("$!")
rcli() { redis-cli -p "$RPORT" "$@"; }
for _ in $(seq 1 100); do rcli ping >/dev/null 2>&1 && break; sleep 0.05; done
rcli ping >/dev/null || { echo "redis-server did not start" >&2; cat "$LT_TMP/redis.log" >&2; exit 1; }

# A port nothing listens on: the webhook app's endpoint refuses, so its jobs stay queued (retried
# for webhooks.retry_window_s, 300 s, far longer than this script).
DEAD_PORT=$(lt_free_port)
PORT=$(lt_free_port)
MPORT=$(lt_free_port)
CFG="$LT_TMP/node.toml"
cat >"$CFG" <<EOF
[server]
host = "127.0.0.1"
port = $PORT
metrics_port = $MPORT
node_id = "sizing-a"
shutdown_grace_s = 1
max_connections_per_ip = 0
max_connection_rate_per_ip = 0

[backplane]
driver = "redis"
url = "redis://127.0.0.1:$RPORT"
prefix = "sz"
# Keep the replay logs for the whole run (the default 30 s would expire them between steps).
replay_log_ttl_s = 600

[[apps]]
id = "app-id"
key = "app-key"
secret = "app-secret"
max_subscription_requests_per_second = 0

# The same, with a webhook endpoint that refuses: every channel_occupied / channel_vacated is a
# job queued in Redis.
[[apps]]
id = "wh-id"
key = "wh-key"
secret = "wh-secret"
max_subscription_requests_per_second = 0

[[apps.webhooks]]
url = "http://127.0.0.1:$DEAD_PORT/webhooks"
events = ["channel_occupied", "channel_vacated"]
EOF
RUST_LOG="${RUST_LOG:-error}" "$FERROCAST_BIN" --config "$CFG" >"$LT_TMP/node.log" 2>&1 &
LT_PIDS+=("$!")
# A second node, for channels with subscribers on two nodes (steps chan*b).
PORT_B=$(lt_free_port)
MPORT_B=$(lt_free_port)
sed -e "s/^port = $PORT\$/port = $PORT_B/" -e "s/^metrics_port = $MPORT\$/metrics_port = $MPORT_B/" \
    -e 's/^node_id = "sizing-a"$/node_id = "sizing-b"/' "$CFG" >"$LT_TMP/node-b.toml"
RUST_LOG="${RUST_LOG:-error}" "$FERROCAST_BIN" --config "$LT_TMP/node-b.toml" >"$LT_TMP/node-b.log" 2>&1 &
LT_PIDS+=("$!")
for mp in "$MPORT" "$MPORT_B"; do
    for _ in $(seq 1 200); do lt_ready "$mp" && break; sleep 0.05; done
    lt_ready "$mp" || { echo "a node did not become ready:" >&2; cat "$LT_TMP"/node*.log >&2; exit 1; }
done

# used_memory, median of 3 reads 200 ms apart (the node's client buffers move a little).
used_memory() {
    local a b c
    a=$(rcli info memory | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}'); sleep 0.2
    b=$(rcli info memory | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}'); sleep 0.2
    c=$(rcli info memory | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}')
    printf '%s\n%s\n%s\n' "$a" "$b" "$c" | sort -n | sed -n 2p
}

# Let Redis settle (a previous step's leaves, lazily freed memory) before a baseline.
settle() { sleep "${1:-1}"; }

RESULTS="$LT_TMP/results"
: >"$RESULTS"
record() { # record STEP UNITS DELTA_BYTES KEYS
    echo "$1 $2 $3 $4" >>"$RESULTS"
    printf '  %-22s units %7s  used_memory delta %11s bytes  keys %7s\n' "$1" "$2" "$3" "$4" >&2
}

# hold STEP UNITS LOADTEST-ARGS...: run `idle` and read used_memory while it holds.
hold() {
    local step="$1" units="$2"
    shift 2
    settle 1
    local before keys_before
    before=$(used_memory)
    keys_before=$(rcli dbsize)
    local out="$LT_TMP/$step.json" err="$LT_TMP/$step.err"
    "$LOADTEST_BIN" idle --url "${URLS:-ws://127.0.0.1:$PORT}" --rest "http://127.0.0.1:$PORT" \
        --source-ips "$SOURCE_IPS" --duration "$HOLD" --json --prefix "sz-$step" "$@" >"$out" 2>"$err" &
    local lt=$!
    local i
    for i in $(seq 1 600); do
        grep -q "connected and subscribed" "$err" 2>/dev/null && break
        kill -0 "$lt" 2>/dev/null || break
        sleep 0.1
    done
    sleep 1.5
    local during keys_during
    during=$(used_memory)
    keys_during=$(rcli dbsize)
    wait "$lt" || { echo "step $step: the load tester failed:" >&2; cat "$err" >&2; exit 1; }
    if [ -n "${AFTER:-}" ]; then
        # What stays once the connections are gone and their leaves confirmed (leave_delay_ms,
        # 3 s): the presence steps' replay-log entries (member_added, member_removed).
        sleep 4
        local after
        after=$(used_memory)
        echo "$step-after $units $((after - before)) $(($(rcli dbsize) - keys_before))" >>"$RESULTS"
        printf '  %-22s units %7s  used_memory delta %11s bytes  (after the connections left)\n' "$step-after" "$units" $((after - before)) >&2
    fi
    python3 - "$out" "$step" <<'PY' || { cat "$LT_TMP/$step.err" >&2; exit 1; }
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
if r["connected"] != r["connections"] or r["errors"] or r["still_open_after_hold"] != r["connections"]:
    sys.exit(f"step {sys.argv[2]}: not clean: {r['connected']}/{r['connections']} connected, errors {r['errors']}, "
             f"{r['still_open_after_hold']} still open after the hold")
PY
    record "$step" "$units" $((during - before)) $((keys_during - keys_before))
}

# publish STEP EVENTS CHANNELS: events that stay in the replay logs.
publish() {
    local step="$1" events="$2" channels="$3"
    settle 1
    local before keys_before
    before=$(used_memory)
    keys_before=$(rcli dbsize)
    local out="$LT_TMP/$step.json"
    "$LOADTEST_BIN" fanout --url "ws://127.0.0.1:$PORT" --rest "http://127.0.0.1:$PORT" \
        --subscribers "$channels" --channels "$channels" --rate 0 --messages "$events" --payload-bytes 64 \
        --json --prefix "sz-$step" >"$out" 2>"$LT_TMP/$step.err" || { cat "$LT_TMP/$step.err" >&2; exit 1; }
    python3 - "$out" "$events" "$step" <<'PY' || exit 1
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
if r["published_events"] != int(sys.argv[2]) or r["publish_errors"]:
    sys.exit(f"step {sys.argv[3]}: published {r['published_events']} of {sys.argv[2]}, {r['publish_errors']} errors")
PY
    # The subscribers are gone: wait for their channels to be vacated (leave_delay_ms, 3 s), so
    # what stays is the logs.
    sleep 4
    local after keys_after
    after=$(used_memory)
    keys_after=$(rcli dbsize)
    record "$step" "$events" $((after - before)) $((keys_after - keys_before))
}

# webhooks STEP CHANNELS: one connection per channel of the webhook app, held then closed; each
# channel leaves two queued jobs (occupied, vacated) once its leave delay passed.
webhooks() {
    local step="$1" channels="$2"
    settle 1
    local before jobs_before
    before=$(used_memory)
    jobs_before=$(webhook_jobs)
    "$LOADTEST_BIN" idle --url "ws://127.0.0.1:$PORT" --rest "http://127.0.0.1:$PORT" \
        --app-id wh-id --key wh-key --secret wh-secret --source-ips "$SOURCE_IPS" \
        --connections "$channels" --channels "$channels" --duration 1s --json --prefix "sz-$step" \
        >"$LT_TMP/$step.json" 2>"$LT_TMP/$step.err" || { cat "$LT_TMP/$step.err" >&2; exit 1; }
    local jobs i
    for i in $(seq 1 100); do
        jobs=$(($(webhook_jobs) - jobs_before))
        [ "$jobs" -ge $((2 * channels)) ] && break
        sleep 0.2
    done
    [ "$jobs" -eq $((2 * channels)) ] || { echo "step $step: $jobs webhook jobs queued, expected $((2 * channels))" >&2; exit 1; }
    sleep 1
    local after
    after=$(used_memory)
    record "$step" "$jobs" $((after - before)) "$jobs"
}

webhook_jobs() { # entries in every webhook lane stream
    local total=0 key n
    for key in $(rcli --scan --pattern 'sz:whq:*'); do
        n=$(rcli xlen "$key")
        total=$((total + n))
    done
    echo "$total"
}

# stream_bytes STEP PATTERN: `MEMORY USAGE` (exact, consumer groups and pending entries included)
# and XLEN summed over the streams matching PATTERN: bytes per entry as Redis accounts the keys
# themselves, a cross-check of the used_memory slope.
stream_bytes() {
    local step="$1" pattern="$2" bytes=0 entries=0 key
    for key in $(rcli --scan --pattern "$pattern"); do
        [ "$(rcli type "$key")" = stream ] || continue
        bytes=$((bytes + $(rcli memory usage "$key" samples 0)))
        entries=$((entries + $(rcli xlen "$key")))
    done
    echo "$step $entries $bytes 0" >>"$RESULTS"
    printf '  %-22s entries %7s  MEMORY USAGE of the streams %11s bytes\n' "$step" "$entries" "$bytes" >&2
}

N1=$((5000 * SCALE)) N2=$((10000 * SCALE))
C1=$((1000 * SCALE)) C2=$((5000 * SCALE))
P1=$((2000 * SCALE)) P2=$((6000 * SCALE))
E1=$((2000 * SCALE)) E2=$((8000 * SCALE))
W1=$((500 * SCALE)) W2=$((2000 * SCALE))
lt_log "$(date -u +%FT%TZ), redis $(redis-server --version | awk '{print $3}'), ferrocast commit $(git -C "$LT_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
lt_log "baseline: used_memory $(used_memory) bytes, $(rcli dbsize) keys (two nodes registered, nothing else)"

hold conn1 "$N1" --connections "$N1" --channels 1
hold conn2 "$N2" --connections "$N2" --channels 1
hold chan1 "$C1" --connections "$N2" --channels "$C1"
hold chan2 "$C2" --connections "$N2" --channels "$C2"
# Connection i goes to node i % 2 and joins channel i % C: with C odd, every channel that has
# two or more connections has them on both nodes.
URLS="ws://127.0.0.1:$PORT,ws://127.0.0.1:$PORT_B" hold chan1b "$((C1 + 1))" --connections "$N2" --channels "$((C1 + 1))"
URLS="ws://127.0.0.1:$PORT,ws://127.0.0.1:$PORT_B" hold chan2b "$((C2 - 1))" --connections "$N2" --channels "$((C2 - 1))"
# Presence: max_presence_members_per_channel is 100, so P2 / 100 channels hold at most 100 each.
# Presence changes are events too (member_added / member_removed in the channel's replay log, for
# replay_log_ttl_s): the steps also read what is left after the members left, to tell them apart.
AFTER=1 hold pres1 "$P1" --connections "$P1" --channels 100 --presence
AFTER=1 hold pres2 "$P2" --connections "$P2" --channels 100 --presence
publish log1 "$E1" 10
publish log2 "$E2" 10
webhooks wh1 "$W1"
webhooks wh2 "$W2"
stream_bytes logkeys '{sz:*}:log:*sz-log*'
stream_bytes whkeys 'sz:whq:*'

python3 - "$RESULTS" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    step, units, delta, keys = line.split()
    rows[step] = (int(units), int(delta), int(keys))

def slope(a, b):
    (ua, da, ka), (ub, db, kb) = rows[a], rows[b]
    return (db - da) / (ub - ua), (kb - ka) / (ub - ua)

print()
print("| what | sizes measured | used_memory per unit (bytes) | Redis keys per unit |")
print("|---|---|---|---|")
conn, conn_keys = slope("conn1", "conn2")
print(f"| connection (all on 1 public channel) | {rows['conn1'][0]:,} and {rows['conn2'][0]:,} connections | {conn:.1f} | {conn_keys:.3f} |")
chan, chan_keys = slope("chan1", "chan2")
print(f"| subscribed channel (public, 1 node) | {rows['chan1'][0]:,} and {rows['chan2'][0]:,} channels, {rows['conn2'][0]:,} connections | {chan:.0f} | {chan_keys:.2f} |")
chanb, chanb_keys = slope("chan1b", "chan2b")
print(f"| subscribed channel (public, subscribers on 2 nodes) | {rows['chan1b'][0]:,} and {rows['chan2b'][0]:,} channels, {rows['conn2'][0]:,} connections | {chanb:.0f} | {chanb_keys:.2f} |")
pres, pres_keys = slope("pres1", "pres2")
print(f"| presence member while joined, incl. its member_added log entry (one connection each, 100 channels) | {rows['pres1'][0]:,} and {rows['pres2'][0]:,} members | {pres:.0f} | {pres_keys:.3f} |")
left, _ = slope("pres1-after", "pres2-after")
print(f"| presence replay-log entries left per member after it left (member_added + member_removed) | same | {left:.0f} | - |")
print(f"| presence member, without its log entry (joined minus half of what is left) | same | {pres - left / 2:.0f} | - |")
log, _ = slope("log1", "log2")
print(f"| replay-log entry (64-byte data, 10 channels) | {rows['log1'][0]:,} and {rows['log2'][0]:,} events | {log:.0f} | - |")
# The first webhook step also creates the lanes (streams, consumer groups, leases): the second,
# on lanes that exist, is the cost of the jobs alone.
wh = rows["wh2"][1] / rows["wh2"][0]
print(f"| queued webhook job (channel_occupied / _vacated), second step on existing lanes | {rows['wh2'][0]:,} jobs | {wh:.0f} | - |")
print(f"| webhook lanes' fixed cost (first step minus its jobs at that rate) | {rows['wh1'][0]:,} jobs | {rows['wh1'][1] - wh * rows['wh1'][0]:.0f} in all | - |")
for step, what in (("logkeys", "replay-log entry"), ("whkeys", "queued webhook job")):
    entries, total, _ = rows[step]
    print(f"| {what}: `MEMORY USAGE` of its streams / `XLEN` | {entries:,} entries | {total / max(entries, 1):.0f} | - |")
print()
print("raw deltas (step units bytes keys):")
for step, (u, d, k) in rows.items():
    print(f"  {step:6} {u:>7} {d:>11} {k:>7}")
PY
