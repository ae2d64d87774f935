//! Helpers for the `run` / `matrix` / `quickstart` tests: the binary, run-directory state and
//! the leftover checks of `vm`.
use std::path::Path;
use std::time::{Duration, Instant};

pub use super::vm::*;

/// Every key of `vmprobe rr --format json` that a protocol object must carry.
pub const RR_KEYS: [&str; 14] = [
    "transactions",
    "lost",
    "errors",
    "min_us",
    "mean_us",
    "max_us",
    "stddev_us",
    "p50_us",
    "p90_us",
    "p99_us",
    "p999_us",
    "p9999_us",
    "rate_tps",
    "proto",
];

/// The `config` keys users' scripts rely on.
pub const CONFIG_KEYS: [&str; 9] = [
    "net",
    "boot",
    "gic",
    "transport",
    "accel",
    "mode",
    "vhost",
    "qemu_version",
    "host_kernel",
];

/// Asserts the run recorded in `run` left nothing behind.
pub fn assert_run_cleaned_up(run: &Path, host_links_before: &[String]) {
    let (pid, ns) = run_state(run);
    assert_no_leftovers(pid, &ns, host_links_before);
}

/// Waits until `file` has more than `lines` lines.
pub fn wait_for_lines(file: &Path, lines: usize, t: Duration) {
    let end = Instant::now() + t;
    while std::fs::read_to_string(file)
        .map(|s| s.lines().count())
        .unwrap_or(0)
        <= lines
    {
        assert!(
            Instant::now() < end,
            "{} never reached {lines} lines",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Checks one protocol object of `run`'s JSON: every rr key, transactions > 0, no wrong reply.
pub fn check_proto(v: &serde_json::Value, proto: &str) -> u64 {
    let p = &v[proto];
    for k in RR_KEYS {
        assert!(p.get(k).is_some(), "{proto}.{k} missing: {p}");
    }
    assert_eq!(p["proto"], proto);
    let n = p["transactions"].as_u64().unwrap();
    assert!(n > 0, "{proto}: no transactions");
    assert_eq!(p["errors"], 0, "{proto}: wrong replies");
    assert!(p["min_us"].as_f64().unwrap() > 0.0);
    n
}
