#!/usr/bin/env bash
# Two ringside binaries side by side on HTTP/1 and opaque TCP, runs
# interleaved (A, B, A, B, ...) so that the machine's noise falls on both:
# wrk -t1 on a route declared http1 (loads http1-*) and on a second route
# to the same origin, declared opaque, or detecting with
# OPAQUE_PROTOCOL=detect (loads opaque-* or detect-*). A load is ROUTE-cN
# (N keep-alive connections) or ROUTE-close (wrk -c10 -H 'Connection:
# close': a connection per request). Prints each run's req/s and the
# proxy's CPU seconds per 1,000 requests, then the medians, B/A of the
# medians, and the median (and range) of B/A taken within each round.
# Needs wrk (apt-get install wrk) and the loadtest origin (cargo build
# --release -p loadtest).
# Usage: [AB_LOADS="http1-c2 http1-c50 opaque-c2"] [OPAQUE_PROTOCOL=detect]
#        loadtest/scripts/ab.sh A_BIN B_BIN [ROUNDS] [SECONDS]
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

SECOND=${OPAQUE_PROTOCOL:-opaque}
LOADS=${AB_LOADS:-http1-c2 http1-c50 $SECOND-c2}

# One wrk run of LOAD against a proxy; appends "req/s cpu_s_per_1k" to
# $WORK/<load>.<name>.
run() {
    local load=$1 name=$2 port host=127.0.0.1 wrk_args
    case $load in
    http1-*) port=$(eval echo "\$HTTP_$name") ;;
    "$SECOND"-*) port=$(eval echo "\$OPAQUE_$name") host=127.0.0.2 ;;
    *) echo "unknown load $load" >&2; exit 1 ;;
    esac
    case ${load##*-} in
    close) wrk_args=(-c10 -H 'Connection: close') ;;
    c*) wrk_args=(-c"${load##*-c}") ;;
    esac
    local pid before after requests
    pid=$(eval echo "\$PID_$name")
    before=$(cpu_ticks "$pid")
    wrk -t1 "${wrk_args[@]}" -d"${SECONDS_PER_RUN}s" "http://$host:$port/" >"$WORK/wrk.txt"
    after=$(cpu_ticks "$pid")
    requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
    awk -v r="$requests" -v s="$SECONDS_PER_RUN" -v t=$((after - before)) -v hz="$TICKS" \
        'BEGIN { printf "%.0f %.4f\n", r / s, (t / hz) / (r / 1000) }' >>"$WORK/$load.$name"
}

for round in $(seq "$ROUNDS"); do
    for load in $LOADS; do
        for name in A B; do
            run "$load" "$name"
        done
    done
    echo "round $round/$ROUNDS done:$(uptime | sed 's/.*load/ load/')" >&2
done

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf "%-10s %-3s %10s %10s   %s\n" load bin "req/s" "CPU s/1k" "runs (req/s CPU)"
for load in $LOADS; do
    for name in A B; do
        rps=$(awk '{print $1}' "$WORK/$load.$name" | median)
        cpu=$(awk '{print $2}' "$WORK/$load.$name" | median)
        eval "RPS_$name=$rps CPU_$name=$cpu"
        printf "%-10s %-3s %10s %10s   %s\n" "$load" "$name" "$rps" "$cpu" "$(tr '\n' ' ' <"$WORK/$load.$name")"
    done
    awk -v ra="$RPS_A" -v rb="$RPS_B" -v ca="$CPU_A" -v cb="$CPU_B" -v l="$load" \
        'BEGIN { printf "%-10s B/A: req/s %.3fx, CPU per request %.3fx\n", l, rb / ra, cb / ca }'
    # Within each round (line n of both files), then the median and range.
    paste -d' ' "$WORK/$load.A" "$WORK/$load.B" | awk '{ print $3 / $1, $4 / $2 }' >"$WORK/$load.ratios"
    rps=$(awk '{print $1}' "$WORK/$load.ratios" | median)
    cpu=$(awk '{print $2}' "$WORK/$load.ratios" | median)
    range() { sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f-%.3f", lo, hi }'; }
    printf "%-10s B/A within rounds: req/s %.3fx (%s), CPU per request %.3fx (%s)\n" "$load" \
        "$rps" "$(awk '{print $1}' "$WORK/$load.ratios" | range)" \
        "$cpu" "$(awk '{print $2}' "$WORK/$load.ratios" | range)"
done
