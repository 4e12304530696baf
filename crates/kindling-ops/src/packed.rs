//! Up to 16 optional byte fields packed into one heap block: a presence mask (two bytes),
//! then, for each present field in field order, its length (LEB128) and its bytes. No
//! fields at all: no allocation. The timeline stores event text and machine facts this
//! way: one block per event instead of a dozen `Option<CompactString>`s (24 bytes each,
//! mostly `None`).

/// The packed fields (immutable: a change builds a new block).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packed(Option<Box<[u8]>>);

/// Fields a [`Packed`] can hold.
pub const MAX_FIELDS: usize = 16;

impl Packed {
    /// Packs `fields[i]` as field `i` (`None`: absent). Fields past [`MAX_FIELDS`] are
    /// ignored.
    pub fn build(fields: &[Option<&[u8]>]) -> Packed {
        let fields = fields.get(..MAX_FIELDS).unwrap_or(fields);
        let mut mask = 0u16;
        let mut len = 2;
        for (i, f) in fields.iter().enumerate() {
            if let Some(f) = f {
                mask |= 1 << i;
                len += varint_len(f.len()) + f.len();
            }
        }
        if mask == 0 {
            return Packed(None);
        }
        let mut buf = Vec::with_capacity(len);
        buf.extend_from_slice(&mask.to_le_bytes());
        for f in fields.iter().flatten() {
            push_varint(&mut buf, f.len());
            buf.extend_from_slice(f);
        }
        Packed(Some(buf.into_boxed_slice()))
    }

    /// Field `i`, if present.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let buf = self.0.as_deref()?;
        let mask = u16::from_le_bytes([*buf.first()?, *buf.get(1)?]);
        if i >= MAX_FIELDS || mask & (1 << i) == 0 {
            return None;
        }
        let mut rest = buf.get(2..)?;
        // Skip the present fields before `i`.
        for _ in 0..(mask & ((1u16 << i) - 1)).count_ones() {
            let (n, r) = read_varint(rest)?;
            rest = r.get(n..)?;
        }
        let (n, r) = read_varint(rest)?;
        r.get(..n)
    }

    /// The first `N` fields in one pass (`get` walks from the start each time).
    pub fn unpack<const N: usize>(&self) -> [Option<&[u8]>; N] {
        let mut out = [None; N];
        let Some(buf) = self.0.as_deref() else {
            return out;
        };
        let (Some(&lo), Some(&hi)) = (buf.first(), buf.get(1)) else {
            return out;
        };
        let mask = u16::from_le_bytes([lo, hi]);
        let mut rest = buf.get(2..).unwrap_or(&[]);
        for (i, slot) in out.iter_mut().enumerate().take(MAX_FIELDS) {
            if mask & (1 << i) == 0 {
                continue;
            }
            let Some((n, r)) = read_varint(rest) else {
                break;
            };
            let (Some(f), Some(r)) = (r.get(..n), r.get(n..)) else {
                break;
            };
            *slot = Some(f);
            rest = r;
        }
        out
    }

    /// Field `i` as a little-endian number of up to eight bytes.
    pub fn number(&self, i: usize) -> Option<u64> {
        let b = self.get(i)?;
        let mut w = [0u8; 8];
        w.get_mut(..b.len())?.copy_from_slice(b);
        Some(u64::from_le_bytes(w))
    }

    /// Heap bytes held.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |b| b.len())
    }
}

/// `n` as the shortest little-endian bytes (none for 0), for [`Packed::number`].
pub fn number_bytes(n: u64) -> ([u8; 8], usize) {
    let len = 8 - (n.leading_zeros() / 8) as usize;
    (n.to_le_bytes(), len)
}

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn push_varint(buf: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// Bytes of the longest length [`read_varint`] accepts (field lengths stay far below 2^35).
const VARINT_MAX: usize = 5;

fn read_varint(buf: &[u8]) -> Option<(usize, &[u8])> {
    let mut n = 0usize;
    for (i, &b) in buf.iter().enumerate().take(VARINT_MAX) {
        n |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            // Only the shortest form, which is what `push_varint` writes.
            if i > 0 && b == 0 {
                return None;
            }
            return Some((n, buf.get(i + 1..)?));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let long = "x".repeat(300);
        let fields: [Option<&[u8]>; 5] = [
            Some(b"GET /ipxe"),
            None,
            Some(b""),
            Some(long.as_bytes()),
            Some(b"127.0.0.1"),
        ];
        let p = Packed::build(&fields);
        for (i, f) in fields.iter().enumerate() {
            assert_eq!(p.get(i), *f, "field {i}");
        }
        assert_eq!(p.get(5), None);
        assert_eq!(p.get(99), None);
        assert_eq!(p.get(3), Some(long.as_bytes()));
        assert_eq!(
            p.unpack::<6>(),
            [fields[0], None, fields[2], fields[3], fields[4], None]
        );
        assert_eq!(p.unpack::<2>(), [fields[0], None]);
        assert_eq!(p.heap_bytes(), 2 + 10 + 1 + 302 + 10);
        assert_eq!(Packed::build(&[None, None]), Packed::default());
        assert_eq!(Packed::default().get(0), None);
    }

    #[test]
    fn lengths_are_read_in_their_shortest_form_only() {
        let mut buf = Vec::new();
        for n in [0usize, 1, 127, 128, 300, 16_383, 16_384, 1 << 30] {
            buf.clear();
            push_varint(&mut buf, n);
            buf.push(0xaa);
            assert_eq!(read_varint(&buf), Some((n, &[0xaa][..])), "{n}");
        }
        // Overlong forms, a run of continuation bytes, an unfinished length.
        assert_eq!(read_varint(&[0x80, 0x00]), None);
        assert_eq!(read_varint(&[0x81, 0x80, 0x00]), None);
        assert_eq!(read_varint(&[0xff; 6]), None);
        assert_eq!(read_varint(&[0x80]), None);
        assert_eq!(read_varint(&[]), None);
        // A block that lies about its lengths reads as absent fields, never a panic.
        let p = Packed(Some(vec![0x03, 0x00, 0x05, b'a'].into_boxed_slice()));
        assert_eq!(p.get(0), None);
        assert_eq!(p.get(1), None);
    }

    #[test]
    fn numbers() {
        for n in [0u64, 1, 255, 256, 600, u64::MAX, 0.15f64.to_bits()] {
            let (b, len) = number_bytes(n);
            let p = Packed::build(&[None, Some(&b[..len])]);
            assert_eq!(p.number(1), Some(n));
        }
    }
}
