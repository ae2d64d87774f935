//! `vmprobe trace analyze` on small hand-written traces (tests/data/trace): the users' arm64
//! vhost scenario in both text formats, with interleaved packets, a stalled packet, a 4 ms gap
//! where a QEMU worker holds the vCPU's CPU, an outlier marker and malformed lines; and one
//! packet recorded the users' way (function tracer, `trace-cmd report`) and the way
//! `vmprobe trace record` does it (tracepoints), both through the built-in path.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use vmprobe::trace::{analyze_file, Config, PathSpec, Report};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/trace")
        .join(name)
}

fn analyze(file: &str, path: &str) -> Report {
    analyze_file(
        &data(file),
        PathSpec::resolve(path).unwrap(),
        Config::default(),
    )
    .unwrap()
}

fn json(r: &Report) -> Value {
    serde_json::to_value(r).unwrap()
}

fn stage<'a>(j: &'a Value, name: &str) -> &'a Value {
    &j["stages"][name]
}

#[test]
fn interleaved_packets_are_followed_in_fifo_order() {
    let r = analyze("vhost-report.txt", "arm64-vhost");
    let names: Vec<&str> = r.stages.0.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"nic_irq__br_handle_frame"));
    assert_eq!(names.last(), Some(&"kvm_vcpu_kick__kvm_entry"));
    assert_eq!(names.len(), 6);
    let j = json(&r);
    assert_eq!(j["packets"], 4);
    // P0 and P1 overlap: P1's irq arrives before P0 reaches the vhost thread.
    let s = stage(&j, "nic_irq__br_handle_frame");
    assert_eq!(s["count"], 5);
    assert_eq!(
        (s["min_us"].as_f64(), s["max_us"].as_f64()),
        (Some(2.0), Some(5.0))
    );
    let s = stage(&j, "vhost_poll_wakeup__handle_rx_net");
    // P0 .108 -> .120, P1 .115 -> .124, P2 .1006 -> .1020, P3 .10005 -> .10010, P4 14
    assert_eq!(
        (
            s["min_us"].as_f64(),
            s["max_us"].as_f64(),
            s["count"].as_u64()
        ),
        (Some(5.0), Some(14.0), Some(5))
    );
    let t = &j["total"];
    // P0 45us, P1 50us, P2 4010us, P4 40us
    assert_eq!(
        (
            t["count"].as_u64(),
            t["min_us"].as_f64(),
            t["max_us"].as_f64()
        ),
        (Some(4), Some(40.0), Some(4010.0))
    );
}

#[test]
fn stalled_packet_is_incomplete_and_does_not_steal_later_events() {
    let j = json(&analyze("vhost-report.txt", "arm64-vhost"));
    assert_eq!(j["incomplete"], 1);
    assert_eq!(j["incomplete_after"]["handle_rx_net"], 1);
    // P4's inject came 10 us after its own handle_rx_net, not ~290 ms after P3's.
    assert_eq!(
        stage(&j, "handle_rx_net__kvm_vgic_inject_irq")["max_us"],
        10.0
    );
}

#[test]
fn gap_names_the_competing_task_and_the_ipis() {
    let j = json(&analyze("vhost-report.txt", "arm64-vhost"));
    let gaps = j["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:#?}");
    let g = &gaps[0];
    assert_eq!(g["stage"], "kvm_vcpu_kick__kvm_entry");
    assert_eq!(g["cpu"], 3);
    assert_eq!(g["duration_us"], 3978.0);
    assert_eq!(g["start"], 1670566189.001032);
    // The kicked vCPU thread itself ran only its last 10 us of the gap.
    assert_eq!(
        (g["task"].as_str(), g["task_ran_us"].as_f64()),
        (Some("kvm"), Some(10.0))
    );
    assert_eq!(g["task_cpus"], serde_json::json!([3]));
    let top = &g["tasks"][0];
    assert_eq!(
        (top["task"].as_str(), top["pid"].as_u64()),
        (Some("qemu-system-aar"), Some(1460))
    );
    assert!(top["share"].as_f64().unwrap() > 0.99, "{top}");
    // ipi_entry on the CPU wins over the sender-side ipi_raise: two IPIs, not four.
    assert_eq!(
        g["ipis"],
        serde_json::json!([{"name": "Rescheduling interrupts", "count": 2}])
    );
    assert_eq!(
        g["irqs"],
        serde_json::json!([{"name": "arch_timer", "count": 1}])
    );
    // The outlier marker sits next to the gap.
    assert_eq!(g["markers"], serde_json::json!([42]));
    let m = &j["markers"][0];
    assert_eq!(
        (m["seq"].as_u64(), m["rtt_us"].as_f64()),
        (Some(42), Some(4100.5))
    );
    assert_eq!(m["gaps"], serde_json::json!([0]));
}

