#!/usr/bin/env bash
# Boot storm (issue 20, target 3): N machines power on at once and each boots the whole way
# (DHCP DISCOVER -> proxy OFFER, port-4011 REQUEST -> ACK, TFTP of undionly.kpxe,
# /boot.ipxe, /ipxe?..., kernel + initrd, /ignition?mac=), against
#   kindling: the real `kindling serve` alone (proxy DHCP + TFTP + HTTP with its own /assets/);
#   seed:     the seed's stack: dnsmasq 2.90 (proxy DHCP + TFTP, the seed's dnsmasq.conf lines)
#             + matchbox (HTTP, the same groups) + nginx (the assets, on :8081).
# Not a test: prints numbers. Needs root, iproute2, dnsmasq, nginx, python3, flock, curl.
#
#   bench/storm/run.sh                                  # N="100 1000" ROUNDS=3
#   N=10 ROUNDS=1 KERNEL_MB=1 INITRD_MB=2 bench/storm/run.sh   # a quick smoke run
#
# Environment: N (machine counts, "100 1000"), ROUNDS (3), KERNEL_MB (10), INITRD_MB (40),
# RAMP_SECS (0: all machines at once), LOCKSTEP (1: stage by stage, `storm --lockstep`:
# every stage meets each stack with all N machines at once, whatever the stages before
# did to spread them out; the per-stage comparison under equal load), KINDLING (the kindling binary, default
# <repo>/target/release/kindling), STORM (the storm binary; default: built here with
# `cargo build --release -p kindling-storm`), MATCHBOX (a matchbox binary; default:
# `matchbox` on PATH; none: the seed stack runs without it and its HTTP stages fail),
# IPXE (undionly.kpxe, default /usr/lib/ipxe/undionly.kpxe), LOCK
# (/tmp/kindling-bench.lock: every timed storm holds it, so benchmarks never overlap),
# WINDOW_KIB (256: the largest TCP window each HTTP connection advertises, as iPXE's TCP keeps it;
# 0: the kernel's autotuning), COPY_BODIES (1: the tool copies kernels and initrds into its
# memory; default: the kernel drops them on receipt, `MSG_TRUNC`, so the simulated machines
# do not spend the servers' CPUs copying 50 GB), KEEP (1: keep the work directory), STACKS ("kindling
# seed": which stacks to run),
# ASSETS_SERVER (nginx; kindling: the seed stack's assets on :8081 come from a second
# `kindling serve` with DHCP and TFTP off instead of nginx, so the two asset servers meet
# the same topology: a new connection for the kernel, Kindling as a plain asset server
# next to someone else's DHCP, which never learns the machines' MACs),
# KINDLING_TOML_APPEND (lines appended to kindling.toml, whose last table is [tftp]: e.g.
# "max_transfers = 1024" to see what the TFTP cap costs; the default run adds nothing),
# HOLD_SECS (0: how long the servers stay up after each storm, idle, before their memory
# is read: `mem` in the raw rows is each stack's VmHWM, the peak, and VmRSS at that
# moment, summed over its processes).
#
# The kernel's neighbour (ARP) table is one for all namespaces, bounded by
# net.ipv4.neigh.default.gc_thresh3 (1,024 by default): past it, unicast answers to new
# addresses are dropped ("neighbor table overflow"), so a storm of more machines than
# that would measure the kernel, not the servers. When N is within 16 of it, the script
# raises gc_thresh2 and gc_thresh3 to 2N + 256 for the run and puts them back on exit
# (the default N, up to 1,000, leaves them as they are).
#
# Topology (created here, deleted on exit): namespaces kindling-storm-<pid>-s (servers) and
# kindling-storm-<pid>-c (the storm tool), one veth pair: s0 192.168.78.1/16 <-> c0
# 192.168.78.2/16. Every simulated machine also has its own address on c0, in the same
# subnet (192.168.100.1 up, as if the site's DHCP server had given it one): port 4011, TFTP
# and HTTP come from it, so a server's per-client limits see N clients as in a real storm
# (and dnsmasq answers port 4011 only for clients inside its proxy range: a /24 would not
# hold 1,000 machines). DISCOVERs leave through a
# packet socket from 0.0.0.0, like firmware. Each server (and nginx) runs with the
# descriptor limit 65536 (kindling's systemd unit's LimitNOFILE), or the hard limit if lower.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NS_LIST=${N:-"100 1000"}
ROUNDS=${ROUNDS:-3}
KERNEL_MB=${KERNEL_MB:-10}
INITRD_MB=${INITRD_MB:-40}
RAMP_SECS=${RAMP_SECS:-0}
LOCKSTEP=${LOCKSTEP:-0}
MODE=()
[ "$LOCKSTEP" = 1 ] && MODE=(--lockstep)
WINDOW_KIB=${WINDOW_KIB:-256}
MODE+=(--window-kib "$WINDOW_KIB")
COPY_BODIES=${COPY_BODIES:-0}
[ "$COPY_BODIES" = 1 ] && MODE+=(--copy-bodies)
STACKS=${STACKS:-"kindling seed"}
ASSETS_SERVER=${ASSETS_SERVER:-nginx}
case $ASSETS_SERVER in nginx | kindling) ;; *) echo "ASSETS_SERVER: nginx or kindling" >&2; exit 2 ;; esac
KINDLING=${KINDLING:-$ROOT/target/release/kindling}
IPXE=${IPXE:-/usr/lib/ipxe/undionly.kpxe}
LOCK=${LOCK:-/tmp/kindling-bench.lock}
SIP=192.168.78.1
HTTP_PORT=8080
NGINX_PORT=8081

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 2; }
for c in ip dnsmasq nginx python3 flock curl; do
  command -v "$c" >/dev/null || { echo "$c is missing (apt-get install -y iproute2 dnsmasq-base nginx-light python3 util-linux curl)" >&2; exit 2; }
