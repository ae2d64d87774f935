//! UDP services: echo (7), discard (9), the sockperf reflector (11111) and the probe protocol
//! (7777: timestamped echo, guest stats, micro-benchmarks, power-off), the last answered by
//! [`ProbeHandler`] through the same `reflect_all` loop.

use alloc::vec;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::udp::{self, PacketBuffer, PacketMetadata, UdpMetadata};
use smoltcp::wire::IpAddress;

use super::sockperf::{self, NoReply};
use super::stats::{FrameStats, UdpStats};
use crate::probe::{Outcome, ProbeHandler, ProbePlatform};
use vmprobe_proto::{BenchTest, CounterKind, GuestMode, GuestStats, PROBE_PORT};

/// The echo port (RFC 862).
pub const ECHO_PORT: u16 = 7;
/// The discard port (RFC 863).
pub const DISCARD_PORT: u16 = 9;
/// The chargen port (RFC 864); UDP chargen is not offered, but see [`is_reflector_port`].
const CHARGEN_PORT: u16 = 19;

/// Largest UDP payload in one unfragmented 1500-byte IPv4 packet.
pub const MAX_PAYLOAD: usize = 1500 - 20 - 8;
/// Datagrams each reflecting socket can hold per direction.
const QUEUE_PACKETS: usize = 16;
/// Datagrams the discard socket can hold (drained on every poll).
const DISCARD_PACKETS: usize = 4;

/// Number of UDP sockets.
pub const SOCKETS: usize = 4;

/// Micro-benchmark samples the probe keeps per run for the host to fetch.
pub const PROBE_SAMPLES: usize = 65_536;

/// Heap the UDP sockets and the probe's sample buffer take, for sizing the guest's allocator.
pub const HEAP_BYTES: usize = (3 * 2 * QUEUE_PACKETS + 2 * DISCARD_PACKETS)
    * (MAX_PAYLOAD + core::mem::size_of::<PacketMetadata>())
    + PROBE_SAMPLES * core::mem::size_of::<u64>();

/// Source ports of services that answer every datagram: replying to them could start an endless
/// echo/chargen ping-pong between two hosts (the classic inetd loop attack), so they get nothing.
fn is_reflector_port(port: u16) -> bool {
    matches!(port, ECHO_PORT | CHARGEN_PORT | sockperf::PORT)
}

/// The UDP sockets, by role.
pub(crate) struct UdpServices {
    echo: SocketHandle,
    probe: SocketHandle,
    discard: SocketHandle,
    sockperf: SocketHandle,
    handler: ProbeHandler<'static>,
}

fn socket(packets: usize, port: u16) -> udp::Socket<'static> {
    let buffer = || {
        PacketBuffer::new(
            vec![PacketMetadata::EMPTY; packets],
            vec![0; packets * MAX_PAYLOAD],
        )
    };
    let mut socket = udp::Socket::new(buffer(), buffer());
    // Binding a fresh socket to a non-zero port cannot fail.
    let _ = socket.bind(port);
    socket
}

impl UdpServices {
    /// Bind the UDP service sockets into `sockets`.
    pub fn new(sockets: &mut SocketSet<'static>) -> Self {
        UdpServices {
            // The latency-critical sockets first: smoltcp delivers to and egresses from sockets
            // in insertion order.
            echo: sockets.add(socket(QUEUE_PACKETS, ECHO_PORT)),
            probe: sockets.add(socket(QUEUE_PACKETS, PROBE_PORT)),
            sockperf: sockets.add(socket(QUEUE_PACKETS, sockperf::PORT)),
            discard: sockets.add(socket(DISCARD_PACKETS, DISCARD_PORT)),
            // Lives as long as the services, i.e. for the rest of the program.
            handler: ProbeHandler::new(alloc::boxed::Box::leak(
                vec![0u64; PROBE_SAMPLES].into_boxed_slice(),
            )),
        }
    }

    /// The probe handler's counters.
    pub fn probe_counters(&self) -> crate::probe::ProbeCounters {
        self.handler.counters()
    }

    /// Answer everything queued. Returns true if any datagram was taken in.
    ///
    /// Probe requests are answered through `platform`; `frames` is the device-boundary count
    /// the stats reply reports.
    pub fn serve<P: ProbePlatform>(
        &mut self,
        sockets: &mut SocketSet<'_>,
        scratch: &mut [u8],
        stats: &mut UdpStats,
        platform: &mut P,
        frames: FrameStats,
    ) -> bool {
        let mut busy = false;
        let echo = sockets.get_mut(self.echo);
        busy |= reflect_all(
            echo,
            scratch,
            stats,
            |s| &mut s.echoed,
            |msg, _| Some(msg.len()),
        );
        let probe = sockets.get_mut(self.probe);
        let mut platform = WithFrameStats { platform, frames };
        busy |= answer_probes(probe, scratch, stats, &mut self.handler, &mut platform);
        let sockperf = sockets.get_mut(self.sockperf);
        busy |= reflect_all(
            sockperf,
            scratch,
            stats,
            |s| &mut s.sockperf_replies,
            |msg, stats| match sockperf::reflect(msg) {
                Ok(len) => Some(len),
                Err(NoReply::Silent) => {
                    stats.sockperf_silent += 1;
                    None
                }
                Err(NoReply::Malformed) => {
                    stats.sockperf_malformed += 1;
                    None
                }
            },
        );
        let discard = sockets.get_mut::<udp::Socket>(self.discard);
        while let Ok((_, _)) = discard.recv() {
            stats.discarded += 1;
            busy = true;
        }
        busy
    }
}

