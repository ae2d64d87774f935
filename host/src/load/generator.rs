//! The generator loops, one per thread: each runs until the stop flag rises, counting bytes,
//! datagrams and errors. Sockets carry short timeouts so a raised flag is seen within
//! [`POLL`] even when the guest stops reading.
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often a blocked generator looks at the stop flag.
pub const POLL: Duration = Duration::from_millis(100);
/// Bytes per TCP write or read.
pub const TCP_CHUNK: usize = 64 * 1024;
/// Payload of each flood datagram (fits an Ethernet frame with headers).
pub const UDP_PAYLOAD: usize = 1024;
/// How long a (re)connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before reconnecting after the guest dropped a stream.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
/// A flood that fell behind sends at most this many datagrams back to back to catch up.
const MAX_CATCH_UP: u64 = 64;

/// What a generator counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Payload bytes sent or received.
    pub bytes: u64,
    /// Datagrams sent (UDP only).
    pub packets: u64,
    /// Failed operations (refused or reset connections, failed sends), each counted once.
    pub errors: u64,
}

/// A generator's outcome: counts, the measured time, and the last error seen.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// Totals.
    pub counts: Counts,
    /// From the first byte to the stop.
    pub elapsed: Duration,
    /// Last error message, if any.
    pub last_error: Option<String>,
}

/// A connected stream, or why it could not be opened.
pub fn open_tcp(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    s.set_read_timeout(Some(POLL))?;
    s.set_write_timeout(Some(POLL))?;
    Ok(s)
}

/// A UDP socket connected to `addr`.
pub fn open_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(local)?;
    s.connect(addr)?;
    s.set_write_timeout(Some(POLL))?;
    Ok(s)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Direction of a TCP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Write into the guest.
    Send,
    /// Read from the guest.
    Receive,
}

/// Streams over `stream` (already connected) until `stop`; a dropped connection is an error
/// and is reopened to `addr`.
pub fn tcp_stream(
    mut stream: TcpStream,
    addr: SocketAddr,
    direction: Direction,
    stop: &AtomicBool,
) -> Transfer {
    // A fixed pattern: discard ignores it and the guest's TCP does not care.
    let mut buf: Vec<u8> = (0..TCP_CHUNK).map(|i| (i % 251) as u8).collect();
    let mut counts = Counts::default();
    let mut last_error = None;
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let r = match direction {
            Direction::Send => stream.write(&buf),
            Direction::Receive => stream.read(&mut buf),
        };
        let failure = match r {
            Ok(0) => Some("the guest closed the connection".to_string()),
            Ok(n) => {
                counts.bytes += n as u64;
                None
            }
            Err(e) if is_timeout(&e) => None,
            Err(e) => Some(e.to_string()),
        };
        if let Some(message) = failure {
            counts.errors += 1;
            last_error = Some(message);
            // Reconnect until it works or the run ends.
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(RECONNECT_PAUSE);
                match open_tcp(addr) {
                    Ok(s) => {
                        stream = s;
                        break;
                    }
                    Err(e) => {
                        counts.errors += 1;
                        last_error = Some(format!("reconnecting: {e}"));
                    }
                }
            }
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Transfer {
        counts,
        elapsed: start.elapsed(),
        last_error,
    }
}

/// Sends `rate_pps` datagrams per second until `stop`. Paced against the start time, so
/// short sleeps that overshoot are made up (by at most [`MAX_CATCH_UP`] datagrams at once:
/// a sender that cannot keep up reports the rate it achieved rather than bursting).
pub fn udp_flood(socket: UdpSocket, rate_pps: u64, stop: &AtomicBool) -> Transfer {
    let payload: Vec<u8> = (0..UDP_PAYLOAD).map(|i| (i % 251) as u8).collect();
    let mut counts = Counts::default();
    let mut last_error = None;
    let start = Instant::now();
    let period_ns = 1e9 / rate_pps as f64;
    // Datagrams due so far, counted from `origin`, which moves forward when the sender lags.
    let mut origin = start;
    let mut issued: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = (origin.elapsed().as_nanos() as f64 / period_ns) as u64 + 1;
        if due <= issued {
            let next = origin + Duration::from_nanos(((issued as f64) * period_ns) as u64);
            let wait = next.saturating_duration_since(Instant::now()).min(POLL);
            std::thread::sleep(wait);
            continue;
        }
        if due - issued > MAX_CATCH_UP {
            // Too far behind: forget the debt rather than burst.
            origin = Instant::now();
            issued = 0;
            continue;
        }
        issued += 1;
        match socket.send(&payload) {
            Ok(n) => {
                counts.bytes += n as u64;
                counts.packets += 1;
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => {
                counts.errors += 1;
                last_error = Some(e.to_string());
            }
        }
    }
    Transfer {
        counts,
        elapsed: start.elapsed(),
        last_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::Arc;

    #[test]
    fn tcp_send_counts_what_the_peer_reads() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut total = 0u64;
            let mut buf = vec![0u8; 65536];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => total += n as u64,
                }
            }
        });
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let gen = std::thread::spawn(move || {
            tcp_stream(open_tcp(addr).unwrap(), addr, Direction::Send, &s2)
        });
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        let out = gen.join().unwrap();
        let read = reader.join().unwrap();
        assert!(out.counts.bytes > 0);
        assert_eq!(out.counts.bytes, read);
        assert_eq!(out.counts.errors, 0);
    }

    #[test]
    fn udp_flood_sends_datagrams_and_counts_refusals() {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sink.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let gen = std::thread::spawn(move || udp_flood(open_udp(addr).unwrap(), 1000, &s2));
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let out = gen.join().unwrap();
        assert!(out.counts.packets > 0);
        assert_eq!(out.counts.bytes, out.counts.packets * UDP_PAYLOAD as u64);
        let mut buf = [0u8; 2048];
        assert_eq!(sink.recv(&mut buf).unwrap(), UDP_PAYLOAD);

        // Nobody listening: the kernel reports ICMP port unreachable on the connected socket.
        drop(sink);
        let stop = AtomicBool::new(false);
        let sock = open_udp(addr).unwrap();
        std::thread::scope(|s| {
            let h = s.spawn(|| udp_flood(sock, 1000, &stop));
            std::thread::sleep(Duration::from_millis(200));
            stop.store(true, Ordering::Relaxed);
            let out = h.join().unwrap();
            assert!(out.counts.errors > 0, "{out:?}");
            assert!(out.last_error.is_some());
        });
    }
}
