#!/usr/bin/env bash
# Warm-cache throughput of Kindling's /cache/ against nginx serving the same
# file on the same machine: one client and 32 clients fetching a 256 MiB file.
# A benchmark, not a test. Needs: nginx (apt-get install -y nginx-light), wrk, curl.
#
#   bench/cache/run.sh            # DURATION=10 CONNS="1 32" by default
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10}
CONNS=${CONNS:-"1 32"}
NGINX_PORT=${NGINX_PORT:-18091}
# nginx's usual setup is sendfile on; NGINX_SENDFILE=off uses 1 MiB read buffers
# instead (faster than sendfile on some VMs' loopback).
NGINX_SENDFILE=${NGINX_SENDFILE:-on}
KINDLING_PORT=${KINDLING_PORT:-18092}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target-menu}

command -v nginx >/dev/null || { echo "nginx missing: apt-get install -y nginx-light" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 2; }

cargo build -q --release -p kindling-menu --example cache-server
BIN=$CARGO_TARGET_DIR/release/examples/cache-server

WORK=$(mktemp -d /tmp/kindling-cache-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  [ -n "${KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/www" "$WORK/nginx-tmp"
chmod 755 "$WORK" "$WORK/www"   # nginx workers run as www-data
head -c $((256 * 1024 * 1024)) /dev/urandom > "$WORK/www/blob.bin"
SUM=$(sha256sum "$WORK/www/blob.bin" | cut -d' ' -f1)

cat > "$WORK/nginx.conf" <<CONF
daemon off;
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile $NGINX_SENDFILE;
  output_buffers 2 1m;
  tcp_nopush on;
  client_body_temp_path $WORK/nginx-tmp;
  proxy_temp_path $WORK/nginx-tmp;
  fastcgi_temp_path $WORK/nginx-tmp;
  uwsgi_temp_path $WORK/nginx-tmp;
  scgi_temp_path $WORK/nginx-tmp;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WORK/www;
  }
}
CONF
nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" &
PIDS+=($!)

# Kindling's cache, with nginx as its "upstream".
"$BIN" --listen 127.0.0.1:$KINDLING_PORT --dir "$WORK/kindling" \
  --file "blob.bin=http://127.0.0.1:$NGINX_PORT/blob.bin" 2>"$WORK/kindling.log" &
PIDS+=($!)
for _ in $(seq 50); do
  curl -fso /dev/null "http://127.0.0.1:$NGINX_PORT/blob.bin" -r 0-0 && \
  curl -so /dev/null "http://127.0.0.1:$KINDLING_PORT/healthz" && break
  sleep 0.1
done

KURL="http://127.0.0.1:$KINDLING_PORT/cache/bench/x86_64/blob.bin"
NURL="http://127.0.0.1:$NGINX_PORT/blob.bin"
# Warm the cache (the first request is a miss: fetched from nginx and kept).
GOT=$(curl -fsS "$KURL" | sha256sum | cut -d' ' -f1)
[ "$GOT" = "$SUM" ] || { echo "warm-up fetch differs from the source" >&2; exit 1; }
curl -fsSI "$KURL" | grep -qi '^x-kindling-cache: hit' || { echo "cache not warm" >&2; exit 1; }

# wrk's Transfer/sec, in MB/s (10^6 bytes).
mbps() {
  wrk -t"$2" -c"$3" -d"${DURATION}s" --timeout 60s "$1" | awk '
    /Transfer\/sec/ {
      v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+/, "", v);
      m = (u=="GB") ? 1073741824 : (u=="MB") ? 1048576 : (u=="KB") ? 1024 : 1;
      printf "%.0f", v*m/1e6 }'
}

printf '%-10s %14s %14s %8s\n' clients "kindling MB/s" "nginx MB/s" ratio
for c in $CONNS; do
  t=$(( c < 2 ? 1 : 2 ))
  k=$(mbps "$KURL" "$t" "$c")
  n=$(mbps "$NURL" "$t" "$c")
  ratio=$(awk -v k="$k" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", k/n; else print "n/a" }')
  printf '%-10s %14s %14s %8s\n' "$c" "$k" "$n" "${ratio}x"
done
