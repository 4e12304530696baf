# shellcheck shell=bash
# shellcheck disable=SC2034,SC2054 # arrays of run.sh; QEMU's comma-separated options
# The secure-boot scenario of tests/e2e/run.sh (sourced by it; uses its helpers and
# variables). Issue 21: UEFI Secure Boot through the distribution's signed chain.
#
# Two VMs, each OVMF built with Secure Boot (OVMF_CODE_4M.secboot.fd) and a fresh copy of
# the variable store with Microsoft's keys enrolled (OVMF_VARS_4M.ms.fd), q35 with SMM and
# the flash locked (`cfi.pflash01 secure=on`), always under TCG (the Secure Boot build needs
# SMM, which nested KVM here lacks). Kindling alone serves the segment: the harness's
# server and the site's dnsmasq are stopped, and a Kindling in full DHCP mode takes their
# place for the scenario, with `[secure_boot]` off by default: vm-sb is routed to it by
# its group (`"secure_boot": true`), machine-a's MAC by a DHCP rule (for `kindling check`).
#   vm-sb (MAC_SB): firmware -> secureboot/shimx64.efi (Microsoft-signed shim) ->
#     secureboot/grubx64.efi (Debian-signed GRUB) -> /grub/grub.cfg -> /grub?mac=... (the
#     profile rendered as HTTP /grub renders it) -> /assets/vmlinuz (Debian's signed
#     kernel) and /assets/initrd.img over TFTP -> E2E-BOOT-OK, with the kernel saying
#     Secure Boot is on.
#   vm-ipxe (MAC_SI): no group, no rule: snponly.efi (unsigned iPXE), as every UEFI
#     machine gets by default: the firmware refuses it ("Access Denied").
# Afterwards the site's dnsmasq and the harness's server are started again.

OVMF_SB_CODE=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd
OVMF_SB_VARS=/usr/share/OVMF/OVMF_VARS_4M.ms.fd
SB_SHIM=/usr/lib/shim/shimx64.efi.signed
SB_GRUB=/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed
MAC_SB=52:54:00:12:34:60 # group machine-sb ("secure_boot": true) -> profile e2e-sb
MAC_SI=52:54:00:12:34:61 # nothing routes it to Secure Boot: unsigned iPXE
SB_TIMEOUT=${SB_TIMEOUT:-240}   # seconds for the signed boot (about 20-40 s under TCG)
SB_REFUSE_TIMEOUT=${SB_REFUSE_TIMEOUT:-120} # seconds until "Access Denied" (about 10 s)

# A copy of a PE image with its certificate table entry zeroed (what `sbattach --remove`
# leaves as far as shim is concerned): an unsigned kernel (E2E_BREAK=sb-kernel).
unsign_pe() { # <in> <out>
	python3 - "$1" "$2" <<-'PY'
		import struct, sys
		b = bytearray(open(sys.argv[1], "rb").read())
		pe = struct.unpack_from("<I", b, 0x3c)[0]
		opt = pe + 24
		dirs = opt + (112 if struct.unpack_from("<H", b, opt)[0] == 0x20B else 96)
		struct.pack_into("<II", b, dirs + 4 * 8, 0, 0)
		open(sys.argv[2], "wb").write(b)
	PY
}

sb_write_data() {
	local d=$WORK/data kernel=/assets/vmlinuz
	if [ "$E2E_BREAK" = sb-kernel ]; then
		unsign_pe "$d/assets/vmlinuz" "$d/assets/vmlinuz-unsigned"
		kernel=/assets/vmlinuz-unsigned
	fi
	cat >"$d/groups/machine-sb.json" <<-EOF
		{ "id": "machine-sb", "name": "E2E machine sb (Secure Boot)", "profile": "e2e-sb",
		  "selector": { "mac": "$MAC_SB" }, "secure_boot": true }
	EOF
	# GRUB fetches kernel and initrd over TFTP (/assets/...): no iPXE-only `--name`, no
	# `initrd=`, and no `quiet` (the kernel's own Secure Boot lines are checked).
	cat >"$d/profiles/e2e-sb.json" <<-EOF
		{
		  "id": "e2e-sb",
		  "name": "E2E profile sb (Secure Boot)",
		  "boot": {
		    "kernel": "$kernel",
		    "initrd": [ "/assets/initrd.img" ],
		    "args": [ "console=ttyS0", "panic=-1", "no_timer_check", "e2e.tag=secure-boot",
		              "ignition.config.url=$BASE/assets/secure-boot.ign" ]
		  }
		}
	EOF
	ign secure-boot >"$d/assets/secure-boot.ign"
	SB_KERNEL=$kernel
	cat >"$WORK/kindling-sb.toml" <<-EOF
		# Kindling alone: full DHCP + TFTP + HTTP, every x86-64 UEFI PXE client to Secure Boot.
		data_dir = "$WORK/data"
		[http]
		listen = "$SRV_IP:8080"
		[log]
		level = "info,kindling_dhcp=debug,kindling_tftp=debug"
		[reload]
		watch = false
		[ops]
		state_dir = "$WORK/state-sb"
		[cache]
		dir = "$WORK/cache"
		[admin]
		token_file = "$WORK/admin.token"

		[dhcp]
		enabled = true
		interfaces = ["s0"]
		mode = "full"
		lease_file = "$WORK/sb-leases"
		ping_check = false

		[[dhcp.subnets]]
		network = "10.99.0.0/24"
		pools = ["10.99.0.200-10.99.0.250"]

		# Routes machine-a to Secure Boot (its profile is iPXE-style: kindling check says so).
		[[dhcp.rules]]
		name = "secure-boot-a"
		mac = "$MAC_A"
		secure_boot = true

		[tftp]
		enabled = true
		listen = "$SRV_IP:69"

		[secure_boot]
		shim = "$SB_SHIM"
		grub = "$SB_GRUB"
	EOF
}

