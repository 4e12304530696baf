#!/usr/bin/env bash
# Kindling end-to-end network-boot tests: real firmware (SeaBIOS, OVMF, iPXE, EDK2 PXE,
# EDK2 HTTP Boot) in QEMU boots a Linux kernel through Kindling alone (proxy DHCP + TFTP +
# HTTP), next to Debian's dnsmasq acting as the site's ordinary DHCP server, all inside
# network namespaces this script creates. The booted initrd fetches its Ignition and prints
# "E2E-BOOT-OK <mac> <sha256>" on the serial console; the script checks that marker, the
# DHCP/TFTP traffic (pcap) and Kindling's request log.
# Beyond the firmware paths: fcos-pull boots a profile that `kindling fcos pull` wrote
# against a local stand-in builds host, menu-cache boots a /menu.ipxe entry whose files come
# through Kindling's pull-through cache from a fixture upstream (one upstream GET per file),
# timeline checks `kindling machines show` after a good and a failed boot, and install-once
# boots a machine with a disk three times: it installs (and calls /install/done), then boots
# its disk (Kindling answers a local-boot script), then installs again after
# `kindling machines reinstall`. fleet runs two Kindling servers on the segment that share
# one etcd store (both answer proxy DHCP): the machine installs through whichever it picks,
# then boots its disk through the other one alone (the first is stopped), then, re-armed
# through the survivor, installs again. secure-boot (tests/e2e/secure-boot.sh) boots OVMF with
# Secure Boot enforced and Microsoft's keys enrolled through Kindling alone (full DHCP mode,
# the site's dnsmasq stopped): shim -> GRUB -> Debian's signed kernel, and the same VM sent
# unsigned iPXE is refused by the firmware ("Access Denied"); always under TCG (SMM).
#
#   tests/e2e/run.sh                      # every scenario
#   E2E_SCENARIOS="bios-ipxe uefi-pxe" tests/e2e/run.sh
#   tests/e2e/run.sh --list               # scenario names
#
# Settings (environment):
#   KINDLING_BIN    kindling binary (default: cargo build --release -p kindling, with
#                   --features etcd when fleet is selected, then
#                   ${CARGO_TARGET_DIR:-<repo>/target}/release/kindling)
#   FCOS_FIXTURE    the fcos-fixture example (stand-in Fedora CoreOS builds host; default:
#                   cargo build -p kindling-fcos --example fcos-fixture, only for fcos-pull)
#   E2E_PROXY       kindling (default) | dnsmasq: dnsmasq does proxy DHCP + TFTP and
#                   Kindling only HTTP (a stand-in to test the harness itself)
#   E2E_ACCEL       auto (default: KVM only if a probe boots firmware) | tcg | kvm
#   E2E_SCENARIOS   space-separated subset (default: all, in order)
#   BOOT_TIMEOUT    seconds per boot (default 150 under TCG, 60 under KVM)
#   E2E_CACHE       kernel cache (default /var/tmp/kindling-e2e-cache)
#   E2E_RUNS        parent of per-run work dirs (default /tmp/kindling-e2e)
#   E2E_KEEP=1      keep the work dir (it is always kept when a scenario fails)
#   E2E_BREAK       harness self-test, breaks one thing on purpose:
#                   profile-b  machine B's profile points at machine A's Ignition
#                   tftp       the TFTP server is off
#                   menu       the alternate menu (per-MAC DHCP route) is missing
#                   cache      the menu entry pins a wrong sha256 for its initrd
#                   fcos-keyring  the second fcos pull gets the first fixture's key only
#                   sb-kernel  secure-boot's profile boots the kernel with its signature removed
#
# Needs root and: qemu-system-x86 ipxe-qemu ipxe ovmf dnsmasq-base busybox-static
# iproute2 tcpdump cpio python3 curl (and apt-get/dpkg-deb to fetch the kernel once);
# fleet also etcd-server and etcd-client; secure-boot also shim-signed and
# grub-efi-amd64-signed.
# Without root it prints SKIP and exits 0. Exit status: 0 when nothing failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ALL_SCENARIOS="bios-ipxe uefi-ipxe uefi-pxe two-machines templated-args mac-route unknown-mac uefi-http fcos-pull menu-cache timeline install-once fleet secure-boot"

if [ "${1:-}" = "--list" ]; then
	tr ' ' '\n' <<<"$ALL_SCENARIOS"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "SKIP e2e: needs root (network namespaces, tap devices, DHCP ports)"
	exit 0
fi

E2E_PROXY=${E2E_PROXY:-kindling}
E2E_ACCEL=${E2E_ACCEL:-auto}
E2E_SCENARIOS=${E2E_SCENARIOS:-$ALL_SCENARIOS}
E2E_CACHE=${E2E_CACHE:-/var/tmp/kindling-e2e-cache}
E2E_RUNS=${E2E_RUNS:-/tmp/kindling-e2e}
E2E_KEEP=${E2E_KEEP:-0}
E2E_BREAK=${E2E_BREAK:-}

ID=$$
WORK=$E2E_RUNS/$ID
NS_PREFIX=kindling-e2e-
NS_LAN=${NS_PREFIX}$ID-lan
NS_SRV=${NS_PREFIX}$ID-srv
NS_DHCP=${NS_PREFIX}$ID-dhcp
NS_SRV2=${NS_PREFIX}$ID-srv2 # fleet only: the second Kindling server
SRV_IP=10.99.0.1
SRV2_IP=10.99.0.3              # fleet: server B (server A is $SRV_IP)
ETCD_URL=http://10.99.0.2:2379 # fleet: one etcd member, in the dhcp namespace
BASE=http://$SRV_IP:8080
ADMIN=http://127.0.0.1:8082
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net"

# The machines of the data directory.
MAC_A=52:54:00:12:34:56 # group machine-a -> profile e2e-a
MAC_B=52:54:00:12:34:57 # group machine-b -> profile e2e-b
MAC_R=52:54:00:12:34:58 # group machine-r, but routed by a DHCP rule to /assets/menu.ipxe
MAC_U=52:54:00:de:ad:01 # no group
MAC_F=52:54:00:12:34:59 # group machine-f -> profile fedora-coreos-stable (written by fcos pull)
MAC_M=52:54:00:12:34:5a # routed by a DHCP rule to /menu.ipxe; [[menu.machines]] -> e2e-cached
MAC_N=52:54:00:12:34:5b # the same route and entry (second boot, from the warm cache)
MAC_S=52:54:00:12:34:5c # templated-args: groups machine-s/-t -> one profile e2e-templated,
MAC_T=52:54:00:12:34:5d #   whose kernel arguments are rendered from each group's metadata
MAC_I=52:54:00:12:34:5e # install-once: group machine-i -> profile e2e-install (install_once)
MAC_L=52:54:00:12:34:5f # fleet: group machine-l -> profile e2e-fleet (install_once), in etcd
UPSTREAM=http://$SRV_IP:8081 # the menu entry's "upstream" (python3 http.server, menu-cache)
FCOS_R1=43.20251101.3.0 # the fcos fixture's first release ...
FCOS_R2=43.20251115.3.0 # ... and the one that appears upstream later

T_START=$(date +%s.%N)
log() { printf '%s\n' "$*" >&2; }
die() {
	log "e2e: $*"
	exit 1
}
hyp() { tr ':' '-' <<<"$1"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------------------------------
# Teardown: only PIDs this harness recorded (and whose cmdline still names their work dir),
# only namespaces named kindling-e2e-<pid>-{lan,srv,srv2,dhcp}.

kill_recorded() { # <work dir>
	local dir=$1 pid pids=()
	[ -f "$dir/pids" ] || return 0
	while read -r pid; do
		[[ "$pid" =~ ^[0-9]+$ ]] || continue
		if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/"; then
			kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
		fi
	done <"$dir/pids"
	local i
	for i in $(seq 30); do
		local alive=0
		for pid in "${pids[@]}"; do [ -d "/proc/$pid" ] && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for pid in "${pids[@]}"; do
		if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/"; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	# Reap our own children quietly.
	wait 2>/dev/null || true
}

delete_netns() { # <run id>
	local ns
	for ns in "${NS_PREFIX}$1-lan" "${NS_PREFIX}$1-srv" "${NS_PREFIX}$1-srv2" "${NS_PREFIX}$1-dhcp"; do
		if ip netns list | awk '{print $1}' | grep -qxF "$ns"; then
			ip netns delete "$ns" 2>/dev/null || log "e2e: could not delete netns $ns"
		fi
	done
}

run_alive() { # <run id>: is that harness still running?
	[ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q 'e2e/run.sh'
}

teardown_stale() {
	local d id ns
	if [ -d "$E2E_RUNS" ]; then
		for d in "$E2E_RUNS"/*/; do
			[ -d "$d" ] || continue
			d=${d%/}
			id=${d##*/}
			[[ "$id" =~ ^[0-9]+$ ]] || continue
			[ "$id" = "$ID" ] && continue
			run_alive "$id" && continue
			kill_recorded "$d"
			delete_netns "$id"
			rm -rf -- "$d"
		done
	fi
	# Namespaces of a run whose work dir is gone (e.g. deleted by hand).
	for ns in $(ip netns list | awk '{print $1}'); do
		[[ "$ns" =~ ^kindling-e2e-([0-9]+)-(lan|srv|srv2|dhcp)$ ]] || continue
		id=${BASH_REMATCH[1]}
		[ "$id" = "$ID" ] && continue
		run_alive "$id" && continue
		ip netns delete "$ns" 2>/dev/null || true
	done
}

FAILED=0
UEFI_PXE_RAN=""
cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	kill_recorded "$WORK"
	delete_netns "$ID"
	# Keep the artifacts of failures; an interrupted run (130/143) leaves nothing.
	if [ "$E2E_KEEP" != 1 ] && { [ "$rc" = 130 ] || [ "$rc" = 143 ] || { [ "$rc" = 0 ] && [ "$FAILED" = 0 ]; }; }; then
		rm -rf -- "$WORK"
	elif [ -d "$WORK" ]; then
		log "e2e: artifacts kept in $WORK (removed by the next run)"
	fi
	exit "$rc"
}

record_pid() { echo "$1" >>"$WORK/pids"; }

# ---------------------------------------------------------------------------------------
# Preparation

