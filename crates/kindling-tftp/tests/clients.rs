//! Real clients (atftp, curl, busybox tftp) against the server on 127.0.0.1:
//! byte-identical downloads for boundary sizes, block sizes and window sizes,
//! and files one block past the 16-bit block-number rollover.
//! A case whose client binary is missing is skipped with a message.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, config, have, pattern, tempdir};

#[derive(Clone, Copy, Debug)]
enum Client {
    Atftp,
    Curl,
    Busybox,
}

impl Client {
    fn bin(self) -> &'static str {
        match self {
            Client::Atftp => "atftp",
            Client::Curl => "curl",
            Client::Busybox => "busybox",
        }
    }
}

/// Download `name` with `client`; returns the bytes. `blksize`/`windowsize` None: no option.
fn fetch(
    client: Client,
    srv: &Server,
    name: &str,
    out_dir: &Path,
    blksize: Option<u16>,
    windowsize: Option<u16>,
) -> Vec<u8> {
    let out = out_dir.join(format!(
        "{name}.{:?}.{}.{}",
        client,
        blksize.unwrap_or(0),
        windowsize.unwrap_or(0)
    ));
    let _ = std::fs::remove_file(&out);
    let port = srv.addr.port().to_string();
    let mut cmd = Command::new("timeout");
    cmd.arg("300").arg(client.bin());
    match client {
        Client::Atftp => {
            cmd.args(["-g", "-r", name, "-l"]).arg(&out);
            if let Some(b) = blksize {
                cmd.args(["--option", &format!("blksize {b}")]);
            }
            if let Some(w) = windowsize {
                cmd.args(["--option", &format!("windowsize {w}")]);
            }
            cmd.args(["--option", "tsize 0", "127.0.0.1", &port]);
        }
        Client::Curl => {
            assert!(windowsize.is_none(), "curl has no windowsize");
            cmd.args(["-sS", "-o"]).arg(&out);
            if name == "f0" {
                // curl 7.88 aborts with "(71) getpeername() failed" when an OACK reports
                // tsize 0 (same against tftpd-hpa); fetch the empty file without options.
                cmd.arg("--tftp-no-options");
            } else if let Some(b) = blksize {
                cmd.args(["--tftp-blksize", &b.to_string()]);
            }
            cmd.arg(format!("tftp://127.0.0.1:{port}/{name}"));
        }
        Client::Busybox => {
            assert!(windowsize.is_none(), "busybox tftp has no windowsize");
            cmd.args(["tftp", "-g"]);
            if let Some(b) = blksize {
                cmd.args(["-b", &b.to_string()]);
            }
            cmd.args(["-r", name, "-l"])
                .arg(&out)
                .args(["127.0.0.1", &port]);
        }
    }
    let res = cmd.output().expect("spawn client");
    assert!(
        res.status.success(),
        "{client:?} {name} blksize {blksize:?} windowsize {windowsize:?} failed: {}\n{}\n{}",
        res.status,
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    match std::fs::read(&out) {
        Ok(v) => {
            let _ = std::fs::remove_file(&out);
            v
        }
        // curl does not create the output file for an empty body.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && matches!(client, Client::Curl) => {
            Vec::new()
        }
        Err(e) => panic!("{client:?} produced no file {}: {e}", out.display()),
    }
}

fn sizes_for(bs: usize) -> Vec<usize> {
    let mut v = vec![0, 511, 512, 513, bs - 1, bs, bs + 1, 3 * bs + 17];
    v.sort_unstable();
    v.dedup();
    v
}

/// Root with one file per size, named `f<size>`.
fn populate(root: &Path, sizes: &[usize]) {
    for &s in sizes {
        std::fs::write(root.join(format!("f{s}")), pattern(s, s as u64)).unwrap();
    }
}

fn matrix(client: Client, windowsizes: &[Option<u16>]) {
    if !have(client.bin()) {
        eprintln!("SKIP: {} not installed", client.bin());
        return;
    }
    let root = tempdir("tftp-root");
    let out = tempdir("tftp-out");
    let mut all: Vec<usize> = [512usize, 1468, 8192]
        .iter()
        .flat_map(|&b| sizes_for(b))
        .collect();
    all.sort_unstable();
    all.dedup();
    populate(root.path(), &all);
    let srv = Server::start(config(root.path()));
    let mut n = 0;
    for bs in [512u16, 1468, 8192] {
        for &ws in windowsizes {
            for size in sizes_for(bs.into()) {
                let got = fetch(client, &srv, &format!("f{size}"), out.path(), Some(bs), ws);
                assert!(
                    got == pattern(size, size as u64),
                    "{client:?} size {size} blksize {bs} windowsize {ws:?}: got {} bytes, content differs",
                    got.len()
                );
                n += 1;
            }
        }
    }
    let st = srv.settled(n);
    assert_eq!(st.transfers_ok, n);
    assert_eq!(st.transfers_failed, 0);
    eprintln!("{client:?}: {n} transfers byte-identical; {st:?}");
}

#[test]
fn atftp_sizes_blksizes_windowsizes() {
    matrix(Client::Atftp, &[Some(1), Some(4), Some(16)]);
}

#[test]
fn curl_sizes_blksizes() {
    matrix(Client::Curl, &[None]);
}

#[test]
fn busybox_sizes_blksizes() {
    matrix(Client::Busybox, &[None]);
}

/// 65536 full blocks plus one byte: block numbers go 65535 -> 0 -> 1.
fn rollover(client: Client, bs: u16, ws: Option<u16>) {
    if !have(client.bin()) {
        eprintln!("SKIP: {} not installed", client.bin());
        return;
    }
    let root = tempdir("tftp-roll");
    let size = 65536 * usize::from(bs) + 1;
    let want = pattern(size, 42);
    std::fs::write(root.path().join("big.bin"), &want).unwrap();
    let srv = Server::start(config(root.path()));
    let blk = if bs == 512 { None } else { Some(bs) };
    let got = fetch(client, &srv, "big.bin", root.path(), blk, ws);
    assert_eq!(got.len(), want.len(), "{client:?} rollover length");
    assert!(got == want, "{client:?} rollover content differs");
    let st = srv.settled(1);
    assert_eq!(st.transfers_ok, 1, "{st:?}");
}

#[test]
fn rollover_atftp_blksize_512_window_16() {
    rollover(Client::Atftp, 512, Some(16));
}

#[test]
fn rollover_atftp_lockstep_512() {
    rollover(Client::Atftp, 512, None);
}

#[test]
fn rollover_atftp_blksize_1468_window_16() {
    rollover(Client::Atftp, 1468, Some(16));
}

#[test]
fn rollover_curl_512() {
    rollover(Client::Curl, 512, None);
}

#[test]
fn rollover_busybox_512() {
    rollover(Client::Busybox, 512, None);
}
