#!/usr/bin/env bash
# Proxy-DHCP throughput and latency: Kindling vs dnsmasq 2.90, same namespaces, same load.
# Not a test: prints numbers. Needs root, iproute2, dnsmasq. Traffic stays inside two network
# namespaces created here (names contain "kindling") and removed on exit.
#
#   bench/dhcp/run.sh [COUNT] [WINDOW] [ROUNDS]   (defaults 300000 DISCOVERs, 128 in flight, 3 rounds)
#
# Each server answers BIOS PXE DISCOVERs on a veth pair; dhcpbench (crates/kindling-dhcp/
# examples/dhcpbench.rs) keeps WINDOW requests in flight and reports replies/s and latency
# percentiles. The servers alternate for ROUNDS rounds and the medians are printed (the
# machine is shared, single runs are noisy). Each server is pinned to one core, the
# generator to another.
# Kindling is the real `kindling serve` (proxy DHCP + HTTP + boot timeline with its on-disk
# journal) at log level warn; dnsmasq runs with the equivalent pxe-service line and
# --quiet-dhcp (no per-packet logging). KINDLING=path runs that server binary instead of
# building this tree's (to compare two builds).
set -euo pipefail
# 300,000 DISCOVERs: a round lasts over a second at Kindling's rate. At 50,000 a round took
# 0.22 s on the Intel machine of stop 50, and one such round gave x3.86 where three rounds
# of 300,000 gave x2.14-x2.23 with the same binaries: a short round measures the host's
# neighbours as much as the servers.
COUNT=${1:-300000}
WINDOW=${2:-128}
ROUNDS=${3:-3}
# Distinct client MACs: 10,000 machines in a storm, each retrying (0 = a new MAC for every
# DISCOVER, the worst case for Kindling's per-machine timeline).
MACHINES=${MACHINES:-10000}
# DISCOVERs offered per second (0: as fast as WINDOW allows). RATE=50000 offers every server
# dnsmasq's maximum on this machine kind: the tail at a rate both can carry.
RATE=${RATE:-0}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target-dhcp-bench}
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }

cargo build --quiet --release -p kindling-dhcp --examples --manifest-path "$ROOT/Cargo.toml"
BIN=$CARGO_TARGET_DIR/release/examples
if [ -z "${KINDLING:-}" ]; then
  cargo build --quiet --release -p kindling --manifest-path "$ROOT/Cargo.toml"
  KINDLING=$CARGO_TARGET_DIR/release/kindling
fi

S=kindling-dhcpbench-$$-s
C=kindling-dhcpbench-$$-c
TMP=$(mktemp -d /tmp/kindling-dhcpbench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  ip netns del "$S" 2>/dev/null || true
  ip netns del "$C" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

ip netns add "$S"; ip netns add "$C"
ip -n "$S" link set lo up; ip -n "$C" link set lo up
ip -n "$S" link add s0 type veth peer name c0 netns "$C"
ip -n "$S" addr add 192.168.77.1/24 dev s0; ip -n "$S" link set s0 up
# The client side has no address, like PXE firmware: DISCOVERs come from 0.0.0.0.
ip -n "$C" link set c0 up

wait_port67() {
  for _ in $(seq 100); do
    ip netns exec "$S" awk 'NR>1 && $2 ~ /:0043$/ {f=1} END {exit !f}' /proc/net/udp && return 0
    sleep 0.05
  done
  echo "server did not bind UDP 67" >&2; return 1
}

# The generator polls for replies on its own core (--spin: it never sleeps, so no server pays
# to wake it) and each server gets the other core; the generator sends in batches (sendmmsg)
# so that it is never the bottleneck. Override the cores with SERVER_CPU / CLIENT_CPU.
NCPU=$(nproc)
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-$((NCPU > 1 ? 1 : 0))}
run_load() {
  ip netns exec "$C" taskset -c "$CLIENT_CPU" "$BIN/dhcpbench" --iface c0 --count "$COUNT" \
    --window "$WINDOW" --label "$1" --spin --machines "$MACHINES" --rate "$RATE"
}

