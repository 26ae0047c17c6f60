#!/usr/bin/env bash
# Smoke test of the load tester against a real node: tiny runs of every scenario, each with
# --strict, so it fails unless every event was delivered exactly once (delivery ratio 1.0), no
# error occurred and no connection was closed by the server. Part of `make test`; ~10 s.
#
# Expects release builds of `ferrocast` and `ferrocast-loadtest` (make loadtest-smoke builds
# them). Usage: loadtest/scripts/smoke.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap lt_cleanup EXIT

for bin in "$FERROCAST_BIN" "$LOADTEST_BIN"; do
    [ -x "$bin" ] || { echo "missing $bin: run cargo build --release first" >&2; exit 1; }
done

PORT=$(lt_free_port)
METRICS=$(lt_free_port)
lt_start_node smoke "$PORT" "$METRICS" 4096
PID=$LT_LAST_PID
lt_log "node smoke (pid $PID) on 127.0.0.1:$PORT"

COMMON=(--url "ws://127.0.0.1:$PORT" --rest "http://127.0.0.1:$PORT" --server-pid "$PID" --strict)
run() {
    local name="$1"
    shift
    lt_log "smoke: $name"
    if ! timeout 60 "$LOADTEST_BIN" "$@" "${COMMON[@]}"; then
        echo "loadtest smoke FAILED: $name" >&2
        echo "--- node log ---" >&2
        tail -n 50 "$LT_TMP/smoke.log" >&2 || true
        exit 1
    fi
}

run "fanout (events)" fanout --subscribers 20 --channels 2 --messages 200 --rate 2000
run "chat-like (many channels, one subscriber each)" fanout --subscribers 200 --channels 200 --messages 1000 --inflight 8
run "fanout (batch_events, max rate)" fanout --subscribers 20 --channels 2 --messages 200 --batch 10 --inflight 4
run "idle" idle --connections 100 --channels 4 --duration 1s
run "idle (presence members)" idle --connections 100 --channels 4 --presence --duration 1s
run "churn" churn --connections 10 --channels 2 --duration 1s
run "connect" connect --concurrency 8 --duration 1s

kill -0 "$PID" 2>/dev/null || { echo "loadtest smoke FAILED: the node died" >&2; exit 1; }
lt_log "loadtest smoke passed"
