//! The probe's network services on smoltcp, independent of the platform.
//!
//! [`Services`] owns the smoltcp interface and every socket; the platform hands it a
//! [`Device`] and the time on each [`Services::poll`]. It serves what the README promises
//! users:
//!
//! - ICMP echo (smoltcp's interface answers it);
//! - UDP echo on 7 (payloads up to 1472 bytes) and TCP echo on 7 (streams of any length, with
//!   backpressure, never dropping a byte);
//! - discard on 9, TCP and UDP;
//! - chargen on TCP 19 (RFC 864, as fast as the peer's window allows);
//! - the sockperf ping-pong reflector on UDP 11111 (see [`sockperf`]);
//! - the probe protocol on UDP 7777 (see [`crate::probe`]), answered through the platform's
//!   [`ProbePlatform`] hooks given to [`Services::poll`].
//!
//! One poll takes in one frame at a time and, before the next, lets every service answer and
//! smoltcp transmit: a UDP echo leaves in the same poll that received its request, before the
//! TCP services are looked at.
//!
//! The platform's main loop, with any smoltcp [`Device`] (here smoltcp's loopback):
//!
//! ```
//! use smoltcp::phy::{Loopback, Medium};
//! use smoltcp::time::Instant;
//! use smoltcp::wire::EthernetAddress;
//! use vmprobe_guest::{config::NetConfig, services::Services};
//!
//! let mut device = Loopback::new(Medium::Ethernet);
//! let mac = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
//! let now = Instant::from_millis(0);
//! // No gateway: over loopback nobody would answer the probe's ARP for it.
//! let config = NetConfig { gw: None, ..NetConfig::default() };
//! let mut services = Services::new(&config, mac, &mut device, now);
//! # struct Platform;
//! # impl vmprobe_guest::probe::ProbePlatform for Platform {
//! #     fn now(&mut self) -> u64 { 0 }
//! #     fn cntfrq_hz(&self) -> u32 { 1 }
//! #     fn counter_kind(&self) -> vmprobe_proto::CounterKind { vmprobe_proto::CounterKind::Virtual }
//! #     fn mode(&self) -> vmprobe_proto::GuestMode { vmprobe_proto::GuestMode::Poll }
//! #     fn stats(&mut self) -> vmprobe_proto::GuestStats { Default::default() }
//! #     fn run_bench(&mut self, _: vmprobe_proto::BenchTest, _: u64, _: &mut [u64])
//! #         -> Result<(), vmprobe_guest::probe::BenchError> { Err(vmprobe_guest::probe::BenchError::Unsupported) }
//! #     fn clock_readings(&mut self, _: vmprobe_proto::CounterKind, _: &mut [vmprobe_proto::clock_reply::Reading])
//! #         -> Result<(), vmprobe_proto::clock_reply::Absence> { Err(vmprobe_proto::clock_reply::Absence::NoConduit) }
//! #     fn request_power_off(&mut self) {}
//! # }
//! let mut platform = Platform; // the counter, stats and benchmarks for the probe protocol
//! // Poll until idle, then sleep until a frame arrives or `poll_delay` runs out.
//! while services.poll(now, &mut device, &mut platform) {}
//! assert_eq!(services.poll_delay(now), None); // idle: only a frame wakes it
//! assert!(services.ipv4().is_some()); // a static address is there at once
//! assert!(services.announced(now).is_some()); // and, announced, ready
//! ```

pub mod announce;
pub mod audit;
pub mod chargen;
mod dhcp;
pub mod sockperf;
pub mod stats;
pub mod tcp;
pub mod udp;

#[cfg(test)]
mod tests;

pub use stats::Stats;

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketSet, SocketStorage,
};
use smoltcp::phy::Device;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, Ipv4Address, Ipv4Cidr};

use crate::config::NetConfig;
use crate::probe::{ProbeCounters, ProbePlatform};
use announce::{Announced, Announcer};
use audit::Audited;
use dhcp::Dhcp;
use stats::FrameCounters;
use tcp::TcpServices;
use udp::UdpServices;

/// Bytes of working space for moving data from a receive to a transmit buffer.
const SCRATCH_LEN: usize = 4096;

/// Rounds of (one frame in, serve, frames out) in one [`Services::poll`], so that a flood cannot
/// keep the caller from its own work; `poll` returns true when it stops early.
const MAX_ROUNDS: usize = 64;

/// Sockets in the table: the UDP and TCP services and the DHCP client.
const SOCKET_SLOTS: usize = udp::SOCKETS + tcp::SOCKETS + 1;

/// Upper bound of the heap [`Services::new`] allocates (socket buffers, the socket table and
/// a little slack): size the guest's allocator at least this large plus its own overhead.
pub const HEAP_BYTES: usize = udp::HEAP_BYTES
    + tcp::HEAP_BYTES
    + SCRATCH_LEN
    + SOCKET_SLOTS * core::mem::size_of::<SocketStorage<'static>>()
    + 1024;

/// The probe's network stack and services.
pub struct Services {
    iface: Interface,
    sockets: SocketSet<'static>,
    udp: UdpServices,
    tcp: TcpServices,
    dhcp: Option<Dhcp>,
    ipv4: Option<Ipv4Cidr>,
    gateway: Option<Ipv4Address>,
    announcer: Announcer,
    scratch: Box<[u8]>,
    frames: FrameCounters,
    stats: Stats,
}

