//! Writing counter readings into probe frames in place, for the device layer.
//!
//! Readings belong to one packet, so they travel in it: the driver stamps an echo request the
//! moment it takes the frame off the receive queue ([`stamp_rx`]), before the network stack sees
//! it, and stamps an echo reply just before it notifies the device ([`stamp_tx`]), after the
//! stack has built it. No side table ties a reading to a packet, however many frames the stack
//! queues between the two.
//!
//! Frames are Ethernet II carrying IPv4 (unfragmented) and UDP on [`PROBE_PORT`]; anything else
//! is left untouched. The UDP checksum, when present, is updated incrementally (RFC 1624), so
//! the stack's receive check and the host's still pass.

use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, UdpPacket};
use vmprobe_proto::echo_reply::{self, TxStamps};
use vmprobe_proto::echo_request::{self, RxStamps};
use vmprobe_proto::{header, Kind, HEADER_LEN, PROBE_PORT};

/// Byte offsets of a probe datagram inside a frame.
struct Located {
    /// Offset of the UDP checksum field.
    udp_checksum: usize,
    /// Offset of the probe body (after the probe header).
    body: usize,
    /// End of the probe message.
    end: usize,
}

/// Which way a frame goes: the probe port is the destination on receive, the source on send.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Rx,
    Tx,
}

/// Find a probe message of `kind` in `frame`.
fn locate(frame: &[u8], dir: Direction, kind: Kind) -> Option<Located> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip_at = EthernetFrame::<&[u8]>::header_len();
    let ip = Ipv4Packet::new_checked(&frame[ip_at..]).ok()?;
    if ip.next_header() != IpProtocol::Udp || ip.more_frags() || ip.frag_offset() != 0 {
        return None;
    }
    let udp_at = ip_at + usize::from(ip.header_len());
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    let port = match dir {
        Direction::Rx => udp.dst_port(),
        Direction::Tx => udp.src_port(),
    };
    if port != PROBE_PORT {
        return None;
    }
    let probe_at = udp_at + 8;
    let probe = header::Packet::new_checked(udp.payload()).ok()?;
    let hdr = header::Repr::parse(&probe).ok()?;
    (hdr.kind == kind).then_some(Located {
        udp_checksum: udp_at + 6,
        body: probe_at + HEADER_LEN,
        end: probe_at + hdr.buffer_len(),
    })
}

/// Longest stamped range, for the stack copy of the old bytes.
const MAX_STAMPED: usize = 64;

/// Rewrite `range` of the probe body through `write`, keeping the UDP checksum valid.
fn rewrite(
    frame: &mut [u8],
    at: &Located,
    range: core::ops::Range<usize>,
    write: impl FnOnce(&mut [u8]),
) {
    let (start, end) = (at.body + range.start, at.body + range.end);
    let mut old = [0u8; MAX_STAMPED];
    let old = &mut old[..end - start];
    old.copy_from_slice(&frame[start..end]);
    write(&mut frame[at.body..at.end]);
    let checksum = u16::from_be_bytes([frame[at.udp_checksum], frame[at.udp_checksum + 1]]);
    if checksum != 0 {
        let updated = adjust_checksum(checksum, old, &frame[start..end]);
        frame[at.udp_checksum..at.udp_checksum + 2].copy_from_slice(&updated.to_be_bytes());
    }
}

/// Stamp an echo request's arrival readings into its frame. Returns whether the frame was a
/// probe echo request (anything else is left untouched).
pub fn stamp_rx(frame: &mut [u8], stamps: RxStamps) -> bool {
    let Some(at) = locate(frame, Direction::Rx, Kind::EchoRequest) else {
        return false;
    };
    if at.end - at.body < echo_request::FIXED_LEN {
        return false;
    }
    rewrite(frame, &at, echo_request::STAMPED_RANGE, |body| {
        stamps.write(&mut echo_request::Packet::new_unchecked(body));
    });
    true
}

