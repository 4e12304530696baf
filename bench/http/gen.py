#!/usr/bin/env python3
"""Generate a matchbox data directory with N groups (one MAC selector each)
over 10 profiles, plus macs.txt listing the MACs in hexhyp form."""
import json, os, sys

def main():
    out, n = sys.argv[1], int(sys.argv[2])
    for d in ("groups", "profiles", "ignition", "generic", "cloud", "assets"):
        os.makedirs(os.path.join(out, d), exist_ok=True)
    for p in range(10):
        prof = {
            "id": f"profile-{p}",
            "name": f"Profile {p}",
            "ignition_id": f"profile-{p}.ign",
            "boot": {
                "kernel": f"/assets/fedora-coreos/{p}/kernel",
                "initrd": [f"--name main /assets/fedora-coreos/{p}/initramfs.img"],
                "args": ["initrd=main", "ignition.firstboot", "ignition.platform.id=metal",
                         f"coreos.live.rootfs_url=http://10.0.0.1:8080/assets/fedora-coreos/{p}/rootfs.img",
                         "ignition.config.url=http://10.0.0.1:8080/ignition?mac=${mac:hexhyp}"],
            },
        }
        with open(os.path.join(out, "profiles", f"profile-{p}.json"), "w") as f:
            json.dump(prof, f, indent=2)
    macs = []
    for i in range(n):
        mac = "52:54:%02x:%02x:%02x:%02x" % ((i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255)
        g = {"id": f"node-{i}", "name": f"Node {i}", "profile": f"profile-{i % 10}",
             "selector": {"mac": mac}, "metadata": {"hostname": f"node-{i}"}}
        with open(os.path.join(out, "groups", f"node-{i}.json"), "w") as f:
            json.dump(g, f)
        macs.append(mac.replace(":", "-"))
    with open(os.path.join(out, "macs.txt"), "w") as f:
        f.write("\n".join(macs) + "\n")

main()
