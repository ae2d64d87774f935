//! UDP echo, discard and the sockperf reflector over the simulated wire.

use std::vec;
use std::vec::Vec;

use smoltcp::wire::{EthernetFrame, IpAddress, Ipv4Packet, UdpPacket};

use super::{Rng, World, GUEST_IP};
use crate::services::sockperf;

const GUEST: (IpAddress, u16) = (IpAddress::Ipv4(GUEST_IP), 7);

/// Send `payload` to the guest's `port` and return the single reply, if any, after the wire
/// has settled.
pub(super) fn exchange(
    w: &mut World,
    client: smoltcp::iface::SocketHandle,
    port: u16,
    payload: &[u8],
) -> Option<Vec<u8>> {
    w.udp(client)
        .send_slice(payload, (IpAddress::Ipv4(GUEST_IP), port))
        .unwrap();
    for _ in 0..5 {
        w.step();
    }
    let reply = w.udp(client).recv().ok().map(|(data, meta)| {
        assert_eq!(meta.endpoint.port, port);
        data.to_vec()
    });
    assert!(!w.udp(client).can_recv(), "more than one reply");
    reply
}

#[test]
fn echo_returns_exact_bytes_for_every_size() {
    let mut w = World::new();
    let client = w.udp_socket(40000);
    let mut rng = Rng(7);
    for size in 0..=1472 {
        let mut payload = vec![0; size];
        rng.fill(&mut payload);
        assert_eq!(
            exchange(&mut w, client, 7, &payload).as_deref(),
            Some(&payload[..]),
            "size {size}"
        );
    }
    assert_eq!(w.guest.stats().udp.echoed, 1473);
    assert_eq!(w.guest.stats().udp.tx_full, 0);
}

#[test]
fn echo_answers_in_the_poll_that_received_the_request() {
    let mut w = World::new();
    let client = w.udp_socket(40001);
    // Warm up ARP both ways.
    assert!(exchange(&mut w, client, 7, b"warm").is_some());
    w.udp(client).send_slice(b"hot path", GUEST).unwrap();
    w.poll_client();
    assert_eq!(w.guest_nic.rx.len(), 1);
    w.guest.poll(w.now, &mut w.guest_nic, &mut w.platform);
    assert_eq!(
        w.guest_nic.tx.len(),
        1,
        "the reply must leave in the same poll"
    );
    let frame = w.guest_nic.tx[0].clone();
    let ip =
        Ipv4Packet::new_checked(EthernetFrame::new_checked(&frame[..]).unwrap().payload()).unwrap();
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(udp.payload(), b"hot path");
    assert_eq!(udp.src_port(), 7);
    assert_eq!(udp.dst_port(), 40001);
}

#[test]
fn echo_keeps_up_with_a_burst() {
    let mut w = World::new();
    let client = w.udp_socket(40002);
    assert!(exchange(&mut w, client, 7, b"warm").is_some());
    // More requests than one poll takes in rounds, all queued at the guest at once.
    for i in 0..60u32 {
        w.udp(client).send_slice(&i.to_be_bytes(), GUEST).unwrap();
    }
    w.run_until(100, |w| w.guest.stats().udp.echoed == 61);
    let mut got = Vec::new();
    w.run_until(100, |w| {
        while let Ok((data, _)) = w.udp(client).recv() {
            got.push(u32::from_be_bytes(data.try_into().unwrap()));
        }
        got.len() == 60
    });
    assert_eq!(got, (0..60).collect::<Vec<_>>());
}

#[test]
fn discard_answers_nothing() {
    let mut w = World::new();
    let client = w.udp_socket(40003);
    for size in [0, 1, 100, 1472] {
        assert_eq!(exchange(&mut w, client, 9, &vec![0x55; size]), None);
    }
    assert_eq!(w.guest.stats().udp.discarded, 4);
}

#[test]
fn reflector_source_ports_get_no_reply() {
    let mut w = World::new();
    let client = w.udp_socket(19);
    assert_eq!(exchange(&mut w, client, 7, b"loop?"), None);
    assert_eq!(w.guest.stats().udp.refused, 1);
}

fn sockperf_message(seq: u64, flags: u16, total: usize) -> Vec<u8> {
    let mut m = vec![0x5a; total];
    m[0..8].copy_from_slice(&seq.to_be_bytes());
    m[8..10].copy_from_slice(&flags.to_be_bytes());
    m[10..14].copy_from_slice(&(total as u32).to_be_bytes());
    m
}

#[test]
fn sockperf_reflector_clears_the_client_flag() {
    let mut w = World::new();
    let client = w.udp_socket(40004);
    let ping = sockperf::FLAG_CLIENT | sockperf::FLAG_PONG_REQUEST;
    for (seq, size) in [(1u64, 14usize), (2, 64), (3, 1472)] {
        let request = sockperf_message(seq, ping, size);
        let reply = exchange(&mut w, client, sockperf::PORT, &request).expect("pong");
        let mut expected = request.clone();
        expected[9] &= !1;
        assert_eq!(reply, expected);
    }
    // Warm-up, no pong request, and garbage: silence, as from sockperf's own server.
    let warmup = sockperf_message(4, ping | sockperf::FLAG_WARMUP, 64);
    assert_eq!(exchange(&mut w, client, sockperf::PORT, &warmup), None);
    let no_pong = sockperf_message(5, sockperf::FLAG_CLIENT, 64);
    assert_eq!(exchange(&mut w, client, sockperf::PORT, &no_pong), None);
    assert_eq!(exchange(&mut w, client, sockperf::PORT, b"short"), None);
    let s = w.guest.stats().udp;
    assert_eq!(
        (s.sockperf_replies, s.sockperf_silent, s.sockperf_malformed),
        (3, 2, 1)
    );
}
