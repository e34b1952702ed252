#!/usr/bin/env bash
# Run every cargo-fuzz target for a fixed time, one at a time, nice'd, and print one summary
# line per target (executions, new corpus entries, crashes). Needs cargo-fuzz
# (`cargo install cargo-fuzz`); the stable toolchain runs it with RUSTC_BOOTSTRAP=1.
#
#   scripts/reliability-fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 300 s, all)
#
# New inputs go to fuzz/corpus-work/<target> (not committed); the committed seeds in
# fuzz/corpus/<target> are read. Crashes land in fuzz/artifacts/<target>/: copy a crash into
# fuzz/regressions/<target>/ once fixed, tests/fuzz_corpus.rs replays it from then on.
# `cargo fuzz cmin` (see RELIABILITY.md) folds corpus-work back into a small corpus.
set -u
cd "$(dirname "$0")/../fuzz"
secs=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(frame hello notify hdrs_bin hdrs_text request)
export RUSTC_BOOTSTRAP=1
nice -n 19 cargo fuzz build -O >/dev/null 2>&1 || { echo "cargo fuzz build failed"; exit 1; }
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus-work/$t" "corpus/$t"
    log="corpus-work/$t.log"
    nice -n 19 cargo fuzz run -O "$t" "corpus-work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    crashes=$(ls "artifacts/$t" 2>/dev/null | wc -l)
    echo "$t: ${secs}s exit=$rc executions=${execs:-?} exec/s=${speed:-?} ${cov:-cov: ?} artifacts=$crashes"
    [ "$rc" -ne 0 ] && status=1
done
exit $status
