//! The estimators against synthetic clocks of known offset, drift and path asymmetry.

use super::*;

/// splitmix64: a deterministic PRNG, so every run sees the same "noise".
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

/// A guest counter with a known relation to host time.
#[derive(Clone, Copy)]
struct Clock {
    hz: u32,
    drift_ppm: f64,
    t0: i64,
    g0: u64,
}

impl Clock {
    fn rate(&self) -> f64 {
        f64::from(self.hz) / 1e9 * (1.0 + self.drift_ppm * 1e-6)
    }
    /// The counter reading at host time `t` (truncated, as hardware does).
    fn ticks(&self, t: f64) -> u64 {
        self.g0 + ((t - self.t0 as f64) * self.rate()).floor() as u64
    }
    /// The host time at which the counter turned to `g`.
    fn host_ns(&self, g: u64) -> f64 {
        self.t0 as f64 + (g - self.g0) as f64 / self.rate()
    }
}

/// Path model: one-way delays are `base + exp(noise)`, with rare large outliers.
struct Path {
    h2g_base: f64,
    g2h_base: f64,
    noise_mean: f64,
    outlier_rate: f64,
}

struct Truth {
    exchange: Exchange,
    h2g: f64,
    g2h: f64,
}

fn simulate(clock: Clock, path: &Path, n: usize, seed: u64) -> Vec<Truth> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let t1 = clock.t0 + 1_000_000 + i as i64 * 10_000_000 + (rng.unit() * 1e6) as i64;
            let delay = |base: f64, rng: &mut Rng| {
                let outlier = if rng.unit() < path.outlier_rate {
                    200e3 + rng.unit() * 5e6
                } else {
                    0.0
                };
                base + rng.exp(path.noise_mean) + outlier
            };
            let h2g = delay(path.h2g_base, &mut rng);
            let arrive = t1 as f64 + h2g;
            let depart = arrive + 2e3 + rng.unit() * 8e3;
            let g2h = delay(path.g2h_base, &mut rng);
            let t4 = (depart + g2h).ceil() as i64;
            Truth {
                exchange: Exchange {
                    t1_ns: t1,
                    g_rx: clock.ticks(arrive),
                    g_tx: clock.ticks(depart),
                    t4_ns: t4,
                },
                h2g,
                g2h,
            }
        })
        .collect()
}

const HZ: u32 = 62_500_000;

fn clock(drift_ppm: f64) -> Clock {
    Clock {
        hz: HZ,
        drift_ppm,
        t0: 5_000_000_000_000,
        g0: 123_456_789,
    }
}

fn exchanges(truth: &[Truth]) -> Vec<Exchange> {
    truth.iter().map(|t| t.exchange).collect()
}

/// Largest |mapped - true| over every reading, and whether each is within its stated bound.
fn check_within_bound(m: &ClockMapping, clock: Clock, truth: &[Truth]) -> f64 {
    let mut worst = 0.0f64;
    for t in truth {
        for g in [t.exchange.g_rx, t.exchange.g_tx] {
            let err = m.to_host_ns(g) as f64 - clock.host_ns(g);
            let bound = m.uncertainty_at_ns(g);
            assert!(
                err.abs() <= bound,
                "error {err} ns beyond bound {bound} ns at tick {g}"
            );
            worst = worst.max(err.abs());
        }
    }
    worst
}

const SYMMETRIC: Path = Path {
    h2g_base: 40e3,
    g2h_base: 40e3,
    noise_mean: 5e3,
    outlier_rate: 0.02,
};

