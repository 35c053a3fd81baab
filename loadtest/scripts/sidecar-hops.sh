#!/usr/bin/env bash
# The two-sidecar path of issue #12: a client pod A (198.18.0.1) and a
# server pod B (198.18.0.2), network namespaces joined by a veth pair, with
# a proxy in each pod. Five cases, each its own pair of namespaces set up
# once, so rounds interleave without reinstalling anything:
#   direct       no proxy, no rules
#   transparent  ringside in each pod (outbound 127.0.0.1:4140, inbound
#                0.0.0.0:4143) behind `ringside iptables install`; the client
#                dials 198.18.0.2:8080 as if there were no proxy
#   routes       ringside in each pod with configured routes
#                (A 127.0.0.1:18080 -> B 198.18.0.2:18080 -> 127.0.0.1:8080),
#                no rules
#   routes-rules the same routes, with the same rules installed in both
#                pods but skipping the route ports: conntrack on, nothing
#                redirected. transparent / routes-rules is what redirecting
#                and the original-destination lookup cost; routes-rules /
#                routes what conntrack and the nat chains cost
#   haproxy      HAProxy (nbthread 1) in each pod behind the same rules:
#                `server 0.0.0.0:0` (the original destination) outbound,
#                `server 127.0.0.1` (the original port) inbound
# B runs `loadtest origin http1` on 0.0.0.0:8080 and an iperf3 server on
# 0.0.0.0:5201 (bound on 0.0.0.0 so the direct case reaches the same
# processes the sidecars reach on 127.0.0.1). Every proxy runs with group
# 4140, which the rules exempt; 5201 and 15201 are declared opaque (no
# detection) to ringside, and to HAProxy by `dst_port 5201`.
# Loads from A: wrk -t1 -c1 --latency, wrk -t1 -c50, wrk -t1 -c10 with
# `Connection: close` (a connection per request) and iperf3 -c for bulk.
# Prints each run, then per load a table of medians over the rounds with
# ratios taken within a round. CPU is both proxies' utime+stime
# (/proc/PID/stat) over the run: ms per 1,000 requests, s per GB.
# BASELINE=path/to/another/ringside adds a sixth case, `baseline`: the
# transparent case with that binary in both pods, interleaved like the
# others (before/after a change); LOADS picks the loads (default: all).
# Needs root, wrk, iperf3, haproxy and a release build
# (cargo build --release --workspace).
# Usage: [BASELINE=BIN] [LOADS="c1 c50 close bulk"] loadtest/scripts/sidecar-hops.sh [ROUNDS] [SECONDS]
set -euo pipefail
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/target/release
PIDS=()
CASES=(direct transparent routes routes-rules haproxy)
[ -n "${BASELINE:-}" ] && CASES+=(baseline)
PROXY_GID=4140
OPAQUE_PORTS=5201,15201

cleanup() {
    kill "${PIDS[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    # The rules live in the namespaces and go with them.
    for case in "${CASES[@]}"; do
        ip netns delete "hops-$case-a" 2>/dev/null || true
        ip netns delete "hops-$case-b" 2>/dev/null || true
    done
    rm -rf "$WORK"
}

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, iptables)" >&2; exit 1; }
# Checked before the trap is set: another run's namespaces are not ours to delete.
for case in "${CASES[@]}"; do
    if ip netns list | grep -qE "^hops-$case-[ab]( |$)"; then
        echo "namespace hops-$case-* exists already (another run?)" >&2
        exit 1
    fi
done
WORK=$(mktemp -d)
trap cleanup EXIT
trap 'exit 130' INT TERM

# in_bg NS NAME COMMAND...: runs COMMAND in namespace NS in the background,
# output in $WORK/NAME.out and .err; sets PID_NAME. `ip netns exec` and
# setpriv exec, so the pid is the program's own.
in_bg() {
    local ns=$1 name=$2
    shift 2
    ip netns exec "$ns" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS+=($!)
    eval "PID_$name=$!"
}

# wait_listen NS PORT: until something listens on PORT in NS (bounded).
# Not a connect: a connection to a transparent listener itself is refused
# (ringside) or loops (HAProxy).
wait_listen() {
    for _ in $(seq 200); do
        ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q . && return
        sleep 0.05
    done
    echo "nothing listens on port $2 in $1" >&2
    exit 1
}

