#!/usr/bin/env bash
# Two ringside binaries side by side on HTTP/1 and opaque TCP, runs
# interleaved (A, B, A, B, ...) so that the machine's noise falls on both:
# wrk -t1 -c2 and -c50 on a route declared http1, and wrk -c2 through an
# opaque route to the same origin. Prints each run's req/s and the proxy's
# CPU seconds per 1,000 requests, then the medians and B/A.
# Needs wrk (apt-get install wrk) and the loadtest origin (cargo build
# --release -p loadtest).
# Usage: [AB_LOADS="http1-c2 http1-c50 opaque-c2"] loadtest/scripts/ab.sh A_BIN B_BIN [ROUNDS] [SECONDS]
set -euo pipefail
A_BIN=$1
B_BIN=$2
ROUNDS=${3:-5}
SECONDS_PER_RUN=${4:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
TICKS=$(getconf CLK_TCK)

. "$ROOT/loadtest/scripts/common.sh"
start_origin http1 ORIGIN
start_ringside A "$A_BIN" "$ORIGIN" "$ORIGIN"
start_ringside B "$B_BIN" "$ORIGIN" "$ORIGIN"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# One wrk run against a proxy; appends "req/s cpu_s_per_1k" to $WORK/<load>.<name>.
run() {
    local load=$1 name=$2 connections=$3 port=$4 host=${5:-127.0.0.1}
    local pid before after requests
    pid=$(eval echo "\$PID_$name")
    before=$(cpu_ticks "$pid")
    wrk -t1 -c"$connections" -d"${SECONDS_PER_RUN}s" "http://$host:$port/" >"$WORK/wrk.txt"
    after=$(cpu_ticks "$pid")
    requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
    awk -v r="$requests" -v s="$SECONDS_PER_RUN" -v t=$((after - before)) -v hz="$TICKS" \
        'BEGIN { printf "%.0f %.4f\n", r / s, (t / hz) / (r / 1000) }' >>"$WORK/$load.$name"
}

for round in $(seq "$ROUNDS"); do
    for name in A B; do
        run http1-c2 "$name" 2 "$(eval echo "\$HTTP_$name")"
        run http1-c50 "$name" 50 "$(eval echo "\$HTTP_$name")"
        run opaque-c2 "$name" 2 "$(eval echo "\$OPAQUE_$name")" 127.0.0.2
    done
    echo "round $round/$ROUNDS done" >&2
done

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf "%-10s %-3s %10s %10s   %s\n" load bin "req/s" "CPU s/1k" "runs (req/s CPU)"
for load in ${AB_LOADS:-http1-c2 http1-c50 opaque-c2}; do
    for name in A B; do
        rps=$(awk '{print $1}' "$WORK/$load.$name" | median)
        cpu=$(awk '{print $2}' "$WORK/$load.$name" | median)
        eval "RPS_$name=$rps CPU_$name=$cpu"
        printf "%-10s %-3s %10s %10s   %s\n" "$load" "$name" "$rps" "$cpu" "$(tr '\n' ' ' <"$WORK/$load.$name")"
    done
    awk -v ra="$RPS_A" -v rb="$RPS_B" -v ca="$CPU_A" -v cb="$CPU_B" -v l="$load" \
        'BEGIN { printf "%-10s B/A: req/s %.3fx, CPU per request %.3fx\n", l, rb / ra, cb / ca }'
done
