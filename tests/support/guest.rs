//! Helpers shared by the integration tests that boot the real guest image in real QEMU.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a guest may take to print its ready line (TCG on a shared machine, U-Boot's delay).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The guest image, built once per test binary with `scripts/build-guest.sh`.
pub fn guest_image() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new(repo().join("scripts/build-guest.sh"))
                .current_dir(repo())
                .status()
                .expect("run scripts/build-guest.sh");
            assert!(status.success(), "scripts/build-guest.sh failed");
            repo().join("target/guest/vmprobe-guest.bin")
        })
        .clone()
}

/// A port that was free on 127.0.0.1 a moment ago (for both UDP and TCP).
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind tcp");
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

/// `-netdev user` with UDP and TCP port 7 of the guest forwarded from 127.0.0.1:`port`.
pub fn user_net(port: u16) -> Vec<String> {
    vec![
        "-netdev".into(),
        format!("user,id=n0,hostfwd=udp:127.0.0.1:{port}-:7,hostfwd=tcp:127.0.0.1:{port}-:7"),
    ]
}

/// Splits a command line written as one string.
pub fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

/// A running QEMU with its serial console captured.
pub struct Qemu {
    child: Child,
    stdin: Option<ChildStdin>,
    console: Arc<(Mutex<String>, Condvar)>,
    /// How many of QEMU's two output streams have reached end of file: both closed means QEMU
    /// is gone, so a wait for console text fails at once instead of running into its timeout.
    closed: Arc<AtomicUsize>,
}

impl Qemu {
    /// Starts `prefix... qemu-system-aarch64 -nographic -nic none <args>`; `prefix` is e.g.
    /// `ip netns exec NS`.
    pub fn spawn_with_prefix(prefix: &[&str], args: &[String]) -> Qemu {
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg("qemu-system-aarch64");
                c
            }
            None => Command::new("qemu-system-aarch64"),
        };
        cmd.args(["-nographic", "-nic", "none", "-no-reboot"])
            .args(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start qemu-system-aarch64");
        let console = Arc::new((Mutex::new(String::new()), Condvar::new()));
        let closed = Arc::new(AtomicUsize::new(0));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let console = console.clone();
            let closed = closed.clone();
            std::thread::spawn(move || {
                // Chunks, not lines: prompts such as U-Boot's countdown end without a newline.
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    let (text, cv) = &*console;
                    text.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                    cv.notify_all();
                }
                let (text, cv) = &*console;
                let _guard = text.lock().unwrap();
                closed.fetch_add(1, Ordering::SeqCst);
                cv.notify_all();
            });
        }
        let stdin = child.stdin.take();
        Qemu {
            child,
            stdin,
            console,
            closed,
        }
    }

    /// Starts QEMU directly.
    pub fn spawn(args: &[String]) -> Qemu {
        Self::spawn_with_prefix(&[], args)
    }

    /// Everything the console printed so far.
    pub fn console(&self) -> String {
        self.console.0.lock().unwrap().clone()
    }

    /// Waits until a complete console line contains `needle`; returns that line. Panics with
    /// the whole console on timeout.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        self.wait_until(needle, timeout, |text| {
            let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
            complete
                .lines()
                .find(|l| l.contains(needle))
                .map(|l| l.trim_end_matches('\r').to_string())
        })
    }

    /// Waits until `needle` appears anywhere on the console, even in an unfinished line (a
    /// prompt).
    pub fn wait_for_text(&self, needle: &str, timeout: Duration) {
        self.wait_until(needle, timeout, |text| {
            text.contains(needle).then_some(String::new())
        });
    }

    fn wait_until(
        &self,
        needle: &str,
        timeout: Duration,
        mut found: impl FnMut(&str) -> Option<String>,
    ) -> String {
        let deadline = Instant::now() + timeout;
        let (text, cv) = &*self.console;
        let mut guard = text.lock().unwrap();
        loop {
            if let Some(line) = found(&guard) {
                return line;
            }
            if self.closed.load(Ordering::SeqCst) == 2 {
                panic!("QEMU exited before {needle:?} appeared; its output:\n{guard}");
            }
            let now = Instant::now();
            if now >= deadline {
                panic!("no {needle:?} on the console within {timeout:?}; console:\n{guard}");
            }
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    /// Waits for the `vmprobe: ready` line and returns it.
    pub fn wait_ready(&self) -> String {
        let line = self.wait_for("vmprobe: ready", READY_TIMEOUT);
        assert!(
            !self.console().contains("vmprobe: error"),
            "error on console:\n{}",
            self.console()
        );
        line
    }

    /// Types `text` on the serial console.
    pub fn type_text(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for QEMU to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A payload of `len` bytes that differs per size and position.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u8)
                .wrapping_mul(31)
                .wrapping_add(seed)
                .wrapping_add((len >> 3) as u8)
        })
        .collect()
}

/// UDP sizes the echo tests cover: tiny, around powers of two, up to the 1472-byte maximum.
pub const UDP_SIZES: &[usize] = &[
    1, 2, 17, 63, 64, 65, 127, 128, 256, 511, 512, 1000, 1024, 1400, 1471, 1472,
];

