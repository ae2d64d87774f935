//! A simulated probe guest on loopback: the real `vmprobe_guest::probe::ProbeHandler` behind a
//! host UDP socket, with a fake platform whose counter is CLOCK_MONOTONIC seen through a known
//! offset and drift. It stamps requests and replies as the guest's device layer does, waits a
//! known time in between (the residence), and records the true host time of each stamp, so a
//! test can compare the harness's one-way split with the truth.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use vmprobe_guest::probe::{BenchError, Outcome, ProbeHandler, ProbePlatform};
use vmprobe_proto::echo_reply::{self, TxStamps};
use vmprobe_proto::echo_request::{self, RxStamps};
use vmprobe_proto::{header, BenchTest, CounterKind, GuestMode, GuestStats, Kind, HEADER_LEN};

fn read_clock(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the clocks read here always exist.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_MONOTONIC in ns.
pub fn mono_ns() -> u64 {
    read_clock(libc::CLOCK_MONOTONIC)
}

fn spin(ns: u64) {
    let end = mono_ns() + ns;
    while mono_ns() < end {
        std::hint::spin_loop();
    }
}

/// How the simulated guest behaves.
#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    /// Counter frequency.
    pub cntfrq_hz: u32,
    /// Guest counter rate error, ppm (positive: fast).
    pub drift_ppm: f64,
    /// Guest time minus host time at the start, ns.
    pub offset_ns: i64,
    /// Busy wait between RX seen and TX notify, ns.
    pub residence_ns: u64,
    /// Extra busy wait before the RX stamp (a slower host-to-guest path), ns.
    pub extra_h2g_ns: u64,
    /// Interrupt entry this many ticks before RX seen (`None`: poll mode).
    pub irq_ticks: Option<u64>,
    /// Reported duration of the previous TX notify, ticks.
    pub prev_notify_ticks: u64,
    /// Answer clock requests for the virtual counter as KVM's PTP service would (host
    /// realtime and the counter at one instant); the physical counter is refused, as by a KVM
    /// without it. `false`: no hypervisor, every clock request is refused.
    pub kvm_ptp: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            cntfrq_hz: 62_500_000,
            drift_ppm: 50.0,
            offset_ns: 7_000_000_000,
            residence_ns: 30_000,
            extra_h2g_ns: 0,
            irq_ticks: Some(100),
            prev_notify_ticks: 250,
            kvm_ptp: false,
        }
    }
}

/// True host times (CLOCK_MONOTONIC ns) of one echo's stamps.
#[derive(Debug, Clone, Copy)]
pub struct Truth {
    /// When RX seen was read.
    pub rx_mono: u64,
    /// When TX notify was read.
    pub tx_mono: u64,
}

struct Platform {
    cfg: SimConfig,
    start_mono: u64,
}

impl Platform {
    /// Guest ticks at host time `mono`.
    fn ticks_at(&self, mono: u64) -> u64 {
        let guest_ns = (mono - self.start_mono) as f64 + self.cfg.offset_ns as f64;
        (guest_ns * (1.0 + self.cfg.drift_ppm * 1e-6) * f64::from(self.cfg.cntfrq_hz) / 1e9) as u64
    }
}

