//! TCP echo, discard and chargen, concurrency, and peers that reset or vanish.

use std::vec;
use std::vec::Vec;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::State;
use smoltcp::time::Duration;

use super::{Rng, World};
use crate::services::{chargen, tcp};

/// One client stream through an echo connection.
struct Stream {
    h: SocketHandle,
    data: Vec<u8>,
    sent: usize,
    checked: usize,
}

impl Stream {
    fn new(h: SocketHandle, len: usize, seed: u64) -> Self {
        let mut data = vec![0; len];
        Rng(seed).fill(&mut data);
        Stream {
            h,
            data,
            sent: 0,
            checked: 0,
        }
    }

    /// Push what the socket takes, check what came back. Returns true when all came back.
    fn pump(&mut self, w: &mut World) -> bool {
        let s = w.tcp(self.h);
        if self.sent < self.data.len() && s.can_send() {
            self.sent += s.send_slice(&self.data[self.sent..]).unwrap();
        }
        while s.can_recv() {
            let expected = &self.data[self.checked..];
            let n = s
                .recv(|buf| {
                    assert!(
                        buf.len() <= expected.len(),
                        "echo returned more than was sent"
                    );
                    assert!(
                        buf == &expected[..buf.len()],
                        "echo corrupted the stream at {}",
                        self.checked
                    );
                    (buf.len(), buf.len())
                })
                .unwrap();
            self.checked += n;
        }
        self.checked == self.data.len()
    }
}

/// Run all streams to completion.
fn pump_all(w: &mut World, streams: &mut [Stream], max_steps: usize) {
    w.run_until(max_steps, |w| {
        streams.iter_mut().fold(true, |all, s| s.pump(w) & all)
    });
}

#[test]
fn echo_streams_megabytes_exactly() {
    let mut w = World::new();
    let h = w.connect(7, 50000);
    let mut stream = Stream::new(h, 4 << 20, 42);
    pump_all(&mut w, std::slice::from_mut(&mut stream), 200_000);
    assert_eq!(w.guest.stats().tcp.echo_bytes, 4 << 20);
    // An orderly close frees the slot.
    w.tcp(h).close();
    w.run_until(1000, |w| w.guest.stats().tcp.closed == 1);
}

#[test]
fn echo_applies_backpressure_instead_of_dropping() {
    let mut w = World::new();
    let h = w.connect(7, 50001);
    let mut stream = Stream::new(h, 1 << 20, 43);
    // The client does not read for a while: the guest's buffers fill, its window closes, and
    // nothing may be lost.
    for _ in 0..500 {
        let s = w.tcp(h);
        if stream.sent < stream.data.len() && s.can_send() {
            stream.sent += s.send_slice(&stream.data[stream.sent..]).unwrap();
        }
        w.step();
    }
    assert!(
        stream.sent < stream.data.len(),
        "the window must have closed"
    );
    pump_all(&mut w, std::slice::from_mut(&mut stream), 100_000);
}

#[test]
fn several_connections_at_once_on_every_service() {
    let mut w = World::new();
    let mut streams: Vec<Stream> = (0..4)
        .map(|i| Stream::new(w.connect(7, 51000 + i), 256 << 10, 100 + i as u64))
        .collect();
    let discard: Vec<SocketHandle> = (0..2).map(|i| w.connect(9, 52000 + i)).collect();
    let chargen: Vec<SocketHandle> = (0..2).map(|i| w.connect(19, 53000 + i)).collect();
    let junk = vec![0xa5u8; 100 << 10];
    let (mut discarded, mut generated) = ([0usize; 2], [0u64; 2]);
    w.run_until(100_000, |w| {
        let mut done = streams.iter_mut().fold(true, |all, s| s.pump(w) & all);
        for (i, &h) in discard.iter().enumerate() {
            if discarded[i] < junk.len() {
                discarded[i] += w.tcp(h).send_slice(&junk[discarded[i]..]).unwrap();
                done = false;
            }
        }
        for (i, &h) in chargen.iter().enumerate() {
            while let Ok(n @ 1..) = w.tcp(h).recv(|buf| {
                for (k, &b) in buf.iter().enumerate() {
                    assert_eq!(b, chargen::byte_at(generated[i] + k as u64));
                }
                (buf.len(), buf.len())
            }) {
                generated[i] += n as u64;
            }
            done &= generated[i] >= 200 << 10;
        }
        done
    });
    w.run_until(10_000, |w| {
        w.guest.stats().tcp.discard_bytes == 2 * (100 << 10)
    });
    let stats = w.guest.stats().tcp;
    assert_eq!(stats.accepted, 8);
    assert_eq!(stats.echo_bytes, 4 * (256 << 10));
    assert_eq!(stats.aborted, 0);
}

#[test]
fn discard_swallows_and_answers_nothing() {
    let mut w = World::new();
    let h = w.connect(9, 50002);
    let data = vec![0x42u8; 1 << 20];
    let mut sent = 0;
    w.run_until(100_000, |w| {
        if sent < data.len() {
            sent += w.tcp(h).send_slice(&data[sent..]).unwrap();
        }
        assert!(!w.tcp(h).can_recv(), "discard sent data back");
        w.guest.stats().tcp.discard_bytes == data.len() as u64
    });
    w.tcp(h).close();
    w.run_until(1000, |w| w.guest.stats().tcp.closed == 1);
    assert_eq!(w.tcp(h).state(), State::TimeWait);
}

