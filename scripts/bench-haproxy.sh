#!/usr/bin/env bash
# The issue-5 measurement through a real HAProxy (Debian's 2.6 on PATH) with wrk as the client:
# three frontends on one HAProxy, each in front of the same primary server,
#   plain    no SPOE filter
#   mirror   SPOE -> spoa-mirror -u http://sink/   (mirrors every request)
#   ceiling  SPOE -> spoa-mirror without -u         (ACKs, mirrors nothing: HAProxy's own SPOE cost)
# measured with `wrk -t2 -c50 -d10s` each, ROUNDS times, interleaved. Prints each run and then
# min/median/max of: throughput per frontend, mirrored/plain and ceiling/plain ratios, agent
# CPU-seconds per 1,000 mirrored requests, TCP connections opened to the mirror per 1,000
# requests, loss (requests HAProxy forwarded to the primary minus requests the mirror received),
# and the agent's peak RSS (VmHWM).
#
#   scripts/bench-haproxy.sh                     # ROUNDS=3 DURATION=10s
#   ROUNDS=5 DURATION=10s WRK_CONNS=50 AGENT_ARGS="-n 1" scripts/bench-haproxy.sh
#
# Everything listens on 127.0.0.1, ports are chosen at run time, files live in a temp dir, and
# every process started here is stopped on exit. Before each run it waits (at most LOAD_WAIT
# seconds) for the 1-minute load average to fall below MAX_LOAD, and records the load it ran at.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-50}
MAX_LOAD=${MAX_LOAD:-0.7}
LOAD_WAIT=${LOAD_WAIT:-120}
AGENT_ARGS=${AGENT_ARGS:-}
HAPROXY=${HAPROXY:-haproxy}

cd "$(dirname "$0")/.."
for tool in "$HAPROXY" wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "bench-haproxy: $tool not found" >&2; exit 2; }
done
if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release --bin spoa-mirror --example http-sink >&2
fi
AGENT=${AGENT:-target/release/spoa-mirror}
SINK=target/release/examples/http-sink

