//! Client-supplied bytes made safe for a log line.
//!
//! Everything a client chooses (option 60, 77, 12, 61, 175, ...) reaches a log only through
//! [`Esc`]: printable ASCII other than space and `\` is kept as it is, everything else is
//! written as an escape (`\n`, `\r`, `\t`, `\\`, `\xNN`: a space is `\x20`, an ESC byte
//! `\x1b`, each byte of a non-ASCII or non-UTF-8 sequence `\xNN`). A client can therefore
//! neither start a forged line, nor send terminal escape codes, nor forge a `key=value`
//! field inside the text format's line. The JSON format escapes strings itself; `Esc` keeps
//! both formats showing the same text.

use std::fmt;

/// Displays bytes with every byte outside printable ASCII (and space and `\`) escaped.
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
            let esc: &[u8] = match c {
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x21..=0x7e => continue,
                _ => &[
                    b'\\',
                    b'x',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 0xf)],
                ],
            };
            // Runs of safe bytes are ASCII, hence valid UTF-8.
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

/// Several client texts joined with `,` (each escaped; a `,` inside one stays `,`).
pub struct EscList<'a, T: AsRef<[u8]>>(pub &'a [T]);

impl<T: AsRef<[u8]>> fmt::Display for EscList<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            Esc(t.as_ref()).fmt(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_is_kept_and_the_rest_escaped() {
        assert_eq!(
            Esc(b"PXEClient:Arch:00000:UNDI:002001").to_string(),
            "PXEClient:Arch:00000:UNDI:002001"
        );
        assert_eq!(
            Esc(b"PXEClient\nFORGED line\x1b[31m").to_string(),
            "PXEClient\\nFORGED\\x20line\\x1b[31m"
        );
        assert_eq!(Esc(b"a\\b\r\t\0\x7f").to_string(), "a\\\\b\\r\\t\\x00\\x7f");
        // Non-UTF-8 and non-ASCII bytes are shown byte by byte.
        assert_eq!(Esc(b"\xff\xc3\xa9").to_string(), "\\xff\\xc3\\xa9");
        assert_eq!(Esc(b"").to_string(), "");
        assert_eq!(
            EscList(&[b"iPXE".to_vec(), b"a b".to_vec()]).to_string(),
            "iPXE,a\\x20b"
        );
        // Every output byte is printable ASCII, whatever the input.
        let all: Vec<u8> = (0..=255u8).collect();
        let out = Esc(&all).to_string();
        assert!(out.bytes().all(|c| (0x21..=0x7e).contains(&c)), "{out}");
    }
}
