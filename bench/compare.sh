#!/usr/bin/env bash
# Compares tokengate builds with each other and with nginx, interleaved: the quick check of one
# change before bench/load.sh's full table.
#
#   bench/compare.sh OLD_BINARY NEW_BINARY [MORE...]
#   CONNECTIONS=256 ROUNDS=5 DURATION=10 bench/compare.sh ...   (defaults: 50, 3, 5)
#   LOG=json bench/compare.sh ...   the access log on: JSON lines to a file (default: warn)
#   CACHE=false bench/compare.sh ... the verified-token cache off
#
# Each round runs nginx proxy_pass (no auth), then every binary in turn, on the same shipped
# wrk load as bench/load.sh: the proxy on core 0, wrk and the nginx upstream on core 1, one
# token minted by the dev issuer, a 2 s warm-up before each 5 s measurement. Each line says
# requests/s, p99, the proxy's CPU time per request (user + system, from /proc) and its peak
# RSS. Rounds interleave the builds, so drift on a shared machine lands on each alike; a
# difference smaller than the spread between rounds is no difference.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n 2,15p "$0" >&2; exit 2; }
CONNECTIONS=${CONNECTIONS:-50} ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-5}
LOG=${LOG:-warn} CACHE=${CACHE:-true}
case "$LOG" in warn) LOG_SETTINGS="{ level: warn }" ;; json) LOG_SETTINGS="{ level: info, format: json }" ;;
  *) echo "LOG must be warn or json, not $LOG" >&2; exit 2 ;; esac
for binary in "$@"; do [ -x "$binary" ] || { echo "not an executable: $binary" >&2; exit 2; }; done
command -v nginx >/dev/null && command -v wrk >/dev/null || {
  echo "needs nginx and wrk (apt-get install nginx wrk)" >&2; exit 1; }

UPSTREAM_PORT=18180 NGINX_PROXY_PORT=18181 TOKENGATE_PORT=18182
# WORK (a temporary directory), PIDS (killed on exit), nginx_conf, wait_port.
source bench/common.sh

nginx_conf up "$UPSTREAM_PORT" "default_type application/json; return 200 '[{\"message\":\"Hello, word!\"}]';"
nginx_conf proxy "$NGINX_PROXY_PORT" "proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\";"
taskset -c 1 nginx -p "$WORK/up" -c "$WORK/up/nginx.conf" & PIDS+=($!)
wait_port "$UPSTREAM_PORT"

cat > "$WORK/tokengate.yaml" <<CONF
listen: 127.0.0.1:$TOKENGATE_PORT
dev_issuer: { audience: api://default, key_file: $WORK/dev-key.pem, token_lifetime: 1h }
upstream: { url: http://127.0.0.1:$UPSTREAM_PORT }
cache: { enabled: $CACHE }
log: $LOG_SETTINGS
CONF
start() { # binary; sets PID
  taskset -c 0 "$1" --config "$WORK/tokengate.yaml" > "$WORK/tokengate.log" 2>&1 & PID=$!; PIDS+=("$PID")
  wait_port "$TOKENGATE_PORT"
}
start "$1"
TOKEN=$(python3 -c '
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
c.request("POST", "/_dev/token", body="sub=user-1%40example.com&scope=read",
          headers={"Content-Type": "application/x-www-form-urlencoded"})
print(json.loads(c.getresponse().read())["access_token"])' "$TOKENGATE_PORT")
kill "$PID"; wait "$PID" 2>/dev/null || true

measure() { # label port pid
  local url="http://127.0.0.1:$2/api/messages" out before after requests
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s -H "Authorization: Bearer $TOKEN" "$url" > /dev/null
  before=$(awk '{print $14 + $15}' "/proc/$3/stat")
  out=$(taskset -c 1 wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" "$url")
  after=$(awk '{print $14 + $15}' "/proc/$3/stat")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  grep -q Non-2xx <<<"$out" && echo "warning: $1 had non-2xx responses" >&2
  printf '%-40s %10s req/s   p99 %8s   %6s µs CPU/request   peak RSS %5s MiB\n' "$1" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '/^ +99%/ {print $2}' <<<"$out")" \
    "$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')" \
    "$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$3/status")"
}

echo "$CONNECTIONS connections, $ROUNDS rounds of ${DURATION}s, cache $CACHE, log $LOG"
for round in $(seq "$ROUNDS"); do
  echo "== round $round"
  taskset -c 0 nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" & NGINX=$!; PIDS+=("$NGINX")
  wait_port "$NGINX_PROXY_PORT"
  measure "nginx proxy_pass, no auth" "$NGINX_PROXY_PORT" "$(pgrep -P "$NGINX" | head -1)"
  kill "$NGINX"; wait "$NGINX" 2>/dev/null || true
  for binary in "$@"; do
    start "$binary"
    measure "$binary" "$TOKENGATE_PORT" "$PID"
    kill "$PID"; wait "$PID" 2>/dev/null || true
  done
done