# pods CASE: namespaces hops-CASE-a and -b, linked, with B's applications.
pods() {
    local a=hops-$1-a b=hops-$1-b
    ip netns add "$a"
    ip netns add "$b"
    ip link add eth0 netns "$a" type veth peer name eth0 netns "$b"
    ip -n "$a" addr add 198.18.0.1/24 dev eth0
    ip -n "$b" addr add 198.18.0.2/24 dev eth0
    for ns in "$a" "$b"; do
        ip -n "$ns" link set lo up
        ip -n "$ns" link set eth0 up
        # Room for a connection per request (TIME_WAIT on both sides).
        ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" \
            net.ipv4.tcp_tw_reuse=1
    done
    in_bg "$b" "origin_${1//-/_}" "$BIN/loadtest" origin http1 --listen 0.0.0.0:8080
    in_bg "$b" "iperf_${1//-/_}" iperf3 -s -p 5201
    wait_listen "$b" 8080
    wait_listen "$b" 5201
}

# ringside NS NAME ARGS...: one shard, group 4140, admin on 4191; the
# binary is $RINGSIDE (this tree's release build unless set).
ringside() {
    local ns=$1 name=$2
    shift 2
    in_bg "$ns" "$name" setpriv --regid "$PROXY_GID" --clear-groups "${RINGSIDE:-$BIN/ringside}" \
        --shards 1 --admin-addr 127.0.0.1:4191 --opaque-ports "$OPAQUE_PORTS" "$@"
    for _ in $(seq 200); do
        grep -q "listening admin" "$WORK/$name.out" 2>/dev/null && return
        sleep 0.05
    done
    cat "$WORK/$name.err" >&2
    exit 1
}

TRANSPARENT=(--outbound-listen 127.0.0.1:4140 --inbound-listen 0.0.0.0:4143)
# install_rules NS [FLAGS...]
install_rules() {
    local ns=$1
    shift
    ip netns exec "$ns" "$BIN/ringside" "${TRANSPARENT[@]}" iptables install \
        --proxy-gid "$PROXY_GID" "$@" >/dev/null
}

# HAProxy as a transparent sidecar: one tcp frontend per direction that
# switches to HTTP when the first bytes are HTTP (ringside's detection),
# and carries port 5201 as TCP without looking (ringside's opaque ports).
# `server 0.0.0.0:0` dials the original destination, which HAProxy reads
# with SO_ORIGINAL_DST; `server 127.0.0.1` without a port dials the
# original port.
# haproxy_direction NAME BIND SERVER: that frontend on BIND, and its two
# backends (HTTP and spliced TCP) dialing `server SERVER`.
haproxy_direction() {
    cat <<CFG
frontend $1
    mode tcp
    bind $2
    tcp-request inspect-delay 5s
    tcp-request content accept if { dst_port 5201 }
    tcp-request content switch-mode http if HTTP
    use_backend $1-http if HTTP
    default_backend $1-tcp
backend $1-http
    mode http
    http-reuse always
    server $3
backend $1-tcp
    mode tcp
    option splice-request
    option splice-response
    server $3
CFG
}

haproxy_cfg() {
    cat <<CFG
global
    nbthread 1
    maxconn 4000
defaults
    timeout connect 5s
    timeout client 60s
    timeout server 60s
CFG
    haproxy_direction outbound 127.0.0.1:4140 "original 0.0.0.0:0"
    haproxy_direction inbound 0.0.0.0:4143 "app 127.0.0.1"
}

for case in "${CASES[@]}"; do pods "$case"; done

ringside hops-transparent-a transparent_a "${TRANSPARENT[@]}"
ringside hops-transparent-b transparent_b "${TRANSPARENT[@]}"
install_rules hops-transparent-a
install_rules hops-transparent-b
if [ -n "${BASELINE:-}" ]; then
    RINGSIDE=$BASELINE ringside hops-baseline-a baseline_a "${TRANSPARENT[@]}"
    RINGSIDE=$BASELINE ringside hops-baseline-b baseline_b "${TRANSPARENT[@]}"
    install_rules hops-baseline-a
    install_rules hops-baseline-b
fi

ROUTES_A=(--route 127.0.0.1:18080=198.18.0.2:18080 --route 127.0.0.1:15201=198.18.0.2:15201)
ROUTES_B=(--route 198.18.0.2:18080=127.0.0.1:8080 --route 198.18.0.2:15201=127.0.0.1:5201)
ringside hops-routes-a routes_a "${ROUTES_A[@]}"
ringside hops-routes-b routes_b "${ROUTES_B[@]}"
ringside hops-routes-rules-a routes_rules_a "${ROUTES_A[@]}"
ringside hops-routes-rules-b routes_rules_b "${ROUTES_B[@]}"
install_rules hops-routes-rules-a
install_rules hops-routes-rules-b --skip-inbound-ports 18080,15201