need_tools() {
	local missing=() t
	for t in qemu-system-x86_64:qemu-system-x86 dnsmasq:dnsmasq-base ip:iproute2 \
		tcpdump:tcpdump cpio:cpio gzip:gzip python3:python3 curl:curl dpkg-deb:dpkg \
		timeout:coreutils ss:iproute2; do
		command -v "${t%%:*}" >/dev/null || missing+=("${t##*:}")
	done
	[ -x /bin/busybox ] && file_is_static /bin/busybox || missing+=(busybox-static)
	[ -f /usr/lib/ipxe/snponly.efi ] || missing+=(ipxe)
	[ -f /usr/lib/ipxe/qemu/efi-virtio.rom ] || missing+=(ipxe-qemu)
	[ -f "$OVMF_CODE" ] || missing+=(ovmf)
	if grep -qw fleet <<<"$E2E_SCENARIOS"; then
		command -v etcd >/dev/null || missing+=(etcd-server)
		command -v etcdctl >/dev/null || missing+=(etcd-client)
	fi
	if grep -qw secure-boot <<<"$E2E_SCENARIOS"; then
		[ -f "$OVMF_SB_CODE" ] && [ -f "$OVMF_SB_VARS" ] || missing+=(ovmf)
		[ -f "$SB_SHIM" ] || missing+=(shim-signed)
		[ -f "$SB_GRUB" ] || missing+=(grub-efi-amd64-signed)
	fi
	if [ ${#missing[@]} -gt 0 ]; then
		echo "FAIL prerequisites: apt-get install -y ${missing[*]}"
		exit 1
	fi
}

file_is_static() { ! LC_ALL=C ldd "$1" >/dev/null 2>&1; }

# Debian's kernel: downloaded and unpacked (never installed) once, cached as vmlinuz plus the
# eight virtio modules.
prepare_kernel() {
	local k=$E2E_CACHE/kernel m ok=1
	for m in $MODULES; do [ -f "$k/modules/$m.ko" ] || ok=0; done
	if [ -f "$k/vmlinuz" ] && [ $ok = 1 ]; then
		return 0
	fi
	log "e2e: fetching Debian's kernel into $E2E_CACHE (once)"
	mkdir -p "$E2E_CACHE"
	local tmp pkg
	tmp=$(mktemp -d "$E2E_CACHE/dl.XXXXXX")
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
	[ -n "$pkg" ] || {
		apt-get update -qq
		pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
	}
	[ -n "$pkg" ] || die "cannot resolve linux-image-amd64 (apt-cache depends)"
	(cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1) ||
		(apt-get update -qq && cd "$tmp" && apt-get download -q "$pkg" >/dev/null) ||
		die "apt-get download $pkg failed"
	dpkg-deb -x "$tmp"/*.deb "$tmp/x"
	mkdir -p "$tmp/kernel/modules"
	cp "$tmp"/x/boot/vmlinuz-* "$tmp/kernel/vmlinuz"
	for m in $MODULES; do
		local f
		f=$(find "$tmp/x/lib/modules" -name "$m.ko*" | head -n1)
		[ -n "$f" ] || die "module $m not found in $pkg"
		case "$f" in
		*.ko) cp "$f" "$tmp/kernel/modules/$m.ko" ;;
		*.ko.xz) xz -dc "$f" >"$tmp/kernel/modules/$m.ko" ;;
		*.ko.zst) zstd -qdc "$f" >"$tmp/kernel/modules/$m.ko" ;;
		*) die "unexpected module file $f" ;;
		esac
	done
	echo "$pkg" >"$tmp/kernel/PACKAGE"
	rm -rf "$k"
	mv "$tmp/kernel" "$k"
	rm -rf "$tmp"
}

build_initrd() { # <output>
	local root=$WORK/initrd-root
	mkdir -p "$root/bin" "$root/lib/modules" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/tmp"
	cp /bin/busybox "$root/bin/busybox"
	cp "$E2E_CACHE"/kernel/modules/*.ko "$root/lib/modules/"
	cp "$HERE/initrd/init" "$root/init"
	cp "$HERE/initrd/udhcpc.script" "$root/etc/udhcpc.script"
	chmod 0755 "$root/init" "$root/etc/udhcpc.script"
	(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) >"$1"
}

kindling_bin() {
	if [ -n "${KINDLING_BIN:-}" ]; then
		[ -x "$KINDLING_BIN" ] || die "KINDLING_BIN=$KINDLING_BIN is not executable"
		echo "$KINDLING_BIN"
		return
	fi
	# The etcd store (fleet) is a cargo feature, on in release builds (scripts/build-portable).
	local features=()
	grep -qw fleet <<<"$E2E_SCENARIOS" && features=(--features etcd)
	log "e2e: cargo build --release -p kindling ${features[*]}"
	(cd "$REPO" && cargo build --release --locked -p kindling "${features[@]}" >&2) || die "cargo build failed"
	echo "${CARGO_TARGET_DIR:-$REPO/target}/release/kindling"
}

# The stand-in Fedora CoreOS builds host (crates/kindling-fcos/examples/fcos-fixture.rs).
fcos_fixture_bin() {
	if [ -n "${FCOS_FIXTURE:-}" ]; then
		[ -x "$FCOS_FIXTURE" ] || die "FCOS_FIXTURE=$FCOS_FIXTURE is not executable"
		echo "$FCOS_FIXTURE"
		return
	fi
	log "e2e: cargo build -p kindling-fcos --example fcos-fixture"
	(cd "$REPO" && cargo build --locked -p kindling-fcos --example fcos-fixture >&2) || die "cargo build of fcos-fixture failed"
	echo "${CARGO_TARGET_DIR:-$REPO/target}/debug/examples/fcos-fixture"
}

ign() { # <name>: a small valid Ignition config naming the machine
	printf '{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/e2e-machine","mode":420,"contents":{"source":"data:,%s"}}]}}\n' "$1"
}

# A data directory modelled on the seed: groups by MAC -> profiles with a kernel, an
# `initrd --name` entry and args ending in the seed's ignition.config.url.
write_data() {
	local d=$WORK/data
	mkdir -p "$d/groups" "$d/profiles" "$d/ignition" "$d/assets" "$d/generic" "$d/cloud"
	cp "$E2E_CACHE/kernel/vmlinuz" "$d/assets/vmlinuz"
	build_initrd "$d/assets/initrd.img"
	local m
	for m in a b r; do
		local mac
		case $m in a) mac=$MAC_A ;; b) mac=$MAC_B ;; r) mac=$MAC_R ;; esac
		cat >"$d/groups/machine-$m.json" <<-EOF
			{
			  "id": "machine-$m",
			  "name": "E2E machine $m",
			  "profile": "e2e-$m",
			  "selector": {
			    "mac": "$mac"
			  }
			}
		EOF
		local ignition_id=machine-$m.ign
		if [ "$E2E_BREAK" = profile-b ] && [ $m = b ]; then ignition_id=machine-a.ign; fi
		cat >"$d/profiles/e2e-$m.json" <<-EOF
			{
			  "id": "e2e-$m",
			  "name": "E2E profile $m",
			  "ignition_id": "$ignition_id",
			  "boot": {
			    "kernel": "/assets/vmlinuz",
			    "initrd": [
			      "--name initrd.img /assets/initrd.img"
			    ],
			    "args": [
			      "initrd=initrd.img",
			      "console=ttyS0",
			      "quiet",
			      "panic=-1",
			      "no_timer_check",
			      "e2e.tag=profile-$m",
			      "ignition.firstboot",
			      "ignition.platform.id=metal",
			      "ignition.config.url=$BASE/ignition?mac=\${mac:hexhyp}"
			    ]
			  }
			}
		EOF
		ign "machine-$m" >"$d/ignition/machine-$m.ign"
	done
	# The alternate menu a DHCP rule sends MAC_R to (as the seed sends one MAC to
	# netboot.xyz): a different kernel argument and a static Ignition among the assets.
	if [ "$E2E_BREAK" != menu ]; then
		cat >"$d/assets/menu.ipxe" <<-EOF
			#!ipxe
			echo E2E alternate menu for \${net0/mac}
			kernel $BASE/assets/vmlinuz initrd=initrd.img console=ttyS0 quiet panic=-1 no_timer_check e2e.tag=alt-menu ignition.config.url=$BASE/assets/alt-menu.ign
			initrd --name initrd.img $BASE/assets/initrd.img
			boot
		EOF
	fi
	ign alt-menu >"$d/assets/alt-menu.ign"
	# fcos-pull: machine F's Ignition (its group and profile come from the scenario).
	ign machine-f >"$d/ignition/machine-f.ign"
	# menu-cache: the "upstream" the menu entry's files come from, and its Ignition.
	mkdir -p "$WORK/upstream"
	cp "$d/assets/vmlinuz" "$d/assets/initrd.img" "$WORK/upstream/"
	ign menu-cache >"$d/assets/menu-cache.ign"
}

write_configs() {
	# The admin listener's bearer token (its writes need credentials even on loopback).
	(umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$WORK/admin.token" && echo >>"$WORK/admin.token")
	cat >"$WORK/dnsmasq-dhcp.conf" <<-EOF
		# The site's ordinary DHCP server: addresses only, no PXE options.
		port=0
		interface=d0
		bind-interfaces
		dhcp-range=10.99.0.100,10.99.0.199,255.255.255.0,1h
		# IPv6 RAs on a ULA inside the netns only: iPXE otherwise waits ~13 s for IPv6.
		enable-ra
		dhcp-range=::,constructor:d0,ra-only,64,1h
		dhcp-authoritative
		no-ping
		dhcp-leasefile=$WORK/dhcp.leases
		log-dhcp
		log-facility=$WORK/dnsmasq-dhcp.log
		pid-file=
		user=root
		group=root
	EOF
	mkdir -p "$WORK/tftp"
	if [ "$E2E_PROXY" = dnsmasq ]; then
		cp -L /usr/lib/ipxe/snponly.efi /usr/lib/ipxe/undionly.kpxe "$WORK/tftp/"
		cat >"$WORK/dnsmasq-proxy.conf" <<-EOF
			# Stand-in for Kindling's proxy DHCP + TFTP (E2E_PROXY=dnsmasq).
			port=0
			interface=s0
			bind-interfaces
			dhcp-range=10.99.0.0,proxy,255.255.255.0
			dhcp-userclass=set:ipxe,iPXE
			dhcp-mac=set:altmac,$MAC_R
			tag-if=set:alt,tag:ipxe,tag:altmac
			dhcp-boot=tag:alt,$BASE/assets/menu.ipxe,,$SRV_IP
			dhcp-boot=tag:ipxe,tag:!alt,$BASE/boot.ipxe,,$SRV_IP
			pxe-service=tag:!ipxe,x86PC,"chain to iPXE (BIOS)",undionly.kpxe
			pxe-service=tag:!ipxe,X86-64_EFI,"chain to iPXE (UEFI)",snponly.efi
			log-dhcp
			log-facility=$WORK/dnsmasq-proxy.log
			pid-file=
			user=root
			group=root
		EOF
		if [ "$E2E_BREAK" != tftp ]; then
			printf 'enable-tftp\ntftp-root=%s\n' "$WORK/tftp" >>"$WORK/dnsmasq-proxy.conf"
		fi
		cat >"$WORK/kindling.toml" <<-EOF
			data_dir = "$WORK/data"
			[http]
			listen = "$SRV_IP:8080"
			[reload]
			watch = false
			[ops]
			state_dir = "$WORK/state"
			[cache]
			dir = "$WORK/cache"
			[admin]
			token_file = "$WORK/admin.token"
		EOF
	else
		local tftp_enabled=true initrd_sum_of=initrd.img
		[ "$E2E_BREAK" = tftp ] && tftp_enabled=false
		[ "$E2E_BREAK" = cache ] && initrd_sum_of=vmlinuz
		cat >"$WORK/kindling.toml" <<-EOF
			# Kindling is the only boot server: proxy DHCP + TFTP + HTTP.
			data_dir = "$WORK/data"

			[http]
			listen = "$SRV_IP:8080"

			[log]
			level = "info,kindling_dhcp=debug,kindling_tftp=debug"

			[reload]
			watch = false
			[ops]
			state_dir = "$WORK/state"
			[cache]
			dir = "$WORK/cache"
			# The lifecycle API's writes (install-once: reinstall) need credentials.
			[admin]
			token_file = "$WORK/admin.token"

			[dhcp]
			enabled = true
			interfaces = ["s0"]

			[[dhcp.rules]]
			name = "alt-menu"
			mac = "$MAC_R"
			url = "$BASE/assets/menu.ipxe"

			[[dhcp.rules]]
			name = "menu-m"
			mac = "$MAC_M"
			url = "$BASE/menu.ipxe"

			[[dhcp.rules]]
			name = "menu-n"
			mac = "$MAC_N"
			url = "$BASE/menu.ipxe"

			[tftp]
			enabled = $tftp_enabled
			listen = "$SRV_IP:69"

			# menu-cache: MAC_M and MAC_N boot the entry e2e-cached straight away; its
			# kernel and initrd come through /cache/ from the fixture upstream.
			[menu]
			base_url = "$BASE"

			[[menu.machines]]
			mac = "$MAC_M"
			entry = "e2e-cached"
			timeout_secs = 0

			[[menu.machines]]
			mac = "$MAC_N"
			entry = "e2e-cached"
			timeout_secs = 0

			[[menu.entries]]
			id = "e2e-cached"
			title = "E2E: the test kernel through the cache"
			section = "Install"
			[menu.entries.arch.x86_64]
			kernel = "vmlinuz"
			initrd = ["initrd.img"]
			args = "console=ttyS0 quiet panic=-1 no_timer_check e2e.tag=menu-cache ignition.config.url=$BASE/assets/menu-cache.ign"
			[menu.entries.arch.x86_64.files.vmlinuz]
			url = "$UPSTREAM/vmlinuz"
			sha256 = "$(sha_of "$WORK/upstream/vmlinuz")"
			[menu.entries.arch.x86_64.files."initrd.img"]
			url = "$UPSTREAM/initrd.img"
			sha256 = "$(sha_of "$WORK/upstream/$initrd_sum_of")"
		EOF
	fi
}

# ---------------------------------------------------------------------------------------
# Network: three namespaces on one bridge. QEMU's taps live in the lan namespace; every
# address exists only inside these namespaces.

setup_net() {
	local ns
	for ns in "$NS_LAN" "$NS_SRV" "$NS_DHCP"; do
		ip netns add "$ns"
		ip netns exec "$ns" ip link set lo up
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	done
	local L=(ip netns exec "$NS_LAN")
	"${L[@]}" ip link add br0 type bridge stp_state 0 forward_delay 0
	"${L[@]}" ip link set br0 up
	"${L[@]}" ip link add l-srv type veth peer name s0 netns "$NS_SRV"
	"${L[@]}" ip link add l-dhcp type veth peer name d0 netns "$NS_DHCP"
	"${L[@]}" ip link set l-srv master br0 up
	"${L[@]}" ip link set l-dhcp master br0 up
	local tap
	for tap in tap0 tap1; do
		"${L[@]}" ip tuntap add dev $tap mode tap
		"${L[@]}" ip link set $tap master br0 up
	done
	ip netns exec "$NS_SRV" ip addr add $SRV_IP/24 dev s0
	ip netns exec "$NS_SRV" ip link set s0 up
	ip netns exec "$NS_DHCP" ip addr add 10.99.0.2/24 dev d0
	ip netns exec "$NS_DHCP" ip link set d0 up
	ip netns exec "$NS_DHCP" sysctl -qw net.ipv6.conf.d0.disable_ipv6=0
	ip netns exec "$NS_DHCP" ip -6 addr add fd99::2/64 dev d0 nodad
}

KLOG=$WORK/kindling.log
# The site's ordinary DHCP server (dnsmasq in the dhcp namespace); sets SITE_DHCP_PID.
start_site_dhcp() {
	ip netns exec "$NS_DHCP" dnsmasq --keep-in-foreground --conf-file="$WORK/dnsmasq-dhcp.conf" \
		>>"$WORK/dnsmasq-dhcp.out" 2>&1 &
	SITE_DHCP_PID=$!
	record_pid $SITE_DHCP_PID
}
start_servers() {
	start_site_dhcp
	if [ "$E2E_PROXY" = dnsmasq ]; then
		ip netns exec "$NS_SRV" dnsmasq --keep-in-foreground --conf-file="$WORK/dnsmasq-proxy.conf" \
			>"$WORK/dnsmasq-proxy.out" 2>&1 &
		record_pid $!
	fi
	start_kindling "$NS_SRV" "$WORK/kindling.toml" "$KLOG" "$BASE" || return 1
	KPID=$STARTED_PID
}

# Starts `kindling serve` in a namespace, its output appended to a log; sets STARTED_PID.
# Ready when HTTP answers and (Kindling mode) UDP 67, 4011 and 69 are bound in that
# namespace.
start_kindling() { # <netns> <config> <log> <base URL>
	local ns=$1 conf=$2 klog=$3 base=$4
	ip netns exec "$ns" "$KBIN" serve --config "$conf" >>"$klog" 2>&1 &
	STARTED_PID=$!
	record_pid $STARTED_PID
	local i ports
	for i in $(seq 100); do
		if ! kill -0 $STARTED_PID 2>/dev/null; then
			log "e2e: kindling serve --config $conf exited:"
			tail -n 40 "$klog" >&2
			return 1
		fi
		if ip netns exec "$ns" curl -sf -o /dev/null "$base/boot.ipxe"; then
			ports=$(ip netns exec "$ns" ss -Hlun | awk '{print $4}')
			if [ "$E2E_PROXY" = dnsmasq ] || {
				grep -q ':67$' <<<"$ports" && grep -q ':4011$' <<<"$ports" &&
					{ [ "$E2E_BREAK" = tftp ] || grep -q ':69$' <<<"$ports"; }
			}; then
				return 0
			fi
		fi
		sleep 0.1
	done
	log "e2e: kindling serve --config $conf not ready after 10 s; UDP sockets in $ns:"
	ip netns exec "$ns" ss -Hlunp >&2 || true
	tail -n 40 "$klog" >&2
	return 1
}

# SIGTERM to one process this harness started (by PID), SIGKILL after 10 s.
stop_pid() { # <pid>
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------
# KVM: /dev/kvm can exist and still be unable to run firmware (a nested PVM pauses QEMU with
# an emulation failure). Probe both firmware kinds briefly before trusting it.

probe_kvm() {
	[ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] || {
		KVM_WHY="no usable /dev/kvm"
		return 1
	}
	local p=$WORK/kvm-probe
	mkdir -p "$p"
	cp "$OVMF_VARS" "$p/vars.fd"
	local common=(-machine q35 -accel kvm -cpu host,-arch-capabilities -m 256 -smp 1 -nodefaults
		-nographic -no-reboot -monitor none)
	# BIOS + iPXE ROM with a NIC that has no peer: nothing leaves it.
	timeout 10 qemu-system-x86_64 "${common[@]}" -serial "file:$p/bios.log" \
		-device virtio-net-pci,mac=52:54:00:00:00:01 -boot n </dev/null >"$p/bios.out" 2>&1 &
	local b=$!
	record_pid $b
	timeout 10 qemu-system-x86_64 "${common[@]}" -serial "file:$p/uefi.log" \
		-drive "if=pflash,format=raw,readonly=on,file=$OVMF_CODE" -drive "if=pflash,format=raw,file=$p/vars.fd" \
		-device virtio-net-pci,mac=52:54:00:00:00:02,romfile= </dev/null >"$p/uefi.out" 2>&1 &
	local u=$!
	record_pid $u
	# Decided as soon as each probe shows firmware progress, or an emulation failure / exit.
	# A hang (QEMU pauses instead of exiting) counts as failure after 6 s.
	local i bios=pending uefi=pending
	for i in $(seq 60); do
		if [ $bios = pending ]; then
			if grep -aq 'Configuring\|Open Source Network Boot Firmware' "$p/bios.log" 2>/dev/null; then
				bios=ok
			elif grep -aqi 'emulation failure\|internal error\|assertion' "$p/bios.out" || ! kill -0 $b 2>/dev/null; then
				bios=bad
			fi
		fi
		if [ $uefi = pending ]; then
			if grep -aq 'BdsDxe\|PXEv4' "$p/uefi.log" 2>/dev/null; then
				uefi=ok
			elif grep -aqi 'emulation failure\|internal error\|assertion' "$p/uefi.out" || ! kill -0 $u 2>/dev/null; then
				uefi=bad
			fi
		fi
		# Both must work (one accelerator for all boots): one failure decides.
		[ $bios = bad ] || [ $uefi = bad ] && break
		[ $bios = ok ] && [ $uefi = ok ] && break
		sleep 0.1
	done
	kill -TERM $b $u 2>/dev/null || true
	wait $b $u 2>/dev/null || true
	if [ $bios = ok ] && [ $uefi = ok ]; then return 0; fi
	KVM_WHY="KVM cannot run firmware here (bios: $bios, uefi: $uefi; $(grep -aho 'emulation failure\|failed to set MSR[^:]*' "$p"/*.out 2>/dev/null | sort -u | tr '\n' ' '))"
	return 1
}

choose_accel() {
	case $E2E_ACCEL in
	tcg) ACCEL=tcg ;;
	kvm) ACCEL=kvm ;;
	auto)
		KVM_WHY=""
		if probe_kvm; then ACCEL=kvm; else ACCEL=tcg; fi
		;;
	*) die "E2E_ACCEL must be auto, tcg or kvm" ;;
	esac
	if [ $ACCEL = kvm ]; then
		ACCEL_ARGS=(-accel kvm -cpu host,-arch-capabilities)
		BOOT_TIMEOUT=${BOOT_TIMEOUT:-60}
	else
		ACCEL_ARGS=(-accel tcg)
		BOOT_TIMEOUT=${BOOT_TIMEOUT:-150}
	fi
}

# ---------------------------------------------------------------------------------------
# Virtual machines

# Serial text that means the boot is over and has failed: stop QEMU at once.
FAIL_PATTERN='E2E-BOOT-FAIL|No bootable device|No bootable option|BdsDxe: failed to load|Kernel panic|No more network devices|Could not boot|Shell> |Press any key to return to the menu'
# The same for a VM with a boot disk (start_vm_disk): iPXE prints "No more network devices"
# on its way back to SeaBIOS after a local-boot `exit`, and SeaBIOS then boots the disk.
DISK_FAIL_PATTERN='E2E-BOOT-FAIL|No bootable device|No bootable option|BdsDxe: failed to load|Kernel panic|Could not boot|Shell> |Press any key to return to the menu'

declare -A VM_PID VM_T0 VM_SERIAL VM_END VM_SECS VM_PHASES VM_RC VM_FAIL
start_vm() { # <name> <tap> <mac> <bios|uefi> <ipxe|edk2> [extra qemu args]
	local name=$1 tap=$2 mac=$3 fw=$4 nic=$5
	shift 5
	local dir=$OUT
	local args=(-machine q35 "${ACCEL_ARGS[@]}" -m 512 -smp 1 -nodefaults -nographic -no-reboot
		-monitor none -serial "file:$dir/$name.serial"
		-netdev "tap,id=n0,ifname=$tap,script=no,downscript=no")
	local dev="virtio-net-pci,netdev=n0,mac=$mac,bootindex=1"
	[ "$nic" = edk2 ] && dev="$dev,romfile="
	args+=(-device "$dev")
	if [ "$fw" = uefi ]; then
		cp "$OVMF_VARS" "$dir/$name.vars.fd"
		args+=(-drive "if=pflash,format=raw,readonly=on,file=$OVMF_CODE"
			-drive "if=pflash,format=raw,file=$dir/$name.vars.fd")
	else
		args+=(-boot n)
	fi
	args+=("$@")
	: >"$dir/$name.serial"
	ip netns exec "$NS_LAN" timeout "$BOOT_TIMEOUT" qemu-system-x86_64 "${args[@]}" \
		</dev/null >"$dir/$name.qemu.out" 2>&1 &
	VM_PID[$name]=$!
	record_pid $!
	VM_T0[$name]=$(date +%s.%N)
	VM_SERIAL[$name]=$dir/$name.serial
	VM_FAIL[$name]=$FAIL_PATTERN
}

# A raw disk whose MBR prints E2E-LOCAL-DISK on COM1 and then ends QEMU through the
# isa-debug-exit device (QEMU's exit status is (value << 1) | 1 = 1). The boot sector,
# loaded at 0000:7c00:
#   00 fa        cli
#   01 fc        cld
#   02 31 c0     xor ax, ax
#   04 8e d8     mov ds, ax          ; lodsb reads ds:si, whatever SeaBIOS left in ds
#   06 ba f8 03  mov dx, 0x3f8       ; COM1 data port
#   09 be 1b 7c  mov si, 0x7c1b      ; the message
#   0c ac        lodsb
#   0d 84 c0     test al, al
#   0f 74 03     jz 0x14
#   11 ee        out dx, al
#   12 eb f8     jmp 0x0c
#   14 b0 00     mov al, 0
#   16 e6 f4     out 0xf4, al        ; isa-debug-exit,iobase=0xf4: QEMU exits with status 1
#   18 f4        hlt
#   19 eb fe     jmp $
#   1b "E2E-LOCAL-DISK\r\n", zeros up to the signature 55 aa at 510.
write_local_disk() { # <file>
	local f=$1
	printf '\xfa\xfc\x31\xc0\x8e\xd8\xba\xf8\x03\xbe\x1b\x7c\xac\x84\xc0\x74\x03\xee\xeb\xf8\xb0\x00\xe6\xf4\xf4\xeb\xfe' >"$f"
	printf 'E2E-LOCAL-DISK\r\n' >>"$f"
	truncate -s 510 "$f"
	printf '\x55\xaa' >>"$f"
	truncate -s 1M "$f"
}

# A BIOS VM (SeaBIOS + iPXE ROM) with a boot disk after the NIC: when iPXE returns to
# SeaBIOS (a local-boot `exit`), SeaBIOS boots the disk. The disk is shared by every boot
# of the machine; QEMU opens it read-only (`readonly=on`: nothing writes to it).
start_vm_disk() { # <name> <tap> <mac> <disk image>
	local name=$1
	start_vm "$1" "$2" "$3" bios ipxe \
		-drive "if=none,id=d0,format=raw,readonly=on,file=$4" -device virtio-blk-pci,drive=d0,bootindex=2 \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04
	VM_FAIL[$name]=$DISK_FAIL_PATTERN
}

# Waits for all named VMs together. Sets VM_END[name] = exited | stopped (failure text on the
# serial console, or the end of a good boot, QEMU stopped at once) | timeout, VM_RC (the exit
# status of timeout + QEMU: 124 on the timeout, 1 after the local disk's isa-debug-exit),
# VM_SECS and VM_PHASES (first sighting of each boot phase, seconds since that QEMU started).
PHASES=("net:Configuring|Start PXE|Start HTTP" "script:boot\.ipxe|E2E alternate menu|menu\.ipxe"
	"linux:E2E-INIT-START" "ok:E2E-BOOT-OK" "disk:E2E-LOCAL-DISK" "grub:Welcome to GRUB")
wait_vms() { # <name>...
	local name i pending=("$@")
	declare -A seen=() okat=()
	for name in "$@"; do VM_PHASES[$name]=""; done
	while [ ${#pending[@]} -gt 0 ]; do
		local still=()
		for name in "${pending[@]}"; do
			local pid=${VM_PID[$name]} serial=${VM_SERIAL[$name]} end=""
			for i in "${!PHASES[@]}"; do
				[ -n "${seen[$name.$i]:-}" ] && continue
				if grep -aqE "${PHASES[$i]#*:}" "$serial"; then
					seen[$name.$i]=1
					VM_PHASES[$name]+=" ${PHASES[$i]%%:*}@$(elapsed "${VM_T0[$name]}")"
				fi
			done
			if ! kill -0 "$pid" 2>/dev/null; then
				end=exited
			elif grep -aqE "${VM_FAIL[$name]:-$FAIL_PATTERN}" "$serial"; then
				end=stopped
			elif [ -n "${seen[$name.3]:-}" ]; then
				# E2E-BOOT-OK: poweroff -f follows at once; allow 5 s for it.
				okat[$name]=${okat[$name]:-$(date +%s)}
				[ $(($(date +%s) - ${okat[$name]})) -ge 5 ] && end=stopped
			elif [ -n "${seen[$name.4]:-}" ]; then
				# E2E-LOCAL-DISK: the boot sector's isa-debug-exit ends QEMU at once; allow 2 s.
				okat[$name]=${okat[$name]:-$(date +%s)}
				[ $(($(date +%s) - ${okat[$name]})) -ge 2 ] && end=stopped
			fi
			if [ -z "$end" ]; then
				still+=("$name")
				continue
			fi
			VM_SECS[$name]=$(elapsed "${VM_T0[$name]}")
			VM_PHASES[$name]=${VM_PHASES[$name]# }
			kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
			local rc=0
			wait "$pid" 2>/dev/null || rc=$?
			[ "$end" = exited ] && [ "$rc" = 124 ] && end=timeout
			VM_END[$name]=$end
			VM_RC[$name]=$rc
		done
		pending=("${still[@]}")
		[ ${#pending[@]} -gt 0 ] && sleep 0.1
	done
	return 0
}

# ---------------------------------------------------------------------------------------
# Assertions: every failed check appends to ERRS; a scenario passes when ERRS is empty.

ERRS=()
err() { ERRS+=("$*"); }

klog_slice() { tail -c +$((KLOG_OFF + 1)) "$KLOG"; }

# Not `klog_slice | grep -q`: with pipefail, grep -q quitting early on a long log makes
# tail die of SIGPIPE and the pipeline fail although the line is there.
expect_klog() { # <ERE> <what>
	grep -Eq -- "$1" <(klog_slice) || err "kindling log lacks $2 (/$1/)"
}
reject_klog() { # <ERE> <what>
	if grep -Eq -- "$1" <(klog_slice); then err "kindling log has $2 (/$1/)"; fi
}
# One line of the slice matches every ERE, in any order (the fields of one request line,
# e.g. a reason whose place among them is not fixed). awk reads to the end: no SIGPIPE.
expect_klog_line() { # <what> <ERE>...
	local what=$1
	shift
	PATS="$(printf '%s\n' "$@")" awk -v n=$# '
		BEGIN { split(ENVIRON["PATS"], p, "\n") }
		{ for (i = 1; i <= n; i++) if ($0 !~ p[i]) next; found = 1 }
		END { exit !found }' <(klog_slice) || err "kindling log lacks $what (no line matches all of$(printf ' /%s/' "$@"))"
}
expect_dhcp() { # <ERE> <what>
	grep -Eq -- "$1" "$OUT/dhcp-summary.txt" || err "DHCP/TFTP capture lacks $2 (/$1/)"
}
reject_dhcp() {
	if grep -Eq -- "$1" "$OUT/dhcp-summary.txt"; then err "DHCP/TFTP capture has $2 (/$1/)"; fi
}

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# A VM that must have booted its profile: marker with the expected sha256, the tag.
expect_boot() { # <vm> <mac> <ignition file> <tag>
	local vm=$1 mac=$2 file=$3 tag=$4 serial=${VM_SERIAL[$1]}
	local want got
	want="E2E-BOOT-OK $mac $(sha_of "$file")"
	got=$(grep -ao 'E2E-BOOT-OK [0-9a-f:]* [0-9a-f]*' "$serial" | head -n1 || true)
	if [ -z "$got" ]; then
		err "$vm: no E2E-BOOT-OK on the serial console (QEMU ${VM_END[$vm]} after ${VM_SECS[$vm]}s)"
	elif [ "$got" != "$want" ]; then
		err "$vm: got '$got', want '$want' (sha256 of ${file##*/})"
	fi
	grep -aq "E2E-TAG $tag" "$serial" || err "$vm: serial lacks 'E2E-TAG $tag' (booted the wrong profile?)"
}

