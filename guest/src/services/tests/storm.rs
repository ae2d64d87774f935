//! A storm of malformed frames at the guest: it must count them, never panic, and keep answering.

use std::vec;
use std::vec::Vec;

use smoltcp::wire::{IpAddress, Ipv4Packet, TcpPacket, UdpPacket};

use super::{Rng, World, CLIENT_IP, GUEST_IP};

const ETH: usize = 14;

/// Capture real client frames (ARP, UDP echo request, TCP handshake and data) as templates.
fn templates(w: &mut World) -> Vec<Vec<u8>> {
    let mut captured = Vec::new();
    let udp = w.udp_socket(42000);
    w.udp(udp)
        .send_slice(b"template", (IpAddress::Ipv4(GUEST_IP), 7))
        .unwrap();
    let tcp = w.connect_nowait(7, 42001);
    for step in 0..200 {
        if step == 20 {
            w.tcp(tcp).send_slice(&[0x11; 700]).unwrap();
        }
        w.poll_client();
        captured.extend(w.guest_nic.rx.iter().cloned());
        while w.poll_guest() {}
        w.poll_client();
        captured.extend(w.guest_nic.rx.iter().cloned());
        w.now += smoltcp::time::Duration::from_micros(50);
        while w.udp(udp).recv().is_ok() {}
        let _ = w.tcp(tcp).recv(|b| (b.len(), ()));
    }
    w.tcp(tcp).abort();
    w.step();
    captured.dedup();
    assert!(captured.len() >= 4, "too few templates");
    captured
}

fn is_ipv4(f: &[u8]) -> bool {
    f.len() >= ETH + 20 && f[12..14] == [0x08, 0x00]
}

fn fix_ip_checksum(f: &mut [u8]) {
    // smoltcp's fill_checksum trusts the IHL.
    if is_ipv4(f) && f.len() >= ETH + 4 * (f[ETH] & 0xf) as usize {
        Ipv4Packet::new_unchecked(&mut f[ETH..]).fill_checksum();
    }
}

/// Make the transport checksum right again, so the frame gets past smoltcp's checks and into
/// its TCP/UDP code.
fn fix_transport_checksum(f: &mut [u8]) {
    if !is_ipv4(f) || f[ETH] != 0x45 {
        return;
    }
    let (src, dst) = (IpAddress::Ipv4(CLIENT_IP), IpAddress::Ipv4(GUEST_IP));
    let proto = f[ETH + 9];
    let seg = &mut f[ETH + 20..];
    match proto {
        6 if seg.len() >= 20 => TcpPacket::new_unchecked(seg).fill_checksum(&src, &dst),
        // Only when the length field fits: smoltcp's fill_checksum trusts it.
        17 if UdpPacket::new_checked(&seg[..]).is_ok() => {
            UdpPacket::new_unchecked(seg).fill_checksum(&src, &dst)
        }
        _ => {}
    }
}

