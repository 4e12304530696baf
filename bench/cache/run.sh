#!/usr/bin/env bash
# Large-file serving (issue 20): a 256 MiB file from Kindling's /assets/ and from its warm
# /cache/, against nginx (worker_processes 2, sendfile on) serving the same file, with one
# client and with 32. Not a test: prints numbers (throughput, the servers' CPU seconds per
# GiB, and the ratios Kindling/nginx of both, measured in the same run).
#
#   bench/cache/run.sh                            # DURATION=10 ROUNDS=3 CONNS="1 32"
#   DURATION=2 ROUNDS=1 bench/cache/run.sh        # a quick smoke run
#   KINDLING_BIN=/path/to/kindling bench/cache/run.sh
#   KEEP=1 bench/cache/run.sh                     # keep the work directory (logs, configs)
#
# Everything (nginx, `kindling serve`, wrk, curl) runs inside a network namespace created
# here (kindling-cbench-<pid>), on its loopback, started with `ip netns exec`; the namespace
# is deleted and every process started here is ended by its PID on exit, failures included.
# No traffic leaves the namespace. (On the host's loopback nginx was slower, which flattered
# Kindling.)
#
# The three servers, one file (a hard link: the same inode, so the same page cache):
#  * kindling-assets: the real `kindling serve` (release build of this tree, default
#    settings, started from a directory holding only its kindling.toml), GET /assets/blob.bin
#    from its data directory's assets/;
#  * kindling-cache: the same process, GET /cache/bench/x86_64/blob.bin: kindling.toml
#    declares a menu entry `bench` (shipped catalog off) whose file's upstream URL is nginx in
#    the namespace, sha256 pinned. The cache is warmed once before measuring: a GET of
#    /menu.ipxe?arch=x86_64&platform=efi routes 127.0.0.1 to the entry (docs/menus.md, "Who
#    may start an upstream fetch"), then a full GET is the miss that pulls the file from
#    nginx; the script then checks that a HEAD says `X-Kindling-Cache: hit`;
#  * nginx: worker_processes 2, sendfile on, tcp_nopush on, access_log off, root = the same
#    assets directory.
# Before measuring, one full GET from each must hash (sha256) to the file's sum.
#
# Each measurement is one wrk run (-t1 -c1 for 1 connection, -t2 -cN beyond) of DURATION
# seconds. Throughput is the bytes wrk read (its Lua `done` summary: every byte received,
# responses still in flight at the end included) over wrk's own measured duration, in MB/s
# (10^6 bytes). CPU is the server's utime + stime from /proc/<pid>/stat (fields 14 and 15:
# all threads of the process) read just before and just after the wrk run, divided by
# CLK_TCK; for nginx the master plus all its worker processes. CPU-s/GiB = those CPU seconds
# / (bytes read / 2^30). "machine" is every CPU's busy time from /proc/stat (user, nice,
# system, irq, softirq, steal) over the same run per GiB: the server, wrk and the kernel's
# threads together. On one machine the sender and the receiver share the TCP work: a
# server that queues little pushes the bytes itself, in its own system time, where one that
# queues a lot leaves the push to the client's reads; the machine column counts both.
# Each round measures every (connections, server) pair, the servers
# in an order rotated each round; the table gives the medians over ROUNDS, the ratios
# Kindling/nginx of those medians, and whether issue 20's targets (throughput >= 1.0x
# nginx, CPU-s/GiB <= 1.5x nginx) hold; every round's raw values follow. wrk shares the
# machine's CPUs with the server: the load average is printed, a busy machine makes the
# figures noisy.
#
# Needs root (ip netns), iproute2, nginx (apt-get install -y nginx-light), wrk, curl,
# sha256sum, and cargo unless KINDLING_BIN is given (`cargo build --release -p kindling
# --locked`, default target directory: <repo>/target).
#
# Environment: DURATION (s per wrk run, 10), ROUNDS (3), CONNS ("1 32"), SIZE_MIB (256),
# NGINX_PORT (18091), KINDLING_PORT (18092), KINDLING_BIN (a kindling binary to use instead
# of building this tree's), KEEP (1: keep the work directory).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-"1 32"}
SIZE_MIB=${SIZE_MIB:-256}
NGINX_PORT=${NGINX_PORT:-18091}
KINDLING_PORT=${KINDLING_PORT:-18092}
SERVERS=(kindling-assets kindling-cache nginx)