# Kindling's HTTP trail for a machine booted via /boot.ipxe -> /ipxe -> its profile.
expect_trail() { # <mac> <profile>
	local h
	h=$(hyp "$1")
	expect_klog 'path="/boot.ipxe".* status=200' "GET /boot.ipxe 200"
	expect_klog "path=\"/ipxe\" query=\"[^\"]*mac=${h}[^\"]*\".* profile=\"?$2\"? .*status=200" "GET /ipxe?mac=$h -> profile $2, 200"
	expect_klog 'path="/assets/vmlinuz".* status=200' "GET /assets/vmlinuz 200"
	expect_klog 'path="/assets/initrd.img".* status=200' "GET /assets/initrd.img 200"
	expect_klog "path=\"/ignition\" query=\"mac=$h\".* status=200" "GET /ignition?mac=$h 200"
}

# The site server gave the address, Kindling (or the stand-in) only boot information.
expect_dhcp_roles() { # <mac> [ERE of the proxies' addresses, default 10.99.0.1]
	local proxies=${2:-10\.99\.0\.1}
	expect_dhcp "10\.99\.0\.2:67 -> .* (OFFER|ACK) .*mac=$1 yiaddr=10\.99\.0\.1[0-9][0-9]" "the site server's address offer to $1"
	reject_dhcp "10\.99\.0\.2:67 -> .* mac=$1 .*file=" "a boot file from the site server"
	reject_dhcp "$proxies:(67|4011) -> .* mac=$1 .*yiaddr=" "an address from the proxy"
}

