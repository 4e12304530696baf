#!/usr/bin/env bash
# Full DHCP (the server hands out addresses): leases/s and DORA latency, Kindling vs dnsmasq
# 2.90 vs Kea (kea-dhcp4), same namespaces, same load. Not a test: prints numbers. Needs root,
# iproute2, dnsmasq, kea-dhcp4-server (scripts/install-deps). Traffic stays inside two network
# namespaces created here (names contain "kindling") and removed on exit; no server is ever
# bound on this machine's own interfaces.
#
#   bench/dhcp-full/run.sh [COUNT] [WINDOW] [ROUNDS]   (defaults 20000 DORAs, 64 in flight, 3 rounds)
#
# dorabench (crates/kindling-dhcp/examples/dorabench.rs) runs complete exchanges (DISCOVER,
# OFFER, REQUEST, ACK; broadcast flag set) with WINDOW in flight from MACHINES distinct MACs
# (default 10000): with COUNT = 2 x MACHINES the first half are new machines (the server
# allocates an address and writes a lease), the second half the same machines booting again
# (the server finds their lease and renews it: a boot storm of known machines). Both phases
# are reported apart. Every server starts each round from an empty lease database, so the
# rounds are comparable; the servers alternate for ROUNDS rounds and the medians are
# printed. Each server is pinned to one core, the generator (polling, --spin) to another.
#
# The same work for all three: subnet 10.77.0.0/16, pool 10.77.1.0-10.77.255.254 (65,279
# addresses), 1 h leases, authoritative, no ping before offering (dnsmasq --no-ping, Kindling
# ping_check = false; Kea 2.2 has no ping check), leases persisted to a file (see "Lease
# files" below), no per-packet logging (dnsmasq --quiet-dhcp, Kea at WARN, Kindling at warn).
# Kindling is the real `kindling serve` (HTTP, DHCP, boot timeline and journal) started from
# a directory holding only its kindling.toml.
#
# Lease files, as each server keeps them (the cost is part of what is measured):
#  * dnsmasq rewrites its whole lease file (rewind, ftruncate, one line per lease) and
#    fsyncs it after every packet that changed a lease (every ACK, renewals too), before it
#    sends the reply: its cost grows with the number of leases and the disk's flush time;
#  * Kea's memfile appends one CSV line per lease change (one write(2) per ACK), no fsync;
#  * Kindling appends its records (offers too) to its lease log, one write(2) per batch, no
#    fsync (crates/kindling-dhcp/src/full/log.rs; `kindling serve` leaves set_sync off).
# So on a disk dnsmasq pays a flush per lease and the others do not; LEASE_DIR=/dev/shm
# shows the servers without that difference.
#
# Environment: MACHINES (distinct MACs, >= WINDOW), SERVERS (default "kindling dnsmasq kea"),
# SERVER_CPU / CLIENT_CPU (cores), CARGO_TARGET_DIR, KINDLING_BIN (a kindling binary to use
# instead of building this tree's), LEASE_DIR (a directory under which the
# lease databases go, e.g. /dev/shm to take the disk's fsync latency out; default: under
# /tmp). The file system that holds them is printed with the results.
set -euo pipefail
COUNT=${1:-20000}
WINDOW=${2:-64}
ROUNDS=${3:-3}
MACHINES=${MACHINES:-10000}
read -r -a SERVERS <<< "${SERVERS:-kindling dnsmasq kea}"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target-dhcp-bench}
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }

declare -A STATUS=()
cargo build --quiet --release -p kindling-dhcp --example dorabench --manifest-path "$ROOT/Cargo.toml"
DORABENCH=$CARGO_TARGET_DIR/release/examples/dorabench
if [ -n "${KINDLING_BIN:-}" ]; then
  KINDLING=$KINDLING_BIN # a kindling built elsewhere (e.g. from a commit), used as it is
elif [[ " ${SERVERS[*]} " == *" kindling "* ]]; then
  KINDLING=$CARGO_TARGET_DIR/release/kindling
  cargo build --quiet --release -p kindling --manifest-path "$ROOT/Cargo.toml" ||
    STATUS[kindling]="not built (cargo build -p kindling failed)"
fi
KEA=$(command -v kea-dhcp4 || true)
DNSMASQ=$(command -v dnsmasq || true)

