//! Property tests: no parser panics on any bytes, and every message survives emit then parse.

use proptest::prelude::*;
use vmprobe_proto::echo_reply::TxStamps;
use vmprobe_proto::echo_request::RxStamps;
use vmprobe_proto::samples::SampleSlice;
use vmprobe_proto::*;

/// Random bytes, often behind a valid magic/version/kind so the body parsers get exercised.
fn datagram_bytes() -> impl Strategy<Value = Vec<u8>> {
    let raw = proptest::collection::vec(any::<u8>(), 0..200);
    let framed = (
        1u8..=12,
        proptest::collection::vec(any::<u8>(), 0..200),
        any::<bool>(),
    )
        .prop_map(|(kind, rest, fix_len)| {
            let mut b = MAGIC.to_vec();
            b.extend_from_slice(&[VERSION, kind]);
            b.extend(rest);
            if fix_len && b.len() >= HEADER_LEN {
                let len = b.len() as u32;
                b[12..16].copy_from_slice(&len.to_be_bytes());
            }
            b
        });
    prop_oneof![raw, framed]
}

fn test_strategy() -> impl Strategy<Value = BenchTest> {
    proptest::sample::select(BenchTest::ALL.to_vec())
}

fn counter() -> impl Strategy<Value = CounterKind> {
    prop_oneof![Just(CounterKind::Virtual), Just(CounterKind::Physical)]
}

fn summary() -> impl Strategy<Value = Summary> {
    (any::<u32>(), any::<[u64; 5]>()).prop_map(|(count, [min, p50, p99, max, sum])| Summary {
        count,
        min,
        p50,
        p99,
        max,
        sum,
    })
}

/// An owned message; `samples` holds the values a `Samples` message borrows.
#[derive(Debug, Clone)]
enum Owned {
    Simple(Message<'static>),
    Samples {
        run_id: u32,
        offset: u32,
        total: u32,
        samples: Vec<u64>,
    },
}

fn message() -> impl Strategy<Value = Owned> {
    let echo_req = (
        any::<u64>(),
        any::<u16>(),
        any::<[Option<u64>; 2]>(),
        0usize..300,
    )
        .prop_map(|(host_send_ns, reply_len, [irq_entry, rx_seen], padding)| {
            Message::EchoRequest(echo_request::Repr {
                host_send_ns,
                reply_len,
                rx: RxStamps { irq_entry, rx_seen },
                padding,
            })
        });
    let echo_rep = (
        (
            any::<u64>(),
            any::<u16>(),
            any::<u32>(),
            counter(),
            any::<bool>(),
        ),
        (any::<[Option<u64>; 4]>(), any::<u64>(), 0usize..300),
    )
        .prop_map(
            |((host_send_ns, request_len, cntfrq_hz, counter, poll), (o, handled, padding))| {
                Message::EchoReply(echo_reply::Repr {
                    host_send_ns,
                    request_len,
                    cntfrq_hz,
                    counter,
                    mode: if poll {
                        GuestMode::Poll
                    } else {
                        GuestMode::Irq
                    },
                    irq_entry: o[0],
                    rx_seen: o[1],
                    handled,
                    tx: TxStamps {
                        tx_notify: o[2],
                        prev_notify_ticks: o[3],
                    },
                    padding,
                })
            },
        );
    let stats = any::<[u64; stats_reply::COUNTERS]>()
        .prop_map(|a| Message::StatsReply(GuestStats::from_array(a)));
    let bench_req =
        (test_strategy(), any::<u32>(), any::<u64>()).prop_map(|(test, iterations, param)| {
            Message::BenchRequest(bench_request::Repr {
                test,
                iterations,
                param,
            })
        });
    let bench_res = (
        test_strategy(),
        counter(),
        any::<u32>(),
        any::<u32>(),
        summary(),
    )
        .prop_map(|(test, counter, run_id, cntfrq_hz, summary)| {
            Message::BenchResult(bench_result::Repr {
                test,
                counter,
                run_id,
                cntfrq_hz,
                summary,
            })
        });
    let samples_req = any::<(u32, u32, u16)>().prop_map(|(run_id, offset, count)| {
        Message::SamplesRequest(samples_request::Repr {
            run_id,
            offset,
            count,
        })
    });
    let error = (
        proptest::sample::select(vec![
            error_reply::Code::UnsupportedTest,
            error_reply::Code::BenchFailed,
            error_reply::Code::NoSuchRun,
        ]),
        1u8..=11,
        any::<u32>(),
    )
        .prop_map(|(code, kind, detail)| {
            Message::Error(error_reply::Repr {
                code,
                request_kind: Kind::from_u8(kind).unwrap(),
                detail,
            })
        });
    let simple = prop_oneof![
        echo_req,
        echo_rep,
        Just(Message::StatsRequest),
        stats,
        bench_req,
        bench_res,
        samples_req,
        Just(Message::PowerOff),
        Just(Message::PowerOffAck),
        error,
    ]
    .prop_map(Owned::Simple);
    let samples = (
        any::<(u32, u32, u32)>(),
        proptest::collection::vec(any::<u64>(), 0..200),
    )
        .prop_map(|((run_id, offset, total), samples)| Owned::Samples {
            run_id,
            offset,
            total,
            samples,
        });
    prop_oneof![9 => simple, 1 => samples]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn parsers_never_panic(bytes in datagram_bytes()) {
        let parsed = Datagram::parse(&bytes);
        // Whatever parses re-emits to something that parses to the same message.
        if let Ok(d) = parsed {
            let mut out = vec![0u8; d.buffer_len()];
            let n = d.emit(&mut out).unwrap();
            prop_assert_eq!(Datagram::parse(&out[..n]).unwrap(), d);
        }
        // Every body parser on the raw bytes, as if a header had named it.
        for kind in 1..=11 {
            let _ = Message::parse_body(Kind::from_u8(kind).unwrap(), &bytes);
        }
        let _ = header::Packet::new_checked(&bytes[..]).and_then(|p| header::Repr::parse(&p));
    }

    #[test]
    fn every_message_round_trips(m in message(), sequence in any::<u32>(), flags in any::<u16>()) {
        let message = match &m {
            Owned::Simple(msg) => *msg,
            Owned::Samples { run_id, offset, total, samples } => Message::Samples(samples::Repr {
                run_id: *run_id,
                offset: *offset,
                total: *total,
                samples: SampleSlice::Values(samples),
            }),
        };
        let d = Datagram { sequence, flags, message };
        let mut buf = vec![0xa5u8; d.buffer_len() + 3];
        let n = d.emit(&mut buf).unwrap();
        prop_assert_eq!(n, d.buffer_len());
        prop_assert_eq!(Datagram::parse(&buf[..n]).unwrap(), d);
        // Trailing bytes beyond the header's length are ignored.
        prop_assert_eq!(Datagram::parse(&buf).unwrap(), d);
        // Any truncation is an error, never a panic or a different message.
        for cut in 0..n {
            prop_assert!(Datagram::parse(&buf[..cut]).is_err());
        }
        // A buffer one byte short is refused.
        prop_assert_eq!(d.emit(&mut buf[..n - 1]), Err(Error::Truncated));
    }
}