# ---------------------------------------------------------------------------------------
# Scenarios. Each sets ERRS (empty: PASS) or SKIP_WHY.

sc_bios-ipxe() {
	start_vm vm tap0 $MAC_A bios ipxe
	wait_vms vm
	capture_stop
	expect_boot vm $MAC_A "$WORK/data/ignition/machine-a.ign" profile-a
	expect_trail $MAC_A e2e-a
	expect_dhcp "10\.99\.0\.1:67 -> .* OFFER .*mac=$MAC_A .*siaddr=10\.99\.0\.1 .*file='$BASE/boot.ipxe'" "the proxy offer of $BASE/boot.ipxe"
	expect_dhcp_roles $MAC_A
	reject_dhcp 'TFTP RRQ' "a TFTP download (iPXE ROM must go straight to HTTP)"
}

sc_uefi-ipxe() {
	start_vm vm tap0 $MAC_A uefi ipxe
	wait_vms vm
	capture_stop
	expect_boot vm $MAC_A "$WORK/data/ignition/machine-a.ign" profile-a
	expect_trail $MAC_A e2e-a
	expect_dhcp "DISCOVER .*mac=$MAC_A .*opt93=7 .*opt77='.?iPXE'" "an iPXE EFI DISCOVER (arch 7, user class iPXE)"
	expect_dhcp "10\.99\.0\.1:67 -> .* OFFER .*mac=$MAC_A .*file='$BASE/boot.ipxe'" "the proxy offer of $BASE/boot.ipxe"
	expect_dhcp_roles $MAC_A
	reject_dhcp 'TFTP RRQ' "a TFTP download (iPXE EFI ROM must go straight to HTTP)"
}

sc_uefi-pxe() {
	# romfile= : no iPXE ROM, OVMF's own VirtioNetDxe + PxeBcDxe do the first stage.
	start_vm vm tap0 $MAC_A uefi edk2 \
		-fw_cfg name=opt/org.tianocore/IPv6PXESupport,string=n
	wait_vms vm
	capture_stop
	expect_boot vm $MAC_A "$WORK/data/ignition/machine-a.ign" profile-a
	expect_trail $MAC_A e2e-a
	expect_dhcp "DISCOVER .*mac=$MAC_A .*opt60='PXEClient:Arch:00007[^']*' opt93=7$" "EDK2's own PXE DISCOVER (arch 7, no user class)"
	expect_dhcp "-> 10\.99\.0\.1:4011 REQUEST .*mac=$MAC_A" "EDK2's boot-server REQUEST to port 4011"
	expect_dhcp "10\.99\.0\.1:4011 -> .* ACK .*mac=$MAC_A .*file='snponly.efi'" "the 4011 ACK naming snponly.efi"
	expect_dhcp "TFTP RRQ 'snponly.efi'" "the TFTP download of snponly.efi"
	grep -aq 'iPXE' "${VM_SERIAL[vm]}" || err "serial shows no iPXE (snponly.efi did not run)"
	if [ "$E2E_PROXY" = kindling ]; then
		expect_klog "mac=$MAC_A [^}]*port=4011\\}.* proxy DHCP reply .*file=snponly\\.efi" "the 4011 proxy DHCP reply with snponly.efi"
		expect_klog 'tftp_transfer\{[^}]*file=snponly\.efi[^}]*\}:.* tftp transfer finished bytes=[1-9].*outcome=completed' "the finished TFTP transfer of snponly.efi"
	fi
	expect_dhcp_roles $MAC_A
	UEFI_PXE_RAN=1
}

sc_two-machines() {
	start_vm vm-a tap0 $MAC_A bios ipxe
	start_vm vm-b tap1 $MAC_B bios ipxe
	wait_vms vm-a vm-b
	capture_stop
	local a=$WORK/data/ignition/machine-a.ign b=$WORK/data/ignition/machine-b.ign
	[ "$(sha_of "$a")" != "$(sha_of "$b")" ] || err "test data: machine-a.ign and machine-b.ign are identical"
	expect_boot vm-a $MAC_A "$a" profile-a
	expect_boot vm-b $MAC_B "$b" profile-b
	expect_trail $MAC_A e2e-a
	expect_trail $MAC_B e2e-b
	expect_dhcp_roles $MAC_A
	expect_dhcp_roles $MAC_B
}

# Two machines share one profile whose kernel path and arguments are templates: each
# boots with the e2e.tag of its own group's metadata (one profile, no per-machine copy);
# the initrd prints the tag it was given.
sc_templated-args() {
	local d=$WORK/data m
	cat >"$d/profiles/e2e-templated.json" <<-EOF
		{
		  "id": "e2e-templated",
		  "ignition_id": "machine-st.ign",
		  "boot": {
		    "kernel": "/assets/{{.kernel}}",
		    "initrd": [ "--name initrd.img /assets/initrd.img" ],
		    "args": [ "initrd=initrd.img", "console=ttyS0", "quiet", "panic=-1", "no_timer_check",
		              "e2e.tag={{.tag}}", "ignition.firstboot",
		              "ignition.platform.id=metal", "ignition.config.url=$BASE/ignition?mac=\${mac:hexhyp}" ]
		  }
		}
	EOF
	for m in s t; do
		local mac=$MAC_S
		[ $m = t ] && mac=$MAC_T
		cat >"$d/groups/machine-$m.json" <<-EOF
			{ "id": "machine-$m", "profile": "e2e-templated", "selector": { "mac": "$mac" },
			  "metadata": { "tag": "templated-$m", "kernel": "vmlinuz" } }
		EOF
	done
	ign machine-st >"$d/ignition/machine-st.ign"
	kindling_reload || return 0
	start_vm vm-s tap0 $MAC_S bios ipxe
	start_vm vm-t tap1 $MAC_T bios ipxe
	wait_vms vm-s vm-t
	capture_stop
	expect_boot vm-s $MAC_S "$d/ignition/machine-st.ign" templated-s
	expect_boot vm-t $MAC_T "$d/ignition/machine-st.ign" templated-t
	for m in s t; do
		local mac=$MAC_S
		[ $m = t ] && mac=$MAC_T
		expect_klog "path=\"/ipxe\" query=\"[^\"]*mac=$(hyp $mac)[^\"]*\".* profile=\"?e2e-templated\"? .*status=200" "GET /ipxe?mac=$(hyp $mac) -> profile e2e-templated, 200"
	done
	expect_dhcp_roles $MAC_S
	expect_dhcp_roles $MAC_T
}

sc_mac-route() {
	start_vm vm tap0 $MAC_R bios ipxe
	wait_vms vm
	capture_stop
	expect_boot vm $MAC_R "$WORK/data/assets/alt-menu.ign" alt-menu
	expect_dhcp "10\.99\.0\.1:67 -> .* OFFER .*mac=$MAC_R .*file='$BASE/assets/menu.ipxe'" "the proxy offer of the per-MAC menu URL"
	expect_klog 'path="/assets/menu.ipxe".* status=200' "GET /assets/menu.ipxe 200"
	expect_klog 'path="/assets/alt-menu.ign".* status=200' "GET /assets/alt-menu.ign 200"
	reject_klog 'path="/boot.ipxe"' "GET /boot.ipxe (the DHCP rule should have routed around it)"
	if [ "$E2E_PROXY" = kindling ]; then
		expect_klog "mac=$MAC_R .* proxy DHCP reply .*file=$BASE/assets/menu.ipxe .*rule=alt-menu" "the proxy DHCP reply routed by rule alt-menu"
	fi
	reject_klog "mac=$(hyp $MAC_R)" "a request for machine-r's own profile"
	expect_dhcp_roles $MAC_R
}

sc_unknown-mac() {
	start_vm vm tap0 $MAC_U bios ipxe
	wait_vms vm
	capture_stop
	local h
	h=$(hyp $MAC_U)
	if grep -aq 'E2E-BOOT-OK' "${VM_SERIAL[vm]}"; then err "a MAC without a group booted"; fi
	[ "${VM_END[vm]}" = stopped ] || err "QEMU was not stopped on a boot failure (${VM_END[vm]} after ${VM_SECS[vm]}s)"
	awk -v s="${VM_SECS[vm]}" 'BEGIN { exit !(s < 60) }' || err "failure took ${VM_SECS[vm]}s (not fast)"
	expect_klog "WARN .*path=\"/ipxe\" query=\"[^\"]*mac=${h}[^\"]*\".* status=404 .*reason=\"no group matched labels \{[^}]*mac=$MAC_U" \
		"the 404 for /ipxe with reason \"no group matched labels {...mac=$MAC_U...}\""
	reject_klog 'path="/ignition"' "an Ignition request"
	# Recorded as discovered: its MAC, the address it asked from and the architecture its
	# iPXE sent; with Kindling's proxy DHCP, also the firmware its DHCP requests showed.
	local rc=0 fw='[a-z_]+'
	[ "$E2E_PROXY" = kindling ] && fw='(bios_pxe|ipxe)'
	ip netns exec "$NS_SRV" "$KBIN" --config "$WORK/kindling.toml" machines --server "$ADMIN" \
		--token-file "$WORK/admin.token" --discovered >"$OUT/discovered.txt" 2>&1 || rc=$?
	[ $rc = 0 ] || err "kindling machines --discovered exited $rc: $(head -n3 "$OUT/discovered.txt" | tr '\n' ' ')"
	grep -Eq "^$MAC_U +10\.99\.0\.[0-9]+ +i386 +$fw " "$OUT/discovered.txt" ||
		err "kindling machines --discovered lacks $MAC_U with its address, arch i386 and firmware: $(cat "$OUT/discovered.txt")"
}

sc_uefi-http() {
	if [ "$E2E_PROXY" != kindling ]; then
		SKIP_WHY="needs Kindling's proxy DHCP (E2E_PROXY=$E2E_PROXY)"
		return
	fi
	# Debian's OVMF has HttpBootDxe (docs/uefi-http-boot.md). PXE off (fw_cfg knobs), so
	# the first boot option of the NIC is "UEFI HTTPv4".
	start_vm vm tap0 $MAC_A uefi edk2 \
		-fw_cfg name=opt/org.tianocore/IPv4PXESupport,string=n \
		-fw_cfg name=opt/org.tianocore/IPv6PXESupport,string=n \
		-fw_cfg name=opt/org.tianocore/IPv6Support,string=n
	wait_vms vm
	capture_stop
	expect_boot vm $MAC_A "$WORK/data/ignition/machine-a.ign" profile-a
	expect_dhcp "DISCOVER .*mac=$MAC_A .*opt60='HTTPClient:Arch:00016[^']*' opt93=16" "EDK2's HTTP Boot DISCOVER (HTTPClient, arch 16)"
	expect_dhcp "10\.99\.0\.1:67 -> .* OFFER .*mac=$MAC_A .*file='$BASE/tftp/ipxe.efi' .*opt60='HTTPClient'" "the proxy offer of $BASE/tftp/ipxe.efi"
	expect_klog 'path="/tftp/ipxe.efi".* status=200' "GET /tftp/ipxe.efi 200"
	expect_trail $MAC_A e2e-a
	reject_dhcp 'TFTP RRQ' "a TFTP download (HTTP Boot must not use TFTP)"
	expect_dhcp_roles $MAC_A
}

