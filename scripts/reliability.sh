#!/usr/bin/env bash
# The heavy reliability checks of issue 6, nice'd and one at a time: the #[ignore]d tests of
# tests/reliability.rs (100,000 requests without loss, overload, the binary's 30 s slowloris,
# a 60 s soak; the 10-minute soak is scripts/soak.sh), then the fast ones, printing every
# `RELIABILITY ...` figure line. Results also go to target/reliability.log.
#
#   scripts/reliability.sh            # all
#   RELIABILITY_REQUESTS=20000 scripts/reliability.sh no_loss   # one test, fewer requests
set -u
cd "$(dirname "$0")/.."
log=target/reliability.log
mkdir -p target
filter=${1:-}
# The HAProxy-based tests run once per HAProxy (2.6, 2.8, 3.x). --include-ignored also runs
# the variants of a version that was not found, which then fail: get 3.x here when HAPROXY3
# is not set (scripts/haproxy3.sh), and skip its variants if that is not possible.
skip=()
if [[ -z "${HAPROXY3:-}" ]]; then
    if HAPROXY3="$(bash scripts/haproxy3.sh)"; then
        export HAPROXY3
    else
        echo "HAProxy 3.x not available: skipping the haproxy_3 variants"
        skip=(--skip haproxy_3)
    fi
fi
{
    nice -n 19 cargo test --test reliability -- --include-ignored --nocapture --test-threads 1 "${skip[@]}" $filter
} 2>&1 | tee "$log" | grep -E "^RELIABILITY|^test |test result"
exit "${PIPESTATUS[0]}"
