//! The tracefs recorder on this machine's kernel (needs root: ignored with that reason otherwise):
//! real loopback packets recorded and reconstructed, markers, missing events reported, and
//! the global tracing state left as it was.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vmprobe::trace::record::find_or_mount_tracefs;
use vmprobe::trace::{analyze_file, Config, PathSpec, RecordOptions, Recorder};

/// The tracefs mount point, mounted if need be, and a lock held for the test: tracefs is one
/// global state (`trace-cmd extract` turns the top-level `tracing_on` off), so these tests take
/// turns. They run as root, where a kernel without tracefs is a failure to see, not a pass.
fn tracefs() -> (PathBuf, std::sync::MutexGuard<'static, ()>) {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    (
        find_or_mount_tracefs().unwrap_or_else(|e| panic!("{e}")),
        turn,
    )
}

/// Global tracefs state a recorder must not change.
fn global_state(t: &Path) -> Vec<(String, String)> {
    [
        "tracing_on",
        "current_tracer",
        "set_event",
        "trace_clock",
        "buffer_size_kb",
    ]
    .iter()
    .map(|f| {
        (
            f.to_string(),
            std::fs::read_to_string(t.join(f)).unwrap_or_default(),
        )
    })
    .collect()
}

fn out_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("vmprobe-{}-{name}", std::process::id()))
}

const LOOPBACK: &str = r#"
name = "loopback"
[[stage]]
name = "xmit"
event = "net_dev_xmit"
fields = { dev = "lo" }
[[stage]]
name = "rx"
event = "netif_receive_skb"
fields = { dev = "lo" }
"#;

