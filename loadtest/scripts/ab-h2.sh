#!/usr/bin/env bash
# Two ringside binaries on the h2 scenario (32 streams on one h2c
# connection), interleaved A, B, A, B, ... so that the machine's noise
# falls on both: each run is one `loadtest compare --scenario h2` round
# against that binary and HAProxy, so every run also carries its own
# HAProxy figure. Prints each run's req/s, the proxy's CPU seconds per
# 1,000 requests and ringside/HAProxy, then B/A of the medians and the
# median (and range) of B/A taken within each round.
# Needs HAProxy on PATH and the loadtest binary (cargo build --release -p
# loadtest, or LOADTEST=path).
# Usage: loadtest/scripts/ab-h2.sh A_BIN B_BIN [ROUNDS] [SECONDS]
set -euo pipefail
A_BIN=$1
B_BIN=$2
ROUNDS=${3:-5}
SECONDS_PER_RUN=${4:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LOADTEST=${LOADTEST:-$ROOT/target/release/loadtest}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# One run against BIN; appends "req/s cpu_s_per_1k ringside/haproxy" to
# $WORK/NAME.
run() {
    local name=$1 bin=$2
    "$LOADTEST" compare --scenario h2 --targets ringside,haproxy \
        --duration "${SECONDS_PER_RUN}s" --rounds 1 --ringside "$bin" \
        --json "$WORK/run.json" >/dev/null 2>&1
    jq -r '"\(.targets.ringside.median|floor) \(.targets.ringside.cpu_per_unit) \(.ringside_vs.haproxy)"' \
        "$WORK/run.json" >>"$WORK/$name"
}

for round in $(seq "$ROUNDS"); do
    run A "$A_BIN"
    run B "$B_BIN"
    echo "round $round/$ROUNDS done:$(uptime | sed 's/.*load/ load/')" >&2
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
range() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f-%.3f", lo, hi }'; }
printf "%-3s %10s %10s %12s   %s\n" bin "req/s" "CPU s/1k" "vs HAProxy" "runs (req/s CPU vs-HAProxy)"
for name in A B; do
    rps=$(awk '{print $1}' "$WORK/$name" | median)
    cpu=$(awk '{print $2}' "$WORK/$name" | median)
    vs=$(awk '{print $3}' "$WORK/$name" | median)
    eval "RPS_$name=$rps CPU_$name=$cpu"
    printf "%-3s %10s %10.5f %12.3f   %s\n" "$name" "$rps" "$cpu" "$vs" "$(tr '\n' ' ' <"$WORK/$name")"
done
awk -v ra="$RPS_A" -v rb="$RPS_B" -v ca="$CPU_A" -v cb="$CPU_B" \
    'BEGIN { printf "h2 B/A: req/s %.3fx, CPU per request %.3fx\n", rb / ra, cb / ca }'
paste -d' ' "$WORK/A" "$WORK/B" | awk '{ print $4 / $1, $5 / $2 }' >"$WORK/ratios"
printf "h2 B/A within rounds: req/s %.3fx (%s), CPU per request %.3fx (%s)\n" \
    "$(awk '{print $1}' "$WORK/ratios" | median)" "$(awk '{print $1}' "$WORK/ratios" | range)" \
    "$(awk '{print $2}' "$WORK/ratios" | median)" "$(awk '{print $2}' "$WORK/ratios" | range)"
