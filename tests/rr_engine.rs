//! The `rr` engine through its library API against real loopback echo servers.
mod support;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use support::rr::{tcp, udp, Action};
use vmprobe::rr::{self, Control, Limit, Pacing, Progress, Proto, RrOptions, RrReport};

fn options(addr: std::net::SocketAddr, proto: Proto, count: u64) -> RrOptions {
    RrOptions {
        proto,
        limit: Limit::Count(count),
        warmup: 0,
        timeout: Duration::from_secs(2),
        size: 48,
        ..RrOptions::new(addr.to_string())
    }
}

fn run(o: &RrOptions) -> RrReport {
    let stop = AtomicBool::new(false);
    let progress = Progress::default();
    rr::run(
        o,
        Control {
            stop: &stop,
            progress: &progress,
            on_sample: None,
        },
    )
    .expect("run")
    .report
}

#[test]
fn udp_echo_all_replies() {
    let server = udp(|_| Action::Echo);
    let r = run(&RrOptions {
        warmup: 5,
        ..options(server.addr, Proto::Udp, 200)
    });
    assert_eq!(
        (r.sent, r.transactions, r.lost, r.errors, r.late, r.stray),
        (200, 200, 0, 0, 0, 0)
    );
    assert_eq!(
        server.requests.load(std::sync::atomic::Ordering::SeqCst),
        205
    );
    let (min, p50, max) = (
        r.rtt.min_us.unwrap(),
        r.rtt.p50_us.unwrap(),
        r.rtt.max_us.unwrap(),
    );
    assert!(0.0 < min && min <= p50 && p50 <= max, "{min} {p50} {max}");
    assert_eq!(r.rtt.samples, 200);
    assert!(r.rate_tps > 0.0);
    assert_eq!(r.outliers.len(), 10);
    assert!(r.outliers[0].rtt_us == max);
}

#[test]
fn tcp_echo_all_replies() {
    let server = tcp(48, |_| Action::Echo);
    let r = run(&options(server.addr, Proto::Tcp, 200));
    assert_eq!((r.transactions, r.lost, r.errors, r.late), (200, 0, 0, 0));
}

#[test]
fn tcp_connection_uses_nodelay() {
    let server = tcp(8, |_| Action::Echo);
    match rr::connect(server.addr, Proto::Tcp, Duration::from_secs(1)).unwrap() {
        rr::Endpoint::Tcp(s) => {
            let t = rr::transport::TcpTransport::new(s, 8, false, Duration::from_secs(1)).unwrap();
            drop(t);
        }
        other => panic!("{other:?}"),
    }
    // The transport sets TCP_NODELAY on the stream it is given.
    let s = std::net::TcpStream::connect(server.addr).unwrap();
    let probe = s.try_clone().unwrap();
    let _t = rr::transport::TcpTransport::new(s, 8, false, Duration::from_secs(1)).unwrap();
    assert!(probe.nodelay().unwrap());
}

#[test]
fn udp_loss_every_fifth_request() {
    let server = udp(|n| {
        if n % 5 == 4 {
            Action::Drop
        } else {
            Action::Echo
        }
    });
    let r = run(&RrOptions {
        timeout: Duration::from_millis(100),
        ..options(server.addr, Proto::Udp, 50)
    });
    assert_eq!(
        (r.sent, r.transactions, r.lost, r.errors, r.late),
        (50, 40, 10, 0, 0)
    );
}

#[test]
fn udp_late_reply_is_not_the_next_ones() {
    // Reply 3 comes 350 ms after its request, long after its 100 ms timeout, while one of
    // the later requests (every 60 ms) waits for its own reply.
    let server = udp(|n| {
        if n == 3 {
            Action::Delay(Duration::from_millis(350))
        } else {
            Action::Echo
        }
    });
    let mut o = RrOptions {
        timeout: Duration::from_millis(100),
        ..options(server.addr, Proto::Udp, 12)
    };
    o.pacing = Some(Pacing {
        interval: Duration::from_millis(60),
        burst: 1,
    });
    let log = tempfile("late.csv");
    o.log = Some(log.clone());
    let r = run(&o);
    let rows = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        (r.transactions, r.lost, r.late, r.errors, r.stray),
        (11, 1, 1, 0, 0),
        "{rows}"
    );
    let lost: Vec<&str> = rows
        .lines()
        .filter(|l| l.split(',').nth(4) == Some("lost"))
        .collect();
    assert_eq!(lost.len(), 1);
    assert!(lost[0].starts_with("3,"), "{lost:?}");
    // Every reply that was counted was shorter than the delay: none is the late one.
    assert!(r.rtt.max_us.unwrap() < 350_000.0);
}

