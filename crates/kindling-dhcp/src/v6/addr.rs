//! Stateless address assignment: the configured /64 plus a 64-bit interface identifier
//! derived from the client's DUID and IAID with SipHash-2-4 under a fixed key.
//!
//! SipHash-2-4 is written out here (about 40 lines) because its output must never change:
//! a client keeps its address across restarts and upgrades without a lease file, and
//! `std::hash::DefaultHasher`'s algorithm is unspecified.
//!
//! The identifier has the universal/local and individual/group bits cleared (RFC 4291
//! appendix A: it was not made from an IEEE identifier), which also keeps it out of every
//! reserved range of RFC 5453 (those have the u bit set or start with `fdff`); the all-zeros
//! identifier (the subnet-router anycast address) and the server's own addresses are
//! skipped by hashing again with a counter. 62 random bits: among n clients the chance that
//! two share an address is about n² / 2^63 (1e-11 for 10,000 clients).

use std::net::Ipv6Addr;

/// The fixed SipHash key ("kindling-dhcpv6!"): changing it moves every client.
const KEY: [u8; 16] = *b"kindling-dhcpv6!";

/// SipHash-2-4 of `data` under `key`.
pub fn siphash24(key: &[u8; 16], data: &[u8]) -> u64 {
    let k0 = u64::from_le_bytes(key[..8].try_into().unwrap_or([0; 8]));
    let k1 = u64::from_le_bytes(key[8..].try_into().unwrap_or([0; 8]));
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let m = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    let mut last = [0u8; 8];
    let rest = chunks.remainder();
    last[..rest.len()].copy_from_slice(rest);
    last[7] = data.len() as u8;
    let m = u64::from_le_bytes(last);
    v[3] ^= m;
    round(&mut v);
    round(&mut v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// Is this interface identifier reserved (RFC 5453) or the subnet-router anycast one?
pub fn reserved_iid(iid: u64) -> bool {
    iid == 0
        // 0200:5EFF:FE00:0000 - 0200:5EFF:FEFF:FFFF (Ethernet block, proxy mobile IPv6).
        || (0x0200_5eff_fe00_0000..=0x0200_5eff_feff_ffff).contains(&iid)
        // FDFF:FFFF:FFFF:FF80 - FDFF:FFFF:FFFF:FFFF (subnet anycast, RFC 2526).
        || (0xfdff_ffff_ffff_ff80..=0xfdff_ffff_ffff_ffff).contains(&iid)
}

/// The address of (`duid`, `iaid`) in `prefix` (a /64), never one of `avoid`.
pub fn address_for(prefix: Ipv6Addr, duid: &[u8], iaid: u32, avoid: &[Ipv6Addr]) -> Ipv6Addr {
    let mut input = Vec::with_capacity(duid.len() + 10);
    input.extend_from_slice(&(duid.len() as u16).to_be_bytes());
    input.extend_from_slice(duid);
    input.extend_from_slice(&iaid.to_be_bytes());
    input.extend_from_slice(&[0; 4]);
    let n = input.len();
    let net = u128::from(prefix) & !u128::from(u64::MAX);
    let mut counter = 0u32;
    loop {
        input[n - 4..].copy_from_slice(&counter.to_be_bytes());
        // Clear the u (0x02) and g (0x01) bits of the identifier's first byte.
        let iid = siphash24(&KEY, &input) & !(0x0300_0000_0000_0000u64);
        let a = Ipv6Addr::from(net | u128::from(iid));
        if !reserved_iid(iid) && !avoid.contains(&a) {
            return a;
        }
        // Each try avoids with probability ~1 - 2^-62 per excluded address; `avoid` is tiny.
        counter = counter.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash_reference_vectors() {
        // From the SipHash paper (appendix A) and the reference implementation's vectors.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let msg: Vec<u8> = (0..15u8).collect();
        assert_eq!(siphash24(&key, &msg), 0xa129_ca61_49be_45e5);
        assert_eq!(siphash24(&key, &[]), 0x726f_db47_dd0e_0e31);
        let msg8: Vec<u8> = (0..8u8).collect();
        assert_eq!(siphash24(&key, &msg8), 0x93f5_f579_9a93_2462);
    }

    #[test]
    fn addresses_are_stable_distinct_and_well_formed() {
        let p: Ipv6Addr = "fd00:77::".parse().unwrap();
        let duid = [0, 3, 0, 1, 2, 0, 0, 0, 0, 1];
        let a = address_for(p, &duid, 1, &[]);
        // Pinned: the same client must get this address from every build, forever.
        assert_eq!(a, address_for(p, &duid, 1, &[]));
        assert_eq!(a.to_string(), PINNED);
        assert_eq!(a.segments()[..4], [0xfd00, 0x77, 0, 0]);
        assert_eq!(a.octets()[8] & 0x03, 0);
        assert_ne!(a, address_for(p, &duid, 2, &[]));
        assert_ne!(a, address_for(p, &[0, 3, 0, 1, 2, 0, 0, 0, 0, 2], 1, &[]));
        // The server's own address is skipped.
        let b = address_for(p, &duid, 1, &[a]);
        assert_ne!(a, b);
        assert_eq!(b.segments()[..4], [0xfd00, 0x77, 0, 0]);
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000u32 {
            let a = address_for(p, &i.to_be_bytes(), 0, &[]);
            assert!(!reserved_iid(u128::from(a) as u64));
            assert!(seen.insert(a), "collision at {i}");
        }
    }

    const PINNED: &str = "fd00:77::7429:1def:ea40:23a6";

    #[test]
    fn reserved_ranges() {
        assert!(reserved_iid(0));
        assert!(reserved_iid(0x0200_5eff_fe00_5213));
        assert!(reserved_iid(0xfdff_ffff_ffff_ff80));
        assert!(reserved_iid(0xfdff_ffff_ffff_ffff));
        assert!(!reserved_iid(u64::MAX));
        assert!(!reserved_iid(1));
    }
}
