//! A counting wrapper around the network device.
//!
//! smoltcp drops bad frames silently; the probe must be able to say how many it saw. The wrapper
//! classifies every received frame with header-only checks (no payload checksums: those would
//! double the per-packet work on the latency path, and smoltcp verifies them anyway) and counts
//! transmitted frames and device exhaustion. It never changes or drops a frame itself. It also
//! shows every received frame to the [`Announcer`], which waits for the gateway's ARP.

use smoltcp::phy::{Device, DeviceCapabilities, RxToken, TxToken};
use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, Icmpv4Packet, IpProtocol, Ipv4Packet,
    TcpPacket, UdpPacket,
};

use super::announce::Announcer;
use super::stats::{add, bump, FrameCounters};

/// What a received frame looks like at the header level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameClass {
    /// Well-formed as far as headers go.
    Sound,
    /// Shorter than an Ethernet header.
    Runt,
    /// IPv4 header unusable: truncated, wrong version or IHL, lying total length, bad checksum.
    BadIpv4,
    /// An IPv4 fragment.
    Fragment,
    /// UDP, TCP or ICMP header truncated or inconsistent with its length fields.
    BadTransport,
    /// ARP packet truncated or of an unsupported hardware/protocol pair.
    BadArp,
    /// An EtherType the probe does not speak.
    Unsupported,
}

/// Classify one Ethernet frame by its headers. Never panics, whatever the bytes.
pub fn classify(frame: &[u8]) -> FrameClass {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return FrameClass::Runt;
    };
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => classify_ipv4(eth.payload()),
        EthernetProtocol::Arp => match ArpPacket::new_checked(eth.payload()) {
            Ok(arp) if ArpRepr::parse(&arp).is_ok() => FrameClass::Sound,
            _ => FrameClass::BadArp,
        },
        _ => FrameClass::Unsupported,
    }
}

fn classify_ipv4(bytes: &[u8]) -> FrameClass {
    let Ok(ip) = Ipv4Packet::new_checked(bytes) else {
        return FrameClass::BadIpv4;
    };
    if ip.version() != 4 || !ip.verify_checksum() {
        return FrameClass::BadIpv4;
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        return FrameClass::Fragment;
    }
    let sound = match ip.next_header() {
        IpProtocol::Udp => UdpPacket::new_checked(ip.payload()).is_ok(),
        IpProtocol::Tcp => TcpPacket::new_checked(ip.payload()).is_ok(),
        IpProtocol::Icmp => Icmpv4Packet::new_checked(ip.payload()).is_ok(),
        // Other protocols are smoltcp's to answer (ICMP protocol unreachable).
        _ => true,
    };
    if sound {
        FrameClass::Sound
    } else {
        FrameClass::BadTransport
    }
}

impl FrameCounters {
    fn count_rx(&self, frame: &[u8]) {
        bump(&self.rx);
        add(&self.rx_bytes, frame.len());
        match classify(frame) {
            FrameClass::Sound => {}
            FrameClass::Runt => bump(&self.rx_runt),
            FrameClass::BadIpv4 => bump(&self.rx_bad_ipv4),
            FrameClass::Fragment => bump(&self.rx_fragment),
            FrameClass::BadTransport => bump(&self.rx_bad_transport),
            FrameClass::BadArp => bump(&self.rx_bad_arp),
            FrameClass::Unsupported => bump(&self.rx_unsupported),
        }
    }
}

/// A device that counts into [`FrameCounters`] and otherwise passes everything through.
pub(crate) struct Audited<'a, D: Device + ?Sized> {
    inner: &'a mut D,
    counters: &'a FrameCounters,
    announcer: &'a Announcer,
}

impl<'a, D: Device + ?Sized> Audited<'a, D> {
    pub fn new(inner: &'a mut D, counters: &'a FrameCounters, announcer: &'a Announcer) -> Self {
        Audited {
            inner,
            counters,
            announcer,
        }
    }
}