#[test]
fn tcp_late_reply_is_not_the_next_ones() {
    let server = tcp(48, |n| {
        if n == 2 {
            Action::Delay(Duration::from_millis(150))
        } else {
            Action::Echo
        }
    });
    let r = run(&RrOptions {
        timeout: Duration::from_millis(40),
        ..options(server.addr, Proto::Tcp, 8)
    });
    // The stream is ordered: the held reply also holds back the next ones, so requests 2, 3
    // and maybe 4 time out; each of their replies then arrives late and is skipped, never
    // taken for the reply of the request that is waiting.
    assert!(r.lost >= 1);
    assert_eq!(r.late, r.lost);
    assert_eq!((r.transactions + r.lost, r.errors, r.stray), (8, 0, 0));
}

#[test]
fn udp_wrong_replies_are_errors() {
    let server = udp(|n| {
        if n % 4 == 1 {
            Action::Corrupt(30)
        } else {
            Action::Echo
        }
    });
    let r = run(&options(server.addr, Proto::Udp, 40));
    assert_eq!((r.transactions, r.errors, r.lost), (30, 10, 0));
}

#[test]
fn tcp_wrong_replies_are_errors() {
    let server = tcp(48, |n| {
        if n % 4 == 1 {
            Action::Corrupt(47)
        } else {
            Action::Echo
        }
    });
    let r = run(&options(server.addr, Proto::Tcp, 40));
    assert_eq!((r.transactions, r.errors, r.lost), (30, 10, 0));
}

#[test]
fn udp_reply_with_corrupted_sequence_is_stray_then_lost() {
    let server = udp(|n| {
        if n == 2 {
            Action::Corrupt(0)
        } else {
            Action::Echo
        }
    });
    let r = run(&RrOptions {
        timeout: Duration::from_millis(100),
        ..options(server.addr, Proto::Udp, 5)
    });
    assert_eq!((r.transactions, r.lost, r.stray, r.errors), (4, 1, 1, 0));
}

#[test]
fn busy_poll_mode_works() {
    let server = udp(|_| Action::Echo);
    let r = run(&RrOptions {
        busy_poll: true,
        ..options(server.addr, Proto::Udp, 100)
    });
    assert_eq!((r.transactions, r.lost, r.errors), (100, 0, 0), "{r:?}");
    let server = tcp(48, |_| Action::Echo);
    let r = run(&RrOptions {
        busy_poll: true,
        ..options(server.addr, Proto::Tcp, 100)
    });
    assert_eq!((r.transactions, r.lost, r.errors), (100, 0, 0), "{r:?}");
}

/// Pacing never starts a burst early: burst k starts at least k intervals after the first
/// (a one-sided bound that a slow machine cannot break), and a count-limited paced run
/// sends exactly the requested number of transactions.
#[test]
fn pacing_spacing_and_count() {
    let server = udp(|_| Action::Echo);
    let mut o = options(server.addr, Proto::Udp, 20);
    o.pacing = Some(Pacing {
        interval: Duration::from_millis(5),
        burst: 2,
    });
    let log = tempfile("paced.csv");
    o.log = Some(log.clone());
    let r = run(&o);
    assert_eq!(r.transactions, 20);
    assert_eq!(
        server.requests.load(std::sync::atomic::Ordering::SeqCst),
        20
    );
    let mono: Vec<u64> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(mono.len(), 20);
    for k in 1..10 {
        let since_first = mono[2 * k] - mono[0];
        assert!(
            since_first >= k as u64 * 5_000_000,
            "burst {k} started {since_first} ns after the first"
        );
    }
    assert!(r.elapsed_s >= 0.045);
}

