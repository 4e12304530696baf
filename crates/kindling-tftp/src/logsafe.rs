//! Escaping of client-supplied text before it reaches a log line.
//!
//! Every field of a tracing macro that carries text a client chose (file names, modes,
//! option names, ERROR messages, and server messages that embed them) goes through
//! [`esc`]. Printable ASCII stays readable; a backslash becomes `\\`; `\n`, `\r`, `\t`
//! and `\0` become those two-character escapes; every other control character and
//! every non-ASCII character becomes `\x1b` / `\u{202e}`. A file name can therefore
//! neither start a forged log line nor send escape codes to a terminal, in any log
//! format. (Names that are not UTF-8 never get this far: they are dropped as malformed
//! datagrams and only the decoding error is logged.)

use std::fmt::{self, Display, Write};

/// Wraps a value whose `Display` output is written escaped (see the module docs).
#[derive(Clone, Copy)]
pub struct Esc<T>(pub T);

/// Escape `value` for a log field: `info!(file = %esc(&name), ...)`.
pub fn esc<T: Display>(value: T) -> Esc<T> {
    Esc(value)
}

impl<T: Display> Display for Esc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaper(f), "{}", self.0)
    }
}

impl<T: Display> fmt::Debug for Esc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Display::fmt(self, f)
    }
}

struct Escaper<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for Escaper<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(i) = rest.find(|c: char| !is_plain(c)) {
            let (head, tail) = rest.split_at(i);
            self.0.write_str(head)?;
            let mut chars = tail.chars();
            if let Some(c) = chars.next() {
                write_escaped(self.0, c)?;
            }
            rest = chars.as_str();
        }
        self.0.write_str(rest)
    }
}

fn is_plain(c: char) -> bool {
    matches!(c, ' '..='~') && c != '\\'
}

fn write_escaped(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    match c {
        '\\' => f.write_str("\\\\"),
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\t' => f.write_str("\\t"),
        '\0' => f.write_str("\\0"),
        c if (c as u32) < 0x80 => write!(f, "\\x{:02x}", c as u32),
        c => write!(f, "\\u{{{:x}}}", c as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_controls_and_non_ascii() {
        assert_eq!(esc("pxelinux.0").to_string(), "pxelinux.0");
        assert_eq!(
            esc("a\nFORGED line\x1b[31m").to_string(),
            "a\\nFORGED line\\x1b[31m"
        );
        assert_eq!(esc("boot\\x86").to_string(), "boot\\\\x86");
        assert_eq!(esc("\r\t\0\x7f").to_string(), "\\r\\t\\0\\x7f");
        assert_eq!(
            esc("é\u{202e}\u{9b}").to_string(),
            "\\u{e9}\\u{202e}\\u{9b}"
        );
        assert_eq!(esc(format_args!("{}-{}", "x\n", 3)).to_string(), "x\\n-3");
        assert_eq!(format!("{:?}", esc("a\nb")), "a\\nb");
    }
}
