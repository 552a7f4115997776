#!/usr/bin/env bash
# Load test: tokengate against nginx, on this machine, one run, one table.
#
#   bench/load.sh              50 and 256 connections, one token
#   bench/load.sh --many-users also spreads the load over 10,000 distinct valid tokens
#   DURATION=20 bench/load.sh  seconds per row (default 10)
#   ROUNDS=5 bench/load.sh     rounds of every row (default 3); the table shows each row's
#                              median round (by requests/s) and the highest peak RSS
#   ROWS=dpop bench/load.sh    only nginx proxy_pass, tokengate with the cache on and the DPoP
#                              row (default ROWS=all)
#   DPOP_RATE=40000            proofs made per second of each DPoP run, warm-up included
#                              (default 40000: well above what one core verifies)
#
# Core 0 runs the proxy under test; core 1 runs the load generator (wrk) and the upstream
# (nginx, one worker, a small fixed JSON body). Rows: the upstream alone; nginx proxy_pass
# with no authentication; tokengate verifying every token with the cache on and off;
# tokengate with the cache on and the access log on (JSON lines to a file, as production runs
# it; the other rows log at warn); tokengate on an `auth: none` route; nginx auth_request (the shipped
# examples/forward-auth/nginx.conf, on core 0 beside tokengate) asking tokengate
# (forward_auth: { mode: nginx }, cache on) before proxying, whose CPU column is
# tokengate's CPU per decision; tokengate with one opaque token introspected (RFC 7662,
# the endpoint is the nginx upstream's /introspect; the answer is cached, so this measures
# the cache hit) and, with --many-users, 10,000 distinct opaque tokens; tokengate with DPoP
# (RFC 9449): a DPoP-bound token (cache on) and a proof never used before on every request, so
# each request pays one ES256 proof check and one insert into the memory replay store. wrk's
# Lua cannot sign, so the proofs are made just before each DPoP run (bench/dpop_proofs.rs,
# with the P-256 test fixture key), DPOP_RATE per second of the run, and read once
# each; a run that would need more fails rather than replay one (raise DPOP_RATE). The proxy
# takes proofs up to 10 minutes old (dpop.iat_window.past), so DURATION must stay well under
# that. Each row prints requests/s, p50, p99, the proxy's CPU
# time per request (user + system, from /proc), its peak RSS, and the ratio to the
# nginx-no-auth row; under the table, the DPoP row and the access-log row against the bearer
# row with the cache on, the access log's bytes per request, and the proxy's idle RSS.
# Everything listens on 127.0.0.1 only.
#
# Rounds run every row in turn (not one row R times) so that drift on a shared machine
# lands on all rows alike; run-to-run spread of 10-20% is normal on a 2-core VM.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
ROWS=${ROWS:-all}
DPOP_RATE=${DPOP_RATE:-40000}
case "$ROWS" in all | dpop) ;; *) echo "ROWS must be all or dpop, not $ROWS" >&2; exit 2 ;; esac
MANY_USERS=0
[ "${1:-}" = "--many-users" ] && MANY_USERS=1
UPSTREAM_PORT=18080 NGINX_PROXY_PORT=18081 TOKENGATE_PORT=18082 NGINX_AUTH_PORT=18083
# WORK (a temporary directory), PIDS (killed on exit), nginx_conf, wait_port.
source bench/common.sh

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk; then
  echo "installing nginx and wrk from the distribution's packages..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

echo "building the release binary..." >&2
cargo build --release --quiet
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release/tokengate
# The DPoP proof signer: the dev profile (an example gets the dev-dependencies, which a release
# build would compile again under LTO; the signing is aws-lc, optimised in dev as well).
cargo build --quiet --example dpop-proofs
PROOFS=$TARGET/debug/examples/dpop-proofs
DPOP_KEY=tests/fixtures/keys/ec-p256.pem

