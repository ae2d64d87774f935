//! `vmprobe micro`: the benchmark client against the simulated guest (known samples, pulled in
//! many chunks), and the real command under QEMU TCG.

mod probe_sim;
mod support;

use std::process::Command;

use probe_sim::{SimConfig, SimGuest};
use serde_json::Value;
use vmprobe::probe::micro::{MicroClient, MicroError, CHUNK};
use vmprobe_proto::error_reply::Code;
use vmprobe_proto::BenchTest;

#[test]
fn every_test_comes_back_whole_from_the_simulated_guest() {
    let sim = SimGuest::start(SimConfig::default());
    let mut client = MicroClient::connect(sim.addr).unwrap();
    // More samples than one chunk holds, and not a multiple of it.
    let n = u32::from(CHUNK) * 3 + 7;
    for test in BenchTest::ALL {
        if test == BenchTest::IpiRoundTrip {
            continue;
        }
        let r = client.run(test, n).unwrap();
        assert_eq!(r.iterations, u64::from(n), "{test}");
        // The simulator's samples: id * 100 + (i % 10) ticks of 16 ns.
        let base = f64::from(test.id()) * 100.0 * 16.0;
        assert_eq!((r.min_ns, r.max_ns), (base, base + 9.0 * 16.0), "{test}");
        assert_eq!(r.p50_ns, base + 4.0 * 16.0, "{test}");
        assert!(
            (r.mean_ns - (base + 4.5 * 16.0)).abs() < 0.5,
            "{test}: {}",
            r.mean_ns
        );
        assert_eq!(r.cntfrq_hz, 62_500_000);
    }
}

#[test]
fn a_refused_test_says_why() {
    let sim = SimGuest::start(SimConfig::default());
    let mut client = MicroClient::connect(sim.addr).unwrap();
    match client.run(BenchTest::IpiRoundTrip, 10) {
        Err(MicroError::Refused { code, .. }) => assert_eq!(code, Code::UnsupportedTest),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_test_names_and_ipi_without_a_second_vcpu_are_refused() {
    for (args, needle) in [
        (&["micro", "--test", "nope"][..], "no such micro-benchmark"),
        (&["micro", "--test", "ipi"][..], "--smp 2"),
        (&["micro", "--iterations", "0"][..], "--iterations"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_vmprobe"))
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

/// The real guest under TCG: every test returns samples; with two vCPUs, the IPI too; with
/// virtio-pci on GICv3, the LPI.
#[test]
fn micro_under_tcg_returns_samples_for_every_test() {
    let image = support::guest::guest_image();
    let out = Command::new(env!("CARGO_BIN_EXE_vmprobe"))
        .args([
            "micro",
            "--accel",
            "tcg",
            "--smp",
            "2",
            // virtio-pci on GICv3: MSI-X through the ITS, which the lpi test needs.
            "--gic",
            "3",
            "--transport",
            "pci",
            "--iterations",
            "200",
            "--format",
            "json",
            "--image",
        ])
        .arg(&image)
        .arg("--run-dir")
        .arg(std::env::temp_dir().join(format!("vmprobe-micro-{}", std::process::id())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["accel"], "tcg");
    assert!(json["cntfrq_hz"].as_u64().unwrap() > 0);
    let tests = json["tests"].as_array().unwrap();
    let names: Vec<&str> = tests.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for t in BenchTest::ALL {
        assert!(names.contains(&t.name()), "{} missing: {json}", t.name());
    }
    assert_eq!(json["skipped"].as_array().unwrap().len(), 0, "{json}");
    for t in tests {
        assert_eq!(t["iterations"], 200, "{t}");
        for k in ["min_ns", "p50_ns", "p99_ns", "max_ns", "mean_ns"] {
            assert!(t[k].as_f64().unwrap() >= 0.0, "{t}");
        }
        assert!(t["min_ns"].as_f64() <= t["p50_ns"].as_f64());
        assert!(t["p99_ns"].as_f64() <= t["max_ns"].as_f64());
    }
}
