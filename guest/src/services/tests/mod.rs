//! Host-side tests of [`Services`]: the guest and a plain smoltcp client stack joined by an
//! in-memory Ethernet wire that the test can watch, drop, rewrite and inject frames on.

mod alloc_free;
mod announce;
mod dhcp;
mod icmp;
mod probe;
mod sockperf_real;
mod storm;
mod tcp;
mod udp;

use std::collections::VecDeque;
use std::vec;
use std::vec::Vec;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{tcp as stcp, udp as sudp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpCidr,
    IpListenEndpoint, IpProtocol, Ipv4Address, Ipv4Cidr, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

use super::Services;
use crate::config::NetConfig;

pub const GUEST_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0f]);
pub const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
pub const GUEST_IP: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
pub const CLIENT_IP: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);

/// One end of the wire: frames in, frames out.
#[derive(Default)]
pub struct Nic {
    pub rx: VecDeque<Vec<u8>>,
    pub tx: VecDeque<Vec<u8>>,
    /// Frame buffers to transmit into before allocating new ones (for the allocation test).
    pub spare: Vec<Vec<u8>>,
}

pub struct NicRx(Vec<u8>);
pub struct NicTx<'a> {
    tx: &'a mut VecDeque<Vec<u8>>,
    spare: &'a mut Vec<Vec<u8>>,
}

impl phy::RxToken for NicRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for NicTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = self.spare.pop().unwrap_or_default();
        frame.clear();
        frame.resize(len, 0);
        let r = f(&mut frame);
        self.tx.push_back(frame);
        r
    }
}

