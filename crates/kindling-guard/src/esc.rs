//! Client-supplied bytes made safe for a log line.

use std::fmt;

/// Displays bytes with everything outside printable ASCII escaped: `\\`, `\n`, `\r`,
/// `\t`, and `\xNN` for every other byte (an ESC byte is `\x1b`, each byte of a
/// non-ASCII or non-UTF-8 sequence `\xNN`); spaces stay readable. A client can
/// therefore neither start a forged line nor send terminal escape codes, in any log
/// format. The JSON format escapes strings itself; wrapping the field in `Esc` keeps
/// both formats showing the same text.
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
        write_escaped(f, self.0)
    }
}

/// Escapes `b` as [`Esc`] describes.
fn write_escaped(f: &mut dyn fmt::Write, b: &[u8]) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: [u8; 4];
        let esc: &[u8] = match c {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x20..=0x7e => continue,
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

/// Any `Display` value (an error that quotes a client's file name, an outcome that
/// carries a client's message) written escaped as [`Esc`] describes, without an
/// intermediate string: `warn!(reason = %esc(&err), ...)`.
pub fn esc<T: fmt::Display>(value: T) -> EscDisplay<T> {
    EscDisplay(value)
}

/// See [`esc`].
#[derive(Clone, Copy)]
pub struct EscDisplay<T>(pub T);

impl<T: fmt::Display> fmt::Display for EscDisplay<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl fmt::Write for Escaping<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                write_escaped(self.0, s.as_bytes())
            }
        }
        fmt::write(&mut Escaping(f), format_args!("{}", self.0))
    }
}

impl<T: fmt::Display> fmt::Debug for EscDisplay<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
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
            "PXEClient\\nFORGED level=ERROR\\x1b[31m \\\\ \\xff\\xc3\\xa9"
        );
        assert!(s.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        assert_eq!(Esc::str("undionly.kpxe").to_string(), "undionly.kpxe");
        assert_eq!(Esc(b"").to_string(), "");
        let e = std::io::Error::other("no file \"a\nb\u{1b}\"");
        assert_eq!(esc(&e).to_string(), "no file \"a\\nb\\x1b\"");
    }
}
