#!/usr/bin/env bash
# Demo: HAProxy mirrors live traffic through spoa-mirror to a second HTTP server.
#
#   client --> HAProxy :FE --> primary (answers the client)
#                 |
#                 +-- SPOE/SPOP --> spoa-mirror --> mirror (prints what it receives)
#
# Installs HAProxy (Debian's package) when it is missing and we are root, builds the agent,
# starts everything on 127.0.0.1 with free ports, sends a few requests, shows what the client
# got and what the mirror received, the agent's log, then stops everything. Set KEEP=1 to
# leave it running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v haproxy >/dev/null 2>&1 && [[ ! -x /usr/sbin/haproxy ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing haproxy (apt-get)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
    else
        echo "HAProxy is needed: apt-get install haproxy" >&2
        exit 1
    fi
fi
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

echo "== building spoa-mirror (cargo build --release)"
cargo build --release --quiet --bin spoa-mirror
AGENT_BIN=target/release/spoa-mirror

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
FE=$(free_port); PRIMARY=$(free_port); MIRROR=$(free_port); AGENT=$(free_port)

# Two small HTTP servers: the primary answers, the mirror prints every request it receives.
cat >"$work/servers.py" <<'PY'
import http.server, sys, threading
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def handle_one(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.server.name == "mirror":
            lines = [f"mirror received: {self.command} {self.path} {self.request_version}"]
            lines += [f"    {k}: {v}" for k, v in self.headers.items()]
            lines.append(f"    body: {body[:60]!r}{' ...' if len(body) > 60 else ''} ({len(body)} bytes)")
            print("\n".join(lines), flush=True)
        reply = f"hello from the {self.server.name}\n".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_one
    def log_message(self, *a): pass
for name, port in (("primary", int(sys.argv[1])), ("mirror", int(sys.argv[2]))):
    s = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    s.name = name
    s.handle_error = lambda *a: None  # peers closing keep-alive connections are not news
    threading.Thread(target=s.serve_forever, daemon=True).start()
threading.Event().wait()
PY
python3 -u "$work/servers.py" "$PRIMARY" "$MIRROR" >"$work/mirror.log" 2>&1 &
pids+=($!)

cat >"$work/spoe.cfg" <<CFG
[mirror]
spoe-agent mirror
    messages mirror
    option pipelining
    use-backend mirroragents
    timeout hello 500ms
    timeout idle 30s
    timeout processing 500ms

spoe-message mirror
    args arg_method=method arg_path=url arg_ver=req.ver arg_hdrs=req.hdrs_bin arg_body=req.body
    event on-frontend-http-request
CFG
cat >"$work/haproxy.cfg" <<CFG
global
    log stderr format raw local0 info
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:$FE
    option http-buffer-request
    filter spoe engine mirror config $work/spoe.cfg
    default_backend primary
backend primary
    server primary1 127.0.0.1:$PRIMARY
backend mirroragents
    mode tcp
    option spop-check
    server agent1 127.0.0.1:$AGENT check inter 2s
CFG

echo "== starting spoa-mirror: $AGENT_BIN -r0 -a 127.0.0.1 -p $AGENT -u http://127.0.0.1:$MIRROR/ -c pipelining -i 1s"
"$AGENT_BIN" -r0 -a 127.0.0.1 -p "$AGENT" -u "http://127.0.0.1:$MIRROR/" -c pipelining -i 1s >"$work/agent.log" 2>&1 &
pids+=($!)
echo "== starting HAProxy ($("$HAPROXY" -v | head -n1 | cut -d' ' -f1-3)) on 127.0.0.1:$FE"
"$HAPROXY" -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)

python3 - "$FE" <<'PY'
import sys, time, socket, urllib.request, json
port = int(sys.argv[1])
deadline = time.time() + 10
while time.time() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close(); break
    except OSError:
        time.sleep(0.1)
base = f"http://127.0.0.1:{port}"
reqs = [
    urllib.request.Request(base + "/search?q=caf%C3%A9&page=2", headers={"X-Demo": "one", "Accept": "text/html"}),
    urllib.request.Request(base + "/api/orders", data=json.dumps({"item": 42, "qty": 3}).encode(),
                           headers={"Content-Type": "application/json"}, method="POST"),
    urllib.request.Request(base + "/upload/blob.bin", data=bytes(range(256)) * 4,
                           headers={"Content-Type": "application/octet-stream"}, method="PUT"),
]
for r in reqs:
    with urllib.request.urlopen(r, timeout=5) as resp:
        print(f"client: {r.get_method()} {r.full_url[len(base):]} -> {resp.status} {resp.read().decode().strip()!r}")
PY

# Wait (bounded) until the mirror printed all three requests.
for _ in $(seq 1 50); do
    [[ $(grep -c '^mirror received' "$work/mirror.log" || true) -ge 3 ]] && break
    sleep 0.1
done
echo; cat "$work/mirror.log"
sleep 1.2  # one monitor interval, so the agent's counter line is in its log
echo; echo "== agent log"; cat "$work/agent.log"
if [[ "${KEEP:-0}" == 1 ]]; then
    echo; echo "HAProxy on http://127.0.0.1:$FE — Ctrl-C to stop"; wait
fi
