# Sourced by the scripts beside it: loadtest origins, and a one-shard
# ringside with two routes, an `http1` one on 127.0.0.1 and an `opaque`
# one on 127.0.0.2. Expects ROOT, WORK and the PIDS array, whose processes
# the caller's EXIT trap kills.

# start_origin KIND VAR: `loadtest origin KIND` in the background; sets
# VAR to its port. (Not `$(...)`: a subshell would lose its pid.)
start_origin() {
    local kind=$1 out="$WORK/origin-$1.out"
    "$ROOT/target/release/loadtest" origin "$kind" >"$out" 2>/dev/null &
    PIDS+=($!)
    for _ in $(seq 200); do
        grep -qE '[0-9]+$' "$out" 2>/dev/null && break
        sleep 0.05
    done
    eval "$2=$(grep -oE '[0-9]+$' "$out" | head -1)"
}

# wait_listening NAME: waits (up to 10 s) for the ringside started with
# its output in $WORK/NAME.out to print its admin line, the last of its
# `listening` lines; exits with its stderr if it never does.
wait_listening() {
    local name=$1
    for _ in $(seq 200); do
        grep -q "listening admin" "$WORK/$name.out" 2>/dev/null && return 0
        sleep 0.05
    done
    cat "$WORK/$name.err" >&2
    exit 1
}

# start_ringside NAME BIN HTTP1_UPSTREAM_PORT OPAQUE_UPSTREAM_PORT: sets
# PID_<NAME>, HTTP_<NAME> and OPAQUE_<NAME> (the two routes' ports).
# OPAQUE_PROTOCOL=detect makes the second route detect instead of being
# declared opaque (what a connection's detection costs).
start_ringside() {
    local name=$1 bin=$2 http1=$3 opaque=$4
    cat >"$WORK/$name.toml" <<CFG
[admin]
listen = "127.0.0.1:0"
[runtime]
shards = 1
[[route]]
listen = "127.0.0.1:0"
upstreams = ["127.0.0.1:$http1"]
protocol = "http1"
[[route]]
listen = "127.0.0.2:0"
upstreams = ["127.0.0.1:$opaque"]
protocol = "${OPAQUE_PROTOCOL:-opaque}"
CFG
    "$bin" --config "$WORK/$name.toml" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS+=($!)
    eval "PID_$name=$!"
    wait_listening "$name"
    local ports
    mapfile -t ports < <(grep -oE 'listening route 127.0.0.[12]:[0-9]+' "$WORK/$name.out" | grep -oE '[0-9]+$')
    eval "HTTP_$name=${ports[0]} OPAQUE_$name=${ports[1]}"
}
