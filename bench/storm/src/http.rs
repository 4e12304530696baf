//! HTTP/1.1 as iPXE speaks it: GETs on one keep-alive connection per server, bodies read
//! to the end (Content-Length or chunked), plus the parsing of the iPXE script a boot server
//! returns (its `kernel` and `initrd` lines).

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

/// A read that makes no progress for this long fails the request.
const IDLE: Duration = Duration::from_secs(60);
/// iPXE's largest advertised TCP window (`TCP_MAX_WINDOW_SIZE` in its `tcp.h`): 256 KiB,
/// whatever the link. The default of `--window-kib`.
pub const IPXE_WINDOW_KIB: u32 = 256;
const USER_AGENT: &str = "iPXE/1.0.0+";
/// The most one read takes from a connection.
const READ_CHUNK: usize = 256 * 1024;

/// How a machine's TCP receives, the same for every server.
#[derive(Debug, Clone, Copy)]
pub struct Receive {
    /// The largest TCP window the connection advertises, in KiB, fixed before the handshake
    /// (so the window scale fits it); 0 leaves window and buffer to the kernel's autotuning.
    pub window_kib: u32,
    /// Bodies nobody keeps (kernels, initrds) are copied into the tool's memory, as a real
    /// machine's are; when false the kernel drops them (`recv` with `MSG_TRUNC`), so the
    /// simulated machines spend no CPU copying bytes that real ones copy on their own CPUs.
    pub copy_bodies: bool,
}

/// An `http://host:port/path` URL split in two (host:port as written, path with query).
#[derive(Debug, Clone, PartialEq)]
pub struct Url {
    pub authority: String,
    pub path: String,
}

impl Url {
    /// Resolves `s` as iPXE does against a script fetched from `base`: absolute URLs as
    /// they are, `/path` on the same server, anything else next to the script.
    pub fn resolve(base: &Url, s: &str) -> Url {
        if let Some(rest) = s.strip_prefix("http://") {
            let (a, p) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            Url {
                authority: a.to_string(),
                path: if p.is_empty() { "/".into() } else { p.into() },
            }
        } else if s.starts_with('/') {
            Url {
                authority: base.authority.clone(),
                path: s.into(),
            }
        } else {
            let dir = &base.path[..base.path.rfind('/').map_or(0, |i| i + 1)];
            Url {
                authority: base.authority.clone(),
                path: format!("{dir}{s}"),
            }
        }
    }
}

/// The images an iPXE script boots: the `kernel` URL and every `initrd` URL.
#[derive(Debug, Default, PartialEq)]
pub struct Script {
    pub kernel: Option<String>,
    pub initrds: Vec<String>,
}

/// Reads the first `kernel` line and the `initrd` lines of an iPXE script; options such as
/// `--name main` are skipped.
pub fn parse_script(text: &str) -> Script {
    let mut s = Script::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("");
        if cmd != "kernel" && cmd != "initrd" {
            continue;
        }
        let mut url = None;
        while let Some(w) = words.next() {
            if w.starts_with("--") {
                if !w.contains('=') && matches!(w, "--name" | "-n" | "--timeout") {
                    words.next();
                }
                continue;
            }
            url = Some(w.to_string());
            break;
        }
        match (cmd, url) {
            ("kernel", Some(u)) if s.kernel.is_none() => s.kernel = Some(u),
            ("initrd", Some(u)) => s.initrds.push(u),
            _ => {}
        }
    }
    s
}

pub struct Response {
    pub status: u16,
    /// From the request written to the status line read: how long the server took to
    /// start answering (time to first byte).
    pub first_byte: std::time::Duration,
    pub length: u64,
    /// The body, when asked to keep it.
    pub body: Vec<u8>,
}

