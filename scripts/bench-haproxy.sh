#!/usr/bin/env bash
# Side-by-side cost of mirroring through a real HAProxy, in one run (issue 14):
#
#   plain       HAProxy frontend, no SPOE filter                      (the reference throughput)
#   ceiling     SPOE -> our agent without -u: ACK only, mirrors nothing (HAProxy's own SPOE cost)
#   ours        SPOE -> our agent as the documentation starts it: `-r0 -u URL`, no -c
#   ours-strict the same with --original-capabilities (the original's HELLO: no pipelining unless
#               -c asks for it); only if the agent has that option
#   ours-pipe   SPOE -> our agent with `-c pipelining`
#   ours-b      the same as `ours` with another build of ours (AGENT_B), for before/after
#   ours-shadow `ours` with shadow comparison (opt-in: name it in VARIANTS): the frontend sends
#               the primary's response too (unique-id, wait-for-body, send-spoe-group, as
#               examples/haproxy-shadow.cfg), the mirror is a `compare = "candidate"` target,
#               and every request is compared; prints the agent's shadow counters
#   original    SPOE -> the C original (`$ORIGINAL -r0 -u URL`), if ORIGINAL names its binary
#   nginx       nginx in front of the same primary, without and with its `mirror` directive to the
#               same mirror (what an operator would pick instead), if nginx is installed
#   floor       wrk straight at the primary: wrk's own CPU per keep-alive request
#
# Every frontend is measured with `wrk -t2 -c50 -d10s`, ROUNDS times, interleaved (round 1 runs
# every variant, then round 2, ...). The primary and the mirror are the repository's http-sink
# (release build), which counts what it receives, so losses are exact. Prints every run, then
# min / median / max per figure, as a Markdown table.
#
#   scripts/bench-haproxy.sh                       # HAProxy on PATH (Debian's 2.6), 3 rounds
#   HAPROXY=/path/to/haproxy ORIGINAL=/tmp/orig/src/spoa-mirror ROUNDS=3 scripts/bench-haproxy.sh
#   VARIANTS="ceiling ours ours-pipe" DURATION=5s scripts/bench-haproxy.sh
#   AGENT=/tmp/old/spoa-mirror NO_BUILD=1 scripts/bench-haproxy.sh   # another build of ours
#
# Everything listens on 127.0.0.1, ports are chosen at run time, files live in a temp dir, and
# every process started here is stopped on exit. Before each run it waits (at most LOAD_WAIT
# seconds) for the 1-minute load average to fall below MAX_LOAD, and records the load it ran at.
# HAProxy 3.1+ is detected and gets `mode spop` agent backends.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-50}
MAX_LOAD=${MAX_LOAD:-0.7}
LOAD_WAIT=${LOAD_WAIT:-120}
AGENT_ARGS=${AGENT_ARGS:-}
HAPROXY=${HAPROXY:-haproxy}
ORIGINAL=${ORIGINAL:-}
NGINX=${NGINX:-$(command -v nginx || true)}

cd "$(dirname "$0")/.."
for tool in "$HAPROXY" wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "bench-haproxy: $tool not found" >&2; exit 2; }
done
if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release --bin spoa-mirror --example http-sink >&2
fi
AGENT=${AGENT:-target/release/spoa-mirror}
SINK=target/release/examples/http-sink

if [ -z "${VARIANTS:-}" ]; then
    VARIANTS="ceiling ours"
    if "$AGENT" --help 2>&1 | grep -q -- --original-capabilities; then VARIANTS="$VARIANTS ours-strict"; fi
    VARIANTS="$VARIANTS ours-pipe"
    if [ -n "${AGENT_B:-}" ]; then VARIANTS="$VARIANTS ours-b"; fi
    if [ -n "$ORIGINAL" ]; then VARIANTS="$VARIANTS original"; fi
    if [ -n "$NGINX" ]; then VARIANTS="$VARIANTS nginx-plain nginx-mirror"; fi
    VARIANTS="$VARIANTS floor"
fi
if [ -n "$ORIGINAL" ] && [ ! -x "$ORIGINAL" ]; then
    echo "bench-haproxy: ORIGINAL=$ORIGINAL is not an executable" >&2; exit 2
