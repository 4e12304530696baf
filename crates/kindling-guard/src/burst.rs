//! Room in a listening UDP socket for a rack's requests arriving at once.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd};

/// What a listening UDP socket asks for: 1,000 DHCP or TFTP requests take 1-2.5 MB of
/// kernel memory as queued datagrams (each counted with its buffer, ~2 KiB); the kernel's
/// default (`net.core.rmem_default`, ~208 KiB) drops most of a boot storm, and each drop
/// costs a ROM a retry of a second or more.
pub const BURST_BUFFER: usize = 4 << 20;

/// A receive buffer smaller than asked, and what to do about it (its `Display`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short {
    pub asked: usize,
    /// What the socket holds (the kernel reports twice the bytes it grants; halved here).
    pub got: usize,
}

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "receive buffer {} KiB, asked {} KiB: a boot storm's requests may be dropped and \
             retried (raise net.core.rmem_max, or run with CAP_NET_ADMIN)",
            self.got >> 10,
            self.asked >> 10
        )
    }
}

/// Asks for `bytes` of receive buffer: `SO_RCVBUFFORCE` (beyond `net.core.rmem_max`, with
/// CAP_NET_ADMIN, as root has), else `SO_RCVBUF` (capped by `rmem_max`). Best effort: the
/// socket keeps what it gets, and [`Short`] says when that is less than asked.
pub fn grow_receive_buffer(socket: &impl AsFd, bytes: usize) -> Result<(), Short> {
    let fd = socket.as_fd().as_raw_fd();
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt on an open descriptor with a c_int option of its size.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                std::ptr::from_ref(&v).cast(),
                size,
            )
        };
        if r == 0 {
            break;
        }
    }
    let (mut got, mut len): (libc::c_int, libc::socklen_t) = (0, size);
    // SAFETY: getsockopt into a c_int of the length given.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::from_mut(&mut got).cast(),
            &mut len,
        )
    };
    let got = usize::try_from(got).unwrap_or(0) / 2;
    if r == 0 && got < bytes {
        return Err(Short { asked: bytes, got });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_gets_what_it_asks_or_says_how_much_less() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Asking nothing always holds.
        assert_eq!(grow_receive_buffer(&s, 0), Ok(()));
        match grow_receive_buffer(&s, BURST_BUFFER) {
            Ok(()) => {}
            Err(short) => {
                // Only without CAP_NET_ADMIN (root has it) and under a low rmem_max.
                assert_ne!(unsafe { libc::geteuid() }, 0, "root: {short}");
                assert!(short.got < short.asked, "{short:?}");
                assert!(short.to_string().contains("net.core.rmem_max"), "{short}");
            }
        }
    }
}
