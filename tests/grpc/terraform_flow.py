#!/usr/bin/env python3
"""Drives Kindling's matchbox gRPC API as terraform-provider-matchbox does, with an
independent client: Python grpcio, stubs generated from the .proto files now.

Run by crates/kindling/tests/grpc.rs against a real `kindling serve` on loopback:

  terraform_flow.py --rpc 127.0.0.1:PORT --http 127.0.0.1:PORT --proto-dir DIR \
      --stubs DIR --ca CA.pem --cert CLIENT.pem --key CLIENT.key \
      --other-cert OTHER.pem --other-key OTHER.key

Every check prints one line; the first failure raises (exit status 1) with what was
expected and what came back.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request


def stubs(proto_dir, out):
    os.makedirs(out, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_dir}",
         f"--python_out={out}", f"--grpc_python_out={out}",
         "storage.proto", "messages.proto", "rpc.proto"],
        check=True,
    )
    sys.path.insert(0, out)


def check(cond, what, got=None):
    if not cond:
        raise AssertionError(f"FAILED: {what}" + ("" if got is None else f": got {got!r}"))
    print(f"ok: {what}")


def http_get(base, path):
    try:
        with urllib.request.urlopen(f"http://{base}{path}", timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def eventually(base, path, want_status, contains=None, within=10.0):
    """The API answers once the snapshot holds a write; this allows the reload time."""
    deadline = time.monotonic() + within
    while True:
        status, body = http_get(base, path)
        if status == want_status and (contains is None or contains in body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(
                f"FAILED: GET {path}: want {want_status} with {contains!r}, got {status}: {body[:300]!r}")
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    for a in ["rpc", "http", "proto-dir", "stubs", "ca", "cert", "key", "other-cert", "other-key"]:
        ap.add_argument(f"--{a}", required=True)
    args = ap.parse_args()
    stubs(args.proto_dir, args.stubs)

    import grpc
    import messages_pb2 as m
    import rpc_pb2_grpc as rpc
    import storage_pb2 as s

    read = lambda p: open(p, "rb").read()
    ca = read(args.ca)
    # The server's certificate names 127.0.0.1 and localhost, as a matchbox
    # deployment's names its host.
    def channel(cert=None, key=None):
        creds = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=read(key) if key else None,
            certificate_chain=read(cert) if cert else None,
        )
        return grpc.secure_channel(args.rpc, creds)

    ch = channel(args.cert, args.key)
    groups, profiles = rpc.GroupsStub(ch), rpc.ProfilesStub(ch)
    ignition, generic, select = rpc.IgnitionStub(ch), rpc.GenericStub(ch), rpc.SelectStub(ch)
    T = 20  # seconds per call

    # --- resource "matchbox_profile": ProfilePut, then IgnitionPut "<name>.ign" ---------
    raw_ignition = json.dumps({
        "ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/hostname", "mode": 420,
                               "contents": {"source": "data:,worker"}}]},
    })
    boot = s.NetBoot(
        kernel="/assets/fedora-coreos/kernel",
        initrd=["--name main /assets/fedora-coreos/initramfs.img"],
        args=["initrd=main", "coreos.live.rootfs_url=http://example.test/rootfs.img",
              "ignition.firstboot", "ignition.platform.id=metal",
              "ignition.config.url=http://example.test/ignition?uuid=${uuid}&mac=${mac:hexhyp}"],
    )
    profile = s.Profile(id="worker", ignition_id="worker.ign", boot=boot)
    profiles.ProfilePut(m.ProfilePutRequest(profile=profile), timeout=T)
    ignition.IgnitionPut(m.IgnitionPutRequest(name="worker.ign", config=raw_ignition.encode()), timeout=T)
    got = profiles.ProfileGet(m.ProfileGetRequest(id="worker"), timeout=T).profile
    check(got == profile, "ProfileGet returns the profile as put", got)
    got = ignition.IgnitionGet(m.IgnitionGetRequest(name="worker.ign"), timeout=T).config
    check(got == raw_ignition.encode(), "IgnitionGet returns the bytes as put")

    # A Butane config is stored as given and translated when served.
    butane = "variant: fcos\nversion: 1.5.0\npasswd:\n  users:\n    - name: core\n      ssh_authorized_keys:\n        - {{.ssh_key}}\n"
    ignition.IgnitionPut(m.IgnitionPutRequest(name="controller.yaml", config=butane.encode()), timeout=T)
    profiles.ProfilePut(m.ProfilePutRequest(profile=s.Profile(
        id="controller", name="Controller", ignition_id="controller.yaml", generic_id="controller.txt",
        boot=s.NetBoot(kernel="/assets/k", initrd=["/assets/i"], args=["console=ttyS0"]))), timeout=T)
    generic.GenericPut(m.GenericPutRequest(name="controller.txt", config=b"role={{.role}}\n"), timeout=T)
    got = generic.GenericGet(m.GenericGetRequest(name="controller.txt"), timeout=T).config
    check(got == b"role={{.role}}\n", "GenericGet returns the template as put")

    # --- resource "matchbox_group": GroupPut with metadata as JSON bytes -----------------
    group = s.Group(id="node1", name="node1", profile="worker",
                    selector={"mac": "52:54:00:a1:9c:ae"},
                    metadata=json.dumps({"hostname": "node1.example", "pxe": "yes"}).encode())
    groups.GroupPut(m.GroupPutRequest(group=group), timeout=T)
    got = groups.GroupGet(m.GroupGetRequest(id="node1"), timeout=T).group
    check((got.id, got.name, got.profile, dict(got.selector)) ==
          ("node1", "node1", "worker", {"mac": "52:54:00:a1:9c:ae"}), "GroupGet returns the group", got)
    check(json.loads(got.metadata) == {"hostname": "node1.example", "pxe": "yes"},
          "GroupGet returns the metadata", got.metadata)
    groups.GroupPut(m.GroupPutRequest(group=s.Group(
        id="control", profile="controller", selector={"role": "control"},
        metadata=json.dumps({"ssh_key": "ssh-ed25519 AAAAC3Nza test", "role": "control"}).encode()
    )), timeout=T)
    ids = sorted(g.id for g in groups.GroupList(m.GroupListRequest(), timeout=T).groups)
    check(ids == ["control", "node1"], "GroupList lists both groups", ids)
    ids = sorted(p.id for p in profiles.ProfileList(m.ProfileListRequest(), timeout=T).profiles)
    check(ids == ["controller", "worker"], "ProfileList lists both profiles", ids)

    # --- Select, as matchbox's bootcmd and the provider's tests use it -----------------
    got = select.SelectGroup(m.SelectGroupRequest(labels={"mac": "52:54:00:a1:9c:ae"}), timeout=T).group
    check(got.id == "node1", "SelectGroup by MAC", got.id)
    got = select.SelectGroup(m.SelectGroupRequest(labels={"mac": "52-54-00-A1-9C-AE"}), timeout=T).group
    check(got.id == "node1", "SelectGroup by a MAC written another way", got.id)
    got = select.SelectProfile(m.SelectProfileRequest(labels={"mac": "52:54:00:a1:9c:ae"}), timeout=T).profile
    check(got.id == "worker" and got.boot.kernel == boot.kernel, "SelectProfile by MAC", got)
    try:
        select.SelectGroup(m.SelectGroupRequest(labels={"mac": "52:54:00:00:00:99"}), timeout=T)
        check(False, "SelectGroup for an unknown machine fails")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.NOT_FOUND and "No matching Group" in e.details(),
              "SelectGroup for an unknown machine: NOT_FOUND, matchbox's words", (e.code(), e.details()))

    # --- what was written is served on the boot endpoints ----------------------------
    mac = "52:54:00:a1:9c:ae"
    body = eventually(args.http, f"/ipxe?mac={mac}", 200, "kernel /assets/fedora-coreos/kernel")
    check("ignition.config.url=http://example.test/ignition" in body, "/ipxe serves the profile's args", body)
    body = eventually(args.http, f"/ignition?mac={mac}", 200, "/etc/hostname")
    check(json.loads(body)["storage"]["files"][0]["path"] == "/etc/hostname", "/ignition serves the raw Ignition")
    body = eventually(args.http, f"/metadata?mac={mac}", 200, "HOSTNAME=node1.example")
    check("PXE=yes" in body, "/metadata serves the group's metadata", body)
    body = eventually(args.http, "/ignition?role=control", 200, "ssh-ed25519 AAAAC3Nza test")
    check(json.loads(body)["ignition"]["version"].startswith("3."),
          "/ignition translates the stored Butane, rendered with the group's metadata", body)
    body = eventually(args.http, "/generic?role=control", 200, "role=control")

    # --- what matchbox v0.9 accepts and Kindling refuses ------------------------------
    def refused(call, what, code=grpc.StatusCode.INVALID_ARGUMENT):
        try:
            call()
            check(False, what)
        except grpc.RpcError as e:
            check(e.code() == code, f"{what}: {code.name}", (e.code(), e.details()))
            check("/var/" not in e.details() and "/tmp/" not in e.details(),
                  f"{what}: the error names no server path", e.details())

    refused(lambda: ignition.IgnitionPut(m.IgnitionPutRequest(
        name="../profiles/evil.json", config=b"{}"), timeout=T), "an Ignition name with ../ is refused")
    refused(lambda: generic.GenericPut(m.GenericPutRequest(
        name="a/b", config=b"x"), timeout=T), "a generic name with / is refused")
    refused(lambda: groups.GroupPut(m.GroupPutRequest(group=s.Group(
        id="", profile="worker")), timeout=T), "a group without an id is refused")
    refused(lambda: groups.GroupPut(m.GroupPutRequest(group=s.Group(
        id="bad-mac", profile="worker", selector={"mac": "not-a-mac"})), timeout=T),
        "a group with an unparsable MAC selector is refused at Put")
    refused(lambda: groups.GroupPut(m.GroupPutRequest(group=s.Group(
        id="bad-meta", profile="worker", metadata=b"[1,2]")), timeout=T),
        "a group whose metadata is not a JSON object is refused")
    refused(lambda: groups.GroupGet(m.GroupGetRequest(id="missing"), timeout=T),
            "GroupGet of a missing group", grpc.StatusCode.NOT_FOUND)
    refused(lambda: ignition.IgnitionGet(m.IgnitionGetRequest(name="missing.ign"), timeout=T),
            "IgnitionGet of a missing config", grpc.StatusCode.NOT_FOUND)
    ids = sorted(g.id for g in groups.GroupList(m.GroupListRequest(), timeout=T).groups)
    check(ids == ["control", "node1"], "nothing refused was written", ids)
    try:
        ch.unary_unary("/rpcpb.Groups/GroupRename")(b"", timeout=T)
        check(False, "an unknown method fails")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.UNIMPLEMENTED, "an unknown method: UNIMPLEMENTED", e.code())

    # --- terraform destroy: deletes, then deletes again (objects already gone) --------
    for _ in range(2):
        groups.GroupDelete(m.GroupDeleteRequest(id="node1"), timeout=T)
        groups.GroupDelete(m.GroupDeleteRequest(id="control"), timeout=T)
        profiles.ProfileDelete(m.ProfileDeleteRequest(id="worker"), timeout=T)
        profiles.ProfileDelete(m.ProfileDeleteRequest(id="controller"), timeout=T)
        ignition.IgnitionDelete(m.IgnitionDeleteRequest(name="worker.ign"), timeout=T)
        ignition.IgnitionDelete(m.IgnitionDeleteRequest(name="controller.yaml"), timeout=T)
        generic.GenericDelete(m.GenericDeleteRequest(name="controller.txt"), timeout=T)
    check(True, "deleting objects that are already gone succeeds (terraform destroy survives)")
    check(len(groups.GroupList(m.GroupListRequest(), timeout=T).groups) == 0, "GroupList is empty")
    refused(lambda: profiles.ProfileGet(m.ProfileGetRequest(id="worker"), timeout=T),
            "ProfileGet after delete", grpc.StatusCode.NOT_FOUND)
    eventually(args.http, f"/ipxe?mac={mac}", 404)
    check(True, "/ipxe no longer knows the machine")

    # --- mutual TLS: no client certificate, or one from another CA ---------------------
    for what, c in [("without a client certificate", channel()),
                    ("with another CA's client certificate", channel(args.other_cert, args.other_key))]:
        try:
            rpc.GroupsStub(c).GroupList(m.GroupListRequest(), timeout=T)
            check(False, f"a client {what} is refused")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.UNAVAILABLE, f"a client {what} is refused", (e.code(), e.details()))
    print("terraform_flow: all checks passed")


if __name__ == "__main__":
    main()