S=kindling-dhcpfull-$$-s
C=kindling-dhcpfull-$$-c
TMP=$(mktemp -d /tmp/kindling-dhcpfull.XXXXXX)
LDB=$TMP/leases
SPID= # the server of the moment
LPID= # the generator of the moment
cleanup() {
  for p in "$LPID" "$SPID"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  ip netns del "$S" 2>/dev/null || true
  ip netns del "$C" 2>/dev/null || true
  rm -rf "$TMP" "$LDB"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ -n "${LEASE_DIR:-}" ]; then
  LDB=$(mktemp -d "$LEASE_DIR/kindling-dhcpfull-leases.XXXXXX")
else
  mkdir "$LDB"
fi
LDB_FS=$(df --output=fstype "$LDB" | tail -1)

ip netns add "$S"; ip netns add "$C"
ip -n "$S" link set lo up; ip -n "$C" link set lo up
ip -n "$S" link add s0 type veth peer name c0 netns "$C"
ip -n "$S" addr add 10.77.0.1/16 dev s0; ip -n "$S" link set s0 up
# The client side has no address, like a booting machine: DISCOVERs come from 0.0.0.0.
ip -n "$C" link set c0 up

NCPU=$(nproc)
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-$((NCPU > 1 ? 1 : 0))}

# Until the server ($SPID) has bound UDP 67 in its namespace; fails if it exits first. (The
# generator's warm-up exchange then waits until it actually answers.)
wait_port67() {
  for _ in $(seq 200); do
    kill -0 "$SPID" 2>/dev/null || return 1
    # shellcheck disable=SC2016 # awk's own $2
    ip netns exec "$S" awk 'NR>1 && $2 ~ /:0043$/ {f=1} END {exit !f}' /proc/net/udp && return 0
    sleep 0.05
  done
  return 1
}

start_kindling() {
  [ -x "${KINDLING:-}" ] || { echo "kindling binary missing"; return 1; }
  rm -rf "$TMP/kindling" "$TMP/kdata" "$TMP/kstate" "$TMP/kcache"
  rm -f "$LDB"/kindling.leases*
  mkdir -p "$TMP/kindling" "$TMP/kdata"
  cat > "$TMP/kindling/kindling.toml" <<CONF
[http]
listen = "127.0.0.1:8080"
[dhcp]
enabled = true
interfaces = ["s0"]
mode = "full"
lease_file = "$LDB/kindling.leases"
ping_check = false
[[dhcp.subnets]]
network = "10.77.0.0/16"
pools = ["10.77.1.0-10.77.255.254"]
lease_secs = 3600
CONF
  # The real server, as users run it, from a directory holding only its kindling.toml.
  (cd "$TMP/kindling" && exec ip netns exec "$S" taskset -c "$SERVER_CPU" "$KINDLING" \
    --config "$TMP/kindling/kindling.toml" --data-dir "$TMP/kdata" --state-dir "$TMP/kstate" \
    --cache-dir "$TMP/kcache" serve --log warn) > "$TMP/kindling.out" 2>&1 &
  SPID=$!
  wait_port67 || { echo "not yet: $(grep -m1 -iE 'error|unknown' "$TMP/kindling.out" || head -c 200 "$TMP/kindling.out")"; return 1; }
}
kindling_leasedb() { { cat "$LDB"/kindling.leases* 2>/dev/null || true; } | wc -c; }

start_dnsmasq() {
  [ -n "$DNSMASQ" ] || { echo "dnsmasq missing (scripts/install-deps)"; return 1; }
  rm -f "$LDB/dnsmasq.leases"
  # --dhcp-lease-max: the default is 1000 leases. --port=0: no DNS. --no-ping: no ICMP
  # probe before offering (the others do not probe either). --quiet-dhcp: no per-packet log.
  ip netns exec "$S" taskset -c "$SERVER_CPU" "$DNSMASQ" --no-daemon --conf-file=/dev/null \
    --port=0 --interface=s0 --bind-interfaces --no-hosts --no-resolv \
    --dhcp-range=10.77.1.0,10.77.255.254,255.255.0.0,1h --dhcp-lease-max=100000 \
    --dhcp-leasefile="$LDB/dnsmasq.leases" --dhcp-authoritative --no-ping --quiet-dhcp \
    --pid-file= --user=root --log-facility="$TMP/dnsmasq.log" > "$TMP/dnsmasq.out" 2>&1 &
  SPID=$!
  wait_port67 || { echo "did not start: $(head -c 300 "$TMP/dnsmasq.out" "$TMP/dnsmasq.log" 2>/dev/null)"; return 1; }
}
dnsmasq_leasedb() { wc -c < "$LDB/dnsmasq.leases" 2>/dev/null || echo 0; }