# --- fcos-pull: a profile written by `kindling fcos pull` against a local stand-in of the
# Fedora CoreOS builds host (the fcos-fixture example, serving the test kernel and initrd
# as the live kernel and initramfs, signed by a key it generates).

fcos_fixture_start() { # <release>: starts a fixture in the server netns; sets FX_URL
	local rel=$1
	ip netns exec "$NS_SRV" "$FX_BIN" --kernel "$WORK/data/assets/vmlinuz" \
		--initramfs "$WORK/data/assets/initrd.img" --release "$rel" \
		--keyring-out "$WORK/fcos/fixture-$rel.asc" \
		>"$OUT/fcos-fixture-$rel.out" 2>"$OUT/fcos-fixture-$rel.err" &
	FX_PID=$!
	record_pid $FX_PID
	FX_URL=""
	local i
	for i in $(seq 300); do
		FX_URL=$(head -n1 "$OUT/fcos-fixture-$rel.out" 2>/dev/null || true)
		[ -n "$FX_URL" ] && return 0
		kill -0 $FX_PID 2>/dev/null || break
		sleep 0.1
	done
	err "fcos fixture ($rel) did not print its URL: $(tail -n3 "$OUT/fcos-fixture-$rel.err" 2>/dev/null)"
	return 1
}
fcos_fixture_stop() {
	kill -TERM "$FX_PID" 2>/dev/null || true
	wait "$FX_PID" 2>/dev/null || true
}

fcos_pull() { # <release> <log name>: pull from a fixture serving <release>
	local rel=$1 name=$2 rc=0 keyring=$WORK/fcos/fixture-$1.asc
	fcos_fixture_start "$rel" || return 1
	# E2E_BREAK=fcos-keyring: the second pull trusts only the first fixture's key.
	[ "$E2E_BREAK" = fcos-keyring ] && [ "$rel" = $FCOS_R2 ] && keyring=$WORK/fcos/fixture-$FCOS_R1.asc
	ip netns exec "$NS_SRV" "$KBIN" --config "$WORK/kindling.toml" --data-dir "$WORK/data" fcos pull --stream stable \
		--base-url "$FX_URL" --keyring "$keyring" --server-url "$BASE" \
		>"$OUT/$name.out" 2>&1 || rc=$?
	fcos_fixture_stop
	if [ $rc != 0 ]; then
		err "kindling fcos pull ($rel) exited $rc: $(tail -n3 "$OUT/$name.out" | tr '\n' ' ')"
		return 1
	fi
}

# Checks the profile the pull wrote; prints its problems (empty: fine).
fcos_profile_check() { # <release> <operator args (space-separated, must be kept)>
	python3 - "$WORK/data/profiles/fedora-coreos-stable.json" "$1" "$BASE" "$WORK/data" "$2" <<-'PY'
		import hashlib, json, sys
		path, rel, base, data, extra = sys.argv[1:6]
		p = json.load(open(path))
		b = p.get("boot", {})
		pre = f"/assets/fedora-coreos/stable/{rel}/"
		bad = []
		def same(url, src):
		    try:
		        a = hashlib.sha256(open(data + url, "rb").read()).hexdigest()
		    except OSError as e:
		        return bad.append(f"{url}: {e}")
		    if a != hashlib.sha256(open(src, "rb").read()).hexdigest():
		        bad.append(f"{url} differs from {src}")
		if p.get("id") != "fedora-coreos-stable":
		    bad.append(f"id is {p.get('id')!r}")
		k = b.get("kernel", "")
		if not k.startswith(pre):
		    bad.append(f"kernel {k!r} is not under {pre}")
		else:
		    same(k, data + "/assets/vmlinuz")
		ini = b.get("initrd", [])
		if len(ini) < 1 or not ini[0].startswith("--name main " + pre):
		    bad.append(f"initrd {ini!r} lacks '--name main {pre}...'")
		else:
		    same(ini[0].split()[-1], data + "/assets/initrd.img")
		args = b.get("args", [])
		want = ["initrd=main", "ignition.firstboot", "ignition.platform.id=metal",
		        f"ignition.config.url={base}/ignition?mac=${{mac:hexhyp}}"] + extra.split()
		for w in want:
		    if w not in args:
		        bad.append(f"args lack {w!r}")
		if not any(a.startswith(f"coreos.live.rootfs_url={base}{pre}") for a in args):
		    bad.append(f"args lack coreos.live.rootfs_url={base}{pre}...")
		stale = [a for a in args + ini if "/assets/fedora-coreos/stable/" in a and pre not in a]
		if stale:
		    bad.append(f"arguments of an older release remain: {stale}")
		for x in bad:
		    print(x)
	PY
}

sc_fcos-pull() {
	if [ -z "$FX_BIN" ]; then
		SKIP_WHY="no fcos-fixture binary"
		return
	fi
	mkdir -p "$WORK/fcos"
	local prof=$WORK/data/profiles/fedora-coreos-stable.json p
	local extra="console=ttyS0 quiet panic=-1 no_timer_check e2e.tag=fcos-pull"
	# 1. First pull: a new profile for release 1.
	fcos_pull $FCOS_R1 fcos-pull-1 || return 0
	cp "$prof" "$OUT/profile-after-pull-1.json"
	while read -r p; do err "profile after the first pull: $p"; done < <(fcos_profile_check $FCOS_R1 "")
	grep -q "switched profile fedora-coreos-stable from (none) to $FCOS_R1" "$OUT/fcos-pull-1.out" ||
		err "first pull did not report the switch to $FCOS_R1: $(tr '\n' ' ' <"$OUT/fcos-pull-1.out")"
	# 2. The operator adds what this machine needs: an Ignition and kernel arguments.
	python3 - "$prof" $extra <<-'PY'
		import json, sys
		path, extra = sys.argv[1], sys.argv[2:]
		p = json.load(open(path))
		p["ignition_id"] = "machine-f.ign"
		p["boot"]["args"] += extra
		json.dump(p, open(path, "w"), indent=2)
	PY
	# 3. A newer release appears upstream: the next pull switches the profile and keeps
	#    the operator's additions.
	cp "$prof" "$OUT/profile-before-pull-2.json"
	if ! fcos_pull $FCOS_R2 fcos-pull-2; then
		# A refused pull must leave the profile as it was, byte for byte.
		cmp -s "$prof" "$OUT/profile-before-pull-2.json" || err "the refused pull changed $prof"
		return 0
	fi
	cp "$prof" "$OUT/profile-after-pull-2.json"
	grep -q "switched profile fedora-coreos-stable from $FCOS_R1 to $FCOS_R2" "$OUT/fcos-pull-2.out" ||
		err "second pull did not report the switch $FCOS_R1 -> $FCOS_R2: $(tr '\n' ' ' <"$OUT/fcos-pull-2.out")"
	while read -r p; do err "profile after the second pull: $p"; done < <(fcos_profile_check $FCOS_R2 "$extra")
	python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])).get("ignition_id") != "machine-f.ign")' "$prof" ||
		err "the second pull dropped the operator's ignition_id"
	[ -d "$WORK/data/assets/fedora-coreos/stable/$FCOS_R1" ] || err "release $FCOS_R1 was not kept (--keep 2)"
	# 4. Machine F's group points at the profile; SIGHUP reloads (the harness runs with
	#    [reload] watch = false).
	cat >"$WORK/data/groups/machine-f.json" <<-EOF
		{ "id": "machine-f", "name": "E2E machine f (Fedora CoreOS stand-in)",
		  "profile": "fedora-coreos-stable", "selector": { "mac": "$MAC_F" } }
	EOF
	kindling_reload || return 0
	start_vm vm tap0 $MAC_F bios ipxe
	wait_vms vm
	capture_stop
	expect_boot vm $MAC_F "$WORK/data/ignition/machine-f.ign" fcos-pull
	local h pre kernel initrd
	h=$(hyp $MAC_F)
	pre=/assets/fedora-coreos/stable/$FCOS_R2/
	kernel=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["boot"]["kernel"])' "$prof")
	initrd=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["boot"]["initrd"][0].split()[-1])' "$prof")
	expect_klog 'path="/boot.ipxe".* status=200' "GET /boot.ipxe 200"
	expect_klog "path=\"/ipxe\" query=\"[^\"]*mac=${h}[^\"]*\".* profile=\"?fedora-coreos-stable\"? .*status=200" "GET /ipxe?mac=$h -> profile fedora-coreos-stable, 200"
	expect_klog "path=\"${kernel//./\\.}\".* status=200" "GET $kernel 200 (the pulled kernel)"
	expect_klog "path=\"${initrd//./\\.}\".* status=200" "GET $initrd 200 (the pulled initramfs)"
	expect_klog "path=\"/ignition\" query=\"mac=$h\".* status=200" "GET /ignition?mac=$h 200"
	reject_klog "path=\"/assets/(vmlinuz|initrd\\.img)\"" "a request for the harness's own /assets/vmlinuz or initrd.img"
	reject_klog "path=\"/assets/fedora-coreos/stable/$FCOS_R1/" "a request for the older release $FCOS_R1"
	[[ "$kernel" == "$pre"* ]] || err "profile kernel $kernel is not under $pre"
	[[ "$initrd" == "$pre"* ]] || err "profile initrd $initrd is not under $pre"
	expect_dhcp_roles $MAC_F
}

# SIGHUP to kindling serve, then wait for its "reloaded (SIGHUP" line.
kindling_reload() {
	local n
	n=$(klog_slice | grep -c 'reloaded (SIGHUP' || true)
	kill -HUP "$KPID"
	local i
	for i in $(seq 100); do
		[ "$(klog_slice | grep -c 'reloaded (SIGHUP' || true)" -gt "$n" ] && return 0
		sleep 0.1
	done
	err "kindling serve did not log 'reloaded (SIGHUP' within 10 s"
	return 1
}

# Kindling's log has lines matching these EREs in this order (each after the previous).
expect_klog_order() { # <what> <ERE>...
	local what=$1
	shift
	local missing
	missing=$(first_missing "$(klog_slice)" "$@")
	[ -z "$missing" ] || err "kindling log lacks $what: nothing matches /$missing/ after the earlier steps"
}

# --- menu-cache: a MAC routed to /menu.ipxe boots a catalog entry whose kernel and initrd
# come through Kindling's pull-through cache from a fixture upstream (python3 http.server
# on 10.99.0.1:8081 in the server netns; its request log counts the GETs).

UP_PID=""
upstream_start() {
	ip netns exec "$NS_SRV" python3 -u -m http.server 8081 --bind $SRV_IP --directory "$WORK/upstream/" \
		>"$OUT/upstream.log" 2>&1 &
	UP_PID=$!
	record_pid $UP_PID
	local i
	for i in $(seq 100); do
		ip netns exec "$NS_SRV" curl -sf -o /dev/null -I "$UPSTREAM/" && return 0
		sleep 0.1
	done
	err "the fixture upstream did not answer on $UPSTREAM"
	return 1
}
upstream_stop() {
	[ -n "$UP_PID" ] || return 0
	kill -TERM "$UP_PID" 2>/dev/null || true
	wait "$UP_PID" 2>/dev/null || true
	UP_PID=""
}
upstream_gets() { grep -c "\"GET /$1 HTTP" "$OUT/upstream.log" || true; }

expect_upstream_once() { # <when>
	local f n
	for f in vmlinuz initrd.img; do
		n=$(upstream_gets $f)
		[ "$n" = 1 ] || err "$1: the fixture upstream saw $n GETs of /$f, want exactly 1"
	done
}

