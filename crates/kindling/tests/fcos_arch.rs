//! (Issue 15, must-show 1) One stream, two architectures, one fleet: the
//! fixture stream (x86_64 and aarch64 artifacts signed with a throwaway key)
//! pulled for both through `kindling fcos pull`; a real `kindling serve`
//! then hands each machine its own architecture's kernel on `/ipxe`,
//! routed by iPXE's `${buildarch}` (the `arch` label of the chain URL),
//! and the bytes behind those paths are that architecture's.

mod common;

#[allow(unused_imports)]
#[path = "../../kindling-fcos/tests/common/mod.rs"]
mod fixture;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{Scratch, Server, request};
use fixture::{Fixture, Release, TestKey, publish_files, stream_json_arches};
use serde_json::Value;

fn pull(data: &Path, work: &Path, fx: &Fixture, keyring: &Path, arch: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_kindling"))
        .current_dir(work)
        .env_remove("KINDLING_FCOS_BASE_URL")
        .args(["--data-dir"])
        .arg(data)
        .args(["fcos", "pull", "--stream", "stable", "--arch", arch])
        .args(["--base-url", &fx.base_url(), "--keyring"])
        .arg(keyring)
        .args(["--server-url", "http://10.0.2.2:8080"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pull --arch {arch}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

#[test]
fn each_architecture_boots_its_own_kernel() {
    let scratch = Scratch::new("fcos-arch");
    let data = scratch.root.join("data");
    for d in ["groups", "profiles", "ignition", "assets"] {
        fs::create_dir_all(data.join(d)).unwrap();
    }
    let fx = Fixture::start();
    let key = TestKey::generate("Fedora CoreOS test key <test@kindling.invalid>");
    let keyring = key.write_keyring(&scratch.root.join("keys"));
    let x86 = Release::for_arch("43.20261101.3.0", "x86_64", 10_000);
    let arm = Release::for_arch("43.20261101.3.0", "aarch64", 12_000);
    for r in [&x86, &arm] {
        publish_files(&fx, r, &|d| key.sign(d));
    }
    fx.put(
        "/streams/stable.json",
        stream_json_arches(&fx, &[&x86, &arm]),
    );

    pull(&data, &scratch.root, &fx, &keyring, "x86_64");
    let x86_profile = fs::read(data.join("profiles/fedora-coreos-stable.json")).unwrap();
    pull(&data, &scratch.root, &fx, &keyring, "aarch64");
    assert_eq!(
        fs::read(data.join("profiles/fedora-coreos-stable.json")).unwrap(),
        x86_profile,
        "the aarch64 pull rewrote the x86_64 profile"
    );

    // Each track's state and its release record agree on stream, arch and release.
    for (rel, dir) in [(&x86, "stable"), (&arm, "stable-aarch64")] {
        let sdir = data.join("assets/fedora-coreos").join(dir);
        let state = json(&sdir.join("state.json"));
        let record = json(&sdir.join(&rel.release).join("release.json"));
        for v in [&state, &record] {
            assert_eq!(v["stream"], "stable", "{v}");
            assert_eq!(v["arch"], rel.arch.as_str(), "{v}");
        }
        assert_eq!(state["current"], record["release"]);
        assert_eq!(record["kernel"], rel.kernel.0.as_str());
        assert_eq!(record["signed_by"].as_array().unwrap().len(), 3);
    }

    // One group per architecture: the arm64 one is the more specific, so
    // every other machine (x86_64 UEFI, i386 BIOS iPXE) gets x86_64.
    fs::write(
        data.join("groups/fcos-arm64.json"),
        r#"{"id":"fcos-arm64","profile":"fedora-coreos-stable-aarch64","selector":{"arch":"arm64"}}"#,
    )
    .unwrap();
    fs::write(
        data.join("groups/fcos.json"),
        r#"{"id":"fcos","profile":"fedora-coreos-stable"}"#,
    )
    .unwrap();
    let server = Server::start(&data, &scratch.root);

    let dir = |d: &str, rel: &Release| format!("/assets/fedora-coreos/{d}/{}", rel.release);
    for (mac, buildarch, rel, d) in [
        ("52-54-00-00-00-01", "x86_64", &x86, "stable"),
        ("52-54-00-00-00-02", "i386", &x86, "stable"),
        ("52-54-00-00-00-03", "arm64", &arm, "stable-aarch64"),
    ] {
        let target = format!("/ipxe?uuid=&mac={mac}&domain=&hostname=&serial=&arch={buildarch}");
        let r = request(server.addr, "GET", &target, &[], b"").unwrap();
        assert_eq!(r.status, 200, "{target}");
        let script = String::from_utf8(r.body).unwrap();
        let kernel = format!("{}/{}", dir(d, rel), rel.kernel.0);
        assert!(
            script.contains(&format!("kernel {kernel} ")),
            "{buildarch}: {script}"
        );
        assert!(
            script.contains(&format!(
                "initrd --name main {}/{}",
                dir(d, rel),
                rel.initramfs.0
            )),
            "{buildarch}: {script}"
        );
        assert!(
            script.contains(&format!(
                "coreos.live.rootfs_url=http://10.0.2.2:8080{}/{}",
                dir(d, rel),
                rel.rootfs.0
            )),
            "{buildarch}: {script}"
        );
        // What the script names is served, byte for byte that architecture's.
        for (name, bytes) in rel.parts() {
            let r = request(
                server.addr,
                "GET",
                &format!("{}/{name}", dir(d, rel)),
                &[],
                b"",
            )
            .unwrap();
            assert_eq!(r.status, 200, "{name}");
            assert_eq!(&r.body, bytes, "{name}");
        }
    }
}
