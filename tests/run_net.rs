//! `vmprobe run` on the real guest under QEMU (TCG here): each network setup with direct boot,
//! and user networking through U-Boot, with GICv3 + virtio-pci, and in poll mode. Each run
//! must measure UDP and TCP echo with no wrong reply, report the configuration and boot time,
//! keep its run directory complete, and leave no process, namespace or link behind.
mod support;

use support::run::*;
use support::vmprobe;

const BOTH: &[&str] = &["udp", "tcp"];

/// Runs `vmprobe run --format json ARGS` and checks everything; returns the JSON and the
/// guest's console.
fn run(test: &str, args: &[&str], protos: &[&str]) -> (serde_json::Value, String) {
    let image = vmprobe::vm::options::default_image();
    assert!(
        image.is_file(),
        "build the guest first: scripts/build-guest.sh"
    );
    let dir = temp_dir(test);
    let rd = dir.join("run");
    let links = host_links();
    let out = vmprobe()
        .args([
            "run",
            "--accel",
            "tcg",
            "--count",
            "200",
            "--format",
            "json",
            "--run-dir",
        ])
        .arg(&rd)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for p in protos {
        assert_eq!(check_proto(&v, p), 200);
    }
    for k in CONFIG_KEYS {
        assert!(
            v["config"].get(k).is_some(),
            "config.{k} missing: {}",
            v["config"]
        );
    }
    assert_eq!(v["config"]["accel"], "tcg");
    assert!(v["boot_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(v["interrupted"], false);
    assert!(v["qemu_died"].is_null() && v["error"].is_null(), "{v}");
    assert_eq!(v["qemu_exit"], "exit status 0");
    // The host's own floor, per measured protocol: rr against a loopback echo, the echo on
    // the first vCPU's CPUs, the client where the run's client ran.
    let floor = &v["host_floor"];
    assert_eq!(
        floor["echo_cpus"], v["config"]["vcpus"][0]["cpus"],
        "{floor}"
    );
    for p in protos {
        let f = &floor[*p];
        assert!(f["transactions"].as_u64().unwrap() > 0, "{floor}");
        assert_eq!(
            (f["lost"].as_u64(), f["errors"].as_u64()),
            (Some(0), Some(0))
        );
        assert!(f["p50_us"].as_f64().unwrap() > 0.0, "{floor}");
        assert_eq!(f["cpus_used"], v[*p]["cpus_used"], "{floor}");
        assert_eq!(
            f["target"].as_str().unwrap().split(':').next(),
            Some("127.0.0.1")
        );
    }
    // The run directory: command line, console, results, per-sample CSV and histograms.
    let mut files: Vec<String> = [
        "qemu-command.sh",
        "console.log",
        "results.json",
        "summary.txt",
    ]
    .map(String::from)
    .to_vec();
    for p in protos {
        files.push(format!("samples-{p}.csv"));
        files.push(format!("hist-{p}.hlog"));
    }
    for f in files {
        assert!(rd.join(&f).is_file(), "{f} missing in the run directory");
    }
    // Whatever netsetup.sh loads from beside itself (the eBPF objects) is there.
    let setup = std::fs::read_to_string(rd.join("netsetup.sh")).unwrap_or_default();
    for f in setup.split("\"$(dirname \"$0\")/").skip(1) {
        let f = f.split('"').next().unwrap();
        assert!(
            rd.join(f).is_file(),
            "{f}, which netsetup.sh loads, is missing"
        );
    }
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rd.join("results.json")).unwrap()).unwrap();
    assert_eq!(saved, v);
    let csv = std::fs::read_to_string(rd.join("samples-udp.csv")).unwrap();
    assert!(csv.starts_with("seq,send_unix_ns,rtt_ns,lost"));
    assert_eq!(csv.lines().count(), 201);
    let summary = std::fs::read_to_string(rd.join("summary.txt")).unwrap();
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with("host floor   ") && l.contains(&format!("{} p50 ", protos[0]))),
        "{summary}"
    );
    let console = std::fs::read_to_string(rd.join("console.log")).unwrap();
    assert!(console.contains("vmprobe: ready"));
    let again = std::fs::read_to_string(rd.join("vmprobe-command.sh")).unwrap();
    assert!(
        again.contains("exec vmprobe run --accel tcg --count 200"),
        "{again}"
    );
    assert_run_cleaned_up(&rd, &links);
    std::fs::remove_dir_all(dir).unwrap();
    (v, console)
}

#[test]
fn user_direct() {
    let (v, _) = run("run-user", &[], BOTH);
    assert_eq!(v["config"]["net"], "user");
    assert_eq!(v["config"]["boot"], "direct");
    assert!(v["uboot_ms"].is_null());
}

