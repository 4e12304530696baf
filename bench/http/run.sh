#!/usr/bin/env bash
# HTTP benchmark: GET /ipxe?mac=<one of N MACs> with N = 100, 1,000 and 10,000
# groups (bench/http/gen.py: one MAC selector per group, 10 profiles), driven
# by wrk (bench/http/ipxe.lua) at 32 connections and 2 threads, against
#
#   kindling  the real `kindling serve` from `cargo build --release -p kindling`
#             (target/release/kindling) with an empty config file, no KINDLING_*
#             or RUST_LOG variables, so its DEFAULT log level (info): one line
#             per request. Its stdout/stderr go to a file in the work dir, as a
#             service's would go to journald. --no-watch, as before.
#   nginx     the reference (issue 20): `worker_processes 2`, its default
#             access_log (combined format, one line per request, unbuffered) to
#             a file in the work dir, `keepalive_requests 1000000` (Kindling
#             does not close keep-alive connections after N requests; nginx's
#             default 1000 would handicap it), answering `location = /ipxe`
#             with a constant file (`alias`, default_type = Kindling's
#             Content-Type): Kindling's own /ipxe reply for the first MAC,
#             fetched with curl, so the body is the same bytes (checked).
#             Everything else is nginx's compiled-in default (sendfile off, no
#             open_file_cache). nginx's headers are longer (Server,
#             Last-Modified, ETag, Accept-Ranges): both sizes are printed.
#
# Both get the same wrk script, connections, threads, warm-up and duration.
# Everything runs inside a network namespace this script creates
# (kindling-hbench-<pid>, loopback only; the host namespace slows some peers
# and flatters Kindling), removed on exit together with every process started
# here, also on failure or Ctrl-C. Needs root, iproute2, wrk, nginx, curl,
# python3.
#
# Each group count runs ROUNDS rounds; each round measures both servers, one
# after the other (kindling first in odd rounds, nginx first in even rounds),
# each started fresh and stopped after its run, so only one server is up while
# wrk runs. Printed: per round the raw values, then per group count the medians
# of req/s and p99 of both, the ratio kindling/nginx of the medians, and
# Kindling's start-up time (launch to first answer), RSS after the run and peak
# RSS (medians; the targets check the worst round). Targets checked: issue 2
# (>= 20,000 req/s, start-up <= 1 s, peak RSS <= 30 MB, 10,000 vs 100 groups
# >= 0.90x) and issue 20 (kindling/nginx >= 0.80 at 10,000 groups). Not a test:
# numbers depend on the machine; exits 1 when a target is missed.
#
#   sudo bench/http/run.sh                          # 100 1000 10000 groups, 10 s, 3 rounds
#   SIZES="10000" DURATION=5 ROUNDS=1 bench/http/run.sh
# Env: SIZES, DURATION (s), ROUNDS, CONNS, THREADS, WARMUP (s), PORT, KEEP=1
# (keep the work dir: logs, nginx.conf, the body), KINDLING (a server binary to run
# instead of building target/release/kindling).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SIZES=${SIZES:-"100 1000 10000"}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-2}
PORT=${PORT:-18480}

[ "$(id -u)" = 0 ] || { echo "run as root (it creates a network namespace)" >&2; exit 1; }
for b in ip wrk nginx curl python3 cargo; do
  command -v "$b" >/dev/null || { echo "missing $b (apt-get install -y iproute2 wrk nginx-light curl python3)" >&2; exit 1; }
done
# Kindling's defaults, whatever the caller's environment says.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^KINDLING_' || true)
unset RUST_LOG

echo "kernel: $(uname -srm)"
echo "cpus: $(nproc) ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo))"
echo "tools: $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(curl -V | head -1 | awk '{print $1, $2}')"

# KINDLING=path runs another build of the server (nothing is built then).
if [ -n "${KINDLING:-}" ]; then
  bin=$KINDLING
else
  (cd "$root" && env -u CARGO_TARGET_DIR cargo build --release -p kindling -q)
  bin="$root/target/release/kindling"
