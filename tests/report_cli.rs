//! `vmprobe report` on real run directories: a `vmprobe run` against the real guest under
//! QEMU (TCG), then its charts (SVG that parses as XML, PNG with the PNG signature and the
//! chart's size) and page; two runs (one under load) compared; bad directories refused with a
//! one-line error.
mod support;

use std::path::{Path, PathBuf};

use support::vm::temp_dir;
use support::vmprobe_output as vmprobe;
use vmprobe::report::plot::SIZE;

/// A short real run (both protocols) into `dir`, with `extra` options.
fn real_run(dir: &Path, extra: &[&str]) {
    let d = dir.to_str().unwrap();
    let mut args = vec![
        "run",
        "--accel",
        "tcg",
        "--count",
        "300",
        "--interval",
        "1ms",
        "--run-dir",
        d,
    ];
    args.extend_from_slice(extra);
    let out = vmprobe(&args);
    assert!(
        out.status.success(),
        "vmprobe run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_svg(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    // Axis descriptions carry their units.
    assert!(text.contains("(us"), "{path:?} has no µs axis label");
}

fn check_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{path:?}");
    assert_eq!(&bytes[12..16], b"IHDR");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((w, h), SIZE, "{path:?}");
    // A drawn chart compresses to more than a blank canvas would.
    assert!(
        bytes.len() > 10_000,
        "{path:?} is only {} bytes",
        bytes.len()
    );
}

fn check_pair(out: &Path, stem: &str) {
    check_svg(&out.join(format!("{stem}.svg")));
    check_png(&out.join(format!("{stem}.png")));
}

#[test]
fn one_run_and_a_comparison_with_load() {
    let dir = temp_dir("report-real");
    let quiet = dir.join("quiet");
    let loaded = dir.join("loaded");
    real_run(&quiet, &[]);
    real_run(&loaded, &["--load", "to-guest,udp-flood:2000"]);
    // The loaded run's results carry what the load achieved.
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(loaded.join("results.json")).unwrap())
            .unwrap();
    let load = results["load"].as_array().expect("load in results.json");
    assert_eq!(load.len(), 2);
    for l in load {
        assert!(l["mbit_s"].as_f64().unwrap() > 0.0, "{l}");
        assert!(l["bytes"].as_u64().unwrap() > 0, "{l}");
    }
    assert!(load[1]["packets_s"].as_f64().unwrap() > 0.0);

    // One run: default output under the run directory.
    let out = vmprobe(&["report", quiet.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = quiet.join("report");
    for stem in [
        "cdf-udp", "cdf-tcp", "hist-udp", "hist-tcp", "time-udp", "time-tcp",
    ] {
        check_pair(&report, stem);
    }
    let page = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(page.contains("![UDP latency CDF](cdf-udp.png)"), "{page}");
    assert!(
        page.contains("| udp | 300 |") || page.contains("| udp | 29"),
        "{page}"
    );

    // Two runs: the comparison, the table, the load.
    let cmp: PathBuf = dir.join("cmp");
    let out = vmprobe(&[
        "report",
        quiet.to_str().unwrap(),
        loaded.to_str().unwrap(),
        "--out",
        cmp.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_pair(&cmp, "compare-cdf-udp");
    check_pair(&cmp, "compare-cdf-tcp");
    check_pair(&cmp, "time-2-udp");
    let page = std::fs::read_to_string(cmp.join("report.md")).unwrap();
    assert!(page.contains("load to-guest+udp-flood:2000"), "{page}");
    assert!(
        page.contains("| to-guest |") && page.contains("| udp-flood:2000 |"),
        "{page}"
    );
    // Both runs' rows are in the table, each protocol.
    assert_eq!(
        page.lines().filter(|l| l.contains("| udp |")).count(),
        2,
        "{page}"
    );
    assert_eq!(
        page.lines().filter(|l| l.contains("| tcp |")).count(),
        2,
        "{page}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

fn error_of(args: &[&str]) -> String {
    let out = vmprobe(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    err
}

#[test]
fn bad_directories_are_clear_errors() {
    let dir = temp_dir("report-bad");
    let missing = dir.join("nope");
    let e = error_of(&["report", missing.to_str().unwrap()]);
    assert!(e.contains("not a run directory"), "{e}");

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = error_of(&["report", empty.to_str().unwrap()]);
    assert!(e.contains("results.json"), "{e}");

    let garbled = dir.join("garbled");
    std::fs::create_dir_all(&garbled).unwrap();
    std::fs::write(garbled.join("results.json"), "{ not json").unwrap();
    let e = error_of(&["report", garbled.to_str().unwrap()]);
    assert!(e.contains("not a vmprobe results file"), "{e}");

    let no_proto = dir.join("no-proto");
    std::fs::create_dir_all(&no_proto).unwrap();
    std::fs::write(no_proto.join("results.json"), r#"{"label": "x"}"#).unwrap();
    let e = error_of(&["report", no_proto.to_str().unwrap()]);
    assert!(e.contains("no `udp` or `tcp` results"), "{e}");

    let bad_csv = dir.join("bad-csv");
    std::fs::create_dir_all(&bad_csv).unwrap();
    std::fs::write(
        bad_csv.join("results.json"),
        r#"{"label": "x", "udp": {"p50_us": 1.0}}"#,
    )
    .unwrap();
    std::fs::write(
        bad_csv.join("samples-udp.csv"),
        "seq,send_unix_ns,rtt_ns,lost,status,rx_sw_rtt_ns,send_mono_ns\n1,100,5000,0,ok,,1\n2,200,abc,0,ok,,2\n3,300,5000,0,ok,,3\n",
    )
    .unwrap();
    let e = error_of(&["report", bad_csv.to_str().unwrap()]);
    assert!(e.contains("samples-udp.csv:3: bad rtt_ns `abc`"), "{e}");
    // Nothing half-written for a refused input.
    assert!(!bad_csv.join("report").exists());

    // A log cut mid-row by a kill: the partial last row is dropped, the rest is reported.
    let cut = dir.join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    std::fs::write(
        cut.join("results.json"),
        r#"{"label": "x", "udp": {"p50_us": 5.0}}"#,
    )
    .unwrap();
    std::fs::write(
        cut.join("samples-udp.csv"),
        "seq,send_unix_ns,rtt_ns,lost,status,rx_sw_rtt_ns,send_mono_ns\n1,100,5000,0,ok,,1\n2,1100,7000,0,ok,,2\n3,2100,50",
    )
    .unwrap();
    let out = vmprobe(&["report", cut.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(cut.join("report").join("report.md")).unwrap();
    assert!(
        page.contains("![UDP RTT over time](time-udp.png)"),
        "{page}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
