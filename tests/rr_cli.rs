//! `vmprobe rr` as users and scripts call it: the real binary, real sockets.
mod support;

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::rr::{closed_port, tcp, udp, Action};
use support::run::RR_KEYS;
use support::vmprobe_output as vmprobe;

/// A failed run: non-zero exit, exactly one line on stderr, no panic.
fn assert_one_line_failure(out: &Output, expect_code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(expect_code), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr:?}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn json_summary_has_contract_keys() {
    let server = udp(|_| Action::Echo);
    let addr = server.addr.to_string();
    let out = vmprobe(&[
        "rr", "--target", &addr, "--count", "300", "--format", "json", "--size", "32",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for key in RR_KEYS.into_iter().filter(|&k| k != "proto") {
        assert!(v[key].is_number(), "{key}: {v}");
    }
    assert_eq!(v["transactions"], 300);
    assert_eq!(v["lost"], 0);
    // The run's parameters come along.
    assert_eq!(v["target"], addr.as_str());
    assert_eq!(v["proto"], "udp");
    assert_eq!(v["size"], 32);
    assert_eq!(v["count"], 300);
    assert_eq!(v["timeout_us"], 1_000_000.0);
    assert!(v["outliers"].as_array().is_some_and(|o| o.len() == 10));
}

#[test]
fn text_first_line_reads_like_netperf() {
    let server = tcp(64, |_| Action::Echo);
    let addr = server.addr.to_string();
    let out = vmprobe(&[
        "rr",
        "--target",
        &addr,
        "--proto",
        "tcp",
        "--count",
        "100",
        "--interval",
        "1ms",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let first: Vec<f64> = text
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    // min mean max stddev rate
    assert_eq!(first.len(), 5, "{text}");
    assert!(first[0] <= first[1] && first[1] <= first[2], "{text}");
    assert!(first[4] > 0.0);
    assert!(text.contains("100 ok, 0 lost"), "{text}");
}

#[test]
fn csv_summary_is_header_and_row() {
    let server = udp(|_| Action::Echo);
    let out = vmprobe(&[
        "rr",
        "--target",
        &server.addr.to_string(),
        "--count",
        "50",
        "--format",
        "csv",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let header: Vec<&str> = lines[0].split(',').collect();
    let row: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(header.len(), row.len());
    let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(col("transactions"), "50");
    assert!(col("p99_us").parse::<f64>().unwrap() > 0.0);
}

#[test]
fn bad_arguments_fail_in_one_line() {
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["rr", "--target", "127.0.0.1:7", "--size", "0"],
            1,
            "--size",
        ),
        (
            &["rr", "--target", "127.0.0.1:7", "--count", "0"],
            1,
            "--count",
        ),
        (
            &["rr", "--target", "127.0.0.1:7", "--interval", "10"],
            2,
            "no unit",
        ),
        (
            &["rr", "--target", "127.0.0.1:7", "--timeout", "soon"],
            2,
            "--timeout",
        ),
        (
            &[
                "rr",
                "--target",
                "127.0.0.1:7",
                "--count",
                "5",
                "--duration",
                "1s",
            ],
            2,
            "--duration",
        ),
        (
            &["rr", "--target", "127.0.0.1:7", "--burst", "3"],
            2,
            "--interval",
        ),
        (
            &["rr", "--target", "127.0.0.1:7", "--proto", "sctp"],
            2,
            "sctp",
        ),
        (&["rr"], 2, "--target"),
        (&["rr", "--target", "no-port-here"], 1, "no-port-here"),
        (&["rr", "--target", "host.invalid:7"], 1, "host.invalid"),
        (
            &[
                "rr",
                "--target",
                "127.0.0.1:7",
                "--log",
                "/nonexistent-dir/x.csv",
            ],
            1,
            "/nonexistent-dir/x.csv",
        ),
    ];
    for (args, code, needle) in cases {
        assert_one_line_failure(&vmprobe(args), *code, needle);
    }
}

#[test]
fn closed_ports_fail_in_one_line() {
    let target = format!("127.0.0.1:{}", closed_port());
    assert_one_line_failure(
        &vmprobe(&["rr", "--target", &target, "--proto", "tcp", "--count", "3"]),
        1,
        "refused",
    );
    assert_one_line_failure(
        &vmprobe(&["rr", "--target", &target, "--proto", "udp", "--count", "3"]),
        1,
        "refused",
    );
}

#[test]
fn sigint_stops_and_still_reports_and_logs() {
    let server = udp(|_| Action::Echo);
    let dir = std::env::temp_dir().join(format!("vmprobe-rr-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("sigint.csv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmprobe"))
        .args([
            "rr",
            "--target",
            &server.addr.to_string(),
            "--duration",
            "60s",
            "--interval",
            "1ms",
        ])
        .args(["--format", "json", "--log", log.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run is measuring (rows reach the log), then interrupt it.
    let started = Instant::now();
    while std::fs::read_to_string(&log).map_or(0, |t| t.lines().count()) < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no samples logged"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: sending a signal to our own child process.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(40) {
            child.kill().unwrap();
            panic!("vmprobe did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?} {stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("summary printed");
    assert_eq!(v["interrupted"], true);
    let done = v["transactions"].as_u64().unwrap()
        + v["lost"].as_u64().unwrap()
        + v["errors"].as_u64().unwrap();
    assert!(done >= 19);
    assert_eq!(v["sent"].as_u64().unwrap(), done);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with('\n'));
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(
        rows.len() as u64,
        done,
        "every measured transaction is in the log"
    );
    assert!(rows.iter().all(|r| r.split(',').count() == 7));
}

/// Memory does not grow with run length: a long back-to-back run stays far below 50 MB.
#[test]
#[allow(clippy::zombie_processes)] // reaped by wait4, which also reports its peak RSS
fn memory_stays_bounded() {
    let server = udp(|_| Action::Echo);
    let dir = std::env::temp_dir().join(format!("vmprobe-rr-mem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("mem.csv");
    let child = Command::new(env!("CARGO_BIN_EXE_vmprobe"))
        .args([
            "rr",
            "--target",
            &server.addr.to_string(),
            "--count",
            "100000",
            "--format",
            "json",
        ])
        .args([
            "--log",
            log.to_str().unwrap(),
            "--hist",
            dir.join("mem.hlog").to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `status` and `usage` are valid for writes; `pid` is our child.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    let max_rss_mb = usage.ru_maxrss as f64 / 1024.0;
    assert!(max_rss_mb < 50.0, "peak RSS {max_rss_mb} MB");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().count(),
        100_001
    );
}

/// The target hangs up mid-run: what was measured is still printed, then one error line and
/// a non-zero exit.
#[test]
fn tcp_hang_up_mid_run_reports_then_fails() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut frame = [0u8; 16];
        for _ in 0..10 {
            conn.read_exact(&mut frame).unwrap();
            conn.write_all(&frame).unwrap();
        }
        // Hang up with a FIN, then read until the client goes: closing with its next request
        // unread would send a reset instead, when that request wins the race.
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest);
    });
    let out = vmprobe(&[
        "rr",
        "--target",
        &addr.to_string(),
        "--proto",
        "tcp",
        "--size",
        "16",
        "--warmup",
        "0",
        "--count",
        "50",
        "--format",
        "json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // The message for a reset (a close with data unread) is tested beside the transport.
    assert!(
        stderr.contains("connection closed by the target"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary printed");
    assert_eq!(v["transactions"], 10);
    assert!(v["error"]
        .as_str()
        .is_some_and(|e| e.contains("connection closed by the target")));
}
