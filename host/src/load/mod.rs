//! Background traffic beside a latency run: the users' "A+B" cases, where a TCP bulk
//! transfer (B) runs while the latency test (A) measures.
//!
//! [`Load::start`] opens every generator's socket on its own thread (pinned as asked, inside
//! the client's network namespace when there is one) and returns once all are streaming;
//! the latency run happens; [`Load::stop`] stops them and returns one [`LoadReport`] per kind
//! with the achieved throughput, bytes and errors.
//!
//! ```no_run
//! # fn demo(targets: vmprobe::load::LoadTargets) -> Result<(), vmprobe::load::LoadError> {
//! use vmprobe::load::{Load, LoadKind};
//! let kinds = LoadKind::parse_list("to-guest,udp-flood:5k").expect("valid");
//! let load = Load::start(&kinds, Some(1), &targets, None)?;
//! // ... measure latency ...
//! for report in load.stop() {
//!     println!("{}: {:.1} Mbit/s, {} errors", report.kind, report.mbit_s, report.errors);
//! }
//! # Ok(()) }
//! ```
pub mod generator;
pub mod kind;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use kind::{KindError, LoadKind};

use crate::netsetup::NetNs;
use crate::rr::system;
use crate::vm::services::{endpoint, Endpoint, Proto};
use generator::{Direction, Transfer};

/// How long all generators together may take to connect.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the guest's bulk services are reached from the client side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadTargets {
    /// TCP discard (guest port 9).
    pub discard_tcp: SocketAddr,
    /// UDP discard (guest port 9).
    pub discard_udp: SocketAddr,
    /// TCP chargen (guest port 19).
    pub chargen_tcp: SocketAddr,
}

impl LoadTargets {
    /// Picks the three services out of a VM's endpoint list (`VmInfo::endpoints`).
    pub fn from_endpoints(list: &[Endpoint]) -> Option<LoadTargets> {
        Some(LoadTargets {
            discard_tcp: endpoint(list, Proto::Tcp, 9)?,
            discard_udp: endpoint(list, Proto::Udp, 9)?,
            chargen_tcp: endpoint(list, Proto::Tcp, 19)?,
        })
    }

    fn for_kind(&self, kind: LoadKind) -> SocketAddr {
        match kind {
            LoadKind::ToGuest => self.discard_tcp,
            LoadKind::FromGuest => self.chargen_tcp,
            LoadKind::UdpFlood { .. } => self.discard_udp,
        }
    }
}

