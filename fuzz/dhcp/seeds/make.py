#!/usr/bin/env python3
"""Writes the seed corpus of the `decide` fuzz target: PXE packets of each firmware kind
on both ports (first byte: bit 0 config, bit 1 port 4011, bits 2-7 source host)."""
import os, struct

def packet(op, msg, mac, arch=None, vendor=b"PXEClient:Arch:00000:UNDI:002001", user=None,
           giaddr=b"\0\0\0\0", ciaddr=b"\0\0\0\0", extra=b""):
    p = struct.pack("!BBBB", op, 1, 6, 0) + b"\x12\x34\x56\x78" + b"\0\0\x80\0"
    p += ciaddr + b"\0" * 8 + giaddr + mac + b"\0" * 10 + b"\0" * 192
    p += b"\x63\x82\x53\x63" + bytes([53, 1, msg])
    if vendor is not None:
        p += bytes([60, len(vendor)]) + vendor
    if arch is not None:
        p += bytes([93, 2]) + struct.pack("!H", arch)
    p += bytes([97, 17, 0]) + b"\x11" * 16 + bytes([94, 3, 1, 2, 1])
    if user is not None:
        p += bytes([77, len(user)]) + user
    p += extra + b"\xff"
    return p

mac = bytes.fromhex("525400123456")
seeds = {
    "bios_discover": (0, packet(1, 1, mac, arch=0)),
    "uefi_discover": (1, packet(1, 1, mac, arch=7, vendor=b"PXEClient:Arch:00007:UNDI:003016")),
    "http_discover": (0, packet(1, 1, mac, arch=16, vendor=b"HTTPClient:Arch:00016:UNDI:003001")),
    "ipxe_discover": (1, packet(1, 1, mac, arch=0, user=b"iPXE", extra=bytes([175, 3, 19, 1, 1]))),
    "arm64_discover": (1, packet(1, 1, mac, arch=11, vendor=b"PXEClient:Arch:00011:UNDI:003000")),
    "relayed_discover": (0 | (5 << 2), packet(1, 1, mac, arch=0, giaddr=bytes([10, 0, 0, 9]))),
    "pxe_request_4011": (2 | (9 << 2), packet(1, 3, mac, arch=7, vendor=b"PXEClient:Arch:00007:UNDI:003016",
                                             ciaddr=bytes([10, 0, 0, 9]),
                                             extra=bytes([43, 7, 71, 4, 0x80, 0, 0, 0, 255]))),
    "dhcp_request": (0, packet(1, 3, mac, arch=0, extra=bytes([50, 4, 10, 0, 0, 9]))),
    "not_pxe": (0, packet(1, 1, mac, vendor=b"MSFT 5.0")),
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "decide")
os.makedirs(out, exist_ok=True)
for name, (sel, p) in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([sel]) + p)
