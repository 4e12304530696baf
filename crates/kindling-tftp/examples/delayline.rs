//! User-space delay line between two TAP devices in two network namespaces
//! (this kernel has no netem). Every Ethernet frame read from one TAP is
//! written to the other after `--delay-us` microseconds (one way), so the
//! round-trip time is twice that. Used by bench/tftp/run.sh.
//!
//! Usage: delayline NS_A TAP_A NS_B TAP_B DELAY_US
//! The TAP devices must already exist (`ip -n NS tuntap add dev TAP mode tap`).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn enter_netns(name: &str) -> std::io::Result<()> {
    let f = File::open(format!("/var/run/netns/{name}"))?;
    // SAFETY: setns on a valid namespace fd.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn open_tap(name: &str) -> std::io::Result<File> {
    let path = c"/dev/net/tun";
    // SAFETY: open(2) with a valid C string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, owned descriptor.
    let file = unsafe { File::from_raw_fd(fd) };
    // struct ifreq: 16-byte name + union (flags as c_short first), 40 bytes in all.
    let mut ifr = [0u8; 40];
    let n = name.len().min(15);
    ifr[..n].copy_from_slice(&name.as_bytes()[..n]);
    let flags: libc::c_short = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    // SAFETY: TUNSETIFF with a properly sized ifreq buffer.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, ifr.as_mut_ptr()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file)
}

fn pump(mut src: File, mut dst: File, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        loop {
            match src.read(&mut buf) {
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    eprintln!("delayline: read: {e}");
                    return;
                }
            }
        }
    });
    std::thread::spawn(move || {
        while let Ok((due, frame)) = rx.recv() {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let _ = dst.write(&frame);
        }
    });
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 5 {
        eprintln!("usage: delayline NS_A TAP_A NS_B TAP_B DELAY_US");
        std::process::exit(2);
    }
    let delay = Duration::from_micros(a[4].parse().unwrap_or(500));
    let open = |ns: &str, tap: &str| -> File {
        enter_netns(ns)
            .and_then(|_| open_tap(tap))
            .unwrap_or_else(|e| {
                eprintln!("delayline: {ns}/{tap}: {e}");
                std::process::exit(1)
            })
    };
    let ta = open(&a[0], &a[1]);
    let tb = open(&a[2], &a[3]);
    let (ta2, tb2) = match (ta.try_clone(), tb.try_clone()) {
        (Ok(x), Ok(y)) => (x, y),
        _ => {
            eprintln!("delayline: dup failed");
            std::process::exit(1)
        }
    };
    pump(ta, tb2, delay);
    pump(tb, ta2, delay);
    println!("delayline up: {} <-> {} one-way {:?}", a[1], a[3], delay);
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}
