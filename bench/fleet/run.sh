#!/usr/bin/env bash
# Fleet benchmark (issue 18, must-show 3): the etcd store against the data directory.
#
#  1. /ipxe?mac=<random MAC> throughput with 10,000 groups, etcd store vs data
#     directory, same groups, same machine, same run (wrk, bench/http/ipxe.lua);
#  2. initial load of the 10,000 groups: from `kindling serve` start until it answers
#     HTTP, and until its log says the objects are loaded, etcd vs data directory;
#  3. write-to-visible latency: a group PUT through server A's admin REST API, polled
#     on server B's /ipxe?mac= until 200 (two servers on one etcd), p50/p99/max.
#
# Everything (one etcd member, the servers, wrk, the pollers) runs inside a network
# namespace this script creates, on its loopback. 1 and 2 are measured ROUNDS times and
# the medians reported: each round starts a directory-backed and an etcd-backed server
# (the first one alternates), then drives each with wrk in SLICES alternating slices of
# DURATION/SLICES s, so that load from elsewhere on the machine falls on both alike;
# then both at once (half the connections each) as a cross-check. The etcd servers get
# an empty data directory. Not a test: the figures depend on the machine (the load
# average is printed; a busy machine makes them noisy).
#
# Needs root (ip netns), etcd (Debian's etcd-server), wrk, curl, python3, and kindling
# built with the etcd feature (`cargo build --release -p kindling --locked --features
# etcd`, done here when target/release/kindling is missing or lacks it). About 3
# minutes with the defaults (2 s slices, 16 s per store and round).
#
#   bench/fleet/run.sh
#   ROUNDS=5 DURATION=5 WRITES=100 bench/fleet/run.sh
#   KINDLING_BIN=/path/to/kindling bench/fleet/run.sh
#   KEEP=1 bench/fleet/run.sh      # keep the work directory (logs, etcd data)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
NGROUPS=${NGROUPS:-10000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-16}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
SLICES=${SLICES:-8}               # DURATION per store per round, cut in SLICES wrk runs
WRITES=${WRITES:-200}
ETCD_PORT=${ETCD_PORT:-23790}     # client; the peer port is the next one
HTTP_BASE=${HTTP_BASE:-18700}     # HTTP ports: dir +0, etcd +4, A +10, B +20 (admin: +2)
bin=${KINDLING_BIN:-$root/target/release/kindling}