/// Sends every size in `sizes` to `target` from `socket` and checks each reply byte for byte.
/// A lost datagram is retried a few times (the path is real); a wrong reply fails at once.
pub fn udp_echo_on(socket: &UdpSocket, target: SocketAddr, sizes: &[usize]) {
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = vec![0u8; 2048];
    for (i, &len) in sizes.iter().enumerate() {
        let request = payload(len, i as u8);
        let mut answered = false;
        for _attempt in 0..5 {
            socket.send_to(&request, target).unwrap();
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    assert_eq!(from, target, "reply from elsewhere");
                    assert_eq!(&buf[..n], &request[..], "UDP echo of {len} bytes differs");
                    answered = true;
                    break;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("recv: {e}"),
            }
        }
        assert!(answered, "no UDP echo for {len} bytes from {target}");
    }
}

/// UDP echo against 127.0.0.1:`port` (user networking hostfwd).
pub fn udp_echo(port: u16, sizes: &[usize]) {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    udp_echo_on(
        &socket,
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        sizes,
    );
}

/// TCP echo of a `len`-byte stream against `target`, read back in full and compared.
pub fn tcp_echo(target: SocketAddr, len: usize) {
    let mut stream =
        TcpStream::connect_timeout(&target, Duration::from_secs(10)).expect("TCP connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let data = payload(len, 7);
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let data = data.clone();
        std::thread::spawn(move || stream.write_all(&data))
    };
    let mut back = vec![0u8; len];
    stream.read_exact(&mut back).expect("read TCP echo");
    writer.join().unwrap().unwrap();
    assert!(back == data, "TCP echo of {len} bytes differs");
}

/// Lines of a QEMU `-trace` log file that record the event `name`.
pub fn trace_events(path: &Path, name: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(name))
        .count()
}

/// A client that sends a numbered UDP echo request every 5 ms from before the guest boots (the
/// way a boot test pings while the guest comes up) and notes when each exact answer arrives.
pub struct EarlyPinger {
    stop: Arc<std::sync::atomic::AtomicBool>,
    answers: Arc<(Mutex<Answers>, Condvar)>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What an [`EarlyPinger`] got back.
#[derive(Default)]
struct Answers {
    /// Arrival of every exact answer.
    at: Vec<Instant>,
    /// Datagrams that were not the echo of a request, or came from elsewhere.
    wrong: Vec<String>,
}

impl EarlyPinger {
    /// Starts sending from `socket` to `target`.
    pub fn start(socket: UdpSocket, target: SocketAddr) -> EarlyPinger {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new((Mutex::new(Answers::default()), Condvar::new()));
        let request = |seq: u32| {
            let mut p = b"vmprobe-early-".to_vec();
            p.extend(seq.to_be_bytes());
            p.extend(payload(40, seq as u8));
            p
        };
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let sender = {
            let (socket, stop) = (socket.try_clone().unwrap(), stop.clone());
            std::thread::spawn(move || {
                let mut seq = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    // Before QEMU listens (or while the host resolves the guest) sends may fail.
                    let _ = socket.send_to(&request(seq), target);
                    seq += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        let receiver = {
            let (stop, answers) = (stop.clone(), answers.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let at = Instant::now();
                    let reply = &buf[..n];
                    let exact = reply
                        .get(14..18)
                        .map(|s| u32::from_be_bytes(s.try_into().unwrap()))
                        .is_some_and(|seq| reply == request(seq));
                    let (list, cv) = &*answers;
                    let mut list = list.lock().unwrap();
                    if from == target && exact {
                        list.at.push(at);
                    } else {
                        list.wrong.push(format!("{n} bytes from {from}: {reply:?}"));
                    }
                    cv.notify_all();
                }
            })
        };
        EarlyPinger {
            stop,
            answers,
            threads: vec![sender, receiver],
        }
    }

    /// How long after `since` the first exact answer arrived that arrived at or after `since`;
    /// `None` if none came within `timeout`. Panics on any answer that was not an exact echo.
    pub fn first_answer_after(&self, since: Instant, timeout: Duration) -> Option<Duration> {
        let (list, cv) = &*self.answers;
        let guard = list.lock().unwrap();
        let wait = (since + timeout).saturating_duration_since(Instant::now());
        let (guard, _) = cv
            .wait_timeout_while(guard, wait, |a| !a.at.iter().any(|&at| at >= since))
            .unwrap();
        assert!(guard.wrong.is_empty(), "not echoes: {:?}", guard.wrong);
        guard
            .at
            .iter()
            .find(|&&at| at >= since)
            .map(|&at| at - since)
    }

    /// Whether the first answer after the ready line (seen at `ready`) came within
    /// [`READY_TO_ANSWER`]; the error says how long it took, with the console.
    pub fn answered_soon_after(&self, ready: Instant, qemu: &Qemu) -> Result<(), String> {
        let Some(gap) = self.first_answer_after(ready, Duration::from_secs(10)) else {
            return Err(format!(
                "no answer after the ready line:\n{}",
                qemu.console()
            ));
        };
        eprintln!(
            "ready line to first answer: {gap:?} ({} answers so far)",
            self.answers()
        );
        if gap < READY_TO_ANSWER {
            Ok(())
        } else {
            Err(format!(
                "first answer {gap:?} after the ready line:\n{}",
                qemu.console()
            ))
        }
    }

    /// Exact answers received so far.
    pub fn answers(&self) -> usize {
        self.answers.0.lock().unwrap().at.len()
    }
}

impl Drop for EarlyPinger {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// How soon after the ready line a client that has been sending since QEMU's start must get
/// its first answer. The guest answers within a few ms of the line even under TCG on a busy
/// machine; a peer that missed the guest's address waits out its ARP retransmit, a second.
pub const READY_TO_ANSWER: Duration = Duration::from_millis(250);