[ "$(id -u)" = 0 ] || { echo "needs root (ip netns)" >&2; exit 2; }
for c in ip nginx wrk curl sha256sum getconf; do
  command -v "$c" >/dev/null || {
    echo "$c is missing (apt-get install -y iproute2 nginx-light wrk curl)" >&2; exit 2; }
done
if [ -n "${KINDLING_BIN:-}" ]; then
  BIN=$KINDLING_BIN
else
  command -v cargo >/dev/null || { echo "cargo is missing (or set KINDLING_BIN)" >&2; exit 2; }
  # The default target directory, whatever CARGO_TARGET_DIR says.
  (cd "$ROOT" && env -u CARGO_TARGET_DIR cargo build --quiet --release -p kindling --locked)
  BIN=$ROOT/target/release/kindling
fi
[ -x "$BIN" ] || { echo "$BIN is not an executable" >&2; exit 2; }

NS=kindling-cbench-$$
WORK=$(mktemp -d /tmp/kindling-cache-bench.XXXXXX)
PIDS=()
NS_MADE=""
stop_pid() { # TERM, then KILL after 5 s
  local p=$1
  kill -TERM "$p" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done   # servers first
  if [ -n "$NS_MADE" ]; then
    # Anything still in the namespace was started by this run (a wrk or curl cut short).
    local left
    left=$(ip netns pids "$NS" 2>/dev/null || true)
    for p in $left; do stop_pid "$p"; done
    ip netns del "$NS" 2>/dev/null || true
  fi
  if [ -n "${KEEP:-}" ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

inns() { ip netns exec "$NS" "$@"; }

NS_MADE=1   # before creating it: an interrupt in between still deletes it
ip netns add "$NS"
inns ip link set lo up

echo "kernel:    $(uname -srm)"
echo "CPUs:      $(nproc) online ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
echo "load avg:  $(cut -d' ' -f1-3 /proc/loadavg) (at start)"
echo "nginx:     $(nginx -v 2>&1 | sed 's/^nginx version: //'); wrk: $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
echo "kindling:  $BIN"
echo "namespace: $NS (loopback only: $(inns ip -o link show | awk -F': ' '{printf "%s ", $2}'))"
echo "runs:      ${ROUNDS} rounds x connections {$CONNS} x ${#SERVERS[@]} servers, ${DURATION} s each, ${SIZE_MIB} MiB file"

# --- the file and the servers' directories ------------------------------------------------
DATA=$WORK/data
mkdir -p "$DATA/assets" "$WORK/state" "$WORK/cache" "$WORK/run" "$WORK/nginx-tmp"
chmod 755 "$WORK" "$DATA" "$DATA/assets"   # nginx's workers run as www-data
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$DATA/assets/blob.bin"
chmod 644 "$DATA/assets/blob.bin"
SUM=$(sha256sum "$DATA/assets/blob.bin" | cut -d' ' -f1)
SIZE=$(stat -c %s "$DATA/assets/blob.bin")

cat >"$WORK/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path $WORK/nginx-tmp;
  proxy_temp_path $WORK/nginx-tmp;
  fastcgi_temp_path $WORK/nginx-tmp;
  uwsgi_temp_path $WORK/nginx-tmp;
  scgi_temp_path $WORK/nginx-tmp;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $DATA/assets;
  }
}
CONF