fi

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
    for f in "$DIR"/*.log; do echo "== $f" >&2; tail -n 20 "$f" >&2; done
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
cpu_ticks() { # utime+stime of pids (summed), in clock ticks
    local t=0 p
    for p in "$@"; do
        t=$((t + $(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat")))
    done
    echo "$t"
}
sink_count() { # port field
    curl -s "http://127.0.0.1:$1/stats" | tr ' ' '\n' | sed -n "s/^$2=//p"
}
per_1000() { # ticks count -> CPU-seconds per 1000
    awk -v c="$1" -v hz="$HZ" -v n="$2" 'BEGIN{printf "%.4f", c / hz * 1000 / (n ? n : 1)}'
}

HZ=$(getconf CLK_TCK)
HAPROXY_VERSION=$("$HAPROXY" -v | head -1)
# 3.1+: the agents' backend is `mode spop`; `option async` is gone.
SPOP_MODE=$(echo "$HAPROXY_VERSION" | awk '{split($3, v, "."); print (v[1] > 3 || (v[1] == 3 && v[2] >= 1)) ? 1 : 0}')

P_PRIMARY=$(free_port); P_MIRROR=$(free_port); P_PLAIN=$(free_port)
"$SINK" "127.0.0.1:$P_PRIMARY" >"$DIR/primary.log" 2>&1 & PIDS+=($!)
"$SINK" "127.0.0.1:$P_MIRROR" >"$DIR/mirror.log" 2>&1 & PIDS+=($!)
MIRROR_URL="http://127.0.0.1:$P_MIRROR/"

declare -A FE_PORT AGENT_PID AGENT_PORT
start_agent() { # variant command...
    local v=$1; shift
    "$@" >"$DIR/agent-$v.log" 2>&1 &
    AGENT_PID[$v]=$!; PIDS+=($!)
}
for v in $VARIANTS; do
    case $v in floor | nginx-*) continue ;; esac
    FE_PORT[$v]=$(free_port); p=$(free_port); AGENT_PORT[$v]=$p
    # shellcheck disable=SC2086 # AGENT_ARGS is a list of words
    case $v in
        ceiling) start_agent "$v" "$AGENT" -r0 -a 127.0.0.1 -p "$p" $AGENT_ARGS ;;
        ours) start_agent "$v" "$AGENT" -r0 -a 127.0.0.1 -p "$p" -u "$MIRROR_URL" $AGENT_ARGS ;;
        ours-strict) start_agent "$v" "$AGENT" -r0 -a 127.0.0.1 -p "$p" -u "$MIRROR_URL" --original-capabilities $AGENT_ARGS ;;
        ours-b) start_agent "$v" "$AGENT_B" -r0 -a 127.0.0.1 -p "$p" -u "$MIRROR_URL" $AGENT_ARGS ;;
        ours-pipe) start_agent "$v" "$AGENT" -r0 -a 127.0.0.1 -p "$p" -c pipelining -u "$MIRROR_URL" $AGENT_ARGS ;;
        ours-shadow)
            printf '[shadow]\n\n[[target]]\nname = "candidate"\nurl = "%s"\ncompare = "candidate"\n' "$MIRROR_URL" >"$DIR/shadow.toml"
            SHADOW_METRICS=$(free_port)
            start_agent "$v" "$AGENT" -r0 -a 127.0.0.1 -p "$p" --config "$DIR/shadow.toml" \
                --metrics-address "127.0.0.1:$SHADOW_METRICS" $AGENT_ARGS ;;
        original) start_agent "$v" "$ORIGINAL" -r0 -a 127.0.0.1 -p "$p" -u "$MIRROR_URL" ;;
        *) echo "bench-haproxy: unknown variant $v" >&2; exit 2 ;;
    esac
done
for p in "$P_PRIMARY" "$P_MIRROR" "${AGENT_PORT[@]}"; do wait_port "$p" "port $p"; done

{
    echo "global"
    echo "    noreuseport"
    [ -n "${HAPROXY_NBTHREAD:-}" ] && echo "    nbthread $HAPROXY_NBTHREAD"
    cat <<EOF

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend plain
    bind 127.0.0.1:$P_PLAIN
    default_backend primary

backend primary
    server primary1 127.0.0.1:$P_PRIMARY
EOF
    for v in "${!AGENT_PORT[@]}"; do
        id=${v//-/_} # HAProxy names: [a-zA-Z0-9_.]
        cat <<EOF

frontend fe_$id
    bind 127.0.0.1:${FE_PORT[$v]}
    filter spoe engine $id config $DIR/spoe-$v.cfg
    default_backend primary
$([ "$v" = ours-shadow ] && printf '    unique-id-format %%{+X}o%%ci:%%cp_%%fi:%%fp_%%Ts_%%rt:%%pid\n    http-response wait-for-body time 1s\n    http-response send-spoe-group %s mirror-response\n' "$id")

backend agents_$id
    mode $([ "$SPOP_MODE" = 1 ] && echo spop || echo tcp)
    server agent1 127.0.0.1:${AGENT_PORT[$v]}
EOF
        # The SPOE configuration of the agent's documentation (HAProxy offers pipelining itself).
        {
            echo "[$id]"
            echo "spoe-agent $id"
            echo "    messages mirror"
            echo "    use-backend agents_$id"
            if [ "$SPOP_MODE" = 0 ]; then
                echo "    option pipelining"
                echo "    option async"
                echo "    timeout hello 500ms"
                echo "    timeout idle 5s"
            fi
            echo "    option set-on-error err"
            echo "    timeout processing 5s"
            if [ "$v" = ours-shadow ]; then
                echo "    groups mirror-response"
                echo
                echo "spoe-message mirror"
                echo "    args arg_method=method arg_path=url arg_ver=req.ver arg_hdrs=req.hdrs_bin arg_body=req.body arg_id=unique-id"
                echo "    event on-frontend-http-request"
                echo
                echo "spoe-message mirror-response"
                echo "    args arg_id=unique-id arg_status=status arg_hdrs=res.hdrs_bin arg_body=res.body"
                echo
                echo "spoe-group mirror-response"
                echo "    messages mirror-response"
            else
                echo
                echo "spoe-message mirror"
                echo "    args arg_method=method arg_path=url arg_ver=req.ver arg_hdrs=req.hdrs_bin arg_body=req.body"
                echo "    event on-frontend-http-request"
            fi
        } >"$DIR/spoe-$v.cfg"
    done
} >"$DIR/haproxy.cfg"
"$HAPROXY" -c -f "$DIR/haproxy.cfg" >"$DIR/haproxy-check.log" 2>&1 || { cat "$DIR/haproxy-check.log" >&2; exit 1; }
"$HAPROXY" -db -f "$DIR/haproxy.cfg" >"$DIR/haproxy.log" 2>&1 & HAPROXY_PID=$!; PIDS+=($!)
for v in "${!AGENT_PORT[@]}"; do wait_port "${FE_PORT[$v]}" "haproxy frontend $v"; done
wait_port "$P_PLAIN" "haproxy frontend plain"

NGINX_PIDS=()
if [[ " $VARIANTS " == *" nginx-"* ]]; then
    FE_PORT[nginx-plain]=$(free_port); FE_PORT[nginx-mirror]=$(free_port)
    mkdir -p "$DIR/nginx"
    # Two servers in one nginx, both with keep-alive upstreams (as HAProxy reuses its server
    # connections): without and with `mirror` to the same mirror sink.
    cat >"$DIR/nginx/nginx.conf" <<EOF
worker_processes $(nproc);
pid $DIR/nginx/nginx.pid;
error_log $DIR/nginx.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $DIR/nginx;
    proxy_temp_path $DIR/nginx;
    upstream primary { server 127.0.0.1:$P_PRIMARY; keepalive 64; }
    upstream mirror { server 127.0.0.1:$P_MIRROR; keepalive 64; }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    server {
        listen 127.0.0.1:${FE_PORT[nginx-plain]};
        location / { proxy_pass http://primary; }
    }
    server {
        listen 127.0.0.1:${FE_PORT[nginx-mirror]};
        location / { mirror /mirror; proxy_pass http://primary; }
        location = /mirror { internal; proxy_pass http://mirror\$request_uri; }
    }
}
EOF
    "$NGINX" -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" -g 'daemon off;' >"$DIR/nginx-stdout.log" 2>&1 &
    NGINX_MASTER=$!; PIDS+=($!)
    wait_port "${FE_PORT[nginx-plain]}" "nginx"; wait_port "${FE_PORT[nginx-mirror]}" "nginx"
    mapfile -t NGINX_PIDS < <(pgrep -P "$NGINX_MASTER"); NGINX_PIDS+=("$NGINX_MASTER")
fi

RESULTS="$DIR/results"
: >"$RESULTS"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
echo "haproxy: $HAPROXY_VERSION"
[ -n "$ORIGINAL" ] && echo "original: $ORIGINAL ($("$ORIGINAL" -V 2>&1 | head -1))"
[ -n "$NGINX" ] && echo "nginx:   $("$NGINX" -v 2>&1)"
echo "ours:    $AGENT ($("$AGENT" -V 2>&1 | head -1))${AGENT_ARGS:+ $AGENT_ARGS}"
[ -n "${AGENT_B:-}" ] && echo "ours-b:  $AGENT_B"
echo "client:  wrk -t$WRK_THREADS -c$WRK_CONNS -d$DURATION, $ROUNDS rounds; variants: plain $VARIANTS"

# wrk under a parent that reports its children's CPU time: "reqs_per_s total_requests wrk_cpu_s".
run_wrk() { # port
    python3 - "$DIR/wrk.out" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$DURATION" "http://127.0.0.1:$1/bench?x=1" <<'EOF'
import resource, subprocess, sys
with open(sys.argv[1], "w") as out:
    subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.STDOUT, check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(r.ru_utime + r.ru_stime)
EOF
}
wrk_figures() { # cpu -> "rps total cpu"
    awk -v cpu="$1" '/requests in/ {n=$1} /^Requests\/sec:/ {r=$2} END {print r, n, cpu}' "$DIR/wrk.out"
}

for round in $(seq "$ROUNDS"); do
    for v in plain $VARIANTS; do
        case $v in
            plain) port=$P_PLAIN ;;
            floor) port=$P_PRIMARY ;;
            *) port=${FE_PORT[$v]} ;;
        esac
        wait_load
        load=$(load1)
        prim0=$(sink_count "$P_PRIMARY" requests)
        mir0=$(sink_count "$P_MIRROR" requests); conn0=$(sink_count "$P_MIRROR" connections)
        hcpu0=$(cpu_ticks "$HAPROXY_PID")
        acpu0=0; [ -n "${AGENT_PID[$v]:-}" ] && acpu0=$(cpu_ticks "${AGENT_PID[$v]}")
        ncpu0=0; [[ $v == nginx-* ]] && ncpu0=$(cpu_ticks "${NGINX_PIDS[@]}")
        wcpu=$(run_wrk "$port")
        read -r rps total wcpu < <(wrk_figures "$wcpu")
        prim1=$(sink_count "$P_PRIMARY" requests)
        forwarded=$((prim1 - prim0))
        line="round=$round v=$v load=$load rps=$rps requests=$total"
        line="$line wrk_cpu_s_per_1000=$(awk -v c="$wcpu" -v n="$total" 'BEGIN{printf "%.4f", c * 1000 / (n ? n : 1)}')"
        case $v in
            plain | ceiling | ours* | original)
                line="$line haproxy_cpu_s_per_1000=$(per_1000 $(($(cpu_ticks "$HAPROXY_PID") - hcpu0)) "$forwarded")" ;;
            nginx-*)
                line="$line nginx_cpu_s_per_1000=$(per_1000 $(($(cpu_ticks "${NGINX_PIDS[@]}") - ncpu0)) "$forwarded")" ;;
        esac
        case $v in
            ours* | original | nginx-mirror)
                # Let the mirror catch up with what was forwarded (bounded: 10 s).
                for _ in $(seq 100); do
                    [ $(($(sink_count "$P_MIRROR" requests) - mir0)) -ge "$forwarded" ] && break
                    sleep 0.1
                done
                mir1=$(sink_count "$P_MIRROR" requests); conn1=$(sink_count "$P_MIRROR" connections)
                mirrored=$((mir1 - mir0))
                line="$line forwarded=$forwarded mirrored=$mirrored lost=$((forwarded - mirrored))"
                line="$line conns_per_1000=$(awk -v c=$((conn1 - conn0)) -v n="$mirrored" 'BEGIN{printf "%.2f", c * 1000 / (n ? n : 1)}')"
                ;;
        esac
        if [ -n "${AGENT_PID[$v]:-}" ]; then
            n=$forwarded
            line="$line agent_cpu_s_per_1000=$(per_1000 $(($(cpu_ticks "${AGENT_PID[$v]}") - acpu0)) "$n")"
        fi
        if [ "$v" = ours-shadow ]; then
            # Compared or counted so far (all rounds): the pairs resolve within the window.
            m=$(curl -s "http://127.0.0.1:$SHADOW_METRICS/metrics")
            sum() { echo "$m" | awk -v n="$1" '$1 ~ "^"n"({|$)" {s += $NF} END {printf "%d", s}'; }
            line="$line compared=$(sum spoa_mirror_shadow_compared_total) unpaired=$(sum spoa_mirror_shadow_unpaired_total) shadow_dropped=$(sum spoa_mirror_shadow_dropped_total)"
        fi
        echo "$line" | tee -a "$RESULTS"
    done
done

# min / median / max of one field over the rows of one variant.
stat() { # variant field
    grep " v=$1 " "$RESULTS" | tr ' ' '\n' | sed -n "s/^$2=//p" | sort -g |
        awk '{v[NR]=$1} END {if (NR) printf "%s / %s / %s", v[1], v[int((NR+1)/2)], v[NR]; else print "-"}'
}
# Per-round ratio of two variants' throughput, then min / median / max.
ratio() { # variant reference
    for r in $(seq "$ROUNDS"); do
        a=$(grep "^round=$r v=$1 " "$RESULTS" | tr ' ' '\n' | sed -n 's/^rps=//p')
        b=$(grep "^round=$r v=$2 " "$RESULTS" | tr ' ' '\n' | sed -n 's/^rps=//p')
        awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f\n", a / b}'
    done | sort -g | awk '{v[NR]=$1} END {printf "%s / %s / %s", v[1], v[int((NR+1)/2)], v[NR]}'
}
us() { # "a / b / c" CPU-s per 1000 -> µs per request
    awk -F' / ' '{printf "%.1f / %.1f / %.1f", $1 * 1000, $2 * 1000, $3 * 1000}'
}
has() { [[ " $VARIANTS " == *" $1 "* ]]; }

echo
echo "summary: min / median / max over $ROUNDS rounds; $HAPROXY_VERSION"
echo
echo "| variant | req/s | ÷ plain | ÷ ceiling | agent CPU µs/req | HAProxy CPU µs/req | lost | mirror conns/1000 | agent peak RSS MB |"
echo "|---|---|---|---|---|---|---|---|---|"
echo "| plain | $(stat plain rps) | 1 | | | $(stat plain haproxy_cpu_s_per_1000 | us) | | | |"
for v in $VARIANTS; do
    case $v in floor | nginx-*) continue ;; esac
    rss=$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/${AGENT_PID[$v]}/status")
    over_ceiling=""; has ceiling && [ "$v" != ceiling ] && over_ceiling=$(ratio "$v" ceiling)
    echo "| $v | $(stat "$v" rps) | $(ratio "$v" plain) | $over_ceiling | $(stat "$v" agent_cpu_s_per_1000 | us) | $(stat "$v" haproxy_cpu_s_per_1000 | us) | $(stat "$v" lost) | $(stat "$v" conns_per_1000) | $rss |"
done
if has nginx-plain && has nginx-mirror; then
    echo
    echo "| nginx | req/s | mirrored ÷ plain | nginx CPU µs/req | lost | mirror conns/1000 |"
    echo "|---|---|---|---|---|---|"
    echo "| plain | $(stat nginx-plain rps) | | $(stat nginx-plain nginx_cpu_s_per_1000 | us) | | |"
    echo "| mirror | $(stat nginx-mirror rps) | $(ratio nginx-mirror nginx-plain) | $(stat nginx-mirror nginx_cpu_s_per_1000 | us) | $(stat nginx-mirror lost) | $(stat nginx-mirror conns_per_1000) |"
fi
if has floor; then
    echo
    echo "floor: wrk's own CPU per keep-alive request straight at the sink: $(stat floor wrk_cpu_s_per_1000 | us) µs ($(stat floor rps) req/s)"
fi
echo "load during runs: $(stat plain load) (plain)"