DIR=$(mktemp -d /tmp/bench-haproxy.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    [ -n "${KEEP:-}" ] && echo "kept $DIR" >&2 || rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() { # port name
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    [ -f "$DIR/haproxy.log" ] && cat "$DIR/haproxy.log" >&2
    echo "bench-haproxy: $2 did not listen on $1" >&2
    exit 1
}
load1() { cut -d' ' -f1 /proc/loadavg; }
wait_load() {
    local deadline=$((SECONDS + LOAD_WAIT))
    while awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN{exit !(l >= m)}'; do
        if [ $SECONDS -ge $deadline ]; then
            echo "bench-haproxy: load $(load1) still >= $MAX_LOAD after ${LOAD_WAIT}s; measuring anyway" >&2
            return
        fi
        sleep 5
    done
}
cpu_ticks() { # utime+stime of a pid, in clock ticks
    awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"
}
sink_count() { # port field
    curl -s "http://127.0.0.1:$1/stats" | tr ' ' '\n' | sed -n "s/^$2=//p"
}
metric() { # metrics-port name
    curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n {printf "%d\n", $2}'
}

P_PRIMARY=$(free_port); P_MIRROR=$(free_port)
P_AGENT_M=$(free_port); P_AGENT_C=$(free_port); P_METRICS_M=$(free_port)
P_PLAIN=$(free_port); P_FE_MIRROR=$(free_port); P_FE_CEILING=$(free_port)

"$SINK" "127.0.0.1:$P_PRIMARY" >"$DIR/primary.out" 2>&1 & PIDS+=($!)
"$SINK" "127.0.0.1:$P_MIRROR" >"$DIR/mirror.out" 2>&1 & PIDS+=($!)
# shellcheck disable=SC2086 # AGENT_ARGS is a list of words
"$AGENT" -a 127.0.0.1 -p "$P_AGENT_M" -c pipelining -u "http://127.0.0.1:$P_MIRROR/" \
    --metrics-address "127.0.0.1:$P_METRICS_M" $AGENT_ARGS >"$DIR/agent-mirror.log" 2>&1 &
AGENT_M=$!; PIDS+=($AGENT_M)
# shellcheck disable=SC2086
"$AGENT" -a 127.0.0.1 -p "$P_AGENT_C" -c pipelining $AGENT_ARGS >"$DIR/agent-ceiling.log" 2>&1 &
AGENT_C=$!; PIDS+=($AGENT_C)
for p in "$P_PRIMARY" "$P_MIRROR" "$P_AGENT_M" "$P_AGENT_C" "$P_METRICS_M"; do wait_port "$p" "port $p"; done

for engine in mirror ceiling; do
    cat >"$DIR/spoe-$engine.cfg" <<EOF
[$engine]
spoe-agent $engine
    messages mirror
    use-backend agents_$engine
    option pipelining
    option async
    option set-on-error err
    timeout hello 500ms
    timeout idle 5s
    timeout processing 5s

spoe-message mirror
    args arg_method=method arg_path=url arg_ver=req.ver arg_hdrs=req.hdrs_bin arg_body=req.body
    event on-frontend-http-request
EOF
done
cat >"$DIR/haproxy.cfg" <<EOF
global
    noreuseport
    ${HAPROXY_NBTHREAD:+nbthread $HAPROXY_NBTHREAD}

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend plain
    bind 127.0.0.1:$P_PLAIN
    default_backend primary

frontend mirror
    bind 127.0.0.1:$P_FE_MIRROR
    filter spoe engine mirror config $DIR/spoe-mirror.cfg
    default_backend primary

frontend ceiling
    bind 127.0.0.1:$P_FE_CEILING
    filter spoe engine ceiling config $DIR/spoe-ceiling.cfg
    default_backend primary

backend primary
    server primary1 127.0.0.1:$P_PRIMARY

backend agents_mirror
    mode tcp
    server agent1 127.0.0.1:$P_AGENT_M

backend agents_ceiling
    mode tcp
    server agent1 127.0.0.1:$P_AGENT_C
EOF
"$HAPROXY" -c -q -f "$DIR/haproxy.cfg" >&2
"$HAPROXY" -db -f "$DIR/haproxy.cfg" >"$DIR/haproxy.log" 2>&1 & PIDS+=($!)
for p in "$P_PLAIN" "$P_FE_MIRROR" "$P_FE_CEILING"; do wait_port "$p" "haproxy frontend"; done

HZ=$(getconf CLK_TCK)
RESULTS="$DIR/results"
: >"$RESULTS"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
echo "haproxy: $("$HAPROXY" -v | head -1)"
echo "client:  wrk -t$WRK_THREADS -c$WRK_CONNS -d$DURATION, $ROUNDS rounds; agent: -c pipelining${AGENT_ARGS:+ $AGENT_ARGS}"

run_wrk() { # port -> "reqs_per_s total_requests"
    wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$DURATION" "http://127.0.0.1:$1/bench?x=1" >"$DIR/wrk.out" 2>&1
    awk '/requests in/ {n=$1} /^Requests\/sec:/ {r=$2} END {print r, n}' "$DIR/wrk.out"
}

for round in $(seq "$ROUNDS"); do
    for fe in plain mirror ceiling; do
        case $fe in plain) port=$P_PLAIN ;; mirror) port=$P_FE_MIRROR ;; ceiling) port=$P_FE_CEILING ;; esac
        wait_load
        load=$(load1)
        prim0=$(sink_count "$P_PRIMARY" requests)
        mir0=$(sink_count "$P_MIRROR" requests); conn0=$(sink_count "$P_MIRROR" connections)
        cpu0=$(cpu_ticks "$AGENT_M"); ccpu0=$(cpu_ticks "$AGENT_C")
        read -r rps total < <(run_wrk "$port")
        line="round=$round fe=$fe load=$load rps=$rps wrk_requests=$total"
        if [ "$fe" = mirror ]; then
            prim1=$(sink_count "$P_PRIMARY" requests)
            # Let the agent finish what it accepted (bounded).
            for _ in $(seq 100); do
                [ $(( $(sink_count "$P_MIRROR" requests) - mir0 )) -ge $((prim1 - prim0)) ] && break
                sleep 0.1
            done
            mir1=$(sink_count "$P_MIRROR" requests); conn1=$(sink_count "$P_MIRROR" connections)
            cpu1=$(cpu_ticks "$AGENT_M")
            forwarded=$((prim1 - prim0)); mirrored=$((mir1 - mir0)); conns=$((conn1 - conn0))
            line="$line forwarded=$forwarded mirrored=$mirrored lost=$((forwarded - mirrored))"
            line="$line cpu_s_per_1000=$(awk -v c=$((cpu1 - cpu0)) -v hz="$HZ" -v n="$mirrored" 'BEGIN{printf "%.4f", c / hz * 1000 / (n ? n : 1)}')"
            line="$line conns=$conns conns_per_1000=$(awk -v c="$conns" -v n="$mirrored" 'BEGIN{printf "%.2f", c * 1000 / (n ? n : 1)}')"
        fi
        if [ "$fe" = ceiling ]; then
            prim1=$(sink_count "$P_PRIMARY" requests)
            line="$line ack_only_cpu_s_per_1000=$(awk -v c=$(($(cpu_ticks "$AGENT_C") - ccpu0)) -v hz="$HZ" -v n=$((prim1 - prim0)) 'BEGIN{printf "%.4f", c / hz * 1000 / (n ? n : 1)}')"
        fi
        echo "$line" | tee -a "$RESULTS"
    done