# Kindling's menu entry whose only file is nginx's copy: /cache/bench/x86_64/blob.bin.
# Every wrk connection comes from 127.0.0.1, one client address: without lifting the
# per-client cap (64 by default, as behind a NAT) a run with more connections measures
# refusals.
cat >"$WORK/run/kindling.toml" <<CONF
[http]
max_connections_per_client = 0

[menu]
shipped_catalog = false

[[menu.entries]]
id = "bench"
title = "cache benchmark"
[menu.entries.arch.x86_64]
kernel = "blob.bin"
[menu.entries.arch.x86_64.files."blob.bin"]
url = "http://127.0.0.1:$NGINX_PORT/blob.bin"
sha256 = "$SUM"
CONF

# `ip netns exec` may fork (then $! is ip's PID, not the server's): each server is started
# by a shell that writes its own PID to a file and execs the server.
pid_of_file() { # FILE -> the PID written there (waits up to 5 s)
  for _ in $(seq 100); do
    [ -s "$1" ] && { cat "$1"; return; }
    sleep 0.05
  done
  echo "no PID in $1" >&2; exit 1
}
# shellcheck disable=SC2016 # $0, $$ and $@ are the inner shell's
run_in_ns() { inns sh -c 'echo $$ >"$0"; exec "$@"' "$@"; }
run_in_ns "$WORK/nginx.server-pid" nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" &
PIDS+=("$!")
NGINX_PID=$(pid_of_file "$WORK/nginx.server-pid")
PIDS+=("$NGINX_PID")
(cd "$WORK/run" && run_in_ns "$WORK/kindling.server-pid" "$BIN" serve --data-dir "$DATA" \
  --state-dir "$WORK/state" --cache-dir "$WORK/cache" \
  --http-listen "127.0.0.1:$KINDLING_PORT" --admin-listen "" --no-watch) \
  >"$WORK/kindling.log" 2>&1 &
PIDS+=("$!")
KINDLING_PID=$(pid_of_file "$WORK/kindling.server-pid")
PIDS+=("$KINDLING_PID")

NURL="http://127.0.0.1:$NGINX_PORT/blob.bin"
AURL="http://127.0.0.1:$KINDLING_PORT/assets/blob.bin"
CURL_="http://127.0.0.1:$KINDLING_PORT/cache/bench/x86_64/blob.bin"
up=""
for _ in $(seq 200); do
  kill -0 "$NGINX_PID" 2>/dev/null || break
  kill -0 "$KINDLING_PID" 2>/dev/null || break
  if inns curl -fso /dev/null -r 0-0 "$NURL" && inns curl -fso /dev/null -r 0-0 "$AURL"; then
    up=1; break
  fi
  sleep 0.1
done
if [ -z "$up" ]; then
  echo "servers did not come up; nginx:" >&2; tail -5 "$WORK/nginx-error.log" >&2 || true
  echo "kindling:" >&2; tail -20 "$WORK/kindling.log" >&2
  exit 1
fi
# nginx's workers: the master's children (worker_processes 2).
for _ in $(seq 50); do
  mapfile -t NGINX_WORKERS < <(pgrep -P "$NGINX_PID")
  [ "${#NGINX_WORKERS[@]}" -ge 2 ] && break
  sleep 0.1
done
[ "${#NGINX_WORKERS[@]}" = 2 ] || { echo "expected 2 nginx workers, found ${#NGINX_WORKERS[@]}" >&2; exit 1; }

# Are the servers in the namespace (and not in this shell's)?
host_ns=$(readlink /proc/self/ns/net)
ns_of() { readlink "/proc/$1/ns/net"; }
in_ns=yes
for p in "$NGINX_PID" "${NGINX_WORKERS[@]}" "$KINDLING_PID"; do
  [ "$(ns_of "$p")" != "$host_ns" ] || in_ns=no