done
[ -x "$KINDLING" ] || { echo "kindling binary $KINDLING missing (cargo build --release -p kindling, or KINDLING=...)" >&2; exit 2; }
[ -r "$IPXE" ] || { echo "$IPXE missing (apt-get install -y ipxe)" >&2; exit 2; }
if [ -z "${STORM:-}" ]; then
  command -v cargo >/dev/null || { echo "cargo is missing (or set STORM)" >&2; exit 2; }
  (cd "$ROOT" && cargo build --quiet --release -p kindling-storm)
  STORM=${CARGO_TARGET_DIR:-$ROOT/target}/release/storm
fi
[ -x "$STORM" ] || { echo "storm binary $STORM missing" >&2; exit 2; }
MATCHBOX=${MATCHBOX:-$(command -v matchbox || true)}
if [ -n "$MATCHBOX" ] && [ -x "$MATCHBOX" ]; then
  MATCHBOX_NOTE="matchbox: $MATCHBOX"
else
  MATCHBOX_NOTE="matchbox: not run because no binary was given (MATCHBOX=/path) or found on PATH; the seed stack's HTTP stages fail"
  MATCHBOX=""
fi

S=kindling-storm-$$-s
C=kindling-storm-$$-c
WORK=$(mktemp -d /tmp/kindling-storm.XXXXXX)
chmod 755 "$WORK"
PIDS=()
stop_pid() { # TERM, then KILL after 5 s
  local p=$1
  kill -TERM "$p" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
stop_all() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
  PIDS=()
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all
  local ns p
  for ns in "$S" "$C"; do
    # Anything left in our namespaces was started by this run (a storm cut short).
    for p in $(ip netns pids "$ns" 2>/dev/null || true); do stop_pid "$p"; done
    ip netns del "$ns" 2>/dev/null || true
  done
  if [ -n "${NEIGH_SAVED:-}" ]; then
    # shellcheck disable=SC2086 # two words on purpose
    set -- $NEIGH_SAVED
    sysctl -q -w net.ipv4.neigh.default.gc_thresh2="$1" net.ipv4.neigh.default.gc_thresh3="$2" || true
  fi
  if [ -n "${KEEP:-}" ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi

ip netns add "$S"
ip netns add "$C"
ip -n "$S" link set lo up
ip -n "$C" link set lo up
ip -n "$S" link add s0 type veth peer name c0 netns "$C"
ip -n "$S" addr add "$SIP/16" dev s0
ip -n "$C" addr add 192.168.78.2/16 dev c0
ip -n "$S" link set s0 up
ip -n "$C" link set c0 up
# shellcheck disable=SC2086 # the list is split on purpose
MAXN=$(printf '%s\n' $NS_LIST | sort -n | tail -1)
NEED=$((2 * MAXN + 256))
G2=$(sysctl -n net.ipv4.neigh.default.gc_thresh2)
G3=$(sysctl -n net.ipv4.neigh.default.gc_thresh3)
if [ "$MAXN" -gt $((G3 - 16)) ]; then
  NEIGH_SAVED="$G2 $G3"
  sysctl -q -w net.ipv4.neigh.default.gc_thresh2="$NEED" net.ipv4.neigh.default.gc_thresh3="$NEED"
  echo "neighbour table: gc_thresh2/3 $G2/$G3 -> $NEED/$NEED for this run ($MAXN machines; put back on exit)"
fi
"$STORM" --machines "$MAXN" --first-ip 192.168.100.1 --print-machines >"$WORK/machines.txt"
awk '{ print "address add " $2 "/16 dev c0" }' "$WORK/machines.txt" | ip -n "$C" -batch -

# --- data: N groups (one per machine MAC), one profile, one Ignition config, the assets --
mkdir -p "$WORK/tftp" "$WORK/nginx-tmp"
cp "$IPXE" "$WORK/tftp/undionly.kpxe"
head -c $((KERNEL_MB * 1000000)) /dev/urandom >"$WORK/vmlinuz"
head -c $((INITRD_MB * 1000000)) /dev/urandom >"$WORK/initrd.img"
chmod 644 "$WORK/vmlinuz" "$WORK/initrd.img"
make_data() { # DIR N ASSET_BASE
  python3 - "$@" "$WORK/machines.txt" "$SIP:$HTTP_PORT" <<'PY'
import json, os, sys
out, n, base, machines, http = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
for d in ("groups", "profiles", "ignition", "generic", "cloud", "assets"):
    os.makedirs(os.path.join(out, d), exist_ok=True)
prof = {"id": "storm", "name": "boot storm", "ignition_id": "storm.ign", "boot": {
    "kernel": f"{base}/assets/vmlinuz", "initrd": [f"{base}/assets/initrd.img"],
    "args": ["initrd=initrd.img", "ignition.firstboot", "ignition.platform.id=metal",
             f"ignition.config.url=http://{http}/ignition?mac=${{mac:hexhyp}}", "console=ttyS0"]}}
json.dump(prof, open(os.path.join(out, "profiles", "storm.json"), "w"), indent=2)
# Ignition 2.2 JSON: what matchbox v0.9 parses without a warning; served raw by both.
ign = {"ignition": {"version": "2.2.0"}, "passwd": {"users": [{"name": "core",
       "sshAuthorizedKeys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9sc3Rvcm1iZW5jaG1hcmtrZXlmb3JrbmRsbmc storm"]}]}}
json.dump(ign, open(os.path.join(out, "ignition", "storm.ign"), "w"))
for i, line in enumerate(open(machines)):
    if i >= n:
        break
    mac = line.split()[0]
    g = {"id": f"node-{i}", "name": f"Node {i}", "profile": "storm",
         "selector": {"mac": mac}, "metadata": {"hostname": f"node-{i}"}}
    json.dump(g, open(os.path.join(out, "groups", f"node-{i}.json"), "w"))
PY
  ln "$WORK/vmlinuz" "$WORK/initrd.img" "$1/assets/"
  chmod -R a+rX "$1"
}

inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
# `ip netns exec` may fork: each server is started by a shell that writes its own PID to a
# file and execs the server.
start() { # NAME LOGFILE CMD... -> PID appended to PIDS
  local name=$1 log=$2; shift 2
  # shellcheck disable=SC2016 # $0 and $@ are the inner shell's
  ip netns exec "$S" sh -c 'echo $$ >"$0"; exec "$@"' "$WORK/$name.pid" "$@" >"$log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 100); do [ -s "$WORK/$name.pid" ] && break; sleep 0.05; done
  PIDS+=("$(cat "$WORK/$name.pid")")
  rm -f "$WORK/$name.pid"
}
wait_udp() { # PORT
  local hex
  hex=$(printf ':%04X' "$1")
  for _ in $(seq 200); do
    # shellcheck disable=SC2016 # awk's own variables
    inns "$S" awk -v p="$hex" 'NR>1 && substr($2, length($2)-4) == p {f=1} END {exit !f}' /proc/net/udp && return 0
    sleep 0.05
  done
  echo "nothing bound UDP $1" >&2; return 1
}
wait_http() { # URL
  for _ in $(seq 300); do
    inns "$S" curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "$1 did not answer" >&2; return 1
}
proc_files() { # FILE PID...: /proc/<pid>/FILE of the PIDs and their children (nginx's workers)
  local f=$1 p all=()
  shift
  for p in "$@"; do all+=("$p"); mapfile -t -O "${#all[@]}" all < <(pgrep -P "$p" || true); done
  for p in "${all[@]}"; do cat "/proc/$p/$f" 2>/dev/null || true; done
}
ticks() { # utime + stime of the PIDs and their children
  proc_files stat "$@" |
    awk '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); t += f[12] + f[13] } END { printf "%d\n", t }'
}

memory() { # VmHWM and VmRSS in MiB, summed over the PIDs and their children
  proc_files status "$@" |
    awk '/^VmHWM:/ { h += $2 } /^VmRSS:/ { r += $2 } END { printf "%.1f %.1f\n", h / 1024, r / 1024 }'
}

start_kindling() { # N
  local d=$WORK/run-kindling-$1
  mkdir -p "$d"
  cat >"$d/kindling.toml" <<CONF
data_dir = "$WORK/data-kindling-$1"

[http]
listen = "$SIP:$HTTP_PORT"

[dhcp]
enabled = true
interfaces = ["s0"]

[tftp]
enabled = true
${KINDLING_TOML_APPEND:-}
CONF
  cd "$d"   # kindling.toml is read from the working directory
  start kindling "$WORK/kindling-$1.log" "$KINDLING" serve --state-dir "$d/state" --cache-dir "$d/cache"
  cd "$WORK"
  SERVER_PIDS=("${PIDS[-1]}")
  wait_udp 67; wait_udp 4011; wait_udp 69
  wait_http "http://$SIP:$HTTP_PORT/boot.ipxe"
}
start_seed() { # N
  local d=$WORK/run-seed-$1
  mkdir -p "$d"
  # The seed's dnsmasq.conf, on this network (its except-interface and netboot.xyz lines
  # have nothing to match here).
  cat >"$d/dnsmasq.conf" <<CONF
dhcp-range=192.168.0.0,proxy
pxe-service=tag:#ipxe,x86PC,"PXE chainload to iPXE",undionly.kpxe
dhcp-userclass=set:ipxe,iPXE
pxe-service=tag:ipxe,x86PC,"iPXE",http://$SIP:$HTTP_PORT/boot.ipxe
enable-tftp
tftp-root=$WORK/tftp
log-queries
log-dhcp
CONF
  cat >"$d/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes auto;
pid $d/nginx.pid;
error_log $d/nginx-error.log;
events { worker_connections 16384; }
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
    listen $SIP:$NGINX_PORT;
    root $WORK/data-seed-$1;
  }
}
CONF
  SERVER_PIDS=()
  start dnsmasq "$WORK/dnsmasq-$1.out" dnsmasq --no-daemon --port=0 --bind-interfaces \
    --interface=s0 --conf-file="$d/dnsmasq.conf" --dhcp-leasefile="$d/leases" --pid-file= \
    --user=root --log-facility="$d/dnsmasq.log"
  SERVER_PIDS+=("${PIDS[-1]}")
  if [ "$ASSETS_SERVER" = kindling ]; then
    mkdir -p "$d/assets-kindling"
    cat >"$d/assets-kindling/kindling.toml" <<CONF
