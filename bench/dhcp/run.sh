#!/usr/bin/env bash
# Proxy-DHCP throughput and latency: Kindling vs dnsmasq 2.90, same namespaces, same load.
# Not a test: prints numbers. Needs root, iproute2, dnsmasq. Traffic stays inside two network
# namespaces created here (names contain "kindling") and removed on exit.
#
#   bench/dhcp/run.sh [COUNT] [WINDOW]      (defaults 20000 DISCOVERs, 32 in flight)
#
# Each server answers BIOS PXE DISCOVERs on a veth pair; dhcpbench (crates/kindling-dhcp/
# examples/dhcpbench.rs) keeps WINDOW requests in flight and reports replies/s, p50, p99.
# dnsmasq runs with the equivalent pxe-service line and --quiet-dhcp (no per-packet logging);
# Kindling logs at warn level.
set -euo pipefail
COUNT=${1:-20000}
WINDOW=${2:-32}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target-dhcp-bench}
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }

cargo build --quiet --release -p kindling-dhcp --examples --manifest-path "$ROOT/Cargo.toml"
BIN=$CARGO_TARGET_DIR/release/examples

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
ip -n "$C" addr add 192.168.77.2/24 dev c0; ip -n "$C" link set c0 up

wait_port67() {
  for _ in $(seq 100); do
    ip netns exec "$S" awk 'NR>1 && $2 ~ /:0043$/ {f=1} END {exit !f}' /proc/net/udp && return 0
    sleep 0.05
  done
  echo "server did not bind UDP 67" >&2; return 1
}

run_load() { ip netns exec "$C" "$BIN/dhcpbench" --iface c0 --count "$COUNT" --window "$WINDOW" --label "$1"; }

# Kindling
printf '[dhcp]\nenabled = true\ninterfaces = ["s0"]\n' > "$TMP/k.toml"
RUST_LOG=warn ip netns exec "$S" "$BIN/proxydhcp" "$TMP/k.toml" > "$TMP/k.out" 2>&1 &
KPID=$!; PIDS+=("$KPID"); wait_port67
run_load kindling | tee "$TMP/kindling.json"
kill "$KPID"; wait "$KPID" 2>/dev/null || true

# dnsmasq
cat > "$TMP/d.conf" <<CONF
dhcp-range=192.168.77.0,proxy,255.255.255.0
dhcp-userclass=set:ipxe,iPXE
pxe-service=tag:!ipxe,x86PC,"PXE chainload to iPXE",undionly.kpxe
CONF
ip netns exec "$S" dnsmasq --no-daemon --port=0 --bind-interfaces --interface=s0 \
  --conf-file="$TMP/d.conf" --dhcp-leasefile="$TMP/d.leases" --pid-file= --user=root \
  --quiet-dhcp --log-facility="$TMP/d.log" &
DPID=$!; PIDS+=("$DPID"); wait_port67
run_load dnsmasq | tee "$TMP/dnsmasq.json"
kill "$DPID"; wait "$DPID" 2>/dev/null || true

python3 - "$TMP/kindling.json" "$TMP/dnsmasq.json" <<'PY'
import json, sys
k = json.load(open(sys.argv[1])); d = json.load(open(sys.argv[2]))
print(f"{'server':10} {'replies/s':>10} {'p50 us':>8} {'p99 us':>8} {'lost':>6}")
for r in (k, d):
    print(f"{r['label']:10} {r['rps']:>10.0f} {r['p50_us']:>8.0f} {r['p99_us']:>8.0f} {r['lost']:>6}")
print(f"ratio kindling/dnsmasq: throughput x{k['rps']/d['rps']:.2f}, p99 latency x{d['p99_us']/max(k['p99_us'],1):.2f} lower")
PY
