//! Client-supplied bytes made safe for a log line.

use std::fmt;

/// Displays bytes with everything outside printable ASCII escaped: `\\`, `\n`, `\r`,
/// `\t`, and `\xNN` for every other byte (a space is `\x20`, an ESC byte `\x1b`, each
/// byte of a non-ASCII or non-UTF-8 sequence `\xNN`). A client can therefore neither
/// start a forged line, nor send terminal escape codes, nor forge a `key=value` field
/// inside the text format's line. The JSON format escapes strings itself; wrapping the
/// field in `Esc` keeps both formats showing the same text.
///
/// `tracing::info!(file = %Esc::str(name), ...)`
#[derive(Clone, Copy)]
pub struct Esc<'a>(pub &'a [u8]);

impl<'a> Esc<'a> {
    /// Wraps a string (its UTF-8 bytes).
    pub fn str(s: &'a str) -> Self {
        Self(s.as_bytes())
    }
}

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let b = self.0;
        let mut start = 0;
        for (i, &c) in b.iter().enumerate() {
            let esc: [u8; 4];
            let esc: &[u8] = match c {
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x21..=0x7e => continue,
                _ => {
                    esc = [
                        b'\\',
                        b'x',
                        HEX[usize::from(c >> 4)],
                        HEX[usize::from(c & 0xf)],
                    ];
                    &esc
                }
            };
            // Runs of kept bytes and the escapes are ASCII, hence valid UTF-8.
            f.write_str(std::str::from_utf8(&b[start..i]).unwrap_or(""))?;
            f.write_str(std::str::from_utf8(esc).unwrap_or(""))?;
            start = i + 1;
        }
        f.write_str(std::str::from_utf8(&b[start..]).unwrap_or(""))
    }
}

impl fmt::Debug for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_and_non_ascii_are_escaped() {
        let s = Esc(b"PXEClient\nFORGED level=ERROR\x1b[31m \\ \xff\xc3\xa9").to_string();
        assert_eq!(
            s,
            "PXEClient\\nFORGED\\x20level=ERROR\\x1b[31m\\x20\\\\\\x20\\xff\\xc3\\xa9"
        );
        assert!(s.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        assert_eq!(Esc::str("undionly.kpxe").to_string(), "undionly.kpxe");
        assert_eq!(Esc(b"").to_string(), "");
    }
}