haproxy_cfg >"$WORK/haproxy.cfg"
for side in a b; do
    in_bg "hops-haproxy-$side" "haproxy_$side" setpriv --regid "$PROXY_GID" --clear-groups \
        haproxy -db -f "$WORK/haproxy.cfg"
    wait_listen "hops-haproxy-$side" 4140
    wait_listen "hops-haproxy-$side" 4143
    install_rules "hops-haproxy-$side"
done

# Where the client in A dials, and which processes are the case's proxies.
declare -A HTTP_URL BULK_PORT BULK_HOST PROXIES
for case in direct transparent haproxy baseline; do
    HTTP_URL[$case]=http://198.18.0.2:8080/
    BULK_HOST[$case]=198.18.0.2
    BULK_PORT[$case]=5201
done
for case in routes routes-rules; do
    HTTP_URL[$case]=http://127.0.0.1:18080/
    BULK_HOST[$case]=127.0.0.1
    BULK_PORT[$case]=15201
done
PROXIES[direct]=""
PROXIES[transparent]="$PID_transparent_a $PID_transparent_b"
PROXIES[routes]="$PID_routes_a $PID_routes_b"
PROXIES[routes-rules]="$PID_routes_rules_a $PID_routes_rules_b"
PROXIES[haproxy]="$PID_haproxy_a $PID_haproxy_b"
[ -n "${BASELINE:-}" ] && PROXIES[baseline]="$PID_baseline_a $PID_baseline_b"

# Each case answers once through its proxies before anything is measured.
for case in "${CASES[@]}"; do
    ip netns exec "hops-$case-a" curl -sf -o /dev/null --max-time 5 "${HTTP_URL[$case]}" ||
        { echo "$case: no answer from ${HTTP_URL[$case]}" >&2; exit 1; }
done
# ... and the transparent one through both sidecars, as the client's
# original destination.
for side in a:outbound b:inbound; do
    pod=${side%:*} direction=${side#*:}
    metrics=$(ip netns exec "hops-transparent-$pod" curl -sf http://127.0.0.1:4191/metrics)
    grep -qE "direction=\"$direction\".*target_addr=\"198.18.0.2:8080\"" <<<"$metrics" ||
        { echo "transparent: pod $pod saw no $direction request to 198.18.0.2:8080" >&2; exit 1; }
done

cpu_ticks() {
    local sum=0 pid
    for pid in $1; do sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
    echo "$sum"
}

# run ROUND LOAD CASE COMMAND...: runs COMMAND in A, appends a result line
# to $WORK/results and prints it.
run() {
    local round=$1 load=$2 case=$3
    shift 3
    local before after
    before=$(cpu_ticks "${PROXIES[$case]}")
    ip netns exec "hops-$case-a" "$@" >"$WORK/run.out" 2>&1
    after=$(cpu_ticks "${PROXIES[$case]}")
    python3 - "$round" "$load" "$case" "$((after - before))" "${PROXIES[$case]}" \
        "$WORK/run.out" "$WORK/results" <<'PY'
import json, re, sys
round_, load, case, ticks, proxies, path, results = sys.argv[1:]
text = open(path).read()
cpu = int(ticks) / 100  # USER_HZ
if proxies and cpu == 0:
    sys.exit(f"{case}: its proxies used no CPU; the traffic did not pass them")
if load == "bulk":
    end = json.loads(text)["end"]["sum_received"]
    value, amount = end["bits_per_second"] / 1e9, end["bytes"] / 1e9
    p50 = p99 = ""
    cpu_per = cpu / amount  # s per GB
else:
    for bad in ("Non-2xx", "Socket errors"):
        if bad in text:
            print(f"warning: {case} {load}: {bad}", file=sys.stderr)
    value = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    amount = int(re.search(r"(\d+) requests in", text).group(1))
    lat = {}
    for pct, num, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\b", text, re.M):
        lat[pct] = float(num) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
    p50, p99 = lat.get("50", ""), lat.get("99", "")
    cpu_per = cpu * 1000 / (amount / 1000)  # ms per 1,000 requests
with open(results, "a") as out:
    print(json.dumps({"round": int(round_), "load": load, "case": case, "value": value,
                      "p50": p50, "p99": p99, "cpu": cpu_per if proxies else None}), file=out)
line = f"round {round_} {load:5} {case:12} "
line += f"{value:6.2f} Gbit/s" if load == "bulk" else f"{value:9,.0f} req/s"
if p50 != "":
    line += f"  p50 {p50:6.0f} µs  p99 {p99:6.0f} µs"
if proxies:
    line += f"  proxies' CPU {cpu_per:.3f} s/GB" if load == "bulk" else f"  proxies' CPU {cpu_per:.1f} ms/1k req"
print(line)
PY
}

read -ra LOADS <<<"${LOADS:-c1 c50 close bulk}"
uptime | tee "$WORK/uptime"
for round in $(seq "$ROUNDS"); do
    echo "round $round:$(uptime | sed "s/.*load/ load/")"
    for load in "${LOADS[@]}"; do
        for case in "${CASES[@]}"; do
            case $load in
            c1) run "$round" c1 "$case" wrk -t1 -c1 -d"${SECONDS_PER_RUN}s" --latency "${HTTP_URL[$case]}" ;;
            c50) run "$round" c50 "$case" wrk -t1 -c50 -d"${SECONDS_PER_RUN}s" --latency "${HTTP_URL[$case]}" ;;
            close) run "$round" close "$case" wrk -t1 -c10 -d"${SECONDS_PER_RUN}s" \
                -H 'Connection: close' "${HTTP_URL[$case]}" ;;
            bulk) run "$round" bulk "$case" iperf3 -c "${BULK_HOST[$case]}" -p "${BULK_PORT[$case]}" \
                -t "$SECONDS_PER_RUN" -J ;;
            esac
        done
    done
