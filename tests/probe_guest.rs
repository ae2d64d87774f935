//! The probe protocol (UDP 7777) on the real guest image under QEMU (TCG here): timestamped
//! echo, stats, malformed datagrams, every micro-benchmark, and power-off. Datagrams are built
//! and parsed with `vmprobe_proto`, sent over user networking's hostfwd.

mod support;

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;
use support::guest::*;
use vmprobe_proto::{
    bench_request, clock_reply, clock_request, echo_request, error_reply, samples_request,
    BenchTest, CounterKind, Datagram, GuestMode, Kind, Message, PROBE_PORT,
};

/// A booted guest and a socket aimed at its probe port.
struct Guest {
    qemu: Qemu,
    socket: UdpSocket,
    sequence: u32,
}

impl Guest {
    fn boot(machine: &str, device: &str, append: &str) -> Guest {
        let port = free_port();
        let mut qemu_args = args(&format!("{machine} -m 128M -kernel"));
        qemu_args.push(guest_image().display().to_string());
        qemu_args.extend([
            "-netdev".to_string(),
            format!("user,id=n0,hostfwd=udp:127.0.0.1:{port}-:{PROBE_PORT}"),
        ]);
        qemu_args.extend(args(&format!("-device {device},netdev=n0")));
        if !append.is_empty() {
            qemu_args.extend(["-append".to_string(), append.to_string()]);
        }
        let qemu = Qemu::spawn(&qemu_args);
        qemu.wait_ready();
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket.connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        Guest {
            qemu,
            socket,
            sequence: 0,
        }
    }

    fn send(&mut self, message: Message<'_>) -> u32 {
        self.sequence += 1;
        let d = Datagram {
            sequence: self.sequence,
            flags: 0,
            message,
        };
        let mut b = vec![0u8; d.buffer_len()];
        d.emit(&mut b).unwrap();
        self.socket.send(&b).unwrap();
        self.sequence
    }

    fn receive(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 2048];
        match self.socket.recv(&mut buf) {
            Ok(n) => Some(buf[..n].to_vec()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("recv: {e}; console:\n{}", self.qemu.console()),
        }
    }

    /// Sends `message` and returns the reply datagram with the same sequence number, retrying
    /// a lost exchange (the path is real); stale replies are skipped.
    fn call(&mut self, message: Message<'_>) -> Vec<u8> {
        for _attempt in 0..5 {
            let sequence = self.send(message);
            while let Some(reply) = self.receive() {
                let d = Datagram::parse(&reply).expect("guest sent a malformed reply");
                if d.sequence == sequence {
                    return reply;
                }
            }
        }
        panic!("no reply to {message:?}; console:\n{}", self.qemu.console());
    }

    fn stats(&mut self) -> vmprobe_proto::GuestStats {
        let reply = self.call(Message::StatsRequest);
        match Datagram::parse(&reply).unwrap().message {
            Message::StatsReply(s) => s,
            other => panic!("stats request answered with {other:?}"),
        }
    }
}

/// Under TCG there is no KVM PTP service: a clock request is refused with `why`.
fn clock_absent(g: &mut Guest, why: clock_reply::Absence) {
    let reply = g.call(Message::ClockRequest(clock_request::Repr {
        counter: CounterKind::Virtual,
        count: 4,
    }));
    match Datagram::parse(&reply).unwrap().message {
        Message::Error(e) => assert_eq!(
            (e.code, e.request_kind, e.detail),
            (
                error_reply::Code::ClockAbsent,
                Kind::ClockRequest,
                why as u32
            )
        ),
        other => panic!("clock request answered with {other:?}"),
    }
}

fn echo(reply_len: u16, host_send_ns: u64) -> Message<'static> {
    Message::EchoRequest(echo_request::Repr {
        host_send_ns,
        reply_len,
        rx: Default::default(),
        padding: 8,
    })
}