impl Services {
    /// Bring up the interface with `mac` and start every service on `config`'s address (or
    /// start DHCP when `config.dhcp` is set).
    pub fn new<D: Device + ?Sized>(
        config: &NetConfig,
        mac: EthernetAddress,
        device: &mut D,
        now: Instant,
    ) -> Self {
        let mut iface_config = Config::new(mac.into());
        iface_config.random_seed = seed(mac, now);
        let mut iface = Interface::new(iface_config, device, now);
        let mut sockets = SocketSet::new(Vec::with_capacity(SOCKET_SLOTS));
        // Insertion order is the order smoltcp serves sockets in: latency-critical UDP first.
        let udp = UdpServices::new(&mut sockets);
        let tcp = TcpServices::new(&mut sockets);
        let (dhcp, ipv4, gateway) = if config.dhcp {
            dhcp::apply_ipv4(&mut iface, None, None);
            (Some(Dhcp::new(&mut sockets)), None, None)
        } else {
            dhcp::apply_ipv4(&mut iface, Some(config.ip), config.gw);
            (None, Some(config.ip), config.gw)
        };
        Services {
            iface,
            sockets,
            udp,
            tcp,
            dhcp,
            ipv4,
            gateway,
            announcer: Announcer::new(mac),
            scratch: vec![0; SCRATCH_LEN].into_boxed_slice(),
            frames: FrameCounters::default(),
            stats: Stats::default(),
        }
    }

    /// Ingress, service work, egress; probe requests are answered through `platform`. Returns
    /// true if anything happened (poll again before sleeping).
    pub fn poll<D: Device + ?Sized, P: ProbePlatform>(
        &mut self,
        now: Instant,
        device: &mut D,
        platform: &mut P,
    ) -> bool {
        let Services {
            iface,
            sockets,
            udp,
            tcp,
            dhcp,
            ipv4,
            gateway,
            announcer,
            scratch,
            frames,
            stats,
        } = self;
        let mut device = Audited::new(device, frames, announcer);
        iface.poll_maintenance(now);
        let mut any = false;
        for _ in 0..MAX_ROUNDS {
            let received = !matches!(
                iface.poll_ingress_single(now, &mut device, sockets),
                PollIngressSingleResult::None
            );
            // UDP replies leave before the TCP pools are even looked at: the datagram services
            // are the latency probes, and a TCP pass costs more than a UDP answer.
            let served_udp = udp.serve(
                sockets,
                scratch,
                &mut stats.udp,
                platform,
                frames.snapshot(),
            );
            let mut sent = egress(iface, &mut device, sockets, now);
            let mut served = tcp.serve(sockets, scratch, &mut stats.tcp);
            if let Some(dhcp) = dhcp {
                served |= dhcp.serve(iface, sockets, (ipv4, gateway), &mut stats.dhcp);
            }
            if served {
                sent |= egress(iface, &mut device, sockets, now);
            }
            announcer.follow(*ipv4, *gateway, now);
            sent |= announcer.transmit(&mut device, now);
            if !(received || served_udp || served || sent) {
                return any;
            }
            any = true;
        }
        any
    }

    /// When the services next need a poll (TCP timers, DHCP, the announcement); `None` means
    /// only when a frame arrives.
    pub fn poll_delay(&mut self, now: Instant) -> Option<Duration> {
        let announce =
            self.announcer
                .poll_at()
                .map(|at| if at > now { at - now } else { Duration::ZERO });
        match (self.iface.poll_delay(now, &self.sockets), announce) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The interface address once configured (static at once, DHCP after the lease).
    pub fn ipv4(&self) -> Option<Ipv4Cidr> {
        self.ipv4
    }

    /// The address once the probe has announced it on the link (see [`announce`]): from then on
    /// a peer that has been waiting for it is answered at once. This is when the probe is ready.
    pub fn announced(&self, now: Instant) -> Option<Announced> {
        self.announcer.announced(now)
    }

    /// The probe handler's counters (datagrams, malformed, unknown, replies).
    pub fn probe_counters(&self) -> ProbeCounters {
        self.udp.probe_counters()
    }

    /// A snapshot of the service counters.
    pub fn stats(&self) -> Stats {
        Stats {
            frames: self.frames.snapshot(),
            ..self.stats
        }
    }
}

/// Transmit what the sockets have queued; true if anything went out.
fn egress<D: Device + ?Sized>(
    iface: &mut Interface,
    device: &mut D,
    sockets: &mut SocketSet<'_>,
    now: Instant,
) -> bool {
    matches!(
        iface.poll_egress(now, device, sockets),
        PollResult::SocketStateChanged
    )
}

/// Seed for smoltcp's TCP initial sequence numbers and DHCP transaction ids, from the MAC and
/// the boot-time clock, so that two probes on one link, or one probe rebooted at a different
/// counter value, do not repeat each other's.
fn seed(mac: EthernetAddress, now: Instant) -> u64 {
    let mut mac64 = [0u8; 8];
    mac64[..6].copy_from_slice(mac.as_bytes());
    // splitmix64's finaliser spreads the few varying bits over the whole word.
    let mut z = u64::from_le_bytes(mac64) ^ (now.total_micros() as u64).rotate_left(32);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
