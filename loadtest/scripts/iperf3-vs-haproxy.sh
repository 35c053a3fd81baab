#!/usr/bin/env bash
# Bulk TCP through ringside and through HAProxy with splice, interleaved
# with direct iperf3 runs, and each proxy's CPU seconds per GB moved.
# Needs iperf3 and haproxy (apt-get install iperf3 haproxy) and a release
# build (cargo build --release). Usage: loadtest/scripts/iperf3-vs-haproxy.sh [ROUNDS] [SECONDS]
set -euo pipefail
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'kill "$RINGSIDE" "$(cat "$WORK/haproxy.pid")" "$IPERF" 2>/dev/null || true; rm -rf "$WORK"' EXIT

cat > "$WORK/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option splice-request
    option splice-response
frontend fe
    bind 127.0.0.1:25201
    default_backend be
backend be
    server s1 127.0.0.1:5201
CFG

iperf3 -s -p 5201 >/dev/null 2>&1 &
IPERF=$!
"$ROOT/target/release/ringside" --shards 1 --admin-addr 127.0.0.1:0 \
    --route 127.0.0.1:15201=127.0.0.1:5201 --opaque-ports 5201 >"$WORK/ringside.out" 2>/dev/null &
RINGSIDE=$!
haproxy -f "$WORK/haproxy.cfg" -D -p "$WORK/haproxy.pid"
# Ready when each port accepts (bounded).
for port in 5201 15201 25201; do
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for round in $(seq "$ROUNDS"); do
    for target in direct:5201: ringside:15201:$RINGSIDE haproxy:25201:$(cat "$WORK/haproxy.pid"); do
        IFS=: read -r name port pid <<<"$target"
        before=0; [ -n "$pid" ] && before=$(cpu_ticks "$pid")
        read -r bps bytes < <(iperf3 -c 127.0.0.1 -p "$port" -t "$SECONDS_PER_RUN" -J |
            python3 -c 'import json,sys; e=json.load(sys.stdin)["end"]["sum_received"]; print(e["bits_per_second"], e["bytes"])')
        after=0; [ -n "$pid" ] && after=$(cpu_ticks "$pid")
        python3 -c "
cpu = ($after - $before) / 100
gb = $bytes / 1e9
print(f'round $round {\"$name\":9} {$bps / 1e9:6.2f} Gbit/s' + (f'  proxy CPU {cpu / gb:.3f} s/GB' if '$pid' else ''))"
    done
done
