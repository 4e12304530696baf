//! DHCPv4 wire format: a panic-free request parser and the proxy reply encoder.
//!
//! Requests are parsed by hand rather than with `dhcproto`'s decoder, because on hostile input
//! that decoder panics (`Message::chaddr()` slices `chaddr[..hlen]` with an unchecked `hlen`, and
//! option 94 is decoded behind a `debug_assert!(len == 3)`), silently drops every option after
//! the first one it cannot decode, and keeps only the first entry of option 93. The parser here
//! only bounds-checks and slices; it never allocates per byte and never indexes unchecked.
//!
//! Replies are encoded here too so that option 53 comes first (as dnsmasq and ISC dhcpd do; some
//! old PXE ROMs are picky) and so that `yiaddr` cannot be anything but zero: the encoder has no
//! way to set it. The tests decode every reply with `dhcproto` as an independent check.

use std::borrow::Cow;
use std::io::Write as _;
use std::net::Ipv4Addr;

/// Formats a MAC address as lower-case colon-separated hex.
pub fn format_mac(m: &[u8; 6]) -> String {
    String::from_utf8_lossy(&mac_ascii(m)).into_owned()
}

/// The 17 ASCII bytes of [`format_mac`], without allocating.
pub fn mac_ascii(m: &[u8; 6]) -> [u8; 17] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b = [b':'; 17];
    for (i, x) in m.iter().enumerate() {
        b[i * 3] = HEX[usize::from(x >> 4)];
        b[i * 3 + 1] = HEX[usize::from(x & 0xf)];
    }
    b
}

/// The fixed BOOTP header is 236 bytes, followed by the 4-byte magic cookie.
pub const HEADER_LEN: usize = 236;
/// The DHCP magic cookie.
pub const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// Size of the `sname` header field.
pub const SNAME_LEN: usize = 64;
/// Size of the `file` header field.
pub const FILE_LEN: usize = 128;
/// Longest boot file name we put into `file`, keeping room for a terminating NUL.
pub const MAX_FILE: usize = FILE_LEN - 1;

/// Offset of `yiaddr` in the BOOTP header.
pub const YIADDR_OFFSET: usize = 16;

pub mod opt {
    //! DHCP option codes used here.
    pub const PAD: u8 = 0;
    pub const VENDOR_SPECIFIC: u8 = 43;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const VENDOR_CLASS: u8 = 60;
    pub const USER_CLASS: u8 = 77;
    pub const CLIENT_ARCH: u8 = 93;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN: u8 = 15;
    pub const MTU: u8 = 26;
    pub const BROADCAST: u8 = 28;
    pub const NTP: u8 = 42;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const CLASSLESS_ROUTES: u8 = 121;
    pub const RELAY_AGENT_INFO: u8 = 82;
    pub const PARAMETER_LIST: u8 = 55;
    pub const CLIENT_NDI: u8 = 94;
    pub const CLIENT_UUID: u8 = 97;
    pub const IPXE_ENCAP: u8 = 175;
    pub const END: u8 = 255;
}

/// PXE vendor sub-options carried in option 43.
pub mod pxe {
    pub const DISCOVERY_CONTROL: u8 = 6;
    pub const BOOT_SERVERS: u8 = 8;
    pub const BOOT_MENU: u8 = 9;
    pub const MENU_PROMPT: u8 = 10;
    pub const BOOT_ITEM: u8 = 71;
    pub const END: u8 = 255;
}

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
    Other(u8),
}

impl MessageType {
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            n => Self::Other(n),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            Self::Discover => 1,
            Self::Offer => 2,
            Self::Request => 3,
            Self::Decline => 4,
            Self::Ack => 5,
            Self::Nak => 6,
            Self::Release => 7,
            Self::Inform => 8,
            Self::Other(n) => n,
        }
    }

    /// Lower-case name for logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Discover => "discover",
            Self::Offer => "offer",
            Self::Request => "request",
            Self::Decline => "decline",
            Self::Ack => "ack",
            Self::Nak => "nak",
            Self::Release => "release",
            Self::Inform => "inform",
            Self::Other(_) => "other",
        }
    }

    /// The message type of a [`MessageType::label`] (`other` reads as `Other(0)`).
    pub fn from_label(s: &str) -> Option<Self> {
        (1..=8)
            .chain([0])
            .map(Self::from_u8)
            .find(|m| m.label() == s)
    }
}

