#!/usr/bin/env bash
# TFTP throughput benchmark (not a test): Kindling (windowsize 16) vs tftpd-hpa
# (in.tftpd) vs dnsmasq, same file, same client, same links:
#   1. a plain veth pair between two network namespaces;
#   2. a 1 ms RTT delay line: two TAP devices bridged by the user-space
#      `delayline` example, holding every frame 500 us each way.
# Everything runs inside namespaces this script creates (kindling-tftpb-*),
# deleted on exit. Needs root, iproute2, tftpd-hpa, dnsmasq(-base).
#
# The client is the crate's `tftpget` example asking for blksize 1468,
# windowsize 16 and tsize from every server; servers without RFC 7440 ignore
# windowsize and fall back to lock-step, which is the point of the comparison.
#
# Usage: bench/tftp/run.sh [SIZE_MIB (64)] [REPEAT (3)]
# Env: DELAY_US (500), SKIP_BUILD=1, CARGO_TARGET_DIR (target-tftp).
set -euo pipefail

SIZE_MIB=${1:-64}
REPEAT=${2:-3}
DELAY_US=${DELAY_US:-500}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target-tftp}
BIN=$CARGO_TARGET_DIR/release/examples

[ "$(id -u)" = 0 ] || { echo "run as root (network namespaces)"; exit 1; }
for b in ip in.tftpd dnsmasq; do
  command -v "$b" >/dev/null || { echo "missing $b (apt-get install -y iproute2 tftpd-hpa dnsmasq-base)"; exit 1; }
done

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "building release examples (tftpd, tftpget, delayline)..."
  (cd "$REPO" && cargo build -q --release -p kindling-tftp --example tftpd --example tftpget --example delayline)
fi

TAG=$$
NS_S=kindling-tftpb-s-$TAG
NS_C=kindling-tftpb-c-$TAG
WORK=$(mktemp -d /tmp/kindling-tftpb.XXXXXX)
chmod 755 "$WORK"
PIDS=()

cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  sleep 0.2
  ip netns del "$NS_S" 2>/dev/null || true
  ip netns del "$NS_C" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ip netns add "$NS_S"
ip netns add "$NS_C"
for ns in "$NS_S" "$NS_C"; do ip -n "$ns" link set lo up; done

# Link 1: plain veth.
ip link add kbs$TAG netns "$NS_S" type veth peer name kbc$TAG netns "$NS_C"
ip -n "$NS_S" addr add 10.198.0.1/24 dev kbs$TAG
ip -n "$NS_C" addr add 10.198.0.2/24 dev kbc$TAG
ip -n "$NS_S" link set kbs$TAG up
ip -n "$NS_C" link set kbc$TAG up

# Link 2: TAP <-> delayline <-> TAP.
ip -n "$NS_S" tuntap add dev kts$TAG mode tap
ip -n "$NS_C" tuntap add dev ktc$TAG mode tap
ip -n "$NS_S" addr add 10.198.1.1/24 dev kts$TAG
ip -n "$NS_C" addr add 10.198.1.2/24 dev ktc$TAG
"$BIN/delayline" "$NS_S" kts$TAG "$NS_C" ktc$TAG "$DELAY_US" > "$WORK/delayline.log" 2>&1 &
PIDS+=($!)
sleep 0.3
ip -n "$NS_S" link set kts$TAG up
ip -n "$NS_C" link set ktc$TAG up
sleep 1
if command -v ping >/dev/null; then
  echo "delay line RTT (ping avg): $(ip netns exec "$NS_C" ping -c 5 -i 0.2 -q 10.198.1.1 | awk -F/ '/^rtt/ {print $5}') ms;" \
       "plain veth RTT: $(ip netns exec "$NS_C" ping -c 5 -i 0.2 -q 10.198.0.1 | awk -F/ '/^rtt/ {print $5}') ms"
fi

ROOT=$WORK/root
mkdir -p "$ROOT"
chmod 755 "$ROOT"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$ROOT/bench.bin"
chmod 644 "$ROOT/bench.bin"
SUM=$(sha256sum < "$ROOT/bench.bin" | cut -d' ' -f1)