#[test]
fn chargen_streams_the_rfc_864_pattern() {
    let mut w = World::new();
    let h = w.connect(19, 50003);
    let mut pos = 0u64;
    w.run_until(100_000, |w| {
        while let Ok(n @ 1..) = w.tcp(h).recv(|buf| {
            for (k, &b) in buf.iter().enumerate() {
                assert_eq!(
                    b,
                    chargen::byte_at(pos + k as u64),
                    "at byte {}",
                    pos + k as u64
                );
            }
            (buf.len(), buf.len())
        }) {
            pos += n as u64;
        }
        pos >= 3 * chargen::PERIOD as u64 + 1000
    });
    // The first line, as the RFC lays it out (leading blank included).
    assert_eq!(chargen::byte_at(0), b' ');
    assert_eq!(chargen::byte_at(72), b'\r');
    assert_eq!(chargen::byte_at(74), b'!');
    // Closing our side ends the stream.
    w.tcp(h).close();
    w.run_until(10_000, |w| {
        let _ = w.tcp(h).recv(|buf| (buf.len(), ()));
        w.guest.stats().tcp.closed + w.guest.stats().tcp.aborted == 1
    });
}

#[test]
fn a_peer_that_resets_mid_stream_never_wedges_echo() {
    let mut w = World::new();
    // More resets than the pool has slots: every slot must come back.
    for round in 0..10u16 {
        let h = w.connect(7, 54000 + round);
        let mut stream = Stream::new(h, 64 << 10, round as u64);
        for _ in 0..20 {
            stream.pump(&mut w);
            w.step();
        }
        assert!(stream.checked > 0);
        w.tcp(h).abort();
        w.step();
        w.step();
        w.client.sockets.remove(h);
    }
    assert_eq!(w.guest.stats().tcp.aborted, 10);
    let mut streams: Vec<Stream> = (0..4)
        .map(|i| Stream::new(w.connect(7, 55000 + i), 32 << 10, i as u64))
        .collect();
    pump_all(&mut w, &mut streams, 10_000);
}

#[test]
fn a_peer_that_vanishes_is_timed_out_and_replaced() {
    let mut w = World::new();
    // Fill the whole echo pool with clients that then disappear mid-stream.
    for i in 0..4u16 {
        let h = w.connect(7, 56000 + i);
        let mut stream = Stream::new(h, 256 << 10, i as u64);
        for _ in 0..10 {
            stream.pump(&mut w);
            w.step();
        }
    }
    let chargen = w.connect(19, 56100);
    for _ in 0..10 {
        w.step();
    }
    w.client_attached = false;
    w.client.sockets = smoltcp::iface::SocketSet::new(Vec::new());
    w.guest_nic.rx.clear();
    // Keep-alives and retransmissions go unanswered until the timeout.
    w.idle(tcp::TIMEOUT + tcp::KEEP_ALIVE + Duration::from_secs(5));
    let _ = chargen;
    assert_eq!(w.guest.stats().tcp.aborted, 5);
    w.client_attached = true;
    let mut streams: Vec<Stream> = (0..4)
        .map(|i| Stream::new(w.connect(7, 57000 + i), 32 << 10, i as u64))
        .collect();
    pump_all(&mut w, &mut streams, 10_000);
}

#[test]
fn a_full_pool_refuses_and_recovers() {
    let mut w = World::new();
    let mut held: Vec<SocketHandle> = (0..4).map(|i| w.connect(7, 58000 + i)).collect();
    let extra = w.connect_nowait(7, 58010);
    w.run_until(1000, |w| w.tcp(extra).state() == State::Closed);
    // One connection ends; its slot takes the next client.
    let first = held.remove(0);
    w.tcp(first).close();
    w.run_until(1000, |w| w.guest.stats().tcp.closed == 1);
    let mut stream = Stream::new(w.connect(7, 58011), 10_000, 9);
    pump_all(&mut w, std::slice::from_mut(&mut stream), 10_000);
}

#[test]
fn an_idle_probe_needs_no_timer_but_a_connection_does() {
    let mut w = World::new();
    // Until its gateway answers, the probe keeps a timer to ask again.
    w.run_until(10, |w| w.guest.announced(w.now).is_some());
    assert_eq!(
        w.guest.poll_delay(w.now),
        None,
        "idle services must sleep until a frame"
    );
    let h = w.connect(7, 58100);
    let delay = w.guest.poll_delay(w.now).expect("keep-alive timer");
    assert!(delay <= tcp::KEEP_ALIVE);
    w.tcp(h).close();
    w.run_until(1000, |w| w.guest.stats().tcp.closed == 1);
    w.step();
    assert_eq!(w.guest.poll_delay(w.now), None);
}

#[test]
fn half_open_connections_do_not_hold_a_pool_forever() {
    let mut w = World::new();
    // Warm up ARP, then two SYNs that are never followed up take both discard slots.
    let probe = w.connect(9, 59000);
    w.tcp(probe).abort();
    w.step();
    w.client.sockets.remove(probe);
    for port in [59001, 59002] {
        let h = w.connect_nowait(9, port);
        w.poll_client();
        w.client.sockets.remove(h);
    }
    w.client_attached = false;
    while w.poll_guest() {}
    let refused = {
        w.client_attached = true;
        let h = w.connect_nowait(9, 59003);
        w.run_until(1000, |w| w.tcp(h).state() == State::Closed);
        h
    };
    w.client.sockets.remove(refused);
    // SYN-ACKs go unanswered until the timeout frees the slots.
    w.client_attached = false;
    w.idle(tcp::TIMEOUT + Duration::from_secs(5));
    w.client_attached = true;
    let h = w.connect(9, 59004);
    w.tcp(h).send_slice(b"discard me").unwrap();
    w.run_until(1000, |w| w.guest.stats().tcp.discard_bytes == 10);
}
