//! Which local address a request was sent to, and answering from it.
//!
//! A server listening on `0.0.0.0` of a host with several addresses (a secondary
//! address on the boot network, an alias for the PXE service, several subnets on one
//! link) must answer from the address the client asked: replies from another address
//! are not the server's to a PXE ROM or to most TFTP clients, which then time out.
//! The kernel picks the source address by routing (usually the interface's primary
//! address), so the listener asks for `IP_PKTINFO` / `IPV6_RECVPKTINFO`: every request
//! carries the local address it was sent to; transfer sockets are bound to it, and
//! packets sent from the listening socket itself (errors, single-port mode) carry it as
//! their source (`sendmsg` with a `PKTINFO` control message), as tftpd-hpa does.
//!
//! All `unsafe` of this crate's socket calls for this is in this module.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Control-message buffer: room for one `in6_pktinfo` or `in_pktinfo` and then some,
/// aligned for `cmsghdr`.
#[repr(C, align(8))]
struct Control([u8; 128]);

fn set_opt(sock: &UdpSocket, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: valid fd; pointer to a c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks the kernel to report each datagram's local address.
pub fn enable(sock: &UdpSocket) -> io::Result<()> {
    if sock.local_addr()?.is_ipv6() {
        set_opt(sock, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)?;
        // IPv4 datagrams on a dual-stack socket report through IP_PKTINFO; a v6-only
        // socket refuses it, which is fine.
        let _ = set_opt(sock, libc::IPPROTO_IP, libc::IP_PKTINFO);
        Ok(())
    } else {
        set_opt(sock, libc::IPPROTO_IP, libc::IP_PKTINFO)
    }
}

fn socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in; storage is larger.
            let sin: &libc::sockaddr_in = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6: &libc::sockaddr_in6 =
                unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The local address in the control messages, if any. A multicast destination is no
/// address to answer from (IPv4 reports the chosen local address in `ipi_spec_dst`
/// even for broadcasts).
fn local_from_control(msg: &libc::msghdr) -> Option<IpAddr> {
    let mut found = None;
    // SAFETY: msg was filled by recvmsg with msg_control pointing at our buffer and
    // msg_controllen set by the kernel; the CMSG_* macros stay within it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            let h = &*c;
            if h.cmsg_level == libc::IPPROTO_IP && h.cmsg_type == libc::IP_PKTINFO {
                let info: libc::in_pktinfo =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::in_pktinfo);
                let a = Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr));
                if !a.is_unspecified() {
                    found = Some(IpAddr::V4(a));
                }
            } else if h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_PKTINFO {
                let info: libc::in6_pktinfo =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::in6_pktinfo);
                let a = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                if !a.is_multicast() && !a.is_unspecified() {
                    found = Some(match a.to_ipv4_mapped() {
                        Some(v4) => IpAddr::V4(v4),
                        None => IpAddr::V6(a),
                    });
                }
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    found
}

fn recv_now(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<IpAddr>)> {
    // SAFETY: all-zero is a valid sockaddr_storage / msghdr.
    let mut name: libc::sockaddr_storage = unsafe { zeroed() };
    let mut control = Control([0; 128]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len() as _;
    // SAFETY: every pointer in msg refers to a live local buffer of the stated size.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let peer = socket_addr(&name).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "datagram without a peer address",
        )
    })?;
    // A datagram larger than the buffer is cut; report the cut length like recv_from.
    Ok(((n as usize).min(buf.len()), peer, local_from_control(&msg)))
}

/// `recv_from` that also says which local address the datagram was sent to (`None`
/// when the socket did not ask, see [`enable`]).
pub async fn recv_from(
    sock: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<IpAddr>)> {
    sock.async_io(Interest::READABLE, || recv_now(sock, buf))
        .await
}

fn sockaddr_of(peer: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match peer {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn send_now(sock: &UdpSocket, pkt: &[u8], peer: SocketAddr, from: IpAddr) -> io::Result<usize> {
    let (mut name, namelen) = sockaddr_of(peer);
    let mut control = Control([0; 128]);
    let mut iov = libc::iovec {
        iov_base: pkt.as_ptr() as *mut libc::c_void,
        iov_len: pkt.len(),
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = namelen;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure size computation; the buffer holds 128 bytes, more
    // than one cmsghdr with an in6_pktinfo; CMSG_FIRSTHDR is non-null for that length.
    unsafe {
        let (level, kind, data_len) = match from {
            IpAddr::V4(_) => (
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                size_of::<libc::in_pktinfo>(),
            ),
            IpAddr::V6(_) => (
                libc::IPPROTO_IPV6,
                libc::IPV6_PKTINFO,
                size_of::<libc::in6_pktinfo>(),
            ),
        };
        msg.msg_controllen = libc::CMSG_SPACE(data_len as u32) as _;
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() {
            return Err(io::Error::other("no room for a control message"));
        }
        (*c).cmsg_level = level;
        (*c).cmsg_type = kind;
        (*c).cmsg_len = libc::CMSG_LEN(data_len as u32) as _;
        match from {
            IpAddr::V4(a) => {
                let mut info: libc::in_pktinfo = zeroed();
                info.ipi_spec_dst.s_addr = u32::from(a).to_be();
                std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut libc::in_pktinfo, info);
            }
            IpAddr::V6(a) => {
                let mut info: libc::in6_pktinfo = zeroed();
                info.ipi6_addr.s6_addr = a.octets();
                std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut libc::in6_pktinfo, info);
            }
        }
    }
    // SAFETY: every pointer in msg refers to a live local buffer of the stated size.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `send_to`, from local address `from` when given (the address the client sent its
/// request to).
pub async fn send_to(
    sock: &UdpSocket,
    pkt: &[u8],
    peer: SocketAddr,
    from: Option<IpAddr>,
) -> io::Result<usize> {
    match from {
        None => sock.send_to(pkt, peer).await,
        Some(from) => {
            sock.async_io(Interest::WRITABLE, || send_now(sock, pkt, peer, from))
                .await
        }
    }
}

// Tested through the server in tests/answer_from_asked.rs (inside a network namespace
// the test makes: listening on a wildcard address must not touch real interfaces).
