# Shared by bench/load.sh and bench/compare.sh (sourced after they set UPSTREAM_PORT).

# A work directory, removed on exit with every process whose pid is added to PIDS.
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# nginx_conf NAME PORT LOCATION-BODY [MORE-SERVER-LINES]: $WORK/NAME/nginx.conf, one worker
# serving PORT, with a keep-alive pool to the upstream on UPSTREAM_PORT.
nginx_conf() {
  mkdir -p "$WORK/$1"
  cat > "$WORK/$1/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/$1; proxy_temp_path $WORK/$1; fastcgi_temp_path $WORK/$1;
  uwsgi_temp_path $WORK/$1; scgi_temp_path $WORK/$1;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 256; }
  server {
    listen 127.0.0.1:$2;
    location / { $3 }
    ${4:-}
  }
}
CONF
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (10 s), else exit.
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing on port $1" >&2; exit 1; }