/// Receive token of [`Audited`].
pub(crate) struct AuditedRx<'a, T> {
    inner: T,
    counters: &'a FrameCounters,
    announcer: &'a Announcer,
}

/// Transmit token of [`Audited`].
pub(crate) struct AuditedTx<'a, T> {
    inner: T,
    counters: &'a FrameCounters,
}

impl<D: Device + ?Sized> Device for Audited<'_, D> {
    type RxToken<'b>
        = AuditedRx<'b, D::RxToken<'b>>
    where
        Self: 'b;
    type TxToken<'b>
        = AuditedTx<'b, D::TxToken<'b>>
    where
        Self: 'b;

    fn receive(&mut self, timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (counters, announcer) = (self.counters, self.announcer);
        let (rx, tx) = self.inner.receive(timestamp)?;
        Some((
            AuditedRx {
                inner: rx,
                counters,
                announcer,
            },
            AuditedTx {
                inner: tx,
                counters,
            },
        ))
    }

    fn transmit(&mut self, timestamp: Instant) -> Option<Self::TxToken<'_>> {
        let counters = self.counters;
        match self.inner.transmit(timestamp) {
            Some(tx) => Some(AuditedTx {
                inner: tx,
                counters,
            }),
            None => {
                bump(&counters.tx_exhausted);
                None
            }
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}

impl<T: RxToken> RxToken for AuditedRx<'_, T> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let (counters, announcer) = (self.counters, self.announcer);
        self.inner.consume(|frame| {
            counters.count_rx(frame);
            announcer.observe(frame);
            f(frame)
        })
    }

    fn meta(&self) -> smoltcp::phy::PacketMeta {
        self.inner.meta()
    }
}

impl<T: TxToken> TxToken for AuditedTx<'_, T> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        bump(&self.counters.tx);
        add(&self.counters.tx_bytes, len);
        self.inner.consume(len, f)
    }

    fn set_meta(&mut self, meta: smoltcp::phy::PacketMeta) {
        self.inner.set_meta(meta)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn frame(ethertype: u16, payload: &[u8]) -> std::vec::Vec<u8> {
        let mut f = std::vec![0u8; 14];
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn ipv4(proto: u8, payload: &[u8]) -> std::vec::Vec<u8> {
        let total = 20 + payload.len();
        let mut h = std::vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            proto
        ];
        h.extend_from_slice(&[0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        let mut p = Ipv4Packet::new_unchecked(&mut h[..]);
        p.fill_checksum();
        h.extend_from_slice(payload);
        h
    }

    #[test]
    fn classifies_headers() {
        assert_eq!(classify(&[0; 13]), FrameClass::Runt);
        assert_eq!(classify(&frame(0x86dd, &[0; 40])), FrameClass::Unsupported);
        assert_eq!(classify(&frame(0x0806, &[0; 10])), FrameClass::BadArp);
        let udp = [0x30, 0x39, 0, 7, 0, 8, 0, 0];
        assert_eq!(classify(&frame(0x0800, &ipv4(17, &udp))), FrameClass::Sound);
        // UDP length field larger than the datagram.
        let lying = [0x30, 0x39, 0, 7, 0, 80, 0, 0];
        assert_eq!(
            classify(&frame(0x0800, &ipv4(17, &lying))),
            FrameClass::BadTransport
        );
        let mut bad_sum = ipv4(17, &udp);
        bad_sum[10] ^= 1;
        assert_eq!(classify(&frame(0x0800, &bad_sum)), FrameClass::BadIpv4);
        let mut fragment = ipv4(17, &udp);
        fragment[6] = 0x20; // more fragments
        let mut p = Ipv4Packet::new_unchecked(&mut fragment[..]);
        p.fill_checksum();
        assert_eq!(classify(&frame(0x0800, &fragment)), FrameClass::Fragment);
        assert_eq!(
            classify(&frame(0x0800, &ipv4(6, &[0; 10]))),
            FrameClass::BadTransport
        );
    }
}