# A Secure Boot VM: secboot OVMF, a fresh copy of the MS-keys variable store, SMM, TCG.
start_vm_sb() { # <name> <tap> <mac> <timeout secs>
	local name=$1 tap=$2 mac=$3 secs=$4 dir=$OUT
	cp "$OVMF_SB_VARS" "$dir/$name.vars.fd"
	local args=(-machine q35,smm=on -accel tcg -m 1024 -smp 1 -nodefaults -nographic -no-reboot
		-monitor none -serial "file:$dir/$name.serial"
		-global driver=cfi.pflash01,property=secure,value=on
		-drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_SB_CODE"
		-drive "if=pflash,format=raw,unit=1,file=$dir/$name.vars.fd"
		-netdev "tap,id=n0,ifname=$tap,script=no,downscript=no"
		-device "virtio-net-pci,netdev=n0,mac=$mac,romfile=,bootindex=1"
		-fw_cfg name=opt/org.tianocore/IPv6PXESupport,string=n)
	: >"$dir/$name.serial"
	ip netns exec "$NS_LAN" timeout "$secs" qemu-system-x86_64 "${args[@]}" \
		</dev/null >"$dir/$name.qemu.out" 2>&1 &
	VM_PID[$name]=$!
	record_pid $!
	VM_T0[$name]=$(date +%s.%N)
	VM_SERIAL[$name]=$dir/$name.serial
}

sc_secure-boot() {
	if [ "$E2E_PROXY" != kindling ]; then
		SKIP_WHY="needs Kindling's DHCP (E2E_PROXY=$E2E_PROXY)"
		return
	fi
	sb_write_data
	# The harness's kernel is Debian's signed image: `kindling check` finds a signature
	# table in it (it warns about an unsigned kernel of a Secure Boot profile).
	ip netns exec "$NS_SRV" "$KBIN" --config "$WORK/kindling-sb.toml" check \
		>"$OUT/check.txt" 2>&1 || true
	# (machine-a's profile, routed by the rule, is iPXE-style: a `--name` warning.)
	local found
	found=$(grep 'profiles/e2e-sb\.json.*\[secure_boot' "$OUT/check.txt" || true)
	if [ -n "$found" ]; then
		err "kindling check warns about the Secure Boot profile: $(tr '\n' ' ' <<<"$found")"
	elif ! grep -q 'profiles/e2e-a\.json.*\[secure_boot_initrd_name\]' "$OUT/check.txt"; then
		err "kindling check did not check the profiles of the Secure Boot route: $(tail -n3 "$OUT/check.txt" | tr '\n' ' ')"
	else
		echo "  kernel $(cat "$E2E_CACHE/kernel/PACKAGE" 2>/dev/null): kindling check finds its signature (no secure_boot_unsigned_kernel warning for profiles/e2e-sb.json)" >>"$OUT/notes.txt"
	fi
	# Kindling alone on the segment.
	stop_pid "$KPID"
	stop_pid "$SITE_DHCP_PID"
	local sb_pid=""
	if start_kindling "$NS_SRV" "$WORK/kindling-sb.toml" "$KLOG" "$BASE"; then
		sb_pid=$STARTED_PID
		sb_boot || true
		stop_pid "$sb_pid"
	else
		err "kindling serve --config kindling-sb.toml did not start"
	fi
	# The segment as the other scenarios expect it.
	start_site_dhcp
	if start_kindling "$NS_SRV" "$WORK/kindling.toml" "$KLOG" "$BASE"; then
		KPID=$STARTED_PID
	else
		err "the harness's kindling serve did not start again after secure-boot"
	fi
}

