#!/usr/bin/env bash
# Wait (bounded) until the machine is quiet before a measurement: at most BENCH_QUIET_PCT % of
# one core busy (default 25), for at most BENCH_QUIET_WAIT seconds (default 300).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap lt_cleanup EXIT
lt_wait_quiet "${BENCH_QUIET_PCT:-25}" "${BENCH_QUIET_WAIT:-300}"
