#!/usr/bin/env bash
# Real-time accuracy of spoa-mirror-replay's pacing (BENCHMARKS.md §8).
#
# Writes a GoReplay file of N requests with irregular gaps (0-40 ms, fixed seed), replays it at
# each SPEED to a small HTTP server that notes when each request arrives (monotonic clock),
# and prints, per speed: the error of each gap between consecutive arrivals against the
# recorded gap divided by the speed (p50 / p99 / max, in ms), and the total time against the
# recorded span divided by the speed.
#
#   N=300 SPEEDS="1 10" bash scripts/replay-timing.sh
#
# Needs python3 and a release build (`cargo build --release --bins`); bounded: at most
# N <= 5000 requests, each replay killed after 10 minutes.
set -euo pipefail
N=${N:-300}
SPEEDS=${SPEEDS:-"1 10"}
REPLAY=${REPLAY:-target/release/spoa-mirror-replay}
[ "$N" -le 5000 ] || { echo "N at most 5000" >&2; exit 64; }
[ -x "$REPLAY" ] || { echo "build first: cargo build --release --bins" >&2; exit 66; }
work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

python3 - "$work/rec.gor" "$N" <<'EOF'
import random, sys
path, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
ts = 1_700_000_000_000_000_000
with open(path, "wb") as f:
    for i in range(n):
        f.write(f"1 t{i} {ts} 0\n".encode())
        f.write(f"GET /t/{i} HTTP/1.1\r\nHost: timing\r\n\r\n".encode())
        f.write("\n\U0001F435\U0001F648\U0001F649\n".encode())
        ts += rng.randint(0, 40) * 1_000_000
print(f"recorded span {(ts - 1_700_000_000_000_000_000) / 1e9:.3f} s over {n} requests")
EOF

for speed in $SPEEDS; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    log="$work/arrivals-$speed"
    python3 - "$port" "$log" <<'EOF' &
import http.server, sys, time
port, log = int(sys.argv[1]), open(sys.argv[2], "w", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        log.write(f"{self.path.split('/')[-1]} {time.monotonic_ns()}\n")
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
    server=$!
    for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
    timeout 600 "$REPLAY" "$work/rec.gor" --url "http://127.0.0.1:$port" --speed "${speed}x" --quiet \
        | sed "s/^/  [${speed}x] /"
    kill "$server"; wait "$server" 2>/dev/null || true; server=
    python3 - "$work/rec.gor" "$log" "$speed" <<'EOF'
import sys
rec, log, speed = sys.argv[1], sys.argv[2], float(sys.argv[3])
ts = [int(l.split()[2]) for l in open(rec, "rb").read().decode().splitlines() if l.startswith("1 ")]
arr = {}
for l in open(log):
    i, t = l.split(); arr[int(i)] = int(t)
n = len(ts)
assert len(arr) == n, f"{len(arr)} of {n} arrived"
errs = sorted(abs((arr[i] - arr[i-1]) - (ts[i] - ts[i-1]) / speed) / 1e6 for i in range(1, n))
q = lambda p: errs[min(len(errs) - 1, int(round(p * (len(errs) - 1))))]
want = (ts[-1] - ts[0]) / speed / 1e9
got = (arr[n-1] - arr[0]) / 1e9
print(f"  [{speed:g}x] gap error ms: p50 {q(0.5):.3f} p99 {q(0.99):.3f} max {errs[-1]:.3f}; "
      f"total {got:.3f} s for {want:.3f} s wanted ({(got / want - 1) * 100:+.2f} %)")
EOF
done
