#!/usr/bin/env bash
# Profiles the agent under the end-to-end load tool (benches/spop_load.rs) with perf's software
# clock (this machine is a VM without hardware counters: `perf stat -e instructions` says
# "not supported", but `-e cpu-clock` sampling works), then prints the hottest functions.
#
#   scripts/profile-agent.sh [SECONDS] [-- LOAD-TOOL ARGS]
#   scripts/profile-agent.sh 8 -- --rate 20000 --style 3
#
# The perf data and the full report stay in $OUT (default /tmp/spoa-profile).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-8}
shift || true
[ "${1:-}" = "--" ] && shift
OUT=${OUT:-/tmp/spoa-profile}
mkdir -p "$OUT"
command -v perf >/dev/null || { echo "profile-agent: perf not found (apt-get install linux-perf)" >&2; exit 2; }

cargo build --release --bin spoa-mirror --bench spop_load >&2
LOAD=$(ls -t target/release/deps/spop_load-* | grep -v '\.d$' | head -1)
AGENT=target/release/spoa-mirror

"$LOAD" --bench --agent "$AGENT" --duration "$((SECS + 4))s" "$@" >"$OUT/load.out" 2>&1 &
LOAD_PID=$!
trap 'kill -TERM $LOAD_PID 2>/dev/null || true' EXIT
# The agent is the load tool's child; wait for it (bounded) and let the run warm up.
AGENT_PID=
for _ in $(seq 100); do
    AGENT_PID=$(pgrep -P "$LOAD_PID" -x spoa-mirror || true)
    [ -n "$AGENT_PID" ] && break
    sleep 0.05
done
[ -n "$AGENT_PID" ] || { echo "profile-agent: the agent did not start" >&2; exit 1; }
sleep 2
perf record -q -e cpu-clock -F 1999 -g --call-graph dwarf,16384 -p "$AGENT_PID" -o "$OUT/perf.data" -- sleep "$SECS" 2>/dev/null
wait "$LOAD_PID" || true
trap - EXIT
cat "$OUT/load.out"
perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio -g none --percent-limit 0.7 2>/dev/null \
    | grep -v "^#" | grep -v "^$" | sed "s/  *-  *- *$//" | cut -c1-160 | head -45 | tee "$OUT/top.txt"
echo "children view (inclusive):"
perf report -i "$OUT/perf.data" --children --sort symbol --stdio -g none --percent-limit 3 2>/dev/null \
    | grep -v "^#" | grep -v "^$" | sed "s/  *-  *- *$//" | cut -c1-160 | head -45 | tee "$OUT/top-inclusive.txt"
