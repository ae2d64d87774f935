//! DHCP against a small scripted server that answers the guest's frames on the wire.

use std::vec::Vec;

use smoltcp::time::Duration;
use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    IpAddress, IpProtocol, Ipv4Address, Ipv4Cidr, Ipv4Packet, UdpPacket,
};

use super::{World, CLIENT_IP, CLIENT_MAC, GUEST_IP};
use crate::config::NetConfig;

const LEASE_SECS: u32 = 120;

/// What the scripted server saw and answered.
#[derive(Default)]
pub(super) struct Server {
    discovers: usize,
    requests: usize,
}

impl Server {
    /// Answer DHCP frames among `frames`; returns the replies.
    fn answer(&mut self, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut replies = Vec::new();
        for frame in frames {
            let Some(request) = parse(frame) else {
                continue;
            };
            let message_type = match request.0 {
                DhcpMessageType::Discover => {
                    self.discovers += 1;
                    DhcpMessageType::Offer
                }
                DhcpMessageType::Request => {
                    self.requests += 1;
                    DhcpMessageType::Ack
                }
                _ => continue,
            };
            replies.push(reply(message_type, request.1, request.2));
        }
        replies
    }
}

/// (message type, transaction id, client MAC) of a DHCP client message in an Ethernet frame.
fn parse(frame: &[u8]) -> Option<(DhcpMessageType, u32, EthernetAddress)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Udp {
        return None;
    }
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    if udp.dst_port() != 67 {
        return None;
    }
    let dhcp = DhcpPacket::new_checked(udp.payload()).ok()?;
    let repr = DhcpRepr::parse(&dhcp).ok()?;
    Some((
        repr.message_type,
        repr.transaction_id,
        repr.client_hardware_address,
    ))
}

fn reply(message_type: DhcpMessageType, transaction_id: u32, client: EthernetAddress) -> Vec<u8> {
    let dhcp = DhcpRepr {
        message_type,
        transaction_id,
        secs: 0,
        client_hardware_address: client,
        client_ip: Ipv4Address::UNSPECIFIED,
        your_ip: GUEST_IP,
        server_ip: CLIENT_IP,
        router: Some(CLIENT_IP),
        subnet_mask: Some(Ipv4Address::new(255, 255, 255, 0)),
        relay_agent_ip: Ipv4Address::UNSPECIFIED,
        broadcast: false,
        requested_ip: None,
        client_identifier: None,
        server_identifier: Some(CLIENT_IP),
        parameter_request_list: None,
        dns_servers: None,
        max_size: None,
        lease_duration: Some(LEASE_SECS),
        renew_duration: None,
        rebind_duration: None,
        additional_options: &[],
    };
    super::udp_frame(
        (CLIENT_IP, 67),
        (Ipv4Address::BROADCAST, 68),
        dhcp.buffer_len(),
        |buf| dhcp.emit(&mut DhcpPacket::new_unchecked(buf)).unwrap(),
    )
}

/// Poll the guest with the scripted server on the wire (and no client) for `span`.
pub(super) fn run_with_server(w: &mut World, server: Option<&mut Server>, span: Duration) {
    let mut server = server;
    let end = w.now + span;
    while w.now < end {
        while w.guest.poll(w.now, &mut w.guest_nic, &mut w.platform) {}
        let frames: Vec<_> = w.guest_nic.tx.drain(..).collect();
        if let Some(server) = server.as_deref_mut() {
            let replies = server.answer(&frames);
            if !replies.is_empty() {
                // Answer at once, as a server on the same wire would.
                w.guest_nic.rx.extend(replies);
                continue;
            }
        }
        let delay = w
            .guest
            .poll_delay(w.now)
            .unwrap_or(span)
            .clamp(Duration::from_millis(1), Duration::from_secs(1));
        w.now = (w.now + delay).min(end);
    }
}

#[test]
fn dhcp_lease_configures_the_address_and_services_answer() {
    let config = NetConfig {
        dhcp: true,
        ..super::static_config()
    };
    let mut w = World::with_config(&config);
    assert_eq!(w.guest.ipv4(), None, "no address before the lease");
    let mut server = Server::default();
    run_with_server(&mut w, Some(&mut server), Duration::from_secs(2));
    assert_eq!((server.discovers, server.requests), (1, 1));
    assert_eq!(w.guest.ipv4(), Some(Ipv4Cidr::new(GUEST_IP, 24)));
    assert_eq!(w.guest.stats().dhcp.configured, 1);

    // Services answer on the leased address.
    let client = w.udp_socket(41000);
    w.udp(client)
        .send_slice(b"leased", (IpAddress::Ipv4(GUEST_IP), 7))
        .unwrap();
    w.run_until(100, |w| w.udp(client).can_recv());
    assert_eq!(w.udp(client).recv().unwrap().0, b"leased");

    assert!(
        answers_off_subnet(&mut w),
        "no default route from the lease"
    );

    // The server goes away: renewals fail and the lease runs out.
    run_with_server(&mut w, None, Duration::from_secs(LEASE_SECS as u64 + 10));
    assert_eq!(w.guest.ipv4(), None);
    assert_eq!(w.guest.stats().dhcp.deconfigured, 1);

    // It comes back: the guest finds it again.
    run_with_server(&mut w, Some(&mut server), Duration::from_secs(30));
    assert_eq!(w.guest.ipv4(), Some(Ipv4Cidr::new(GUEST_IP, 24)));
}

/// Does the guest answer a request from another subnet, sending the reply through its default
/// route (the client's on-link address 10.0.2.2, whose MAC it must already know)?
fn answers_off_subnet(w: &mut World) -> bool {
    const FAR: Ipv4Address = Ipv4Address::new(192, 168, 77, 5);
    let request = super::udp_frame((FAR, 41500), (GUEST_IP, 7), 8, |b| {
        b.copy_from_slice(b"far away")
    });
    w.guest_nic.rx.push_back(request);
    while w.guest.poll(w.now, &mut w.guest_nic, &mut w.platform) {}
    let answered = w.guest_nic.tx.iter().any(|f| {
        let Ok(eth) = EthernetFrame::new_checked(&f[..]) else {
            return false;
        };
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
            return false;
        };
        let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
            return false;
        };
        eth.dst_addr() == CLIENT_MAC && ip.dst_addr() == FAR && udp.payload() == b"far away"
    });
    w.guest_nic.tx.clear();
    answered
}

/// One UDP echo from the client, so that both sides know each other's MAC.
fn warm_up(w: &mut World) {
    let h = w.udp_socket(41001);
    w.udp(h)
        .send_slice(b"warm", (IpAddress::Ipv4(GUEST_IP), 7))
        .unwrap();
    w.run_until(100, |w| w.udp(h).can_recv());
    w.client.sockets.remove(h);
}

#[test]
fn static_address_and_gateway_are_there_at_once() {
    let mut w = World::new();
    assert_eq!(w.guest.ipv4(), Some(Ipv4Cidr::new(GUEST_IP, 24)));
    warm_up(&mut w);
    assert!(answers_off_subnet(&mut w));
    let no_gateway = NetConfig {
        gw: None,
        ..super::static_config()
    };
    let mut w = World::with_config(&no_gateway);
    warm_up(&mut w);
    assert!(
        !answers_off_subnet(&mut w),
        "answered off-subnet without a gateway"
    );
}