done
[ "$(ns_of "$NGINX_PID")" = "$(ns_of "$KINDLING_PID")" ] || in_ns=no
if [ "$(cat "/proc/$NGINX_PID/comm")" != nginx ] || [ "$(cat "/proc/$KINDLING_PID/comm")" != kindling ]; then
  echo "PID $NGINX_PID or $KINDLING_PID is not the server's" >&2; exit 1
fi
echo "in netns:  $in_ns (servers in $(ns_of "$KINDLING_PID"), this shell in $host_ns; wrk and curl via ip netns exec $NS)"
[ "$in_ns" = yes ] || { echo "the servers are not in the namespace" >&2; exit 1; }

# --- warm the cache, check the bytes ------------------------------------------------------
inns curl -fsS -o /dev/null "http://127.0.0.1:$KINDLING_PORT/menu.ipxe?arch=x86_64&platform=efi"
got=$(inns curl -fsS "$CURL_" | sha256sum | cut -d' ' -f1)
[ "$got" = "$SUM" ] || { echo "kindling /cache/ (miss, from nginx): sha256 $got, want $SUM" >&2; tail -20 "$WORK/kindling.log" >&2; exit 1; }
inns curl -fsSI "$CURL_" | grep -qi '^x-kindling-cache: hit' || {
  echo "kindling's cache is not warm after the first GET" >&2; tail -20 "$WORK/kindling.log" >&2; exit 1; }
url_of() {
  case $1 in
    kindling-assets) echo "$AURL" ;;
    kindling-cache) echo "$CURL_" ;;
    nginx) echo "$NURL" ;;
  esac
}
for s in "${SERVERS[@]}"; do
  got=$(inns curl -fsS "$(url_of "$s")" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$SUM" ] || { echo "$s: sha256 $got, want $SUM" >&2; exit 1; }
done
echo "checked:   sha256 of one full GET from each server = the file's ($SUM, $SIZE bytes); /cache/ answers X-Kindling-Cache: hit"

# --- measuring ----------------------------------------------------------------------------
TCK=$(getconf CLK_TCK)
cat >"$WORK/summary.lua" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKSUM %.0f %.0f %.0f %.0f\n", summary.bytes, summary.duration,
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout))
end
LUA
pids_of() {
  case $1 in
    kindling-*) echo "$KINDLING_PID" ;;
    nginx) echo "$NGINX_PID ${NGINX_WORKERS[*]}" ;;
  esac
}
ticks() { # utime + stime (fields 14, 15; the name in field 2 may hold spaces) of the PIDs
  local p
  for p in "$@"; do cat "/proc/$p/stat"; done |
    awk '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); t += f[12] + f[13] } END { printf "%d\n", t }'
}

busy() { # jiffies every CPU of the machine spent busy (/proc/stat: user, nice, system, irq,
  # softirq, steal; idle and iowait left out): the server, wrk and the kernel's own threads
  awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# measure SERVER CONNS -> "MB/s CPU-s/GiB bytes cpu_s requests errors machine-CPU-s/GiB"
measure() {
  local s=$1 c=$2 t pids before after mbefore mafter out bytes us reqs errs
  t=$(( c < 2 ? 1 : 2 ))
  read -r -a pids <<<"$(pids_of "$s")"
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "$s: process $p is gone" >&2; exit 1; }; done
  mbefore=$(busy)
  before=$(ticks "${pids[@]}")
  out=$(inns wrk -t"$t" -c"$c" -d"${DURATION}s" --timeout $((DURATION + 120))s \
    -s "$WORK/summary.lua" "$(url_of "$s")")
  after=$(ticks "${pids[@]}")
  mafter=$(busy)
  read -r bytes us reqs errs < <(awk '/^WRKSUM/ { print $2, $3, $4, $5 }' <<<"$out")
  if [ -z "${bytes:-}" ] || [ "$bytes" -le 0 ]; then
    echo "$s c=$c: wrk read nothing:" >&2; echo "$out" >&2; exit 1
  fi
  awk -v b="$bytes" -v us="$us" -v d="$((after - before))" -v tck="$TCK" -v r="$reqs" -v e="$errs" \
    -v md="$((mafter - mbefore))" 'BEGIN {
    cpu = d / tck
    printf "%.1f %.4f %.0f %.2f %.0f %.0f %.4f\n", b / (us / 1e6) / 1e6, cpu / (b / 1073741824), b, cpu, r, e,
      md / tck / (b / 1073741824) }'
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
  if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A MBPS CPUG MACH