start_kea() {
  [ -n "$KEA" ] || { echo "kea-dhcp4 missing (scripts/install-deps)"; return 1; }
  rm -rf "$TMP/kea" "$LDB"/kea-leases4.csv*; mkdir -p "$TMP/kea"
  # Kea 2.2's defaults otherwise: raw (AF_PACKET) sockets, iterative allocator, no
  # multi-threading (explicit here: one core), memfile lease-file cleanup hourly.
  cat > "$TMP/kea/kea-dhcp4.conf" <<CONF
{
  "Dhcp4": {
    "interfaces-config": { "interfaces": [ "s0" ], "dhcp-socket-type": "raw" },
    "lease-database": { "type": "memfile", "persist": true, "name": "$LDB/kea-leases4.csv" },
    "multi-threading": { "enable-multi-threading": false },
    "authoritative": true,
    "valid-lifetime": 3600,
    "subnet4": [
      { "id": 1, "subnet": "10.77.0.0/16", "pools": [ { "pool": "10.77.1.0 - 10.77.255.254" } ] }
    ],
    "loggers": [
      { "name": "kea-dhcp4", "severity": "WARN", "output_options": [ { "output": "$TMP/kea/kea.log" } ] }
    ]
  }
}
CONF
  ip netns exec "$S" env KEA_PIDFILE_DIR="$TMP/kea" KEA_LOCKFILE_DIR="$TMP/kea" \
    taskset -c "$SERVER_CPU" "$KEA" -c "$TMP/kea/kea-dhcp4.conf" > "$TMP/kea.out" 2>&1 &
  SPID=$!
  wait_port67 || { echo "did not start: $(tail -c 300 "$TMP/kea.out")"; return 1; }
}
kea_leasedb() { { cat "$LDB"/kea-leases4.csv* 2>/dev/null || true; } | wc -c; }

# In the background and waited for, so that a signal stops the script at once (bash runs
# traps only between foreground commands).
run_load() {
  ip netns exec "$C" taskset -c "$CLIENT_CPU" "$DORABENCH" --iface c0 --count "$COUNT" \
    --window "$WINDOW" --machines "$MACHINES" --label "$1" --spin > "$TMP/round.json" &
  LPID=$!
  local rc=0
  wait "$LPID" || rc=$?
  LPID=
  return "$rc"
}

for r in $(seq "$ROUNDS"); do
  echo "--- round $r of $ROUNDS"
  for srv in "${SERVERS[@]}"; do
    [ -z "${STATUS[$srv]:-}" ] || continue # did not start before: not again
    # (Not in a $(...) subshell: start_* sets SPID.)
    if ! "start_$srv" > "$TMP/why"; then
      STATUS[$srv]=$(tr '\n\t' '  ' < "$TMP/why")
      echo "$srv: ${STATUS[$srv]}" >&2
      if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; SPID=; fi
      continue
    fi
    if run_load "$srv"; then
      cat "$TMP/round.json" >> "$TMP/$srv.jsonl"
    else
      rc=$?
      [ -s "$TMP/round.json" ] && cat "$TMP/round.json" >> "$TMP/$srv.jsonl"
      echo "$srv: dorabench exited with status $rc (2: duplicate addresses)" >&2
      [ -s "$TMP/round.json" ] || STATUS[$srv]="no answer (dorabench status $rc)"
    fi
    if [ "$srv" = kindling ]; then
      # Timeline events that did not fit their queue (answering comes first).
      ip netns exec "$S" curl -s --max-time 2 http://127.0.0.1:8082/metrics 2>/dev/null \
        | awk '/^kindling_events_dropped_total/ {print "kindling timeline events dropped: " $2}' || true
    fi
    # Peak memory of the server over the round; size of its lease database at the end.
    awk '/VmHWM/ {print $2}' "/proc/$SPID/status" >> "$TMP/$srv.hwm" 2>/dev/null || true
    "${srv}_leasedb" >> "$TMP/$srv.db"
    kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=
    sleep 0.3
  done
done

for srv in "${SERVERS[@]}"; do
  printf '%s\t%s\n' "$srv" "${STATUS[$srv]:-}"
