#!/usr/bin/env bash
# Two ringside binaries on one `loadtest compare` scenario, each run beside
# HAProxy, alternating A, B, A, B, ... so that the machine's noise falls on
# both. Prints each run's ringside and HAProxy figures and CPU per unit,
# and ringside / HAProxy within the run (the ratio is what to compare: the
# absolute figures swing with the machine).
# Where the scenario reports latency, the p50 of each (µs) comes last.
# Needs HAProxy and a release build of loadtest.
# Usage: loadtest/scripts/ab-compare.sh A_BIN B_BIN [SCENARIO] [ROUNDS] [SECONDS]
# More `loadtest compare` options in AB_COMPARE_ARGS, e.g. "--h2-streams 1".
set -euo pipefail
A_BIN=$1
B_BIN=$2
SCENARIO=${3:-conn-rate}
ROUNDS=${4:-3}
SECONDS_PER_RUN=${5:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

printf '%-6s %5s %12s %12s %10s %10s %8s %8s %8s %8s\n' bin round ringside haproxy \
    "r cpu" "h cpu" ratio "cpu r/h" "r p50" "h p50"
for round in $(seq "$ROUNDS"); do
    for name in A B; do
        bin=$A_BIN
        [ "$name" = B ] && bin=$B_BIN
        "$ROOT/target/release/loadtest" compare --scenario "$SCENARIO" \
            --targets ringside,haproxy --duration "${SECONDS_PER_RUN}s" --rounds 1 \
            --ringside "$bin" ${AB_COMPARE_ARGS:-} 2>&1 |
            awk -v name="$name" -v round="$round" '
                $1 == "ringside" { r = $2; rc = $6; rp = $7 }
                $1 == "haproxy" { h = $2; hc = $6; hp = $7 }
                END { printf "%-6s %5d %12s %12s %10s %10s %8.3f %8.3f %8s %8s\n",
                      name, round, r, h, rc, hc, r / h, rc / hc, rp, hp }'
    done
done