sc_menu-cache() {
	if [ "$E2E_PROXY" != kindling ]; then
		SKIP_WHY="needs Kindling's proxy DHCP rule and menu (E2E_PROXY=$E2E_PROXY)"
		return
	fi
	upstream_start || return 0
	local ign=$WORK/data/assets/menu-cache.ign
	local kc='path="/cache/e2e-cached/[^/"]+/vmlinuz".* status=200'
	local ic='path="/cache/e2e-cached/[^/"]+/initrd\.img".* status=200'
	# 1. Cold cache: MAC_M is routed to the menu, which boots e2e-cached at once.
	start_vm vm-m tap0 $MAC_M bios ipxe
	wait_vms vm-m
	expect_boot vm-m $MAC_M "$ign" menu-cache
	expect_klog "mac=$MAC_M .* proxy DHCP reply .*file=$BASE/menu.ipxe .*rule=menu-m" "the proxy DHCP reply routed by rule menu-m"
	expect_klog_order "/menu.ipxe, then the cached kernel and initrd (200), then the Ignition" \
		'path="/menu.ipxe".* status=200' "$kc" "$ic" 'path="/assets/menu-cache.ign".* status=200'
	expect_klog "path=\"/menu.ipxe\" query=\"[^\"]*mac=$(hyp $MAC_M)" "the menu request of MAC_M (mac=$(hyp $MAC_M))"
	expect_upstream_once "after the first boot"
	reject_klog 'kindling::cache: download failed' "a failed cache download"
	expect_klog 'kindling::cache: cached file=e2e-cached/[^ ]+/initrd\.img .*verified=true' "the initrd kept in the cache, verified"
	# 2. Warm cache: another routed machine boots the same entry; upstream sees nothing new.
	local off
	off=$(stat -c %s "$KLOG")
	start_vm vm-n tap1 $MAC_N bios ipxe
	wait_vms vm-n
	capture_stop
	expect_boot vm-n $MAC_N "$ign" menu-cache
	local second
	second=$(tail -c +$((off + 1)) "$KLOG")
	grep -Eq "$kc" <<<"$second" || err "second boot: kindling log lacks the cached kernel (/$kc/)"
	grep -Eq "$ic" <<<"$second" || err "second boot: kindling log lacks the cached initrd (/$ic/)"
	expect_upstream_once "after the second boot (warm cache)"
	upstream_stop
	reject_klog 'path="/boot.ipxe"' "GET /boot.ipxe (the DHCP rule should have routed around it)"
	expect_dhcp "10\.99\.0\.1:67 -> .* OFFER .*mac=$MAC_M .*file='$BASE/menu.ipxe'" "the proxy offer of $BASE/menu.ipxe"
	expect_dhcp_roles $MAC_M
	expect_dhcp_roles $MAC_N
	# The timeline of a machine booted through the menu and the cache: the menu is its
	# script stage, the cached files its kernel and initrd (its Ignition came from
	# /assets/, which is not the /ignition stage).
	"$KBIN" --config "$WORK/kindling.toml" machines show $MAC_M >"$OUT/machines-show-m.txt" 2>&1 || true
	grep -Eq 'http script +GET /menu\.ipxe' "$OUT/machines-show-m.txt" || err "timeline of $MAC_M lacks the /menu.ipxe script step (machines-show-m.txt)"
	grep -Eq 'http kernel +GET /cache/' "$OUT/machines-show-m.txt" || err "timeline of $MAC_M lacks the cached kernel (machines-show-m.txt)"
	grep -Eq 'http initrd +GET /cache/' "$OUT/machines-show-m.txt" || err "timeline of $MAC_M lacks the cached initrd (machines-show-m.txt)"
	grep -q '^  => reached initrd' "$OUT/machines-show-m.txt" || err "timeline of $MAC_M does not reach initrd (machines-show-m.txt)"
}

# --- timeline: `kindling machines show MAC` after a boot lists the stages with timestamps,
# and for a MAC without a group the stage it stopped at and why.

# Lines of <text> matching the EREs in this order (each after the previous); prints the
# first ERE with no such line.
first_missing() { # <text> <ERE>...
	local text=$1
	shift
	PATS="$(printf '%s\n' "$@")" awk -v n=$# '
		BEGIN { split(ENVIRON["PATS"], p, "\n"); i = 1 }
		i <= n && $0 ~ p[i] { i++ }
		END { if (i <= n) print p[i] }' <<<"$text"
}

# The boot block of a `machines show` output that has EDK2's TFTP download of snponly.efi
# (the last such block).
tftp_boot() {
	awk '/^boot [0-9]+ of [0-9]+/ { b = ""; t = 0 } { b = b $0 "\n" } / tftp +tftp +RRQ snponly\.efi/ { t = 1 }
		/^  => reached/ && t { last = b } END { printf "%s", last }' "$1"
}

# The last boot block of a `machines show` output.
last_boot() { awk '/^boot [0-9]+ of [0-9]+/ { b = "" } { b = b $0 "\n" } END { printf "%s", b }' "$1"; }

machines_show() { # <mac> <output file>: the journal read directly, then the running server's API
	local rc=0
	"$KBIN" --config "$WORK/kindling.toml" machines show "$1" >"$2" 2>&1 || rc=$?
	[ $rc = 0 ] || err "kindling machines show $1 exited $rc: $(head -n3 "$2" | tr '\n' ' ')"
	rc=0
	# The API is on the admin listener (loopback of the server namespace by default).
	ip netns exec "$NS_SRV" "$KBIN" --config "$WORK/kindling.toml" machines --server "$ADMIN" --token-file "$WORK/admin.token" show "$1" \
		>"$2.api" 2>&1 || rc=$?
	[ $rc = 0 ] || err "kindling machines --server $ADMIN show $1 exited $rc: $(head -n3 "$2.api" | tr '\n' ' ')"
}

sc_timeline() {
	if ! "$KBIN" machines --help >/dev/null 2>&1; then
		SKIP_WHY="this kindling has no 'machines' command yet"
		return
	fi
	if [ "$E2E_PROXY" != kindling ]; then
		SKIP_WHY="the DHCP stages need Kindling's proxy DHCP (E2E_PROXY=$E2E_PROXY)"
		return
	fi
	start_vm vm-a tap0 $MAC_A bios ipxe
	start_vm vm-u tap1 $MAC_U bios ipxe
	wait_vms vm-a vm-u
	capture_stop
	expect_boot vm-a $MAC_A "$WORK/data/ignition/machine-a.ign" profile-a
	if grep -aq 'E2E-BOOT-OK' "${VM_SERIAL[vm-u]}"; then err "a MAC without a group booted"; fi
	sleep 1 # let the journal catch up with the last request
	machines_show $MAC_A "$OUT/machines-show-a.txt"
	machines_show $MAC_U "$OUT/machines-show-u.txt"
	# (mawk has no {n} intervals)
	local ts='^  [0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9][0-9][0-9] +\+[0-9]+\.[0-9][0-9][0-9]s +'
	local f b
	for f in "$OUT/machines-show-a.txt" "$OUT/machines-show-a.txt.api"; do
		b=$(last_boot "$f")
		local missing
		missing=$(first_missing "$b" "${ts}dhcp +dhcp +DISCOVER" "${ts}dhcp +dhcp +OFFER $BASE/boot.ipxe" \
			"${ts}http +script +GET /boot.ipxe +\(200" "${ts}http +script +GET /ipxe +\(200" \
			"${ts}http +kernel +GET /assets/vmlinuz +\(200" "${ts}http +initrd +GET /assets/initrd.img +\(200" \
			"${ts}http +ignition +GET /ignition +\(200" '^  => reached ignition$')
		[ -z "$missing" ] || err "${f##*/}: the last boot of $MAC_A lacks, in order, /$missing/"
		if grep -q 'FAILED' <<<"$b"; then err "${f##*/}: the last boot of $MAC_A has a FAILED step"; fi
		if grep -Eq "${ts}tftp" <<<"$b"; then err "${f##*/}: the last BIOS iPXE-ROM boot of $MAC_A shows TFTP"; fi
	done
	for f in "$OUT/machines-show-u.txt" "$OUT/machines-show-u.txt.api"; do
		b=$(last_boot "$f")
		grep -Eq "${ts}http +script +FAILED GET /ipxe +\(404.*reason: no group matched labels \{[^}]*mac=$MAC_U" <<<"$b" ||
			err "${f##*/}: the last boot of $MAC_U lacks the FAILED GET /ipxe (404, reason: no group matched ...)"
		grep -Eq "^  => reached script; stopped at script: GET /ipxe: no group matched labels" <<<"$b" ||
			err "${f##*/}: the last boot of $MAC_U does not say it stopped at script because no group matched"
		if grep -Eq "${ts}http +(kernel|initrd|ignition)" <<<"$b"; then err "${f##*/}: $MAC_U got past the script"; fi
	done
	# The uefi-pxe scenario of this run (if it ran): EDK2's DHCP and TFTP come first.
	local pxe=""
	if [ -n "$UEFI_PXE_RAN" ]; then
		pxe=$(tftp_boot "$OUT/machines-show-a.txt")
		if [ -z "$pxe" ]; then
			err "machines-show-a.txt: no boot of $MAC_A with the TFTP download of snponly.efi (uefi-pxe ran before)"
		else
			missing=$(first_missing "$pxe" "${ts}dhcp +dhcp +DISCOVER on port 67 +\(uefi_pxe\)" \
				"${ts}dhcp +dhcp +ACK snponly\.efi" "${ts}tftp +tftp +RRQ snponly\.efi +\([0-9.]+ KiB" \
				"${ts}dhcp +dhcp +OFFER $BASE/boot.ipxe" "${ts}http +script +GET /ipxe +\(200" \
				"${ts}http +kernel +GET /assets/vmlinuz +\(200" "${ts}http +initrd +GET /assets/initrd.img +\(200" \
				"${ts}http +ignition +GET /ignition +\(200" '^  => reached ignition$')
			[ -z "$missing" ] || err "machines-show-a.txt: the uefi-pxe boot of $MAC_A lacks, in order, /$missing/"
		fi
	fi
	# The timelines are printed under the scenario's result line (notes.txt).
	{
		if [ -n "$pxe" ]; then
			echo "  --- kindling machines show $MAC_A (the uefi-pxe boot of this run)"
			sed 's/^/  | /' <<<"$pxe"
		fi
		echo "  --- kindling machines show $MAC_A (last boot)"
		last_boot "$OUT/machines-show-a.txt" | sed 's/^/  | /'
		echo "  --- kindling machines show $MAC_U (last boot)"
		last_boot "$OUT/machines-show-u.txt" | sed 's/^/  | /'
	} >>"$OUT/notes.txt"
}

# --- install-once: a profile with "install_once": {"done": "callback"}. Machine I (BIOS,
# SeaBIOS + iPXE ROM, NIC first, then a disk whose boot sector prints E2E-LOCAL-DISK) boots
# three times, each boot a new QEMU with the same MAC and disk:
#   1. not installed: /ipxe answers the profile; the initrd fetches its Ignition, then GETs
#      e2e.done=<BASE>/install/done?mac=<mac> (E2E-DONE-OK), which marks it installed;
#   2. installed: /ipxe answers a local-boot script (`exit`); iPXE returns to SeaBIOS, which
#      boots the disk (E2E-LOCAL-DISK, no Linux);
#   3. after `kindling machines --server <admin> reinstall MAC`: the profile again.

# A profile with "install_once": {"done": "callback"}: the initrd fetches its Ignition from
# <base>/ignition, then calls <base>/install/done (e2e.done=). <base> may hold iPXE settings
# (fleet: the address of the server the machine booted from).
write_install_profile() { # <file> <id> <ignition id> <tag> <base URL>
	cat >"$1" <<-EOF
		{
		  "id": "$2",
		  "name": "E2E install once ($4)",
		  "ignition_id": "$3",
		  "install_once": { "done": "callback" },
		  "boot": {
		    "kernel": "/assets/vmlinuz",
		    "initrd": [ "--name initrd.img /assets/initrd.img" ],
		    "args": [ "initrd=initrd.img", "console=ttyS0", "quiet", "panic=-1", "no_timer_check",
		              "e2e.tag=$4", "ignition.firstboot", "ignition.platform.id=metal",
		              "ignition.config.url=$5/ignition?mac=\${mac:hexhyp}",
		              "e2e.done=$5/install/done?mac=\${mac:hexhyp}" ]
		  }
		}
	EOF
}

# A boot that installed: the profile, its Ignition, then the completion call; no local boot
# (the Kindling log checked is KLOG from KLOG_OFF: the server that served the boot).
expect_install_boot() { # <vm> <mac> <ignition file> <tag> <profile>
	local vm=$1 mac=$2 h
	h=$(hyp "$mac")
	expect_boot "$vm" "$mac" "$3" "$4"
	grep -aq 'E2E-DONE-OK' "${VM_SERIAL[$vm]}" || err "$vm: serial lacks E2E-DONE-OK (the call of e2e.done=.../install/done)"
	if grep -aq 'E2E-LOCAL-DISK' "${VM_SERIAL[$vm]}"; then err "$vm: booted its disk instead of installing"; fi
	expect_trail "$mac" "$5"
	expect_klog "path=\"/install/done\" query=\"mac=$h\".* status=200" "GET /install/done?mac=$h 200"
	reject_klog 'path="/ipxe".*local.boot|local.boot.*path="/ipxe"' "a local-boot answer to /ipxe (the machine was to install)"
}

# A boot of an installed machine (start_vm_disk): /ipxe answers a local-boot script, iPXE
# returns to SeaBIOS, which boots the disk (E2E-LOCAL-DISK), no Linux, no downloads.
expect_local_boot() { # <vm> <mac>
	local vm=$1 h s=${VM_SERIAL[$1]}
	h=$(hyp "$2")
	grep -aq 'E2E-LOCAL-DISK' "$s" ||
		err "$vm: serial lacks E2E-LOCAL-DISK (the installed machine did not boot its disk; QEMU ${VM_END[$vm]} after ${VM_SECS[$vm]}s)"
	if grep -aq 'E2E-INIT-START' "$s"; then err "$vm: the installed machine booted the network kernel (E2E-INIT-START)"; fi
	if grep -aq 'Could not boot' "$s"; then err "$vm: iPXE says 'Could not boot' (the local-boot script failed, or /ipxe was not 200)"; fi
	if [ "${VM_END[$vm]}" != exited ] || [ "${VM_RC[$vm]}" != 1 ]; then
		err "$vm: QEMU did not end through the boot sector's isa-debug-exit (${VM_END[$vm]}, status ${VM_RC[$vm]}; want exited, status 1)"
	fi
	expect_klog 'path="/boot.ipxe".* status=200' "GET /boot.ipxe 200"
	expect_klog_line "GET /ipxe?...mac=$h answered with a local boot (200, reason naming local boot)" \
		'path="/ipxe"' "query=\"[^\"]*mac=$h" 'status=200' 'local.boot'
	reject_klog 'path="/assets/(vmlinuz|initrd\.img)"' "a kernel or initrd download by the installed machine"
	reject_klog 'path="/(ignition|install/done)"' "an Ignition or /install/done request by the installed machine"
}