# --- nginx: the upstream (core 1) and, separately, nginx as a plain proxy (core 0) ---
mkdir -p "$WORK/nginx-up" "$WORK/nginx-proxy"
# /introspect: an RFC 7662 endpoint saying every token is active (for the opaque-token rows).
INTROSPECT_ANSWER='{\"active\":true,\"iss\":\"urn:bench:opaque\",\"sub\":\"user-1\",\"scope\":\"read\",\"aud\":\"api://default\",\"exp\":4102444800}'
nginx_conf nginx-up "$UPSTREAM_PORT" "default_type application/json; return 200 '[{\"message\":\"Hello, word!\"}]';" \
  "location = /introspect { default_type application/json; return 200 '$INTROSPECT_ANSWER'; }"
nginx_conf nginx-proxy "$NGINX_PROXY_PORT" "proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\";"
taskset -c 1 "$NGINX" -p "$WORK/nginx-up" -c "$WORK/nginx-up/nginx.conf" & PIDS+=($!)
# nginx auth_request in front of the upstream, tokengate deciding: the shipped example, as
# conf.d would include it.
mkdir -p "$WORK/nginx-auth"
sed -e "s/__LISTEN_PORT__/$NGINX_AUTH_PORT/" -e "s/__TOKENGATE_PORT__/$TOKENGATE_PORT/" \
  -e "s/__UPSTREAM_PORT__/$UPSTREAM_PORT/" examples/forward-auth/nginx.conf > "$WORK/nginx-auth/site.conf"
cat > "$WORK/nginx-auth/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx-auth/nginx.pid;
error_log $WORK/nginx-auth/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx-auth; proxy_temp_path $WORK/nginx-auth; fastcgi_temp_path $WORK/nginx-auth;
  uwsgi_temp_path $WORK/nginx-auth; scgi_temp_path $WORK/nginx-auth;
  keepalive_requests 1000000;
  include $WORK/nginx-auth/site.conf;
}
CONF

wait_port "$UPSTREAM_PORT"