#[test]
fn drift_and_offset_within_stated_uncertainty() {
    for (drift, seed) in [(50.0, 1), (-50.0, 2), (0.0, 3), (200.0, 4)] {
        let c = clock(drift);
        let truth = simulate(c, &SYMMETRIC, 3000, seed);
        let m = min_rtt::estimate(&exchanges(&truth), HZ, &MinRttConfig::default()).unwrap();
        assert_eq!(m.method, Method::MinRttFit);
        check_within_bound(&m, c, &truth);
        let du = m.drift_uncertainty_ppm.unwrap();
        assert!(
            (m.drift_ppm - drift).abs() <= du,
            "drift {} vs {drift} +- {du}",
            m.drift_ppm
        );
        // The bound must mean something: about half the envelope round trip (80 us), not more.
        assert!(m.uncertainty_ns < 60e3, "uncertainty {}", m.uncertainty_ns);
        // Worst case over 30 s: opposite errors of ~42 us at both ends, ~3 ppm.
        assert!(du < 5.0, "drift uncertainty {du} ppm");
        let asym = m.asymmetry_bound_ns.unwrap();
        assert!(
            (40e3..=m.uncertainty_ns).contains(&asym),
            "asymmetry bound {asym}"
        );
        assert_eq!((m.exchanges, m.rejected), (3000, 0));
        // Offset: host minus nominal guest time at the reference; check it against the truth.
        let g = m.ref_ticks;
        let nominal_guest_ns = g as f64 * 1e9 / f64::from(HZ);
        assert!((m.offset_ns as f64 - (c.host_ns(g) - nominal_guest_ns)).abs() <= m.uncertainty_ns);
    }
}

#[test]
fn asymmetry_is_a_bias_within_the_asymmetry_bound() {
    let path = Path {
        h2g_base: 60e3,
        g2h_base: 20e3,
        noise_mean: 2e3,
        outlier_rate: 0.01,
    };
    let c = clock(-50.0);
    let truth = simulate(c, &path, 3000, 7);
    let m = min_rtt::estimate(&exchanges(&truth), HZ, &MinRttConfig::default()).unwrap();
    let worst = check_within_bound(&m, c, &truth);
    // Equal-delay assumption: the map runs (g2h - h2g) / 2 = -20 us off, whatever the data.
    let mut errs: Vec<f64> = truth
        .iter()
        .map(|t| m.to_host_ns(t.exchange.g_rx) as f64 - c.host_ns(t.exchange.g_rx))
        .collect();
    let bias = fit::median(&mut errs);
    assert!((bias + 20e3).abs() < 2e3, "bias {bias}");
    assert!(worst <= m.asymmetry_bound_ns.unwrap() + 2e3);
    // So one-way delays come out as if symmetric: ~40 us each way, not 60/20.
    let mut h2g: Vec<f64> = truth
        .iter()
        .map(|t| m.one_way(&t.exchange).h2g_ns as f64 - t.h2g)
        .collect();
    assert!((fit::median(&mut h2g) + 20e3).abs() < 2e3);
}

#[test]
fn one_way_parts_sum_to_the_rtt_and_match_the_truth() {
    let c = clock(50.0);
    let truth = simulate(c, &SYMMETRIC, 1000, 11);
    let m = min_rtt::estimate(&exchanges(&truth), HZ, &MinRttConfig::default()).unwrap();
    // 62.5 MHz nominal, guest 50 ppm fast: a guest tick is a little shorter than 16 ns.
    let tick = m.duration_ns(1_000_000) / 1e6;
    assert!((tick - 16.0 / 1.000_05).abs() < 16.0 * m.drift_uncertainty_ppm.unwrap() * 1e-6);
    for t in &truth {
        let w = m.one_way(&t.exchange);
        assert_eq!(w.h2g_ns + w.residence_ns + w.g2h_ns, w.rtt_ns);
        assert_eq!(w.rtt_ns, t.exchange.t4_ns - t.exchange.t1_ns);
        let bound = m.uncertainty_at_ns(t.exchange.g_rx) + 1.0;
        assert!(
            (w.h2g_ns as f64 - t.h2g).abs() <= bound,
            "h2g {} vs {}",
            w.h2g_ns,
            t.h2g
        );
        let bound = m.uncertainty_at_ns(t.exchange.g_tx) + 1.0;
        assert!(
            (w.g2h_ns as f64 - t.g2h).abs() <= bound + 1.0,
            "g2h {} vs {}",
            w.g2h_ns,
            t.g2h
        );
    }
}

