#!/usr/bin/env bash
# What one request costs ringside in system calls at low concurrency, the
# figure the runtime patches in vendor/glommio/PATCHES.md are measured by.
# One shard proxies HTTP/1 (a route declared http1) and opaque TCP to
# loadtest origins; `wrk -t1 -cC` drives SECONDS of keep-alive requests
# while perf counts ringside's system calls (tracepoints: unlike strace,
# they do not slow the proxy down, which would change how often it parks).
# Prints the
# calls per request (io_uring_enter, membarrier, recvfrom, sendto, ...) and
# per opaque connection (conn-rate style: connect, one round trip, close).
# Needs wrk and perf (apt-get install wrk linux-perf) and a release build.
# Usage: loadtest/scripts/syscalls-per-request.sh [CONNECTIONS] [SECONDS] [RINGSIDE_BIN]
set -euo pipefail
CONNECTIONS=${1:-1}
SECONDS_PER_RUN=${2:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RINGSIDE=${3:-$ROOT/target/release/ringside}
WORK=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

. "$ROOT/loadtest/scripts/common.sh"
start_origin http1 H1
start_origin echo ECHO
start_ringside R "$RINGSIDE" "$H1" "$ECHO"
RINGSIDE_PID=$PID_R
ROUTES=("$HTTP_R" "$OPAQUE_R")

SYSCALLS=(io_uring_enter membarrier recvfrom sendto splice accept4 setsockopt
    ioctl fcntl close shutdown getpeername futex read write)
# Plus io_uring submissions: an io_uring_enter may carry several, and a
# timer or a poll costs a submission even when it costs no extra enter.
EVENTS=$(printf 'syscalls:sys_enter_%s,' "${SYSCALLS[@]}")io_uring:io_uring_submit_req,

# Counts ringside's system calls while "$@" runs.
count_while() {
    perf stat -x, -e "${EVENTS%,}" -p "$RINGSIDE_PID" -o "$WORK/perf.txt" &
    local counter=$!
    sleep 0.5
    "$@"
    kill -INT "$counter"
    wait "$counter" 2>/dev/null || true
}

# Prints each system call's count divided by $1 (requests or connections).
per() {
    awk -F, -v n="$1" '$3 ~ /sys_enter_|io_uring_submit_req/ && $1 > 0 {
        name = $3; sub(/.*sys_enter_/, "", name); sub(/.*io_uring_submit_req/, "(uring submissions)", name)
        printf "  %-18s %8.2f\n", name, $1 / n
    }' "$WORK/perf.txt" | sort -k2 -nr
}

count_while wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" "http://127.0.0.1:${ROUTES[0]}/" >"$WORK/wrk.txt"
REQUESTS=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
echo "http1, wrk -c$CONNECTIONS: $REQUESTS requests in ${SECONDS_PER_RUN}s"
echo "system calls per request:"
per "$REQUESTS"

CONNS=2000
count_while python3 - "${ROUTES[1]}" "$CONNS" <<'PY'
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
for _ in range(count):
    s = socket.create_connection(("127.0.0.2", port))
    s.sendall(b"\0ping")
    got = b""
    while len(got) < 5:
        got += s.recv(5 - len(got))
    s.close()
PY
echo "opaque connections (connect, one round trip, close): $CONNS"
echo "system calls per connection:"
per "$CONNS"