fn mutate(rng: &mut Rng, templates: &[Vec<u8>]) -> Vec<u8> {
    let mut f = templates[rng.below(templates.len())].clone();
    match rng.below(10) {
        0 => {
            f = vec![0; rng.below(1600)];
            rng.fill(&mut f);
        }
        1 => f.truncate(rng.below(f.len() + 1)),
        2 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(f.len());
                f[i] ^= 1 << rng.below(8);
            }
        }
        3 if is_ipv4(&f) => {
            f[ETH] = 0x40 | rng.below(16) as u8;
            fix_ip_checksum(&mut f);
        }
        4 if is_ipv4(&f) => {
            let len = rng.below(3000) as u16;
            f[ETH + 2..ETH + 4].copy_from_slice(&len.to_be_bytes());
            fix_ip_checksum(&mut f);
        }
        5 if is_ipv4(&f) => {
            f[ETH + 6] = rng.next() as u8 & 0x3f;
            f[ETH + 7] = rng.next() as u8;
            fix_ip_checksum(&mut f);
        }
        6 if is_ipv4(&f) && f[ETH + 9] == 6 && f.len() >= ETH + 40 => {
            // Random flags, data offset, sequence numbers and option bytes on a TCP segment.
            let tcp = ETH + 20;
            f[tcp + 13] = rng.next() as u8;
            if rng.below(2) == 0 {
                f[tcp + 12] = (rng.below(16) as u8) << 4;
            }
            let options_end = f.len().min(tcp + 60);
            for b in &mut f[tcp + 4..tcp + 12] {
                if rng.below(3) == 0 {
                    *b = rng.next() as u8;
                }
            }
            for b in &mut f[tcp + 20..options_end] {
                if rng.below(2) == 0 {
                    *b = rng.next() as u8;
                }
            }
            fix_transport_checksum(&mut f);
        }
        7 => {
            f.truncate(ETH);
            f.resize(ETH.max(f.len()), 0);
            f[12..14].copy_from_slice(&[0x08, 0x06]);
            let mut body = vec![0; rng.below(60)];
            rng.fill(&mut body);
            if rng.below(2) == 0 && body.len() >= 8 {
                body[..8].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
            }
            f.extend_from_slice(&body);
        }
        8 => {
            f.truncate(ETH.min(f.len()));
            f.resize(ETH, 0);
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            let mut body = vec![0; rng.below(200)];
            rng.fill(&mut body);
            f.extend_from_slice(&body);
        }
        9 if is_ipv4(&f) && f[ETH + 9] == 17 && f.len() >= ETH + 28 => {
            let len = rng.below(2000) as u16;
            f[ETH + 24..ETH + 26].copy_from_slice(&len.to_be_bytes());
            fix_transport_checksum(&mut f);
        }
        _ => {
            let i = rng.below(f.len().max(1));
            if i < f.len() {
                f[i] = rng.next() as u8;
            }
        }
    }
    f
}

#[test]
fn malformed_frame_storm_leaves_every_service_answering() {
    let mut w = World::new();
    let templates = templates(&mut w);
    let mut rng = Rng(0x5eed_f00d);
    let before = w.guest.stats().frames;
    for _ in 0..100 {
        for _ in 0..50 {
            let frame = mutate(&mut rng, &templates);
            w.guest_nic.rx.push_back(frame);
        }
        w.step();
    }
    let frames = w.guest.stats().frames;
    assert!(frames.rx >= before.rx + 5000);
    assert!(frames.rx_runt > 0 && frames.rx_bad_ipv4 > 0 && frames.rx_fragment > 0);
    assert!(frames.rx_bad_transport > 0 && frames.rx_bad_arp > 0 && frames.rx_unsupported > 0);

    // Fresh client sockets: the old ones may have been confused by the guest's answers to junk.
    // Mutated ARP frames may have taught the guest a wrong MAC for the client, as they would on
    // a real link; a minute later such entries have expired.
    w.client.sockets = smoltcp::iface::SocketSet::new(Vec::new());
    w.idle(smoltcp::time::Duration::from_secs(60));
    let udp = w.udp_socket(43000);
    for size in [0usize, 1, 700, 1472] {
        let payload = vec![0x3c; size];
        w.udp(udp)
            .send_slice(&payload, (IpAddress::Ipv4(GUEST_IP), 7))
            .unwrap();
        w.run_until(100, |w| w.udp(udp).can_recv());
        assert_eq!(w.udp(udp).recv().unwrap().0, &payload[..]);
    }
    let tcp = w.connect(7, 43001);
    w.tcp(tcp).send_slice(b"still alive").unwrap();
    w.run_until(1000, |w| w.tcp(tcp).recv_queue() == 11);
    let mut buf = [0; 11];
    w.tcp(tcp).recv_slice(&mut buf).unwrap();
    assert_eq!(&buf, b"still alive");
}