#[test]
fn a_window_of_delayed_packets_is_left_out() {
    let c = clock(20.0);
    let mut truth = simulate(c, &SYMMETRIC, 640, 5);
    // Every packet of the 3rd window (of 32) queued behind bulk traffic for 2 ms.
    for t in &mut truth[40..60] {
        t.exchange.t4_ns += 2_000_000;
        t.g2h += 2e6;
    }
    let m = min_rtt::estimate(&exchanges(&truth), HZ, &MinRttConfig::default()).unwrap();
    assert!(m.points_used < 32);
    check_within_bound(&m, c, &truth);
    // Had the delayed window's point been fitted, its 1 ms half-width would be in the bound.
    assert!(m.uncertainty_ns < 60e3, "uncertainty {}", m.uncertainty_ns);
}

#[test]
fn impossible_exchanges_are_rejected() {
    let c = clock(0.0);
    let mut ex = exchanges(&simulate(c, &SYMMETRIC, 100, 9));
    ex[3].t4_ns = ex[3].t1_ns - 1; // reply before request
    ex[4].g_tx = ex[4].g_rx - 1; // guest sent before it received
    ex[5].t4_ns = ex[5].t1_ns + 100; // residence longer than the round trip
    let m = min_rtt::estimate(&ex, HZ, &MinRttConfig::default()).unwrap();
    assert_eq!((m.exchanges, m.rejected), (100, 3));
    assert_eq!(
        min_rtt::estimate(&ex[3..6], HZ, &MinRttConfig::default()),
        Err(ClockError::NoExchanges {
            total: 3,
            rejected: 3
        })
    );
    assert_eq!(
        min_rtt::estimate(&ex, 0, &MinRttConfig::default()),
        Err(ClockError::ZeroFrequency)
    );
}

#[test]
fn a_single_exchange_gives_offset_but_no_drift() {
    let c = clock(50.0);
    let truth = simulate(c, &SYMMETRIC, 1, 3);
    let m = min_rtt::estimate(&exchanges(&truth), HZ, &MinRttConfig::default()).unwrap();
    assert_eq!(m.drift_uncertainty_ppm, None);
    assert!(m.drift_ppm.abs() < 1e-9);
    check_within_bound(&m, c, &truth);
}

/// A host whose clock runs `slew_ppm` off its counter; the guest reads the same counter.
fn shared_setup(
    slew_ppm: f64,
    guest_kind: CounterKind,
) -> (Clock, Vec<Truth>, SharedCounter, GuestCounter) {
    let c = clock(-slew_ppm);
    let truth = simulate(c, &SYMMETRIC, 500, 21);
    let mut rng = Rng(99);
    let readings = (0..8)
        .map(|i| {
            let before = c.t0 + i * 700_000_000;
            let width = 50.0 + rng.unit() * 150.0;
            let at = before as f64 + rng.unit() * width;
            HostCounterReading {
                host_before_ns: before,
                counter: c.ticks(at),
                host_after_ns: before + width.ceil() as i64,
            }
        })
        .collect();
    let shared = SharedCounter {
        readings,
        counter_hz: HZ,
        guest_minus_host_ticks: None,
    };
    (
        c,
        truth,
        shared,
        GuestCounter {
            cntfrq_hz: HZ,
            kind: guest_kind,
        },
    )
}

#[test]
fn shared_counter_is_exact_to_the_read_brackets() {
    let (c, truth, shared, guest) = shared_setup(30.0, CounterKind::Physical);
    let m = select(
        &exchanges(&truth),
        guest,
        Some(&Exact::SharedCounter(shared.clone())),
        &MinRttConfig::default(),
    )
    .unwrap();
    assert_eq!(m.method, Method::SharedCounter);
    assert_eq!(m.fallback, None);
    assert_eq!(m.asymmetry_bound_ns, None);
    assert!(m.uncertainty_ns < 300.0, "uncertainty {}", m.uncertainty_ns);
    check_within_bound(&m, c, &truth);
    assert!((m.drift_ppm + 30.0).abs() <= m.drift_uncertainty_ppm.unwrap());
}

