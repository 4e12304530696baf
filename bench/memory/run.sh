#!/usr/bin/env bash
# Memory under load (issue 20, target 5): RSS <= 30 MB with 10,000 groups loaded and
# 10,000 machines in the boot timeline, while the server answers proxy DHCP and /ipxe.
# Not a test: prints numbers, PASS/FAIL, exits 1 when the target is missed.
#
#   sudo bench/memory/run.sh [ROUNDS]        (default 3 rounds, each with a fresh server)
#
# What runs, per round, inside three network namespaces created here (names contain
# "kindling-mem-<pid>", removed on exit together with every process started here):
#
#   server ns  the real `kindling serve` ($KINDLING, default target/release/kindling), from
#              an empty work dir with a kindling.toml: proxy DHCP on veth s0
#              (192.168.77.1/24), HTTP on 0.0.0.0:8080 (reached over veth s1,
#              192.168.78.1/24), admin on 127.0.0.1:8082, TFTP on (the iPXE binary the
#              DHCP replies name; idle here), the boot timeline with its on-disk journal
#              (the default), the default log level (info) to a file, the file watch on:
#              as users run it. Data dir: NGROUPS groups from bench/http/gen.py (one MAC
#              selector each, 10 profiles).
#   DHCP ns    c0, no address (like PXE firmware): dhcpbench (crates/kindling-dhcp/
#              examples/dhcpbench.rs) sends BIOS PXE DISCOVERs from MACHINES distinct MACs,
#              one pass over all MACs every DHCP_PERIOD s (closed loop, WINDOW in flight;
#              at 10,000 MACs every 2 s each MAC sends 30/min, under the default per-MAC
#              rate limit of 60/min, so every DISCOVER is answered).
#   HTTP ns    h1 (192.168.78.2): wrk (bench/http/ipxe.lua) GET /ipxe?mac=<MAC> cycling
#              over the same MACs, CONNS connections, THREADS threads, as fast as it can.
#   dhcpbench's MAC i is 52:54:00:00:hi:lo and gen.py's group i selects the same MAC, so the
#   timeline holds MACHINES machines, each with DHCP and /ipxe events; a DISCOVER after an
#   /ipxe starts a new boot, so within a few passes every machine holds max_boots (5) boots:
#   the timeline's steady state (reached after ~5 passes, ~10 s).
#
# Phases: start-up (groups loaded, /readyz), IDLE s idle -> "start" RSS; DURATION s of both
# loads together -> "peak" (VmHWM at the end of the load, which includes start-up) and the
# largest RSS sampled under load; AFTER s idle -> "after" RSS (last sample). Then the
# machines in the timeline are counted (kindling_machines on /metrics and the length of
# /api/v1/machines) and one more sample is taken ("after API": what listing 10,000 machines
# costs: RSS after it, and VmHWM, whose jump is the listing's transient peak). VmRSS,
# VmHWM, RssAnon, RssFile and Threads of /proc/<pid>/status are sampled every 0.5 s
# throughout (KEEP=1 keeps them: <work dir>/round-N/samples.txt, with every log).
# PASS: the medians of peak and after are <= TARGET_MB and >= 95% of MACHINES are in the
# timeline in every round.
#
# Env: NGROUPS or GROUPS (10000 groups; see below), MACHINES (10000), DURATION (30 s),
# IDLE (3 s), AFTER (10 s), CONNS (32), THREADS (1), WINDOW (32), DHCP_PERIOD (2 s), TARGET_MB (30), KINDLING
# (server binary), DHCPBENCH (dhcpbench binary, default next to KINDLING in
# release/examples), SERVER_ENV (e.g. "MALLOC_ARENA_MAX=2": extra environment of the
# server only), SERVER_WRAP (a command prefix for the server, e.g. "heaptrack -o /tmp/h";
# the server's PID is then found by SERVER_COMM, default "kindling"), KEEP=1,
# PAGECACHE ("cold": before each round the server's binary is dropped from the page cache,
# as after a boot, so that two builds compared start alike; "warm" leaves it as it is).
# For diagnosis: LOADS ("dhcp http"; "dhcp" or "http" runs one load alone), OPS_EXTRA
# (lines added to the [ops] table, e.g. "max_boots = 1" or "journal = false").
#
# Timed runs on a shared machine: flock /tmp/kindling-bench.lock bench/memory/run.sh
set -euo pipefail
ROUNDS=${1:-3}
# Groups: NGROUPS, or GROUPS from the environment. A bash prompt drops `GROUPS=N cmd`
# (GROUPS is bash's own variable): write `env GROUPS=N cmd` or `NGROUPS=N cmd`.
NGROUPS=${NGROUPS:-$(printenv GROUPS || echo 10000)}
MACHINES=${MACHINES:-10000}
DURATION=${DURATION:-30}
IDLE=${IDLE:-3}
AFTER=${AFTER:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
WINDOW=${WINDOW:-32}
DHCP_PERIOD=${DHCP_PERIOD:-2}
TARGET_MB=${TARGET_MB:-30}
SERVER_ENV=${SERVER_ENV:-}
SERVER_WRAP=${SERVER_WRAP:-}
SERVER_COMM=${SERVER_COMM:-kindling}
LOADS=${LOADS:-"dhcp http"}
PAGECACHE=${PAGECACHE:-cold}
OPS_EXTRA=${OPS_EXTRA:-}
here=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$here/../.." && pwd)
KINDLING=${KINDLING:-$ROOT/target/release/kindling}
DHCPBENCH=${DHCPBENCH:-$(dirname "$KINDLING")/examples/dhcpbench}

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 2; }
for b in ip wrk curl python3 awk; do
  command -v "$b" >/dev/null || { echo "missing $b (apt-get install -y iproute2 wrk curl python3 gawk)" >&2; exit 2; }
