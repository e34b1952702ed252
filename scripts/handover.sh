#!/usr/bin/env bash
# Figures for RELIABILITY.md, "Restarts": the agent restarted under steady client load through
# HAProxy (4 keep-alive clients, the examples' settings), once by a hand-over (SIGUSR2) and once
# by a stop and a start on the same port (what `systemctl restart` does). Each run prints two
# `RELIABILITY handover` lines per HAProxy version: client errors, requests the mirror never
# got, and the latencies of the requests during the restart (measured, not asserted).
#
#   bash scripts/handover.sh            # 3 runs, HAProxy 2.6 and 2.8
#   RUNS=5 VERSIONS="2_6 2_8 3" bash scripts/handover.sh
#
# HAPROXY26 / HAPROXY28 / HAPROXY3 select the binaries (tests/common/haproxy.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-3}"
versions="${VERSIONS:-2_6 2_8}"
filters=()
for v in $versions; do
    filters+=("restart_figures::haproxy_$v")
done
cargo test --test handover --no-run >/dev/null
for run in $(seq "$runs"); do
    echo "# run $run"
    cargo test --test handover -- --ignored --exact --test-threads 1 --nocapture "${filters[@]}" 2>&1 |
        grep -E '^RELIABILITY handover|^test result|panicked' || true
done
