#!/usr/bin/env bash
# HTTP through ringside and through HAProxy (mode http, one thread each),
# interleaved with direct runs: wrk -t1 -c50 for HTTP/1 keep-alive
# throughput, wrk -t1 -c1 for the latency a proxy adds, wrk -t1 -c10 with
# `Connection: close` for a connection per request (through ringside's
# http1 route and a detecting one to the same origin), and h2load -c10
# -m10 for HTTP/2 (h2c prior knowledge). Prints req/s, latency and each
# proxy's CPU seconds per 1,000 requests.
# Needs wrk, h2load and haproxy (apt-get install wrk nghttp2-client haproxy)
# and a release build (cargo build --release --workspace); RINGSIDE=path
# runs another ringside binary instead of this tree's.
# Usage: [RINGSIDE=BIN] loadtest/scripts/http-vs-haproxy.sh [ROUNDS] [SECONDS] [h1|h2|all]
set -euo pipefail
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-4}
WHICH=${3:-all}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" "$(cat "$WORK"/*.pid 2>/dev/null)" 2>/dev/null || true; rm -rf "$WORK"' EXIT

. "$ROOT/loadtest/scripts/common.sh"
start_origin http1 H1_ORIGIN
start_origin h2 H2_ORIGIN

cat >"$WORK/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 4000
defaults
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend h1
    mode http
    option http-keep-alive
    bind 127.0.0.1:28080
    default_backend h1
backend h1
    mode http
    http-reuse always
    server s1 127.0.0.1:$H1_ORIGIN
frontend h2
    mode http
    bind 127.0.0.1:28082 proto h2
    default_backend h2
backend h2
    mode http
    http-reuse always
    server s1 127.0.0.1:$H2_ORIGIN proto h2
CFG
cat >"$WORK/ringside.toml" <<CFG
[[route]]
listen = "127.0.0.1:18080"
upstreams = ["127.0.0.1:$H1_ORIGIN"]
protocol = "http1"
[[route]]
listen = "127.0.0.1:18081"
upstreams = ["127.0.0.1:$H1_ORIGIN"]
protocol = "detect"
[[route]]
listen = "127.0.0.1:18082"
upstreams = ["127.0.0.1:$H2_ORIGIN"]
protocol = "http2"
CFG
"${RINGSIDE:-$ROOT/target/release/ringside}" --shards 1 --admin-addr 127.0.0.1:0 \
    --config "$WORK/ringside.toml" >"$WORK/ringside.out" 2>/dev/null &
RINGSIDE=$!
PIDS+=($RINGSIDE)
haproxy -f "$WORK/haproxy.cfg" -D -p "$WORK/haproxy.pid"
for port in 18080 18081 18082 28080 28082; do
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
done
HAPROXY=$(cat "$WORK/haproxy.pid")

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# run NAME PID COMMAND...: runs the load, prints req/s (and latency), and
# the proxy's CPU per 1,000 requests.
run() {
    local name=$1 pid=$2
    shift 2
    local before=0 after=0
    [ -n "$pid" ] && before=$(cpu_ticks "$pid")
    "$@" >"$WORK/run.out" 2>&1
    [ -n "$pid" ] && after=$(cpu_ticks "$pid")
    python3 - "$name" "$before" "$after" "$pid" "$WORK/run.out" <<'PY'
import re, sys
name, before, after, pid, path = sys.argv[1:]
text = open(path).read()
m = re.search(r"Requests/sec:\s+([\d.]+)", text) or re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)
rps = float(m.group(1))
total = re.search(r"(\d+) requests in", text) or re.search(r"requests: (\d+) total", text)
line = f"  {name:9} {rps:10,.0f} req/s"
lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", text, re.M))
if lat:
    line += f"  p50 {lat['50']:>8}  p99 {lat['99']:>8}"
if pid:
    cpu = (int(after) - int(before)) / 100
    line += f"  proxy CPU {cpu * 1000 / int(total.group(1)):.4f} s/1k req"
print(line)
PY
}

WRK=(wrk -t1 -d"${SECONDS_PER_RUN}s")
H2LOAD=(h2load -c10 -m10 -D "$SECONDS_PER_RUN")
for round in $(seq "$ROUNDS"); do
    if [ "$WHICH" != h2 ]; then
        echo "round $round: HTTP/1 keep-alive, wrk -t1 -c50"
        run direct "" "${WRK[@]}" -c50 "http://127.0.0.1:$H1_ORIGIN/"
        run ringside "$RINGSIDE" "${WRK[@]}" -c50 http://127.0.0.1:18080/
        run haproxy "$HAPROXY" "${WRK[@]}" -c50 http://127.0.0.1:28080/
        echo "round $round: HTTP/1 serial, wrk -t1 -c1 --latency"
        run direct "" "${WRK[@]}" -c1 --latency "http://127.0.0.1:$H1_ORIGIN/"
        run ringside "$RINGSIDE" "${WRK[@]}" -c1 --latency http://127.0.0.1:18080/
        run haproxy "$HAPROXY" "${WRK[@]}" -c1 --latency http://127.0.0.1:28080/
        echo "round $round: HTTP/1 connection per request, wrk -t1 -c10 -H 'Connection: close'"
        CLOSE=(-c10 -H 'Connection: close')
        run direct "" "${WRK[@]}" "${CLOSE[@]}" "http://127.0.0.1:$H1_ORIGIN/"
        run ringside "$RINGSIDE" "${WRK[@]}" "${CLOSE[@]}" http://127.0.0.1:18080/
        run rs-detect "$RINGSIDE" "${WRK[@]}" "${CLOSE[@]}" http://127.0.0.1:18081/
        run haproxy "$HAPROXY" "${WRK[@]}" "${CLOSE[@]}" http://127.0.0.1:28080/
    fi
    if [ "$WHICH" != h1 ]; then
        echo "round $round: HTTP/2 h2c, h2load -c10 -m10"
        run direct "" "${H2LOAD[@]}" "http://127.0.0.1:$H2_ORIGIN/"
        run ringside "$RINGSIDE" "${H2LOAD[@]}" http://127.0.0.1:18082/
        run haproxy "$HAPROXY" "${H2LOAD[@]}" http://127.0.0.1:28082/
    fi
done
