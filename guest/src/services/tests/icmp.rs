//! ICMP echo, answered by smoltcp's interface itself.

use std::vec;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::icmp;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress};

use super::{Rng, World, GUEST_IP};

#[test]
fn ping_is_answered_with_the_same_payload() {
    let mut w = World::new();
    let buffer =
        || icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 4 * 1500]);
    let mut socket = icmp::Socket::new(buffer(), buffer());
    socket.bind(icmp::Endpoint::Ident(0x1234)).unwrap();
    let h = w.client.sockets.add(socket);
    let caps = ChecksumCapabilities::default();
    let mut rng = Rng(3);
    for (seq_no, size) in [0usize, 1, 56, 1000, 1472].into_iter().enumerate() {
        let mut data = vec![0; size];
        rng.fill(&mut data);
        let request = Icmpv4Repr::EchoRequest {
            ident: 0x1234,
            seq_no: seq_no as u16,
            data: &data,
        };
        let s = w.client.sockets.get_mut::<icmp::Socket>(h);
        let buf = s
            .send(request.buffer_len(), IpAddress::Ipv4(GUEST_IP))
            .unwrap();
        request.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
        w.run_until(100, |w| {
            w.client.sockets.get_mut::<icmp::Socket>(h).can_recv()
        });
        let s = w.client.sockets.get_mut::<icmp::Socket>(h);
        let (bytes, from) = s.recv().unwrap();
        assert_eq!(from, IpAddress::Ipv4(GUEST_IP));
        let reply = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(bytes).unwrap(), &caps).unwrap();
        assert_eq!(
            reply,
            Icmpv4Repr::EchoReply {
                ident: 0x1234,
                seq_no: seq_no as u16,
                data: &data
            }
        );
    }
}
