//! The probe protocol on UDP 7777 through the whole stack: real probe datagrams in, replies out.

use std::vec;

use vmprobe_proto::{
    bench_request, echo_request, BenchTest, Datagram, GuestStats, Message, PROBE_PORT,
};

use super::udp::exchange;
use super::World;

fn datagram(sequence: u32, message: Message<'_>) -> vec::Vec<u8> {
    let d = Datagram {
        sequence,
        flags: 0,
        message,
    };
    let mut b = vec![0u8; d.buffer_len()];
    d.emit(&mut b).unwrap();
    b
}

#[test]
fn probe_requests_are_answered_and_garbage_is_counted() {
    let mut w = World::new();
    let client = w.udp_socket(40100);
    let echo = datagram(
        1,
        Message::EchoRequest(echo_request::Repr {
            host_send_ns: 99,
            reply_len: 1400,
            rx: Default::default(),
            padding: 0,
        }),
    );
    let reply = exchange(&mut w, client, PROBE_PORT, &echo).expect("echo reply");
    assert_eq!(reply.len(), 1400);
    let Message::EchoReply(r) = Datagram::parse(&reply).unwrap().message else {
        panic!("not an echo reply")
    };
    assert_eq!(r.host_send_ns, 99);
    assert!(r.handled > 0);

    // Garbage and a guest-to-host kind: no reply, the guest keeps answering.
    assert_eq!(exchange(&mut w, client, PROBE_PORT, b"junk"), None);
    let ack = datagram(2, Message::PowerOffAck);
    assert_eq!(exchange(&mut w, client, PROBE_PORT, &ack), None);

    let bench = datagram(
        3,
        Message::BenchRequest(bench_request::Repr {
            test: BenchTest::CounterRead,
            iterations: 10,
            param: 0,
        }),
    );
    let reply = exchange(&mut w, client, PROBE_PORT, &bench).expect("bench result");
    let Message::BenchResult(b) = Datagram::parse(&reply).unwrap().message else {
        panic!("not a bench result")
    };
    assert_eq!((b.summary.count, b.summary.min, b.summary.max), (10, 7, 16));

    let reply = exchange(
        &mut w,
        client,
        PROBE_PORT,
        &datagram(4, Message::StatsRequest),
    )
    .expect("stats");
    let Message::StatsReply(s) = Datagram::parse(&reply).unwrap().message else {
        panic!("not stats")
    };
    let expect = GuestStats {
        irqs: 3,
        probe_rx: 5,
        probe_malformed: 1,
        probe_unknown: 1,
        probe_replies: 2,
        ..s
    };
    assert_eq!(s, expect);
    assert!(s.rx_frames >= 5 && s.tx_frames >= 3 && s.tx_bytes > 1400 && s.rx_bytes > 0);

    assert!(!w.platform.power_off);
    let reply = exchange(&mut w, client, PROBE_PORT, &datagram(5, Message::PowerOff));
    assert_eq!(
        Datagram::parse(&reply.unwrap()).unwrap().message,
        Message::PowerOffAck
    );
    assert!(w.platform.power_off);
}