#[test]
fn malformed_lines_are_counted_not_fatal() {
    let r = analyze("vhost-report.txt", "arm64-vhost");
    assert_eq!(r.unparsed_lines, 2);
    assert_eq!(r.unparsed_examples[0].text, "this line is not a trace line");
    let raw = analyze("vhost-raw.txt", "arm64-vhost");
    assert_eq!((raw.unparsed_lines, raw.lost_events), (1, 3));
}

#[test]
fn both_input_formats_give_the_same_analysis() {
    let a = json(&analyze("vhost-report.txt", "arm64-vhost"));
    let b = json(&analyze("vhost-raw.txt", "arm64-vhost"));
    for key in [
        "packets",
        "incomplete",
        "incomplete_after",
        "stages",
        "total",
        "gaps",
        "markers",
    ] {
        assert_eq!(a[key], b[key], "{key}");
    }
}

#[test]
fn custom_toml_path() {
    let r = analyze("vhost-raw.txt", data("vcpu-wakeup.toml").to_str().unwrap());
    let j = json(&r);
    assert_eq!(j["path"], "vcpu-wakeup");
    assert_eq!(
        (j["packets"].as_u64(), j["incomplete"].as_u64()),
        (Some(4), Some(1))
    );
    let names: Vec<&str> = r.stages.0.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["rx__kick", "kick__entry"]);
    assert_eq!(j["stages"]["kick__entry"]["max_us"], 3978.0);
}

#[test]
fn gap_threshold_and_timeout_flags_matter() {
    let spec = PathSpec::resolve("arm64-vhost").unwrap();
    let cfg = Config {
        gap_ns: 10_000,
        ..Config::default()
    };
    let r = analyze_file(&data("vhost-report.txt"), spec.clone(), cfg).unwrap();
    // Stages over 10 us: P0 kick->entry 13, P1 kick->entry 25, P2's 3978, P1 wakeup->rx? no (9)...
    let over: Vec<f64> = r.gaps.iter().map(|g| g.duration_us).collect();
    assert!(
        over.iter().all(|&d| d > 10.0) && over.len() >= 3,
        "{over:?}"
    );
    // A 1 ms timeout makes the 4 ms packet incomplete instead of a gap.
    let cfg = Config {
        timeout_ns: Some(1_000_000),
        ..Config::default()
    };
    let r = analyze_file(&data("vhost-report.txt"), spec, cfg).unwrap();
    assert_eq!((r.packets, r.incomplete, r.gaps.len()), (3, 2, 0));
}