#[test]
fn shared_counter_refusals_fall_back_to_the_estimate() {
    let (c, truth, shared, guest) = shared_setup(0.0, CounterKind::Virtual);
    let ex = exchanges(&truth);
    assert_eq!(
        shared::estimate(&ex, guest, &shared),
        Err(ClockError::VirtualCounter)
    );
    let m = select(
        &ex,
        guest,
        Some(&Exact::SharedCounter(shared.clone())),
        &MinRttConfig::default(),
    )
    .unwrap();
    assert_eq!(m.method, Method::MinRttFit);
    assert!(m.fallback.as_deref().unwrap().contains("virtual counter"));
    check_within_bound(&m, c, &truth);

    let physical = GuestCounter {
        kind: CounterKind::Physical,
        ..guest
    };
    let wrong = GuestCounter {
        cntfrq_hz: 1_000_000_000,
        ..physical
    };
    assert!(matches!(
        shared::estimate(&ex, wrong, &shared),
        Err(ClockError::FrequencyMismatch { .. })
    ));
    let empty = SharedCounter {
        readings: vec![],
        ..shared.clone()
    };
    assert_eq!(
        shared::estimate(&ex, physical, &empty),
        Err(ClockError::NoReadings)
    );

    // Counters that are not shared after all (a 1 ms offset): packets would arrive before they
    // were sent, so the exact path is refused.
    let off = SharedCounter {
        guest_minus_host_ticks: Some(62_500),
        ..shared
    };
    let err = shared::estimate(&ex, physical, &off).unwrap_err();
    assert!(matches!(err, ClockError::Inconsistent { .. }), "{err}");
    let m = select(
        &ex,
        physical,
        Some(&Exact::SharedCounter(off)),
        &MinRttConfig::default(),
    )
    .unwrap();
    assert_eq!(m.method, Method::MinRttFit);
}

#[test]
fn exchange_from_echo_reply_needs_both_stamps() {
    use vmprobe_proto::{echo_reply, GuestMode};
    let mut reply = echo_reply::Repr {
        host_send_ns: 1_000,
        request_len: 48,
        cntfrq_hz: HZ,
        counter: CounterKind::Virtual,
        mode: GuestMode::Irq,
        irq_entry: Some(5),
        rx_seen: Some(10),
        handled: 12,
        tx: echo_reply::TxStamps {
            tx_notify: Some(20),
            prev_notify_ticks: None,
        },
        padding: 0,
    };
    assert_eq!(
        Exchange::from_echo(&reply, 9_000),
        Some(Exchange {
            t1_ns: 1_000,
            g_rx: 10,
            g_tx: 20,
            t4_ns: 9_000
        })
    );
    reply.tx.tx_notify = None;
    assert_eq!(Exchange::from_echo(&reply, 9_000), None);
}

#[test]
fn mapping_serializes_its_contract_fields() {
    let truth = simulate(clock(0.0), &SYMMETRIC, 50, 1);
    let m = min_rtt::estimate(&exchanges(&truth), HZ, &MinRttConfig::default()).unwrap();
    let v = serde_json::to_value(&m).unwrap();
    assert_eq!(v["method"], "min-rtt-fit");
    for key in [
        "offset_ns",
        "drift_ppm",
        "uncertainty_ns",
        "asymmetry_bound_ns",
        "cntfrq_hz",
    ] {
        assert!(v.get(key).is_some(), "{key} missing from {v}");
    }
    assert!(v.get("fallback").is_none());
}

/// Host CLOCK_REALTIME minus CLOCK_MONOTONIC in the synthetic runs below.
const REALTIME_STEP: i64 = 1_764_000_000_000_000_000;

