#!/usr/bin/env bash
# Meshed traffic (issue #11): two proxies in a row with mutual TLS between
# them, against the same two hops in plaintext and against HAProxy with ssl
# on the middle hop, interleaved with direct runs. Four paths to the same
# origins:
#   direct     client -> origin
#   plain      client -> ringside -> ringside (127.0.0.2) -> origin
#   mtls       client -> ringside =mTLS=> ringside inbound -> origin
#   haproxy    client -> haproxy =mTLS=> haproxy -> origin
# Every proxy has one shard or one thread; both sides' CPU is summed.
# HAProxy is forced to TLS 1.3 like ringside; the certificates are the ones
# `ringside identity` mints. Three loads, each round in turn:
#   bulk       iperf3 -P 1 and -P 2 (Gbit/s, proxy CPU s per GB)
#   http1      wrk -t1 -c1 and -c50 keep-alive (req/s, p50/p99, proxies'
#              CPU µs per request, which is ms per 1,000)
#   handshake  wrk -t1 -c8 with Connection: close, so every request is a new
#              client connection (conn/s, CPU µs per connection, and how
#              many connections the server-side proxy accepted for them:
#              new mTLS connections, or reused ones)
# Needs wrk, iperf3 and haproxy (apt-get install wrk iperf3 haproxy) and a
# release build (cargo build --release --workspace).
# With PERF_LOAD=LOAD (bulk-P1, bulk-P2, http1-c1, http1-c50, handshake) and
# PERF_OUT=FILE, the server-side mTLS ringside is recorded with
# `perf record -g` for 5 s of that load in round 1 (SECONDS >= 5).
# Usage: loadtest/scripts/mesh-vs-haproxy.sh [ROUNDS] [SECONDS]
set -euo pipefail
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-4}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 143' INT TERM

. "$ROOT/loadtest/scripts/common.sh"
RINGSIDE="$ROOT/target/release/ringside"
CLIENT_ID=web.default.serviceaccount.identity.linkerd.cluster.local
SERVER_ID=db.default.serviceaccount.identity.linkerd.cluster.local

# free_port: a port the kernel just handed out on 127.0.0.1, for a
# listener that takes no port 0 (HAProxy, a second route of one ringside).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_origin http1 H1_ORIGIN
BULK_ORIGIN=$(free_port)
iperf3 -s -p "$BULK_ORIGIN" >/dev/null 2>&1 &
PIDS+=($!)

# Identities, as the README mints them; HAProxy wants certificate and key
# in one file.
ID="$WORK/id"
"$RINGSIDE" identity ca --out "$ID/ca" >/dev/null
for role in client:$CLIENT_ID server:$SERVER_ID; do
    "$RINGSIDE" identity issue --ca "$ID/ca" --name "${role#*:}" --out "$ID/${role%%:*}" >/dev/null
    cat "$ID/${role%%:*}/cert.pem" "$ID/${role%%:*}/key.pem" >"$ID/${role%%:*}/haproxy.pem"
done
identity() {
    echo --identity-cert "$ID/$1/cert.pem" --identity-key "$ID/$1/key.pem" \
        --identity-trust-anchors "$ID/$1/trust-anchors.pem" --identity-name "$2"
}

# proxy NAME ARGS...: one-shard ringside with ARGS; sets PID_<NAME> and
# ADMIN_<NAME>, and leaves its listening lines in $WORK/NAME.out.
proxy() {
    local name=$1
    shift
    "$RINGSIDE" --shards 1 --admin-addr 127.0.0.1:0 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS+=($!)
    eval "PID_$name=$!"
    wait_listening "$name"
    eval "ADMIN_$name=$(grep -oE 'listening admin \S+' "$WORK/$name.out" | grep -oE '[0-9]+$')"
}
# route_port NAME UPSTREAM: the port of NAME's route to UPSTREAM.
route_port() {
    grep -E "listening route \S+ -> $2\$" "$WORK/$1.out" | grep -oE ':[0-9]+ ->' | grep -oE '[0-9]+'
}

proxy mtls_server --inbound-listen 127.0.0.1:0 $(identity server $SERVER_ID)
INBOUND=$(grep -oE 'listening inbound 127.0.0.1:[0-9]+' "$WORK/mtls_server.out" | grep -oE '[0-9]+$')
proxy mtls_client --route 127.0.0.1:$(free_port)=127.0.0.1:$BULK_ORIGIN --route 127.0.0.1:$(free_port)=127.0.0.1:$H1_ORIGIN \
    --mesh-peer "127.0.0.1=$SERVER_ID@$INBOUND" $(identity client $CLIENT_ID)
