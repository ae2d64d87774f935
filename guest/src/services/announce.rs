//! Making the probe reachable the moment it has an address.
//!
//! A peer that sent to the probe before it could receive asked for its MAC with an ARP request
//! that was lost, and now waits for its own retransmit timer (a second on QEMU's user network
//! and on a Linux host) before it delivers anything. So once the probe has an address it
//! announces it with a gratuitous ARP, which every such peer takes to fill its waiting entry,
//! and asks its gateway for its MAC, so that its first reply to the gateway (everything on
//! QEMU's user network comes from there) need not wait for a resolution either. Only then is
//! the probe ready.
//!
//! The state is in cells: the receive path watches for the gateway's answer while smoltcp
//! holds the device.

use core::cell::Cell;

use smoltcp::phy::{Device, TxToken};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Ipv4Address, Ipv4Cidr,
};

/// How often the gateway is asked again while it has not answered.
pub const ASK_INTERVAL: Duration = Duration::from_millis(100);

/// How long the probe waits for its gateway before it declares itself ready without it.
pub const GATEWAY_PATIENCE: Duration = Duration::from_secs(1);

/// What became of the gateway when the announcement finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gateway {
    /// No gateway is configured.
    None,
    /// The gateway answered: its MAC is in smoltcp's neighbour cache.
    Resolved(Ipv4Address),
    /// The gateway did not answer within [`GATEWAY_PATIENCE`].
    Silent(Ipv4Address),
}

/// A finished announcement: the probe is reachable at `address`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announced {
    /// The announced address.
    pub address: Ipv4Cidr,
    /// The gateway's answer.
    pub gateway: Gateway,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Progress {
    address: Ipv4Cidr,
    gateway: Option<Ipv4Address>,
    /// The gratuitous ARP has been handed to the device.
    gratuitous_sent: bool,
    /// The gateway's ARP for the probe's address has been seen.
    gateway_heard: bool,
    /// When to ask the gateway (again).
    next_ask: Instant,
    /// When to stop waiting for the gateway.
    give_up: Instant,
}

impl Progress {
    fn finished(&self, now: Instant) -> Option<Announced> {
        if !self.gratuitous_sent {
            return None;
        }
        let gateway = match self.gateway {
            None => Gateway::None,
            Some(gw) if self.gateway_heard => Gateway::Resolved(gw),
            Some(gw) if now >= self.give_up => Gateway::Silent(gw),
            Some(_) => return None,
        };
        Some(Announced {
            address: self.address,
            gateway,
        })
    }
}

/// Announces one address at a time; a new address (a DHCP lease) starts over.
pub(crate) struct Announcer {
    mac: EthernetAddress,
    progress: Cell<Option<Progress>>,
    /// Sticky once the announcement of the current address has finished.
    done: Cell<Option<Announced>>,
}

impl Announcer {
    pub fn new(mac: EthernetAddress) -> Self {
        Announcer {
            mac,
            progress: Cell::new(None),
            done: Cell::new(None),
        }
    }

    /// Track the interface's current address and gateway: a change starts a new announcement,
    /// none stops it.
    pub fn follow(&self, address: Option<Ipv4Cidr>, gateway: Option<Ipv4Address>, now: Instant) {
        let current = self.progress.get();
        let same = match (current, address) {
            (Some(p), Some(a)) => p.address == a && p.gateway == gateway,
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        self.done.set(None);
        self.progress.set(address.map(|address| Progress {
            address,
            gateway,
            gratuitous_sent: false,
            gateway_heard: false,
            next_ask: now,
            give_up: now + GATEWAY_PATIENCE,
        }));
    }

    /// A received frame: notes the gateway's ARP aimed at the probe's address, the frames
    /// from which smoltcp fills its neighbour cache.
    pub fn observe(&self, frame: &[u8]) {
        let Some(mut p) = self.progress.get() else {
            return;
        };
        let Some(gateway) = p.gateway else { return };
        if p.gateway_heard {
            return;
        }
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        if eth.ethertype() != EthernetProtocol::Arp {
            return;
        }
        let Ok(packet) = ArpPacket::new_checked(eth.payload()) else {
            return;
        };
        if let Ok(ArpRepr::EthernetIpv4 {
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) = ArpRepr::parse(&packet)
        {
            if source_protocol_addr == gateway && target_protocol_addr == p.address.address() {
                p.gateway_heard = true;
                self.progress.set(Some(p));
            }
        }
    }

    /// Send what is due: the gratuitous ARP once, the request to the gateway every
    /// [`ASK_INTERVAL`] until it answers or [`GATEWAY_PATIENCE`] runs out. True if a frame
    /// went out.
    pub fn transmit<D: Device + ?Sized>(&self, device: &mut D, now: Instant) -> bool {
        let Some(mut p) = self.progress.get() else {
            return false;
        };
        if self.done.get().is_some() {
            return false;
        }
        let ours = p.address.address();
        let mut sent = false;
        if !p.gratuitous_sent && self.send_request(device, now, ours, ours) {
            p.gratuitous_sent = true;
            sent = true;
        }
        if let Some(gw) = p.gateway {
            if !p.gateway_heard
                && now >= p.next_ask
                && now < p.give_up
                && self.send_request(device, now, ours, gw)
            {
                p.next_ask = now + ASK_INTERVAL;
                sent = true;
            }
        }
        self.progress.set(Some(p));
        self.done.set(p.finished(now));
        sent
    }

    /// The finished announcement of the current address, if it has finished.
    pub fn announced(&self, now: Instant) -> Option<Announced> {
        if self.done.get().is_none() {
            self.done
                .set(self.progress.get().and_then(|p| p.finished(now)));
        }
        self.done.get()
    }

    /// When [`Announcer::transmit`] next has something to do, if an announcement is under way.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.done.get().is_some() {
            return None;
        }
        let p = self.progress.get()?;
        match p.gateway {
            _ if !p.gratuitous_sent => Some(Instant::ZERO),
            Some(_) if !p.gateway_heard => Some(p.next_ask.min(p.give_up)),
            _ => None,
        }
    }

    /// Broadcast an ARP request for `target` from `sender` (equal: a gratuitous ARP). False if
    /// the device had no transmit buffer.
    fn send_request<D: Device + ?Sized>(
        &self,
        device: &mut D,
        now: Instant,
        sender: Ipv4Address,
        target: Ipv4Address,
    ) -> bool {
        let Some(tx) = device.transmit(now) else {
            return false;
        };
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: self.mac,
            source_protocol_addr: sender,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        let eth = EthernetRepr {
            src_addr: self.mac,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EthernetProtocol::Arp,
        };
        tx.consume(eth.buffer_len() + arp.buffer_len(), |buf| {
            let mut frame = EthernetFrame::new_unchecked(buf);
            eth.emit(&mut frame);
            arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
        });
        true
    }
}