data_dir = "$WORK/data-seed-$1"

[http]
listen = "$SIP:$NGINX_PORT"

[dhcp]
enabled = false

[tftp]
enabled = false
CONF
    cd "$d/assets-kindling"
    start kindling-assets "$WORK/kindling-assets-$1.log" "$KINDLING" serve \
      --state-dir "$d/assets-kindling/state" --cache-dir "$d/assets-kindling/cache"
    cd "$WORK"
  else
    start nginx "$WORK/nginx-$1.out" nginx -c "$d/nginx.conf" -e "$d/nginx-error.log"
  fi
  SERVER_PIDS+=("${PIDS[-1]}")
  if [ -n "$MATCHBOX" ]; then
    start matchbox "$WORK/matchbox-$1.log" "$MATCHBOX" -address "$SIP:$HTTP_PORT" \
      -data-path "$WORK/data-seed-$1" -assets-path ""
    SERVER_PIDS+=("${PIDS[-1]}")
    wait_http "http://$SIP:$HTTP_PORT/boot.ipxe"
  fi
  wait_udp 67; wait_udp 69
  wait_http "http://$SIP:$NGINX_PORT/assets/vmlinuz"
}

echo "kernel:    $(uname -srm); $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
echo "load avg:  $(cut -d' ' -f1-3 /proc/loadavg) (at start)"
echo "kindling:  $KINDLING"
echo "seed:      $(dnsmasq --version | head -1 | awk '{print "dnsmasq", $3}'), $(nginx -v 2>&1 | sed 's/^nginx version: //'), $MATCHBOX_NOTE"
echo "storm:     N={$NS_LIST} x $ROUNDS rounds, kernel ${KERNEL_MB} MB + initrd ${INITRD_MB} MB per machine, ramp ${RAMP_SECS} s, TCP window ${WINDOW_KIB} KiB at most, bodies $([ "$COPY_BODIES" = 1 ] && echo copied || echo 'dropped on receipt')$([ "$LOCKSTEP" = 1 ] && echo ', LOCKSTEP: stage by stage')"
[ -z "${KINDLING_TOML_APPEND:-}" ] || echo "kindling.toml + ${KINDLING_TOML_APPEND//$'\n'/; } (KINDLING_TOML_APPEND)"
echo "assets:    kindling serves its own /assets/; the seed's profile points at $ASSETS_SERVER (:$NGINX_PORT)"

