#!/usr/bin/env bash
# HTTP benchmark: /ipxe?mac=... with 100, 1,000 and 10,000 groups, driven by
# wrk at 32 connections. Prints req/s, p99, start-up time and RSS per size and
# checks the targets of issue 2. Not a test: numbers depend on the machine.
#
#   bench/http/run.sh            # all sizes, 10 s each
#   SIZES="10000" DURATION=5 bench/http/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SIZES=${SIZES:-"100 1000 10000"}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
PORT=${PORT:-18480}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }

(cd "$root" && cargo build --release -p kindling -q)
bin="$root/target/release/kindling"
work=$(mktemp -d /tmp/kindling-bench-http.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

printf '%-8s %12s %10s %10s %10s %10s\n' groups req/s p99 startup_ms rss_MB peak_MB
declare -A rps
fail=0
for n in $SIZES; do
  data="$work/data-$n"
  python3 "$here/gen.py" "$data" "$n"
  t0=$(date +%s%N)
  "$bin" serve --data-dir "$data" --state-dir "$work/state-$n" --cache-dir "$work/cache-$n" --http-listen "127.0.0.1:$PORT" --no-watch >"$work/log-$n" 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$PORT/" >/dev/null 2>&1; do sleep 0.005; done
  t1=$(date +%s%N)
  startup=$(( (t1 - t0) / 1000000 ))
  # warm-up, then the measured run
  MACS_FILE="$data/macs.txt" wrk -t"$THREADS" -c"$CONNS" -d2s -s "$here/ipxe.lua" "http://127.0.0.1:$PORT" >/dev/null
  out=$(MACS_FILE="$data/macs.txt" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$here/ipxe.lua" "http://127.0.0.1:$PORT")
  r=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}')
  rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$pid/status)
  peak=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/$pid/status)
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  printf '%-8s %12s %10s %10s %10s %10s\n' "$n" "$r" "$p99" "$startup" "$rss" "$peak"
  [ -n "$errs" ] && { echo "  errors: $errs"; fail=1; }
  rps[$n]=$r
  awk -v r="$r" 'BEGIN{exit !(r >= 20000)}' || { echo "  below target: $r req/s < 20000"; fail=1; }
  [ "$startup" -le 1000 ] || { echo "  start-up $startup ms > 1000 ms"; fail=1; }
  awk -v m="$peak" 'BEGIN{exit !(m <= 30)}' || { echo "  peak RSS $peak MB > 30 MB"; fail=1; }
done
if [ -n "${rps[100]:-}" ] && [ -n "${rps[10000]:-}" ]; then
  ratio=$(awk -v a="${rps[10000]}" -v b="${rps[100]}" 'BEGIN{printf "%.2f", a/b}')
  echo "ratio 10000/100 groups: $ratio (target >= 0.90; matchbox v0.9.0: 3.8/750 = 0.005)"
  awk -v r="$ratio" 'BEGIN{exit !(r >= 0.9)}' || fail=1
fi
echo "for scale, matchbox v0.9.0 on this machine kind: 750 / 56 / 3.8 req/s at 100 / 1,000 / 10,000 groups"
[ "$fail" = 0 ] && echo "all targets met" || { echo "TARGETS MISSED"; exit 1; }
