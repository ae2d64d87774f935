//! The announcement before ready: a gratuitous ARP, then the gateway's MAC, then ready.

use std::vec::Vec;

use smoltcp::time::Duration;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, IpAddress,
    Ipv4Address, Ipv4Cidr,
};

use super::{World, CLIENT_IP, GUEST_IP, GUEST_MAC};
use crate::config::NetConfig;
use crate::services::announce::{Announced, Gateway, ASK_INTERVAL, GATEWAY_PATIENCE};

/// (sender, target) of every broadcast ARP request among `frames`, checking that each is a
/// well-formed request from the guest's MAC.
fn requests(frames: &[Vec<u8>]) -> Vec<(Ipv4Address, Ipv4Address)> {
    frames
        .iter()
        .filter_map(|f| {
            let eth = EthernetFrame::new_checked(&f[..]).ok()?;
            if eth.ethertype() != EthernetProtocol::Arp {
                return None;
            }
            assert_eq!(eth.dst_addr(), EthernetAddress::BROADCAST);
            assert_eq!(eth.src_addr(), GUEST_MAC);
            let repr = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()?;
            let ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_hardware_addr,
                source_protocol_addr,
                target_protocol_addr,
                ..
            } = repr
            else {
                return None;
            };
            assert_eq!(source_hardware_addr, GUEST_MAC);
            Some((source_protocol_addr, target_protocol_addr))
        })
        .collect()
}

/// Poll the guest once and take what it sent, without delivering it.
fn poll_and_take(w: &mut World) -> Vec<Vec<u8>> {
    while w.guest.poll(w.now, &mut w.guest_nic, &mut w.platform) {}
    w.guest_nic.tx.drain(..).collect()
}

#[test]
fn static_address_is_announced_and_gateway_resolved_before_ready() {
    let mut w = World::new();
    assert_eq!(w.guest.announced(w.now), None, "ready before announcing");
    let sent = poll_and_take(&mut w);
    assert_eq!(
        requests(&sent),
        [(GUEST_IP, GUEST_IP), (GUEST_IP, CLIENT_IP)],
        "a gratuitous ARP, then the gateway's MAC asked for"
    );
    assert_eq!(
        w.guest.announced(w.now),
        None,
        "ready before the gateway answered"
    );

    // The gateway (the client) answers; the guest is ready and knows the gateway's MAC: its
    // first reply to the gateway goes out at once, with no ARP of its own.
    w.client.nic.rx.extend(sent);
    w.poll_client();
    assert!(poll_and_take(&mut w).is_empty());
    assert_eq!(
        w.guest.announced(w.now),
        Some(Announced {
            address: Ipv4Cidr::new(GUEST_IP, 24),
            gateway: Gateway::Resolved(CLIENT_IP)
        })
    );
    assert_eq!(w.guest.poll_delay(w.now), None, "nothing left to do");
    let request = super::udp_frame((CLIENT_IP, 40000), (GUEST_IP, 7), 5, |b| {
        b.copy_from_slice(b"first")
    });
    w.guest_nic.rx.push_back(request);
    let sent = poll_and_take(&mut w);
    assert_eq!(sent.len(), 1, "the echo and nothing else");
    assert_eq!(
        EthernetFrame::new_checked(&sent[0][..])
            .unwrap()
            .ethertype(),
        EthernetProtocol::Ipv4
    );
}

#[test]
fn without_a_gateway_ready_follows_the_gratuitous_arp() {
    let config = NetConfig {
        gw: None,
        ..super::static_config()
    };
    let mut w = World::with_config(&config);
    let sent = poll_and_take(&mut w);
    assert_eq!(requests(&sent), [(GUEST_IP, GUEST_IP)]);
    assert_eq!(
        w.guest.announced(w.now).map(|a| a.gateway),
        Some(Gateway::None)
    );
}

