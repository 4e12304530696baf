//! Batched datagram I/O (`recvmmsg` / `sendmmsg`): in a boot storm the kernel queues many
//! DISCOVERs between two wake-ups; reading and answering them one system call per batch
//! instead of one per datagram halves the server's per-packet kernel cost.
//!
//! The unsafe code is confined here; both calls are non-blocking (`MSG_DONTWAIT`), so the
//! tokio shell drives them with `UdpSocket::try_io`.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;

/// Receive side: `capacity` buffers of `size` bytes and their headers, reused for every call.
pub struct RecvBatch {
    bufs: Vec<u8>,
    size: usize,
    addrs: Vec<libc::sockaddr_in>,
    lens: Vec<usize>,
    truncated: Vec<bool>,
    filled: usize,
}

/// One received datagram.
pub struct Datagram<'a> {
    pub data: &'a [u8],
    pub source: Option<SocketAddrV4>,
    /// The datagram was larger than the buffer and was cut.
    pub truncated: bool,
}

fn zeroed_sockaddr() -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    unsafe { MaybeUninit::<libc::sockaddr_in>::zeroed().assume_init() }
}

fn to_socket_addr(a: &libc::sockaddr_in) -> Option<SocketAddrV4> {
    (a.sin_family as libc::c_int == libc::AF_INET).then(|| {
        SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
            u16::from_be(a.sin_port),
        )
    })
}

/// One `mmsghdr` per (buffer, address) pair: a single iovec, no control data.
/// `A` is the socket address type (`sockaddr_in`, `sockaddr_ll`).
fn headers<A>(iovs: &mut [libc::iovec], addrs: &mut [A]) -> Vec<libc::mmsghdr> {
    iovs.iter_mut()
        .zip(addrs.iter_mut())
        .map(|(iov, addr)| {
            // SAFETY: mmsghdr is plain old data; all-zero is valid (null control buffer).
            let mut h: libc::mmsghdr = unsafe { MaybeUninit::zeroed().assume_init() };
            h.msg_hdr.msg_name = (addr as *mut A).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<A>() as libc::socklen_t;
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect()
}

fn from_socket_addr(a: SocketAddrV4) -> libc::sockaddr_in {
    let mut s = zeroed_sockaddr();
    s.sin_family = libc::AF_INET as libc::sa_family_t;
    s.sin_port = a.port().to_be();
    s.sin_addr.s_addr = u32::from(*a.ip()).to_be();
    s
}

impl RecvBatch {
    pub fn new(capacity: usize, size: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            bufs: vec![0; capacity * size],
            size,
            addrs: vec![zeroed_sockaddr(); capacity],
            lens: vec![0; capacity],
            truncated: vec![false; capacity],
            filled: 0,
        }
    }

    /// Reads up to `capacity` datagrams without blocking; an empty queue is `Err(WouldBlock)`.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.recv_flags(fd, libc::MSG_DONTWAIT)
    }

    /// Blocks until at least one datagram arrives (or the socket's receive timeout passes),
    /// then takes what is queued, up to `capacity`. For blocking load generators.
    pub fn recv_wait(&mut self, fd: RawFd) -> io::Result<usize> {
        self.recv_flags(fd, libc::MSG_WAITFORONE)
    }

    fn recv_flags(&mut self, fd: RawFd, flags: libc::c_int) -> io::Result<usize> {
        let n = self.lens.len();
        let mut iovs: Vec<libc::iovec> = self
            .bufs
            .chunks_exact_mut(self.size)
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let mut hdrs = headers(&mut iovs, &mut self.addrs);
        // SAFETY: every header points into buffers owned by `self`/`iovs`, which outlive the
        // call; the count matches the array; a null timeout is allowed.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                n as libc::c_uint,
                // c_int on glibc, c_uint on musl.
                flags as _,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            self.filled = 0;
            return Err(io::Error::last_os_error());
        }
        let got = rc as usize;
        for (i, h) in hdrs.iter().take(got).enumerate() {
            self.lens[i] = (h.msg_len as usize).min(self.size);
            self.truncated[i] = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        self.filled = got;
        Ok(got)
    }

    /// The datagrams of the last successful [`recv`](Self::recv).
    pub fn iter(&self) -> impl Iterator<Item = Datagram<'_>> {
        (0..self.filled).map(move |i| Datagram {
            data: &self.bufs[i * self.size..i * self.size + self.lens[i]],
            source: to_socket_addr(&self.addrs[i]),
            truncated: self.truncated[i],
        })
    }
}