fi
echo "kindling: $("$bin" --version 2>/dev/null || echo '?') at $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet HEAD -- 2>/dev/null || echo ' (work tree modified)')"
echo "wrk: $THREADS threads, $CONNS connections, ${WARMUP}s warm-up then ${DURATION}s measured, $ROUNDS rounds, bench/http/ipxe.lua"

umask 022
ns=kindling-hbench-$$
work=$(mktemp -d /tmp/kindling-hbench.XXXXXX)
chmod 755 "$work" # nginx's workers run as nobody and read the body from here
cd "$work"
kpid="" npid="" wpid="" nworkers=""
ns_made=0

cleanup() {
  set +e
  local p
  for p in $kpid $npid $wpid $nworkers; do kill "$p" 2>/dev/null; done
  if [ "$ns_made" = 1 ]; then
    # Anything else still in our namespace was started here (curl, ip netns exec).
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
  fi
  wait 2>/dev/null
  if [ "$ns_made" = 1 ]; then
    sleep 0.2
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$ns"
ns_made=1
ip -n "$ns" link set lo up
# Only for commands run in the foreground: one started with & must be `ip netns
# exec` itself (it execs the program), so that $! is the program's PID.
inns() { ip netns exec "$ns" "$@"; }
echo "namespace: $ns (loopback only); work dir: $work"
echo "kindling log: stdout+stderr to a file in the work dir (as a service's to journald), default level info"
echo "nginx: worker_processes 2, access_log <work dir>/nginx-access.log (default combined format), keepalive_requests 1000000, location = /ipxe alias <Kindling's reply>"
echo

# wrk's latency ("850.00us", "1.23ms", "1.02s", "1.50m") in ms.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
    if (f < 0) { print "nan"; exit }
    printf "%.3f", n * f }'
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
maxof() { printf '%s\n' "$@" | sort -g | tail -1; }

# Poll URL from inside the namespace until it answers 2xx (at most 30 s).
wait_ready() {
  # shellcheck disable=SC2016 # $1 is expanded by sh -c
  inns timeout 30 sh -c 'until curl -sf --max-time 1 -o /dev/null "$1"; do sleep 0.005; done' _ "$1"
}

# wrk against the server on PORT: warm-up, then the measured run into $1.
run_wrk() {
  MACS_FILE="$data/macs.txt" ip netns exec "$ns" wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -s "$here/ipxe.lua" "http://127.0.0.1:$PORT" >"$1.warm" &
  wpid=$!; wait "$wpid"; wpid=""
  MACS_FILE="$data/macs.txt" ip netns exec "$ns" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$here/ipxe.lua" "http://127.0.0.1:$PORT" >"$1" &
  wpid=$!; wait "$wpid"; wpid=""
}
# Parse a wrk output: sets r (req/s), p99 (ms), errs, nreq (warm-up + measured requests).
parse_wrk() {
  r=$(awk '/Requests\/sec/ {print $2}' "$1")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$1")")
  errs=$(awk '/Non-2xx|Socket errors/' "$1" | tr -s ' ' | paste -sd ';' -)
  nreq=$(cat "$1.warm" "$1" | awk '/requests in/ {s += $1} END {print s + 0}')
}

start_kindling() {
  : >"$work/kindling.toml" # an empty config: every default (and no ./kindling.toml or /etc/kindling)
  local t0 t1
  t0=$(date +%s%N)
  ip netns exec "$ns" "$bin" serve --config "$work/kindling.toml" --data-dir "$data" --state-dir "$work/state" \
    --cache-dir "$work/cache" --http-listen "127.0.0.1:$PORT" --no-watch >"$work/kindling.log" 2>&1 &
  kpid=$!
  [ "$(cat "/proc/$kpid/comm" 2>/dev/null)" = kindling ] || sleep 0.05
  wait_ready "http://127.0.0.1:$PORT/" || { echo "kindling did not answer; its log:" >&2; tail -20 "$work/kindling.log" >&2; exit 1; }
  t1=$(date +%s%N)
  startup=$(( (t1 - t0) / 1000000 ))
  [ "$(cat "/proc/$kpid/comm")" = kindling ] || { echo "PID $kpid is not kindling" >&2; exit 1; }
}
stop_kindling() {
  kill "$kpid"; wait "$kpid" 2>/dev/null || true; kpid=""
  rm -rf "$work/state" "$work/cache"
}