/// KVM PTP calls against clock `c`: `per_end` calls at each end of the run (before `truth`'s
/// first exchange, after its last), each with 8 exact readings 1 us apart, answered in 60 us,
/// and a realtime bracket of 20 to 220 ns around a known step.
fn ptp_calls(c: Clock, truth: &[Truth], per_end: usize, kind: CounterKind) -> KvmPtp {
    use vmprobe_proto::clock_reply::Reading;
    let mut rng = Rng(7);
    let first = truth.first().unwrap().exchange.t1_ns;
    let last = truth.last().unwrap().exchange.t4_ns;
    let starts = (0..per_end)
        .map(|i| first - 800_000 + i as i64 * 100_000)
        .chain((0..per_end).map(|i| last + 1_000_000 + i as i64 * 100_000));
    let calls = starts
        .map(|sent| {
            let readings = (0..8)
                .map(|j| {
                    // The hypervisor reads the counter once and converts that read to realtime.
                    let counter = c.ticks((sent + 20_000 + j * 1_000) as f64);
                    Reading {
                        realtime_ns: (c.host_ns(counter).round() as i64 + REALTIME_STEP) as u64,
                        counter,
                    }
                })
                .collect();
            let received = sent + 60_000;
            let width = 20 + (rng.unit() * 200.0) as i64;
            let before = received + 500;
            let at = before + (rng.unit() * width as f64) as i64;
            PtpCall {
                counter: kind,
                readings,
                sent_ns: sent,
                received_ns: received,
                bracket: RealtimeBracket {
                    mono_before_ns: before,
                    realtime_ns: at + REALTIME_STEP,
                    mono_after_ns: before + width,
                },
            }
        })
        .collect();
    KvmPtp {
        calls,
        refused: vec![],
    }
}

#[test]
fn kvm_ptp_recovers_known_offset_and_drift_to_the_brackets() {
    for drift in [-80.0, 0.0, 35.0] {
        let c = clock(drift);
        let truth = simulate(c, &SYMMETRIC, 500, 5);
        let ptp = ptp_calls(c, &truth, 4, CounterKind::Virtual);
        let guest = GuestCounter {
            cntfrq_hz: HZ,
            kind: CounterKind::Virtual,
        };
        let exact = Exact::KvmPtp(ptp);
        let m = select(
            &exchanges(&truth),
            guest,
            Some(&exact),
            &MinRttConfig::default(),
        )
        .unwrap();
        assert_eq!(m.method, Method::KvmPtp);
        assert_eq!(m.fallback, None);
        assert_eq!(m.asymmetry_bound_ns, None);
        assert_eq!(m.points_used, 64);
        // Each call's step is off by at most half its bracket (<= 110 ns), which shows as a
        // residual plus that half-width: the bound stays within the widest bracket, plus the
        // readings' ns rounding. No network delay enters it.
        assert!(m.uncertainty_ns < 225.0, "uncertainty {}", m.uncertainty_ns);
        let worst = check_within_bound(&m, c, &truth);
        assert!(worst < 225.0, "worst error {worst} ns");
        assert!(
            (m.drift_ppm - drift).abs() <= m.drift_uncertainty_ppm.unwrap(),
            "drift {} vs {drift} +- {:?}",
            m.drift_ppm,
            m.drift_uncertainty_ppm
        );
        assert!((m.drift_ppm - drift).abs() < 0.05, "drift {}", m.drift_ppm);
        // Offset: host ns minus guest ns (ticks at the nominal rate) at the reference point.
        let (ref_ticks, ref_host) = m.reference();
        let guest_ns = i128::from(ref_ticks) * 1_000_000_000 / i128::from(HZ);
        assert_eq!(m.offset_ns as i128, i128::from(ref_host) - guest_ns);
        assert!((ref_host as f64 - c.host_ns(ref_ticks)).abs() <= m.uncertainty_ns);
        // And the split is exact: every one-way delay within the bound of the true one.
        for t in &truth {
            let w = m.one_way(&t.exchange);
            assert!((w.h2g_ns as f64 - t.h2g).abs() <= m.uncertainty_ns + 16.0);
            assert!((w.g2h_ns as f64 - t.g2h).abs() <= m.uncertainty_ns + 16.0);
            assert_eq!(w.h2g_ns + w.residence_ns + w.g2h_ns, w.rtt_ns);
        }
    }
}

