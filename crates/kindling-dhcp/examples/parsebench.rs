//! Cost of reading a DHCPv4 request's options (`wire::Request::parse`), ordinary and
//! hostile: a datagram of 4 KiB (the most the server reads) filled with short options
//! in the orders that make a per-option search or a shifting buffer slow. Not a test:
//! prints microseconds per parse, for comparing two builds.
//!
//! ```text
//! cargo run --release -p kindling-dhcp --example parsebench
//! ```

use std::hint::black_box;
use std::time::Instant;

use kindling_dhcp::wire::{MAGIC, Request};

/// A BOOTREQUEST header and the magic cookie.
fn base() -> Vec<u8> {
    let mut b = vec![0u8; 236];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b.extend_from_slice(&MAGIC);
    b
}

fn time(name: &str, b: &[u8]) {
    let n = 20_000u32;
    let t = Instant::now();
    let mut options = 0;
    for _ in 0..n {
        options += Request::parse(black_box(b)).map_or(0, |r| r.options().count());
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    let codes = options / n as usize;
    println!(
        "{name:48} {:5} bytes {codes:4} codes {ns:10.0} ns per parse",
        b.len()
    );
}

fn main() {
    let overload = 52; // would make the parser read the file and sname fields too
    let mut d = base();
    d.extend_from_slice(&[53, 1, 1, 60, 32]);
    d.extend_from_slice(b"PXEClient:Arch:00000:UNDI:002001");
    d.extend_from_slice(&[93, 2, 0, 0, 94, 3, 1, 2, 1, 97, 17]);
    d.extend_from_slice(&[0; 17]);
    d.push(255);
    time("a BIOS PXE DISCOVER", &d);

    let mut a = base();
    for c in (1..=254u8).filter(|&c| c != overload) {
        a.extend_from_slice(&[c, 0]);
    }
    while a.len() + 3 < 4096 {
        a.extend_from_slice(&[1, 1, 7]);
    }
    time("253 codes, then the first repeated", &a);

    let mut b = base();
    for c in (1..=254u8).filter(|&c| c != overload) {
        b.extend_from_slice(&[c, 1, 9]);
    }
    while b.len() + 3 < 4096 {
        b.extend_from_slice(&[1, 1, 7]);
    }
    time("253 codes with a byte, then the first repeated", &b);

    let mut c = base();
    let mut i = 0u32;
    while c.len() + 2 < 4096 {
        let code = 1 + (i % 254) as u8;
        if code != overload {
            c.extend_from_slice(&[code, 0]);
        }
        i += 1;
    }
    time("every code in turn, again and again", &c);
}