proxy plain_server --route 127.0.0.2:$(free_port)=127.0.0.1:$BULK_ORIGIN --route 127.0.0.2:$(free_port)=127.0.0.1:$H1_ORIGIN
MID_BULK=$(route_port plain_server 127.0.0.1:$BULK_ORIGIN)
MID_H1=$(route_port plain_server 127.0.0.1:$H1_ORIGIN)
proxy plain_client --route 127.0.0.1:$(free_port)=127.0.0.2:$MID_BULK --route 127.0.0.1:$(free_port)=127.0.0.2:$MID_H1

# HAProxy: a client side that originates mTLS (verifying the server's
# identity as SNI and name) and a server side that terminates it with a
# client certificate required. Default reuse settings (the client side
# resumes its TLS session to the server side: the handshake load prints how
# many handshakes were full), and `haproxy-full`, the same with
# `no-ssl-reuse`, for the handshake load only.
HP_BULK=$(free_port) HP_H1=$(free_port) HP_H1_FULL=$(free_port) HS_BULK=$(free_port) HS_H1=$(free_port)
SSL_SERVER="ssl verify required ca-file $ID/ca/ca.pem crt $ID/client/haproxy.pem sni str($SERVER_ID) verifyhost $SERVER_ID"
SSL_BIND="ssl crt $ID/server/haproxy.pem ca-file $ID/ca/ca.pem verify required"
haproxy_common() {
    cat <<CFG
global
    nbthread 1
    maxconn 4000
    stats socket $WORK/$1.sock
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-server-options ssl-min-ver TLSv1.3
defaults
    timeout connect 5s
    timeout client 60s
    timeout server 60s
CFG
}
{
    haproxy_common hp_client
    cat <<CFG
listen bulk
    mode tcp
    bind 127.0.0.1:$HP_BULK
    server s 127.0.0.1:$HS_BULK $SSL_SERVER
listen h1
    mode http
    option http-keep-alive
    bind 127.0.0.1:$HP_H1
    server s 127.0.0.1:$HS_H1 $SSL_SERVER
listen h1_full
    mode http
    option http-keep-alive
    bind 127.0.0.1:$HP_H1_FULL
    server s 127.0.0.1:$HS_H1 $SSL_SERVER no-ssl-reuse
CFG
} >"$WORK/hp_client.cfg"
{
    haproxy_common hp_server
    cat <<CFG
listen bulk
    mode tcp
    bind 127.0.0.1:$HS_BULK $SSL_BIND
    server s 127.0.0.1:$BULK_ORIGIN
listen h1
    mode http
    option http-keep-alive
    bind 127.0.0.1:$HS_H1 $SSL_BIND
    server s 127.0.0.1:$H1_ORIGIN
CFG
} >"$WORK/hp_server.cfg"
for side in hp_client hp_server; do
    haproxy -f "$WORK/$side.cfg" -D -p "$WORK/$side.pid"
done
PID_hp_client=$(cat "$WORK/hp_client.pid")
PID_hp_server=$(cat "$WORK/hp_server.pid")
for port in $HP_BULK $HP_H1 $HP_H1_FULL $HS_BULK $HS_H1; do
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
done

# Each target: its two ports (bulk, HTTP/1) and its two processes.
declare -A BULK_PORT H1_PORT PIDS_OF
BULK_PORT=([direct]=$BULK_ORIGIN [plain]=$(route_port plain_client 127.0.0.2:$MID_BULK)
    [mtls]=$(route_port mtls_client 127.0.0.1:$BULK_ORIGIN) [haproxy]=$HP_BULK)
H1_PORT=([direct]=$H1_ORIGIN [plain]=$(route_port plain_client 127.0.0.2:$MID_H1)
    [mtls]=$(route_port mtls_client 127.0.0.1:$H1_ORIGIN) [haproxy]=$HP_H1 [haproxy-full]=$HP_H1_FULL)
PIDS_OF=([direct]="" [plain]="$PID_plain_client $PID_plain_server"
    [mtls]="$PID_mtls_client $PID_mtls_server" [haproxy]="$PID_hp_client $PID_hp_server"
    [haproxy-full]="$PID_hp_client $PID_hp_server")
