//! Echo servers for the `rr` integration tests: real sockets on loopback, std threads, with
//! scripted misbehaviour (drop, corrupt, delay past the timeout, hold each reply).
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// What the server does with request number `n` (0-based, in arrival order).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    Echo,
    Drop,
    /// Echo with one byte flipped at this offset.
    Corrupt(usize),
    /// Echo after this delay, from another thread, while later requests are served.
    Delay(Duration),
    /// Busy-wait this long after receiving, then echo.
    Hold(Duration),
}

/// A running server; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn hold(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn corrupt(mut data: Vec<u8>, at: usize) -> Vec<u8> {
    let i = at.min(data.len() - 1);
    data[i] ^= 0x5a;
    data
}

/// A UDP echo server on 127.0.0.1 driven by `script`.
pub fn udp(script: impl Fn(u64) -> Action + Send + 'static) -> Server {
    udp_server(false, script)
}

/// The same, with the server thread at real-time priority (SCHED_FIFO) where allowed, so
/// that a busy-waiting hold is not stretched by other processes on a loaded machine.
pub fn udp_realtime(script: impl Fn(u64) -> Action + Send + 'static) -> Server {
    udp_server(true, script)
}

fn make_realtime() {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: changes only the calling thread's policy; failure (no privilege) is harmless.
    unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
}

fn udp_server(realtime: bool, script: impl Fn(u64) -> Action + Send + 'static) -> Server {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let requests = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (req, st) = (requests.clone(), stop.clone());
    thread::spawn(move || {
        if realtime {
            make_realtime();
        }
        let mut buf = vec![0u8; 65536];
        while !st.load(Ordering::Relaxed) {
            let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let idx = req.fetch_add(1, Ordering::SeqCst);
            let data = buf[..n].to_vec();
            match script(idx) {
                Action::Echo => drop(socket.send_to(&data, peer)),
                Action::Drop => {}
                Action::Corrupt(at) => drop(socket.send_to(&corrupt(data, at), peer)),
                Action::Hold(d) => {
                    hold(d);
                    drop(socket.send_to(&data, peer));
                }
                Action::Delay(d) => {
                    let s = socket.try_clone().unwrap();
                    thread::spawn(move || {
                        thread::sleep(d);
                        drop(s.send_to(&data, peer));
                    });
                }
            }
        }
    });
    Server {
        addr,
        requests,
        stop,
    }
}

/// A TCP echo server on 127.0.0.1 for frames of `size` bytes, one connection at a time.
/// A delayed frame holds back the stream (TCP is ordered): later frames follow it.
pub fn tcp(size: usize, script: impl Fn(u64) -> Action + Send + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (req, st) = (requests.clone(), stop.clone());
    thread::spawn(move || {
        while !st.load(Ordering::Relaxed) {
            let Ok((mut conn, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(5));
                continue;
            };
            conn.set_nonblocking(false).unwrap();
            conn.set_nodelay(true).unwrap();
            conn.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let mut frame = vec![0u8; size];
            let mut filled = 0;
            while !st.load(Ordering::Relaxed) {
                match conn.read(&mut frame[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(_) => continue,
                }
                if filled < size {
                    continue;
                }
                filled = 0;
                let idx = req.fetch_add(1, Ordering::SeqCst);
                let data = frame.clone();
                let out = match script(idx) {
                    Action::Echo => Some(data),
                    Action::Drop => None,
                    Action::Corrupt(at) => Some(corrupt(data, at)),
                    Action::Hold(d) => {
                        hold(d);
                        Some(data)
                    }
                    Action::Delay(d) => {
                        thread::sleep(d);
                        Some(data)
                    }
                };
                if let Some(out) = out {
                    if conn.write_all(&out).is_err() {
                        break;
                    }
                }
            }
        }
    });
    Server {
        addr,
        requests,
        stop,
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
