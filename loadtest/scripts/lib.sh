# Shared helpers for loadtest/scripts/*.sh (sourced, not run).
#
# Starts real `ferrocast` nodes (and redis-server) on free ports with a temporary TOML config,
# waits for /readyz, and stops exactly the processes it started.

LT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
FERROCAST_BIN="${FERROCAST_BIN:-$LT_ROOT/target/release/ferrocast}"
LOADTEST_BIN="${LOADTEST_BIN:-$LT_ROOT/target/release/ferrocast-loadtest}"
LT_TMP="$(mktemp -d "${TMPDIR:-/tmp}/ferrocast-loadtest.XXXXXX")"
LT_PIDS=()
LT_LAST_PID=

lt_log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# A TCP port on 127.0.0.1 that is free right now.
lt_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Whether http://127.0.0.1:PORT/readyz answers 200 (curl, or bash's /dev/tcp without it).
lt_ready() {
    local port="$1"
    if command -v curl >/dev/null 2>&1; then
        curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1
        return
    fi
    local status
    status=$( (exec 3<>"/dev/tcp/127.0.0.1/$port" &&
        printf 'GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && head -n1 <&3) 2>/dev/null) || return 1
    [[ "$status" == *" 200 "* ]]
}

# lt_start_node NAME PORT METRICS_PORT MAX_QUEUED [redis URL]: sets LT_LAST_PID.
# (Not to be called in $(...): the PID must be recorded in this shell for cleanup.)
# Config: one app (app-id / app-key / app-secret), presence limit raised for churn runs, and no
# subscribe rate limit: the churn scenario subscribes and unsubscribes as fast as it can on each
# connection, which is what max_subscription_requests_per_second exists to stop.
lt_start_node() {
    local name="$1" port="$2" metrics="$3" queued="$4" redis="${5:-}"
    local cfg="$LT_TMP/$name.toml"
    {
        echo '[server]'
        echo 'host = "127.0.0.1"'
        echo "port = $port"
        echo "metrics_port = $metrics"
        echo "node_id = \"$name\""
        echo "max_queued_frames = $queued"
        echo 'shutdown_grace_s = 1'
        # The load tester opens 10k+ sockets from 127.0.0.1: no per-IP caps.
        echo 'max_connections_per_ip = 0'
        echo 'max_connection_rate_per_ip = 0'
        echo '[backplane]'
        if [ -n "$redis" ]; then
            case "$redis" in
            # cluster=SEEDS: a Redis Cluster (SEEDS as a TOML list body, see lt_start_redis_cluster).
            cluster=*)
                echo 'driver = "redis-cluster"'
                echo "urls = [${redis#cluster=}]"
                ;;
            *)
                echo 'driver = "redis"'
                echo "url = \"$redis\""
                ;;
            esac
            echo "prefix = \"lt-$$\""
            # Extra [backplane] lines, e.g. LT_BACKPLANE_EXTRA='replay_log_max_len = 0'.
            if [ -n "${LT_BACKPLANE_EXTRA:-}" ]; then echo "$LT_BACKPLANE_EXTRA"; fi
        else
            echo 'driver = "memory"'
        fi
        echo '[[apps]]'
        echo 'id = "app-id"'
        echo 'key = "app-key"'
        echo 'secret = "app-secret"'
        echo 'max_presence_members_per_channel = 100'
        echo 'max_subscription_requests_per_second = 0'
    } >"$cfg"
    RUST_LOG="${RUST_LOG:-warn}" "$FERROCAST_BIN" --config "$cfg" >"$LT_TMP/$name.log" 2>&1 &
    local pid=$!
    LT_PIDS+=("$pid")
    local i
    for i in $(seq 1 200); do
        if lt_ready "$port"; then
            LT_LAST_PID=$pid
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            lt_log "node $name exited during startup:"
            cat "$LT_TMP/$name.log" >&2
            return 1
        fi
        sleep 0.05
    done
    lt_log "node $name not ready after 10 s:"
    cat "$LT_TMP/$name.log" >&2
    return 1
}