# --- tokengate configurations: the dev issuer mints the tokens (loopback only) ---
KEY="$WORK/dev-key.pem"
tokengate_conf() { # file cache [extra line] [log settings]
  local log=${4:-"{ level: warn }"}
  cat > "$1" <<CONF
listen: 127.0.0.1:$TOKENGATE_PORT
dev_issuer: { audience: api://default, key_file: $KEY, token_lifetime: 1h }
upstream: { url: http://127.0.0.1:$UPSTREAM_PORT }
routes:
  - { path: /public/**, auth: none }
cache: { enabled: $2 }
log: $log
${3:-}
CONF
}
tokengate_conf "$WORK/cache-on.yaml" true
# The access log as production runs it: one JSON line per request, to a file (stderr is
# redirected to $WORK/tokengate.log).
tokengate_conf "$WORK/access-log.yaml" true "" "{ level: info, format: json }"
tokengate_conf "$WORK/cache-off.yaml" false
tokengate_conf "$WORK/forward-auth.yaml" true "forward_auth: { mode: nginx, trusted_proxies: [127.0.0.1/32] }"
# DPoP: htu is wrk's URL; proofs made before the run stay fresh for 10 minutes; the replay
# store can hold every proof a run has (nothing expires within a run: proofs live 10 minutes).
DPOP_URL=http://127.0.0.1:$TOKENGATE_PORT
tokengate_conf "$WORK/dpop.yaml" true "dpop:
  external_url: $DPOP_URL
  iat_window: { past: 10m }
  replay: { store: memory, max_entries: $((DPOP_RATE * (DURATION + 2) + 1000)) }"
# Opaque tokens: an issuer whose tokens are introspected at nginx's /introspect (the HMAC
# secret only gives the issuer a key at once; no JWT is used). Answers cached for 1h.
head -c 48 /dev/urandom | base64 > "$WORK/secret"
cat > "$WORK/opaque.yaml" <<CONF
listen: 127.0.0.1:$TOKENGATE_PORT
issuers:
  - issuer: urn:bench:opaque
    audiences: [api://default]
    allow_http: true
    hmac: { secret_file: $WORK/secret }
    introspection: { endpoint: http://127.0.0.1:$UPSTREAM_PORT/introspect, client_id: bench, client_secret_file: $WORK/secret, cache_ttl: 1h, max_entries: 100000 }
upstream: { url: http://127.0.0.1:$UPSTREAM_PORT }
log: { level: warn }
CONF
OPAQUE=opaque-bench-token-0123456789abcdef
python3 -c 'import secrets; [print(secrets.token_urlsafe(32)) for _ in range(10000)]' > "$WORK/opaque-tokens.txt"

PROXY_PID=""
start_tokengate() { # config
  taskset -c 0 "$BIN" --config "$1" >"$WORK/tokengate.log" 2>&1 & PROXY_PID=$!; PIDS+=("$PROXY_PID")
  wait_port "$TOKENGATE_PORT"
}
stop_proxy() { kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; PROXY_PID=""; }
# Mints COUNT tokens for user-1..user-COUNT over one keep-alive connection; checks each.
# With JKT, the tokens are bound to that DPoP key (cnf.jkt).
mint() { # count [jkt]
  python3 - "$TOKENGATE_PORT" "$1" "${2:-}" <<'PY'
import http.client, json, re, sys
port, count, jkt = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conn = http.client.HTTPConnection("127.0.0.1", port)
for i in range(1, count + 1):
    body = f"sub=user-{i}%40example.com&scope=read" + (f"&jkt={jkt}" if jkt else "")
    conn.request("POST", "/_dev/token", body=body,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    token = json.loads(conn.getresponse().read())["access_token"]
    if not re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token):
        sys.exit(f"bad token minted: {token[:40]}")
    print(token)
PY
}

# Mint the tokens once (the key file makes them valid for every configuration).
start_tokengate "$WORK/cache-on.yaml"
TOKEN=$(mint 1)
DPOP_TOKEN=$(mint 1 "$("$PROOFS" jkt "$DPOP_KEY")")
if [ "$MANY_USERS" = 1 ]; then
  echo "minting 10,000 tokens..." >&2
  mint 10000 > "$WORK/tokens.txt"
fi
stop_proxy

lua_script() { # file tokens
  cat > "$1" <<LUA
local tokens = {}
for line in io.lines("$2") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", nil, { Authorization = "Bearer " .. tokens[i] })
end
LUA
}
lua_script "$WORK/many.lua" "$WORK/tokens.txt"
lua_script "$WORK/many-opaque.lua" "$WORK/opaque-tokens.txt"
# DPoP: wrk thread N reads the proofs of PREFIX.N (the argument after --), each once; when
# they run out, wrk exits with an error rather than send one again.
cat > "$WORK/dpop.lua" <<LUA
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
local proofs
function init(args)
  local path = args[1] .. "." .. id
  proofs = io.open(path, "r")
  if not proofs then
    io.stderr:write("dpop.lua: cannot open " .. path .. "\n")
    os.exit(3)
  end
end
request = function()
  local proof = proofs:read("*l")
  if not proof then
    io.stderr:write("dpop.lua: out of DPoP proofs; refusing to send one twice (raise DPOP_RATE)\n")
    os.exit(3)
  end
  return wrk.format("GET", nil, { Authorization = "DPoP $DPOP_TOKEN", DPoP = proof })
end
LUA
# make_proofs PREFIX THREADS: DPOP_RATE per second of the run, split over the wrk threads.
make_proofs() {
  local seconds=$DURATION count
  [[ $1 == *warm ]] && seconds=2
  count=$((DPOP_RATE * seconds / $2 + 1))
  for ((t = 0; t < $2; t++)); do
    taskset -c 1 "$PROOFS" proofs "$DPOP_KEY" GET "$DPOP_URL/api/messages" "$DPOP_TOKEN" "$count" > "$1.$t"
  done
}

peak_rss() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "-"; }
# User + system CPU ticks of a process so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# run LABEL PORT PATH CONNECTIONS PROXY_PID [many|opaque|many-opaque|dpop]: one measurement,
# appended to $RESULTS.
RESULTS="$WORK/results"
: > "$RESULTS"
run() {
  local label=$1 port=$2 path=$3 conns=$4 pid=$5 many=${6:-}
  local script=() header=(-H "Authorization: Bearer $TOKEN") warm_args=() run_args=()
  case "$many" in
    many) script=(-s "$WORK/many.lua"); header=() ;;
    many-opaque) script=(-s "$WORK/many-opaque.lua"); header=() ;;
    opaque) header=(-H "Authorization: Bearer $OPAQUE") ;;
    dpop)
      script=(-s "$WORK/dpop.lua"); header=()
      echo "  making DPoP proofs ($DPOP_RATE per second of the run)..." >&2
      make_proofs "$WORK/proofs-warm" 1
      make_proofs "$WORK/proofs-run" 2
      warm_args=(-- "$WORK/proofs-warm"); run_args=(-- "$WORK/proofs-run") ;;
  esac
  # Warm up (fills the cache and the pools), then measure.
  taskset -c 1 wrk -t1 -c"$conns" -d2s "${header[@]}" "${script[@]}" "http://127.0.0.1:$port$path" "${warm_args[@]}" >/dev/null
  local out ticks_before=0 ticks_after=0 log_before=0
  [ -n "$pid" ] && ticks_before=$(cpu_ticks "$pid")
  [ "$many" = log ] && log_before=$(stat -c %s "$WORK/tokengate.log")
  out=$(taskset -c 1 wrk -t2 -c"$conns" -d"${DURATION}s" --latency "${header[@]}" "${script[@]}" "http://127.0.0.1:$port$path" "${run_args[@]}")
  [ "$many" = dpop ] && rm -f "$WORK"/proofs-*
  [ -n "$pid" ] && ticks_after=$(cpu_ticks "$pid")
  local rps p50 p99 non2xx requests cpu="-"
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  if [ -n "$pid" ] && [ "${requests:-0}" -gt 0 ]; then
    cpu=$(awk -v t=$((ticks_after - ticks_before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
      'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
  fi
  if [ "$many" = log ] && [ "${requests:-0}" -gt 0 ]; then
    # Give the log writer thread a moment to write out what it has queued.
    sleep 0.5
    echo $((($(stat -c %s "$WORK/tokengate.log") - log_before) / requests)) >> "$WORK/log-bytes"
  fi
  p50=$(awk '/^ +50%/ {print $2}' <<<"$out")
  p99=$(awk '/^ +99%/ {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  [ -n "$non2xx" ] && echo "warning: $label c=$conns had $non2xx non-2xx responses" >&2
  if [ -n "$non2xx" ] && [ "$many" = dpop ]; then
    # A refused proof (stale, replayed) or a full store: these are not DPoP figures.
    echo "error: the DPoP row must have every request accepted; the proxy's log ends:" >&2
    tail -5 "$WORK/tokengate.log" >&2
    exit 1
  fi
  local rss="-"
  [ -n "$pid" ] && rss=$(peak_rss "$pid")
  echo "$label|$conns|$rps|$p50|$p99|$rss|$cpu" >> "$RESULTS"
  echo "  $label c=$conns: $rps req/s, p50 $p50, p99 $p99, CPU ${cpu} µs/request, peak RSS ${rss} MiB" >&2
}

for round in $(seq "$ROUNDS"); do
for conns in 50 256; do
  echo "== round $round of $ROUNDS, $conns connections ==" >&2
  [ "$ROWS" = all ] && run "upstream alone (nginx)" "$UPSTREAM_PORT" /api/messages "$conns" ""
  taskset -c 0 "$NGINX" -p "$WORK/nginx-proxy" -c "$WORK/nginx-proxy/nginx.conf" & NGINX_PROXY=$!; PIDS+=("$NGINX_PROXY")
  wait_port "$NGINX_PROXY_PORT"
  NGINX_WORKER=$(pgrep -P "$NGINX_PROXY" | head -1)
  run "nginx proxy_pass, no auth" "$NGINX_PROXY_PORT" /api/messages "$conns" "$NGINX_WORKER"
  # The same load generator work as the 10,000-token tokengate row (wrk's Lua script also
  # runs on core 1), so that row has a like-for-like baseline.
  if [ "$MANY_USERS" = 1 ] && [ "$ROWS" = all ]; then
    run "nginx proxy_pass, no auth, 10,000 tokens" "$NGINX_PROXY_PORT" /api/messages "$conns" "$NGINX_WORKER" many
  fi
  kill "$NGINX_PROXY"; wait "$NGINX_PROXY" 2>/dev/null || true

  start_tokengate "$WORK/cache-on.yaml"
  # Resident memory of a proxy that has served nothing yet (the first start only).
  [ -f "$WORK/idle-rss" ] || awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$PROXY_PID/status" > "$WORK/idle-rss"
  run "tokengate, cache on" "$TOKENGATE_PORT" /api/messages "$conns" "$PROXY_PID"
  [ "$ROWS" = all ] && run "tokengate, auth: none route" "$TOKENGATE_PORT" /public/messages "$conns" "$PROXY_PID"
  stop_proxy
  if [ "$ROWS" = all ]; then
    start_tokengate "$WORK/access-log.yaml"
    run "tokengate, cache on, access log (JSON lines to a file)" "$TOKENGATE_PORT" /api/messages "$conns" "$PROXY_PID" log
    stop_proxy
  fi
  # A fresh proxy: an empty replay store.
  start_tokengate "$WORK/dpop.yaml"
  run "tokengate, DPoP (fresh proof per request, memory store)" "$TOKENGATE_PORT" /api/messages "$conns" "$PROXY_PID" dpop
  stop_proxy
  [ "$ROWS" = dpop ] && continue
  if [ "$MANY_USERS" = 1 ]; then
    start_tokengate "$WORK/cache-on.yaml"
    run "tokengate, cache on, 10,000 tokens" "$TOKENGATE_PORT" /api/messages "$conns" "$PROXY_PID" many
    stop_proxy
  fi
  start_tokengate "$WORK/cache-off.yaml"
  run "tokengate, cache off (RS256 every request)" "$TOKENGATE_PORT" /api/messages "$conns" "$PROXY_PID"
  stop_proxy
  start_tokengate "$WORK/forward-auth.yaml"
  taskset -c 0 "$NGINX" -p "$WORK/nginx-auth" -c "$WORK/nginx-auth/nginx.conf" & NGINX_AUTH=$!; PIDS+=("$NGINX_AUTH")
  wait_port "$NGINX_AUTH_PORT"
  run "nginx auth_request -> tokengate (cache on)" "$NGINX_AUTH_PORT" /api/messages "$conns" "$PROXY_PID"
  kill "$NGINX_AUTH"; wait "$NGINX_AUTH" 2>/dev/null || true
  stop_proxy
  start_tokengate "$WORK/opaque.yaml"
  run "tokengate, one opaque token (introspection cached)" "$TOKENGATE_PORT" /api/messages "$conns" "$PROXY_PID" opaque
  stop_proxy
  if [ "$MANY_USERS" = 1 ]; then
    # A fresh proxy: the warm-up introspects each of the 10,000 tokens once.
    start_tokengate "$WORK/opaque.yaml"
    run "tokengate, 10,000 opaque tokens (introspection cached)" "$TOKENGATE_PORT" /api/messages "$conns" "$PROXY_PID" many-opaque
    stop_proxy
  fi
done
done

echo
echo "Machine: $(nproc) cores, $(awk '/model name/ {sub(/.*: /, ""); print; exit}' /proc/cpuinfo); ${DURATION}s per row, median of $ROUNDS rounds; proxy on core 0, wrk + upstream on core 1"
echo
echo "| proxy | connections | requests/s | ratio to nginx | p50 | p99 | proxy CPU per request (µs) | proxy peak RSS (MiB) |"
echo "|---|---|---|---|---|---|---|---|"
# Per row (in the order first run): the median round by requests/s, the highest peak RSS.
# Rows with 10,000 tokens are compared with nginx under the same 10,000-token load.
awk -F'|' '
  !seen[$1 "|" $2]++ { order[++n] = $1 "|" $2 }
  { key = $1 "|" $2; runs[key, ++count[key]] = $0
    if ($6 != "-" && ($6 + 0 > rss[key] + 0)) rss[key] = $6 }
  END {
    for (i = 1; i <= n; i++) {
      key = order[i]; c = count[key]
      # sort this row'"'"'s runs by requests/s (insertion sort; a handful of rounds)
      for (a = 1; a <= c; a++) { line[a] = runs[key, a]; split(line[a], f, "|"); r[a] = f[3] + 0 }
      for (a = 2; a <= c; a++) for (b = a; b > 1 && r[b] < r[b-1]; b--) {
        t = r[b]; r[b] = r[b-1]; r[b-1] = t; t = line[b]; line[b] = line[b-1]; line[b-1] = t }
      median[key] = line[int((c + 1) / 2)]
      split(median[key], f, "|")
      if (f[1] == "nginx proxy_pass, no auth") nginx[f[2]] = f[3] + 0
      if (f[1] == "nginx proxy_pass, no auth, 10,000 tokens") nginx_many[f[2]] = f[3] + 0
      if (f[1] == "tokengate, cache on") { bearer[f[2]] = f[3] + 0; bearer_cpu[f[2]] = f[7] }
      if (f[1] ~ /^tokengate, DPoP/) { dpop[f[2]] = f[3] + 0; dpop_cpu[f[2]] = f[7] }
      if (f[1] ~ /access log/) { logged[f[2]] = f[3] + 0; logged_cpu[f[2]] = f[7] }
    }
    for (i = 1; i <= n; i++) {
      key = order[i]; split(median[key], f, "|")
      base = (f[1] ~ /10,000 tokens/) ? nginx_many[f[2]] : nginx[f[2]]
      ratio = (base > 0) ? sprintf("%.2f×", f[3] / base) : "-"
      peak = (key in rss) ? rss[key] : "-"
      printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", f[1], f[2], f[3], ratio, f[4], f[5], f[7], peak
    }
    # DPoP against the bearer row with the cache on: the price of a proof check and a
    # replay-store insert per request.
    printed = 0
    for (i = 1; i <= n; i++) {
      split(order[i], f, "|"); c = f[2]
      if (f[1] !~ /^tokengate, DPoP/ || !(c in bearer) || bearer[c] <= 0) continue
      if (!printed++) print ""
      cpu = (dpop_cpu[c] != "-" && bearer_cpu[c] != "-") ? sprintf(", %+.1f µs proxy CPU per request (%s against %s)", dpop_cpu[c] - bearer_cpu[c], dpop_cpu[c], bearer_cpu[c]) : ""
      printf "DPoP against bearer (cache on), %s connections: %.2f× the requests/s%s\n", c, dpop[c] / bearer[c], cpu
    }
    # The access log on against off (both cache on): what a JSON line per request costs.
    for (i = 1; i <= n; i++) {
      split(order[i], f, "|"); c = f[2]
      if (f[1] !~ /access log/ || !(c in bearer) || bearer[c] <= 0) continue
      if (!printed++) print ""
      cpu = (logged_cpu[c] != "-" && bearer_cpu[c] != "-") ? sprintf(", %+.1f µs proxy CPU per request (%s against %s)", logged_cpu[c] - bearer_cpu[c], logged_cpu[c], bearer_cpu[c]) : ""
      printf "Access log on against off (cache on), %s connections: %.2f× the requests/s%s\n", c, logged[c] / bearer[c], cpu
    }
  }' "$RESULTS"
[ -f "$WORK/log-bytes" ] && echo "Access log: $(sort -n "$WORK/log-bytes" | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}') bytes of JSON per request (median run)"
[ -f "$WORK/idle-rss" ] && echo "Idle RSS (tokengate, cache on, before its first request): $(cat "$WORK/idle-rss") MiB"
true