#[test]
fn kvm_ptp_uses_only_the_counter_the_guest_stamps_with() {
    let c = clock(10.0);
    let truth = simulate(c, &SYMMETRIC, 100, 8);
    let mut ptp = ptp_calls(c, &truth, 2, CounterKind::Virtual);
    // Physical-counter readings 1 s off: they must not be mixed in.
    let mut physical = ptp_calls(c, &truth, 2, CounterKind::Physical);
    for call in &mut physical.calls {
        for r in &mut call.readings {
            r.counter += u64::from(HZ);
        }
    }
    ptp.calls.extend(physical.calls);
    let virt = GuestCounter {
        cntfrq_hz: HZ,
        kind: CounterKind::Virtual,
    };
    let m = kvm_ptp::estimate(&exchanges(&truth), virt, &ptp).unwrap();
    assert_eq!(m.points_used, 32);
    check_within_bound(&m, c, &truth);
}

#[test]
fn kvm_ptp_refusals_fall_back_naming_the_reason() {
    let c = clock(0.0);
    let truth = simulate(c, &SYMMETRIC, 200, 9);
    let ex = exchanges(&truth);
    let phys = GuestCounter {
        cntfrq_hz: HZ,
        kind: CounterKind::Physical,
    };
    // The guest said why it has no service: that reason is the fallback.
    let why = "kvm-ptp absent in the guest: PSCI has no SMCCC_VERSION (SMCCC 1.0)";
    let absent = KvmPtp {
        calls: vec![],
        refused: vec![(CounterKind::Physical, why.to_string())],
    };
    assert_eq!(
        kvm_ptp::estimate(&ex, phys, &absent),
        Err(ClockError::PtpAbsent(why.into()))
    );
    let m = select(
        &ex,
        phys,
        Some(&Exact::KvmPtp(absent)),
        &MinRttConfig::default(),
    )
    .unwrap();
    assert_eq!(m.method, Method::MinRttFit);
    assert_eq!(m.fallback.as_deref(), Some(why));
    check_within_bound(&m, c, &truth);
    let m = select(
        &ex,
        phys,
        Some(&Exact::Unavailable("no answer".into())),
        &MinRttConfig::default(),
    )
    .unwrap();
    assert_eq!(m.fallback.as_deref(), Some("no answer"));

    // Readings of the other counter only.
    let virt_only = ptp_calls(c, &truth, 2, CounterKind::Virtual);
    assert_eq!(
        kvm_ptp::estimate(&ex, phys, &virt_only),
        Err(ClockError::NoPtpReadings {
            counter: "physical"
        })
    );

    // Realtime stepped by 1 ms between a call and its bracket: the reading lands outside its
    // own round trip.
    let mut stepped = ptp_calls(c, &truth, 2, CounterKind::Physical);
    stepped.calls[3].bracket.realtime_ns += 1_000_000;
    let err = kvm_ptp::estimate(&ex, phys, &stepped).unwrap_err();
    assert!(
        matches!(err, ClockError::PtpOutsideCall { call: 3, .. }),
        "{err}"
    );

    // Readings consistent with their calls but 200 us early against the echoes (e.g. the
    // guest counter is not the one the echoes were stamped with): packets would arrive before
    // they were sent.
    let mut off = ptp_calls(c, &truth, 2, CounterKind::Physical);
    for call in &mut off.calls {
        for r in &mut call.readings {
            r.realtime_ns += 200_000 - 30_000;
        }
        call.received_ns += 200_000;
    }
    let err = kvm_ptp::estimate(&ex, phys, &off).unwrap_err();
    assert!(
        matches!(
            err,
            ClockError::Inconsistent {
                method: Method::KvmPtp,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().starts_with("kvm-ptp mapping contradicts"));
    let m = select(
        &ex,
        phys,
        Some(&Exact::KvmPtp(off)),
        &MinRttConfig::default(),
    )
    .unwrap();
    assert_eq!(m.method, Method::MinRttFit);
    assert!(m.fallback.unwrap().contains("kvm-ptp mapping contradicts"));
}