done

HWM=$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$AGENT_M/status")
DROPS="queue-full $(metric "$P_METRICS_M" spoa_mirror_mirror_dropped_queue_full_total) memory $(metric "$P_METRICS_M" spoa_mirror_mirror_dropped_memory_total) failed $(( $(metric "$P_METRICS_M" spoa_mirror_mirror_failed_connect_total) + $(metric "$P_METRICS_M" spoa_mirror_mirror_failed_timeout_total) + $(metric "$P_METRICS_M" spoa_mirror_mirror_failed_other_total) ))"

# min/median/max of one field over the rows matching fe=...
stat() { # fe field
    grep " fe=$1 " "$RESULTS" | tr ' ' '\n' | sed -n "s/^$2=//p" | sort -g |
        awk '{v[NR]=$1} END {if (NR) printf "%s / %s / %s", v[1], v[int((NR+1)/2)], v[NR]; else print "-"}'
}
# Per-round ratio fe/plain, then min/median/max.
ratio() {
    for r in $(seq "$ROUNDS"); do
        a=$(grep "^round=$r fe=$1 " "$RESULTS" | tr ' ' '\n' | sed -n 's/^rps=//p')
        b=$(grep "^round=$r fe=plain " "$RESULTS" | tr ' ' '\n' | sed -n 's/^rps=//p')
        awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f\n", a / b}'
    done | sort -g | awk '{v[NR]=$1} END {printf "%s / %s / %s", v[1], v[int((NR+1)/2)], v[NR]}'
}
echo
echo "summary (min / median / max over $ROUNDS rounds)"
echo "  throughput plain      $(stat plain rps) req/s"
echo "  throughput mirrored   $(stat mirror rps) req/s"
echo "  throughput ceiling    $(stat ceiling rps) req/s"
echo "  ratio mirrored/plain  $(ratio mirror)"
echo "  ratio ceiling/plain   $(ratio ceiling)"
echo "  agent CPU-s per 1000  $(stat mirror cpu_s_per_1000)"
echo "  ceiling agent CPU-s/1000 $(stat ceiling ack_only_cpu_s_per_1000) (SPOP and ACK only)"
echo "  mirror conns per 1000 $(stat mirror conns_per_1000)"
echo "  lost (fwd - mirrored) $(stat mirror lost)"
echo "  load during runs      $(stat plain load) (plain), $(stat mirror load) (mirror)"
echo "  agent peak RSS        $HWM MB (VmHWM, whole session)"
echo "  agent drop counters   $DROPS"