fn vmprobe(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vmprobe"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_json_shape() {
    let f = data("vhost-report.txt");
    let out = vmprobe(&[
        "trace",
        "analyze",
        f.to_str().unwrap(),
        "--path",
        "arm64-vhost",
        "--gap",
        "1ms",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Stages appear in path order in the JSON text.
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let first = text.find("\"nic_irq__br_handle_frame\"").unwrap();
    let last = text.find("\"kvm_vcpu_kick__kvm_entry\"").unwrap();
    assert!(first < last);
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "packets",
        "incomplete",
        "stages",
        "total",
        "gaps",
        "unparsed_lines",
        "markers",
    ] {
        assert!(j.get(key).is_some(), "missing {key}");
    }
    for s in j["stages"]
        .as_object()
        .unwrap()
        .values()
        .chain([&j["total"]])
    {
        for k in ["count", "min_us", "p50_us", "p99_us", "max_us"] {
            assert!(s.get(k).is_some(), "stage lacks {k}: {s}");
        }
    }
    let g = &j["gaps"][0];
    for k in [
        "start",
        "duration_us",
        "cpu",
        "stage",
        "tasks",
        "ipis",
        "irqs",
    ] {
        assert!(g.get(k).is_some(), "gap lacks {k}");
    }
    assert_eq!(j["gap_threshold_us"], 1000.0);
}

#[test]
fn cli_text_names_the_gap_and_its_competitor() {
    let f = data("vhost-raw.txt");
    let out = vmprobe(&["trace", "analyze", f.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("kvm_vcpu_kick__kvm_entry"), "{text}");
    assert!(text.contains("qemu-system-aar-1460 99.5%"), "{text}");
    assert!(text.contains("Rescheduling interrupts x2"), "{text}");
    assert!(text.contains("seq=42"), "{text}");
}

#[test]
fn garbage_and_empty_input_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("vmprobe-trace-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.txt");
    std::fs::write(&garbage, b"\x00\x01binary\xff\nnot a trace\n").unwrap();
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    for f in [&garbage, &empty] {
        let out = vmprobe(&["trace", "analyze", f.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no trace event found"), "{err}");
    }
    let out = vmprobe(&["trace", "analyze", "/nonexistent/trace.txt"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("opening /nonexistent/trace.txt"));
    let out = vmprobe(&[
        "trace",
        "analyze",
        garbage.to_str().unwrap(),
        "--gap",
        "5 parsecs",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = vmprobe(&[
        "trace",
        "analyze",
        garbage.to_str().unwrap(),
        "--path",
        "nope",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a built-in path"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cli_lists_and_prints_builtin_paths() {
    let out = vmprobe(&["trace", "paths"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("arm64-vhost: nic_irq -> br_handle_frame -> vhost_poll_wakeup"),
        "{text}"
    );
    let out = vmprobe(&["trace", "paths", "tap-tcg"]);
    assert!(String::from_utf8(out.stdout).unwrap().contains("[[stage]]"));
}

fn tap_tcg(vars: &[(&str, &str)]) -> Report {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let spec = PathSpec::resolve_with("tap-tcg", &vars).unwrap();
    analyze_file(&data("tap-tcg-excerpt.txt"), spec, Config::default()).unwrap()
}

#[test]
fn tap_tcg_on_real_lines_with_skipped_wakeups() {
    // Six echo requests from python3; one kernel frame (len=70) from another task has no reply.
    let r = tap_tcg(&[
        ("tap", "vmptap0"),
        ("qemu_pid", "29654"),
        ("client", "python3"),
    ]);
    let j = json(&r);
    assert_eq!((r.packets, r.incomplete), (6, 0));
    // QEMU's main loop was already awake twice when the guest notified.
    assert_eq!(j["skipped"]["guest_notify"], 2);
    // qemu_read is matched by skbaddr, the rest in order; every round trip is sub-millisecond.
    assert_eq!(stage(&j, "tap_xmit__qemu_read")["count"], 6);
    assert!(r.total.max_us.unwrap() < 1000.0, "{:?}", r.total);
    assert_eq!(stage(&j, "guest_notify__tap_reply")["count"], 4);
}

#[test]
fn tap_tcg_unanswered_frame_shows_why_the_client_variable_exists() {
    let r = tap_tcg(&[("tap", "vmptap0"), ("qemu_pid", "29654")]);
    // The unanswered frame takes the next reply: one packet left incomplete, one too long.
    assert_eq!((r.packets, r.incomplete), (6, 1));
    assert!(r.total.max_us.unwrap() > 1000.0);
    let e = PathSpec::resolve_with("tap-tcg", &[("nic".into(), "x".into())]).unwrap_err();
    assert!(e.to_string().contains("client"), "{e}");
}

/// The JSON report of `vmprobe trace analyze FILE` with no `--path`: the built-in
/// `arm64-vhost`, no path file written.
fn builtin_json(file: &Path) -> Value {
    let out = vmprobe(&[
        "trace",
        "analyze",
        file.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Checks the kick-to-entry gap both recording styles show: the kicked vCPU thread (kvm-1449)
/// barely ran, a second `kvm` thread (the AIO worker, 1463) held CPU 3 and handed it back.
fn assert_users_gap(j: &Value, duration_us: f64, vcpu_ran_us: f64) {
    let gaps = j["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:#?}");
    let g = &gaps[0];
    assert_eq!(g["stage"], "kvm_vcpu_kick__kvm_entry");
    assert_eq!(g["duration_us"], duration_us);
    assert_eq!(
        (g["cpu"].as_u64(), g["from_cpu"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        (
            g["task"].as_str(),
            g["pid"].as_u64(),
            g["task_ran_us"].as_f64()
        ),
        (Some("kvm"), Some(1449), Some(vcpu_ran_us))
    );
    let top = &g["tasks"][0];
    assert_eq!(
        (top["task"].as_str(), top["pid"].as_u64()),
        (Some("kvm"), Some(1463))
    );
    assert!(top["share"].as_f64().unwrap() > 0.99, "{top}");
    assert_eq!(
        g["handed_over_by"],
        serde_json::json!({"task": "kvm", "pid": 1463, "same_command": true})
    );
    assert_eq!(
        g["ipis"],
        serde_json::json!([{"name": "Rescheduling interrupts", "count": 4}])
    );
}

/// The users' own recording style: trace-cmd report text of the function tracer on a handful
/// of functions plus sched_switch, kvm and ipi tracepoints, no irq_handler_entry.
#[test]
fn users_function_tracer_trace_follows_its_packet_with_the_builtin_path() {
    let j = builtin_json(&data("users-arm64-function.txt"));
    assert_eq!(j["path"], "arm64-vhost");
    assert_eq!(
        (j["packets"].as_u64(), j["incomplete"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(j["unparsed_lines"], 0);
    let want = [
        ("nic_irq__br_handle_frame", 9.0),
        ("br_handle_frame__vhost_poll_wakeup", 4.0),
        ("vhost_poll_wakeup__handle_rx_net", 7.0),
        ("handle_rx_net__kvm_vgic_inject_irq", 6.0),
        ("kvm_vgic_inject_irq__kvm_vcpu_kick", 2.0),
        ("kvm_vcpu_kick__kvm_entry", 4135.0),
    ];
    assert_eq!(j["stages"].as_object().unwrap().len(), want.len());
    for (name, us) in want {
        let s = stage(&j, name);
        assert_eq!(
            (s["count"].as_u64(), s["max_us"].as_f64()),
            (Some(1), Some(us)),
            "{name}"
        );
    }
    assert_eq!(j["total"]["max_us"], 4163.0);
    // The NIC interrupt is the driver's MSI-X handler; the vGIC injection the function that
    // comes before its tracepoint.
    assert_eq!(
        j["crossed_by"],
        serde_json::json!({
            "nic_irq": "igc_msix_ring",
            "br_handle_frame": "br_handle_frame",
            "vhost_poll_wakeup": "vhost_poll_wakeup",
            "handle_rx_net": "handle_rx_net",
            "kvm_vgic_inject_irq": "kvm_vgic_inject_irq",
            "kvm_vcpu_kick": "kvm_vcpu_kick",
            "kvm_entry": "kvm_entry"
        })
    );
    // The vCPU ran 8 us after its first wakeup and the last 19 us before entering the guest.
    assert_users_gap(&j, 4135.0, 27.0);
    assert!(j["diagnosis"].is_null());
}

/// The same packet as `vmprobe trace record` writes it: tracefs text, tracepoints only.
#[test]
fn recorder_style_trace_follows_the_same_packet() {
    let j = builtin_json(&data("users-arm64-tracepoints.txt"));
    assert_eq!(
        (j["packets"].as_u64(), j["incomplete"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        j["crossed_by"],
        serde_json::json!({
            "nic_irq": "irq_handler_entry",
            "br_handle_frame": "netif_receive_skb",
            "vhost_poll_wakeup": "net_dev_xmit",
            "handle_rx_net": "skb_copy_datagram_iovec",
            "kvm_vgic_inject_irq": "vgic_update_irq_pending",
            "kvm_vcpu_kick": "kvm_vcpu_wakeup",
            "kvm_entry": "kvm_entry"
        })
    );
    assert_eq!(stage(&j, "nic_irq__br_handle_frame")["max_us"], 12.0);
    // The wakeup is seen in the vCPU thread once it runs, 6 us after the injection.
    assert_users_gap(&j, 4130.0, 25.0);
}

/// A trace holding both forms of the NIC interrupt and of the kick: each packet is still one
/// packet, crossing each boundary by the form that came first.
#[test]
fn both_forms_of_a_boundary_in_one_trace_count_once() {
    let text = std::fs::read_to_string(data("users-arm64-function.txt")).unwrap();
    let mut lines = Vec::new();
    for l in text.lines() {
        if l.contains("function:             igc_msix_ring") {
            lines.push("             kvm-1463  [003] 1670566189.497263: irq_handler_entry:    irq=49 name=enp1s0-TxRx-0".to_owned());
        }
        lines.push(l.to_owned());
        if l.contains("vhost-802:812 [120] S ==> kvm:1449") {
            lines.push("             kvm-1449  [003] 1670566189.497298: kvm_vcpu_wakeup:      wait time 303000 ns, polling valid".to_owned());
        }
    }
    let dir = std::env::temp_dir().join(format!("vmprobe-forms-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("both.txt");
    std::fs::write(&f, lines.join("\n") + "\n").unwrap();
    let j = builtin_json(&f);
    assert_eq!(
        (j["packets"].as_u64(), j["incomplete"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(j["crossed_by"]["nic_irq"], "irq_handler_entry");
    assert_eq!(j["crossed_by"]["kvm_vcpu_kick"], "kvm_vcpu_kick");
    assert_eq!(stage(&j, "nic_irq__br_handle_frame")["max_us"], 12.0);
    assert_users_gap(&j, 4135.0, 27.0);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The built-in path as it was (one event per boundary) against the users' trace: nothing
/// matches, and the report says which stage found none of its events and which built-in
/// path has them all.
#[test]
fn a_path_that_matches_nothing_says_why() {
    let dir = std::env::temp_dir().join(format!("vmprobe-nomatch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("one-form.toml");
    std::fs::write(
        &path,
        "[[stage]]\nname = \"nic_irq\"\nevent = \"irq_handler_entry\"\n\
         [[stage]]\nevent = \"br_handle_frame\"\n[[stage]]\nevent = \"kvm_entry\"\n",
    )
    .unwrap();
    let users = data("users-arm64-function.txt");
    let r = analyze_file(
        &users,
        PathSpec::resolve(path.to_str().unwrap()).unwrap(),
        Config::default(),
    )
    .unwrap();
    assert_eq!((r.packets, r.incomplete), (0, 0));
    let d = json(&r)["diagnosis"].clone();
    assert_eq!(d["stage_events"]["nic_irq"]["found"], serde_json::json!([]));
    assert_eq!(
        d["stage_events"]["kvm_entry"]["found"],
        serde_json::json!([{"name": "kvm_entry", "count": 2}])
    );
    let held: Vec<&str> = d["trace_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(held[0], "sched_switch");
    assert!(held.contains(&"igc_msix_ring"), "{held:?}");
    assert_eq!(
        d["closest"],
        serde_json::json!({"path": "arm64-vhost", "present": 7, "stages": 7, "missing": []})
    );
    let out = vmprobe(&[
        "trace",
        "analyze",
        users.to_str().unwrap(),
        "--path",
        path.to_str().unwrap(),
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("nic_irq: none of irq_handler_entry"),
        "{text}"
    );
    assert!(
        text.contains("closest built-in path: arm64-vhost (7 of 7 boundaries in this trace)"),
        "{text}"
    );
    // tap-tcg on it: the closest is arm64-vhost, and each tap-tcg stage says what it lacks.
    let out = vmprobe(&[
        "trace",
        "analyze",
        users.to_str().unwrap(),
        "--path",
        "tap-tcg",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("tap_xmit: none of net_dev_xmit"), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// README's walk-through shows this command's real output on the users' trace, verbatim.
#[test]
fn readme_walkthrough_is_the_real_output() {
    let users = data("users-arm64-function.txt");
    let out = vmprobe(&["trace", "analyze", users.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let indented: String = text
        .lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_owned()
            } else {
                format!("    {l}\n")
            }
        })
        .collect();
    assert!(
        readme.contains(&indented),
        "README's walk-through differs from the output; paste this (indented by 4):\n{text}"
    );
}