/// Why the load could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A generator could not reach its guest service.
    #[error("load {kind}: cannot connect to {addr}: {source}")]
    Connect {
        /// Which generator.
        kind: LoadKind,
        /// Where to.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A generator thread could not be placed (CPU affinity, namespace) or started.
    #[error("load {kind}: {what}: {source}")]
    Thread {
        /// Which generator.
        kind: LoadKind,
        /// What failed.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A generator did not report in time.
    #[error("load {0}: not connected within {START_TIMEOUT:?}")]
    Timeout(LoadKind),
}

/// What one generator achieved. Its JSON form is part of `vmprobe run`'s output contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// `to-guest`, `from-guest` or `udp-flood`.
    pub kind: String,
    /// The kind as asked (`udp-flood:20000`).
    pub spec: String,
    /// Where the traffic went or came from.
    pub target: String,
    /// `--load-cpu`, or `null` for "any CPU but cpu0".
    pub cpu: Option<usize>,
    /// CPUs the generator thread could run on.
    pub cpus_used: Vec<usize>,
    /// Time the generator ran, seconds.
    pub elapsed_s: f64,
    /// Payload bytes moved.
    pub bytes: u64,
    /// Achieved throughput of the payload, Mbit/s (10^6 bits per second).
    pub mbit_s: f64,
    /// Datagrams sent (`udp-flood` only).
    pub packets: Option<u64>,
    /// Achieved datagram rate (`udp-flood` only).
    pub packets_s: Option<f64>,
    /// Rate asked for (`udp-flood` only).
    pub rate_pps: Option<u64>,
    /// Failed operations: refused or reset connections (each reconnect attempt), failed sends.
    pub errors: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

impl LoadReport {
    fn new(
        kind: LoadKind,
        target: SocketAddr,
        cpu: Option<usize>,
        cpus_used: Vec<usize>,
        out: Transfer,
    ) -> Self {
        let secs = out.elapsed.as_secs_f64();
        let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let round3 = |x: f64| (x * 1e3).round() / 1e3;
        let udp = matches!(kind, LoadKind::UdpFlood { .. });
        LoadReport {
            kind: kind.name().to_string(),
            spec: kind.to_string(),
            target: target.to_string(),
            cpu,
            cpus_used,
            elapsed_s: round3(secs),
            bytes: out.counts.bytes,
            mbit_s: round3(per_s(out.counts.bytes) * 8.0 / 1e6),
            packets: udp.then_some(out.counts.packets),
            packets_s: udp.then(|| round3(per_s(out.counts.packets))),
            rate_pps: match kind {
                LoadKind::UdpFlood { rate_pps } => Some(rate_pps),
                _ => None,
            },
            errors: out.counts.errors,
            last_error: out.last_error,
        }
    }

    /// One line for text output: `to-guest 123.4 Mbit/s (1.2 GB, 0 errors, cpu 1)`.
    pub fn line(&self) -> String {
        let rate = match self.packets_s {
            Some(p) => format!("{p:.0} packets/s, {:.1} Mbit/s", self.mbit_s),
            None => format!("{:.1} Mbit/s", self.mbit_s),
        };
        let cpus = self
            .cpus_used
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "load {}: {rate} ({} bytes in {:.1} s, {} errors, cpu {cpus})",
            self.spec, self.bytes, self.elapsed_s, self.errors
        )
    }
}

type Started = (usize, Result<Vec<usize>, LoadError>);

struct Running {
    kind: LoadKind,
    target: SocketAddr,
    handle: JoinHandle<std::io::Result<Option<Transfer>>>,
}

/// Running generators. Dropping it stops them too (without a report).
pub struct Load {
    stop: Arc<AtomicBool>,
    cpu: Option<usize>,
    running: Vec<Running>,
    cpus_used: Vec<Vec<usize>>,
}