done
uptime | tee -a "$WORK/uptime"

# Medians over the rounds; a ratio is taken within each round, then its
# median and range are shown.
python3 - "$WORK/results" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
titles = {
    "c1": "wrk -t1 -c1 --latency (one connection, one request at a time)",
    "c50": "wrk -t1 -c50 --latency (keep-alive throughput)",
    "close": "wrk -t1 -c10 -H 'Connection: close' (a connection per request)",
    "bulk": "iperf3 -c (one stream, bulk)",
}
def med(xs):
    return statistics.median(xs)
def spread(xs, fmt):
    return f"{fmt(med(xs))} ({fmt(min(xs))}–{fmt(max(xs))})" if len(xs) > 1 else fmt(xs[0])
for load, title in titles.items():
    by = {}
    for r in rows:
        if r["load"] == load:
            by.setdefault(r["case"], {})[r["round"]] = r
    if not by:
        continue
    bulk = load == "bulk"
    unit = "Gbit/s" if bulk else "req/s"
    cpu_unit = "CPU s/GB" if bulk else "CPU ms/1k req"
    fmt_v = (lambda v: f"{v:.2f}") if bulk else (lambda v: f"{v:,.0f}")
    print(f"\n{title}\n")
    head = f"| case | {unit} | "
    if load in ("c1", "c50"):
        head += "p50 µs | p99 µs | "
    head += f"{cpu_unit} (both proxies) | / direct | / HAProxy |"
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    def ratio(case, other):
        rs = [by[case][n]["value"] / by[other][n]["value"]
              for n in by[case] if other in by and n in by[other]]
        return spread(rs, lambda v: f"{v:.2f}") if rs else "–"
    for case in ("direct", "transparent", "baseline", "routes", "routes-rules", "haproxy"):
        if case not in by:
            continue
        rs = list(by[case].values())
        line = f"| {case} | {spread([r['value'] for r in rs], fmt_v)} | "
        if load in ("c1", "c50"):
            line += f"{med([r['p50'] for r in rs]):.0f} | {med([r['p99'] for r in rs]):.0f} | "
        cpus = [r["cpu"] for r in rs if r["cpu"] is not None]
        line += (spread(cpus, lambda v: f"{v:.3f}" if bulk else f"{v:.1f}") if cpus else "–") + " | "
        line += (ratio(case, "direct") if case != "direct" else "1") + " | "
        line += (ratio(case, "haproxy") if case not in ("direct", "haproxy") else "–") + " |"
        print(line)
    print()
    for case, other in (("transparent", "routes"), ("transparent", "routes-rules"),
                        ("routes-rules", "routes"), ("transparent", "baseline")):
        rounds = [n for n in by.get(case, {}) if n in by.get(other, {})]
        if not rounds:
            continue
        values = [by[case][n]["value"] / by[other][n]["value"] for n in rounds]
        cpus = [by[case][n]["cpu"] / by[other][n]["cpu"] for n in rounds]
        print(f"{case} / {other}: {spread(values, lambda v: f'{v:.2f}')} × the {unit}, "
              f"{spread(cpus, lambda v: f'{v:.2f}')} × the CPU per {'GB' if bulk else 'request'}")
PY