impl ProbePlatform for Platform {
    fn now(&mut self) -> u64 {
        self.ticks_at(mono_ns())
    }
    fn cntfrq_hz(&self) -> u32 {
        self.cfg.cntfrq_hz
    }
    fn counter_kind(&self) -> CounterKind {
        CounterKind::Virtual
    }
    fn mode(&self) -> GuestMode {
        if self.cfg.irq_ticks.is_some() {
            GuestMode::Irq
        } else {
            GuestMode::Poll
        }
    }
    fn stats(&mut self) -> GuestStats {
        GuestStats::default()
    }
    /// Known samples: test id * 100 + (i % 10) ticks; the IPI needs a second vCPU it lacks.
    fn run_bench(
        &mut self,
        test: BenchTest,
        _param: u64,
        samples: &mut [u64],
    ) -> Result<(), BenchError> {
        if test == BenchTest::IpiRoundTrip {
            return Err(BenchError::Unsupported);
        }
        for (i, s) in samples.iter_mut().enumerate() {
            *s = u64::from(test.id()) * 100 + (i % 10) as u64;
        }
        Ok(())
    }
    fn clock_readings(
        &mut self,
        kind: CounterKind,
        out: &mut [vmprobe_proto::clock_reply::Reading],
    ) -> Result<(), vmprobe_proto::clock_reply::Absence> {
        use vmprobe_proto::clock_reply::{Absence, Reading};
        if !self.cfg.kvm_ptp {
            return Err(Absence::NoConduit);
        }
        if kind != CounterKind::Virtual {
            return Err(Absence::Refused);
        }
        // One instant: the counter at the middle of the tightest monotonic bracket around a
        // realtime read (KVM converts a single counter read instead).
        for r in out {
            *r = (0..16)
                .map(|_| {
                    let before = mono_ns();
                    let realtime = read_clock(libc::CLOCK_REALTIME);
                    let after = mono_ns();
                    (after - before, before + (after - before) / 2, realtime)
                })
                .min()
                .map(|(_, mid, realtime)| Reading {
                    realtime_ns: realtime,
                    counter: self.ticks_at(mid),
                })
                .unwrap();
        }
        Ok(())
    }
    fn request_power_off(&mut self) {}
}

/// A running simulated guest; stops when dropped.
pub struct SimGuest {
    /// Where its probe port is.
    pub addr: SocketAddr,
    /// True stamp times by sequence number.
    pub truth: Arc<Mutex<HashMap<u32, Truth>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for SimGuest {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl SimGuest {
    /// Starts one on a free loopback port.
    pub fn start(cfg: SimConfig) -> SimGuest {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let truth = Arc::new(Mutex::new(HashMap::new()));
        let (stop2, truth2) = (stop.clone(), truth.clone());
        thread::spawn(move || serve(socket, cfg, &stop2, &truth2));
        SimGuest { addr, truth, stop }
    }
}

fn serve(socket: UdpSocket, cfg: SimConfig, stop: &AtomicBool, truth: &Mutex<HashMap<u32, Truth>>) {
    let mut platform = Platform {
        cfg,
        start_mono: mono_ns(),
    };
    let mut samples = vec![0u64; 4096];
    let mut handler = ProbeHandler::new(&mut samples);
    let mut req = vec![0u8; 65_536];
    let mut reply = vec![0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = socket.recv_from(&mut req) else {
            continue;
        };
        let req = &mut req[..n];
        let kind = header::Packet::new_checked(&*req)
            .ok()
            .and_then(|p| header::Repr::parse(&p).ok())
            .map(|h| (h.kind, h.sequence));
        let mut echo_seq = None;
        if let Some((Kind::EchoRequest, seq)) = kind {
            spin(cfg.extra_h2g_ns);
            // The driver's RX stamp, in place.
            let rx_mono = mono_ns();
            let rx = platform.ticks_at(rx_mono);
            if let Ok(mut p) = echo_request::Packet::new_checked(&mut req[HEADER_LEN..]) {
                RxStamps {
                    irq_entry: cfg.irq_ticks.map(|t| rx - t),
                    rx_seen: Some(rx),
                }
                .write(&mut p);
            }
            spin(cfg.residence_ns);
            echo_seq = Some((seq, rx_mono));
        }
        let Outcome::Reply(len) = handler.handle(&mut platform, req, &mut reply) else {
            continue;
        };
        if let Some((seq, rx_mono)) = echo_seq {
            // The driver's TX stamp, just before the notify.
            let tx_mono = mono_ns();
            let tx = platform.ticks_at(tx_mono);
            let mut p = echo_reply::Packet::new_unchecked(&mut reply[HEADER_LEN..len]);
            TxStamps {
                tx_notify: Some(tx),
                prev_notify_ticks: Some(cfg.prev_notify_ticks),
            }
            .write(&mut p);
            truth
                .lock()
                .unwrap()
                .insert(seq, Truth { rx_mono, tx_mono });
        }
        let _ = socket.send_to(&reply[..len], from);
    }
}