sc_install-once() {
	local d=$WORK/data disk=$OUT/inst-disk.img ign
	ign=$d/ignition/machine-i.ign
	write_install_profile "$d/profiles/e2e-install.json" e2e-install machine-i.ign install "$BASE"
	cat >"$d/groups/machine-i.json" <<-EOF
		{ "id": "machine-i", "name": "E2E machine i (install once)", "profile": "e2e-install",
		  "selector": { "mac": "$MAC_I" } }
	EOF
	ign machine-i >"$ign"
	kindling_reload || return 0
	write_local_disk "$disk"
	# Kindling's log is checked per boot: this KLOG_OFF (run_scenario's is left alone) moves
	# to the start of each boot.
	local KLOG_OFF=$KLOG_OFF

	# 1. Not installed yet: the profile, the Ignition, then the completion call.
	KLOG_OFF=$(stat -c %s "$KLOG")
	start_vm_disk inst-1 tap0 $MAC_I "$disk"
	wait_vms inst-1
	expect_install_boot inst-1 $MAC_I "$ign" install e2e-install

	# 2. Installed: a local-boot script; SeaBIOS goes on to the disk.
	KLOG_OFF=$(stat -c %s "$KLOG")
	start_vm_disk inst-2 tap0 $MAC_I "$disk"
	wait_vms inst-2
	expect_local_boot inst-2 $MAC_I

	# 3. Re-armed through the admin API: the profile again.
	KLOG_OFF=$(stat -c %s "$KLOG")
	machines_reinstall "$NS_SRV" $MAC_I "$OUT/machines-reinstall.out" || return 0
	start_vm_disk inst-3 tap0 $MAC_I "$disk"
	wait_vms inst-3
	capture_stop
	expect_install_boot inst-3 $MAC_I "$ign" install e2e-install
	expect_dhcp_roles $MAC_I
}

# `kindling machines --server <admin> reinstall MAC` in a server namespace (the admin
# listener is on its loopback, with the run's token).
machines_reinstall() { # <netns> <mac> <output file>
	local rc=0
	ip netns exec "$1" "$KBIN" --config "$WORK/kindling.toml" machines --server "$ADMIN" --token-file "$WORK/admin.token" reinstall "$2" \
		>"$3" 2>&1 || rc=$?
	[ $rc = 0 ] && return 0
	err "kindling machines --server $ADMIN reinstall $2 (in ${1#"$NS_PREFIX$ID-"}) exited $rc: $(head -n3 "$3" | tr '\n' ' ')"
	return 1
}

# --- fleet (issue 18): two Kindling servers on the segment share one etcd store.
#   etcd: one member in the dhcp namespace (the site's infrastructure, next to its DHCP
#   server), client URL http://10.99.0.2:2379, data in the work dir.
#   Server A: the server namespace (s0, 10.99.0.1). Server B: a fourth namespace …-srv2
#   (s0, 10.99.0.3) on the same bridge. Each runs proxy DHCP + TFTP + HTTP with its own data
#   directory (assets only), state directory and log, and [store] backend = "etcd". The
#   harness's own server is stopped for the scenario (it would answer the DHCP too) and
#   started again at its end.
#   `kindling store import` writes the objects into etcd: group machine-l -> profile
#   e2e-fleet (install_once, done by callback), Ignition machine-l.ign. The profile names
#   no server: its Ignition and completion URLs are http://${proxydhcp/next-server}:8080/…,
#   which iPXE fills with the siaddr of the proxy offer it took, so Linux talks to the
#   server the machine booted from (iPXE resolves the kernel and initrd against it anyway).
# Machine L (BIOS, NIC then a disk, as in install-once) boots three times:
#   1. both servers up: both OFFER; it installs through the one iPXE takes (X); the record
#      <prefix>machines/52-54-00-12-34-5f.json is in etcd and the other server (Y) lists
#      the machine as installed;
#   2. X stopped (by PID): Y alone OFFERs and answers a local boot (E2E-LOCAL-DISK): the
#      state set through X is honoured by Y;
#   3. re-armed through Y (`kindling machines --server <Y's admin> reinstall`; the record
#      leaves etcd), X started again (its first load from etcd): both OFFER, and the machine
#      installs again through the one it takes.

FLEET_PREFIX=/kindling/
ETCD_PID=""
FL_DISK=""
SERVED=""
declare -A FL_NS FL_IP FL_PID FL_LOG FL_OFF

etcdctl_e2e() { ip netns exec "$NS_DHCP" etcdctl --endpoints=$ETCD_URL --dial-timeout=2s --command-timeout=5s "$@"; }

srv_name() { echo "${1^^} (${FL_IP[$1]})"; }

fleet_note() { echo "  $*" >>"$OUT/notes.txt"; }

# The second server's namespace, on the same bridge (the interface is s0 there too).
fleet_netns() {
	ip netns list | awk '{print $1}' | grep -qxF "$NS_SRV2" && return 0
	ip netns add "$NS_SRV2"
	ip netns exec "$NS_SRV2" ip link set lo up
	ip netns exec "$NS_SRV2" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip netns exec "$NS_LAN" ip link add l-srv2 type veth peer name s0 netns "$NS_SRV2"
	ip netns exec "$NS_LAN" ip link set l-srv2 master br0 up
	ip netns exec "$NS_SRV2" ip addr add $SRV2_IP/24 dev s0
	ip netns exec "$NS_SRV2" ip link set s0 up
}

etcd_start() {
	rm -rf -- "$WORK/etcd"
	ip netns exec "$NS_DHCP" etcd --name e2e --data-dir "$WORK/etcd" \
		--listen-client-urls $ETCD_URL --advertise-client-urls $ETCD_URL \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster e2e=http://127.0.0.1:2380 --initial-cluster-state new \
		--logger zap --log-level warn --auto-compaction-retention 0 >"$OUT/etcd.log" 2>&1 &
	ETCD_PID=$!
	record_pid $ETCD_PID
	local i
	for i in $(seq 100); do
		etcdctl_e2e endpoint health >/dev/null 2>&1 && return 0
		kill -0 $ETCD_PID 2>/dev/null || break
		sleep 0.1
	done
	err "etcd did not answer on $ETCD_URL within 10 s: $(tail -n3 "$OUT/etcd.log" | tr '\n' ' ')"
	return 1
}

fleet_config() { # <a|b>
	local ip=${FL_IP[$1]} dir=$WORK/fleet/$1
	mkdir -p "$dir/data/assets"
	ln -f "$WORK/data/assets/vmlinuz" "$WORK/data/assets/initrd.img" "$dir/data/assets/"
	cat >"$dir/kindling.toml" <<-EOF
		# Fleet server ${1^^}: proxy DHCP + TFTP + HTTP on $ip. Groups, profiles, Ignition and the
		# machines' install state come from etcd; only the assets from its data directory.
		data_dir = "$dir/data"

		[http]
		listen = "$ip:8080"

		[log]
		level = "info,kindling_dhcp=debug,kindling_tftp=debug"

		[ops]
		state_dir = "$dir/state"
		[cache]
		dir = "$dir/cache"
		[admin]
		token_file = "$WORK/admin.token"

		[dhcp]
		enabled = true
		interfaces = ["s0"]

		[tftp]
		enabled = true
		listen = "$ip:69"

		[store]
		backend = "etcd"
		endpoints = ["$ETCD_URL"]
		prefix = "$FLEET_PREFIX"
	EOF
}

fleet_start() { # <a|b>
	local off
	off=$(stat -c %s "${FL_LOG[$1]}" 2>/dev/null || echo 0)
	if ! start_kindling "${FL_NS[$1]}" "$WORK/fleet/$1/kindling.toml" "${FL_LOG[$1]}" "http://${FL_IP[$1]}:8080"; then
		err "fleet server $(srv_name "$1") did not start: $(tail -c +$((off + 1)) "${FL_LOG[$1]}" | tail -n 3 | tr '\n' ' ')"
		return 1
	fi
	FL_PID[$1]=$STARTED_PID
	grep -q 'etcd store loaded' <(tail -c +$((off + 1)) "${FL_LOG[$1]}") ||
		err "fleet server $(srv_name "$1")'s log lacks 'etcd store loaded'"
}

fleet_stop() { # <a|b>
	[ -n "${FL_PID[$1]:-}" ] || return 0
	stop_pid "${FL_PID[$1]}"
	FL_PID[$1]=""
}

fleet_slice() { tail -c +$((${FL_OFF[$1]} + 1)) "${FL_LOG[$1]}"; }

# One boot of machine L with the servers that are up. Afterwards SERVED is the server whose
# log has this boot's /ipxe request (FL_OFF: each log's size at the start of the boot);
# the boot's pcap and DHCP summary are kept as capture-<vm>.pcap, dhcp-summary-<vm>.txt.
fleet_boot() { # <vm>
	local vm=$1 s h
	h=$(hyp $MAC_L)
	for s in a b; do FL_OFF[$s]=$(stat -c %s "${FL_LOG[$s]}" 2>/dev/null || echo 0); done
	[ -n "$CAP_PID" ] || capture_start
	start_vm_disk "$vm" tap0 $MAC_L "$FL_DISK"
	wait_vms "$vm"
	capture_stop
	# Every server that is up made its proxy offer (its own address and boot URL); a
	# stopped one said nothing.
	for s in a b; do
		local ip_re=${FL_IP[$s]//./\\.} url="http://${FL_IP[$s]}:8080/boot.ipxe"
		if [ -n "${FL_PID[$s]}" ]; then
			expect_dhcp "$ip_re:67 -> .* OFFER .*mac=$MAC_L .*siaddr=$ip_re .*file='$url'" "$vm: the proxy offer of server ${s^^} ($url)"
		else
			reject_dhcp "$ip_re:(67|4011) -> .* mac=$MAC_L" "$vm: a DHCP reply from the stopped server ${s^^}"
		fi
	done
	expect_dhcp_roles $MAC_L '10\.99\.0\.[13]'
	mv "$OUT/capture.pcap" "$OUT/capture-$vm.pcap"
	mv "$OUT/dhcp-summary.txt" "$OUT/dhcp-summary-$vm.txt"
	SERVED=""
	for s in a b; do
		if grep -Eq "path=\"/ipxe\" query=\"[^\"]*mac=$h" <(fleet_slice $s); then SERVED+=" $s"; fi
	done
	SERVED=${SERVED# }
	case $SERVED in
	a | b) ;;
	"")
		err "$vm: no server's log has this boot's GET /ipxe?...mac=$h (QEMU ${VM_END[$vm]} after ${VM_SECS[$vm]}s)"
		return 1
		;;
	*)
		err "$vm: both servers answered GET /ipxe?...mac=$h in one boot"
		return 1
		;;
	esac
	# iPXE says which offer it took (its Filename: line): the server that served the boot.
	local took
	took=$(grep -aoE 'http://10\.99\.0\.[0-9]+:8080/boot\.ipxe' "${VM_SERIAL[$vm]}" | head -n1 || true)
	[ "$took" = "http://${FL_IP[$SERVED]}:8080/boot.ipxe" ] ||
		err "$vm: iPXE's serial names '${took:-no boot.ipxe URL}', but server ${SERVED^^} served the boot"
}

