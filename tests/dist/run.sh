#!/usr/bin/env bash
# Packaging checks (issue 14): the portable binary, the systemd unit, the
# firewalld service, the default configurations, the Debian package, the
# container image and compose.yaml. One "PASS name (N s)" or "FAIL name" line
# per check; exits 1 if any check failed. Needs root (podman, dpkg --root,
# network namespaces); without root it skips with a message.
#
#   sudo tests/dist/run.sh
#   DIST_RELEASE=1 tests/dist/run.sh    # build with the real release profile
#   DIST_KEEP=1 tests/dist/run.sh       # keep the temporary directory (logs)
#
# Build: scripts/build-portable (cargo zigbuild, glibc 2.17 symbol versions)
# into ${CARGO_TARGET_DIR:-target}/dist. By default the release profile is
# overridden for speed (no LTO, opt-level 0, 256 codegen units): every check
# here is about packaging, not speed; DIST_RELEASE=1 builds what a release
# ships (about 9 minutes on 2 cores instead of about 3).
#
# Nothing is written outside a temporary directory (/tmp/kindling-dist.*) and
# the target directory, and nothing listens outside a network namespace made
# here: the server and the container run inside it. Everything started here
# is removed on exit, failed or not (the container by name, the namespace, the
# temporary directory with its container storage).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

if [ "$(id -u)" != 0 ]; then
  echo "tests/dist: SKIP: needs root (podman, dpkg --root, network namespaces); run: sudo tests/dist/run.sh"
  exit 0
fi

# The Debian packages these checks use (a no-op when all are present); the
# PyPI and crates.io tools are installed by scripts/build-portable.
scripts/install-deps

work=$(mktemp -d /tmp/kindling-dist.XXXXXX)
tag=kindling-dist-$$
netns=$tag
storage=(--storage-driver vfs --root "$work/storage/root" --runroot "$work/storage/run")
# This machine: no systemd (cgroupfs, events in a file), hybrid cgroups that
# crun refuses (runc), no CAP_SYS_RESOURCE (rlimits at or below the hard ones).
podman_cmd=(podman "${storage[@]}" --cgroup-manager cgroupfs --events-backend file --runtime runc)
ulimits=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)