#[test]
fn a_silent_gateway_is_asked_again_then_given_up() {
    let mut w = World::new();
    let start = w.now;
    let mut asked = 0;
    let mut wakes = 0;
    while w.guest.announced(w.now).is_none() {
        asked += requests(&poll_and_take(&mut w))
            .iter()
            .filter(|r| r.1 == CLIENT_IP)
            .count();
        // The guest sleeps until its next retry: the announcement sets the poll delay.
        let delay = w.guest.poll_delay(w.now).expect("a retry timer");
        assert!(delay <= ASK_INTERVAL, "{delay}");
        w.now += delay;
        wakes += 1;
        assert!(wakes < 100, "never gave up");
    }
    let waited = w.now - start;
    assert!(
        waited >= GATEWAY_PATIENCE && waited <= GATEWAY_PATIENCE + ASK_INTERVAL,
        "{waited}"
    );
    let expected = (GATEWAY_PATIENCE.total_millis() / ASK_INTERVAL.total_millis()) as usize;
    assert_eq!(asked, expected);
    assert_eq!(
        w.guest.announced(w.now).map(|a| a.gateway),
        Some(Gateway::Silent(CLIENT_IP))
    );
    assert!(poll_and_take(&mut w).is_empty(), "still asking after ready");

    // The services answer all the same: smoltcp resolves the client itself.
    let client = w.udp_socket(40100);
    w.udp(client)
        .send_slice(b"late", (IpAddress::Ipv4(GUEST_IP), 7))
        .unwrap();
    w.run_until(100, |w| w.udp(client).can_recv());
}

#[test]
fn only_the_gateways_arp_for_our_address_counts() {
    let mut w = World::new();
    poll_and_take(&mut w);
    // The gateway asking for someone else, and someone else asking for us: not the answer.
    for (sender, target) in [
        (CLIENT_IP, Ipv4Address::new(10, 0, 2, 99)),
        (Ipv4Address::new(10, 0, 2, 7), GUEST_IP),
    ] {
        w.guest_nic.rx.push_back(arp_reply(sender, target));
        poll_and_take(&mut w);
        assert_eq!(w.guest.announced(w.now), None, "{sender} -> {target}");
    }
    w.guest_nic.rx.push_back(arp_reply(CLIENT_IP, GUEST_IP));
    poll_and_take(&mut w);
    assert_eq!(
        w.guest.announced(w.now).map(|a| a.gateway),
        Some(Gateway::Resolved(CLIENT_IP))
    );
}

fn arp_reply(sender: Ipv4Address, target: Ipv4Address) -> Vec<u8> {
    let mac = EthernetAddress([0x02, 0, 0, 0, 0, 0x77]);
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: mac,
        source_protocol_addr: sender,
        target_hardware_addr: GUEST_MAC,
        target_protocol_addr: target,
    };
    let mut frame = std::vec![0u8; 14 + arp.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.set_src_addr(mac);
    eth.set_dst_addr(GUEST_MAC);
    eth.set_ethertype(EthernetProtocol::Arp);
    arp.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    frame
}

#[test]
fn a_dhcp_lease_is_announced_with_its_router() {
    let config = NetConfig {
        dhcp: true,
        ..super::static_config()
    };
    let mut w = World::with_config(&config);
    let mut server = super::dhcp::Server::default();
    super::dhcp::run_with_server(&mut w, Some(&mut server), Duration::from_millis(200));
    assert!(w.guest.ipv4().is_some(), "no lease");
    // The lease's router (the scripted server, at the client's address) is asked for; the
    // guest is ready once it answers.
    assert_eq!(w.guest.announced(w.now), None);
    w.guest_nic.rx.push_back(arp_reply(CLIENT_IP, GUEST_IP));
    poll_and_take(&mut w);
    assert_eq!(
        w.guest.announced(w.now),
        Some(Announced {
            address: Ipv4Cidr::new(GUEST_IP, 24),
            gateway: Gateway::Resolved(CLIENT_IP)
        })
    );
}
