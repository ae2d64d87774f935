//! TCP services: echo (7), discard (9) and chargen (19), each a small pool of listening sockets.
//!
//! Every slot is recycled the moment its connection ends, however it ends: an orderly close, a
//! reset from the peer, or a timeout (keep-alive probes find peers that vanished). So a pool is
//! never wedged for longer than [`TIMEOUT`], and `POOL` connections per service run at once.

use alloc::vec;
use alloc::vec::Vec;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, SocketBuffer, State};
use smoltcp::time::Duration;

use super::chargen;
use super::stats::TcpStats;
use super::udp::{DISCARD_PORT, ECHO_PORT};

/// The chargen port (RFC 864).
pub const CHARGEN_PORT: u16 = 19;

/// An idle connection sends a keep-alive probe after this long without hearing from the peer.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// A connection whose peer stays silent this long (through keep-alives or retransmissions) is
/// aborted and its slot listens again.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Small buffer for the direction a service does not use (chargen's input, discard's output).
const UNUSED_DIRECTION: usize = 256;

/// What a slot does with its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Echo,
    Discard,
    Chargen,
}

impl Role {
    const fn port(self) -> u16 {
        match self {
            Role::Echo => ECHO_PORT,
            Role::Discard => DISCARD_PORT,
            Role::Chargen => CHARGEN_PORT,
        }
    }

    /// Connections served at once.
    const fn pool(self) -> usize {
        match self {
            Role::Echo => 4,
            Role::Discard | Role::Chargen => 2,
        }
    }

    /// Receive and transmit buffer sizes. Echo holds the request stream twice over (in flight
    /// to the service and back); the bulk services get one large buffer in their direction.
    const fn buffers(self) -> (usize, usize) {
        match self {
            Role::Echo => (16 * 1024, 16 * 1024),
            Role::Discard => (32 * 1024, UNUSED_DIRECTION),
            Role::Chargen => (UNUSED_DIRECTION, 32 * 1024),
        }
    }
}

const ROLES: [Role; 3] = [Role::Echo, Role::Discard, Role::Chargen];

/// Number of TCP sockets, all pools together.
pub const SOCKETS: usize = pools_total().0;

/// Heap the TCP sockets' buffers take, for sizing the guest's allocator.
pub const HEAP_BYTES: usize = pools_total().1;

/// (sockets, buffer bytes) over all pools.
const fn pools_total() -> (usize, usize) {
    let (mut sockets, mut bytes) = (0, 0);
    let mut i = 0;
    while i < ROLES.len() {
        let (rx, tx) = ROLES[i].buffers();
        sockets += ROLES[i].pool();
        bytes += ROLES[i].pool() * (rx + tx);
        i += 1;
    }
    (sockets, bytes)
}

/// One pooled socket and what the service knows about its connection.
struct Slot {
    handle: SocketHandle,
    role: Role,
    /// The connection got past the handshake and was counted as accepted.
    connected: bool,
    /// The service sent its FIN after the peer's (an orderly end).
    closing: bool,
    /// Position in the chargen pattern.
    chargen_offset: usize,
}

/// The TCP service sockets.
pub(crate) struct TcpServices {
    slots: Vec<Slot>,
}

impl TcpServices {
    /// Create the pools, listening, in `sockets`.
    pub fn new(sockets: &mut SocketSet<'static>) -> Self {
        let mut slots = Vec::new();
        for role in ROLES {
            for _ in 0..role.pool() {
                let (rx, tx) = role.buffers();
                let mut socket = tcp::Socket::new(
                    SocketBuffer::new(vec![0; rx]),
                    SocketBuffer::new(vec![0; tx]),
                );
                socket.set_keep_alive(Some(KEEP_ALIVE));
                socket.set_timeout(Some(TIMEOUT));
                // A latency probe: every echo goes out at once, never held back for coalescing.
                socket.set_nagle_enabled(role != Role::Echo);
                // A fresh socket is closed, and the port is not zero: listening cannot fail.
                let _ = socket.listen(role.port());
                slots.push(Slot {
                    handle: sockets.add(socket),
                    role,
                    connected: false,
                    closing: false,
                    chargen_offset: 0,
                });
            }
        }
        TcpServices { slots }
    }

