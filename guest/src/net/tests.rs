//! The virtio-net glue against a fake device: interrupt suppression that really reaches the
//! rings, transmit that never waits, receive buffers that come back, exact bytes both ways.

use super::fake::{
    events, Event, FakeDoorbells, FakeNet, FakeTransport, NoDoorbells, TestCounter, TestHal, MAC,
};
use super::notify::RING_EVENT_IDX;
use super::phy::{RX_BUFFERS, TX_BUFFERS};
use super::VirtioPhy;
use crate::config::Mode;
use smoltcp::phy::{Device, RxToken, TxToken};
use smoltcp::time::Instant;
use std::cell::RefCell;
use std::rc::Rc;
use virtio_drivers::device::net::VirtIONetRaw;

type Phy = VirtioPhy<TestHal, FakeTransport, TestCounter, FakeDoorbells>;

fn phy(mode: Mode) -> (Phy, Rc<RefCell<FakeNet>>) {
    let net = Rc::new(RefCell::new(FakeNet::default()));
    let doorbells = FakeDoorbells(net.clone());
    // SAFETY: TestHal maps DMA memory at identical addresses.
    let phy = unsafe { Phy::new(FakeTransport(net.clone()), doorbells, None, mode) }.unwrap();
    (phy, net)
}

fn send<D: super::Doorbells>(
    phy: &mut VirtioPhy<TestHal, FakeTransport, TestCounter, D>,
    frame: &[u8],
) -> bool {
    match phy.transmit(Instant::ZERO) {
        Some(token) => {
            token.consume(frame.len(), |buf| buf.copy_from_slice(frame));
            true
        }
        None => false,
    }
}

#[test]
fn event_idx_makes_virtio_drivers_ignore_disable_interrupts() {
    // The defect worked around: with EVENT_IDX negotiated, disable_interrupts writes nothing.
    let net = Rc::new(RefCell::new(FakeNet::default()));
    let mut raw = VirtIONetRaw::<TestHal, _, 16>::new(FakeTransport(net.clone())).unwrap();
    raw.disable_interrupts();
    let net = net.borrow();
    assert_ne!(net.driver_features & RING_EVENT_IDX, 0);
    assert_eq!(
        net.queues[0].avail_flags(),
        0,
        "the device would still interrupt"
    );
}

#[test]
fn poll_mode_suppresses_every_device_interrupt() {
    let (phy, net) = phy(Mode::Poll);
    let net = net.borrow();
    assert_eq!(
        net.driver_features & RING_EVENT_IDX,
        0,
        "EVENT_IDX negotiated"
    );
    assert_ne!(
        net.driver_features & (1 << 32),
        0,
        "VERSION_1 not negotiated"
    );
    assert_eq!(
        net.queues[0].avail_flags(),
        1,
        "receive queue may interrupt"
    );
    assert_eq!(
        net.queues[1].avail_flags(),
        1,
        "transmit queue may interrupt"
    );
    assert_eq!(phy.interrupts_suppressed(), (Some(true), Some(true)));
}

#[test]
fn irq_mode_interrupts_for_receive_only() {
    let (phy, net) = phy(Mode::Irq);
    assert_eq!(net.borrow().queues[0].avail_flags(), 0);
    assert_eq!(net.borrow().queues[1].avail_flags(), 1);
    assert_eq!(phy.interrupts_suppressed(), (Some(false), Some(true)));
    assert_eq!(phy.mac().0, MAC);
}

#[test]
fn transmit_never_waits_for_the_device() {
    let (mut phy, net) = phy(Mode::Poll);
    let frames: Vec<Vec<u8>> = (0..TX_BUFFERS)
        .map(|i| vec![i as u8; 60 + i * 100])
        .collect();
    for f in &frames {
        assert!(send(&mut phy, f));
    }
    // The device has not consumed anything: no buffer free, and transmit says so at once.
    assert!(phy.transmit(Instant::ZERO).is_none());
    assert_eq!(net.borrow_mut().take_transmitted(), frames);
    assert_eq!(net.borrow().queues[1].notifies, TX_BUFFERS);
    // Completed buffers are reclaimed on the next transmit.
    assert!(send(&mut phy, &[0xab; 1514]));
    assert_eq!(net.borrow_mut().take_transmitted(), vec![vec![0xab; 1514]]);
    let stamps = *phy.stamps();
    assert_eq!(stamps.tx_frames, TX_BUFFERS as u64 + 1);
    assert_eq!(
        stamps.notify_ticks, 10,
        "one counter step around the notify"
    );
    assert!(stamps.tx_notify > 0);
}