start_kindling() {
  # The real server, as users run it: HTTP, proxy DHCP, the boot timeline and its journal.
  rm -rf "$TMP/data"; mkdir -p "$TMP/data"
  ip netns exec "$S" taskset -c "$SERVER_CPU" "$KINDLING" serve --data-dir "$TMP/data" --state-dir "$TMP/state" --cache-dir "$TMP/cache" \
    --http-listen 192.168.77.1:8080 --dhcp-interface s0 --log warn > "$TMP/k.out" 2>&1 &
  SPID=$!; PIDS+=("$SPID"); wait_port67
}
start_dnsmasq() {
  cat > "$TMP/d.conf" <<CONF
dhcp-range=192.168.77.0,proxy,255.255.255.0
dhcp-userclass=set:ipxe,iPXE
pxe-service=tag:!ipxe,x86PC,"PXE chainload to iPXE",undionly.kpxe
CONF
  ip netns exec "$S" taskset -c "$SERVER_CPU" dnsmasq --no-daemon --port=0 --bind-interfaces --interface=s0 \
    --conf-file="$TMP/d.conf" --dhcp-leasefile="$TMP/d.leases" --pid-file= --user=root \
    --quiet-dhcp --log-facility="$TMP/d.log" &
  SPID=$!; PIDS+=("$SPID"); wait_port67
}
for r in $(seq "$ROUNDS"); do
  for srv in kindling dnsmasq; do
    "start_$srv"
    run_load "$srv" | tee -a "$TMP/$srv.jsonl"
    if [ "$srv" = kindling ]; then
      # Timeline events that did not fit its queue (answering comes first).
      ip netns exec "$S" curl -s http://127.0.0.1:8082/metrics \
        | awk '/^kindling_events_dropped_total/ {print "kindling timeline events dropped: " $2}'
    fi
    # Peak memory of the server process over the round.
    awk '/VmHWM/ {print $2}' "/proc/$SPID/status" >> "$TMP/$srv.hwm" 2>/dev/null || true
    kill "$SPID"; wait "$SPID" 2>/dev/null || true
    sleep 0.3
  done
done

python3 - "$TMP/kindling.jsonl" "$TMP/dnsmasq.jsonl" <<'PY'
import json, statistics, sys
def med(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    out = {k: statistics.median(r[k] for r in rows) for k in ("rps", "p50_us", "p90_us", "p99_us", "p999_us", "lost")}
    out["label"] = rows[0]["label"]
    return out
k = med(sys.argv[1]); d = med(sys.argv[2])
print(f"medians of {len([l for l in open(sys.argv[1]) if l.strip()])} rounds:")
print(f"{'server':10} {'replies/s':>10} {'p50 us':>8} {'p90 us':>8} {'p99 us':>8} {'p99.9 us':>9} {'lost':>6}")
for r in (k, d):
    print(f"{r['label']:10} {r['rps']:>10.0f} {r['p50_us']:>8.0f} {r['p90_us']:>8.0f} {r['p99_us']:>8.0f} {r['p999_us']:>9.0f} {r['lost']:>6}")
def peak(path):
    try:
        v = [int(l) for l in open(path) if l.strip()]
        return f"{max(v)/1024:.1f} MB" if v else "?"
    except OSError:
        return "?"
print(f"peak RSS over the rounds: kindling {peak(sys.argv[1][:-6] + '.hwm')}, dnsmasq {peak(sys.argv[2][:-6] + '.hwm')}")
print(f"kindling/dnsmasq: throughput x{k['rps']/d['rps']:.2f}; dnsmasq/kindling latency: p50 x{d['p50_us']/max(k['p50_us'],1):.2f}, p99 x{d['p99_us']/max(k['p99_us'],1):.2f}")
PY