/// One keep-alive connection from the machine's address.
pub struct Conn {
    authority: String,
    stream: TcpStream,
    copy_bodies: bool,
    buf: Vec<u8>,
    /// Where `MSG_TRUNC` reads "land" (the kernel writes nothing into it).
    sink: Vec<MaybeUninit<u8>>,
    /// Bytes of `buf` read but not consumed.
    start: usize,
    end: usize,
    reusable: bool,
}

impl Conn {
    /// Connects from `local`, receiving as `rx` says.
    pub async fn open(local: Ipv4Addr, authority: &str, rx: Receive) -> io::Result<Conn> {
        let addr: SocketAddr = authority
            .parse()
            .map_err(|_| io::Error::other(format!("not an ip:port: {authority}")))?;
        let s = TcpSocket::new_v4()?;
        if rx.window_kib > 0 {
            // Linux doubles what `SO_RCVBUF` asks (asking the window gave windows of 476,088
            // bytes) and advertises most of the buffer: 0.86-0.91 of it as measured here.
            // `TCP_WINDOW_CLAMP` cannot cap it instead: the kernel recomputes the clamp
            // from the buffer whenever its payload-to-memory ratio moves.
            s.set_recv_buffer_size(rx.window_kib.saturating_mul(1024) / 2)?;
        }
        s.bind(SocketAddr::new(local.into(), 0))?;
        let stream = timeout(IDLE, s.connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect"))??;
        stream.set_nodelay(true)?;
        Ok(Conn {
            authority: authority.to_string(),
            stream,
            copy_bodies: rx.copy_bodies,
            buf: vec![0; READ_CHUNK],
            sink: Vec::new(),
            start: 0,
            end: 0,
            reusable: true,
        })
    }

    pub fn authority(&self) -> &str {
        &self.authority
    }

    pub fn reusable(&self) -> bool {
        self.reusable
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = timeout(IDLE, self.stream.read(&mut self.buf[self.end..]))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "read"))??;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.end += n;
        Ok(())
    }

    /// Takes one CRLF-terminated line.
    async fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = self.buf[self.start..self.end]
                .windows(2)
                .position(|w| w == b"\r\n")
            {
                let l = String::from_utf8_lossy(&self.buf[self.start..self.start + i]).into_owned();
                self.start += i + 2;
                return Ok(l);
            }
            if self.end - self.start > 64 * 1024 {
                return Err(io::Error::other("header line too long"));
            }
            self.fill().await?;
        }
    }

    /// Consumes `n` body bytes, appending them to `keep` if given.
    async fn body(&mut self, mut n: u64, mut keep: Option<&mut Vec<u8>>) -> io::Result<()> {
        if keep.is_none() && !self.copy_bodies {
            return self.drop_body(n).await;
        }
        while n > 0 {
            if self.start == self.end {
                self.fill().await?;
            }
            let take = (self.end - self.start).min(n.try_into().unwrap_or(usize::MAX));
            if let Some(k) = keep.as_deref_mut() {
                k.extend_from_slice(&self.buf[self.start..self.start + take]);
            }
            self.start += take;
            n -= take as u64;
        }
        Ok(())
    }

    /// Consumes `n` body bytes without copying them: what is already buffered, then the
    /// rest dropped by the kernel (`MSG_TRUNC` on a TCP socket discards the data and
    /// returns its length).
    async fn drop_body(&mut self, mut n: u64) -> io::Result<()> {
        let buffered = (self.end - self.start).min(n.try_into().unwrap_or(usize::MAX));
        self.start += buffered;
        n -= buffered as u64;
        if self.sink.is_empty() && n > 0 {
            self.sink = vec![MaybeUninit::uninit(); READ_CHUNK];
        }
        while n > 0 {
            let want = usize::try_from(n).unwrap_or(usize::MAX).min(READ_CHUNK);
            let (stream, sink) = (&self.stream, &mut self.sink[..want]);
            let got = timeout(IDLE, async {
                loop {
                    stream.readable().await?;
                    match stream.try_io(Interest::READABLE, || {
                        SockRef::from(stream).recv_with_flags(sink, libc::MSG_TRUNC)
                    }) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        r => return r,
                    }
                }
            })
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "read"))??;
            if got == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            n -= got as u64;
        }
        Ok(())
    }

    /// GET `path`; the body is returned when `keep`, else only counted.
    pub async fn get(&mut self, path: &str, keep: bool) -> io::Result<Response> {
        let req = format!(
            "GET {path} HTTP/1.1\r\nConnection: keep-alive\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\n\r\n",
            self.authority
        );
        let sent = std::time::Instant::now();
        self.stream.write_all(req.as_bytes()).await?;
        let status_line = self.line().await?;
        let first_byte = sent.elapsed();
        let mut parts = status_line.split_whitespace();
        let version = parts.next().unwrap_or("");
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
        let (mut length, mut chunked) = (None, false);
        self.reusable = version == "HTTP/1.1";
        loop {
            let l = self.line().await?;
            if l.is_empty() {
                break;
            }
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.parse::<u64>().ok(),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "connection" if v.eq_ignore_ascii_case("close") => self.reusable = false,
                "connection" if v.eq_ignore_ascii_case("keep-alive") => self.reusable = true,
                _ => {}
            }
        }
        let mut body = Vec::new();
        let mut total = 0u64;
        if chunked {
            loop {
                let size_line = self.line().await?;
                let hex = size_line.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(hex, 16)
                    .map_err(|_| io::Error::other(format!("bad chunk size {size_line:?}")))?;
                if size == 0 {
                    while !self.line().await?.is_empty() {} // trailers
                    break;
                }
                self.body(size, keep.then_some(&mut body)).await?;
                total += size;
                self.line().await?;
            }
        } else if let Some(n) = length {
            self.body(n, keep.then_some(&mut body)).await?;
            total = n;
        } else {
            // Delimited by the end of the connection.
            self.reusable = false;
            loop {
                match self.fill().await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
                let n = self.end - self.start;
                if keep {
                    body.extend_from_slice(&self.buf[self.start..self.end]);
                }
                self.start = self.end;
                total += n as u64;
            }
        }
        Ok(Response {
            status,
            first_byte,
            length: total,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// Two answers on one connection, the first body dropped by the kernel, the second
    /// kept: the drop takes exactly the body's bytes, whatever was already buffered.
    #[tokio::test]
    async fn dropped_bodies_keep_the_framing() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let big = 3 * READ_CHUNK + 12_345;
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = [0u8; 1024];
            for body in [vec![7u8; big], b"{\"ok\":1}".to_vec()] {
                let mut got = Vec::new();
                while !got.ends_with(b"\r\n\r\n") {
                    let n = s.read(&mut req).await.unwrap();
                    assert!(n > 0);
                    got.extend_from_slice(&req[..n]);
                }
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                s.write_all(head.as_bytes()).await.unwrap();
                s.write_all(&body).await.unwrap();
            }
        });
        let rx = Receive {
            window_kib: 0,
            copy_bodies: false,
        };
        let mut c = Conn::open(Ipv4Addr::LOCALHOST, &addr.to_string(), rx)
            .await
            .unwrap();
        let r = c.get("/assets/initrd", false).await.unwrap();
        assert_eq!((r.status, r.length, r.body.len()), (200, big as u64, 0));
        let r = c.get("/ignition", true).await.unwrap();
        assert_eq!(r.body, b"{\"ok\":1}");
        server.await.unwrap();
    }

    /// The window a server sees from a connection opened with `window_kib: 256` stays within
    /// iPXE's 256 KiB after a 16 MB answer (asking `SO_RCVBUF` for 256 KiB let it reach
    /// 450,824 bytes here, 476,088 over the storm's veth).
    #[tokio::test]
    async fn the_window_is_ipxes() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = [0u8; 1024];
            let mut windows = Vec::new();
            for body in [vec![1u8; 16_000_000], Vec::new()] {
                let mut got = Vec::new();
                while !got.ends_with(b"\r\n\r\n") {
                    let n = s.read(&mut req).await.unwrap();
                    assert!(n > 0);
                    got.extend_from_slice(&req[..n]);
                }
                // Asked after the client read the whole previous answer: its window is open.
                windows.push(peer_window(&s));
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                s.write_all(head.as_bytes()).await.unwrap();
                s.write_all(&body).await.unwrap();
            }
            windows
        });
        let rx = Receive {
            window_kib: IPXE_WINDOW_KIB,
            copy_bodies: false,
        };
        let mut c = Conn::open(Ipv4Addr::LOCALHOST, &addr.to_string(), rx)
            .await
            .unwrap();
        assert_eq!(c.get("/a", false).await.unwrap().length, 16_000_000);
        assert_eq!(c.get("/b", true).await.unwrap().status, 200);
        let windows = server.await.unwrap();
        let after = windows[1];
        assert!(
            after <= IPXE_WINDOW_KIB * 1024,
            "window {after} after 16 MB"
        );
        assert!(
            after > IPXE_WINDOW_KIB * 1024 / 2,
            "window {after}: not opened"
        );
    }

    /// `tcpi_snd_wnd`: the window the peer last advertised, scaled.
    fn peer_window(s: &tokio::net::TcpStream) -> u32 {
        const SND_WND: usize = 228;
        let mut info = [0u8; 512];
        let mut len = info.len() as libc::socklen_t;
        // SAFETY: a valid descriptor and a buffer of the length passed.
        let r = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0, "TCP_INFO: {}", io::Error::last_os_error());
        assert!(len as usize >= SND_WND + 4, "kernel without tcpi_snd_wnd");
        u32::from_ne_bytes(info[SND_WND..SND_WND + 4].try_into().unwrap())
    }

    #[test]
    fn matchbox_script() {
        let s = "#!ipxe\nkernel /assets/vmlinuz initrd=initrd.img ignition.config.url=http://192.168.78.1:8080/ignition?mac=${mac:hexhyp} console=ttyS0\ninitrd  /assets/initrd.img\nboot\n";
        assert_eq!(
            parse_script(s),
            Script {
                kernel: Some("/assets/vmlinuz".into()),
                initrds: vec!["/assets/initrd.img".into()],
            }
        );
    }

    #[test]
    fn script_with_names_and_absolute_urls() {
        let s = "#!ipxe\r\nkernel --name k http://192.168.78.1:8081/assets/vmlinuz a=b\r\n\
                 initrd --name main http://192.168.78.1:8081/assets/initrd.img\r\n\
                 initrd --name=extra extra.img\r\n# initrd comment.img\r\nboot\r\n";
        let p = parse_script(s);
        assert_eq!(
            p.kernel.as_deref(),
            Some("http://192.168.78.1:8081/assets/vmlinuz")
        );
        assert_eq!(
            p.initrds,
            vec!["http://192.168.78.1:8081/assets/initrd.img", "extra.img"]
        );
        assert_eq!(parse_script("#!ipxe\nchain boot.ipxe\n"), Script::default());
    }

    #[test]
    fn resolves_urls_like_ipxe() {
        let base = Url {
            authority: "192.168.78.1:8080".into(),
            path: "/ipxe?mac=52-54-00-00-00-01".into(),
        };
        assert_eq!(
            Url::resolve(&base, "http://192.168.78.1:8081/assets/vmlinuz"),
            Url {
                authority: "192.168.78.1:8081".into(),
                path: "/assets/vmlinuz".into()
            }
        );
        assert_eq!(Url::resolve(&base, "/assets/x").path, "/assets/x");
        assert_eq!(
            Url::resolve(&base, "/assets/x").authority,
            "192.168.78.1:8080"
        );
        assert_eq!(Url::resolve(&base, "initrd.img").path, "/initrd.img");
        assert_eq!(Url::resolve(&base, "http://h:1").path, "/");
    }
}