#[test]
#[ignore = "needs root: --net tap sets up a network namespace"]
fn tap_direct() {
    let (v, _) = run("run-tap", &["--net", "tap"], BOTH);
    assert_eq!(v["udp"]["address"], "192.168.20.2:7");
}

#[test]
#[ignore = "needs root: --net bridge sets up a network namespace"]
fn bridge_direct() {
    let (v, _) = run("run-bridge", &["--net", "bridge"], BOTH);
    assert_eq!(v["config"]["net"], "bridge");
}

#[test]
#[ignore = "needs root: --net macvtap sets up a network namespace"]
fn macvtap_direct() {
    let (v, _) = run("run-macvtap", &["--net", "macvtap"], BOTH);
    assert_eq!(v["config"]["net"], "macvtap");
}

/// No eBPF bridge program is loaded (the two eBPF runs take turns, so neither sees the
/// other's).
fn assert_no_bridge_programs() {
    let out = std::process::Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .expect("bpftool (apt-get install bpftool)");
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        !list.contains("vmp_redirect"),
        "eBPF bridge programs left loaded:\n{list}"
    );
}

static EBPF_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `--net ebpf --ebpf-hook HOOK`: UDP and TCP echo through the redirect programs (the only
/// way between the tap and the client's veth), netsetup.sh and the objects it loads in the
/// run directory, and nothing left afterwards: programs, links, namespaces.
fn ebpf_direct(hook: &str) {
    let _turn = EBPF_TURN.lock().unwrap_or_else(|e| e.into_inner());
    assert_no_bridge_programs();
    let (v, _) = run(
        &format!("run-ebpf-{hook}"),
        &["--net", "ebpf", "--ebpf-hook", hook],
        BOTH,
    );
    assert_eq!(v["config"]["net"], "ebpf");
    assert_eq!(v["config"]["ebpf_hook"], hook);
    assert_eq!(v["udp"]["address"], "192.168.20.2:7");
    assert_no_bridge_programs();
}

#[test]
#[ignore = "needs root: --net ebpf sets up network namespaces and loads eBPF programs"]
fn ebpf_tc_direct() {
    ebpf_direct("tc");
}

#[test]
#[ignore = "needs root: --net ebpf sets up network namespaces and loads eBPF programs"]
fn ebpf_xdp_direct() {
    ebpf_direct("xdp");
}

#[test]
fn user_uboot() {
    let (v, _) = run("run-uboot", &["--boot", "uboot"], BOTH);
    assert_eq!(v["config"]["boot"], "uboot");
    let (u, b) = (
        v["uboot_ms"].as_f64().unwrap(),
        v["boot_ms"].as_f64().unwrap(),
    );
    assert!(u > 0.0 && u < b, "U-Boot {u} ms of {b} ms");
}

#[test]
fn user_gicv3_pci() {
    let (v, _) = run("run-pci", &["--gic", "3", "--transport", "pci"], BOTH);
    assert_eq!(v["config"]["gic"], 3);
    assert_eq!(v["config"]["transport"], "pci");
    assert!(v["config"]["ready_line"]
        .as_str()
        .unwrap()
        .contains("transport=pci"));
    // MSI-X through the ITS, as the guest reported it.
    assert_eq!(v["config"]["interrupt"], "msix-its");
}

#[test]
fn user_poll_mode() {
    let (v, _) = run("run-poll", &["--mode", "poll", "--proto", "udp"], &["udp"]);
    assert_eq!(v["config"]["mode"], "poll");
    assert_eq!(v["config"]["interrupt"], "none");
    assert!(v.get("tcp").is_none(), "tcp measured though --proto udp");
}

/// `--clock kvm-ptp` under TCG: no KVM below the guest, so the guest says at boot and over the
/// probe protocol why it has no PTP service; the split falls back to min-rtt and
/// `clock.fallback` carries that reason.
#[test]
fn user_probe_kvm_ptp_falls_back_to_min_rtt() {
    let (v, console) = run(
        "run-kvm-ptp",
        &["--proto", "udp", "--probe", "--clock", "kvm-ptp"],
        &["udp"],
    );
    let probe = &v["probe"];
    assert_eq!(probe["stamped"], 200, "{probe}");
    let clock = &probe["clock"];
    assert_eq!(clock["method"], "min-rtt-fit", "{clock}");
    let reason = console
        .lines()
        .find_map(|l| l.trim().strip_prefix("vmprobe: kvm-ptp: absent: "))
        .unwrap_or_else(|| panic!("no kvm-ptp absence line on the console:\n{console}"));
    assert_eq!(
        clock["fallback"].as_str(),
        Some(format!("kvm-ptp absent in the guest: {reason}").as_str()),
        "{clock}"
    );
    assert_eq!(clock["samples_outside_bound"], 0, "{clock}");
}
