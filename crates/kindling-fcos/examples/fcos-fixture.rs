//! A stand-in Fedora CoreOS builds host for end-to-end tests: serves a
//! stream JSON for one release whose kernel, initramfs and rootfs are the
//! files given, with detached signatures by a key generated at start (its
//! public key is written to --keyring-out). Prints the base URL on the first
//! line of stdout, then serves until killed.
//!
//! ```text
//! cargo run -p kindling-fcos --example fcos-fixture -- \
//!     --kernel vmlinuz --initramfs initrd.img [--rootfs FILE] \
//!     --release 43.20251101.3.0 --keyring-out /tmp/k/test.asc [--listen 127.0.0.1:0]
//! kindling fcos pull --base-url <printed URL> --keyring /tmp/k/test.asc \
//!     --server-url http://10.0.0.1:8080
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::PathBuf;

use common::{Fixture, Release, TestKey, publish};

fn main() {
    let mut kernel = None;
    let mut initramfs = None;
    let mut rootfs = None;
    let mut release = "43.20251101.3.0".to_string();
    let mut keyring_out = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--kernel" => kernel = Some(PathBuf::from(val())),
            "--initramfs" => initramfs = Some(PathBuf::from(val())),
            "--rootfs" => rootfs = Some(PathBuf::from(val())),
            "--release" => release = val(),
            "--keyring-out" => keyring_out = Some(PathBuf::from(val())),
            "--listen" => {
                let v = val();
                if v != "127.0.0.1:0" {
                    usage("only --listen 127.0.0.1:0 is supported");
                }
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let read = |p: Option<PathBuf>, what: &str| -> Vec<u8> {
        let p = p.unwrap_or_else(|| usage(&format!("--{what} is required")));
        std::fs::read(&p).unwrap_or_else(|e| usage(&format!("{}: {e}", p.display())))
    };
    let key = TestKey::generate("Kindling e2e fixture <e2e@kindling.invalid>");
    let out = keyring_out.unwrap_or_else(|| usage("--keyring-out is required"));
    if let Some(d) = out.parent() {
        std::fs::create_dir_all(d).unwrap_or_else(|e| usage(&e.to_string()));
    }
    std::fs::write(
        &out,
        key.public
            .to_armored_bytes(Default::default())
            .expect("armor"),
    )
    .unwrap_or_else(|e| usage(&format!("{}: {e}", out.display())));
    let mut rel = Release::new(&release, 1);
    rel.kernel.1 = read(kernel, "kernel");
    rel.initramfs.1 = read(initramfs, "initramfs");
    // The stand-in kernel never fetches the rootfs; a small file will do.
    rel.rootfs.1 = match rootfs {
        Some(p) => read(Some(p), "rootfs"),
        None => b"kindling e2e stand-in rootfs\n".to_vec(),
    };
    let fx = Fixture::start();
    publish(&fx, &rel, &key);
    println!("{}", fx.base_url());
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("fcos-fixture: {msg}");
    eprintln!(
        "usage: fcos-fixture --kernel FILE --initramfs FILE [--rootfs FILE] [--release R] --keyring-out FILE [--listen 127.0.0.1:0]"
    );
    std::process::exit(2)
}