TARGETS=(direct plain mtls haproxy)

cpu_ticks() {
    local sum=0 pid
    for pid in "$@"; do sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
    echo $sum
}
# haproxy_info SIDE FIELD...: those fields of `show info` from SIDE's stats
# socket, as FIELD=VALUE.
haproxy_info() {
    python3 - "$WORK/$1.sock" "${@:2}" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"show info\n")
info = dict(l.split(": ", 1) for l in b"".join(iter(lambda: s.recv(65536), b"")).decode().splitlines() if ": " in l)
print(" ".join(f"{f}={info[f]}" for f in sys.argv[2:]) if len(sys.argv) > 3 else info[sys.argv[2]])
PY
}
# accepted TARGET: connections the server-side proxy has accepted so far
# (ringside: tcp_open_total{peer="src"}; HAProxy: CumConns).
accepted() {
    case $1 in
    plain | mtls)
        local admin=ADMIN_$1_server
        python3 - "${!admin}" <<'PY'
import re, sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics").read().decode()
print(int(sum(float(v) for v in re.findall(r'^tcp_open_total\{[^}]*peer="src"[^}]*\} (\S+)', text, re.M))))
PY
        ;;
    haproxy*) haproxy_info hp_server CumConns ;;
    *) echo 0 ;;
    esac
}