#[test]
#[ignore = "needs root: records through tracefs"]
fn records_real_packets_and_markers_and_leaves_global_state_alone() {
    let (tracefs, _turn) = tracefs();
    let before = global_state(&tracefs);
    let spec = PathSpec::from_toml(LOOPBACK, "loopback").unwrap();
    let out = out_file("loopback.trace");
    let rec = Recorder::start(&spec, &out, &RecordOptions::default()).unwrap();
    let instance = rec.instance().to_owned();
    assert!(instance.starts_with(tracefs.join("instances")) && instance.is_dir());
    assert!(
        rec.events().iter().any(|e| e == "net:net_dev_xmit"),
        "{:?}",
        rec.events()
    );
    assert!(rec.events().iter().any(|e| e == "sched:sched_switch"));
    assert!(rec.notes().is_empty(), "{:?}", rec.notes());
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let marker = rec.marker();
    let mut buf = [0u8; 64];
    for seq in 0..20u64 {
        tx.send_to(b"vmprobe trace test", rx.local_addr().unwrap())
            .unwrap();
        rx.recv(&mut buf).unwrap();
        if seq % 2 == 0 {
            marker.mark(seq, 1000.0 + seq as f64).unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    drop(marker);
    let summary = rec.stop().unwrap();
    assert!(summary.bytes > 0);
    assert_eq!(
        global_state(&tracefs),
        before,
        "global tracefs state changed"
    );
    assert!(
        !instance.exists(),
        "the recorder's instance was not removed"
    );

    let report = analyze_file(&out, spec, Config::default()).unwrap();
    // Other tests may use loopback at the same time: at least our 20 datagrams.
    assert!(report.packets >= 20, "{} packets", report.packets);
    assert_eq!(report.unparsed_lines, 0, "{:?}", report.unparsed_examples);
    let seqs: Vec<u64> = report.markers.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
    assert_eq!(report.markers[3].rtt_us, 1006.0);
    std::fs::remove_file(&out).unwrap();
}

#[test]
#[ignore = "needs root: records through tracefs"]
fn missing_events_are_named_and_recording_goes_on() {
    let (_, _turn) = tracefs();
    let spec = PathSpec::from_toml(
        "[[stage]]\nevent = \"sched_switch\"\n[[stage]]\nevent = \"vmprobe_no_such_event\"\n",
        "missing",
    )
    .unwrap();
    let out = out_file("missing.trace");
    let opts = RecordOptions {
        context_events: false,
        ..RecordOptions::default()
    };
    let rec = Recorder::start(&spec, &out, &opts).unwrap();
    assert_eq!(rec.events(), ["sched:sched_switch"]);
    assert!(rec.functions().is_empty());
    let notes = rec.notes().join("\n");
    eprintln!("notes: {notes}");
    assert!(notes.contains("vmprobe_no_such_event"), "{notes}");
    std::thread::sleep(Duration::from_millis(50));
    let summary = rec.stop().unwrap();
    assert_eq!(summary.notes.len(), 1);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("sched_switch:"), "nothing recorded");
    std::fs::remove_file(&out).unwrap();
}

#[test]
#[ignore = "needs root: records through tracefs"]
fn binary_trace_dat_is_read_through_trace_cmd() {
    let (tracefs, _turn) = tracefs();
    assert!(
        std::process::Command::new("trace-cmd")
            .arg("--version")
            .output()
            .is_ok(),
        "trace-cmd is not installed (scripts/setup.sh installs it)"
    );
    let name = format!("vmprobe-dat-test-{}", std::process::id());
    let inst = tracefs.join("instances").join(&name);
    std::fs::create_dir(&inst).unwrap();
    std::fs::write(inst.join("events/sched/sched_switch/enable"), "1").unwrap();
    std::fs::write(inst.join("events/sched/sched_waking/enable"), "1").unwrap();
    std::fs::write(inst.join("tracing_on"), "1").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(inst.join("tracing_on"), "0").unwrap();
    let dat = out_file("test.dat");
    let tracing_on = std::fs::read_to_string(tracefs.join("tracing_on")).unwrap();
    let status = std::process::Command::new("trace-cmd")
        .args(["extract", "-B", &name, "-o"])
        .arg(&dat)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    // trace-cmd extract removes the instance itself; make sure it is gone either way.
    let _ = std::fs::remove_dir(&inst);
    // It also switches the top-level buffer off; the machine's tracing stays as it was.
    std::fs::write(tracefs.join("tracing_on"), tracing_on).unwrap();
    assert!(status.success(), "trace-cmd extract failed");
    let spec = PathSpec::from_toml(
        "[[stage]]\nevent = \"sched_waking\"\n[[stage]]\nevent = \"sched_switch\"\n",
        "wake-switch",
    )
    .unwrap();
    let report = analyze_file(&dat, spec, Config::default()).unwrap();
    assert!(report.events > 0);
    assert_eq!(report.unparsed_lines, 0, "{:?}", report.unparsed_examples);
    assert!(report.first_ts.unwrap() > 0.0);
    std::fs::remove_file(&dat).unwrap();
}

#[test]
#[ignore = "needs root: records through tracefs"]
fn cli_record_passes_the_marker_to_the_command_and_analyze_reads_it() {
    let (_, _turn) = tracefs();
    let out = out_file("cli.trace");
    let path = out_file("loopback.toml");
    std::fs::write(&path, LOOPBACK).unwrap();
    let bin = env!("CARGO_BIN_EXE_vmprobe");
    // The command writes markers through the inherited descriptor, as a client in another
    // network (and mount) namespace would.
    let rec = std::process::Command::new(bin)
        .args(["trace", "record", "--path"])
        .arg(&path)
        .arg("-o")
        .arg(&out)
        .args(["--", "sh", "-c", "for i in 1 2 3; do echo \"vmprobe seq=$i rtt_us=${i}00\" > $VMPROBE_TRACE_MARKER; done"])
        .output()
        .unwrap();
    assert!(
        rec.status.success(),
        "{}",
        String::from_utf8_lossy(&rec.stderr)
    );
    assert!(String::from_utf8_lossy(&rec.stdout).contains("recorded"));
    let an = std::process::Command::new(bin)
        .args(["trace", "analyze"])
        .arg(&out)
        .arg("--path")
        .arg(&path)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        an.status.success(),
        "{}",
        String::from_utf8_lossy(&an.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&an.stdout).unwrap();
    let seqs: Vec<u64> = j["markers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(j["markers"][2]["rtt_us"], 300.0);
    // A failing command is reported, and the trace is still saved and the instance removed.
    let rec = std::process::Command::new(bin)
        .args(["trace", "record", "--path"])
        .arg(&path)
        .arg("-o")
        .arg(&out)
        .args(["--", "false"])
        .output()
        .unwrap();
    assert_eq!(rec.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&rec.stderr).contains("the trace is saved"));
    assert!(out.exists());
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_file(&path).unwrap();
}

/// Recording the built-in arm64-vhost path: every boundary is recorded by a tracepoint form
/// where this kernel has one, and any boundary it cannot record is named in the notes, so a
/// trace `trace record` or `run --trace` writes always has what the built-in path matches.
#[test]
#[ignore = "needs root: records through tracefs"]
fn builtin_vhost_path_records_a_form_of_every_boundary_or_says_which_not() {
    let (tracefs, _turn) = tracefs();
    let spec = PathSpec::resolve("arm64-vhost").unwrap();
    let out = out_file("arm64-vhost.trace");
    let rec = Recorder::start(&spec, &out, &RecordOptions::default()).unwrap();
    let (events, notes) = (rec.events().to_vec(), rec.notes().join("\n"));
    rec.stop().unwrap();
    let kernel = std::fs::read_to_string(tracefs.join("available_events")).unwrap();
    for stage in &spec.stages {
        let names = stage.event_names();
        let tracepoints: Vec<&String> = names
            .iter()
            .filter(|n| {
                kernel
                    .lines()
                    .any(|l| l.split_once(':').is_some_and(|(_, e)| e == *n))
            })
            .collect();
        if tracepoints.is_empty() {
            assert!(
                names.iter().any(|n| notes.contains(n.as_str())),
                "stage {} is neither recorded nor named: {notes}",
                stage.name
            );
        } else {
            for t in tracepoints {
                assert!(
                    events.iter().any(|e| e.ends_with(&format!(":{t}"))),
                    "{t} not enabled: {events:?}"
                );
            }
        }
    }
    // No function tracer for boundaries a tracepoint shows.
    assert!(!notes.contains("br_handle_frame"), "{notes}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with("# vmprobe trace: path=arm64-vhost events="),
        "{text}"
    );
    std::fs::remove_file(&out).unwrap();
}

/// A directory that looks like tracefs but is not one, and an empty (current directory) path,
/// are refused before anything is written: no `trace_marker`, `tracing_on` or instance
/// appears in them (an early run once left such files in a checkout). Needs no root.
#[test]
fn a_directory_that_is_not_tracefs_is_never_written() {
    let fake = out_file("fake-tracefs");
    let _ = std::fs::remove_dir_all(&fake);
    std::fs::create_dir_all(fake.join("instances")).unwrap();
    std::fs::write(fake.join("available_events"), "net:net_dev_xmit\n").unwrap();
    let spec = PathSpec::from_toml(LOOPBACK, "loopback").unwrap();
    let out = out_file("fake.trace");
    let listing = |d: &Path| {
        let mut v: Vec<_> = walk(d);
        v.sort();
        v
    };
    let before = listing(&fake);
    let cwd_before = listing(Path::new("."));
    for dir in [fake.clone(), PathBuf::new(), PathBuf::from("instances/..")] {
        let opts = RecordOptions {
            tracefs: Some(dir.clone()),
            ..RecordOptions::default()
        };
        let err = Recorder::start(&spec, &out, &opts).unwrap_err().to_string();
        assert!(
            err.contains("not a tracefs mount") || err.contains("not an absolute path"),
            "{dir:?}: {err}"
        );
    }
    assert_eq!(listing(&fake), before);
    assert_eq!(listing(Path::new(".")), cwd_before);
    assert!(!out.exists());
    std::fs::remove_dir_all(&fake).unwrap();
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() && !p.ends_with("target") && !p.ends_with(".git") {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}
