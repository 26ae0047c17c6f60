#!/usr/bin/env bash
# Cost of the replay logs (issue 11): the same 2-node Redis cluster runs with the logs on
# (default) and off (`replay_log_max_len = 0`), alternating, ROUNDS times each. Two loads:
#   fanout   500 subscribers on node A, one channel, max rate through node B (fan-out bound)
#   publish  200 channels with one subscriber each, max rate (publish bound: Redis does the most
#            work per delivery here)
# Prints one line per run: mode, load, deliveries/s, publish round trip p50/p99 (µs), Redis CPU
# seconds per 10k publishes.
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
    local args=(--subscribers 500 --channels 1)
    [ "$load" = publish ] && args=(--subscribers 200 --channels 200)
    local cpu0; cpu0=$(redis_cpu "$rpid")
    local line
    line=$("$LOADTEST_BIN" cluster --url "ws://127.0.0.1:$pa" --rest "http://127.0.0.1:$pb" "${args[@]}" \
        --rate 0 --inflight 32 --duration "$DURATION" --json --source-ips "$SOURCE_IPS" 2>/dev/null)
    local cpu1; cpu1=$(redis_cpu "$rpid")
    python3 - "$mode" "$load" "$cpu0" "$cpu1" "$line" <<'PY'
import json, sys
mode, load, c0, c1, line = sys.argv[1:]
r = json.loads(line)
pubs = r["published_events"]
print(f"{mode:3} {load:7} delivered/s {r['delivered_per_s']:>10.0f}  publishes/s {pubs / r['publish_s']:>8.0f}  "
      f"rtt p50 {r['publish_rtt']['p50_us']:>7.0f} µs p99 {r['publish_rtt']['p99_us']:>7.0f} µs  "
      f"redis cpu {(float(c1) - float(c0)) / pubs * 1e4:.3f} s/10k publishes  ratio {r['delivery_ratio']}")
PY
    lt_stop "$ida"; lt_stop "$idb"; lt_stop "$rpid"
}

for round in $(seq 1 "$ROUNDS"); do
    for load in fanout publish; do
        run on "$load"
        run off "$load"
    done
done
