//! The host's own floor: the rr engine against a loopback echo on this host, its echo thread
//! on the CPUs the guest's vCPU ran on and the client where the run's client ran. What a VM
//! round trip costs beyond it is what the VM adds; on a small shared host most of a guest's
//! round trip can be host wake-ups (a sender and receiver on different CPUs cost about twice
//! what they cost sharing one).
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use crate::rr::{self, Control, Limit, Progress, Proto, RrError, RrOptions, RrReport};

/// Transactions of a back-to-back floor measurement.
const COUNT: u64 = 2000;
/// How long a paced floor measurement lasts at most.
const PACED_TIME: Duration = Duration::from_secs(2);
/// How often the echo thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(20);

/// The floor, per protocol: `rr`'s report against the loopback echo.
#[derive(Debug, Clone, Serialize)]
pub struct HostFloor {
    /// The CPUs the echo thread ran on (the guest's vCPU's).
    pub echo_cpus: Vec<usize>,
    /// UDP against the loopback echo, when the run measured UDP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp: Option<RrReport>,
    /// TCP against the loopback echo, when the run measured TCP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<RrReport>,
}

impl HostFloor {
    /// The report of `proto`, if measured.
    pub fn report(&self, proto: Proto) -> Option<&RrReport> {
        match proto {
            Proto::Udp => self.udp.as_ref(),
            Proto::Tcp => self.tcp.as_ref(),
        }
    }

    /// One line: p50 and p99 per protocol, and where the threads ran.
    pub fn line(&self) -> String {
        let parts: Vec<String> = [Proto::Udp, Proto::Tcp]
            .into_iter()
            .filter_map(|p| {
                let r = self.report(p)?;
                let us = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
                Some(format!(
                    "{p} p50 {} p99 {} us",
                    us(r.rtt.p50_us),
                    us(r.rtt.p99_us)
                ))
            })
            .collect();
        let client = self
            .udp
            .as_ref()
            .or(self.tcp.as_ref())
            .map_or(String::new(), |r| cpu_list(&r.cpus_used));
        format!(
            "{} (rr against a loopback echo: client on cpu {client}, echo on cpu {})",
            parts.join(", "),
            cpu_list(&self.echo_cpus)
        )
    }
}

fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Measures the floor for each of `protos` with `run`'s options (size, pacing, client CPU,
/// busy polling; no logs), the echo thread pinned to `echo_cpus`.
pub fn measure(
    run: &RrOptions,
    protos: &[Proto],
    echo_cpus: &[usize],
    stop: &AtomicBool,
) -> Result<HostFloor, RrError> {
    let mut floor = HostFloor {
        echo_cpus: echo_cpus.to_vec(),
        udp: None,
        tcp: None,
    };
    for &proto in protos {
        let echo = Echo::start(proto, echo_cpus).map_err(|source| RrError::Setup {
            what: "cannot start the loopback echo",
            source,
        })?;
        let options = RrOptions {
            target: echo.addr.to_string(),
            proto,
            limit: Limit::Count(match run.pacing {
                None => COUNT,
                Some(p) => (PACED_TIME.as_nanos() / p.interval.as_nanos().max(1))
                    .clamp(20, u128::from(COUNT)) as u64,
            }),
            log: None,
            hist: None,
            ..run.clone()
        };
        let progress = Progress::default();
        let result = rr::run(
            &options,
            Control {
                stop,
                progress: &progress,
                on_sample: None,
            },
        );
        echo.stop();
        let report = result?.report;
        match proto {
            Proto::Udp => floor.udp = Some(report),
            Proto::Tcp => floor.tcp = Some(report),
        }
    }
    Ok(floor)
}

/// A loopback echo on its own pinned thread.
struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Echo {
    fn start(proto: Proto, cpus: &[usize]) -> io::Result<Echo> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let cpus = cpus.to_vec();
        let (addr, thread) = match proto {
            Proto::Udp => {
                let socket = UdpSocket::bind("127.0.0.1:0")?;
                socket.set_read_timeout(Some(POLL))?;
                let addr = socket.local_addr()?;
                let t = std::thread::Builder::new()
                    .name("vmprobe-floor".into())
                    .spawn(move || {
                        pin(&cpus);
                        let mut buf = vec![0u8; 65_536];
                        while !flag.load(Ordering::Relaxed) {
                            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                                let _ = socket.send_to(&buf[..n], from);
                            }
                        }
                    })?;
                (addr, t)
            }
            Proto::Tcp => {
                let listener = TcpListener::bind("127.0.0.1:0")?;
                listener.set_nonblocking(true)?;
                let addr = listener.local_addr()?;
                let t = std::thread::Builder::new()
                    .name("vmprobe-floor".into())
                    .spawn(move || {
                        pin(&cpus);
                        let _ = serve_tcp(&listener, &flag);
                    })?;
                (addr, t)
            }
        };
        Ok(Echo { addr, stop, thread })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

fn pin(cpus: &[usize]) {
    if !cpus.is_empty() {
        // Where the echo may not go, it runs where the scheduler puts it; the report keeps
        // `echo_cpus` as asked.
        let _ = crate::cpus::set(0, cpus);
    }
}

/// Echoes the bytes of one connection at a time back as they come, until `stop`.
fn serve_tcp(listener: &TcpListener, stop: &AtomicBool) -> io::Result<()> {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let mut conn = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(e) => return Err(e),
        };
        conn.set_nonblocking(false)?;
        conn.set_nodelay(true)?;
        conn.set_read_timeout(Some(POLL))?;
        while !stop.load(Ordering::Relaxed) {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => conn.write_all(&buf[..n])?,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rr::Limit;

    #[test]
    fn the_floor_of_both_protocols_on_loopback() {
        let cpus = crate::cpus::allowed().unwrap();
        let run = RrOptions {
            target: "guest".into(),
            proto: Proto::Udp,
            limit: Limit::Count(5),
            pacing: None,
            size: 64,
            warmup: 2,
            timeout: Duration::from_secs(1),
            cpu: None,
            busy_poll: false,
            outliers: 0,
            log: None,
            hist: None,
        };
        let f = measure(
            &run,
            &[Proto::Udp, Proto::Tcp],
            &cpus[..1],
            &AtomicBool::new(false),
        )
        .unwrap();
        for p in [Proto::Udp, Proto::Tcp] {
            let r = f.report(p).unwrap();
            assert_eq!((r.transactions, r.lost, r.errors), (COUNT, 0, 0), "{p}");
            assert!(r.rtt.p50_us.unwrap() > 0.0);
        }
        assert_eq!(f.echo_cpus, cpus[..1]);
        let line = f.line();
        assert!(
            line.starts_with("udp p50 ") && line.contains(", tcp p50 "),
            "{line}"
        );
        assert!(line.contains(&format!("echo on cpu {}", cpus[0])), "{line}");
    }
}