start_server() {
  case $1 in
    kindling)
      ip netns exec "$NS_S" "$BIN/tftpd" --listen 0.0.0.0:69 --root "$ROOT" \
        --max-blksize 1468 --max-windowsize 16 > "$WORK/kindling.log" 2>&1 &
      ;;
    tftpd-hpa)
      ip netns exec "$NS_S" in.tftpd -L -u root -a 0.0.0.0:69 -B 1468 -s "$ROOT" > "$WORK/hpa.log" 2>&1 &
      ;;
    dnsmasq)
      ip netns exec "$NS_S" dnsmasq -k --conf-file=/dev/null --port=0 --enable-tftp \
        --tftp-root="$ROOT" --user=root --pid-file="$WORK/dnsmasq.pid" \
        --log-facility="$WORK/dnsmasq.log" &
      ;;
  esac
  SERVER_PID=$!
  PIDS+=($SERVER_PID)
  sleep 0.5
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  sleep 0.3
}

# measure SERVER_IP -> prints median MB/s of REPEAT runs (checks the sha256)
measure() {
  local ip=$1 reps=$2 all=() r
  for _ in $(seq "$reps"); do
    rm -f "$WORK/out.bin"
    r=$(timeout 900 ip netns exec "$NS_C" "$BIN/tftpget" "$ip:69" bench.bin "$WORK/out.bin" \
        --blksize 1468 --windowsize 16 --timeout-ms 1000 | sed -n 's/.*MB\/s=//p')
    if [ -z "$r" ] || [ "$(sha256sum < "$WORK/out.bin" | cut -d' ' -f1)" != "$SUM" ]; then
      echo "FAILED"; return
    fi
    all+=("$r")
  done
  printf '%s\n' "${all[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# Cross-check with a client we did not write: atftp (one run, delay line only).
measure_atftp() {
  command -v atftp >/dev/null || { echo "n/a"; return; }
  local ip=$1 t0 t1
  rm -f "$WORK/out.bin"
  t0=$(date +%s.%N)
  timeout 900 ip netns exec "$NS_C" atftp -g -r bench.bin -l "$WORK/out.bin" \
    --option "blksize 1468" --option "windowsize 16" "$ip" 69 >/dev/null 2>&1 || { echo "FAILED"; return; }
  t1=$(date +%s.%N)
  [ "$(sha256sum < "$WORK/out.bin" | cut -d' ' -f1)" = "$SUM" ] || { echo "FAILED"; return; }
  awk -v a="$t0" -v b="$t1" -v n="$((SIZE_MIB * 1024 * 1024))" 'BEGIN { printf "%.2f", n / (b - a) / 1e6 }'
}

declare -A RES
for srv in kindling tftpd-hpa dnsmasq; do
  start_server $srv
  # Lock-step servers over the delay line take ~45 s per 64 MiB: one run.
  reps_delay=$REPEAT; [ $srv != kindling ] && reps_delay=1
  RES[$srv,veth]=$(measure 10.198.0.1 "$REPEAT")
  RES[$srv,delay]=$(measure 10.198.1.1 "$reps_delay")
  RES[$srv,atftp]=$(measure_atftp 10.198.1.1)
  echo "$srv: veth ${RES[$srv,veth]} MB/s, delay line ${RES[$srv,delay]} MB/s, delay line with atftp ${RES[$srv,atftp]} MB/s"
  stop_server
done

echo
echo "=== ${SIZE_MIB} MiB, blksize 1468, client asks windowsize 16 (median MB/s) ==="
printf '%-12s %12s %16s %22s\n' server "plain veth" "1 ms RTT line" "1 ms RTT line (atftp)"
for srv in kindling tftpd-hpa dnsmasq; do
  printf '%-12s %12s %16s %22s\n' $srv "${RES[$srv,veth]}" "${RES[$srv,delay]}" "${RES[$srv,atftp]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b+0 > 0) printf "%.1fx", a/b; else print "n/a" }'; }
echo
echo "kindling / tftpd-hpa: veth $(ratio "${RES[kindling,veth]}" "${RES[tftpd-hpa,veth]}"), delay line $(ratio "${RES[kindling,delay]}" "${RES[tftpd-hpa,delay]}")"
echo "kindling / dnsmasq:   veth $(ratio "${RES[kindling,veth]}" "${RES[dnsmasq,veth]}"), delay line $(ratio "${RES[kindling,delay]}" "${RES[dnsmasq,delay]}")"
echo "with atftp on the delay line: kindling / tftpd-hpa $(ratio "${RES[kindling,atftp]}" "${RES[tftpd-hpa,atftp]}"), kindling / dnsmasq $(ratio "${RES[kindling,atftp]}" "${RES[dnsmasq,atftp]}")"