sb_boot() {
	start_vm_sb vm-sb tap0 $MAC_SB "$SB_TIMEOUT"
	start_vm_sb vm-ipxe tap1 $MAC_SI "$SB_REFUSE_TIMEOUT"
	# vm-sb: stopped on a failure of the signed chain too (a refused image, a refused
	# kernel, GRUB's prompt), so that a broken chain does not wait out its timeout.
	VM_FAIL["vm-sb"]="$FAIL_PATTERN|Access Denied|Security Violation|bad shim signature|grub> "
	# vm-ipxe: the firmware's refusal ends it (or, wrongly, iPXE running).
	VM_FAIL["vm-ipxe"]='Access Denied|Security Violation|iPXE initialising|iPXE [0-9]|E2E-BOOT-OK'
	wait_vms vm-sb vm-ipxe
	capture_stop
	local s=${VM_SERIAL[vm-sb]} i=${VM_SERIAL[vm-ipxe]}
	expect_boot vm-sb $MAC_SB "$WORK/data/assets/secure-boot.ign" secure-boot
	if grep -aq 'bad shim signature' "$s"; then err "vm-sb: GRUB refused the kernel: 'bad shim signature' (an unsigned kernel)"; fi
	grep -aq 'EFI stub: UEFI Secure Boot is enabled' "$s" || err "vm-sb: serial lacks 'EFI stub: UEFI Secure Boot is enabled'"
	grep -aq 'secureboot: Secure boot enabled' "$s" || err "vm-sb: serial lacks the kernel's 'secureboot: Secure boot enabled'"
	grep -aq 'Kernel is locked down from EFI Secure Boot' "$s" || err "vm-sb: serial lacks the kernel's lockdown line"
	# The chain over the wire, in Kindling's full-mode answers and TFTP.
	expect_dhcp "10\.99\.0\.1:67 -> .* (OFFER|ACK) .*mac=$MAC_SB .*yiaddr=10\.99\.0\.2[0-9][0-9]" "Kindling's address for $MAC_SB (full mode)"
	expect_dhcp "10\.99\.0\.1:4011 -> .* ACK .*mac=$MAC_SB .*file='secureboot/shimx64\.efi'" "the 4011 ACK naming secureboot/shimx64.efi"
	local f
	for f in 'secureboot/shimx64\.efi' 'secureboot/revocations_sku\.efi' 'secureboot/grubx64\.efi' \
		'/grub/x86_64-efi/command\.lst' '/grub/grub\.cfg' "/grub\\?mac=$MAC_SB" "$(sed 's/\./\\./g' <<<"$SB_KERNEL")" '/assets/initrd\.img'; do
		expect_dhcp "TFTP RRQ '$f'" "the TFTP request for $f"
	done
	reject_dhcp "10\.99\.0\.2:67" "an answer from the site's dnsmasq (it should be stopped)"
	expect_klog 'tftp_transfer\{[^}]*file=secureboot/grubx64\.efi[^}]*\}:.* tftp transfer finished bytes=[1-9].*outcome=completed' "the finished TFTP transfer of the signed GRUB"
	expect_klog "tftp_transfer\\{[^}]*file=${SB_KERNEL}[^}]*\\}:.* tftp transfer finished bytes=[1-9].*outcome=completed" "the finished TFTP transfer of the kernel"
	expect_klog 'revocations_sku\.efi.*(refused|not provided)|not provided.*revocations_sku' "shim's optional file refused with its reason"
	# vm-ipxe: the unsigned iPXE handed out, downloaded, and refused by the firmware.
	expect_dhcp "10\.99\.0\.1:4011 -> .* ACK .*mac=$MAC_SI .*file='snponly\.efi'" "the 4011 ACK naming snponly.efi for a machine nothing routes to Secure Boot"
	expect_dhcp "TFTP RRQ 'snponly\.efi'" "the TFTP download of the unsigned iPXE"
	if grep -aq 'Access Denied' "$i"; then
		echo "  vm-ipxe: $(grep -ao 'BdsDxe: failed to load Boot[0-9]* "[^"]*"' "$i" | head -n1) ... Access Denied, after ${VM_SECS[vm-ipxe]}s" >>"$OUT/notes.txt"
	else
		err "vm-ipxe: the firmware did not refuse the unsigned iPXE within ${SB_REFUSE_TIMEOUT}s (no 'Access Denied'; QEMU ${VM_END[vm-ipxe]} after ${VM_SECS[vm-ipxe]}s)"
	fi
	if grep -aq 'iPXE initialising\|iPXE [0-9]' "$i"; then err "vm-ipxe: unsigned iPXE ran under Secure Boot"; fi
	if [ ${#ERRS[@]} = 0 ]; then
		echo "  vm-sb: $(grep -ao 'EFI stub: UEFI Secure Boot is enabled' "$s" | head -n1); $(grep -ao 'secureboot: Secure boot enabled' "$s" | head -n1); E2E-BOOT-OK after ${VM_SECS[vm-sb]}s [${VM_PHASES[vm-sb]}]" >>"$OUT/notes.txt"
	fi
}
