#!/usr/bin/env bash
# maskgen's server behind nginx, as docs/deployment.md sets it up: two replicas on free ports with
# the bundled model, an nginx (no root needed) in front of them with proxy_buffering off and
# keep-alive to the upstreams. Checks that greedy completions (temperature 0) through nginx,
# streamed and not, equal each replica's direct answer, and that a stream through nginx arrives
# in pieces before its end.
#
#   server/nginx_test.sh BUILD/examples/server [MODEL_DIR]
#
# Exits 0 with "SKIPPED: ..." when nginx (or curl, or python3) is not installed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
server="${1:?usage: nginx_test.sh PATH_TO_SERVER [MODEL_DIR]}"
model="${2:-$here/../models/sort-reverse}"
[ -x "$server" ] || { echo "nginx_test.sh: $server is not an executable" >&2; exit 2; }

nginx="$(command -v nginx || true)"
[ -n "$nginx" ] || [ ! -x /usr/sbin/nginx ] || nginx=/usr/sbin/nginx
if [ -z "$nginx" ]; then echo "SKIPPED: nginx is not installed (apt-get install nginx)"; exit 0; fi
for tool in curl python3; do
  command -v "$tool" > /dev/null || { echo "SKIPPED: $tool is not installed"; exit 0; }
done

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2> /dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAILED: $*" >&2
  for log in "$tmp"/*.log; do echo "--- $log" >&2; tail -n 20 "$log" >&2 || true; done
  exit 1
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Two replicas on free ports (port 0: the server picks one and prints it once it listens).
for i in 1 2; do
  "$server" --model "$model" --host 127.0.0.1 --port 0 > "$tmp/replica$i.log" 2>&1 &
  pids+=($!)
done
listening_port() {
  for _ in $(seq 1 200); do
    local port
    port="$(sed -n 's|^maskgen server: .* on http://127\.0\.0\.1:\([0-9][0-9]*\)$|\1|p' "$1")"
    if [ -n "$port" ]; then echo "$port"; return 0; fi
    sleep 0.05
  done
  return 1
}
port1="$(listening_port "$tmp/replica1.log")" || fail "replica 1 did not start"
port2="$(listening_port "$tmp/replica2.log")" || fail "replica 2 did not start"

# The nginx of docs/deployment.md, with every path inside $tmp.
proxy_port="$(free_port)"
mkdir -p "$tmp/client_body" "$tmp/proxy" "$tmp/fastcgi" "$tmp/uwsgi" "$tmp/scgi"
user_line=""
if [ "$(id -u)" -eq 0 ]; then user_line="user root;"; fi  # workers may then read and write $tmp
cat > "$tmp/nginx.conf" << EOF
$user_line
daemon off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log info;
events { worker_connections 256; }
http {
  log_format upstream '\$request \$status \$upstream_addr';
  access_log $tmp/nginx-access.log upstream;
  client_body_temp_path $tmp/client_body;
  proxy_temp_path $tmp/proxy;
  fastcgi_temp_path $tmp/fastcgi;
  uwsgi_temp_path $tmp/uwsgi;
  scgi_temp_path $tmp/scgi;

  upstream maskgen {
    least_conn;
    server 127.0.0.1:$port1 max_fails=3 fail_timeout=10s;
    server 127.0.0.1:$port2 max_fails=3 fail_timeout=10s;
    keepalive 16;
    keepalive_timeout 20s;
  }
  server {
    listen 127.0.0.1:$proxy_port;
    client_max_body_size 8m;
    location / {
      proxy_pass http://maskgen;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_buffering off;
      proxy_cache off;
      proxy_connect_timeout 5s;
      proxy_send_timeout 600s;
      proxy_read_timeout 600s;
    }
  }
}
EOF
"$nginx" -t -q -p "$tmp" -e "$tmp/nginx-error.log" -c "$tmp/nginx.conf" > "$tmp/nginx-t.log" 2>&1 || fail "nginx -t refused the configuration"
"$nginx" -p "$tmp" -e "$tmp/nginx-error.log" -c "$tmp/nginx.conf" > "$tmp/nginx.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$proxy_port/health" > /dev/null 2>&1 && break
  sleep 0.05
done
curl -sf "http://127.0.0.1:$proxy_port/health" > /dev/null || fail "nginx did not come up on port $proxy_port"

# The comparisons, in Python: completions' texts and finish reasons (ids and timestamps differ
# between calls), a stream's pieces joined, and when its pieces arrive.
python3 - "$port1" "$port2" "$proxy_port" << 'EOF' || fail "the answers through nginx differ (see above)"
import http.client, json, sys, time

direct = [int(sys.argv[1]), int(sys.argv[2])]
proxy = int(sys.argv[3])
prompts = ["sort 3 1 2 =", "reverse 7 0 2 9 5 1 =", "sort 9 8 0 3 4 3 2 5 4 7 0 8 2 0 3 =",
           "reverse 1 2 3 4 5 6 7 8 9 0 =", "sort 5 5 1 =", "reverse 4 2 ="]

def post(port, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status != 200:
        raise SystemExit(f"port {port}: status {r.status}: {data!r}")
    return json.loads(data)

def answer(port, prompt):
    j = post(port, {"prompt": prompt, "max_tokens": 40, "temperature": 0})
    return [(c["text"], c["finish_reason"]) for c in j["choices"]]

def stream(port, prompt):
    """The stream's joined text and finish reason, and the arrival time of each event."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = {"prompt": prompt, "max_tokens": 40, "temperature": 0, "stream": True}
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise SystemExit(f"port {port}: stream status {r.status}")
    text, finish, times, done = "", None, [], False
    while True:
        line = r.fp.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        times.append(time.monotonic())
        payload = line[len(b"data: "):]
        if payload == b"[DONE]":
            done = True
            break
        for choice in json.loads(payload)["choices"]:
            text += choice.get("text", "")
            finish = choice.get("finish_reason") or finish
    c.close()
    if not done:
        raise SystemExit(f"port {port}: the stream ended without [DONE]")
    return (text, finish), times

failures = 0
for prompt in prompts:
    want = answer(direct[0], prompt)
    if answer(direct[1], prompt) != want:
        print(f"the replicas disagree on {prompt!r}"); failures += 1
    for attempt in range(4):  # least_conn spreads these over both replicas
        got = answer(proxy, prompt)
        if got != want:
            print(f"through nginx {prompt!r}: {got} != direct {want}"); failures += 1
    want_stream, _ = stream(direct[0], prompt)
    if want_stream != want[0]:
        print(f"streamed {prompt!r} directly: {want_stream} != {want[0]}"); failures += 1
    for attempt in range(2):
        got_stream, times = stream(proxy, prompt)
        if got_stream != want[0]:
            print(f"streamed through nginx {prompt!r}: {got_stream} != {want[0]}"); failures += 1

# A stream through nginx arrives in pieces: ten streams decoded together (so that each takes a
# while), read as they come; the first event of some must arrive measurably before its last. (The
# bundled model decodes a whole answer in milliseconds, and nginx passes data on to a client that
# reads at once even with buffering on, so this shows that pieces are not held to the end; it
# cannot tell proxy_buffering off from on.)
import threading
spans = []
def one(prompt):
    _, times = stream(proxy, prompt)
    spans.append((len(times), times[-1] - times[0]))
threads = [threading.Thread(target=one, args=(prompts[i % len(prompts)],)) for i in range(10)]
for t in threads: t.start()
for t in threads: t.join()
early = sum(1 for n, span in spans if n > 2 and span > 0.0005)
print(f"streams through nginx: {len(spans)}, events per stream {[n for n, _ in spans]}, "
      f"first-to-last event ms {[round(s * 1000, 2) for _, s in spans]}")
if early == 0:
    print("no stream through nginx arrived in pieces: is proxy_buffering on?"); failures += 1
sys.exit(1 if failures else 0)
EOF
# Both replicas served requests through nginx.
for port in "$port1" "$port2"; do
  grep -q "127.0.0.1:$port\$" "$tmp/nginx-access.log" || fail "nginx sent no request to the replica on port $port"
done
echo "nginx_test.sh: passed (replicas on $port1 and $port2, nginx on $proxy_port)"
