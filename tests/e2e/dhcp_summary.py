#!/usr/bin/env python3
"""Summarise the DHCP/ProxyDHCP and TFTP request traffic of a pcap (Ethernet or Linux
cooked capture), one line per packet, times relative to the first packet.

    dhcp_summary.py capture.pcap

Only the Python standard library; reads classic pcap (what tcpdump -w writes).
"""

import struct
import sys

MSG_TYPES = {
    1: "DISCOVER",
    2: "OFFER",
    3: "REQUEST",
    4: "DECLINE",
    5: "ACK",
    6: "NAK",
    7: "RELEASE",
    8: "INFORM",
}
DHCP_PORTS = {67, 68, 4011}


def packets(path):
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return
        magic = head[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            endian = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            endian = ">"
        else:
            raise SystemExit(f"{path}: not a classic pcap file")
        nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        linktype = struct.unpack(endian + "I", head[20:24])[0]
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            sec, frac, incl, _orig = struct.unpack(endian + "IIII", rec)
            data = f.read(incl)
            if len(data) < incl:
                return
            t = sec + frac / (1e9 if nano else 1e6)
            yield t, linktype, data


def ipv4_udp(linktype, frame):
    """Returns (src, sport, dst, dport, payload) or None."""
    if linktype == 1:  # Ethernet
        off, ethertype = 14, frame[12:14]
        if ethertype == b"\x81\x00":  # VLAN tag
            off, ethertype = 18, frame[16:18]
    elif linktype == 113:  # Linux cooked (any)
        off, ethertype = 16, frame[14:16]
    else:
        return None
    if ethertype != b"\x08\x00" or len(frame) < off + 20:
        return None
    ip = frame[off:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] != 17 or len(ip) < ihl + 8:
        return None
    src = ".".join(str(b) for b in ip[12:16])
    dst = ".".join(str(b) for b in ip[16:20])
    sport, dport, ulen = struct.unpack("!HHH", ip[ihl : ihl + 6])
    payload = ip[ihl + 8 : ihl + max(ulen, 8)]
    return src, sport, dst, dport, payload


def cstr(b):
    return b.split(b"\0", 1)[0].decode("latin-1")


def dhcp_line(p):
    if len(p) < 240 or p[236:240] != b"\x63\x82\x53\x63":
        return None
    xid = p[4:8].hex()
    ciaddr, yiaddr, siaddr = (".".join(str(b) for b in p[i : i + 4]) for i in (12, 16, 20))
    mac = ":".join(f"{b:02x}" for b in p[28:34])
    sname, bootfile = cstr(p[44:108]), cstr(p[108:236])
    opts, i = {}, 240
    while i < len(p):
        code = p[i]
        if code == 0:
            i += 1
            continue
        if code == 255 or i + 1 >= len(p):
            break
        ln = p[i + 1]
        opts.setdefault(code, b"")
        opts[code] += p[i + 2 : i + 2 + ln]
        i += 2 + ln
    mt = MSG_TYPES.get(opts.get(53, b"\0")[0], "BOOTP") if 53 in opts else "BOOTP"
    parts = [mt, f"xid={xid}", f"mac={mac}"]
    if ciaddr != "0.0.0.0":
        parts.append(f"ciaddr={ciaddr}")
    if yiaddr != "0.0.0.0":
        parts.append(f"yiaddr={yiaddr}")
    if siaddr != "0.0.0.0":
        parts.append(f"siaddr={siaddr}")
    if sname:
        parts.append(f"sname={sname!r}")
    if bootfile:
        parts.append(f"file={bootfile!r}")
    if 54 in opts and len(opts[54]) == 4:
        parts.append("server=" + ".".join(str(b) for b in opts[54]))
    if 60 in opts:
        parts.append(f"opt60={opts[60].decode('latin-1')!r}")
    if 93 in opts:
        arches = [struct.unpack("!H", opts[93][j : j + 2])[0] for j in range(0, len(opts[93]) - 1, 2)]
        parts.append("opt93=" + ",".join(str(a) for a in arches))
    if 77 in opts:
        parts.append(f"opt77={opts[77].decode('latin-1')!r}")
    if 175 in opts:
        parts.append("opt175")
    if 43 in opts:
        parts.append("opt43=" + opts[43].hex())
    return " ".join(parts)


def tftp_line(p):
    if len(p) < 4:
        return None
    op = struct.unpack("!H", p[:2])[0]
    if op not in (1, 5):
        return None
    if op == 5:
        return f"TFTP ERROR {cstr(p[4:])!r}"
    fields = p[2:].split(b"\0")
    name = fields[0].decode("latin-1") if fields else ""
    rest = [f.decode("latin-1") for f in fields[2:] if f]
    return f"TFTP RRQ {name!r} " + " ".join(rest)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    t0 = None
    lines = 0
    for t, linktype, frame in packets(sys.argv[1]):
        u = ipv4_udp(linktype, frame)
        if u is None:
            continue
        src, sport, dst, dport, payload = u
        text = None
        if sport in DHCP_PORTS and dport in DHCP_PORTS:
            text = dhcp_line(payload)
        elif dport == 69:
            text = tftp_line(payload)
        if text is None:
            continue
        if t0 is None:
            t0 = t
        print(f"+{t - t0:6.2f}s {src}:{sport} -> {dst}:{dport} {text}")
        lines += 1
    if lines == 0:
        print("(no DHCP or TFTP request packets captured)")


if __name__ == "__main__":
    main()