cleanup() {
  set +e
  if command -v podman >/dev/null && [ -d "$work/storage/root" ]; then
    # Only this run's containers: the storage is this run's own.
    "${podman_cmd[@]}" rm -f -v -t 2 "$tag" kindling >/dev/null 2>&1
  fi
  ip netns del "$netns-compose" 2>/dev/null
  local p pids=()
  for p in "$work"/*.pid; do [ -e "$p" ] && pids+=("$(cat "$p")"); done
  if [ ${#pids[@]} -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null
    for _ in $(seq 100); do kill -0 "${pids[@]}" 2>/dev/null || break; sleep 0.1; done
    kill -9 "${pids[@]}" 2>/dev/null
  fi
  ip netns del "$netns" 2>/dev/null
  if [ "${DIST_KEEP:-0}" = 1 ]; then
    echo "tests/dist: kept $work (logs: $work/*.log)"
    return
  fi
  # The vfs storage may hold read-only directories; make them removable.
  chmod -R u+w "$work" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP   # so that the EXIT trap cleans up then too

failed=()
total_start=$(date +%s)
# check NAME COMMAND...: runs it in a subshell with `set -e` in force (the
# first failing command fails the check), its output in $work/NAME.log.
check() {
  local name=$1 start rc
  shift
  start=$(date +%s)
  set +e
  (set -e; "$@") >"$work/$name.log" 2>&1
  rc=$?
  set -e
  if [ $rc = 0 ]; then
    echo "PASS $name ($(( $(date +%s) - start )) s)"
  else
    echo "FAIL $name (exit $rc; last lines of its log:)"
    tail -n 40 "$work/$name.log" | sed 's/^/    /'
    failed+=("$name")
  fi
}
info() { sed -n "s/^INFO: /    /p" "$work/$1.log"; }

target_dir=${CARGO_TARGET_DIR:-$root/target}/dist
triple=x86_64-unknown-linux-gnu
bin=$target_dir/$triple/release/kindling
sysbin=/usr/bin/python3   # Debian's python3: python3-firewall and python3-yaml

# --- portable binary -------------------------------------------------------
export CARGO_TARGET_DIR=$target_dir
if [ "${DIST_RELEASE:-0}" = 1 ]; then
  profile_note="release (as shipped)"
else
  profile_note="release with speed overrides (no LTO, opt-level 0, 256 codegen units)"
  export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_OPT_LEVEL=0 \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 CARGO_PROFILE_RELEASE_INCREMENTAL=false
fi
build() {
  echo "INFO: profile: $profile_note"
  scripts/build-portable --target "$triple.2.17"
  echo "INFO: $(stat -c %s "$bin") bytes"
}
check portable-build build
info portable-build
if [ ! -x "$bin" ]; then
  echo "tests/dist: no binary; the other checks need it"
  exit 1
fi
glibc_max() {
  scripts/check-glibc "$bin" 2.17
  echo "INFO: newest glibc symbol version: $(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)"
}
check glibc-2.17 glibc_max
info glibc-2.17
check version "$bin" --version

# --- default configurations --------------------------------------------------
configs() {
  mkdir -p "$work/cfg"
  # The packaged config as it is, on an empty data directory (check creates nothing).
  "$bin" check --config dist/kindling.toml --data-dir examples/seed
  # ... and with its commented [dhcp]/[tftp] examples turned on.
  sed -E 's/^# (\[|[a-z_]+ = )/\1/' dist/kindling.toml >"$work/cfg/examples.toml"
  grep -q '^\[dhcp\]' "$work/cfg/examples.toml" && grep -q '^\[tftp\]' "$work/cfg/examples.toml"
  grep -q '^\[\[dhcp.rules\]\]' "$work/cfg/examples.toml"
  "$bin" check --config "$work/cfg/examples.toml" --data-dir examples/seed
  # The container's and compose's configs.
  "$bin" check --config dist/container/kindling.toml --data-dir examples/seed
  "$bin" check --config dist/compose/kindling.toml --data-dir examples/seed
  # A broken file is refused (the check does read the config).
  printf '[http]\nlisen = "0.0.0.0:8080"\n' >"$work/cfg/broken.toml"
  if "$bin" check --config "$work/cfg/broken.toml" --data-dir examples/seed; then
    echo "a config with an unknown key was accepted"
    exit 1
  fi
}
check configs configs

# The packaged config served for real, in a namespace (its defaults: 0.0.0.0:8080),
# with systemd's environment: $STATE_DIRECTORY, $CACHE_DIRECTORY, and a
# $NOTIFY_SOCKET that must receive READY=1 (Type=notify) and STOPPING=1.
serve_default_config() {
  ip netns add "$netns"
  ip -n "$netns" link set lo up
  mkdir -p "$work/serve/data" "$work/serve/state" "$work/serve/cache"
  cp -r examples/seed/. "$work/serve/data/"
  "$sysbin" - "$work/serve/notify" >"$work/serve/notify.log" 2>&1 <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
while True:
    msg = s.recv(4096).decode()
    print(msg, flush=True)
    if "STOPPING=1" in msg:
        break
EOF
  local listener=$!
  echo "$listener" >"$work/notify-listener.pid"
  for _ in $(seq 50); do [ -S "$work/serve/notify" ] && break; sleep 0.1; done
  ip netns exec "$netns" env NOTIFY_SOCKET="$work/serve/notify" \
    STATE_DIRECTORY="$work/serve/state" CACHE_DIRECTORY="$work/serve/cache" \
    "$bin" serve --config dist/kindling.toml --data-dir "$work/serve/data" \
    >"$work/serve/server.log" 2>&1 &
  local server_pid=$!
  echo "$server_pid" >"$work/server.pid"
  for _ in $(seq 100); do grep -q 'READY=1' "$work/serve/notify.log" && break; sleep 0.1; done
  grep -q 'READY=1' "$work/serve/notify.log"
  ip netns exec "$netns" curl -fsS -o /dev/null 'http://127.0.0.1:8080/ipxe?mac=00:24:1d:18:28:09'
  kill -HUP "$server_pid"   # ExecReload=: the server must survive it
  sleep 0.3
  ip netns exec "$netns" curl -fsS -o /dev/null 'http://127.0.0.1:8080/boot.ipxe'
  kill "$server_pid"
  wait "$server_pid" || true
  wait "$listener"
  rm -f "$work/server.pid" "$work/notify-listener.pid"
  grep -q 'STOPPING=1' "$work/serve/notify.log"
  ls "$work/serve/state"   # the journal went to $STATE_DIRECTORY/state
  [ -d "$work/serve/state/state" ]
  ip netns del "$netns"
}
check serve-notify serve_default_config

# --- systemd unit ----------------------------------------------------------
# systemd-analyze verify needs ExecStart's binary and the Documentation= man
# page: a temporary copy of the unit runs the built binary, and MANPATH points
# at the pages `kindling man` writes.
systemd_verify() {
  mkdir -p "$work/unit" "$work/man/man1"
  sed "s#^ExecStart=/usr/bin/kindling #ExecStart=$bin #" dist/systemd/kindling.service \
    >"$work/unit/kindling.service"
  grep -q "^ExecStart=$bin serve --config /etc/kindling/kindling.toml$" "$work/unit/kindling.service"
  "$bin" man "$work/man/man1"
  MANPATH=$work/man systemd-analyze verify "$work/unit/kindling.service"
  # Everything but ExecStart is the shipped unit.
  diff <(grep -v '^ExecStart=' dist/systemd/kindling.service) \
       <(grep -v '^ExecStart=' "$work/unit/kindling.service")
  grep -qx 'Type=notify' dist/systemd/kindling.service
  # shellcheck disable=SC2016 # $MAINPID is systemd's, literally
  grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' dist/systemd/kindling.service
  grep -qx 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK AF_PACKET' dist/systemd/kindling.service
  echo "INFO: $(systemd-analyze security --offline=true "$work/unit/kindling.service" 2>/dev/null | tail -n 1)"
}
check systemd-verify systemd_verify
info systemd-verify

# --- firewalld service -----------------------------------------------------
firewalld_xml() {
  # firewalld's own reader (python3-firewall): the checks firewalld applies.
  "$sysbin" - <<'EOF'
from firewall.core.io.service import service_reader
s = service_reader("kindling.xml", "dist/firewalld")
want = [("67", "udp"), ("69", "udp"), ("4011", "udp"), ("8080", "tcp")]
assert sorted(s.ports) == sorted(want), s.ports
print("firewalld service", s.name, s.ports)
EOF
}
check firewalld-xml firewalld_xml

# --- compose.yaml ----------------------------------------------------------
compose_yaml() {
  "$sysbin" - <<'EOF'
import yaml
c = yaml.safe_load(open("compose.yaml"))
k = c["services"]["kindling"]
assert list(c["services"]) == ["kindling"], c["services"].keys()
assert k["network_mode"] == "host"
assert set(k["cap_add"]) == {"NET_BIND_SERVICE", "NET_RAW"}, k["cap_add"]
# "SOURCE:DEST[:OPTIONS]", where SOURCE may hold ${VAR:-default}: keyed by DEST.
dests = ["/var/lib/matchbox", "/etc/kindling/kindling.toml", "/var/lib/kindling", "/var/cache/kindling"]
vols = {d: v for v in k["volumes"] for d in dests if (":" + d + ":") in (v + ":")}
assert len(vols) == len(dests), vols
assert ":ro" in vols["/var/lib/matchbox"], vols
assert vols["/etc/kindling/kindling.toml"].startswith("./dist/compose/kindling.toml:")
assert vols["/var/lib/kindling"].split(":")[0] in c["volumes"], "state is a named volume"
print("compose.yaml: one service, host network, caps", k["cap_add"])
EOF
}
check compose-yaml compose_yaml

# --- Debian package --------------------------------------------------------
# scripts/build-portable --deb: man pages, cargo-deb (installed from crates.io
# when missing), `cargo deb --no-build` on the binary built above.
deb_build() {
  scripts/build-portable --target "$triple.2.17" --deb-fast | tee "$work/deb-build.out"
  local deb
  deb=$(sed -n 's/^built: deb //p' "$work/deb-build.out")
  cp "$deb" "$work/kindling.deb"
  dpkg-deb -c "$work/kindling.deb" | awk '{print $6}' | sed 's#^\./#/#' >"$work/deb.files"
  local f
  for f in /usr/bin/kindling /lib/systemd/system/kindling.service \
    /usr/lib/firewalld/services/kindling.xml /usr/lib/sysusers.d/kindling.conf \
    /etc/kindling/kindling.toml /usr/share/man/man1/kindling.1.gz \
    /usr/share/man/man1/kindling-serve.1.gz /usr/share/doc/kindling/README.md; do
    grep -qx "$f" "$work/deb.files" || { echo "missing from the package: $f"; exit 1; }
  done
  dpkg-deb -I "$work/kindling.deb" conffiles | grep -x /etc/kindling/kindling.toml >/dev/null
  echo "INFO: $(dpkg-deb -f "$work/kindling.deb" Package Version Architecture Depends | tr '\n' ' ')"
  echo "INFO: $(stat -c %s "$work/kindling.deb") bytes, $(grep -vc '/$' "$work/deb.files") files"
}
check deb-build deb_build
info deb-build

# Installed into a throwaway root (never onto this host): dpkg --root with the
# maintainer scripts run outside a chroot ($DPKG_ROOT set; they honour it), so
# the postinst creates the `kindling` user in the throwaway root's /etc/passwd.
deb_install() {
  local r=$work/debroot
  mkdir -p "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates" "$r/var/lib/dpkg/triggers" "$r/etc"
  touch "$r/var/lib/dpkg/status" "$r/etc/passwd" "$r/etc/group" "$r/etc/shadow" "$r/etc/gshadow"
  local dpkg=(dpkg --root="$r" --log="$work/dpkg.log" --force-script-chrootless --force-depends)
  "${dpkg[@]}" -i "$work/kindling.deb"
  "${dpkg[@]}" -s kindling | grep -x 'Status: install ok installed' >/dev/null
  "$r/usr/bin/kindling" --version
  grep '^kindling:' "$r/etc/passwd"
  "$r/usr/bin/kindling" check --config "$r/etc/kindling/kindling.toml" --data-dir examples/seed
  [ -f "$r/usr/share/man/man1/kindling-serve.1.gz" ]
  # The conffile survives a local edit on reinstall, and purge removes everything.
  echo '# local edit' >>"$r/etc/kindling/kindling.toml"
  "${dpkg[@]}" --force-confold -i "$work/kindling.deb"
  grep -q '# local edit' "$r/etc/kindling/kindling.toml"
  "${dpkg[@]}" --purge kindling
  [ ! -e "$r/usr/bin/kindling" ] && [ ! -e "$r/etc/kindling/kindling.toml" ]
}
check deb-install deb_install

# The package in a real systemd: a Debian 12 root (debootstrap, cached in
# $DIST_CACHE) booted with systemd-nspawn in a private network namespace; the
# package installed with dpkg inside it, then systemctl start (Type=notify),
# the process's user and capabilities, an HTTP request, systemctl reload
# (SIGHUP), an upgrade (restart), systemctl stop, and purge. This machine has
# no systemd as PID 1, so this is where the unit actually runs.
cache=${DIST_CACHE:-/var/tmp/kindling-dist-cache}
systemd_start() {
  local rootfs=$cache/bookworm-systemd
  if [ ! -x "$rootfs/lib/systemd/systemd" ]; then
    mkdir -p "$cache"
    rm -rf "$rootfs.tmp"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,curl,procps \
      bookworm "$rootfs.tmp" http://deb.debian.org/debian >/dev/null
    rm -rf "$rootfs.tmp/var/cache/apt/archives"/*.deb
    mv "$rootfs.tmp" "$rootfs"
  fi
  local r=$work/nspawn-root
  cp -a "$rootfs" "$r"
  cp "$work/kindling.deb" "$r/root/kindling.deb"
  # The seed as the data directory (files only: the service owns the directory).
  mkdir -p "$r/var/lib/kindling"
  cp -r examples/seed/. "$r/var/lib/kindling/"
  systemd-nspawn -q --keep-unit --register=no --console=passive --private-network \
    -M "$tag" -D "$r" -b >"$work/nspawn-console.log" 2>&1 &
  local nspawn=$!
  echo "$nspawn" >"$work/nspawn.pid"
  local init=""
  for _ in $(seq 100); do
    init=$(pgrep -P "$nspawn" -x systemd || true)
    [ -n "$init" ] && break
    sleep 0.1
  done
  [ -n "$init" ]
  local in=(nsenter -t "$init" -m -u -i -n -p --)
  timeout 60 "${in[@]}" systemctl is-system-running --wait || true
  "${in[@]}" dpkg -i /root/kindling.deb
  "${in[@]}" systemctl start kindling
  "${in[@]}" systemctl is-active kindling
  local pid
  pid=$("${in[@]}" systemctl show -p MainPID --value kindling)
  "${in[@]}" grep -E '^(Uid|CapEff|CapAmb|NoNewPrivs|Seccomp):' "/proc/$pid/status" | tee "$work/nspawn-status"
  echo "INFO: MainPID $pid: $(tr -s '\t\n' ' ' <"$work/nspawn-status")"
  # The kindling user (not root); exactly CAP_NET_BIND_SERVICE (10) and CAP_NET_RAW (13).
  grep -q "^Uid:[[:space:]]*$("${in[@]}" id -u kindling)[[:space:]]" "$work/nspawn-status"
  grep -qx 'CapEff:[[:space:]]*0000000000002400' "$work/nspawn-status"
  grep -qx 'NoNewPrivs:[[:space:]]*1' "$work/nspawn-status"
  "${in[@]}" curl -fsS -o /dev/null 'http://127.0.0.1:8080/ipxe?mac=00:24:1d:18:28:09'
  "${in[@]}" systemctl reload kindling
  "${in[@]}" systemctl is-active kindling
  [ "$("${in[@]}" systemctl show -p MainPID --value kindling)" = "$pid" ]
  "${in[@]}" curl -fsS -o /dev/null 'http://127.0.0.1:8080/boot.ipxe'
  # An upgrade (the same package again) restarts the running service.
  "${in[@]}" dpkg -i /root/kindling.deb
  "${in[@]}" systemctl is-active kindling
  [ "$("${in[@]}" systemctl show -p MainPID --value kindling)" != "$pid" ]
  "${in[@]}" curl -fsS -o /dev/null 'http://127.0.0.1:8080/boot.ipxe'
  "${in[@]}" test -f /var/lib/kindling/state/events.jsonl
  "${in[@]}" test -d /var/cache/kindling
  "${in[@]}" systemctl stop kindling
  "${in[@]}" systemctl show -p Result --value kindling | grep -x success >/dev/null
  "${in[@]}" journalctl -u kindling --no-pager | tail -n 20
  "${in[@]}" dpkg --purge kindling
  kill "$nspawn"
  wait "$nspawn" || true
  rm -f "$work/nspawn.pid"
  rm -rf "$r"
}
check systemd-start systemd_start
info systemd-start

# --- container image ---------------------------------------------------------
image_build() {
  scripts/build-image --bin "$bin" --tag "localhost/$tag" \
    --root "$work/storage/root" --runroot "$work/storage/run"
}
check image-build image_build
sed -n 's/^image: /    image: /p' "$work/image-build.log"

# The image from inside: --version, then the server with the default config of
# the image and the seed mounted read-only at /var/lib/matchbox, in a network
# namespace of its own, with only the two capabilities of compose.yaml.
image_run() {
  "${podman_cmd[@]}" run --rm --network none "${ulimits[@]}" "localhost/$tag:latest" --version
  ip netns add "$netns"
  ip -n "$netns" link set lo up
  "${podman_cmd[@]}" run -d --name "$tag" --network "ns:/run/netns/$netns" "${ulimits[@]}" \
    --cap-drop ALL --cap-add NET_BIND_SERVICE,NET_RAW \
    -v "$root/examples/seed:/var/lib/matchbox:ro" "localhost/$tag:latest"
  local code=""
  for _ in $(seq 100); do
    code=$(ip netns exec "$netns" curl -s -o "$work/ipxe.out" -w '%{http_code}' \
      'http://127.0.0.1:8080/ipxe?mac=00:24:1d:18:28:09' || true)
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  "${podman_cmd[@]}" logs "$tag"
  [ "$code" = 200 ] || { echo "GET /ipxe: $code"; exit 1; }
  grep -q '^kernel /assets/fedora-coreos' "$work/ipxe.out"
  # The iPXE binaries of the image, as /tftp/ serves them.
  ip netns exec "$netns" curl -fsS -o /dev/null http://127.0.0.1:8080/tftp/undionly.kpxe
  "${podman_cmd[@]}" exec "$tag" /usr/bin/kindling --version
  "${podman_cmd[@]}" stop -t 5 "$tag"
  "${podman_cmd[@]}" logs "$tag" >"$work/container.log" 2>&1
  grep -q 'boot journal' "$work/container.log"
  "${podman_cmd[@]}" rm -f -v "$tag"
  ip netns del "$netns"
}
check image-run image_run

# compose.yaml brought up for real with podman-compose 1.6.0 (PyPI, in a venv in
# $DIST_CACHE: Debian 12's podman-compose 1.0.3 adds a bridge network to
# network_mode: host, which podman refuses), inside a network namespace where a
# veth has the seed's address (10.10.254.200/24), so that the seed's
# proxy DHCP (dist/compose/kindling.toml) finds its interface. The image is this
# run's, tagged localhost/kindling:latest in this run's storage.
PODMAN_COMPOSE_VERSION=1.6.0
compose_up() {
  local venv=$cache/podman-compose-$PODMAN_COMPOSE_VERSION
  if [ ! -x "$venv/bin/podman-compose" ]; then
    mkdir -p "$cache"
    python3 -m venv "$venv"
    "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check \
      "podman-compose==$PODMAN_COMPOSE_VERSION"
  fi
  # podman-compose calls plain podman: this machine's settings (see podman_cmd)
  # and this run's storage go in through podman's own configuration variables.
  cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
  cat >"$work/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$work/storage/root"
runroot = "$work/storage/run"
EOF
  export CONTAINERS_CONF=$work/containers.conf CONTAINERS_STORAGE_CONF=$work/storage.conf
  podman tag "localhost/$tag:latest" localhost/kindling:latest
  local ns=$netns-compose
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" link add kd0 type veth peer name kd1
  ip -n "$ns" addr add 10.10.254.200/24 dev kd0
  ip -n "$ns" link set kd1 up
  ip -n "$ns" link set kd0 up
  local compose=("$venv/bin/podman-compose" -p "$tag" -f compose.yaml)
  "${compose[@]}" config >/dev/null
  # nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroup mounts runc needs.
  nsenter --net="/run/netns/$ns" "${compose[@]}" up -d
  local code=""
  for _ in $(seq 100); do
    code=$(ip netns exec "$ns" curl -s -o /dev/null -w '%{http_code}' \
      'http://10.10.254.200:8080/ipxe?mac=00:24:1d:18:28:09' || true)
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  podman logs kindling >"$work/compose.log" 2>&1
  cat "$work/compose.log"
  [ "$code" = 200 ] || { echo "GET /ipxe: $code"; exit 1; }
  # Proxy DHCP (67, 4011) and TFTP (69) listening, as the seed's dnsmasq did.
  ip netns exec "$ns" ss -lunp >"$work/compose.ss"
  cat "$work/compose.ss"
  local port
  for port in 67 4011 69; do
    grep -E "[:.]${port}[[:space:]]" "$work/compose.ss" >/dev/null || { echo "nothing on udp $port"; exit 1; }
  done
  ip netns exec "$ns" curl -fsS -o /dev/null http://10.10.254.200:8080/tftp/undionly.kpxe
  nsenter --net="/run/netns/$ns" "${compose[@]}" down -v
  ip netns del "$ns"
}
check compose-up compose_up

echo "tests/dist: $(( $(date +%s) - total_start )) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "tests/dist: FAILED: ${failed[*]}"
  exit 1
fi
echo "tests/dist: all passed"