done
[ -x "$KINDLING" ] || { echo "missing $KINDLING (cargo build --release -p kindling, or set KINDLING)" >&2; exit 2; }
[ -x "$DHCPBENCH" ] || { echo "missing $DHCPBENCH (cargo build --release -p kindling-dhcp --examples, or set DHCPBENCH)" >&2; exit 2; }
# Kindling's defaults, whatever the caller's environment says (the config file decides).
while read -r v; do unset "$v"; done < <(compgen -e | grep '^KINDLING_' || true)
unset RUST_LOG

S=kindling-mem-$$-s
C=kindling-mem-$$-c
H=kindling-mem-$$-h
TMP=$(mktemp -d /tmp/kindling-mem.XXXXXX)
SPID="" SAMPLER="" WRK="" DHCPLOOP=""
ns_made=0
cleanup() {
  set +e
  local p
  for p in $DHCPLOOP $WRK $SAMPLER $SPID; do kill "$p" 2>/dev/null; done
  if [ "$ns_made" = 1 ]; then
    # Anything else still in our namespaces was started here (dhcpbench, curl, wrappers).
    for p in $(ip netns pids "$S" 2>/dev/null) $(ip netns pids "$C" 2>/dev/null) $(ip netns pids "$H" 2>/dev/null); do kill "$p" 2>/dev/null; done
  fi
  wait 2>/dev/null
  if [ "$ns_made" = 1 ]; then
    sleep 0.2
    for p in $(ip netns pids "$S" 2>/dev/null) $(ip netns pids "$C" 2>/dev/null) $(ip netns pids "$H" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$S" 2>/dev/null
    ip netns del "$C" 2>/dev/null
    ip netns del "$H" 2>/dev/null
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'echo "run.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$S"; ip netns add "$C"; ip netns add "$H"; ns_made=1
ip -n "$S" link set lo up; ip -n "$C" link set lo up; ip -n "$H" link set lo up
# DHCP: the client side has no address, like PXE firmware (DISCOVERs come from 0.0.0.0).
ip -n "$S" link add s0 type veth peer name c0 netns "$C"
ip -n "$S" addr add 192.168.77.1/24 dev s0; ip -n "$S" link set s0 up
ip -n "$C" link set c0 up
# HTTP: a second pair to a third namespace, with addresses on both ends (in the DHCP
# client's namespace an address would become the DISCOVERs' source: one source address
# for 10,000 MACs, which the per-address DHCP rate limit rightly drops).
ip -n "$S" link add s1 type veth peer name h1 netns "$H"
ip -n "$S" addr add 192.168.78.1/24 dev s1; ip -n "$S" link set s1 up
ip -n "$H" addr add 192.168.78.2/24 dev h1; ip -n "$H" link set h1 up
ins() { ip netns exec "$S" "$@"; }
inc() { ip netns exec "$C" "$@"; }
inh() { ip netns exec "$H" "$@"; }

echo "kernel: $(uname -srm); cpus: $(nproc) ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo))"
echo "kindling: $("$KINDLING" --version 2>/dev/null || echo '?') ($KINDLING)"
echo "load: $NGROUPS groups, $MACHINES machines; ${DURATION}s of wrk ($THREADS thread(s), $CONNS conns, /ipxe?mac=) + dhcpbench (BIOS DISCOVERs, a pass over all MACs every ${DHCP_PERIOD}s, window $WINDOW); idle ${IDLE}s before, ${AFTER}s after; $ROUNDS round(s)"
[ -n "$SERVER_ENV" ] && echo "server environment: $SERVER_ENV"
[ -n "$SERVER_WRAP" ] && echo "server wrapped: $SERVER_WRAP"
[ "$LOADS" = "dhcp http" ] || echo "loads: $LOADS only (diagnosis)"
[ -z "$OPS_EXTRA" ] || echo "[ops] additions: $OPS_EXTRA (diagnosis)"
echo "namespaces: $S (server), $C (DHCP client), $H (HTTP client); work dir: $TMP"

data=$TMP/data
python3 "$ROOT/bench/http/gen.py" "$data" "$NGROUPS"
head -n "$MACHINES" "$data/macs.txt" > "$TMP/macs.txt"
[ "$(wc -l < "$TMP/macs.txt")" = "$MACHINES" ] || { echo "MACHINES ($MACHINES) > GROUPS ($NGROUPS): every machine needs its group" >&2; exit 2; }
mac_first=$(head -1 "$TMP/macs.txt"); mac_last=$(tail -1 "$TMP/macs.txt")

# One sample line: time phase VmRSS VmHWM RssAnon RssFile Threads (kB, kB, kB, kB, count).
sample() {
  local st
  st=$(awk '{v[$1] = $2} END {print v["VmRSS:"], v["VmHWM:"], v["RssAnon:"], v["RssFile:"], v["Threads:"]}' "/proc/$SPID/status" 2>/dev/null) || return 1
  echo "$(date +%s.%N) $(cat "$rd/phase") $st"
}
sampler() { while sample >> "$rd/samples.txt"; do sleep 0.5; done; }
phase() { echo "$1" > "$rd/phase"; }

start_server() {
  mkdir -p "$rd/run"
  cat > "$rd/run/kindling.toml" <<EOF
data_dir = "$data"

[http]
listen = "0.0.0.0:8080"

[dhcp]
enabled = true
interfaces = ["s0"]

[tftp]
enabled = true

[ops]
state_dir = "$rd/run/state"
$OPS_EXTRA

[cache]
dir = "$rd/run/cache"
EOF
  if [ "$PAGECACHE" = cold ]; then
    # The binary out of the page cache, as after a boot: its code pages then come in by
    # the faults of this run, not by whatever read the file before (a fresh build or copy
    # is cached whole, and the kernel's fault-around maps every cached neighbour).
    python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$KINDLING"
  fi
  # From the work dir (./kindling.toml is found there), as a service would run.
  # shellcheck disable=SC2086 # SERVER_ENV and SERVER_WRAP are word lists on purpose
  (cd "$rd/run" && exec ip netns exec "$S" env $SERVER_ENV $SERVER_WRAP "$KINDLING" serve > "$rd/run/kindling.log" 2>&1) &
  local launcher=$! p
  SPID=""
  for _ in $(seq 600); do
    for p in $(ip netns pids "$S" 2>/dev/null); do
      [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$SERVER_COMM" ] && SPID=$p
    done
    [ -n "$SPID" ] && break
    kill -0 "$launcher" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$SPID" ] || { echo "server did not start; its log:" >&2; tail -20 "$rd/run/kindling.log" >&2; exit 1; }
  LAUNCHER=$launcher
  # shellcheck disable=SC2016 # expanded by sh -c
  ins timeout 120 sh -c 'until curl -sf --max-time 1 -o /dev/null http://127.0.0.1:8082/readyz; do sleep 0.05; done' \
    || { echo "server not ready; its log:" >&2; tail -20 "$rd/run/kindling.log" >&2; exit 1; }
  for _ in $(seq 200); do
    ins awk 'NR>1 && $2 ~ /:0043$/ {f=1} END {exit !f}' /proc/net/udp && break
    sleep 0.05
  done
}
stop_server() {
  kill "$SPID" 2>/dev/null || true
  wait "$LAUNCHER" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
  SPID=""
}
metric() { ins curl -sf --max-time 10 http://127.0.0.1:8082/metrics | awk -v m="$1" '$1 == m && !f {print $2; f = 1}'; }

dhcp_loop() {
  # One pass over all MACs every DHCP_PERIOD s until $1 (epoch s); one JSON line per pass.
  local end=$1 t0 left period_ms
  period_ms=$(awk -v p="$DHCP_PERIOD" 'BEGIN {printf "%d", p * 1000}')
  while [ "$(date +%s)" -lt "$end" ]; do
    t0=$(date +%s%3N)
    inc "$DHCPBENCH" --iface c0 --count "$MACHINES" --machines "$MACHINES" --window "$WINDOW" --label pass
    left=$(( t0 + period_ms - $(date +%s%3N) ))
    [ "$left" -le 0 ] || sleep "$((left / 1000)).$(printf '%03d' $((left % 1000)))"
  done
}

for r in $(seq "$ROUNDS"); do
  rd=$TMP/round-$r; mkdir -p "$rd"; phase startup
  start_server
  SAMPLER=""; sampler & SAMPLER=$!
  # The index must hold the groups: the first and last machine's group answer.
  for m in "$mac_first" "$mac_last"; do
    inh curl -sf --max-time 5 -o /dev/null "http://192.168.78.1:8080/ipxe?mac=$m" \
      || { echo "/ipxe?mac=$m did not answer 200: groups not loaded; log:" >&2; tail -20 "$rd/run/kindling.log" >&2; exit 1; }
  done
  # Groups loaded, as the server's own log line says ("data directory loaded groups=N").
  ngroups=$(grep -o 'data directory loaded groups=[0-9]*' "$rd/run/kindling.log" | tail -1 | cut -d= -f2)
  [ "${ngroups:-0}" = "$NGROUPS" ] || { echo "server loaded ${ngroups:-?} groups, not $NGROUPS; its log:" >&2; tail -20 "$rd/run/kindling.log" >&2; exit 1; }
  phase idle; sleep "$IDLE"
  sample > "$rd/start.txt"
  phase load
  t_end=$(( $(date +%s) + DURATION ))
  : > "$rd/dhcp.jsonl"; : > "$rd/wrk.txt"
  if [[ " $LOADS " == *" dhcp "* ]]; then
    dhcp_loop "$t_end" > "$rd/dhcp.jsonl" 2> "$rd/dhcp.err" & DHCPLOOP=$!
  fi
  if [[ " $LOADS " == *" http "* ]]; then
    MACS_FILE="$TMP/macs.txt" ip netns exec "$H" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" \
      -s "$ROOT/bench/http/ipxe.lua" http://192.168.78.1:8080 > "$rd/wrk.txt" 2>&1 & WRK=$!
  fi
  [ -z "$WRK" ] || { wait "$WRK"; WRK=""; }
  [ -z "$DHCPLOOP" ] || { wait "$DHCPLOOP"; DHCPLOOP=""; }
  sample > "$rd/peak.txt"
  phase after; sleep "$AFTER"
  sample > "$rd/after.txt"
  machines_gauge=$(metric kindling_machines)
  dropped=$(metric kindling_events_dropped_total)
  ins curl -sf --max-time 60 http://127.0.0.1:8082/api/v1/machines -o "$rd/machines.json"
  machines_api=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d=d.get("machines", d) if isinstance(d, dict) else d; print(len(d))' "$rd/machines.json")
  rm -f "$rd/machines.json"
  sleep 0.6
  sample > "$rd/api.txt"
  kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=""
  stop_server
  rm -rf "$rd/run/state" "$rd/run/cache"
  python3 - "$rd" "$ngroups" "$machines_gauge" "$machines_api" "${dropped:-0}" "$DURATION" <<'PY'
import json, re, sys
rd, ngroups, mg, ma, dropped, dur = sys.argv[1:7]
def row(name):
    f = open(f"{rd}/{name}.txt").read().split()
    return [int(x) for x in f[2:7]]  # rss hwm anon file threads (kB)
start, peak, after, api = (row(n) for n in ("start", "peak", "after", "api"))
load = [l.split() for l in open(f"{rd}/samples.txt") if l.split()[1:2] == ["load"]]
max_rss = max((int(l[2]) for l in load), default=0)
max_thr = max((int(l[6]) for l in load), default=0)
w = open(f"{rd}/wrk.txt").read()
m = re.search(r"Requests/sec:\s+([\d.]+)", w)
http_rps = float(m.group(1)) if m else 0.0
errs = "; ".join(l.strip() for l in w.splitlines() if "Non-2xx" in l or "Socket errors" in l)
passes = [json.loads(l) for l in open(f"{rd}/dhcp.jsonl") if l.strip().startswith("{")]
replies = sum(p["replies"] for p in passes); lost = sum(p["lost"] for p in passes)
dhcp_rps = replies / float(dur)
out = dict(start=start[0], peak=peak[1], max_load=max_rss, after=after[0], api=api[0], api_peak=api[1],
           anon_after=after[2], file_after=after[3], threads=max_thr,
           machines_gauge=int(float(mg or 0)), machines_api=int(ma), groups=int(ngroups),
           http_rps=http_rps, dhcp_rps=dhcp_rps, dhcp_passes=len(passes), dhcp_lost=lost,
           dropped=int(float(dropped)), http_errors=errs)
mb = lambda k: out[k] / 1024
print(f"  round: start {mb('start'):.1f} MB, peak (VmHWM) {mb('peak'):.1f} MB, max sampled under load {mb('max_load'):.1f} MB, "
      f"after {mb('after'):.1f} MB (anon {mb('anon_after'):.1f}, file {mb('file_after'):.1f}), after API listing {mb('api'):.1f} MB (VmHWM {mb('api_peak'):.1f}); "
      f"threads {max_thr}; machines {out['machines_gauge']} (gauge) / {out['machines_api']} (API); groups {ngroups}; "
      f"/ipxe {http_rps:.0f} req/s, DHCP {dhcp_rps:.0f} replies/s ({len(passes)} passes, {lost} lost); events dropped {out['dropped']}"
      + (f"; wrk errors: {errs}" if errs else ""))
open(f"{rd}/../results.jsonl", "a").write(json.dumps(out) + "\n")
PY
done

verdict=0
python3 - "$TMP/results.jsonl" "$TARGET_MB" "$MACHINES" <<'PY' || verdict=$?
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
target, machines = float(sys.argv[2]), int(sys.argv[3])
med = lambda k: statistics.median(r[k] for r in rows)
print()
print(f"medians of {len(rows)} round(s) (MB = MiB of VmRSS/VmHWM from /proc/<pid>/status):")
cols = [("start_MB", "start", 1024), ("peak_MB", "peak", 1024), ("load_max_MB", "max_load", 1024),
        ("after_MB", "after", 1024), ("anon_MB", "anon_after", 1024), ("file_MB", "file_after", 1024),
        ("api_MB", "api", 1024), ("api_peak_MB", "api_peak", 1024), ("threads", "threads", 1), ("machines", "machines_api", 1),
        ("groups", "groups", 1), ("ipxe_req/s", "http_rps", 1), ("dhcp_rep/s", "dhcp_rps", 1)]
print(" ".join(f"{c[0]:>11}" for c in cols))
print(" ".join(f"{med(k) / d:>11.1f}" if d != 1 else f"{med(k):>11.0f}" for _, k, d in cols))
worst = max(max(r["peak"], r["after"]) for r in rows) / 1024
ok_machines = all(r["machines_api"] >= 0.95 * machines for r in rows)
print(f"worst round: peak {max(r['peak'] for r in rows) / 1024:.1f} MB, after {max(r['after'] for r in rows) / 1024:.1f} MB; "
      f"machines in the timeline {min(r['machines_api'] for r in rows)}-{max(r['machines_api'] for r in rows)} of {machines}")
if not ok_machines:
    print(f"WARNING: fewer than 95% of {machines} machines reached the timeline: the load is not the one the target names")
verdict = "PASS" if med("peak") / 1024 <= target and med("after") / 1024 <= target and ok_machines else "FAIL"
print(f"{verdict}: target RSS <= {target:.0f} MB at {rows[0]['groups']} groups and {machines} machines under load "
      f"(median peak {med('peak') / 1024:.1f} MB, median after {med('after') / 1024:.1f} MB)")
sys.exit(0 if verdict == "PASS" else 1)
PY
exit "$verdict"