/// Timestamped echoes: readings present, ordered and increasing; returns the guest residence
/// (rx seen to tx notify) of each, in ticks, and the counter frequency.
fn timestamped_echoes(g: &mut Guest, mode: GuestMode, count: usize) -> (Vec<u64>, u32) {
    let mut last_rx = 0;
    let mut residence = Vec::new();
    let mut cntfrq = 0;
    let mut with_irq_entry = 0;
    let (mut to_handler, mut irq_to_rx) = (Vec::new(), Vec::new());
    for i in 0..count {
        if mode == GuestMode::Irq {
            // Let the guest go idle, so the request wakes it by interrupt (a request that
            // arrives while it is still polling after the last reply is found without one).
            std::thread::sleep(Duration::from_millis(1));
        }
        let reply = g.call(echo(if i % 2 == 0 { 0 } else { 1000 }, i as u64));
        let Message::EchoReply(r) = Datagram::parse(&reply).unwrap().message else {
            panic!("echo answered with something else")
        };
        assert_eq!(r.host_send_ns, i as u64);
        assert_eq!(r.mode, mode);
        if i % 2 == 1 {
            assert_eq!(reply.len(), 1000);
        }
        let rx_seen = r.rx_seen.expect("rx seen stamped");
        let tx_notify = r.tx.tx_notify.expect("tx notify stamped");
        assert!(rx_seen <= r.handled, "{r:?}");
        assert!(r.handled <= tx_notify, "{r:?}");
        assert!(rx_seen > last_rx, "counter readings go forward");
        last_rx = rx_seen;
        match (mode, r.irq_entry) {
            (GuestMode::Irq, Some(entry)) => {
                assert!(entry <= rx_seen, "{r:?}");
                with_irq_entry += 1;
            }
            (GuestMode::Irq, None) => {}
            (GuestMode::Poll, entry) => assert_eq!(entry, None, "no irq entry in poll mode"),
        }
        // From the second reply on, the previous notify's duration travels along.
        if i > 0 {
            assert!(r.tx.prev_notify_ticks.is_some(), "{r:?}");
        }
        residence.push(tx_notify - rx_seen);
        to_handler.push(r.handled - rx_seen);
        if let (Some(entry), true) = (r.irq_entry, i % 2 == 0) {
            irq_to_rx.push(rx_seen - entry);
        }
        cntfrq = r.cntfrq_hz;
    }
    assert_eq!(cntfrq, 62_500_000);
    if count >= 100 {
        eprintln!(
            "{mode:?}: p50 rx seen -> handler {:.2} us, irq entry -> rx seen {:.2} us",
            p50_us(&mut to_handler, cntfrq),
            if irq_to_rx.is_empty() {
                0.0
            } else {
                p50_us(&mut irq_to_rx, cntfrq)
            }
        );
    }
    if mode == GuestMode::Irq {
        // A loaded host can delay the guest past the pause now and then, not usually.
        assert!(
            with_irq_entry * 10 >= count * 9,
            "only {with_irq_entry} of {count} echoes arrived by interrupt"
        );
    }
    (residence, cntfrq)
}

fn p50_us(ticks: &mut [u64], cntfrq: u32) -> f64 {
    ticks.sort_unstable();
    ticks[ticks.len() / 2] as f64 * 1e6 / f64::from(cntfrq)
}

/// Malformed and unknown datagrams get no answer and are counted; the guest keeps answering.
fn garbage_is_counted(g: &mut Guest) {
    let before = g.stats();
    let mut junk = vec![b"x".to_vec(), vec![0u8; 100], b"VMPB".to_vec()];
    // A valid header with an unknown kind, and a guest-to-host kind.
    let mut unknown = vec![0u8; 64];
    let d = Datagram {
        sequence: 1,
        flags: 0,
        message: Message::PowerOffAck,
    };
    let n = d.emit(&mut unknown).unwrap();
    unknown.truncate(n);
    junk.push(unknown.clone());
    let mut bad_kind = unknown.clone();
    bad_kind[5] = 0xee;
    junk.push(bad_kind);
    for j in &junk {
        g.socket.send(j).unwrap();
    }
    // Each answered by nothing: the next reply is the stats reply.
    let after = g.stats();
    assert_eq!(after.probe_rx - before.probe_rx, junk.len() as u64 + 1);
    assert_eq!(
        (after.probe_malformed - before.probe_malformed)
            + (after.probe_unknown - before.probe_unknown),
        junk.len() as u64
    );
    assert!(after.probe_unknown - before.probe_unknown >= 2);
    assert_eq!(after.probe_replies - before.probe_replies, 1);
    assert!(after.rx_frames > before.rx_frames && after.tx_frames > before.tx_frames);
    assert!(after.uptime_ticks > before.uptime_ticks);
}

/// Runs every micro-benchmark with `iterations` and fetches one run's samples back.
fn benchmarks(
    g: &mut Guest,
    tests: &[BenchTest],
    iterations: u32,
    vcpus: usize,
) -> Vec<(BenchTest, vmprobe_proto::Summary)> {
    let mut results = Vec::new();
    for &test in tests {
        let reply = g.call(Message::BenchRequest(bench_request::Repr {
            test,
            iterations,
            param: 0,
        }));
        match Datagram::parse(&reply).unwrap().message {
            Message::BenchResult(r) => {
                assert_eq!(r.test, test);
                assert_eq!(r.summary.count, iterations, "{test}");
                assert!(r.summary.min <= r.summary.p50 && r.summary.p50 <= r.summary.max);
                results.push((test, r.summary));
                // The samples themselves, in chunks.
                let mut got = Vec::new();
                while got.len() < iterations as usize {
                    let reply = g.call(Message::SamplesRequest(samples_request::Repr {
                        run_id: r.run_id,
                        offset: got.len() as u32,
                        count: 1000,
                    }));
                    let Message::Samples(c) = Datagram::parse(&reply).unwrap().message else {
                        panic!("samples request for {test} refused")
                    };
                    assert_eq!(c.total, iterations);
                    assert!(!c.samples.is_empty());
                    got.extend(c.samples.iter());
                }
                assert_eq!(got.iter().copied().min(), Some(r.summary.min));
                assert_eq!(got.iter().copied().max(), Some(r.summary.max));
            }
            Message::Error(e) => {
                match test {
                    // A single vCPU has no peer for the IPI round trip.
                    BenchTest::IpiRoundTrip => {
                        assert_eq!(vcpus, 1, "IPI refused with {vcpus} vCPUs: {e:?}")
                    }
                    // Without an ITS in use (virtio-mmio here) there is no LPI to raise.
                    BenchTest::Lpi => {}
                    _ => panic!("{test} refused: {e:?}"),
                }
                assert_eq!(e.code, error_reply::Code::UnsupportedTest);
            }
            other => panic!("{test} answered with {other:?}"),
        }
    }
    results
}