impl Load {
    /// Starts one generator thread per kind, each pinned to `cpu` (or kept off cpu0 without
    /// one) and inside `netns` when given, and waits until every one is connected.
    pub fn start(
        kinds: &[LoadKind],
        cpu: Option<usize>,
        targets: &LoadTargets,
        netns: Option<&NetNs>,
    ) -> Result<Load, LoadError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Started>();
        let mut load = Load {
            stop: stop.clone(),
            cpu,
            running: Vec::new(),
            cpus_used: vec![Vec::new(); kinds.len()],
        };
        for (i, &kind) in kinds.iter().enumerate() {
            let target = targets.for_kind(kind);
            let stop = stop.clone();
            let tx = tx.clone();
            let body = move || generate(i, kind, target, cpu, &stop, &tx);
            let name = format!("vmprobe-load-{}", kind.name());
            let spawned = match netns {
                Some(ns) => ns.spawn(&name, body),
                None => std::thread::Builder::new()
                    .name(name)
                    .spawn(move || Ok(body())),
            };
            match spawned {
                Ok(handle) => load.running.push(Running {
                    kind,
                    target,
                    handle,
                }),
                Err(source) => {
                    load.halt();
                    return Err(LoadError::Thread {
                        kind,
                        what: "cannot start the thread",
                        source,
                    });
                }
            }
        }
        drop(tx);
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        for _ in 0..kinds.len() {
            let wait = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(wait) {
                Ok((i, Ok(cpus))) => load.cpus_used[i] = cpus,
                Ok((_, Err(e))) => {
                    load.halt();
                    return Err(e);
                }
                Err(_) => {
                    // A thread that died before reporting (namespace entry failed) or a hang.
                    let pending = kinds
                        .iter()
                        .zip(&load.cpus_used)
                        .find(|(_, c)| c.is_empty())
                        .map(|(k, _)| *k)
                        .unwrap_or(kinds[0]);
                    let died = load.halt_collect_errors();
                    return Err(died.unwrap_or(LoadError::Timeout(pending)));
                }
            }
        }
        Ok(load)
    }

    /// Stops every generator and reports, in the order the kinds were given.
    pub fn stop(mut self) -> Vec<LoadReport> {
        self.stop.store(true, Ordering::Relaxed);
        let running = std::mem::take(&mut self.running);
        let cpus_used = std::mem::take(&mut self.cpus_used);
        running
            .into_iter()
            .zip(cpus_used)
            .map(|(r, cpus)| {
                let outcome = match r.handle.join() {
                    Ok(Ok(Some(o))) => o,
                    Ok(Ok(None)) => unreachable_transfer("did not start"),
                    Ok(Err(e)) => unreachable_transfer(&e.to_string()),
                    Err(_) => unreachable_transfer("the generator thread panicked"),
                };
                LoadReport::new(r.kind, r.target, self.cpu, cpus, outcome)
            })
            .collect()
    }

    fn halt(&mut self) {
        let _ = self.halt_collect_errors();
    }

    /// Stops and joins every thread; the namespace-entry error of a thread that died, if any.
    fn halt_collect_errors(&mut self) -> Option<LoadError> {
        self.stop.store(true, Ordering::Relaxed);
        let mut first = None;
        for r in self.running.drain(..) {
            if let Ok(Err(source)) = r.handle.join() {
                first.get_or_insert(LoadError::Thread {
                    kind: r.kind,
                    what: "cannot enter the client's network namespace",
                    source,
                });
            }
        }
        first
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.halt();
    }
}

/// An outcome for a generator that produced none (reported, never hidden).
fn unreachable_transfer(why: &str) -> Transfer {
    Transfer {
        counts: generator::Counts {
            errors: 1,
            ..Default::default()
        },
        elapsed: Duration::ZERO,
        last_error: Some(why.to_string()),
    }
}

/// A generator thread's body: place, connect, report readiness, run until stopped.
fn generate(
    index: usize,
    kind: LoadKind,
    target: SocketAddr,
    cpu: Option<usize>,
    stop: &AtomicBool,
    started: &mpsc::Sender<Started>,
) -> Option<Transfer> {
    let cpus = match system::place_thread(cpu) {
        Ok(c) => c,
        Err(source) => {
            let what = "cannot pin the thread (--load-cpu)";
            let _ = started.send((index, Err(LoadError::Thread { kind, what, source })));
            return None;
        }
    };
    let connect_err = |source| LoadError::Connect {
        kind,
        addr: target,
        source,
    };
    let outcome = match kind {
        LoadKind::ToGuest | LoadKind::FromGuest => match generator::open_tcp(target) {
            Ok(s) => {
                let _ = started.send((index, Ok(cpus)));
                let dir = if kind == LoadKind::ToGuest {
                    Direction::Send
                } else {
                    Direction::Receive
                };
                generator::tcp_stream(s, target, dir, stop)
            }
            Err(e) => {
                let _ = started.send((index, Err(connect_err(e))));
                return None;
            }
        },
        LoadKind::UdpFlood { rate_pps } => match generator::open_udp(target) {
            Ok(s) => {
                let _ = started.send((index, Ok(cpus)));
                generator::udp_flood(s, rate_pps, stop)
            }
            Err(e) => {
                let _ = started.send((index, Err(connect_err(e))));
                return None;
            }
        },
    };
    Some(outcome)
}