# run LOAD ROUND TARGET COMMAND...: runs the load, prints one line and
# appends it to $WORK/results.tsv for the summary.
run() {
    local load=$1 round=$2 target=$3
    shift 3
    local before after open_before open_after
    before=$(cpu_ticks ${PIDS_OF[$target]})
    open_before=$(accepted "$target")
    local sampler=""
    if [ "$load" = handshake ] && [ "${target%-full}" = haproxy ]; then
        # Full handshakes against all TLS connections, halfway through:
        # does HAProxy resume its TLS sessions to the server side?
        (sleep "$((SECONDS_PER_RUN / 2))"
            echo "    halfway: server side $(haproxy_info hp_server SslRate SslFrontendKeyRate SslFrontendSessionReuse_pct)," \
                "client side $(haproxy_info hp_client SslBackendKeyRate)") >"$WORK/halfway.out" &
        sampler=$!
    fi
    if [ "$load" = "${PERF_LOAD:-}" ] && [ "$target" = mtls ] && [ "$round" = 1 ]; then
        # The lead's profile: the server-side ringside, for 5 s of this load.
        perf record -g -p "$PID_mtls_server" -o "$PERF_OUT" -- sleep 5 >/dev/null 2>&1 &
    fi
    "$@" >"$WORK/run.out" 2>"$WORK/run.err" || { cat "$WORK/run.err" >&2; exit 1; }
    after=$(cpu_ticks ${PIDS_OF[$target]})
    open_after=$(accepted "$target")
    python3 - "$load" "$round" "$target" "$((after - before))" "$((open_after - open_before))" \
        "$WORK/run.out" "$WORK/results.tsv" <<'PY'
import json, re, sys
load, rnd, target, ticks, opened, path, tsv = sys.argv[1:]
cpu = int(ticks) / 100
text = open(path).read()
line, row = f"  {target:12}", {}
if load.startswith("bulk"):
    end = json.loads(text)["end"]["sum_received"]
    gbits, gb = end["bits_per_second"] / 1e9, end["bytes"] / 1e9
    row = {"value": gbits, "cpu": cpu / gb}
    line += f" {gbits:7.2f} Gbit/s  {gb:5.1f} GB"
    if target != "direct":
        line += f"  proxies' CPU {cpu / gb:.3f} s/GB"
else:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    total = int(re.search(r"(\d+) requests in", text).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", text)
    row = {"value": rps, "cpu": cpu * 1e6 / total}
    line += f" {rps:9,.0f} {'conn' if load == 'handshake' else 'req'}/s"
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", text, re.M))
    if lat:
        row.update(p50=lat["50"], p99=lat["99"])
        line += f"  p50 {lat['50']:>8}  p99 {lat['99']:>8}"
    if target != "direct":
        unit = "µs/conn" if load == "handshake" else "µs/req"
        line += f"  proxies' CPU {cpu * 1e6 / total:6.1f} {unit}"
        if load == "handshake":
            line += f"  server-side conns {int(opened) / total:.2f} per client conn"
    if errors:
        line += f"  ({errors.group(0)})"
print(line)
with open(tsv, "a") as out:
    out.write(json.dumps(dict(load=load, round=int(rnd), target=target, **row)) + "\n")
PY
    if [ -n "$sampler" ]; then
        wait "$sampler"
        cat "$WORK/halfway.out"
    fi
}

IPERF=(iperf3 -c 127.0.0.1 -t "$SECONDS_PER_RUN" -J)
WRK=(wrk -t1 -d"${SECONDS_PER_RUN}s" --latency)
echo "# $(date -u '+%F %T') UTC, $(git -C "$ROOT" rev-parse --short HEAD), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
    for streams in 1 2; do
        echo "round $round: bulk, iperf3 -P $streams -t $SECONDS_PER_RUN"
        for target in "${TARGETS[@]}"; do
            run "bulk-P$streams" "$round" "$target" "${IPERF[@]}" -P "$streams" -p "${BULK_PORT[$target]}"
        done
    done
    for conns in 1 50; do
        echo "round $round: HTTP/1 keep-alive, wrk -t1 -c$conns"
        for target in "${TARGETS[@]}"; do
            run "http1-c$conns" "$round" "$target" "${WRK[@]}" -c"$conns" "http://127.0.0.1:${H1_PORT[$target]}/"
        done
    done
    echo "round $round: new connections, wrk -t1 -c8 -H 'Connection: close'"
    for target in "${TARGETS[@]}" haproxy-full; do
        run handshake "$round" "$target" "${WRK[@]}" -c8 -H 'Connection: close' "http://127.0.0.1:${H1_PORT[$target]}/"
    done
    echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
done

# Medians over the rounds, and mTLS ringside against HAProxy within each
# round (the ratios are the figures to read; the machine is shared).
python3 - "$WORK/results.tsv" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
loads = list(dict.fromkeys(r["load"] for r in rows))
print("\nmedian over rounds (min-max); cpu: s/GB for bulk, µs per request or connection otherwise")
print(f"{'load':10} {'target':12} {'value':>22} {'cpu':>20}")
for load in loads:
    for target in ["direct", "plain", "mtls", "haproxy", "haproxy-full"]:
        got = [r for r in rows if r["load"] == load and r["target"] == target]
        if not got:
            continue
        v = [r["value"] for r in got]
        c = [r["cpu"] for r in got]
        fmt = (lambda x: f"{x:.2f}") if load.startswith("bulk") else (lambda x: f"{x:,.0f}")
        cfmt = (lambda x: f"{x:.3f}") if load.startswith("bulk") else (lambda x: f"{x:.1f}")
        vs = f"{fmt(statistics.median(v))} ({fmt(min(v))}-{fmt(max(v))})"
        cs = "" if target == "direct" else f"{cfmt(statistics.median(c))} ({cfmt(min(c))}-{cfmt(max(c))})"
        lat = ""
        if "p50" in got[0]:
            lat = "  p50/p99 by round: " + ", ".join(f"{r['p50']}/{r['p99']}" for r in got)
        print(f"{load:10} {target:12} {vs:>22} {cs:>20}{lat}")
    by_round = {}
    for r in rows:
        if r["load"] == load:
            by_round.setdefault(r["round"], {})[r["target"]] = r
    value = [x["mtls"]["value"] / x["haproxy"]["value"] for x in by_round.values()]
    cpu = [x["mtls"]["cpu"] / x["haproxy"]["cpu"] for x in by_round.values() if x["haproxy"]["cpu"]]
    plain = [x["mtls"]["value"] / x["plain"]["value"] for x in by_round.values()]
    print(f"{load:10} mtls/haproxy by round: {', '.join(f'{x:.2f}' for x in value)}"
          f"; CPU mtls/haproxy: {', '.join(f'{x:.2f}' for x in cpu)}"
          f"; mtls/plain: {', '.join(f'{x:.2f}' for x in plain)}")
    full = [x["mtls"]["value"] / x["haproxy-full"]["value"] for x in by_round.values() if "haproxy-full" in x]
    full_cpu = [x["mtls"]["cpu"] / x["haproxy-full"]["cpu"] for x in by_round.values() if "haproxy-full" in x]
    if full:
        print(f"{load:10} mtls/haproxy-full by round: {', '.join(f'{x:.2f}' for x in full)}"
              f"; CPU: {', '.join(f'{x:.2f}' for x in full_cpu)}")
PY
