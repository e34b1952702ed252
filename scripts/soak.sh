#!/usr/bin/env bash
# 10-minute soak through a real HAProxy 2.6 at a steady rate (tests/reliability.rs
# soak_steady_rate): RSS and descriptors of the agent at start/peak/end, every request
# mirrored, no SPOE error, alert or warning in HAProxy's log. nice'd.
#
#   scripts/soak.sh [SECONDS] [RATE]     (default 600 s at 200 req/s)
set -u
cd "$(dirname "$0")/.."
export SOAK_SECS=${1:-600} SOAK_RATE=${2:-200}
mkdir -p target
nice -n 19 cargo test --test reliability soak_steady_rate -- --ignored --nocapture 2>&1 \
    | tee target/soak.log | grep -E "^RELIABILITY|^test |test result|panicked"
exit "${PIPESTATUS[0]}"
