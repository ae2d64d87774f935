//! Sockets of the measured path: one UDP datagram or one TCP frame of exactly `size` bytes
//! per reply, received blocking (with a receive timeout) or by busy polling, with the
//! kernel's software RX timestamp where SO_TIMESTAMPING provides it.
//!
//! [`Transport`] is the seam between the measured loop and the network: the loop is tested
//! against scripted transports, and `vmprobe run` can hand in sockets it opened elsewhere
//! (for instance inside a network namespace).
use std::io;
use std::net::{TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::stamp;

/// The longest a blocking receive sleeps before it looks at the stop flag again.
const STOP_CHECK_NS: u64 = 50_000_000;

/// What a receive produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// `len` bytes of one reply, stamped `t1_mono_ns` the moment the receive call that
    /// completed it returned; `rx_sw_unix_ns` is the kernel's software receive timestamp
    /// (CLOCK_REALTIME) when the socket delivers one.
    Data {
        /// Bytes written to the buffer.
        len: usize,
        /// CLOCK_MONOTONIC read right after the completing `recvmsg` returned, before
        /// anything else (control messages, bookkeeping) ran, ns.
        t1_mono_ns: u64,
        /// Kernel software RX timestamp, ns since the Unix epoch.
        rx_sw_unix_ns: Option<u64>,
    },
    /// The deadline passed without a reply.
    Timeout,
    /// The stop flag was raised.
    Stopped,
}

/// A request/reply channel to the echo target.
pub trait Transport {
    /// Sends one request.
    fn send(&mut self, request: &[u8]) -> io::Result<()>;
    /// Receives one reply into `buf` (which is large enough for any reply of interest),
    /// giving up at CLOCK_MONOTONIC `deadline_ns` or when `stop` is raised. The caller passes
    /// the same buffer until a reply is complete: a stream transport keeps a partial frame
    /// there across a timeout.
    fn recv(&mut self, buf: &mut [u8], deadline_ns: u64, stop: &AtomicBool)
        -> io::Result<Received>;
}

/// An open socket to the target: what a connect step hands to the measured loop.
#[derive(Debug)]
pub enum Endpoint {
    /// A connected UDP socket.
    Udp(UdpSocket),
    /// A connected TCP stream.
    Tcp(TcpStream),
}