write_nginx_conf() {
  mkdir -p "$work/nginx/tmp"
  cat >"$work/nginx.conf" <<EOF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events {}
http {
    access_log $work/nginx-access.log;
    client_body_temp_path $work/nginx/tmp/body;
    proxy_temp_path $work/nginx/tmp/proxy;
    fastcgi_temp_path $work/nginx/tmp/fastcgi;
    uwsgi_temp_path $work/nginx/tmp/uwsgi;
    scgi_temp_path $work/nginx/tmp/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$PORT;
        location = /ipxe {
            default_type $ctype;
            alias $work/body;
        }
    }
}
EOF
}
start_nginx() {
  : >"$work/nginx-access.log"
  ip netns exec "$ns" nginx -p "$work/nginx/" -e "$work/nginx-error.log" -c "$work/nginx.conf" -g 'daemon off;' >"$work/nginx-stderr.log" 2>&1 &
  npid=$!
  wait_ready "http://127.0.0.1:$PORT/ipxe?mac=$mac0" || { echo "nginx did not answer; its log:" >&2; tail -20 "$work/nginx-stderr.log" "$work/nginx-error.log" >&2; exit 1; }
  [ "$(cat "/proc/$npid/comm")" = nginx ] || { echo "PID $npid is not nginx" >&2; exit 1; }
  nworkers=$(pgrep -P "$npid" | tr '\n' ' ')
}
stop_nginx() {
  kill "$npid"; wait "$npid" 2>/dev/null || true; npid=""
  local p
  for p in $nworkers; do kill "$p" 2>/dev/null || true; done
  nworkers=""
}

