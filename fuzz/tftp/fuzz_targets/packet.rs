//! TFTP packet parser: never panics; whatever parses re-encodes to bytes that
//! parse to the same packet; request names go through path normalization.
#![no_main]

use kindling_tftp::packet::{self, Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = packet::parse(data) {
        let again = packet::parse(&p.encode()).expect("re-encoded packet must parse");
        assert_eq!(again, p);
        if let Packet::Rrq(r) | Packet::Wrq(r) = &p {
            if let Ok(parts) = kindling_tftp::source::normalize(&r.filename) {
                assert!(parts.iter().all(|c| c != ".." && c != "." && !c.is_empty()));
                assert!(parts.iter().all(|c| !c.contains('/') && !c.contains('\\')));
            }
        }
    }
});