/// Asks the kernel for software RX timestamps; returns whether it agreed.
fn enable_rx_timestamps(fd: RawFd) -> bool {
    let flags: libc::c_uint = libc::SOF_TIMESTAMPING_RX_SOFTWARE | libc::SOF_TIMESTAMPING_SOFTWARE;
    // SAFETY: `flags` outlives the call and its size is passed along.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPING,
            (&flags as *const libc::c_uint).cast(),
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// What one `recvmsg` returned.
struct Got {
    len: usize,
    truncated: bool,
    /// CLOCK_MONOTONIC right after the call returned.
    t1_mono_ns: u64,
    /// The SCM_TIMESTAMPING software stamp, if any.
    rx_sw_unix_ns: Option<u64>,
}

/// One `recvmsg` that also collects an SCM_TIMESTAMPING software timestamp; the clock is
/// read first thing after the call returns, so walking the control messages is not timed.
fn recv_with_timestamp(fd: RawFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<Got> {
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty header; the fields are filled below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `iov` (covering `buf`) and `control`, all live for the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, flags) };
    let t1_mono_ns = stamp::mono_ns();
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let truncated = msg.msg_flags & libc::MSG_TRUNC != 0;
    let mut stamp = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel just filled, bounded by
    // `msg_controllen`; the payload is read unaligned because cmsg data need not be.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPING
            {
                // struct scm_timestamping { struct timespec ts[3]; }: ts[0] is the software stamp.
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                if ts.tv_sec != 0 || ts.tv_nsec != 0 {
                    stamp = Some(stamp::timespec_ns(&ts));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Got {
        len: n as usize,
        truncated,
        t1_mono_ns,
        rx_sw_unix_ns: stamp,
    })
}

/// The receive-side waiting policy shared by UDP and TCP.
#[derive(Debug)]
struct Waiter {
    fd: RawFd,
    busy_poll: bool,
    /// The SO_RCVTIMEO currently set (blocking mode), ns.
    rcvtimeo_ns: u64,
    /// The slice a blocking receive normally waits for.
    slice_ns: u64,
}

impl Waiter {
    fn new(fd: RawFd, busy_poll: bool, timeout: Duration) -> io::Result<Self> {
        let slice_ns = u64::try_from(timeout.as_nanos())
            .unwrap_or(u64::MAX)
            .clamp(1_000, STOP_CHECK_NS);
        let mut w = Self {
            fd,
            busy_poll,
            rcvtimeo_ns: 0,
            slice_ns,
        };
        if !busy_poll {
            w.set_rcvtimeo(slice_ns)?;
        }
        Ok(w)
    }

    fn set_rcvtimeo(&mut self, ns: u64) -> io::Result<()> {
        let ns = ns.max(1_000); // 0 would mean "forever"
        let tv = libc::timeval {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_usec: ((ns % 1_000_000_000) / 1_000) as libc::suseconds_t,
        };
        // SAFETY: `tv` outlives the call and its size is passed along.
        let rc = unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        self.rcvtimeo_ns = ns;
        Ok(())
    }

    /// Calls `attempt` (one receive) until it yields data, the deadline passes or `stop` is
    /// raised. `attempt` returns `Ok(None)` for "nothing yet".
    fn wait<T>(
        &mut self,
        deadline_ns: u64,
        stop: &AtomicBool,
        mut attempt: impl FnMut(libc::c_int) -> io::Result<Option<T>>,
    ) -> io::Result<Result<T, Received>> {
        let flags = if self.busy_poll {
            libc::MSG_DONTWAIT
        } else {
            0
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(Err(Received::Stopped));
            }
            let now = stamp::mono_ns();
            if now >= deadline_ns {
                return Ok(Err(Received::Timeout));
            }
            if !self.busy_poll {
                // Keep SO_RCVTIMEO as it is on the common path (no syscall per transaction);
                // shrink it only when the deadline is nearer than the current slice allows.
                let want = (deadline_ns - now).min(self.slice_ns);
                if self.rcvtimeo_ns > want + want / 8 + 100_000 || self.rcvtimeo_ns < want / 2 {
                    self.set_rcvtimeo(want)?;
                }
            }
            match attempt(flags) {
                Ok(Some(v)) => return Ok(Ok(v)),
                Ok(None) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
            if self.busy_poll {
                std::hint::spin_loop();
            }
        }
    }
}

/// A connected UDP socket: one datagram per request and per reply.
#[derive(Debug)]
pub struct UdpTransport {
    socket: UdpSocket,
    waiter: Waiter,
    rx_timestamps: bool,
}

impl UdpTransport {
    /// Prepares a connected socket for the measured loop.
    pub fn new(socket: UdpSocket, busy_poll: bool, timeout: Duration) -> io::Result<Self> {
        socket.set_nonblocking(busy_poll)?;
        let fd = socket.as_raw_fd();
        let rx_timestamps = enable_rx_timestamps(fd);
        Ok(Self {
            waiter: Waiter::new(fd, busy_poll, timeout)?,
            socket,
            rx_timestamps,
        })
    }

    /// Whether the kernel agreed to timestamp received datagrams.
    pub fn rx_timestamps(&self) -> bool {
        self.rx_timestamps
    }
}

impl Transport for UdpTransport {
    fn send(&mut self, request: &[u8]) -> io::Result<()> {
        loop {
            match self.socket.send(request) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::hint::spin_loop(),
                Err(e) => return Err(e),
            }
        }
    }

    fn recv(
        &mut self,
        buf: &mut [u8],
        deadline_ns: u64,
        stop: &AtomicBool,
    ) -> io::Result<Received> {
        let fd = self.socket.as_raw_fd();
        let got = self.waiter.wait(deadline_ns, stop, |flags| {
            let got = recv_with_timestamp(fd, buf, flags)?;
            // A datagram longer than the buffer is reported as one byte too long: wrong.
            let len = if got.truncated { buf.len() } else { got.len };
            Ok(Some(Received::Data {
                len,
                t1_mono_ns: got.t1_mono_ns,
                rx_sw_unix_ns: got.rx_sw_unix_ns,
            }))
        })?;
        Ok(got.unwrap_or_else(|r| r))
    }
}

/// A TCP stream with TCP_NODELAY: a reply is exactly `frame_len` bytes of the stream,
/// received straight into the caller's buffer.
#[derive(Debug)]
pub struct TcpTransport {
    stream: TcpStream,
    waiter: Waiter,
    frame_len: usize,
    /// Bytes of the current frame already in the caller's buffer.
    filled: usize,
    rx_timestamps: bool,
}

