//! The handler against a fake platform, with real protocol bytes.

use super::*;
use vmprobe_proto::clock_reply::{Absence, Reading};
use vmprobe_proto::echo_request::RxStamps;
use vmprobe_proto::{
    bench_request, echo_request, error_reply, samples_request, BenchTest, CounterKind, Datagram,
    Error, GuestMode, GuestStats, Message, HEADER_LEN,
};

/// A platform whose counter advances by 10 per read and whose benchmarks return 100, 101, ...
#[derive(Default)]
struct Fake {
    counter: u64,
    power_off: bool,
    runs: u32,
}

impl ProbePlatform for Fake {
    fn now(&mut self) -> u64 {
        self.counter += 10;
        self.counter
    }
    fn cntfrq_hz(&self) -> u32 {
        62_500_000
    }
    fn counter_kind(&self) -> CounterKind {
        CounterKind::Virtual
    }
    fn mode(&self) -> GuestMode {
        GuestMode::Poll
    }
    fn stats(&mut self) -> GuestStats {
        GuestStats {
            rx_frames: 5,
            tx_frames: 4,
            probe_rx: 999,
            ..Default::default()
        }
    }
    fn run_bench(
        &mut self,
        test: BenchTest,
        param: u64,
        samples: &mut [u64],
    ) -> Result<(), BenchError> {
        self.runs += 1;
        match test {
            BenchTest::IpiRoundTrip => Err(BenchError::Unsupported),
            BenchTest::VtimerLatency if param == 0 => Err(BenchError::Failed),
            _ => {
                for (i, s) in samples.iter_mut().enumerate() {
                    *s = 100 + i as u64 * (1 + param);
                }
                Ok(())
            }
        }
    }
    /// Virtual-counter readings 1000 + 10 i ns against 5 + i ticks; no physical counter.
    fn clock_readings(
        &mut self,
        counter: CounterKind,
        readings: &mut [Reading],
    ) -> Result<(), Absence> {
        if counter == CounterKind::Physical {
            return Err(Absence::NoPtp);
        }
        for (i, r) in readings.iter_mut().enumerate() {
            *r = Reading {
                realtime_ns: 1000 + 10 * i as u64,
                counter: 5 + i as u64,
            };
        }
        Ok(())
    }
    fn request_power_off(&mut self) {
        self.power_off = true;
    }
}

fn request(sequence: u32, message: Message<'_>) -> Vec<u8> {
    let d = Datagram {
        sequence,
        flags: 0xa5,
        message,
    };
    let mut b = vec![0u8; d.buffer_len()];
    d.emit(&mut b).unwrap();
    b
}

/// Handle `req` and parse the reply, checking sequence and flags are echoed.
fn exchange<'r>(
    h: &mut ProbeHandler<'_>,
    p: &mut Fake,
    req: &[u8],
    reply: &'r mut [u8],
) -> Message<'r> {
    let Outcome::Reply(n) = h.handle(p, req, reply) else {
        panic!("no reply")
    };
    let d = Datagram::parse(&reply[..n]).unwrap();
    assert_eq!(d.flags, 0xa5);
    d.message
}

fn echo(reply_len: u16, padding: usize) -> Vec<u8> {
    request(
        7,
        Message::EchoRequest(echo_request::Repr {
            host_send_ns: 123_456,
            reply_len,
            rx: RxStamps {
                irq_entry: None,
                rx_seen: Some(40),
            },
            padding,
        }),
    )
}

#[test]
fn echo_reply_carries_the_request_and_guest_readings() {
    let (mut samples, mut p, mut out) = ([0u64; 8], Fake::default(), [0u8; 1500]);
    let mut h = ProbeHandler::new(&mut samples);
    let req = echo(0, 20);
    let Message::EchoReply(r) = exchange(&mut h, &mut p, &req, &mut out) else {
        panic!()
    };
    assert_eq!(r.host_send_ns, 123_456);
    assert_eq!(usize::from(r.request_len), req.len());
    assert_eq!((r.irq_entry, r.rx_seen, r.handled), (None, Some(40), 10));
    assert_eq!(
        (r.cntfrq_hz, r.counter, r.mode),
        (62_500_000, CounterKind::Virtual, GuestMode::Poll)
    );
    // TX readings are the device layer's job.
    assert_eq!(r.tx, Default::default());
    assert_eq!(r.padding, 0);
}

#[test]
fn echo_reply_is_padded_to_the_requested_length_within_the_buffer() {
    let (mut samples, mut p) = ([0u64; 8], Fake::default());
    let mut h = ProbeHandler::new(&mut samples);
    let mut out = [0u8; 1500];
    let Outcome::Reply(n) = h.handle(&mut p, &echo(1000, 0), &mut out) else {
        panic!()
    };
    assert_eq!(n, 1000);
    let Outcome::Reply(n) = h.handle(&mut p, &echo(9000, 0), &mut out) else {
        panic!()
    };
    assert_eq!(n, 1500);
    let Outcome::Reply(n) = h.handle(&mut p, &echo(3, 0), &mut out) else {
        panic!()
    };
    assert_eq!(n, HEADER_LEN + vmprobe_proto::echo_reply::FIXED_LEN);
    let mut tiny = [0u8; 40];
    assert_eq!(
        h.handle(&mut p, &echo(0, 0), &mut tiny),
        Outcome::Dropped(DropReason::ReplyBufferTooSmall)
    );
}