/// Sends `packets` without blocking; returns how many the kernel took (a prefix). An error
/// means the first one was refused (`WouldBlock` when the send buffer is full).
pub fn send_batch(fd: RawFd, packets: &[(&[u8], SocketAddrV4)]) -> io::Result<usize> {
    send_batch_flags(fd, packets, libc::MSG_DONTWAIT)
}

/// [`send_batch`] that may block until the kernel has room (for load generators).
pub fn send_batch_blocking(fd: RawFd, packets: &[(&[u8], SocketAddrV4)]) -> io::Result<usize> {
    send_batch_flags(fd, packets, 0)
}

fn send_batch_flags(
    fd: RawFd,
    packets: &[(&[u8], SocketAddrV4)],
    flags: libc::c_int,
) -> io::Result<usize> {
    let mut addrs: Vec<libc::sockaddr_in> =
        packets.iter().map(|(_, a)| from_socket_addr(*a)).collect();
    send_each(fd, packets.iter().map(|(p, _)| *p), &mut addrs, flags)
}

/// One `sendmmsg` of `payloads[i]` to `addrs[i]` (a socket address of type `A`); returns
/// how many the kernel took (a prefix).
pub(crate) fn send_each<'a, A>(
    fd: RawFd,
    payloads: impl Iterator<Item = &'a [u8]>,
    addrs: &mut [A],
    flags: libc::c_int,
) -> io::Result<usize> {
    let mut iovs: Vec<libc::iovec> = payloads
        .map(|p| libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        })
        .collect();
    if iovs.is_empty() {
        return Ok(0);
    }
    let mut hdrs = headers(&mut iovs, addrs);
    // SAFETY: headers point at `addrs`, `iovs` and the caller's payloads, all alive for the
    // call; the kernel only reads them.
    let rc = unsafe {
        libc::sendmmsg(
            fd,
            hdrs.as_mut_ptr(),
            hdrs.len() as libc::c_uint,
            flags as _,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn batch_round_trip_on_loopback() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = match rx.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let from = match tx.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let mut batch = RecvBatch::new(4, 16);
        let e = batch.recv(rx.as_raw_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);

        let payloads: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 10 + i as usize * 2]).collect();
        let pkts: Vec<(&[u8], SocketAddrV4)> =
            payloads.iter().map(|p| (p.as_slice(), to)).collect();
        assert_eq!(send_batch(tx.as_raw_fd(), &pkts).unwrap(), 6);
        assert_eq!(send_batch(tx.as_raw_fd(), &[]).unwrap(), 0);

        let mut seen = Vec::new();
        while seen.len() < 6 {
            match batch.recv(rx.as_raw_fd()) {
                Ok(n) => {
                    assert!(n <= 4);
                    for d in batch.iter() {
                        assert_eq!(d.source, Some(from));
                        seen.push((d.data.to_vec(), d.truncated));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        for (i, (data, truncated)) in seen.iter().enumerate() {
            let want = &payloads[i];
            // Buffers are 16 bytes: the 18-, 20- and 22-byte datagrams are cut and flagged.
            assert_eq!(*truncated, want.len() > 16, "datagram {i}");
            assert_eq!(data.as_slice(), &want[..want.len().min(16)], "datagram {i}");
        }
    }
}