# One measured run of server $1 (kindling|nginx) in round $2; appends to the arrays.
measure() {
  local s=$1 rd=$2 out="$work/wrk-$1" log lines extra
  if [ "$s" = kindling ]; then
    start_kindling
    if [ -z "$size" ]; then
      # The reference body: Kindling's reply for the first MAC (every profile's
      # reply has the same size here; checked on the first ten MACs).
      inns curl -sf -D "$work/headers-kindling" -o "$work/body" "http://127.0.0.1:$PORT/ipxe?mac=$mac0"
      size=$(stat -c %s "$work/body")
      local m
      for m in $(head -10 "$data/macs.txt"); do
        [ "$(inns curl -sf "http://127.0.0.1:$PORT/ipxe?mac=$m" | wc -c)" = "$size" ] || echo "  note: /ipxe?mac=$m is not $size bytes"
      done
      ctype=$(awk -F': *' 'tolower($1) == "content-type" {sub(/\r$/, "", $2); sub(/;.*/, "", $2); print $2}' "$work/headers-kindling")
      ctype=${ctype:-text/plain}
      write_nginx_conf
    fi
    run_wrk "$out"
    k_rss+=("$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$kpid/status")")
    k_peak+=("$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$kpid/status")")
    k_start+=("$startup")
    stop_kindling
    log="$work/kindling.log"
  else
    start_nginx
    if [ -z "$nsize" ]; then
      inns curl -sf -D "$work/headers-nginx" -o "$work/body-nginx" "http://127.0.0.1:$PORT/ipxe?mac=$mac0"
      nsize=$(stat -c %s "$work/body-nginx")
      cmp -s "$work/body" "$work/body-nginx" || { echo "nginx's body differs from Kindling's" >&2; exit 1; }
    fi
    run_wrk "$out"
    stop_nginx
    log="$work/nginx-access.log"
  fi
  parse_wrk "$out"
  lines=$(wc -l <"$log")
  rm -f "$log"
  extra=""
  [ "$s" = kindling ] && extra=$(printf '  start-up %s ms, RSS %s MB, peak %s MB' "$startup" "${k_rss[-1]}" "${k_peak[-1]}")
  printf '  round %s %-8s %10.0f req/s  p99 %7.2f ms  log %.2f lines/request%s%s\n' "$rd" "$s" "$r" "$p99" \
    "$(awk -v l="$lines" -v q="$nreq" 'BEGIN {print (q ? l / q : 0)}')" "$extra" "${errs:+  ERRORS: $errs}"
  [ -n "$errs" ] && { echo "    errors from $s: $errs"; fail=1; }
  if [ "$s" = kindling ]; then k_rps+=("$r"); k_p99+=("$p99"); else n_rps+=("$r"); n_p99+=("$p99"); fi
  return 0
}

declare -A kmed ratio
fail=0
summary=()
for n in $SIZES; do
  data="$work/data-$n"
  python3 "$here/gen.py" "$data" "$n"
  mac0=$(head -1 "$data/macs.txt")
  size="" nsize="" ctype=""
  k_rps=() k_p99=() n_rps=() n_p99=() k_start=() k_rss=() k_peak=()
  echo "$n groups:"
  for ((rd = 1; rd <= ROUNDS; rd++)); do
    if [ $((rd % 2)) = 1 ] || [ -z "$size" ]; then order="kindling nginx"; else order="nginx kindling"; fi
    for s in $order; do measure "$s" "$rd"; done
  done
  kh=$(wc -c <"$work/headers-kindling"); nh=$(wc -c <"$work/headers-nginx")
  echo "  reply: body $size bytes both ($ctype); headers kindling $kh bytes, nginx $nh bytes"
  rm -rf "$data" "$work/wrk-"*
  kr=$(median "${k_rps[@]}"); nr=$(median "${n_rps[@]}")
  kp=$(median "${k_p99[@]}"); np=$(median "${n_p99[@]}")
  st=$(median "${k_start[@]}"); rss=$(median "${k_rss[@]}"); peak=$(median "${k_peak[@]}")
  st_max=$(maxof "${k_start[@]}"); peak_max=$(maxof "${k_peak[@]}")
  rt=$(awk -v a="$kr" -v b="$nr" 'BEGIN {printf "%.2f", a / b}')
  kmed[$n]=$kr; ratio[$n]=$rt
  summary+=("$(printf '%-7s %14.0f %12.0f %7s %11.2f %10.2f %11.0f %7.1f %8.1f' "$n" "$kr" "$nr" "$rt" "$kp" "$np" "$st" "$rss" "$peak")")
  awk -v r="$kr" 'BEGIN {exit !(r >= 20000)}' || { echo "  below target: $kr req/s < 20000"; fail=1; }
  [ "$st_max" -le 1000 ] || { echo "  start-up $st_max ms > 1000 ms"; fail=1; }
  awk -v m="$peak_max" 'BEGIN {exit !(m <= 30)}' || { echo "  peak RSS $peak_max MB > 30 MB"; fail=1; }
done

echo
echo "medians of $ROUNDS round(s) (p99 in ms; start-up, RSS and peak RSS are Kindling's):"
printf '%-7s %14s %12s %7s %11s %10s %11s %7s %8s\n' groups kindling_req/s nginx_req/s k/nginx kindling_p99 nginx_p99 startup_ms rss_MB peak_MB
printf '%s\n' "${summary[@]}"
if [ -n "${kmed[100]:-}" ] && [ -n "${kmed[10000]:-}" ]; then
  r=$(awk -v a="${kmed[10000]}" -v b="${kmed[100]}" 'BEGIN {printf "%.2f", a / b}')
  echo "ratio 10000/100 groups: $r (target >= 0.90; matchbox v0.9.0: 3.8/750 = 0.005)"
  awk -v r="$r" 'BEGIN {exit !(r >= 0.9)}' || fail=1
fi
if [ -n "${ratio[10000]:-}" ]; then
  echo "kindling/nginx at 10000 groups: ${ratio[10000]} (target >= 0.80, issue 20)"
  awk -v r="${ratio[10000]}" 'BEGIN {exit !(r >= 0.8)}' || fail=1
fi
echo "for scale, matchbox v0.9.0 on this machine kind: 750 / 56 / 3.8 req/s at 100 / 1,000 / 10,000 groups"
if [ "$fail" = 0 ]; then echo "all targets met"; else echo "TARGETS MISSED"; exit 1; fi
