#!/usr/bin/env bash
# Cost of the replay logs (issue 11): the same 2-node Redis cluster runs with the logs on
# (default) and off (`replay_log_max_len = 0`), alternating, ROUNDS times each. Two loads:
#   fanout   500 subscribers on node A, one channel, max rate through node B (fan-out bound)
#   publish  200 channels with one subscriber each, max rate (publish bound: Redis does the most
#            work per delivery here)
#   latency  200 subscribers, one channel, 200 events/s (the latency_cluster bench)
# Prints one line per run: mode, load, deliveries/s, publish round trip p50/p99 (µs), and CPU time
# (less sensitive than throughput to other load on the machine): node A (the subscribers' node)
# per 1k deliveries, node B (REST) and Redis per 1k publishes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap lt_cleanup EXIT
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
SOURCE_IPS="127.0.0.1-127.0.0.8"

redis_cpu() { # total CPU seconds of a pid
    awk '{print ($14 + $15) / 100}' "/proc/$1/stat"
}

run() { # run MODE LOAD
    local mode="$1" load="$2" extra=""
    [ "$mode" = off ] && extra='replay_log_max_len = 0'
    local rport; rport=$(lt_free_port)
    lt_start_redis "$rport"; local rpid=$LT_LAST_PID
    local pa pb; pa=$(lt_free_port); pb=$(lt_free_port)
    LT_BACKPLANE_EXTRA="$extra" lt_start_node "a-$mode" "$pa" "$(lt_free_port)" 16384 "redis://127.0.0.1:$rport"; local ida=$LT_LAST_PID
    LT_BACKPLANE_EXTRA="$extra" lt_start_node "b-$mode" "$pb" "$(lt_free_port)" 16384 "redis://127.0.0.1:$rport"; local idb=$LT_LAST_PID
    local args=(--subscribers 500 --channels 1 --rate 0 --inflight 32)
    [ "$load" = publish ] && args=(--subscribers 200 --channels 200 --rate 0 --inflight 32)
    [ "$load" = latency ] && args=(--subscribers 200 --channels 1 --rate 200)
    local before; before="$(redis_cpu "$ida") $(redis_cpu "$idb") $(redis_cpu "$rpid")"
    local line
    line=$("$LOADTEST_BIN" cluster --url "ws://127.0.0.1:$pa" --rest "http://127.0.0.1:$pb" "${args[@]}" \
        --duration "$DURATION" --json --source-ips "$SOURCE_IPS" 2>/dev/null)
    local after; after="$(redis_cpu "$ida") $(redis_cpu "$idb") $(redis_cpu "$rpid")"
    python3 - "$mode" "$load" "$before" "$after" "$line" <<'PY'
import json, sys
mode, load, before, after, line = sys.argv[1:]
a0, b0, r0 = map(float, before.split())
a1, b1, r1 = map(float, after.split())
r = json.loads(line)
pubs, got = r["published_events"], r["received"]
print(f"{mode:3} {load:7} delivered/s {r['delivered_per_s']:>9.0f} publishes/s {pubs / r['publish_s']:>6.0f} "
      f"rtt p50 {r['publish_rtt']['p50_us']:>6.0f} µs  cpu ms: node A {(a1 - a0) / got * 1e6:6.2f}/1k deliveries, "
      f"node B {(b1 - b0) / pubs * 1e6:6.2f}/1k publishes, redis {(r1 - r0) / pubs * 1e6:6.2f}/1k publishes  "
      f"latency p50 {r['latency']['p50_us'] / 1000:.2f} p99 {r['latency']['p99_us'] / 1000:.2f} ms  ratio {r['delivery_ratio']}")
PY
    lt_stop "$ida"; lt_stop "$idb"; lt_stop "$rpid"
}

for round in $(seq 1 "$ROUNDS"); do
    for load in ${LOADS:-fanout publish latency}; do
        run on "$load"
        run off "$load"
    done
done