done > "$TMP/status.tsv"

python3 - "$TMP" "$COUNT" "$WINDOW" "$MACHINES" "$LDB_FS" <<'PY'
import json, os, statistics, sys
tmp, count, window, machines, fs = sys.argv[1], *sys.argv[2:]
status = dict(l.rstrip("\n").split("\t", 1) for l in open(f"{tmp}/status.tsv"))
def rows(srv):
    p = f"{tmp}/{srv}.jsonl"
    return [json.loads(l) for l in open(p) if l.strip()] if os.path.exists(p) else []
def med(rs, k):
    v = [r[k] for r in rs if r.get(k) is not None]
    return statistics.median(v) if v else None
def ints(path):
    try:
        return [int(l) for l in open(path) if l.strip()]
    except OSError:
        return []
keys = ("lps", "p50_us", "p99_us", "max_us", "offer_p99_us", "new_lps", "new_p99_us",
        "known_lps", "known_p99_us")
res = {}
print(f"\nfull DHCP, {count} DORAs per round, {window} in flight, {machines} machines "
      f"(new machines, then the same machines again); fresh lease database each round, on {fs}")
print(f"medians of the rounds; latency = DISCOVER sent to ACK received (us); new/known = the two phases")
hdr = (f"{'server':9} {'leases/s':>9} {'p50':>6} {'p99':>7} {'max':>8} {'offer p99':>9} "
       f"{'new l/s':>8} {'new p99':>8} {'known l/s':>9} {'known p99':>9} {'naks':>5} "
       f"{'failed':>6} {'dups':>4} {'RSS MB':>7} {'lease db':>9}")
print(hdr)
fmt = lambda x, w: f"{x:>{w}.0f}" if isinstance(x, (int, float)) else f"{'-':>{w}}"
for srv in status:
    rs = rows(srv)
    if not rs:
        print(f"{srv:9} {status[srv] or 'no result'}")
        continue
    m = {k: med(rs, k) for k in keys}
    res[srv] = m
    hwm, db = ints(f"{tmp}/{srv}.hwm"), ints(f"{tmp}/{srv}.db")
    rss = f"{max(hwm)/1024:.1f}" if hwm else "?"
    dbs = f"{max(db)/1024:.0f} KiB" if db else "?"
    print(f"{srv:9} {fmt(m['lps'],9)} {fmt(m['p50_us'],6)} {fmt(m['p99_us'],7)} {fmt(m['max_us'],8)} "
          f"{fmt(m['offer_p99_us'],9)} {fmt(m['new_lps'],8)} {fmt(m['new_p99_us'],8)} "
          f"{fmt(m['known_lps'],9)} {fmt(m['known_p99_us'],9)} {sum(r['naks'] for r in rs):>5} "
          f"{sum(r['failed'] for r in rs):>6} {sum(r['duplicates'] for r in rs):>4} {rss:>7} {dbs:>9}")
for srv in res:
    rs = rows(srv)
    print(f"  {srv} per round: leases/s " + " ".join(fmt(r['lps'], 0) for r in rs)
          + "; distinct addresses " + " ".join(str(r['distinct_addrs']) for r in rs)
          + "; known machines that kept their address " + " ".join(f"{r['known_same_addr']}/{r['known_leases']}" for r in rs)
          + "; retransmits " + " ".join(str(r['retransmits']) for r in rs))
def ratio(a, b):
    k, o = res[a], res[b]
    if not (k["lps"] and o["lps"]):
        return "-"
    return (f"throughput x{k['lps']/o['lps']:.2f}; {b}/{a} latency: p50 x{o['p50_us']/max(k['p50_us'],1):.2f}, "
            f"p99 x{o['p99_us']/max(k['p99_us'],1):.2f}")
others = [s for s in res if s != "kindling"]
if "kindling" not in res:
    print(f"kindling: {status.get('kindling') or 'not run'} (no ratios)")
else:
    for o in others:
        print(f"kindling/{o}: {ratio('kindling', o)}")
    if len(others) > 1:
        best = max(others, key=lambda s: res[s]["lps"] or 0)
        print(f"kindling vs the faster of the others ({best}): {ratio('kindling', best)}")
if "dnsmasq" in res and "kea" in res:
    print(f"dnsmasq/kea: {ratio('dnsmasq', 'kea')}")
PY