/// A duration-limited paced run cannot do more than burst × ⌈duration / interval⌉.
#[test]
fn pacing_bounds_a_timed_run() {
    let server = udp(|_| Action::Echo);
    let mut o = options(server.addr, Proto::Udp, 1);
    o.limit = Limit::Duration(Duration::from_millis(200));
    o.pacing = Some(Pacing {
        interval: Duration::from_millis(20),
        burst: 3,
    });
    let r = run(&o);
    assert!(r.transactions > 0);
    assert!(r.transactions <= 30, "{} transactions", r.transactions);
}

/// The Must-show: a server that holds every reply a known time reads as that time. Compared
/// as a difference of medians so the loopback cost cancels out.
#[test]
fn held_replies_read_as_the_hold_time() {
    let median = |hold_us: u64| {
        let server =
            support::rr::udp_realtime(move |_| Action::Hold(Duration::from_micros(hold_us)));
        let r = run(&RrOptions {
            warmup: 10,
            ..options(server.addr, Proto::Udp, 300)
        });
        assert_eq!(r.transactions, 300);
        r.rtt.p50_us.unwrap()
    };
    let (long, short) = (median(1000), median(200));
    let diff = long - short;
    assert!(
        (diff - 800.0).abs() < 80.0,
        "median 1000 us hold {long} us, 200 us hold {short} us: difference {diff} us"
    );
}

#[test]
fn log_has_every_transaction_and_hist_file_is_written() {
    let server = udp(|n| if n == 7 { Action::Drop } else { Action::Echo });
    let mut o = RrOptions {
        timeout: Duration::from_millis(100),
        ..options(server.addr, Proto::Udp, 100)
    };
    let (log, hist) = (tempfile("all.csv"), tempfile("all.hlog"));
    o.log = Some(log.clone());
    o.hist = Some(hist.clone());
    let r = run(&o);
    let text = std::fs::read_to_string(&log).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(
        rows[0],
        "seq,send_unix_ns,rtt_ns,lost,status,rx_sw_rtt_ns,send_mono_ns"
    );
    assert_eq!(rows.len(), 101);
    let seqs: Vec<u64> = rows[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(seqs, (0..100).collect::<Vec<_>>());
    assert_eq!(rows[8].split(',').nth(3), Some("1"));
    let rtt_sum: u64 = rows[1..]
        .iter()
        .filter_map(|l| l.split(',').nth(2).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    assert_eq!(r.transactions, 99);
    assert!(((rtt_sum as f64 / 99.0 / 1e3) - r.rtt.mean_us.unwrap()).abs() < 1e-3);
    let h = std::fs::read_to_string(&hist).unwrap();
    assert!(h.contains("Tag=rtt,"), "{h}");
}

fn tempfile(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vmprobe-rr-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// An echo service that goes away for a moment (the kernel answers ICMP port unreachable)
/// and comes back: the run goes on, the requests in the gap are lost, nothing is fatal.
#[test]
fn udp_service_restart_mid_run_is_loss_not_failure() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        for _ in 0..20 {
            let (n, peer) = socket.recv_from(&mut buf).unwrap();
            socket.send_to(&buf[..n], peer).unwrap();
        }
        drop(socket);
        std::thread::sleep(Duration::from_millis(150));
        let socket = std::net::UdpSocket::bind(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            socket.send_to(&buf[..n], peer).unwrap();
        }
    });
    let mut o = RrOptions {
        timeout: Duration::from_millis(100),
        ..options(addr, Proto::Udp, 40)
    };
    o.pacing = Some(Pacing {
        interval: Duration::from_millis(20),
        burst: 1,
    });
    let r = run(&o);
    assert_eq!(r.error, None);
    assert!(r.lost >= 1, "{r:?}");
    assert_eq!(r.transactions + r.lost, 40, "{r:?}");
    assert!(r.transactions >= 10, "{r:?}");
}