#[test]
fn received_frames_arrive_exactly_and_buffers_return() {
    let (mut phy, net) = phy(Mode::Irq);
    // Every posted buffer can be filled, then the device has none.
    for i in 0..RX_BUFFERS {
        assert!(net.borrow_mut().deliver(&vec![i as u8; 64 + i]));
    }
    assert!(!net.borrow_mut().deliver(&[0; 64]));
    for i in 0..RX_BUFFERS {
        let (rx, _tx) = phy.receive(Instant::ZERO).expect("frame");
        rx.consume(|f| assert_eq!(f, &vec![i as u8; 64 + i][..]));
    }
    assert!(phy.receive(Instant::ZERO).is_none());
    // The buffers were posted again.
    for _ in 0..RX_BUFFERS {
        assert!(net.borrow_mut().deliver(&[0x55; 1514]));
    }
    assert_eq!(phy.stamps().rx_frames, RX_BUFFERS as u64);
    assert!(phy.stamps().rx_seen > 0);
}

#[test]
fn a_frame_waits_in_the_ring_while_no_reply_buffer_is_free() {
    let (mut phy, net) = phy(Mode::Poll);
    for _ in 0..TX_BUFFERS {
        assert!(send(&mut phy, &[1; 60]));
    }
    assert!(net.borrow_mut().deliver(&[7; 60]));
    assert!(
        phy.receive(Instant::ZERO).is_none(),
        "took a frame it could not answer"
    );
    net.borrow_mut().take_transmitted();
    let (rx, tx) = phy
        .receive(Instant::ZERO)
        .expect("frame after buffers came back");
    let request = rx.consume(|f| f.to_vec());
    assert_eq!(request, vec![7; 60]);
    tx.consume(request.len(), |buf| buf.copy_from_slice(&request));
    assert_eq!(net.borrow_mut().take_transmitted(), vec![vec![7; 60]]);
}

#[test]
fn a_starved_sender_asks_for_a_transmit_interrupt_before_sleeping() {
    let (mut phy, net) = phy(Mode::Irq);
    assert!(send(&mut phy, &[1; 60]));
    // Buffers to spare: sleep without transmit interrupts.
    assert!(phy.prepare_to_sleep());
    assert_eq!(net.borrow().queues[1].avail_flags(), 1);
    for _ in 1..TX_BUFFERS {
        assert!(send(&mut phy, &[2; 60]));
    }
    // All in flight: the device must wake the probe when one comes back.
    assert!(phy.prepare_to_sleep());
    assert_eq!(net.borrow().queues[1].avail_flags(), 0);
    phy.woke();
    assert_eq!(net.borrow().queues[1].avail_flags(), 1);
    // A completion that raced with going to sleep: poll instead.
    net.borrow_mut().take_transmitted();
    assert!(!phy.prepare_to_sleep());
}

/// An Ethernet/IPv4/UDP frame with a valid UDP checksum carrying a probe `message`.
fn probe_frame(src_port: u16, dst_port: u16, message: vmprobe_proto::Message<'_>) -> Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Address,
        Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
    };
    let d = vmprobe_proto::Datagram {
        sequence: 1,
        flags: 0,
        message,
    };
    let mut payload = vec![0u8; d.buffer_len()];
    d.emit(&mut payload).unwrap();
    let (a, b) = (
        Ipv4Address::new(10, 0, 2, 2),
        Ipv4Address::new(10, 0, 2, 15),
    );
    let udp = UdpRepr { src_port, dst_port };
    let ip = Ipv4Repr {
        src_addr: a,
        dst_addr: b,
        next_header: IpProtocol::Udp,
        payload_len: 8 + payload.len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
        dst_addr: EthernetAddress(MAC),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut buf = vec![0u8; 14 + 20 + ip.payload_len];
    let caps = ChecksumCapabilities::default();
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut f);
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &caps);
    let mut u = UdpPacket::new_unchecked(p.payload_mut());
    udp.emit(
        &mut u,
        &a.into(),
        &b.into(),
        payload.len(),
        |x| x.copy_from_slice(&payload),
        &caps,
    );
    buf
}

fn probe_of(frame: &[u8]) -> vmprobe_proto::Message<'_> {
    vmprobe_proto::Datagram::parse(&frame[42..])
        .unwrap()
        .message
}