#[test]
fn stats_include_the_handlers_own_counters() {
    let (mut samples, mut p, mut out) = ([0u64; 8], Fake::default(), [0u8; 1500]);
    let mut h = ProbeHandler::new(&mut samples);
    assert!(matches!(
        h.handle(&mut p, b"garbage", &mut out),
        Outcome::Dropped(DropReason::Malformed(Error::Truncated))
    ));
    let mut unknown = request(1, Message::PowerOff);
    unknown[5] = 200;
    assert_eq!(
        h.handle(&mut p, &unknown, &mut out),
        Outcome::Dropped(DropReason::Unknown)
    );
    // A guest-to-host kind sent to the guest is not served either.
    assert_eq!(
        h.handle(&mut p, &request(1, Message::PowerOffAck), &mut out),
        Outcome::Dropped(DropReason::Unknown)
    );
    let Message::StatsReply(s) =
        exchange(&mut h, &mut p, &request(2, Message::StatsRequest), &mut out)
    else {
        panic!()
    };
    assert_eq!((s.rx_frames, s.tx_frames), (5, 4));
    assert_eq!(
        (
            s.probe_rx,
            s.probe_malformed,
            s.probe_unknown,
            s.probe_replies
        ),
        (4, 1, 2, 0)
    );
    assert_eq!(h.counters().replies, 1);
}

#[test]
fn bench_result_then_samples_in_chunks() {
    let (mut samples, mut p) = ([0u64; 100], Fake::default());
    let mut h = ProbeHandler::new(&mut samples);
    let mut out = [0u8; 1500];
    let bench = |test, iterations, param| {
        request(
            3,
            Message::BenchRequest(bench_request::Repr {
                test,
                iterations,
                param,
            }),
        )
    };
    // 1000 iterations asked, 100 fit: 100 samples 100..=199.
    let Message::BenchResult(r) = exchange(
        &mut h,
        &mut p,
        &bench(BenchTest::MmioGicd, 1000, 0),
        &mut out,
    ) else {
        panic!()
    };
    assert_eq!(r.test, BenchTest::MmioGicd);
    assert_eq!(
        (
            r.summary.count,
            r.summary.min,
            r.summary.p50,
            r.summary.p99,
            r.summary.max
        ),
        (100, 100, 149, 198, 199)
    );
    assert_eq!(r.summary.sum, (100..200).sum::<u64>());
    let run_id = r.run_id;

    // Fetch them back in chunks limited by the reply buffer (16 + 16 + 8n bytes: 6 fit in 80).
    let mut got = Vec::new();
    let mut small = [0u8; 80];
    loop {
        let req = request(
            4,
            Message::SamplesRequest(samples_request::Repr {
                run_id,
                offset: got.len() as u32,
                count: 1000,
            }),
        );
        let Message::Samples(c) = exchange(&mut h, &mut p, &req, &mut small) else {
            panic!()
        };
        assert_eq!(
            (c.run_id, c.total, c.offset as usize),
            (run_id, 100, got.len())
        );
        if c.samples.is_empty() {
            break;
        }
        assert_eq!(c.samples.len(), 6.min(100 - got.len()));
        got.extend(c.samples.iter());
    }
    assert_eq!(got, (100..200).collect::<Vec<u64>>());

    // A new run replaces the old one: its samples are gone.
    let Message::BenchResult(r2) = exchange(&mut h, &mut p, &bench(BenchTest::Eoi, 3, 1), &mut out)
    else {
        panic!()
    };
    assert_ne!(r2.run_id, run_id);
    assert_eq!((r2.summary.min, r2.summary.max), (100, 104));
    let req = request(
        5,
        Message::SamplesRequest(samples_request::Repr {
            run_id,
            offset: 0,
            count: 10,
        }),
    );
    let Message::Error(e) = exchange(&mut h, &mut p, &req, &mut out) else {
        panic!()
    };
    assert_eq!((e.code, e.detail), (error_reply::Code::NoSuchRun, run_id));
}

