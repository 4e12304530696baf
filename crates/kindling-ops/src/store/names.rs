//! Texts that recur across machines and events, kept once for the whole store:
//! [`Names`] (bounded, with a share for client-chosen texts), the [`NameRef`] a packed
//! field holds instead of the text, and [`Intern`], who chose a text.

use std::collections::HashMap;
use std::sync::Arc;

/// Texts that recur across machines (interface names, architectures, firmware, vendor
/// and user classes, profiles, DHCP summaries and boot files) kept once for the whole
/// store: a packed field then holds [`NAME_REF`] and the name's number (2 or 3 bytes)
/// instead of the text. Bounded ([`NAMES_MAX`] names of at most [`NAME_LEN_MAX`] bytes,
/// never forgotten): past that, texts are stored in place as before.
#[derive(Debug, Default)]
pub(crate) struct Names {
    ids: HashMap<Arc<str>, u32>,
    pub(super) all: Vec<Arc<str>>,
    /// Names first seen in a text a client chose (vendor/user class, architecture).
    from_clients: usize,
}

/// First byte of a packed field that refers to a name (never the first byte of UTF-8).
pub(super) const NAME_REF: u8 = 0xff;
pub(super) const NAMES_MAX: usize = 4096;
/// Client-chosen texts may take at most this many names: spoofed DHCP packets with
/// random vendor classes cannot take the room the server's own texts need.
pub(super) const CLIENT_NAMES_MAX: usize = NAMES_MAX / 2;
// References are one or two bytes of LEB128 after the marker.
const _: () = assert!(NAMES_MAX <= 1 << 14);
/// Shorter texts cost no more in place than as a reference.
const NAME_LEN_MIN: usize = 3;
const NAME_LEN_MAX: usize = 64;

/// A field's bytes: a name reference or the text itself.
#[derive(Clone, Copy)]
pub(super) struct NameRef {
    buf: [u8; 3],
    len: u8,
}

impl NameRef {
    pub(super) fn bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

/// Who chose a text: whether it may become a name, and from which share of the table.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Intern {
    /// Differs per machine or request: kept in place.
    No,
    /// Kindling's own texts (labels, interfaces, files, endpoints, profiles).
    Server,
    /// Texts from client packets (vendor and user class, architecture).
    Client,
}

impl Names {
    /// The reference to `s`, made a name if there is room (in `who`'s share).
    pub(super) fn intern(&mut self, s: &str, who: Intern) -> Option<NameRef> {
        if who == Intern::No || !(NAME_LEN_MIN..=NAME_LEN_MAX).contains(&s.len()) {
            return None;
        }
        let id = match self.ids.get(s) {
            Some(id) => *id,
            None => {
                if self.all.len() >= NAMES_MAX
                    || (who == Intern::Client && self.from_clients >= CLIENT_NAMES_MAX)
                {
                    return None;
                }
                if who == Intern::Client {
                    self.from_clients += 1;
                }
                let id = u32::try_from(self.all.len()).ok()?;
                let name: Arc<str> = Arc::from(s);
                self.ids.insert(name.clone(), id);
                self.all.push(name);
                id
            }
        };
        // NAMES_MAX < 2^14: two bytes of LEB128 at most.
        let (buf, len) = if id < 0x80 {
            ([NAME_REF, id as u8, 0], 2)
        } else {
            ([NAME_REF, (id as u8) | 0x80, (id >> 7) as u8], 3)
        };
        Some(NameRef { buf, len })
    }

    /// The text of a packed field (a name reference resolved).
    pub(super) fn text<'a>(&'a self, field: &'a [u8]) -> Option<&'a str> {
        match field {
            [NAME_REF, rest @ ..] => {
                let id = match rest {
                    [lo] if lo & 0x80 == 0 => usize::from(*lo),
                    [lo, hi] => usize::from(lo & 0x7f) | (usize::from(*hi) << 7),
                    _ => return None,
                };
                self.all.get(id).map(|n| &**n)
            }
            _ => std::str::from_utf8(field).ok(),
        }
    }
}