#[test]
fn probe_frames_carry_their_arrival_and_departure_readings() {
    use vmprobe_proto::{echo_reply, echo_request, CounterKind, GuestMode, Message};
    let (mut phy, net) = phy(Mode::Irq);
    let request = probe_frame(
        40000,
        vmprobe_proto::PROBE_PORT,
        Message::EchoRequest(echo_request::Repr {
            host_send_ns: 1,
            reply_len: 0,
            rx: Default::default(),
            padding: 0,
        }),
    );
    let other = probe_frame(40000, 7, probe_of(&request));

    // Two frames waiting when the interrupt came: both carry its entry time; a third that
    // arrives while they are being taken does not.
    assert!(net.borrow_mut().deliver(&request));
    assert!(net.borrow_mut().deliver(&request));
    phy.interrupted_at(5);
    for i in 0..2 {
        if i == 1 {
            assert!(net.borrow_mut().deliver(&request));
        }
        let (rx, _tx) = phy.receive(Instant::ZERO).unwrap();
        rx.consume(|f| {
            let Message::EchoRequest(r) = probe_of(f) else {
                panic!()
            };
            assert_eq!(r.rx.irq_entry, Some(5));
            assert!(r.rx.rx_seen.unwrap() > 5);
        });
    }
    let (rx, _tx) = phy.receive(Instant::ZERO).unwrap();
    rx.consume(|f| {
        let Message::EchoRequest(r) = probe_of(f) else {
            panic!()
        };
        assert_eq!(r.rx.irq_entry, None, "arrived after the interrupt");
    });
    // The ring ran dry: later frames are found by polling, with no interrupt entry.
    assert!(phy.receive(Instant::ZERO).is_none());
    assert!(net.borrow_mut().deliver(&request));
    assert!(net.borrow_mut().deliver(&other));
    let (rx, _tx) = phy.receive(Instant::ZERO).unwrap();
    rx.consume(|f| {
        let Message::EchoRequest(r) = probe_of(f) else {
            panic!()
        };
        assert_eq!(r.rx.irq_entry, None);
    });
    // Not to the probe port: untouched.
    let (rx, _tx) = phy.receive(Instant::ZERO).unwrap();
    rx.consume(|f| assert_eq!(f, &other[..]));
    assert_eq!(phy.stamps().probe_rx_stamped, 4);

    // Replies: stamped just before their notify, with the previous notify's duration.
    let reply = probe_frame(
        vmprobe_proto::PROBE_PORT,
        40000,
        Message::EchoReply(echo_reply::Repr {
            host_send_ns: 1,
            request_len: 48,
            cntfrq_hz: 1,
            counter: CounterKind::Virtual,
            mode: GuestMode::Irq,
            irq_entry: None,
            rx_seen: Some(1),
            handled: 2,
            tx: Default::default(),
            padding: 0,
        }),
    );
    assert!(send(&mut phy, &reply));
    assert!(send(&mut phy, &reply));
    let sent = net.borrow_mut().take_transmitted();
    let tx = |f: &[u8]| match probe_of(f) {
        Message::EchoReply(r) => r.tx,
        _ => panic!(),
    };
    let (first, second) = (tx(&sent[0]), tx(&sent[1]));
    assert!(first.tx_notify.unwrap() < second.tx_notify.unwrap());
    // The fake counter steps by 10 per read: one step across each doorbell write.
    assert_eq!(second.prev_notify_ticks, Some(10));
    assert_eq!(phy.stamps().probe_tx_stamped, 2);
    assert_eq!(phy.tx_notifies(), 2);
}

#[test]
fn the_notify_window_holds_one_doorbell_store() {
    let (mut phy, net) = phy(Mode::Irq);
    events();
    assert!(send(&mut phy, &[3; 60]));
    let log = events();
    // The last two counter readings are the transport's, around the notify.
    let clocks: Vec<usize> = (0..log.len()).filter(|&i| log[i] == Event::Clock).collect();
    let [.., start, end] = clocks[..] else {
        panic!("no notify window in {log:?}")
    };
    assert_eq!(log[start + 1..end], [Event::Doorbell(1)], "log: {log:?}");
    assert!(
        !log.iter().any(|e| matches!(e, Event::TransportNotify(_))),
        "the transport's own notify ran: {log:?}"
    );
    assert_eq!(net.borrow().queues[1].notifies, 1);
    assert_eq!(phy.stamps().notify_ticks, 10);
}

#[test]
fn without_a_doorbell_the_transport_notifies_and_no_duration_is_claimed() {
    let net = Rc::new(RefCell::new(FakeNet::default()));
    // SAFETY: TestHal maps DMA memory at identical addresses.
    let mut phy = unsafe {
        VirtioPhy::<TestHal, FakeTransport, TestCounter, NoDoorbells>::new(
            FakeTransport(net.clone()),
            NoDoorbells,
            None,
            Mode::Poll,
        )
    }
    .unwrap();
    events();
    assert!(send(&mut phy, &[4; 60]));
    assert!(events().contains(&Event::TransportNotify(1)));
    assert_eq!(net.borrow().queues[1].notifies, 1);
    assert_eq!(phy.tx_notifies(), 1);
    assert_eq!(phy.rings().last_notify_ticks(1), None);
    assert_eq!(phy.stamps().notify_ticks, 0);
}

#[test]
fn msix_vectors_are_assigned_before_driver_ok() {
    let net = Rc::new(RefCell::new(FakeNet::default()));
    net.borrow_mut().common = [super::msix::NO_VECTOR; 0x20];
    let common = net.borrow().common.as_ptr() as usize;
    // SAFETY: the fake device's common configuration lives as long as `net`.
    let vectors = unsafe { super::msix::VirtioVectors::new(common, 2, [0, 1]) };
    // SAFETY: TestHal maps DMA memory at identical addresses.
    let phy = unsafe {
        Phy::new(
            FakeTransport(net.clone()),
            FakeDoorbells(net.clone()),
            Some(vectors),
            Mode::Irq,
        )
    };
    assert!(phy.is_ok());
    // The configuration vector and the last queue's (transmit) were in place at DRIVER_OK.
    assert_eq!(net.borrow().vectors_at_driver_ok, Some((2, 1)));
}