# lt_start_redis PORT: sets LT_LAST_PID.
lt_start_redis() {
    local port="$1"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$LT_TMP" --logfile "$LT_TMP/redis.log" &
    local pid=$!
    LT_PIDS+=("$pid")
    local i
    for i in $(seq 1 100); do
        if redis-cli -p "$port" ping >/dev/null 2>&1; then
            LT_LAST_PID=$pid
            return 0
        fi
        sleep 0.05
    done
    lt_log "redis-server did not start"
    return 1
}

# lt_start_redis_cluster N: N primaries (no replicas) formed into a Redis Cluster; sets
# LT_CLUSTER_PIDS and LT_CLUSTER_SEEDS ('"redis://127.0.0.1:P1", ...', for lt_start_node's
# cluster=SEEDS). The cluster bus listens on port + 10000, which must be free too.
lt_start_redis_cluster() {
    local n="$1" i port ports=() addrs=()
    LT_CLUSTER_PIDS=()
    LT_CLUSTER_SEEDS=
    for i in $(seq 1 "$n"); do
        port=$(lt_free_port)
        while [ "$port" -gt 55000 ] || ! python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.close()" $((port + 10000)) 2>/dev/null; do
            port=$(lt_free_port)
        done
        mkdir -p "$LT_TMP/cluster-$port"
        redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --cluster-enabled yes \
            --cluster-node-timeout 1000 --dir "$LT_TMP/cluster-$port" --logfile "$LT_TMP/cluster-$port/redis.log" &
        LT_PIDS+=("$!")
        LT_CLUSTER_PIDS+=("$!")
        ports+=("$port")
        addrs+=("127.0.0.1:$port")
    done
    for port in "${ports[@]}"; do
        for i in $(seq 1 100); do
            redis-cli -p "$port" ping >/dev/null 2>&1 && break
            sleep 0.05
        done
    done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$LT_TMP/cluster-create.log" 2>&1 || {
        lt_log "redis-cli --cluster create failed:"
        cat "$LT_TMP/cluster-create.log" >&2
        return 1
    }
    for port in "${ports[@]}"; do
        for i in $(seq 1 200); do
            redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
            sleep 0.05
        done
        LT_CLUSTER_SEEDS="${LT_CLUSTER_SEEDS:+$LT_CLUSTER_SEEDS, }\"redis://127.0.0.1:$port\""
    done
}

# Stop one process we started (SIGTERM, then SIGKILL after 5 s).
lt_stop() {
    local pid="$1" i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

lt_cleanup() {
    local pid
    for pid in "${LT_PIDS[@]}"; do
        lt_stop "$pid"
    done
    LT_PIDS=()
    rm -rf "$LT_TMP"
}

# Busy CPU of the whole machine over one second, in % of one core.
lt_busy_pct() {
    local a b
    read -r -a a < <(head -n1 /proc/stat)
    sleep 1
    read -r -a b < <(head -n1 /proc/stat)
    local total=0 idle i
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    idle=$((b[4] - a[4] + b[5] - a[5]))
    echo $(((total - idle) * 100 * $(nproc) / (total > 0 ? total : 1)))
}

# lt_wait_quiet MAX_PCT MAX_WAIT_S: wait (bounded) until the machine is at most MAX_PCT % of one
# core busy, so that other work does not compete with a measurement.
lt_wait_quiet() {
    local max_pct="$1" max_wait="$2" start=$SECONDS busy
    while true; do
        busy=$(lt_busy_pct)
        [ "$busy" -le "$max_pct" ] && return 0
        if [ $((SECONDS - start)) -ge "$max_wait" ]; then
            lt_log "machine still busy (${busy}% of one core) after ${max_wait}s: measuring anyway (recorded)"
            return 0
        fi
        lt_log "waiting for a quiet machine: ${busy}% of one core busy"
        sleep 4
    done
}
