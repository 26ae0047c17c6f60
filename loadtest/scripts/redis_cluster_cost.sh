#!/usr/bin/env bash
# One Redis versus a 3-shard Redis Cluster (issue 14): the same two nodes run on one Redis
# (`driver = "redis"`) and on a Redis Cluster of 3 primaries without replicas (`driver =
# "redis-cluster"`, sharded pub/sub), alternating, ROUNDS times each. Two loads, max rate:
#   spread   2,000 subscribers over 200 channels (10 each), spread over both nodes; events
#            round-robin over the channels, REST through node B (fan-out over many channels
#            and nodes)
#   publish  200 channels with one subscriber each on node A (publish bound: Redis does the
#            most work per delivery)
# Prints one line per run: mode, load, deliveries/s, publishes/s, and CPU time per 1k publishes
# of the nodes and of Redis (all shards together, and the busiest shard), which is what says
# how far one Redis goes and what sharding buys.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap lt_cleanup EXIT
ROUNDS="${ROUNDS:-2}"
DURATION="${DURATION:-10s}"
SOURCE_IPS="127.0.0.1-127.0.0.8"

cpu() { # total CPU seconds of pids
    local pid total=0
    for pid in "$@"; do total=$(awk -v t="$total" '{print t + ($14 + $15) / 100}' "/proc/$pid/stat"); done
    echo "$total"
}

cpus() { # CPU seconds of each pid, space separated
    local pid
    for pid in "$@"; do awk '{printf "%s ", ($14 + $15) / 100}' "/proc/$pid/stat"; done
}

run() { # run MODE LOAD
    local mode="$1" load="$2" redis_pids target
    if [ "$mode" = one ]; then
        local rport; rport=$(lt_free_port)
        lt_start_redis "$rport"
        redis_pids=("$LT_LAST_PID")
        target="redis://127.0.0.1:$rport"
    else
        lt_start_redis_cluster 3
        redis_pids=("${LT_CLUSTER_PIDS[@]}")
        target="cluster=$LT_CLUSTER_SEEDS"
    fi
    local pa pb; pa=$(lt_free_port); pb=$(lt_free_port)
    lt_start_node "a-$mode" "$pa" "$(lt_free_port)" 16384 "$target"; local ida=$LT_LAST_PID
    lt_start_node "b-$mode" "$pb" "$(lt_free_port)" 16384 "$target"; local idb=$LT_LAST_PID
    local args=(--url "ws://127.0.0.1:$pa,ws://127.0.0.1:$pb" --subscribers 2000 --channels 200)
    [ "$load" = publish ] && args=(--url "ws://127.0.0.1:$pa" --subscribers 200 --channels 200)
    local before_nodes before_redis; before_nodes=$(cpu "$ida" "$idb"); before_redis=$(cpus "${redis_pids[@]}")
    local line
    line=$("$LOADTEST_BIN" fanout "${args[@]}" --rest "http://127.0.0.1:$pb" --rate 0 --inflight 32 \
        --duration "$DURATION" --json --source-ips "$SOURCE_IPS" 2>/dev/null)
    local after_nodes after_redis; after_nodes=$(cpu "$ida" "$idb"); after_redis=$(cpus "${redis_pids[@]}")
    python3 - "$mode" "$load" "$before_nodes" "$after_nodes" "$before_redis" "$after_redis" "$line" <<'PY'
import json, sys
mode, load, n0, n1, r0, r1, line = sys.argv[1:]
r = json.loads(line)
pubs = r["published_events"]
shards = [b - a for a, b in zip(map(float, r0.split()), map(float, r1.split()))]
per_k = lambda s: s / pubs * 1e6
print(f"{mode:7} {load:7} delivered/s {r['delivered_per_s']:>9.0f} publishes/s {pubs / r['publish_s']:>6.0f}  "
      f"cpu ms per 1k publishes: nodes {per_k(float(n1) - float(n0)):6.1f}, redis {per_k(sum(shards)):6.1f} "
      f"(busiest shard {per_k(max(shards)):6.1f})  ratio {r['delivery_ratio']}")
PY
    lt_stop "$ida"; lt_stop "$idb"
    local pid; for pid in "${redis_pids[@]}"; do lt_stop "$pid"; done
}

for round in $(seq 1 "$ROUNDS"); do
    for load in ${LOADS:-spread publish}; do
        run one "$load"
        run cluster "$load"
    done
done