fn print_benchmarks(label: &str, results: &[(BenchTest, vmprobe_proto::Summary)], cntfrq: u32) {
    let ns = |t: u64| t as f64 * 1e9 / f64::from(cntfrq);
    for (test, s) in results {
        eprintln!(
            "{label}: {:<13} p50 {:>9.0} ns  p99 {:>9.0} ns",
            test.name(),
            ns(s.p50),
            ns(s.p99)
        );
    }
}

fn power_off(g: &mut Guest) {
    let reply = g.call(Message::PowerOff);
    assert_eq!(
        Datagram::parse(&reply).unwrap().message,
        Message::PowerOffAck
    );
    let status = g.qemu.wait_exit(Duration::from_secs(20));
    assert!(status.is_some(), "QEMU still running after power-off");
    assert!(g.qemu.console().contains("vmprobe: powering off"));
}

#[test]
fn gicv3_modern_mmio_irq_mode() {
    let mut g = Guest::boot(
        "-M virt,gic-version=3 -cpu max -global virtio-mmio.force-legacy=false",
        "virtio-net-device",
        "",
    );
    let (mut residence, cntfrq) = timestamped_echoes(&mut g, GuestMode::Irq, 200);
    eprintln!(
        "irq mode: guest residence (rx seen -> tx notify) p50 {:.2} us",
        p50_us(&mut residence, cntfrq)
    );
    garbage_is_counted(&mut g);
    let stats = g.stats();
    assert!(stats.irqs >= 200 && stats.idle_waits >= 200, "{stats:?}");
    assert!(stats.tx_notifies > 0);
    let results = benchmarks(&mut g, &BenchTest::ALL, 500, 1);
    print_benchmarks("gicv3", &results, cntfrq);
    // The network loop comes back after the benchmarks.
    timestamped_echoes(&mut g, GuestMode::Irq, 5);
    power_off(&mut g);
}

#[test]
fn gicv2_legacy_mmio_poll_mode() {
    let mut g = Guest::boot(
        "-M virt,gic-version=2 -cpu cortex-a57 -smp 2",
        "virtio-net-device",
        "mode=poll",
    );
    let (mut residence, cntfrq) = timestamped_echoes(&mut g, GuestMode::Poll, 200);
    eprintln!(
        "poll mode: guest residence (rx seen -> tx notify) p50 {:.2} us",
        p50_us(&mut residence, cntfrq)
    );
    garbage_is_counted(&mut g);
    clock_absent(&mut g, clock_reply::Absence::NoSmcccVersion);
    let stats = g.stats();
    assert_eq!(stats.irqs, 0);
    // Busy polling: the loop turns more often than frames arrive (how much more depends on how
    // much CPU the vCPU thread got, so no fixed count).
    assert!(stats.polls > stats.rx_frames, "{stats:?}");
    let results = benchmarks(&mut g, &BenchTest::ALL, 500, 2);
    assert!(results.iter().any(|(t, _)| *t == BenchTest::IpiRoundTrip));
    print_benchmarks("gicv2", &results, cntfrq);
    timestamped_echoes(&mut g, GuestMode::Poll, 5);
    power_off(&mut g);
}

#[test]
fn gicv3_pci_el2_two_vcpus() {
    // Entered at EL2 (both vCPUs drop to EL1), PSCI over SMC.
    let mut g = Guest::boot(
        "-M virt,gic-version=3,virtualization=on -cpu max -smp 2",
        "virtio-net-pci,romfile=",
        "",
    );
    // On virtio-pci the register read is the common configuration's `num_queues` and the
    // notify goes to the transmit queue's address in the notification area.
    // With MSI-X through the ITS, the LPI test has its ITS.
    let tests = [
        BenchTest::IpiRoundTrip,
        BenchTest::MmioVirtio,
        BenchTest::VirtqueueNotify,
        BenchTest::PsciVersion,
        BenchTest::Lpi,
    ];
    let results = benchmarks(&mut g, &tests, 500, 2);
    assert_eq!(results.len(), 5);
    clock_absent(&mut g, clock_reply::Absence::OwnsEl2);
    print_benchmarks("gicv3 pci el2 smp2", &results, 62_500_000);
    // The secondary keeps serving: a second run, and the network loop still answers.
    benchmarks(&mut g, &[BenchTest::IpiRoundTrip], 100, 2);
    timestamped_echoes(&mut g, GuestMode::Irq, 5);
    power_off(&mut g);
}