/// Receive every queued datagram, let `transform` rewrite it in place and say how many bytes to
/// send back (`None`: no reply), and queue the reply to the sender, counting it in `replied`.
///
/// The datagram goes through `scratch` because smoltcp lends the receive and the transmit buffer
/// of one socket only one at a time; that one 1.5 KB copy is the only one beyond smoltcp's own.
/// Nothing is allocated.
fn reflect_all(
    socket: &mut udp::Socket<'_>,
    scratch: &mut [u8],
    stats: &mut UdpStats,
    replied: fn(&mut UdpStats) -> &mut u64,
    mut transform: impl FnMut(&mut [u8], &mut UdpStats) -> Option<usize>,
) -> bool {
    let mut busy = false;
    while socket.can_recv() {
        busy = true;
        let (len, meta) = match socket.recv_slice(scratch) {
            Ok(received) => received,
            // Cannot happen with scratch >= MAX_PAYLOAD; the datagram is gone either way.
            Err(_) => continue,
        };
        if is_reflector_port(meta.endpoint.port) {
            stats.refused += 1;
            continue;
        }
        let Some(reply_len) = transform(&mut scratch[..len], stats) else {
            continue;
        };
        let reply = UdpMetadata {
            endpoint: meta.endpoint,
            // Answer from the address that was asked, unless it was a broadcast.
            local_address: meta.local_address.filter(IpAddress::is_unicast),
            meta: meta.meta,
        };
        match socket.send_slice(&scratch[..reply_len], reply) {
            Ok(()) => *replied(stats) += 1,
            Err(_) => stats.tx_full += 1,
        }
    }
    busy
}

/// Answer every queued probe datagram with `handler`. The request and the reply (which may be
/// longer, up to [`MAX_PAYLOAD`]) each take one half of `scratch`.
fn answer_probes<P: ProbePlatform>(
    socket: &mut udp::Socket<'_>,
    scratch: &mut [u8],
    stats: &mut UdpStats,
    handler: &mut ProbeHandler<'_>,
    platform: &mut P,
) -> bool {
    let (request, reply) = scratch.split_at_mut(scratch.len() / 2);
    let reply_len = reply.len().min(MAX_PAYLOAD);
    let reply = &mut reply[..reply_len];
    let mut busy = false;
    while socket.can_recv() {
        busy = true;
        let Ok((len, meta)) = socket.recv_slice(request) else {
            continue;
        };
        if is_reflector_port(meta.endpoint.port) {
            stats.refused += 1;
            continue;
        }
        let Outcome::Reply(n) = handler.handle(platform, &request[..len], reply) else {
            // Malformed or unknown: counted by the handler, no answer.
            continue;
        };
        let to = UdpMetadata {
            endpoint: meta.endpoint,
            local_address: meta.local_address.filter(IpAddress::is_unicast),
            meta: meta.meta,
        };
        if socket.send_slice(&reply[..n], to).is_err() {
            stats.tx_full += 1;
        }
    }
    busy
}

/// The platform as the probe handler sees it from the services: its own counters, with the
/// frame counts the services keep at the device boundary.
struct WithFrameStats<'p, P> {
    platform: &'p mut P,
    frames: FrameStats,
}

impl<P: ProbePlatform> ProbePlatform for WithFrameStats<'_, P> {
    fn now(&mut self) -> u64 {
        self.platform.now()
    }
    fn cntfrq_hz(&self) -> u32 {
        self.platform.cntfrq_hz()
    }
    fn counter_kind(&self) -> CounterKind {
        self.platform.counter_kind()
    }
    fn mode(&self) -> GuestMode {
        self.platform.mode()
    }
    fn stats(&mut self) -> GuestStats {
        let f = self.frames;
        GuestStats {
            rx_frames: f.rx,
            tx_frames: f.tx,
            rx_bytes: f.rx_bytes,
            tx_bytes: f.tx_bytes,
            rx_dropped: f.rx_runt
                + f.rx_bad_ipv4
                + f.rx_fragment
                + f.rx_bad_transport
                + f.rx_bad_arp
                + f.rx_unsupported,
            tx_dropped: f.tx_exhausted,
            ..self.platform.stats()
        }
    }
    fn run_bench(
        &mut self,
        test: BenchTest,
        param: u64,
        samples: &mut [u64],
    ) -> Result<(), crate::probe::BenchError> {
        self.platform.run_bench(test, param, samples)
    }
    fn clock_readings(
        &mut self,
        counter: CounterKind,
        readings: &mut [vmprobe_proto::clock_reply::Reading],
    ) -> Result<(), vmprobe_proto::clock_reply::Absence> {
        self.platform.clock_readings(counter, readings)
    }
    fn request_power_off(&mut self) {
        self.platform.request_power_off()
    }
}