RAW=()
n=${#SERVERS[@]}
for r in $(seq "$ROUNDS"); do
  for c in $CONNS; do
    for i in $(seq 0 $((n - 1))); do
      s=${SERVERS[$(( (i + r - 1) % n ))]}   # the order rotates every round
      res=$(measure "$s" "$c")   # a failure inside stops the script here
      read -r mbps cpug bytes cpu reqs errs mach <<<"$res"
      MBPS[$c,$s]+="$mbps "
      CPUG[$c,$s]+="$cpug "
      MACH[$c,$s]+="$mach "
      RAW+=("$(printf '%5s %5s  %-16s %9s MB/s %8s CPU-s/GiB %8s machine  (%s bytes read, %s CPU-s, %s responses, %s errors)' \
        "$r" "$c" "$s" "$mbps" "$cpug" "$mach" "$bytes" "$cpu" "$reqs" "$errs")")
    done
  done
done

echo
echo "load avg:  $(cut -d' ' -f1-3 /proc/loadavg) (at end)"
echo
echo "medians of $ROUNDS round(s), ${DURATION} s per run; ratios = kindling / nginx; targets: MB/s >= 1.0x, CPU-s/GiB <= 1.5x"
printf '%5s  %-16s %9s %8s %10s %8s %10s %8s  %s\n' conns server "MB/s" "x nginx" "CPU-s/GiB" "x nginx" \
  "machine" "x nginx" target
for c in $CONNS; do
  read -r -a v <<<"${MBPS[$c,nginx]}"; nm=$(median "${v[@]}")
  read -r -a v <<<"${CPUG[$c,nginx]}"; nc=$(median "${v[@]}")
  read -r -a v <<<"${MACH[$c,nginx]}"; nw=$(median "${v[@]}")
  for s in "${SERVERS[@]}"; do
    read -r -a v <<<"${MBPS[$c,$s]}"; m=$(median "${v[@]}")
    read -r -a v <<<"${CPUG[$c,$s]}"; g=$(median "${v[@]}")
    read -r -a v <<<"${MACH[$c,$s]}"; w=$(median "${v[@]}")
    if [ "$s" = nginx ]; then
      printf '%5s  %-16s %9.1f %8s %10.4f %8s %10.4f %8s  %s\n' "$c" "$s" "$m" "" "$g" "" "$w" "" ""
    else
      awk -v c="$c" -v s="$s" -v m="$m" -v g="$g" -v w="$w" -v nm="$nm" -v nc="$nc" -v nw="$nw" 'BEGIN {
        rt = (nm > 0) ? m / nm : 0; rc = (nc > 0) ? g / nc : 0; rw = (nw > 0) ? w / nw : 0
        printf "%5s  %-16s %9.1f %7.2fx %10.4f %7.2fx %10.4f %7.2fx  %s\n", c, s, m, rt, g, rc, w, rw,
          (rt >= 1.0 && rc <= 1.5) ? "met" : "missed (" ((rt < 1.0) ? "throughput" : "") \
          ((rt < 1.0 && rc > 1.5) ? ", " : "") ((rc > 1.5) ? "CPU" : "") ")" }'
    fi
  done
done
echo
echo "per round (raw):"
printf '%5s %5s  %-16s %14s %18s\n' round conns server throughput CPU
printf '%s\n' "${RAW[@]}"