    /// Move data on every connection and recycle finished ones. Returns true if anything moved.
    pub fn serve(
        &mut self,
        sockets: &mut SocketSet<'_>,
        scratch: &mut [u8],
        stats: &mut TcpStats,
    ) -> bool {
        let mut busy = false;
        for slot in &mut self.slots {
            busy |= slot.serve(sockets.get_mut(slot.handle), scratch, stats);
        }
        busy
    }
}

impl Slot {
    fn serve(
        &mut self,
        socket: &mut tcp::Socket<'_>,
        scratch: &mut [u8],
        stats: &mut TcpStats,
    ) -> bool {
        match socket.state() {
            // smoltcp runs the handshake by itself.
            State::Listen | State::SynReceived => return false,
            State::Closed | State::TimeWait => {
                self.recycle(socket, stats);
                return true;
            }
            _ => {}
        }
        if !self.connected {
            self.connected = true;
            self.chargen_offset = 0;
            stats.accepted += 1;
        }
        let mut busy = match self.role {
            Role::Echo => echo(socket, scratch, stats),
            Role::Discard => discard(socket, stats),
            Role::Chargen => discard(socket, stats) | self.chargen(socket, stats),
        };
        // The peer has finished: once all it sent is answered (echo data still waiting for
        // transmit space stays in the receive buffer), finish our side too.
        if socket.state() == State::CloseWait && !socket.can_recv() {
            socket.close();
            self.closing = true;
            busy = true;
        }
        busy
    }

    /// The connection is over: count how it ended and listen again.
    fn recycle(&mut self, socket: &mut tcp::Socket<'_>, stats: &mut TcpStats) {
        if self.connected {
            // Reaching CLOSED or TIME-WAIT after our own FIN is an orderly end; anything else
            // (reset, timeout) is an abort.
            if self.closing || socket.state() == State::TimeWait {
                stats.closed += 1;
            } else {
                stats.aborted += 1;
            }
        }
        self.connected = false;
        self.closing = false;
        // TIME-WAIT is not open for smoltcp, so this never fails; the slot is free at once
        // instead of ten seconds later (TIME-WAIT only arises from a simultaneous close here).
        let _ = socket.listen(self.role.port());
    }

    /// Queue as much of the RFC 864 pattern as the transmit buffer takes.
    fn chargen(&mut self, socket: &mut tcp::Socket<'_>, stats: &mut TcpStats) -> bool {
        let mut busy = false;
        // Two rounds: the free space of a ring buffer comes in at most two pieces.
        while socket.can_send() {
            let offset = &mut self.chargen_offset;
            let queued = socket
                .send(|buf| {
                    *offset = chargen::fill(buf, *offset);
                    (buf.len(), buf.len())
                })
                .unwrap_or(0);
            if queued == 0 {
                break;
            }
            stats.chargen_bytes += queued as u64;
            busy = true;
        }
        busy
    }
}

/// Move received bytes to the transmit buffer, never taking more than fits: bytes the service
/// cannot send yet stay in the receive buffer, where they close the peer's window.
fn echo(socket: &mut tcp::Socket<'_>, scratch: &mut [u8], stats: &mut TcpStats) -> bool {
    let mut busy = false;
    while socket.can_recv() && socket.can_send() {
        let room = socket.send_capacity() - socket.send_queue();
        let take = room.min(scratch.len());
        let got = socket.recv_slice(&mut scratch[..take]).unwrap_or(0);
        if got == 0 {
            break;
        }
        // `got <= room`, so all of it fits.
        let sent = socket.send_slice(&scratch[..got]).unwrap_or(0);
        debug_assert_eq!(sent, got);
        stats.echo_bytes += got as u64;
        busy = true;
    }
    busy
}

/// Read and drop whatever arrived.
fn discard(socket: &mut tcp::Socket<'_>, stats: &mut TcpStats) -> bool {
    let mut busy = false;
    while let Ok(n @ 1..) = socket.recv(|buf| (buf.len(), buf.len())) {
        stats.discard_bytes += n as u64;
        busy = true;
    }
    busy
}
