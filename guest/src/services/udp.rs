//! UDP services: echo (7), discard (9) and the sockperf reflector (11111).
//!
//! Port 7777 is reserved for the probe protocol (timestamped echo, guest stats, commands); it will
//! be one more socket here served by the same `reflect_all` loop with its own transform.

use alloc::vec;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::udp::{self, PacketBuffer, PacketMetadata, UdpMetadata};
use smoltcp::wire::IpAddress;

use super::sockperf::{self, NoReply};
use super::stats::UdpStats;

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
pub const SOCKETS: usize = 3;

/// Heap the UDP sockets take, for sizing the guest's allocator.
pub const HEAP_BYTES: usize = (2 * 2 * QUEUE_PACKETS + 2 * DISCARD_PACKETS)
    * (MAX_PAYLOAD + core::mem::size_of::<PacketMetadata>());

/// Source ports of services that answer every datagram: replying to them could start an endless
/// echo/chargen ping-pong between two hosts (the classic inetd loop attack), so they get nothing.
fn is_reflector_port(port: u16) -> bool {
    matches!(port, ECHO_PORT | CHARGEN_PORT | sockperf::PORT)
}

/// The UDP sockets, by role.
pub(crate) struct UdpServices {
    echo: SocketHandle,
    discard: SocketHandle,
    sockperf: SocketHandle,
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
            sockperf: sockets.add(socket(QUEUE_PACKETS, sockperf::PORT)),
            discard: sockets.add(socket(DISCARD_PACKETS, DISCARD_PORT)),
        }
    }

    /// Answer everything queued. Returns true if any datagram was taken in.
    pub fn serve(
        &self,
        sockets: &mut SocketSet<'_>,
        scratch: &mut [u8],
        stats: &mut UdpStats,
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