impl Device for Nic {
    type RxToken<'a> = NicRx;
    type TxToken<'a> = NicTx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(NicRx, NicTx<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((
            NicRx(frame),
            NicTx {
                tx: &mut self.tx,
                spare: &mut self.spare,
            },
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<NicTx<'_>> {
        Some(NicTx {
            tx: &mut self.tx,
            spare: &mut self.spare,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// The client side: a plain smoltcp stack.
pub struct Client {
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    pub nic: Nic,
}

/// Guest, client and the wire between them, on a simulated clock.
pub struct World {
    pub guest: Services,
    pub guest_nic: Nic,
    pub client: Client,
    pub now: Instant,
    /// When false, frames the guest sends are lost (the client has vanished).
    pub client_attached: bool,
    /// The probe protocol's platform hooks.
    pub platform: TestPlatform,
}

/// Probe platform hooks for the service tests: a counter that steps by 1 per read, one
/// benchmark that returns 7, 8, 9, ... and a recorded power-off request.
#[derive(Default)]
pub struct TestPlatform {
    pub counter: u64,
    pub power_off: bool,
}

impl crate::probe::ProbePlatform for TestPlatform {
    fn now(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }
    fn cntfrq_hz(&self) -> u32 {
        62_500_000
    }
    fn counter_kind(&self) -> vmprobe_proto::CounterKind {
        vmprobe_proto::CounterKind::Virtual
    }
    fn mode(&self) -> vmprobe_proto::GuestMode {
        vmprobe_proto::GuestMode::Irq
    }
    fn stats(&mut self) -> vmprobe_proto::GuestStats {
        vmprobe_proto::GuestStats {
            irqs: 3,
            ..Default::default()
        }
    }
    fn run_bench(
        &mut self,
        test: vmprobe_proto::BenchTest,
        _param: u64,
        samples: &mut [u64],
    ) -> Result<(), crate::probe::BenchError> {
        if test != vmprobe_proto::BenchTest::CounterRead {
            return Err(crate::probe::BenchError::Unsupported);
        }
        for (i, s) in samples.iter_mut().enumerate() {
            *s = 7 + i as u64;
        }
        Ok(())
    }
    fn clock_readings(
        &mut self,
        _: vmprobe_proto::CounterKind,
        _: &mut [vmprobe_proto::clock_reply::Reading],
    ) -> Result<(), vmprobe_proto::clock_reply::Absence> {
        Err(vmprobe_proto::clock_reply::Absence::NoConduit)
    }
    fn request_power_off(&mut self) {
        self.power_off = true;
    }
}

pub fn static_config() -> NetConfig {
    NetConfig {
        ip: Ipv4Cidr::new(GUEST_IP, 24),
        gw: Some(CLIENT_IP),
        dhcp: false,
    }
}

impl World {
    pub fn new() -> Self {
        Self::with_config(&static_config())
    }

    pub fn with_config(config: &NetConfig) -> Self {
        let now = Instant::from_secs(1);
        let mut guest_nic = Nic::default();
        let guest = Services::new(config, GUEST_MAC, &mut guest_nic, now);
        let mut nic = Nic::default();
        let mut iface = Interface::new(Config::new(CLIENT_MAC.into()), &mut nic, now);
        iface.update_ip_addrs(|a| a.push(IpCidr::new(CLIENT_IP.into(), 24)).unwrap());
        let client = Client {
            iface,
            sockets: SocketSet::new(Vec::new()),
            nic,
        };
        World {
            guest,
            guest_nic,
            client,
            now,
            client_attached: true,
            platform: TestPlatform::default(),
        }
    }

    /// Poll the guest once and deliver what it sent.
    pub fn poll_guest(&mut self) -> bool {
        let busy = self
            .guest
            .poll(self.now, &mut self.guest_nic, &mut self.platform);
        let frames: Vec<_> = self.guest_nic.tx.drain(..).collect();
        if self.client_attached {
            self.client.nic.rx.extend(frames);
        }
        busy
    }

    /// Poll the client once and deliver what it sent.
    pub fn poll_client(&mut self) {
        let c = &mut self.client;
        c.iface.poll(self.now, &mut c.nic, &mut c.sockets);
        self.guest_nic.rx.extend(c.nic.tx.drain(..));
    }

    /// One round trip of the simulation, 50 us of simulated time.
    pub fn step(&mut self) {
        self.poll_client();
        while self.poll_guest() {}
        self.poll_client();
        self.now += Duration::from_micros(50);
    }

    /// Step until `done` holds; panics after `max_steps`.
    pub fn run_until(&mut self, max_steps: usize, mut done: impl FnMut(&mut World) -> bool) {
        for _ in 0..max_steps {
            if done(self) {
                return;
            }
            self.step();
        }
        assert!(done(self), "condition not reached in {max_steps} steps");
    }

    /// Let simulated time pass, polling the guest whenever smoltcp asks for it.
    pub fn idle(&mut self, span: Duration) {
        let end = self.now + span;
        while self.now < end {
            let delay = self
                .guest
                .poll_delay(self.now)
                .unwrap_or(span)
                .max(Duration::from_millis(1));
            self.now = (self.now + delay).min(end);
            self.step();
        }
    }

    pub fn udp_socket(&mut self, port: u16) -> SocketHandle {
        self.udp_socket_at(port)
    }

    pub fn udp_socket_at(&mut self, endpoint: impl Into<IpListenEndpoint>) -> SocketHandle {
        let buf =
            || sudp::PacketBuffer::new(vec![sudp::PacketMetadata::EMPTY; 64], vec![0; 64 * 1500]);
        let mut s = sudp::Socket::new(buf(), buf());
        s.bind(endpoint).unwrap();
        self.client.sockets.add(s)
    }

    pub fn udp(&mut self, h: SocketHandle) -> &mut sudp::Socket<'static> {
        self.client.sockets.get_mut(h)
    }

    /// Open a TCP connection from `local_port` to the guest's `port` and wait until it is up.
    pub fn connect(&mut self, port: u16, local_port: u16) -> SocketHandle {
        let h = self.connect_nowait(port, local_port);
        self.run_until(1000, |w| w.tcp(h).state() == stcp::State::Established);
        h
    }

    pub fn connect_nowait(&mut self, port: u16, local_port: u16) -> SocketHandle {
        let mut s = stcp::Socket::new(
            stcp::SocketBuffer::new(vec![0; 64 * 1024]),
            stcp::SocketBuffer::new(vec![0; 64 * 1024]),
        );
        s.connect(
            self.client.iface.context(),
            (IpAddress::Ipv4(GUEST_IP), port),
            local_port,
        )
        .unwrap();
        self.client.sockets.add(s)
    }

    pub fn tcp(&mut self, h: SocketHandle) -> &mut stcp::Socket<'static> {
        self.client.sockets.get_mut(h)
    }
}

/// An Ethernet/IPv4/UDP frame from the client's MAC to the guest's, whatever its addresses say;
/// `fill` writes the `payload_len` bytes of payload.
pub fn udp_frame(
    (src, src_port): (Ipv4Address, u16),
    (dst, dst_port): (Ipv4Address, u16),
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    let udp_len = 8 + payload_len;
    let mut frame = vec![0; 14 + 20 + udp_len];
    let caps = ChecksumCapabilities::default();
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    EthernetRepr {
        src_addr: CLIENT_MAC,
        dst_addr: GUEST_MAC,
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
    let ip_repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: udp_len,
        hop_limit: 64,
    };
    ip_repr.emit(&mut ip, &caps);
    let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
    UdpRepr { src_port, dst_port }.emit(
        &mut udp,
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(dst),
        payload_len,
        fill,
        &caps,
    );
    frame
}

/// Deterministic xorshift64* for test data and fuzzing.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}