/// Why a datagram could not be parsed as a DHCP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the BOOTP header plus the magic cookie.
    TooShort,
    /// The magic cookie is wrong.
    BadMagic,
    /// `op` is not BOOTREQUEST (1).
    NotRequest,
    /// `hlen` is larger than the 16-byte `chaddr` field.
    BadHlen,
    /// An option runs past the end of its buffer.
    TruncatedOption,
    /// Longer than 65,535 bytes (no UDP datagram is).
    TooLong,
}

/// The parts of the fixed BOOTP header that the policy uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub htype: u8,
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
}

/// A parsed request: the header plus every option, in wire order, with RFC 3396 long options
/// (the same code repeated) concatenated.
///
/// The options' data sit in one buffer, each code's contiguous, and the index gives each
/// code's range in it: two heap blocks per request, whatever the number of options.
#[derive(Debug, Clone)]
pub struct Request {
    pub header: Header,
    /// The options' data.
    data: Vec<u8>,
    /// (code, start, end) into `data`, in the order the codes first appear.
    index: Vec<(u8, u16, u16)>,
}

fn ip_at(b: &[u8], off: usize) -> Ipv4Addr {
    match b.get(off..off + 4) {
        Some(s) => Ipv4Addr::new(s[0], s[1], s[2], s[3]),
        None => Ipv4Addr::UNSPECIFIED,
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    match b.get(off..off + 2) {
        Some(s) => u16::from_be_bytes([s[0], s[1]]),
        None => 0,
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    match b.get(off..off + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// Reads the option areas of a datagram `b` into [`Request`]'s buffer and index, in time
/// linear in the number of options whatever their order (a hostile 4 KiB datagram of
/// repeated codes costs what an ordinary one of that size does).
struct Reader<'b> {
    b: &'b [u8],
    /// Every option as read: (code, offset of its data in `b`, length), later compacted
    /// into the index.
    seen: Vec<(u8, u16, u16)>,
    /// Each code's total data length.
    total: [u16; 256],
}

impl<'b> Reader<'b> {
    fn new(b: &'b [u8]) -> Self {
        Reader {
            b,
            seen: Vec::with_capacity(16),
            total: [0; 256],
        }
    }

    /// Walks the TLV area `b[at..end]`. Stops at END; PAD is skipped.
    fn walk(&mut self, at: usize, end: usize) -> Result<(), ParseError> {
        let area = self.b.get(at..end.min(self.b.len())).unwrap_or(&[]);
        let mut i = 0usize;
        while let Some(&code) = area.get(i) {
            match code {
                opt::PAD => {
                    i += 1;
                    continue;
                }
                opt::END => return Ok(()),
                _ => {}
            }
            let len = *area.get(i + 1).ok_or(ParseError::TruncatedOption)? as usize;
            if i + 2 + len > area.len() {
                return Err(ParseError::TruncatedOption);
            }
            // Offsets and lengths fit: `b` is at most 65,535 bytes (`Request::parse`).
            self.seen.push((code, (at + i + 2) as u16, len as u16));
            self.total[usize::from(code)] += len as u16;
            i += 2 + len;
        }
        // A missing END is tolerated (many clients pad instead).
        Ok(())
    }

    /// The first byte of a code's data as read so far.
    fn first_byte(&self, code: u8) -> Option<u8> {
        let &(_, at, _) = self.seen.iter().find(|&&(c, _, l)| c == code && l > 0)?;
        self.b.get(usize::from(at)).copied()
    }

    /// Each code's data joined in one buffer (RFC 3396: a repeated code's data after its
    /// earlier data), the codes in the order they first appear; and the index of ranges.
    fn finish(mut self) -> (Vec<u8>, Vec<(u8, u16, u16)>) {
        // Where each code's data starts (0 in `start` and `fill` until placed).
        let mut start = [0u16; 256];
        let mut placed = [false; 256];
        let mut len = 0u16;
        for &(code, _, _) in &self.seen {
            let c = usize::from(code);
            if !placed[c] {
                placed[c] = true;
                start[c] = len;
                len += self.total[c];
            }
        }
        let mut data = vec![0u8; usize::from(len)];
        let mut fill = start;
        for &(code, at, n) in &self.seen {
            let c = usize::from(code);
            let (at, n, to) = (usize::from(at), usize::from(n), usize::from(fill[c]));
            if let (Some(dst), Some(src)) = (data.get_mut(to..to + n), self.b.get(at..at + n)) {
                dst.copy_from_slice(src);
            }
            fill[c] += n as u16;
        }
        // The index: each code once, where it first appeared, over the list of options.
        let mut kept = 0;
        placed = [false; 256];
        for k in 0..self.seen.len() {
            let code = self.seen[k].0;
            let c = usize::from(code);
            if !placed[c] {
                placed[c] = true;
                self.seen[kept] = (code, start[c], start[c] + self.total[c]);
                kept += 1;
            }
        }
        self.seen.truncate(kept);
        (data, self.seen)
    }
}

impl Request {
    /// Parses a BOOTREQUEST. Never panics, whatever the input.
    pub fn parse(b: &[u8]) -> Result<Self, ParseError> {
        if b.len() < HEADER_LEN + 4 {
            return Err(ParseError::TooShort);
        }
        // The options' positions are 16-bit (see `Reader`).
        if b.len() > usize::from(u16::MAX) {
            return Err(ParseError::TooLong);
        }
        if b.get(HEADER_LEN..HEADER_LEN + 4) != Some(&MAGIC[..]) {
            return Err(ParseError::BadMagic);
        }
        if b.first() != Some(&1) {
            return Err(ParseError::NotRequest);
        }
        let hlen = b.get(2).copied().unwrap_or(0);
        if hlen > 16 {
            return Err(ParseError::BadHlen);
        }
        let mut chaddr = [0u8; 16];
        if let Some(s) = b.get(28..44) {
            chaddr.copy_from_slice(s);
        }
        let header = Header {
            htype: b.get(1).copied().unwrap_or(0),
            hlen,
            hops: b.get(3).copied().unwrap_or(0),
            xid: u32_at(b, 4),
            secs: u16_at(b, 8),
            flags: u16_at(b, 10),
            ciaddr: ip_at(b, 12),
            yiaddr: ip_at(b, 16),
            siaddr: ip_at(b, 20),
            giaddr: ip_at(b, 24),
            chaddr,
        };
        let mut options = Reader::new(b);
        options.walk(HEADER_LEN + 4, b.len())?;
        // Option overload (52): 1 = file holds options, 2 = sname, 3 = both.
        let overload = options.first_byte(opt::OVERLOAD).unwrap_or(0);
        if overload & 1 != 0 {
            options.walk(108, 236)?;
        }
        if overload & 2 != 0 {
            options.walk(44, 108)?;
        }
        let (data, index) = options.finish();
        Ok(Self {
            header,
            data,
            index,
        })
    }

    /// The data of an option, if present.
    pub fn option(&self, code: u8) -> Option<&[u8]> {
        let &(_, s, e) = self.index.iter().find(|(c, _, _)| *c == code)?;
        self.data.get(usize::from(s)..usize::from(e))
    }

    /// All options in wire order.
    pub fn options(&self) -> impl Iterator<Item = (u8, &[u8])> {
        self.index.iter().map(|&(c, s, e)| {
            (
                c,
                self.data.get(usize::from(s)..usize::from(e)).unwrap_or(&[]),
            )
        })
    }

    /// Option 53, if present and one byte long.
    pub fn message_type(&self) -> Option<MessageType> {
        match self.option(opt::MESSAGE_TYPE) {
            Some([t]) => Some(MessageType::from_u8(*t)),
            _ => None,
        }
    }

    /// The hardware address, when the client is Ethernet (htype 1, hlen 6).
    pub fn mac(&self) -> Option<[u8; 6]> {
        if self.header.htype == 1 && self.header.hlen == 6 {
            let mut m = [0u8; 6];
            m.copy_from_slice(self.header.chaddr.get(..6)?);
            Some(m)
        } else {
            None
        }
    }

    /// Every 16-bit entry of option 93 (RFC 4578), in order. A trailing odd byte is ignored.
    pub fn architectures(&self) -> Vec<u16> {
        self.option(opt::CLIENT_ARCH)
            .map(|d| {
                d.chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The entries of option 77: RFC 3004 length-prefixed entries when the data parses that
    /// way exactly, otherwise the whole value as one (plain, iPXE-style) entry.
    pub fn user_classes(&self) -> Vec<Vec<u8>> {
        let Some(d) = self.option(opt::USER_CLASS) else {
            return Vec::new();
        };
        if let Some(list) = parse_rfc3004(d) {
            return list;
        }
        vec![d.to_vec()]
    }

    /// The PXE boot item (option 43 sub-option 71: type, layer), if the client sent one.
    pub fn pxe_boot_item(&self) -> Option<(u16, u16)> {
        let d = self.option(opt::VENDOR_SPECIFIC)?;
        let mut i = 0usize;
        while let Some(&code) = d.get(i) {
            match code {
                pxe::END => return None,
                opt::PAD => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let len = *d.get(i + 1)? as usize;
            let data = d.get(i + 2..i + 2 + len)?;
            if code == pxe::BOOT_ITEM && len == 4 {
                return Some((
                    u16::from_be_bytes([data[0], data[1]]),
                    u16::from_be_bytes([data[2], data[3]]),
                ));
            }
            i += 2 + len;
        }
        None
    }
}

fn parse_rfc3004(d: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < d.len() {
        let len = *d.get(i)? as usize;
        if len == 0 {
            return None;
        }
        out.push(d.get(i + 1..i + 1 + len)?.to_vec());
        i += 1 + len;
    }
    if out.is_empty() { None } else { Some(out) }
}

/// Everything needed to encode one reply. The proxy always leaves `yiaddr` at 0 (the socket
/// shell refuses to send a proxy reply with anything else); full mode sets it to the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyFields<'a> {
    pub message_type: MessageType,
    pub htype: u8,
    pub hlen: u8,
    pub xid: u32,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    /// The boot server, written in `sname` as its dotted quad (as dnsmasq does for a PXE
    /// client); `None` leaves `sname` empty.
    pub sname: Option<Ipv4Addr>,
    /// At most 127 bytes (checked by `encode`).
    pub file: String,
    pub server_id: Ipv4Addr,
    /// Option 60 (the client's matched PXE prefix); left out when empty.
    pub vendor_class: &'a [u8],
    /// Option 97, the client's own.
    pub client_uuid: Option<&'a [u8]>,
    /// Option 43.
    pub vendor_options: Option<Cow<'a, [u8]>>,
    /// Full mode's lease options (lease time, mask, router, ...), written after option 54.
    pub options: Vec<(u8, Vec<u8>)>,
}

/// Why a reply could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    FileTooLong,
}

fn put_option(out: &mut Vec<u8>, code: u8, data: &[u8]) {
    // RFC 3396 split for data over 255 bytes.
    if data.is_empty() {
        out.push(code);
        out.push(0);
        return;
    }
    for chunk in data.chunks(255) {
        out.push(code);
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
}

impl ReplyFields<'_> {
    /// Encodes a BOOTREPLY with options 53, 54, the lease options, 60, 97, 43, END,
    /// padded to 300 bytes. Option 60 is left out when `vendor_class` is empty.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        if self.file.len() > MAX_FILE {
            return Err(EncodeError::FileTooLong);
        }
        let mut out = Vec::with_capacity(400);
        out.push(2); // BOOTREPLY
        out.push(self.htype);
        out.push(self.hlen.min(16));
        out.push(0); // hops
        out.extend_from_slice(&self.xid.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes()); // secs
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.extend_from_slice(&self.ciaddr.octets());
        out.extend_from_slice(&self.yiaddr.octets());
        out.extend_from_slice(&self.siaddr.octets());
        out.extend_from_slice(&self.giaddr.octets());
        out.extend_from_slice(&self.chaddr);
        let mut sname = [0u8; SNAME_LEN];
        if let Some(ip) = self.sname {
            // A dotted quad is at most 15 bytes: it always fits, NUL-terminated.
            let _ = write!(&mut sname[..SNAME_LEN - 1], "{ip}");
        }
        out.extend_from_slice(&sname);
        let mut file = [0u8; FILE_LEN];
        file[..self.file.len()].copy_from_slice(self.file.as_bytes());
        out.extend_from_slice(&file);
        out.extend_from_slice(&MAGIC);
        put_option(&mut out, opt::MESSAGE_TYPE, &[self.message_type.to_u8()]);
        put_option(&mut out, opt::SERVER_ID, &self.server_id.octets());
        for (code, data) in &self.options {
            put_option(&mut out, *code, data);
        }
        if !self.vendor_class.is_empty() {
            put_option(&mut out, opt::VENDOR_CLASS, self.vendor_class);
        }
        if let Some(uuid) = self.client_uuid {
            put_option(&mut out, opt::CLIENT_UUID, uuid);
        }
        if let Some(v) = &self.vendor_options {
            put_option(&mut out, opt::VENDOR_SPECIFIC, v);
        }
        out.push(opt::END);
        // BOOTP minimum message size (some relays and old ROMs drop shorter packets).
        if out.len() < 300 {
            out.resize(300, 0);
        }
        Ok(out)
    }
}

/// True if an encoded reply has `yiaddr == 0`. The socket shell refuses to send anything else.
pub fn yiaddr_is_zero(packet: &[u8]) -> bool {
    packet.get(YIADDR_OFFSET..YIADDR_OFFSET + 4) == Some(&[0u8; 4][..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&0xdeadbeefu32.to_be_bytes());
        b[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        b.extend_from_slice(&MAGIC);
        b
    }

    #[test]
    fn parses_options_and_long_options() {
        let mut b = base();
        b.extend_from_slice(&[53, 1, 1, 0, 0, 93, 2, 0, 7, 93, 2, 0, 9, 77, 4]);
        b.extend_from_slice(b"iPXE");
        b.push(255);
        let r = Request::parse(&b).unwrap();
        assert_eq!(r.message_type(), Some(MessageType::Discover));
        assert_eq!(r.architectures(), vec![7, 9]);
        assert_eq!(r.user_classes(), vec![b"iPXE".to_vec()]);
        assert_eq!(r.mac(), Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(r.header.xid, 0xdeadbeef);
    }

    #[test]
    fn rfc3004_user_class() {
        let mut b = base();
        b.extend_from_slice(&[77, 9, 3, b'f', b'o', b'o', 4, b'i', b'P', b'X', b'E', 255]);
        let r = Request::parse(&b).unwrap();
        assert_eq!(r.user_classes(), vec![b"foo".to_vec(), b"iPXE".to_vec()]);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            Request::parse(&[1, 2, 3]).unwrap_err(),
            ParseError::TooShort
        );
        let mut b = base();
        b[236] = 0;
        assert_eq!(Request::parse(&b).unwrap_err(), ParseError::BadMagic);
        let mut b = base();
        b[2] = 17;
        assert_eq!(Request::parse(&b).unwrap_err(), ParseError::BadHlen);
        let mut b = base();
        b[0] = 2;
        assert_eq!(Request::parse(&b).unwrap_err(), ParseError::NotRequest);
        let mut b = base();
        b.extend_from_slice(&[60, 9, b'P']);
        assert_eq!(Request::parse(&b).unwrap_err(), ParseError::TruncatedOption);
    }

    #[test]
    fn option_overload_in_file_field() {
        let mut b = base();
        b[108..113].copy_from_slice(&[93, 2, 0, 11, 255]);
        b.extend_from_slice(&[52, 1, 1, 255]);
        let r = Request::parse(&b).unwrap();
        assert_eq!(r.architectures(), vec![11]);
    }

    /// RFC 3396 across other codes and the overloaded fields: each code's data joined in
    /// the order read (options, then file, then sname), the codes in their first order.
    #[test]
    fn long_options_join_across_other_codes_and_fields() {
        let mut b = base();
        b[108..114].copy_from_slice(&[60, 1, b'!', 93, 0, 255]);
        b[44..49].copy_from_slice(&[97, 1, 9, 255, 0]);
        b.extend_from_slice(&[60, 3, b'P', b'X', b'E', 93, 2, 0, 7, 52, 1, 3]);
        b.extend_from_slice(&[
            60, 6, b'C', b'l', b'i', b'e', b'n', b't', 97, 2, 0, 1, 93, 2, 0,
        ]);
        b.extend_from_slice(&[9, 255]);
        let r = Request::parse(&b).unwrap();
        let all: Vec<(u8, &[u8])> = r.options().collect();
        assert_eq!(
            all,
            [
                (60, &b"PXEClient!"[..]),
                (93, &[0, 7, 0, 9][..]),
                (52, &[3][..]),
                (97, &[0, 1, 9][..]),
            ]
        );
        assert_eq!(r.option(60), Some(&b"PXEClient!"[..]));
        assert_eq!(r.architectures(), vec![7, 9]);
        assert_eq!(r.option(61), None);
    }

    /// Datagrams of up to 4 KiB full of short options with codes repeated in any order
    /// give what joining each code's data in a list gives (RFC 3396 as written).
    #[test]
    fn many_repeated_options_parse_as_joined_lists() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..200 {
            let mut b = base();
            let mut want: Vec<(u8, Vec<u8>)> = Vec::new();
            let codes = 1 + next(if round % 2 == 0 { 4 } else { 254 });
            while b.len() < 4000 {
                let code = 1 + next(codes) as u8;
                let len = next(if round % 3 == 0 { 3 } else { 40 }) as usize;
                let data: Vec<u8> = (0..len).map(|_| next(256) as u8).collect();
                b.push(code);
                b.push(len as u8);
                b.extend_from_slice(&data);
                // The overload option would make the parser read the file and sname fields.
                if code == opt::OVERLOAD {
                    b.truncate(b.len() - 2 - len);
                    continue;
                }
                match want.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, d)) => d.extend_from_slice(&data),
                    None => want.push((code, data)),
                }
            }
            b.push(opt::END);
            let r = Request::parse(&b).unwrap();
            let got: Vec<(u8, Vec<u8>)> = r.options().map(|(c, d)| (c, d.to_vec())).collect();
            assert_eq!(got, want, "round {round}");
            for (c, d) in &want {
                assert_eq!(r.option(*c), Some(&d[..]));
            }
        }
    }

    #[test]
    fn a_datagram_past_65535_bytes_is_refused() {
        let mut b = base();
        b.resize(usize::from(u16::MAX) + 1, opt::PAD);
        assert_eq!(Request::parse(&b).unwrap_err(), ParseError::TooLong);
        b.pop();
        assert!(Request::parse(&b).is_ok());
    }

    #[test]
    fn boot_item_in_option_43() {
        let mut b = base();
        b.extend_from_slice(&[43, 7, 71, 4, 0x80, 0, 0, 0, 255, 255]);
        let r = Request::parse(&b).unwrap();
        assert_eq!(r.pxe_boot_item(), Some((0x8000, 0)));
    }

    #[test]
    fn encode_keeps_yiaddr_zero_and_53_first() {
        let f = ReplyFields {
            message_type: MessageType::Offer,
            htype: 1,
            hlen: 6,
            xid: 7,
            flags: 0x8000,
            ciaddr: Ipv4Addr::new(1, 2, 3, 4),
            siaddr: Ipv4Addr::new(10, 0, 0, 1),
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: [0; 16],
            sname: Some(Ipv4Addr::new(192, 168, 100, 200)),
            file: "undionly.kpxe".into(),
            server_id: Ipv4Addr::new(10, 0, 0, 1),
            vendor_class: b"PXEClient",
            client_uuid: None,
            vendor_options: Some(Cow::Borrowed(crate::opt43::USE_FILE_FIELD)),
            yiaddr: Ipv4Addr::UNSPECIFIED,
            options: Vec::new(),
        };
        let p = f.encode().unwrap();
        assert!(yiaddr_is_zero(&p));
        assert_eq!(&p[240..243], &[53, 1, 2]);
        // sname: the dotted quad, NUL-padded.
        assert_eq!(&p[44..60], b"192.168.100.200\0");
        assert!(p[60..108].iter().all(|b| *b == 0));
        let no_sname = ReplyFields {
            sname: None,
            ..f.clone()
        };
        assert!(no_sname.encode().unwrap()[44..108].iter().all(|b| *b == 0));
        assert!(p.len() >= 300);
        let long = ReplyFields {
            file: "x".repeat(128),
            ..f
        };
        assert_eq!(long.encode().unwrap_err(), EncodeError::FileTooLong);
    }
}