impl TcpTransport {
    /// Prepares a connected stream for frames of `frame_len` bytes.
    pub fn new(
        stream: TcpStream,
        frame_len: usize,
        busy_poll: bool,
        timeout: Duration,
    ) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        stream.set_nonblocking(busy_poll)?;
        let fd = stream.as_raw_fd();
        let rx_timestamps = enable_rx_timestamps(fd);
        Ok(Self {
            waiter: Waiter::new(fd, busy_poll, timeout)?,
            stream,
            frame_len: frame_len.max(1),
            filled: 0,
            rx_timestamps,
        })
    }

    /// Whether the kernel agreed to timestamp received segments.
    pub fn rx_timestamps(&self) -> bool {
        self.rx_timestamps
    }
}

impl Transport for TcpTransport {
    fn send(&mut self, request: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let mut rest = request;
        while !rest.is_empty() {
            match self.stream.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    ) =>
                {
                    std::hint::spin_loop()
                }
                Err(e) => return Err(target_hung_up(e)),
            }
        }
        Ok(())
    }

    fn recv(
        &mut self,
        buf: &mut [u8],
        deadline_ns: u64,
        stop: &AtomicBool,
    ) -> io::Result<Received> {
        let fd = self.stream.as_raw_fd();
        let frame_len = self.frame_len.min(buf.len());
        let frame = &mut buf[..frame_len];
        let filled = &mut self.filled;
        // A frame cut by a timeout stays in `buf` (the caller passes it again): the stream
        // keeps its framing.
        let got = self.waiter.wait(deadline_ns, stop, |flags| {
            let got =
                recv_with_timestamp(fd, &mut frame[*filled..], flags).map_err(target_hung_up)?;
            if got.len == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed by the target (FIN)",
                ));
            }
            *filled += got.len;
            Ok((*filled == frame.len()).then_some(got))
        })?;
        match got {
            Ok(got) => {
                let len = self.filled;
                self.filled = 0;
                Ok(Received::Data {
                    len,
                    t1_mono_ns: got.t1_mono_ns,
                    rx_sw_unix_ns: got.rx_sw_unix_ns,
                })
            }
            Err(r) => Ok(r),
        }
    }
}

/// Names a TCP peer's hang-up plainly. A peer that closes with a request still unread makes the
/// kernel send RST instead of FIN, so the same hang-up arrives as a reset or a broken pipe.
fn target_hung_up(e: io::Error) -> io::Error {
    let what = match e.kind() {
        io::ErrorKind::ConnectionReset => {
            "connection closed by the target (RST: it closed with data unread)"
        }
        io::ErrorKind::BrokenPipe => "connection closed by the target (write after its close)",
        _ => return e,
    };
    io::Error::new(e.kind(), what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    #[test]
    fn a_target_that_closes_with_a_request_unread_reads_as_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut t = TcpTransport::new(client, 16, false, Duration::from_secs(5)).unwrap();
        t.send(&[7; 16]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // Closing with the request unread makes the kernel answer with RST, not FIN.
        drop(server);
        let stop = AtomicBool::new(false);
        let mut buf = [0u8; 16];
        let e = t
            .recv(&mut buf, stamp::mono_ns() + 5_000_000_000, &stop)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        assert!(
            e.to_string()
                .starts_with("connection closed by the target (RST"),
            "{e}"
        );
    }

    #[test]
    fn a_tcp_frame_cut_by_a_timeout_completes_in_the_callers_buffer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let mut t = TcpTransport::new(client, 16, false, Duration::from_millis(20)).unwrap();
        let stop = AtomicBool::new(false);
        let mut buf = [0u8; 64];
        let frame: Vec<u8> = (0..16).collect();
        server.write_all(&frame[..10]).unwrap();
        let deadline = stamp::mono_ns() + 20_000_000;
        assert_eq!(
            t.recv(&mut buf, deadline, &stop).unwrap(),
            Received::Timeout
        );
        server.write_all(&frame[10..]).unwrap();
        let before = stamp::mono_ns();
        let got = t.recv(&mut buf, before + 1_000_000_000, &stop).unwrap();
        let after = stamp::mono_ns();
        let Received::Data {
            len, t1_mono_ns, ..
        } = got
        else {
            panic!("{got:?}")
        };
        assert_eq!(&buf[..len], &frame[..]);
        // Stamped when the completing receive returned, inside the call.
        assert!((before..=after).contains(&t1_mono_ns));
        // The next frame starts afresh.
        server.write_all(&frame).unwrap();
        let got = t
            .recv(&mut buf, stamp::mono_ns() + 1_000_000_000, &stop)
            .unwrap();
        assert!(matches!(got, Received::Data { len: 16, .. }));
    }
}