#[test]
fn bench_refusals_are_error_replies() {
    let (mut samples, mut p, mut out) = ([0u64; 10], Fake::default(), [0u8; 1500]);
    let mut h = ProbeHandler::new(&mut samples);
    for (test, param, code) in [
        (
            BenchTest::IpiRoundTrip,
            0,
            error_reply::Code::UnsupportedTest,
        ),
        (BenchTest::VtimerLatency, 0, error_reply::Code::BenchFailed),
    ] {
        let req = request(
            1,
            Message::BenchRequest(bench_request::Repr {
                test,
                iterations: 5,
                param,
            }),
        );
        let Message::Error(e) = exchange(&mut h, &mut p, &req, &mut out) else {
            panic!()
        };
        assert_eq!((e.code, e.detail), (code, u32::from(test.id())));
    }
    // No iterations: a result with an empty summary.
    let req = request(
        1,
        Message::BenchRequest(bench_request::Repr {
            test: BenchTest::Eoi,
            iterations: 0,
            param: 0,
        }),
    );
    let Message::BenchResult(r) = exchange(&mut h, &mut p, &req, &mut out) else {
        panic!()
    };
    assert_eq!(r.summary.count, 0);
}

#[test]
fn power_off_is_acknowledged_then_requested() {
    let (mut samples, mut p, mut out) = ([0u64; 1], Fake::default(), [0u8; 64]);
    let mut h = ProbeHandler::new(&mut samples);
    assert_eq!(
        exchange(&mut h, &mut p, &request(9, Message::PowerOff), &mut out),
        Message::PowerOffAck
    );
    assert!(p.power_off);
}

#[test]
fn arbitrary_bytes_never_panic_and_are_counted() {
    let (mut samples, mut p, mut out) = ([0u64; 4], Fake::default(), [0u8; 256]);
    let mut h = ProbeHandler::new(&mut samples);
    let valid = echo(0, 0);
    let mut state = 0x1234_5678u64;
    for i in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Mutate a valid request: a byte flipped and a random truncation.
        let mut b = valid.clone();
        let len = b.len() as u64;
        b[(state % len) as usize] ^= (state >> 8) as u8;
        b.truncate(((state >> 16) % (len + 1)) as usize);
        let _ = h.handle(&mut p, &b, &mut out);
        let c = h.counters();
        assert_eq!(c.rx, i + 1);
        assert_eq!(c.rx, c.malformed + c.unknown + c.replies);
    }
}

#[test]
fn clock_request_gets_readings_or_the_reason_there_are_none() {
    use vmprobe_proto::{clock_request, Kind};
    let (mut samples, mut p, mut out) = ([0u64; 8], Fake::default(), [0u8; 1500]);
    let mut h = ProbeHandler::new(&mut samples);
    let ask = |counter, count| {
        request(
            7,
            Message::ClockRequest(clock_request::Repr { counter, count }),
        )
    };
    let Message::ClockReply(r) = exchange(&mut h, &mut p, &ask(CounterKind::Virtual, 3), &mut out)
    else {
        panic!()
    };
    assert_eq!(r.counter, CounterKind::Virtual);
    assert_eq!(
        r.readings(),
        [
            Reading {
                realtime_ns: 1000,
                counter: 5
            },
            Reading {
                realtime_ns: 1010,
                counter: 6
            },
            Reading {
                realtime_ns: 1020,
                counter: 7
            }
        ]
    );
    // Never more than one reply holds.
    let Message::ClockReply(r) =
        exchange(&mut h, &mut p, &ask(CounterKind::Virtual, 200), &mut out)
    else {
        panic!()
    };
    assert_eq!(r.readings().len(), vmprobe_proto::clock_reply::MAX_READINGS);
    let Message::Error(e) = exchange(&mut h, &mut p, &ask(CounterKind::Physical, 2), &mut out)
    else {
        panic!()
    };
    assert_eq!(
        (e.code, e.request_kind, e.detail),
        (
            error_reply::Code::ClockAbsent,
            Kind::ClockRequest,
            Absence::NoPtp as u32
        )
    );
}

#[test]
fn self_report_prints_p50_p99_per_test_then_boot_and_notes_refusals() {
    use super::self_report::{SelfReport, ITERATIONS};
    use crate::config::Config;
    let mut p = Fake::default();
    let mut samples = [0u64; ITERATIONS];
    let bench = Config::parse("bench=hypercall,vtimer,ipi,eoi")
        .unwrap()
        .config
        .bench;
    let mut r = SelfReport::run(&mut p, bench, &mut samples);
    r.boot(1_234_567);
    assert_eq!(p.runs, 4);
    // Samples 100..=1099 ticks at 62.5 MHz (16 ns): p50 is the 500th (599), p99 the 990th (1089).
    let lines: Vec<String> = r.lines().collect();
    assert_eq!(
        lines,
        [
            "vmprobe: bench: vtimer: failed, no result",
            "vmprobe: bench: ipi: not supported on this machine, no result",
            "vmprobe: results begin",
            "vmprobe: result guest-hypercall-p50 9584 ns",
            "vmprobe: result guest-hypercall-p99 17424 ns",
            "vmprobe: result guest-eoi-p50 9584 ns",
            "vmprobe: result guest-eoi-p99 17424 ns",
            "vmprobe: result guest-boot 1234.567 ms",
            "vmprobe: results end",
        ]
    );
}