# ---------------------------------------------------------------------------------
# Outside: check, build if needed, create the namespace, run this script inside it,
# and clean up whatever happens.
# ---------------------------------------------------------------------------------
if [ -z "${FLEET_INNER:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "run as root (ip netns)" >&2; exit 1; }
  for c in ip etcd wrk curl python3; do
    command -v "$c" >/dev/null || { echo "$c is needed (etcd: apt-get install etcd-server)" >&2; exit 1; }
  done
  # Whether a binary has the etcd store (a release feature): importing an empty
  # directory needs no etcd at all, and a build without it says so.
  has_etcd() {
    local t rc=0
    t=$(mktemp -d /tmp/kindling-bench-fleet-probe.XXXXXX)
    printf '[store]\nbackend = "etcd"\nendpoints = ["http://127.0.0.1:9"]\n' >"$t/k.toml"
    mkdir "$t/empty"
    timeout 20 "$1" store import --config "$t/k.toml" "$t/empty" >"$t/out" 2>&1 || rc=$?
    rm -rf "$t"
    return "$rc"
  }
  if [ ! -x "$bin" ] || ! has_etcd "$bin"; then
    [ -n "${KINDLING_BIN:-}" ] && { echo "KINDLING_BIN=$bin is not a kindling built with the etcd feature" >&2; exit 1; }
    echo "building $bin (cargo build --release -p kindling --locked --features etcd)"
    (cd "$root" && cargo build --release -p kindling --locked --features etcd)
    has_etcd "$bin" || { echo "$bin: still no etcd store" >&2; exit 1; }
  fi
  ns="kindling-fleet-$$"
  work=$(mktemp -d /tmp/kindling-bench-fleet.XXXXXX)
  inner=""
  cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # The inner script stops its own processes; then anything still in the namespace
    # (only what this run started can be there) is ended by its PID.
    if [ -n "$inner" ] && kill -0 "$inner" 2>/dev/null; then
      kill -TERM "$inner" 2>/dev/null || true
    fi
    if ip netns list | grep -qw "$ns"; then
      local pids
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      # shellcheck disable=SC2086 # one word per PID
      [ -n "$pids" ] && kill -TERM $pids 2>/dev/null || true
      for _ in $(seq 50); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -z "$pids" ] && break
        sleep 0.1
      done
      # shellcheck disable=SC2086
      [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
      ip netns del "$ns" 2>/dev/null || true
    fi
    [ -n "$inner" ] && wait "$inner" 2>/dev/null || true
    if [ "$rc" != 0 ] && [ -z "${KEEP:-}" ]; then
      echo "(logs were in $work; KEEP=1 keeps them)" >&2
    fi
    if [ -n "${KEEP:-}" ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
    exit "$rc"
  }
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  ip netns add "$ns"
  ip netns exec "$ns" ip link set lo up
  # In the background so that a signal reaches the trap at once.
  FLEET_INNER=1 FLEET_WORK="$work" KINDLING_BIN="$bin" ip netns exec "$ns" bash "$0" &
  inner=$!
  rc=0
  wait "$inner" || rc=$?
  inner=""
  exit "$rc"
fi

# ---------------------------------------------------------------------------------
# Inside the namespace.
# ---------------------------------------------------------------------------------
work=$FLEET_WORK
pids=()
stop_pid() { # stop_pid PID: TERM, then KILL after 5 s
  local p=$1
  kill -TERM "$p" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
inner_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do stop_pid "$p"; done
  exit "$rc"
}
trap inner_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
med() { local -a xs; read -r -a xs <<<"$1"; median "${xs[@]}"; }
# wrk's latencies (980.00us, 10.57ms, 1.20s) in ms.
to_ms() { for x in "$@"; do echo "$x" | awk '/us$/ {sub(/us/,""); print $1/1000; next} /ms$/ {sub(/ms/,""); print $1+0; next} /s$/ {sub(/s/,""); print $1*1000}'; done | paste -sd' ' -; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.3f", a/b; else print "-" }'; }
fail=0
log() { echo "$*" >&2; }

# The groups: bench/http's generator (10 profiles, one MAC selector per group).
data="$work/data"
python3 "$root/bench/http/gen.py" "$data" "$NGROUPS"
macs="$data/macs.txt"
# The etcd servers get an empty data directory (assets only), so that what they serve
# can only have come from etcd.
mkdir -p "$work/empty/assets"
token="$work/admin.token"
( umask 077; python3 -c 'import secrets; print(secrets.token_hex(32))' >"$token" )

# One etcd member on this namespace's loopback.
etcd_url="http://127.0.0.1:$ETCD_PORT"
peer_url="http://127.0.0.1:$((ETCD_PORT + 1))"
etcd --name fleet --data-dir "$work/etcd" \
  --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
  --listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
  --initial-cluster "fleet=$peer_url" --initial-cluster-state new \
  --auto-compaction-retention 0 --logger zap --log-level warn >"$work/etcd.log" 2>&1 &
etcd_pid=$!
pids+=("$etcd_pid")
t0=$(date +%s%N)
until curl -sf "$etcd_url/health" 2>/dev/null | grep -q '"health":"true"'; do
  kill -0 "$etcd_pid" 2>/dev/null || { log "etcd exited:"; cat "$work/etcd.log" >&2; exit 1; }
  [ "$(ms_since "$t0")" -lt 20000 ] || { log "etcd not healthy within 20 s"; exit 1; }
  sleep 0.05
done

cat >"$work/etcd.toml" <<EOF
[store]
backend = "etcd"
endpoints = ["$etcd_url"]
prefix = "/kindling/"
EOF
t0=$(date +%s%N)
"$bin" store import --config "$work/etcd.toml" "$data" >"$work/import.log" 2>&1 || {
  log "kindling store import failed:"; cat "$work/import.log" >&2; exit 1; }
import_ms=$(ms_since "$t0")
grep -q "^imported $((NGROUPS + 10)) object" "$work/import.log" || {
  log "kindling store import did not import $NGROUPS groups and 10 profiles:"; cat "$work/import.log" >&2; exit 1; }
echo "$(tail -1 "$work/import.log") in $import_ms ms"

# etcd's count of unary gRPC calls (Range, Put, ...) it has served, from its metrics.
etcd_unary() {
  curl -sf "$etcd_url/metrics" | awk '/^grpc_server_started_total/ && /grpc_type="unary"/ {s += $NF} END {printf "%d", s}'
}

# start_server NAME BACKEND PORT: a `kindling serve` in its own directory, with its own
# kindling.toml; sets srv_pid, srv_http_ms (until it answers HTTP), srv_dir.
start_server() {
  local name=$1 backend=$2 port=$3
  srv_dir="$work/srv-$name"
  rm -rf "$srv_dir"; mkdir -p "$srv_dir"
  local dd
  {
    echo "[admin]"
    echo "token_file = \"$token\""
    if [ "$backend" = etcd ]; then
      echo
      cat "$work/etcd.toml"
    fi
  } >"$srv_dir/kindling.toml"
  if [ "$backend" = etcd ]; then dd="$work/empty"; else dd="$data"; fi
  local t0
  t0=$(date +%s%N)
  ( cd "$srv_dir" && exec "$bin" serve --http-listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$((port + 2))" \
      --state-dir "$srv_dir/state" --cache-dir "$srv_dir/cache" --data-dir "$dd" ) >"$srv_dir/log" 2>&1 &
  srv_pid=$!
  pids+=("$srv_pid")
  until curl -sf -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; do
    kill -0 "$srv_pid" 2>/dev/null || { log "server $name exited:"; tail -20 "$srv_dir/log" >&2; exit 1; }
    [ "$(ms_since "$t0")" -lt 60000 ] || { log "server $name not answering within 60 s"; exit 1; }
    sleep 0.002
  done
  srv_http_ms=$(ms_since "$t0")
  # From the start until the log line saying the objects are loaded (its timestamp).
  local line ts
  line=$(grep -m1 -E 'etcd store loaded|data directory loaded' "$srv_dir/log" || true)
  ts=$(echo "$line" | awk '{print $1}')
  if [ -n "$ts" ]; then
    srv_load_ms=$(( ($(date -d "$ts" +%s%N) - t0) / 1000000 ))
  else
    srv_load_ms="-"
  fi
  srv_groups=$(grep -m1 -oE 'data directory loaded( from etcd)? groups=[0-9]+' "$srv_dir/log" | grep -oE '[0-9]+$' || echo "?")
  [ "$srv_groups" = "$NGROUPS" ] || { log "server $name loaded $srv_groups groups, not $NGROUPS"; fail=1; }
}

stop_server() { # stop_server PID
  stop_pid "$1"
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
  pids=("${keep[@]}")
}

# CPU time (user + system) of a process so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# slice BACKEND PORT PID SECS: one wrk run; adds its requests, seconds, the server's CPU
# ticks and (for etcd) etcd's unary calls and CPU ticks to the round's sums.
slice() {
  local b=$1 port=$2 pid=$3 secs=$4 out c0 c1 u0 u1 e0 e1 n t errs
  c0=$(cpu_ticks "$pid"); u0=$(etcd_unary); e0=$(cpu_ticks "$etcd_pid")
  out=$(MACS_FILE="$macs" wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --latency -s "$root/bench/http/ipxe.lua" "http://127.0.0.1:$port")
  c1=$(cpu_ticks "$pid"); u1=$(etcd_unary); e1=$(cpu_ticks "$etcd_pid")
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  t=$(echo "$out" | awk '/requests in/ {x = $4; sub(/,$/, "", x); if (x ~ /ms$/) {sub(/ms$/, "", x); x /= 1000} else if (x ~ /m$/) {sub(/m$/, "", x); x *= 60} else sub(/s$/, "", x); print x}')
  errs=$(echo "$out" | awk '/Non-2xx|Socket errors/' | tr -s ' ' | paste -sd';' -)
  [ -n "$errs" ] && { echo "  wrk ($b): $errs"; fail=1; }
  s_req[$b]=$(( ${s_req[$b]} + n ))
  s_time[$b]=$(awk -v a="${s_time[$b]}" -v b="$t" 'BEGIN{print a + b}')
  s_cpu[$b]=$(( ${s_cpu[$b]} + c1 - c0 ))
  s_p99[$b]+="$(to_ms "$(echo "$out" | awk '$1=="99%" {print $2}')") "
  if [ "$b" = etcd ]; then
    s_calls=$(( s_calls + u1 - u0 )); s_ecpu=$(( s_ecpu + e1 - e0 ))
  fi
}

declare -A rps p99 http_ms load_ms rss cpu
for b in dir etcd; do rps[$b]=""; p99[$b]=""; http_ms[$b]=""; load_ms[$b]=""; rss[$b]=""; cpu[$b]=""; done
etcd_calls=(); etcd_cpu=(); round_ratio=(); ab_ratio=()
slice_s=$(( DURATION / SLICES )); [ "$slice_s" -ge 1 ] || slice_s=1
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
echo "each round: both servers started one after the other, ${WARMUP} s warm-up each, $SLICES x ${slice_s} s wrk slices per store, alternating; then both driven at once for $(( (DURATION + 1) / 2 )) s"
printf '%-6s %-5s %10s %9s %9s %9s %8s %10s\n' round store req/s p99_ms http_ms load_ms rss_MB cpu_us/req
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then order="dir etcd"; else order="etcd dir"; fi
  declare -A port=([dir]=$HTTP_BASE [etcd]=$((HTTP_BASE + 4))) spid=() s_req=() s_time=() s_cpu=() s_p99=() r_http=() r_load=()
  s_calls=0; s_ecpu=0
  for b in $order; do
    start_server "$b-$r" "$b" "${port[$b]}"
    spid[$b]=$srv_pid; r_http[$b]=$srv_http_ms; r_load[$b]=$srv_load_ms
    s_req[$b]=0; s_time[$b]=0; s_cpu[$b]=0; s_p99[$b]=""
  done
  for b in $order; do
    MACS_FILE="$macs" wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -s "$root/bench/http/ipxe.lua" "http://127.0.0.1:${port[$b]}" >/dev/null
  done
  for k in $(seq "$SLICES"); do
    if [ $(( (r + k) % 2 )) = 0 ]; then o="dir etcd"; else o="etcd dir"; fi
    for b in $o; do slice "$b" "${port[$b]}" "${spid[$b]}" "$slice_s"; done
  done
  # Both at once: two wrk (half the threads and connections each) for DURATION/2 s, so
  # that whatever else runs on the machine weighs on both stores alike.
  ct=$(( THREADS > 1 ? THREADS / 2 : 1 )); cc=$(( CONNS / 2 ))
  MACS_FILE="$macs" wrk -t"$ct" -c"$cc" -d"$(( (DURATION + 1) / 2 ))s" -s "$root/bench/http/ipxe.lua" "http://127.0.0.1:${port[dir]}" >"$work/ab-dir.txt" &
  ab=$!
  MACS_FILE="$macs" wrk -t"$ct" -c"$cc" -d"$(( (DURATION + 1) / 2 ))s" -s "$root/bench/http/ipxe.lua" "http://127.0.0.1:${port[etcd]}" >"$work/ab-etcd.txt"
  wait "$ab"
  ab_ratio+=("$(ratio "$(awk '/requests in/ {print $1}' "$work/ab-etcd.txt")" "$(awk '/requests in/ {print $1}' "$work/ab-dir.txt")")")
  declare -A this=()
  for b in $order; do
    m=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/${spid[$b]}/status")
    this[$b]=$(awk -v n="${s_req[$b]}" -v t="${s_time[$b]}" 'BEGIN{printf "%.0f", n / t}')
    c=$(awk -v c="${s_cpu[$b]}" -v n="${s_req[$b]}" -v hz="$hz" 'BEGIN{ if (n > 0) printf "%.1f", c * 1e6 / hz / n; else print "-" }')
    read -r -a xs <<<"${s_p99[$b]}"; q=$(median "${xs[@]}")
    printf '%-6s %-5s %10s %9s %9s %9s %8s %10s\n' "$r" "$b" "${this[$b]}" "$q" "${r_http[$b]}" "${r_load[$b]}" "$m" "$c"
    rps[$b]+="${this[$b]} "; p99[$b]+="$q "; http_ms[$b]+="${r_http[$b]} "; load_ms[$b]+="${r_load[$b]} "; rss[$b]+="$m "; cpu[$b]+="$c "
  done
  for b in $order; do stop_server "${spid[$b]}"; done
  # The request logs (info: a line per request) run to ~100 MB a server and round.
  [ -n "${KEEP:-}" ] || rm -f "$work/srv-dir-$r/log" "$work/srv-etcd-$r/log"
  etcd_calls+=("$s_calls"); etcd_cpu+=($(( s_ecpu * 1000 / hz )))
  round_ratio+=("$(ratio "${this[etcd]}" "${this[dir]}")")
done
echo "load average after the throughput runs: $(cut -d' ' -f1-3 /proc/loadavg)"

# Write-to-visible: servers A and B on the same etcd.
a_port=$((HTTP_BASE + 10)); b_port=$((HTTP_BASE + 20))
start_server A etcd "$a_port"; a_pid=$srv_pid
start_server B etcd "$b_port"; b_pid=$srv_pid
etcd_metric() { curl -sf "$etcd_url/metrics" | awk -v k="$1" '$1==k {print $2}'; }
f_sum0=$(etcd_metric etcd_disk_wal_fsync_duration_seconds_sum); f_n0=$(etcd_metric etcd_disk_wal_fsync_duration_seconds_count)
# etcd's current revision (the JSON gateway): how many writes the run made.
etcd_rev() { curl -sf -X POST -d '{"key":"AA==","limit":1}' "$etcd_url/v3/kv/range" | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])'; }
rev0=$(etcd_rev)
a0=$(cpu_ticks "$a_pid"); b0=$(cpu_ticks "$b_pid")
echo "write-to-visible: $WRITES group PUTs through A, polled on B"
lat=$(python3 "$here/latency.py" --admin "127.0.0.1:$((a_port + 2))" --token-file "$token" \
  --poll "127.0.0.1:$b_port" --count "$WRITES") || { echo "  write-to-visible: some writes failed"; fail=1; }
a1=$(cpu_ticks "$a_pid"); b1=$(cpu_ticks "$b_pid")
rev1=$(etcd_rev)
f_sum1=$(etcd_metric etcd_disk_wal_fsync_duration_seconds_sum); f_n1=$(etcd_metric etcd_disk_wal_fsync_duration_seconds_count)
kv() { echo "$lat" | tr ' ' '\n' | awk -F= -v k="$1" '$1==k {print $2}'; }
per_write() { awk -v c="$1" -v n="$WRITES" -v hz="$hz" 'BEGIN{printf "%.1f", c * 1000 / hz / n}'; }
a_cpu=$(per_write $((a1 - a0))); b_cpu_w=$(per_write $((b1 - b0)))
fsync_ms=$(awk -v s0="$f_sum0" -v s1="$f_sum1" -v n0="$f_n0" -v n1="$f_n1" 'BEGIN{ if (n1 > n0) printf "%.2f", (s1 - s0) * 1000 / (n1 - n0); else print "-" }')
b_groups=$(grep -oE 'updated from etcd .*groups=[0-9]+' "$srv_dir/log" | tail -1 | grep -oE '[0-9]+$' || echo "?")
stop_server "$b_pid"
stop_server "$a_pid"

# ---------------------------------------------------------------------------------
echo
echo "Must-show 3 of issue 18: $NGROUPS groups, $ROUNDS rounds (medians), wrk -t$THREADS -c$CONNS -d${DURATION}s, one etcd member ($(etcd --version | awk '/etcd Version/ {print $3}')), $(nproc) CPUs, inside netns"
printf '%-42s %12s %12s %8s %s\n' "" "dir" "etcd" "ratio" "target"
rd=$(med "${rps[dir]}"); re=$(med "${rps[etcd]}")
pd=$(med "${p99[dir]}"); pe=$(med "${p99[etcd]}")
hd=$(med "${http_ms[dir]}"); he=$(med "${http_ms[etcd]}")
ld=$(med "${load_ms[dir]}"); le=$(med "${load_ms[etcd]}")
md=$(med "${rss[dir]}"); me=$(med "${rss[etcd]}")
rr=$(ratio "$re" "$rd")
printf '%-42s %12s %12s %8s %s\n' "/ipxe req/s" "$rd" "$re" "$rr" ">= 0.95 (etcd/dir)"
printf '%-42s %12s %12s %8s\n' "/ipxe p99 (ms, median of wrk slices)" "$pd" "$pe" "$(ratio "$pe" "$pd")"
printf '%-42s %12s %12s %8s %s\n' "start until answering HTTP (ms)" "$hd" "$he" "" "etcd <= 2000"
printf '%-42s %12s %12s\n' "start until objects loaded (ms)" "$ld" "$le"
printf '%-42s %12s %12s\n' "RSS after the run (MB)" "$md" "$me"
cd_=$(med "${cpu[dir]}"); ce=$(med "${cpu[etcd]}")
printf '%-42s %12s %12s %8s\n' "server CPU per request (us)" "$cd_" "$ce" "$(ratio "$ce" "$cd_")"
echo "etcd/dir throughput per round (alternating slices): ${round_ratio[*]} (median $(median "${round_ratio[@]}"))"
echo "etcd/dir requests with both driven at the same time (wrk -t$(( THREADS > 1 ? THREADS / 2 : 1 )) -c$(( CONNS / 2 )) each): ${ab_ratio[*]} (median $(median "${ab_ratio[@]}"))"
calls_total=0; for c in "${etcd_calls[@]}"; do calls_total=$((calls_total + c)); done
if [ "$calls_total" = 0 ]; then why="none: the request path does not call etcd"; else why="NOT zero: something calls etcd while serving"; fail=1; fi
echo "etcd unary calls during the etcd-backed slices, per round: ${etcd_calls[*]} ($why); etcd CPU: ${etcd_cpu[*]} ms"
echo "import of $NGROUPS groups + 10 profiles (kindling store import): $import_ms ms"
echo "write-to-visible over $(kv writes) writes, PUT on A -> served by B (ms):  p50 $(kv visible_p50)  p99 $(kv visible_p99)  max $(kv visible_max)   (target: within 1000)"
echo "  PUT answered by A (A's own copy holds it) (ms):          p50 $(kv put_p50)  p99 $(kv put_p99)  max $(kv put_max)"
echo "  B served the group before A answered the PUT: $(kv b_first) of $(kv ok); failed writes: $(kv failed)"
echo "  CPU per write: A $a_cpu ms, B $b_cpu_w ms (a change rebuilds the snapshot of $b_groups groups); etcd WAL fsync mean $fsync_ms ms"
echo "  etcd revisions during the writes: $((rev1 - rev0)) (the groups, and the machine records B keeps for the MACs it was asked for)"

awk -v r="$rr" 'BEGIN{exit !(r >= 0.95)}' || { echo "  below target: etcd/dir throughput $rr < 0.95"; fail=1; }
[ "$he" != "-" ] && awk -v t="$he" 'BEGIN{exit !(t <= 2000)}' || { echo "  initial load from etcd $he ms > 2000 ms"; fail=1; }
vm=$(kv visible_max)
[ -n "$vm" ] && [ "$vm" != "-" ] && awk -v t="$vm" 'BEGIN{exit !(t <= 1000)}' || { echo "  a write took more than 1 s to be served by B"; fail=1; }
[ "$fail" = 0 ] && echo "all targets met" || { echo "TARGETS MISSED"; exit 1; }