# The checks of install-once on the log of the server that served the boot; the other
# server (if up) saw no HTTP request of this boot. Errors name the server.
fleet_expect() { # <install|local> <vm>
	local kind=$1 vm=$2 s=$SERVED o=a n=${#ERRS[@]} i
	[ "$s" = a ] && o=b
	local KLOG=${FL_LOG[$s]} KLOG_OFF=${FL_OFF[$s]}
	if [ "$kind" = install ]; then
		expect_install_boot "$vm" $MAC_L "$WORK/fleet/import/ignition/machine-l.ign" fleet e2e-fleet
	else
		expect_local_boot "$vm" $MAC_L
	fi
	for ((i = n; i < ${#ERRS[@]}; i++)); do ERRS[i]="server ${s^^}: ${ERRS[i]}"; done
	if [ -n "${FL_PID[$o]}" ]; then
		KLOG=${FL_LOG[$o]} KLOG_OFF=${FL_OFF[$o]}
		reject_klog 'path="/(boot\.ipxe|ipxe|ignition|install/done|assets/[^"]*)"' "server ${o^^}: a request of $vm (it booted from ${s^^})"
	fi
}

# The machine's record in etcd (the value, empty when there is none).
fleet_record() { etcdctl_e2e get --print-value-only "${FLEET_PREFIX}machines/$(hyp $MAC_L).json"; }

# The record says: installed by the callback, with group machine-l and profile e2e-fleet.
fleet_record_check() { # <file> <when>
	local bad
	bad=$(python3 - "$1" "$MAC_L" <<-'PY'
		import json, sys
		try:
		    r = json.load(open(sys.argv[1]))
		except Exception as e:
		    print(f"not JSON ({e})"); sys.exit()
		i = r.get("installed") or {}
		want = {"via": "callback", "group": "machine-l", "profile": "e2e-fleet"}
		if r.get("mac") != sys.argv[2]:
		    print(f"mac {r.get('mac')!r}")
		for k, v in want.items():
		    if i.get(k) != v:
		        print(f"installed.{k} {i.get(k)!r}, want {v!r}")
	PY
	)
	[ -z "$bad" ] || err "$2: the record in etcd ($1): $(tr '\n' ';' <<<"$bad")"
}

sc_fleet() {
	if [ "$E2E_PROXY" != kindling ]; then
		SKIP_WHY="needs Kindling's proxy DHCP on both servers (E2E_PROXY=$E2E_PROXY)"
		return
	fi
	if ! "$KBIN" store --help >/dev/null 2>&1; then
		SKIP_WHY="this kindling has no 'store' command (no etcd store)"
		return
	fi
	# (a binary built without the etcd feature is found by the import below: SKIP)
	FL_NS=([a]=$NS_SRV [b]=$NS_SRV2)
	FL_IP=([a]=$SRV_IP [b]=$SRV2_IP)
	FL_LOG=([a]=$OUT/kindling-a.log [b]=$OUT/kindling-b.log)
	FL_PID=([a]="" [b]="")
	FL_OFF=([a]=0 [b]=0)
	# The harness's own server would answer the DHCP too.
	stop_pid "$KPID"
	# (its failures are in ERRS or SKIP_WHY; what follows runs in any case)
	fleet_run || true
	fleet_stop a
	fleet_stop b
	[ -z "$ETCD_PID" ] || stop_pid "$ETCD_PID"
	ETCD_PID=""
	# The harness's own server again, for the scenarios after this one.
	if start_kindling "$NS_SRV" "$WORK/kindling.toml" "$KLOG" "$BASE"; then
		KPID=$STARTED_PID
	else
		err "the harness's kindling serve did not start again after the fleet"
	fi
}

fleet_run() {
	local imp=$WORK/fleet/import h rc=0 x y n
	h=$(hyp $MAC_L)
	rm -rf -- "$WORK/fleet"
	fleet_netns
	etcd_start || return 1
	mkdir -p "$imp/groups" "$imp/profiles" "$imp/ignition"
	# shellcheck disable=SC2016 # ${proxydhcp/next-server} is for iPXE
	write_install_profile "$imp/profiles/e2e-fleet.json" e2e-fleet machine-l.ign fleet 'http://${proxydhcp/next-server}:8080'
	cat >"$imp/groups/machine-l.json" <<-EOF
		{ "id": "machine-l", "name": "E2E machine l (fleet, install once)", "profile": "e2e-fleet",
		  "selector": { "mac": "$MAC_L" } }
	EOF
	ign machine-l >"$imp/ignition/machine-l.ign"
	fleet_config a
	fleet_config b
	ip netns exec "$NS_SRV" "$KBIN" --config "$WORK/fleet/a/kindling.toml" store import "$imp" \
		>"$OUT/store-import.out" 2>&1 || rc=$?
	if [ $rc != 0 ] && grep -q 'without the `etcd` feature' "$OUT/store-import.out"; then
		SKIP_WHY="this kindling was built without the etcd store (cargo build --features etcd): $(head -n1 "$OUT/store-import.out")"
		return 1
	elif [ $rc != 0 ]; then
		err "kindling store import exited $rc: $(head -n3 "$OUT/store-import.out" | tr '\n' ' ')"
		return 1
	fi
	grep -q '^imported 3 object' "$OUT/store-import.out" || err "kindling store import: $(tr '\n' ' ' <"$OUT/store-import.out") (want 3 objects)"
	etcdctl_e2e get --prefix --keys-only "$FLEET_PREFIX" | sed '/^$/d' >"$OUT/etcd-keys.txt" || true
	fleet_note "etcd $ETCD_URL after kindling store import: $(tr '\n' ' ' <"$OUT/etcd-keys.txt")"
	fleet_start a || return 1
	fleet_start b || return 1
	FL_DISK=$OUT/fleet-disk.img
	write_local_disk "$FL_DISK"

	# 1. Both servers up: the machine installs through the one it takes.
	fleet_boot fleet-1 || return 1
	x=$SERVED
	y=a
	[ "$x" = a ] && y=b
	fleet_expect install fleet-1
	fleet_note "boot 1 (fleet-1): both servers offered; iPXE took $(srv_name "$x"): installed through ${x^^} (/ipxe, kernel, initrd, /ignition, /install/done), nothing on ${y^^}"
	fleet_record >"$OUT/etcd-record-1.json" 2>&1 || err "etcdctl get of the machine's record failed: $(head -n2 "$OUT/etcd-record-1.json")"
	if [ -s "$OUT/etcd-record-1.json" ]; then
		fleet_record_check "$OUT/etcd-record-1.json" "after boot 1"
		fleet_note "etcd ${FLEET_PREFIX}machines/$h.json: $(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), separators=(",", ":")))' "$OUT/etcd-record-1.json" 2>/dev/null || head -c 300 "$OUT/etcd-record-1.json")"
	else
		err "after boot 1: no ${FLEET_PREFIX}machines/$h.json in etcd"
	fi
	# The other server knows (from etcd's watch) before the next boot.
	local i listed=0
	for i in $(seq 50); do
		rc=0
		ip netns exec "${FL_NS[$y]}" "$KBIN" --config "$WORK/fleet/$y/kindling.toml" machines --server "$ADMIN" \
			--token-file "$WORK/admin.token" --installed >"$OUT/installed-on-$y.txt" 2>&1 || rc=$?
		if [ $rc = 0 ] && grep -qi "$MAC_L" "$OUT/installed-on-$y.txt"; then
			listed=1
			break
		fi
		sleep 0.1
	done
	if [ $listed = 1 ]; then
		fleet_note "server ${y^^} lists it installed: $(grep -i "$MAC_L" "$OUT/installed-on-$y.txt" | tr -s ' ' | head -n1)"
	else
		err "server ${y^^} does not list $MAC_L as installed (kindling machines --installed, exit $rc): $(head -n3 "$OUT/installed-on-$y.txt" | tr '\n' ' ')"
	fi

	# 2. The server that installed it stopped: the other answers alone, a local boot.
	n=${FL_PID[$x]}
	fleet_stop "$x"
	fleet_boot fleet-2 || return 1
	fleet_expect local fleet-2
	fleet_note "boot 2 (fleet-2): ${x^^} stopped (pid $n); $(srv_name "$SERVED") alone offered and answered a local boot: E2E-LOCAL-DISK"

	# 3. Re-armed through the survivor; the stopped server comes back; installs again.
	machines_reinstall "${FL_NS[$y]}" $MAC_L "$OUT/machines-reinstall.out" || return 1
	fleet_record >"$OUT/etcd-record-2.json" 2>&1 || true
	[ ! -s "$OUT/etcd-record-2.json" ] || err "after the reinstall through ${y^^}: the record is still in etcd: $(tr '\n' ' ' <"$OUT/etcd-record-2.json" | head -c 300)"
	fleet_start "$x" || return 1
	fleet_boot fleet-3 || return 1
	fleet_expect install fleet-3
	fleet_record >"$OUT/etcd-record-3.json" 2>&1 || true
	if [ -s "$OUT/etcd-record-3.json" ]; then
		fleet_record_check "$OUT/etcd-record-3.json" "after boot 3"
	else
		err "after boot 3: no ${FLEET_PREFIX}machines/$h.json in etcd"
	fi
	fleet_note "boot 3 (fleet-3): re-armed through ${y^^} (record gone from etcd), ${x^^} started again; both offered; iPXE took $(srv_name "$SERVED"): installed again"
}

# --- secure-boot (issue 21): OVMF with Secure Boot enforced, through Kindling alone.
# shellcheck source=tests/e2e/secure-boot.sh
. "$HERE/secure-boot.sh"

# ---------------------------------------------------------------------------------------
# Per-scenario capture and reporting

CAP_PID=""
# --immediate-mode: without it libpcap's TPACKET_V3 ring hands packets over a block at a
# time, and the last packets of a quiet capture (the booted Linux's own DHCP) were still in
# the ring when capture_stop ended tcpdump ("9 packets received by filter", 5 captured).
capture_start() {
	ip netns exec "$NS_LAN" tcpdump -i br0 -n -U --immediate-mode -Z root -w "$OUT/capture.pcap" udp >"$OUT/tcpdump.out" 2>&1 &
	CAP_PID=$!
	record_pid $CAP_PID
	local i
	for i in $(seq 50); do
		grep -q 'listening on' "$OUT/tcpdump.out" 2>/dev/null && return 0
		sleep 0.1
	done
	log "e2e: tcpdump did not start: $(cat "$OUT/tcpdump.out")"
}
capture_stop() {
	if [ -n "$CAP_PID" ]; then
		sleep 0.2
		kill -TERM "$CAP_PID" 2>/dev/null || true
		wait "$CAP_PID" 2>/dev/null || true
		CAP_PID=""
	fi
	# (fleet keeps one capture per boot and leaves none running at its end)
	[ -f "$OUT/capture.pcap" ] || return 0
	python3 "$HERE/dhcp_summary.py" "$OUT/capture.pcap" >"$OUT/dhcp-summary.txt" 2>&1 || true
}

PASSED=0 SKIPPED=0
declare -a RESULTS=()
run_scenario() { # <name>
	local name=$1
	OUT=$WORK/out/$name
	mkdir -p "$OUT"
	ERRS=()
	SKIP_WHY=""
	VM_PID=() VM_T0=() VM_SERIAL=() VM_END=() VM_SECS=() VM_PHASES=() VM_RC=() VM_FAIL=()
	KLOG_OFF=$(stat -c %s "$KLOG")
	local dl_off=0 px_off=0
	dl_off=$(stat -c %s "$WORK/dnsmasq-dhcp.log" 2>/dev/null || echo 0)
	[ -f "$WORK/dnsmasq-proxy.log" ] && px_off=$(stat -c %s "$WORK/dnsmasq-proxy.log")
	local t0
	t0=$(date +%s.%N)
	capture_start
	"sc_$name"
	capture_stop
	local secs
	secs=$(elapsed "$t0")
	klog_slice >"$OUT/kindling.log"
	tail -c +$((dl_off + 1)) "$WORK/dnsmasq-dhcp.log" >"$OUT/dnsmasq-dhcp.log" 2>/dev/null || true
	[ -f "$WORK/dnsmasq-proxy.log" ] && tail -c +$((px_off + 1)) "$WORK/dnsmasq-proxy.log" >"$OUT/dnsmasq-proxy.log"
	if [ -n "$SKIP_WHY" ]; then
		SKIPPED=$((SKIPPED + 1))
		echo "SKIP $name: $SKIP_WHY"
		RESULTS+=("SKIP $name")
	elif [ ${#ERRS[@]} = 0 ]; then
		PASSED=$((PASSED + 1))
		local detail="" vm
		for vm in $(printf '%s\n' "${!VM_SECS[@]}" | sort); do detail+=" $vm=${VM_SECS[$vm]}s [${VM_PHASES[$vm]}]"; done
		echo "PASS $name ${secs}s ($ACCEL;$detail)"
		RESULTS+=("PASS $name ${secs}s")
		if [ -f "$OUT/notes.txt" ]; then cat "$OUT/notes.txt"; fi
	else
		FAILED=$((FAILED + 1))
		echo "FAIL $name ${secs}s ($ACCEL)"
		RESULTS+=("FAIL $name")
		local e vm
		for e in "${ERRS[@]}"; do echo "  - $e"; done
		if [ -f "$OUT/notes.txt" ]; then cat "$OUT/notes.txt"; fi
		for vm in "${!VM_SERIAL[@]}"; do
			echo "  --- serial log tail: $vm (QEMU ${VM_END[$vm]} after ${VM_SECS[$vm]}s)"
			tail -n 25 "${VM_SERIAL[$vm]}" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/^/  | /'
		done
		echo "  --- kindling log (this scenario)"
		tail -n 60 "$OUT/kindling.log" | sed 's/^/  | /'
		local f
		for f in "$OUT"/kindling-*.log; do
			[ -f "$f" ] || continue
			echo "  --- ${f##*/} (this scenario)"
			tail -n 40 "$f" | sed 's/^/  | /'
		done
		echo "  --- DHCP/TFTP summary (this scenario)"
		sed 's/^/  | /' "$OUT/dhcp-summary.txt"
		echo "  --- artifacts: $OUT"
	fi
}

# ---------------------------------------------------------------------------------------

main() {
	need_tools
	[ "$E2E_PROXY" = kindling ] || [ "$E2E_PROXY" = dnsmasq ] || die "E2E_PROXY must be kindling or dnsmasq"
	local s
	for s in $E2E_SCENARIOS; do
		grep -qw -- "$s" <<<"$ALL_SCENARIOS" || die "unknown scenario $s (see --list)"
	done
	teardown_stale
	KBIN=$(kindling_bin)
	FX_BIN=""
	if grep -qw fcos-pull <<<"$E2E_SCENARIOS"; then FX_BIN=$(fcos_fixture_bin); fi
	[ -n "${KINDLING_BIN:-}" ] || echo "e2e: built $KBIN in $(elapsed "$T_START")s (not counted below)"
	T_START=$(date +%s.%N)
	mkdir -p "$WORK"
	: >"$WORK/pids"
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	prepare_kernel
	write_data
	write_configs
	setup_net
	choose_accel
	start_servers || die "servers did not start"
	local setup_secs
	setup_secs=$(elapsed "$T_START")
	echo "e2e: $E2E_PROXY as boot server, $ACCEL${KVM_WHY:+ ($KVM_WHY)}, setup ${setup_secs}s, work dir $WORK"
	for s in $E2E_SCENARIOS; do
		run_scenario "$s"
	done
	local summary="$PASSED passed, $FAILED failed"
	[ "$SKIPPED" -gt 0 ] && summary+=", $SKIPPED skipped"
	echo "e2e: total $(elapsed "$T_START")s"
	echo "$summary"
	[ "$FAILED" = 0 ]
}

main "$@"; exit