/// Stamp an echo reply's departure readings into its frame just before the TX notify. Returns
/// whether the frame was a probe echo reply (anything else is left untouched).
pub fn stamp_tx(frame: &mut [u8], stamps: TxStamps) -> bool {
    let Some(at) = locate(frame, Direction::Tx, Kind::EchoReply) else {
        return false;
    };
    if at.end - at.body < echo_reply::FIXED_LEN {
        return false;
    }
    rewrite(frame, &at, echo_reply::TX_STAMPED_RANGE, |body| {
        stamps.write(&mut echo_reply::Packet::new_unchecked(body));
    });
    true
}

/// RFC 1624 incremental update of an Internet checksum for `old` bytes replaced by `new` (same
/// even length, starting at an even offset from the start of the checksummed data).
fn adjust_checksum(checksum: u16, old: &[u8], new: &[u8]) -> u16 {
    // HC' = ~(~HC + ~m + m'), summed word by word in one's complement.
    let mut sum = u32::from(!checksum);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        sum += u32::from(!u16::from_be_bytes([o[0], o[1]]));
        sum += u32::from(u16::from_be_bytes([n[0], n[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    match !(sum as u16) {
        // UDP sends a computed zero as all ones; zero means "no checksum".
        0 => 0xffff,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{EthernetAddress, EthernetRepr, IpAddress, Ipv4Address, Ipv4Repr, UdpRepr};
    use vmprobe_proto::{Datagram, Message};

    const HOST: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
    const GUEST: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);

    /// An Ethernet/IPv4/UDP frame carrying `payload`, with or without a UDP checksum.
    fn frame(src_port: u16, dst_port: u16, payload: &[u8], checksum: bool) -> Vec<u8> {
        let udp = UdpRepr { src_port, dst_port };
        let ip = Ipv4Repr {
            src_addr: HOST,
            dst_addr: GUEST,
            next_header: IpProtocol::Udp,
            payload_len: udp.header_len() + payload.len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut buf = vec![0u8; eth.buffer_len() + ip.buffer_len() + ip.payload_len];
        let mut caps = ChecksumCapabilities::default();
        if !checksum {
            caps.udp = smoltcp::phy::Checksum::None;
        }
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.emit(&mut f);
        let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
        ip.emit(&mut p, &caps);
        let mut u = UdpPacket::new_unchecked(p.payload_mut());
        udp.emit(
            &mut u,
            &HOST.into(),
            &GUEST.into(),
            payload.len(),
            |b| b.copy_from_slice(payload),
            &caps,
        );
        buf
    }

    fn udp_checksum_ok(frame: &[u8]) -> bool {
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        udp.verify_checksum(&IpAddress::from(HOST), &IpAddress::from(GUEST))
    }

    fn probe_of(frame: &[u8]) -> Message<'_> {
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        Datagram::parse(udp.payload()).unwrap().message
    }

    fn echo_request_bytes() -> Vec<u8> {
        let d = Datagram {
            sequence: 1,
            flags: 0,
            message: Message::EchoRequest(echo_request::Repr {
                host_send_ns: 42,
                reply_len: 0,
                rx: RxStamps::default(),
                padding: 10,
            }),
        };
        let mut b = vec![0u8; d.buffer_len()];
        d.emit(&mut b).unwrap();
        b
    }

    #[test]
    fn rx_stamp_lands_in_the_request_and_keeps_the_checksum_valid() {
        // Many values, so carries through the one's complement sum are exercised.
        for i in 0..2000u64 {
            let mut f = frame(40000, PROBE_PORT, &echo_request_bytes(), true);
            let stamps = RxStamps {
                irq_entry: (i % 3 != 0).then_some(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                rx_seen: Some(u64::MAX - i * 977),
            };
            assert!(stamp_rx(&mut f, stamps));
            assert!(udp_checksum_ok(&f), "checksum broken for {stamps:?}");
            let Message::EchoRequest(r) = probe_of(&f) else {
                panic!("not an echo request")
            };
            assert_eq!(r.rx, stamps);
            assert_eq!(r.host_send_ns, 42);
        }
    }

    #[test]
    fn tx_stamp_lands_in_the_reply() {
        let d = Datagram {
            sequence: 1,
            flags: 0,
            message: Message::EchoReply(echo_reply::Repr {
                host_send_ns: 42,
                request_len: 58,
                cntfrq_hz: 62_500_000,
                counter: vmprobe_proto::CounterKind::Virtual,
                mode: vmprobe_proto::GuestMode::Irq,
                irq_entry: Some(1),
                rx_seen: Some(2),
                handled: 3,
                tx: TxStamps::default(),
                padding: 0,
            }),
        };
        let mut payload = vec![0u8; d.buffer_len()];
        d.emit(&mut payload).unwrap();
        let mut f = frame(PROBE_PORT, 40000, &payload, true);
        let stamps = TxStamps {
            tx_notify: Some(0xdead_beef),
            prev_notify_ticks: Some(77),
        };
        assert!(stamp_tx(&mut f, stamps));
        assert!(udp_checksum_ok(&f));
        let Message::EchoReply(r) = probe_of(&f) else {
            panic!("not an echo reply")
        };
        assert_eq!(r.tx, stamps);
        assert_eq!((r.irq_entry, r.rx_seen, r.handled), (Some(1), Some(2), 3));
        // A reply is not stamped as a request, nor on the wrong port.
        assert!(!stamp_rx(&mut f, RxStamps::default()));
        let mut wrong_port = frame(7, 40000, &payload, true);
        assert!(!stamp_tx(&mut wrong_port, stamps));
    }

    #[test]
    fn zero_checksum_stays_zero() {
        let mut f = frame(40000, PROBE_PORT, &echo_request_bytes(), false);
        assert!(stamp_rx(
            &mut f,
            RxStamps {
                irq_entry: None,
                rx_seen: Some(5)
            }
        ));
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(UdpPacket::new_checked(ip.payload()).unwrap().checksum(), 0);
    }

    #[test]
    fn other_frames_are_untouched() {
        let req = echo_request_bytes();
        let mut f = frame(40000, PROBE_PORT, &req, true);
        let before = f.clone();
        // Truncated frames at every length: never stamped, never a panic.
        for cut in 0..f.len() {
            let mut t = before[..cut].to_vec();
            let copy = t.clone();
            assert!(!stamp_rx(
                &mut t,
                RxStamps {
                    irq_entry: Some(1),
                    rx_seen: Some(1)
                }
            ));
            assert_eq!(t, copy);
        }
        // Not a probe message on the port (bad magic).
        let mut junk = req.clone();
        junk[0] = b'X';
        let mut g = frame(40000, PROBE_PORT, &junk, true);
        let g0 = g.clone();
        assert!(!stamp_rx(&mut g, RxStamps::default()));
        assert_eq!(g, g0);
        // Not IPv4.
        f[12] = 0x86;
        f[13] = 0xdd;
        assert!(!stamp_rx(&mut f, RxStamps::default()));
    }

    /// The Internet checksum of `data`, computed from scratch.
    fn full_checksum(data: &[u8]) -> u16 {
        let mut sum: u32 = data
            .chunks_exact(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn checksum_adjust_matches_recomputation() {
        let mut state = 0x0123_4567_89ab_cdefu64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5000 {
            let mut data = [0u8; 64];
            data.iter_mut().for_each(|b| *b = next() as u8);
            let before = full_checksum(&data);
            let at = (next() % 28) as usize * 2;
            let len = 2 + (next() % 4) as usize * 2;
            let old = data[at..at + len].to_vec();
            data[at..at + len]
                .iter_mut()
                .for_each(|b| *b = next() as u8);
            let expect = match full_checksum(&data) {
                0 => 0xffff,
                c => c,
            };
            let got = adjust_checksum(before, &old, &data[at..at + len]);
            assert_eq!(got, expect);
        }
        // A computed zero goes out as all ones; an unchanged word leaves the checksum alone.
        assert_eq!(adjust_checksum(0xffff, &[0, 0], &[0, 0]), 0xffff);
        assert_eq!(
            adjust_checksum(0x1234, &[0x00, 0x01], &[0x00, 0x01]),
            0x1234
        );
    }
}