for n in $NS_LIST; do
  make_data "$WORK/data-kindling-$n" "$n" ""
  make_data "$WORK/data-seed-$n" "$n" "http://$SIP:$NGINX_PORT"
done

for r in $(seq "$ROUNDS"); do
  for n in $NS_LIST; do
    for stack in $STACKS; do
      "start_$stack" "$n"
      before=$(ticks "${SERVER_PIDS[@]}")
      echo "--- round $r, N=$n, $stack"
      flock "$LOCK" ip netns exec "$C" "$STORM" --iface c0 --server "$SIP" --http-port "$HTTP_PORT" \
        --machines "$n" --first-ip 192.168.100.1 --ramp-secs "$RAMP_SECS" "${MODE[@]}" --label "$stack" | tee "$WORK/out.txt"
      after=$(ticks "${SERVER_PIDS[@]}")
      cpu=$(awk -v d=$((after - before)) -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", d / t }')
      echo "server CPU: $cpu s"
      [ "${HOLD_SECS:-0}" != 0 ] && sleep "$HOLD_SECS"
      read -r hwm rss < <(memory "${SERVER_PIDS[@]}")
      echo "server memory: peak (VmHWM) $hwm MB, RSS $rss MB ${HOLD_SECS:-0} s after the storm"
      grep '^{' "$WORK/out.txt" | python3 -c 'import json,sys; j=json.loads(sys.stdin.read()); j.update(round=int(sys.argv[1]), stack=sys.argv[2], cpu_s=float(sys.argv[3]), hwm_mb=float(sys.argv[4]), rss_mb=float(sys.argv[5])); print(json.dumps(j))' \
        "$r" "$stack" "$cpu" "$hwm" "$rss" >>"$WORK/results.jsonl"
      stop_all
      sleep 0.5
    done
  done
done

echo
echo "load avg:  $(cut -d' ' -f1-3 /proc/loadavg) (at end)"
python3 - "$WORK/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
STAGES = ["dhcp_offer", "pxe_ack", "tftp", "boot_ipxe", "ipxe_script", "kernel", "initrd", "ignition"]
SHORT = ["dhcp", "4011", "tftp", "boot", "ipxe", "kernel", "initrd", "ign"]
def med(xs):
    xs = [x for x in xs if x is not None and x == x]  # a stack where all failed has none
    return statistics.median(xs) if xs else float("nan")
table = {}
for n in sorted({r["machines"] for r in rows}):
    for s in ("kindling", "seed"):
        rs = [r for r in rows if r["machines"] == n and r["stack"] == s]
        if not rs:
            continue
        table[n, s] = {
            "storm": med(r["storm_s"] for r in rs), "p50": med(r["e2e_p50"] for r in rs),
            "p99": med(r["e2e_p99"] for r in rs), "cpu": med(r["cpu_s"] for r in rs),
            "failed": max(r["failed"] for r in rs), "rounds": len(rs),
            "retries": {k: med(r["retries"][k] for r in rs) for k in rs[0]["retries"]},
            "stages": {k: med(r["stages"][k]["p50"] for r in rs) for k in STAGES},
            "stages99": {k: med(r["stages"][k]["p99"] for r in rs) for k in STAGES},
            "first": {k: med(r["stages"][k].get("first_byte_p50") for r in rs) for k in STAGES},
        }
def ms(x):
    return f"{x * 1000:.1f}" if x == x else "-"
print("medians over rounds; times in s, stages are per-machine p50 in ms (p99 below in []);")
print("cpu = the server processes' CPU seconds during the storm; failed = most failures in a round;")
print("* = some round had failures: its storm time is that of its last success (not comparable)")
print("1st byte = an HTTP stage's p50 time from the request written to the status line read: in a")
print("lockstep stage, where the server got to the machine (the rest of the stage is its transfer)")
hdr = f"{'N':>5} {'stack':9} {'storm s':>8} {'p50 s':>7} {'p99 s':>7} " + " ".join(f"{h:>8}" for h in SHORT) + f" {'cpu s':>6} {'failed':>6}"
print(hdr)
for (n, s), t in table.items():
    star = "*" if t["failed"] else " "
    print(f"{n:>5} {s:9} {t['storm']:>7.2f}{star} {t['p50']:>7.2f} {t['p99']:>7.2f} "
          + " ".join(f"{ms(t['stages'][k]):>8}" for k in STAGES) + f" {t['cpu']:>6.1f} {t['failed']:>6}")
    print(f"{'':>5} {'':9} {'':>8} {'':>7} {'':>7} "
          + " ".join(f"{'[' + ms(t['stages99'][k]) + ']':>8}" for k in STAGES))
    print(f"{'':>5} {'':9} 1st byte  {'':>7} {'':>7} "
          + " ".join(f"{ms(v) if v == v else '':>8}" for v in t["first"].values()))
    print(f"{'':>5} {'':9} retries (median): " + ", ".join(f"{k} {v:g}" for k, v in t["retries"].items()))
print()
print("ratios seed / kindling (above 1: kindling faster); target: storm >= 10x at N=1000, no stage below 1")
print(f"{'N':>5} {'storm':>7} {'p50':>7} {'p99':>7} " + " ".join(f"{h:>7}" for h in SHORT) + f" {'cpu':>7}")
def ratio(a, b):
    return f"{a / b:.2f}" if a == a and b == b and b > 0 else "-"
for n in sorted({n for n, _ in table}):
    k, d = table.get((n, "kindling")), table.get((n, "seed"))
    if not k or not d:
        continue
    print(f"{n:>5} {ratio(d['storm'], k['storm']):>7} {ratio(d['p50'], k['p50']):>7} {ratio(d['p99'], k['p99']):>7} "
          + " ".join(f"{ratio(d['stages'][s], k['stages'][s]):>7}" for s in STAGES)
          + f" {ratio(d['cpu'], k['cpu']):>7}")
    slower = [SHORT[i] for i, s in enumerate(STAGES) if d["stages"][s] == d["stages"][s] and k["stages"][s] > d["stages"][s]]
    if n >= 1000:
        sr = d["storm"] / k["storm"] if k["storm"] > 0 else 0
        print(f"      target at N={n}: storm x{sr:.2f} ({'met' if sr >= 10 else 'missed'}); "
              f"stages where kindling's p50 is slower: {', '.join(slower) or 'none'}")
    elif slower:
        print(f"      stages where kindling's p50 is slower: {', '.join(slower)}")
print()
print("per round (raw):")
def sec(x):
    return "-" if x is None else f"{x:.2f}"
for r in rows:
    print(f"  round {r['round']} N={r['machines']:<5} {r['stack']:9} storm {sec(r['storm_s'])} s, p50 {sec(r['e2e_p50'])}, p99 {sec(r['e2e_p99'])}, "
          f"ok {r['ok']}, failed {r['failed']} {r['failures'] or ''}, cpu {r['cpu_s']} s, retries {r['retries']}"
          + (f", mem peak {r['hwm_mb']} MB, RSS {r['rss_mb']} MB after" if "hwm_mb" in r else ""))
PY
