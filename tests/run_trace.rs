//! `vmprobe run --trace` on the real guest under QEMU (TCG here): the host trace is recorded
//! while measuring over a tap, every round trip over `--gap` is marked in it, the analysis
//! lands in the run directory and in `results.trace`, and teardown leaves no namespace, link
//! or tracefs instance. Root-only parts are skipped with the reason when not root.
mod support;

use support::run::*;
use support::vmprobe;

/// The stage pairs of the built-in tap-tcg path.
const TAP_TCG_STAGES: [&str; 4] = [
    "tap_xmit__qemu_read",
    "qemu_read__vcpu_wake",
    "vcpu_wake__guest_notify",
    "guest_notify__tap_reply",
];

/// tracefs instances a vmprobe process with `pid` made.
fn instances_of(pid: u32) -> Vec<String> {
    let prefix = format!("vmprobe-{pid}-");
    std::fs::read_dir("/sys/kernel/tracing/instances")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[ignore = "needs root: --trace records through tracefs, --net tap sets up a network namespace"]
fn tap_run_records_marks_and_analyses() {
    let image = vmprobe::vm::options::default_image();
    assert!(
        image.is_file(),
        "build the guest first: scripts/build-guest.sh"
    );
    let dir = support::vm::temp_dir("run-trace");
    let rd = dir.join("run");
    let links = support::vm::host_links();
    let child = vmprobe()
        .args([
            "run",
            "--accel",
            "tcg",
            "--net",
            "tap",
            "--proto",
            "udp",
            "--trace",
            "--gap",
            "300us",
            "--count",
            "300",
            "--interval",
            "2ms",
            "--format",
            "json",
            "--run-dir",
        ])
        .arg(&rd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(check_proto(&v, "udp"), 300);
    let t = &v["trace"];
    assert_eq!(t["path"], "tap-tcg", "{t}");
    assert!(t.get("error").is_none(), "{t}");
    assert_eq!(t["vars"]["tap"], "tap0");
    assert_eq!(
        t["vars"]["qemu_pid"],
        std::fs::read_to_string(rd.join("qemu.pid")).unwrap().trim()
    );
    // Every request was followed from the tap into QEMU and back out (warm-up included).
    let packets = t["packets"].as_u64().unwrap();
    assert!(packets > 0, "{t}");
    assert!(packets <= 310, "other senders mixed in: {t}");
    for s in TAP_TCG_STAGES {
        assert!(t["stages"].get(s).is_some(), "stage {s} missing: {t}");
    }
    assert_eq!(t["stages"]["tap_xmit__qemu_read"]["count"], packets);
    assert_eq!(t["total"]["count"], packets);
    // Exactly the round trips over --gap in the per-sample log were marked, and every marker
    // written is in the trace.
    let csv = std::fs::read_to_string(rd.join("samples-udp.csv")).unwrap();
    let slow = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(2)?.parse::<u64>().ok())
        .filter(|&rtt_ns| rtt_ns >= 300_000)
        .count() as u64;
    assert_eq!(t["marked"].as_u64(), Some(slow), "{t}");
    assert_eq!(t["markers"].as_u64(), Some(slow), "{t}");
    assert_eq!(t["mark_threshold_us"], 300.0);
    // The run directory holds the trace, its analysis (same numbers) and the summary.
    for f in ["trace-events.txt", "trace.json", "trace.txt"] {
        assert!(rd.join(f).is_file(), "{f} missing");
    }
    let full: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rd.join("trace.json")).unwrap()).unwrap();
    assert_eq!(full["packets"], t["packets"]);
    assert_eq!(full["stages"], t["stages"]);
    assert_eq!(full["markers"].as_array().unwrap().len() as u64, slow);
    assert!(std::fs::read_to_string(rd.join("trace.txt"))
        .unwrap()
        .contains("tap_xmit__qemu_read"));
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rd.join("results.json")).unwrap()).unwrap();
    assert_eq!(saved["trace"], *t);
    assert_run_cleaned_up(&rd, &links);
    assert_eq!(
        instances_of(pid),
        Vec::<String>::new(),
        "tracefs instance left"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn user_networking_has_no_tap_to_follow() {
    let dir = support::vm::temp_dir("run-trace-user");
    let rd = dir.join("run");
    let out = vmprobe()
        .args([
            "run",
            "--net",
            "user",
            "--trace",
            "--count",
            "10",
            "--run-dir",
        ])
        .arg(&rd)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let expected = if is_root() {
        "--net user has none"
    } else {
        "--trace needs root"
    };
    assert!(stderr.contains(expected), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(!rd.exists(), "nothing booted, no run directory");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn trace_options_need_trace_and_valid_values() {
    for (args, expected) in [
        (&["--trace-path", "tap-tcg"][..], "--trace"),
        (&["--trace", "--gap", "soon"][..], "--gap"),
        (
            &["--trace", "--trace-path", "/nonexistent.toml"][..],
            "nonexistent",
        ),
    ] {
        let out = vmprobe()
            .args(["run", "--net", "tap"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        if args[0] == "--trace" && args[1] == "--trace-path" && !is_root() {
            assert!(stderr.contains("needs root"), "{stderr}");
        } else {
            assert!(stderr.contains(expected), "{args:?}: {stderr}");
        }
    }
}

/// A path with a boundary this kernel does not have: the run says which and measures on,
/// following packets across the boundaries that exist.
#[test]
#[ignore = "needs root: --trace records through tracefs, --net tap sets up a network namespace"]
fn missing_event_is_named_and_the_run_goes_on() {
    let dir = support::vm::temp_dir("run-trace-missing");
    let rd = dir.join("run");
    let path = dir.join("partial.toml");
    std::fs::write(
        &path,
        r#"
name = "partial"
[vars]
tap = "tap0"
qemu_pid = "*"
[[stage]]
name = "xmit"
event = "net_dev_xmit"
task = "vmprobe-rr"
fields = { dev = "{tap}" }
[[stage]]
event = "vmprobe_no_such_event"
optional = true
[[stage]]
name = "reply"
event = "netif_receive_skb"
pid = "{qemu_pid}"
fields = { dev = "{tap}" }
"#,
    )
    .unwrap();
    let links = support::vm::host_links();
    let out = vmprobe()
        .args([
            "run",
            "--accel",
            "tcg",
            "--net",
            "tap",
            "--proto",
            "udp",
            "--count",
            "50",
            "--interval",
            "2ms",
            "--format",
            "json",
            "--trace",
            "--trace-path",
        ])
        .arg(&path)
        .arg("--run-dir")
        .arg(&rd)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("vmprobe_no_such_event"), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(check_proto(&v, "udp"), 50);
    let t = &v["trace"];
    assert_eq!(t["path"], "partial");
    // Only the variables the file declares are set: its own qemu_pid, not tap-tcg's others.
    assert_eq!(
        t["vars"]["qemu_pid"],
        std::fs::read_to_string(rd.join("qemu.pid")).unwrap().trim()
    );
    assert!(t["vars"].get("client").is_none(), "{t}");
    let notes = t["notes"].to_string();
    assert!(notes.contains("vmprobe_no_such_event"), "{notes}");
    assert!(t["packets"].as_u64().unwrap() > 0, "{t}");
    assert_eq!(t["skipped"]["vmprobe_no_such_event"], t["packets"]);
    assert_run_cleaned_up(&rd, &links);
    std::fs::remove_dir_all(dir).unwrap();
}
