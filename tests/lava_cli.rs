//! vmprobe in a LAVA lab: `--format lava` against LAVA's own `lava-test-case` script and
//! signal parser (Debian's lava-dispatcher), `--limit` refusals before anything boots, and
//! `lava/vmprobe.yaml` checked and its run steps executed the way LAVA's run.sh runs them,
//! with the real guest under QEMU user networking. The tests that use LAVA's own code need
//! Debian's lava-dispatcher installed (`scripts/test.sh` installs it; a plain `cargo test` may
//! not have it): they are ignored with that reason, and run as root or with `--include-ignored`.
mod support;

/// A signal line's `KEY=value` fields, sorted: LAVA's parser reads them in any order.
fn signal_fields(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('<').trim_end_matches('>');
    let mut f: Vec<String> = inner.split(' ').skip(1).map(str::to_string).collect();
    f.sort();
    f
}

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::guest::{guest_image, repo};
use support::rr::{self, Action};
use support::vm::temp_dir;
use support::vmprobe;

/// Where Debian's lava-dispatcher keeps the scripts LAVA puts on a test shell's PATH.
const LAVA_SHELL: &str = "/usr/lib/python3/dist-packages/lava_dispatcher/lava_test_shell";

/// A PATH directory with LAVA's `lava-test-case`, `lava-test-reference` and their
/// `lava-common-functions`, each led by the `#!/bin/sh` line LAVA's overlay writes.
fn lava_bin(dir: &Path) -> PathBuf {
    let bin = dir.join("lava-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in [
        "lava-test-case",
        "lava-test-reference",
        "lava-common-functions",
    ] {
        let text = std::fs::read_to_string(Path::new(LAVA_SHELL).join(name)).unwrap_or_else(|e| {
            panic!("{LAVA_SHELL}/{name}: {e} (apt-get install lava-dispatcher)")
        });
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n\n{text}")).unwrap();
        Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    }
    bin
}

fn path_with(bin: &Path) -> String {
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

/// One recorded test case, as LAVA's dispatcher logs it.
#[derive(Debug, Clone, PartialEq)]
struct Recorded {
    case: String,
    result: String,
    measurement: Option<f64>,
    units: Option<String>,
}

/// The test cases LAVA's own parser records from `output` (tests/data/lava/signals.py runs
/// the dispatcher's code on it).
fn lava_records(output: &str) -> Vec<Recorded> {
    let mut child = Command::new("/usr/bin/python3")
        .arg(repo().join("tests/data/lava/signals.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(output.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "LAVA's parser refused the output: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| Recorded {
            case: c["case"].as_str().unwrap().into(),
            result: c["result"].as_str().unwrap().into(),
            measurement: c["measurement"].as_f64(),
            units: c["units"].as_str().map(String::from),
        })
        .collect()
}

/// LAVA's rule for names, narrowed to what vmprobe promises: lowercase, URL-safe.
fn assert_ids_valid_and_unique(cases: &[Recorded]) {
    let mut seen = HashSet::new();
    for c in cases {
        assert!(
            c.case
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "-.".contains(ch)),
            "{}",
            c.case
        );
        assert!(seen.insert(c.case.clone()), "{} twice", c.case);
    }
}

fn find<'a>(cases: &'a [Recorded], id: &str) -> &'a Recorded {
    cases
        .iter()
        .find(|c| c.case == id)
        .unwrap_or_else(|| panic!("no case {id} in {cases:#?}"))
}

#[test]
#[ignore = "needs Debian's lava-dispatcher (its lava-test-case, parser and PyYAML): apt-get install lava-dispatcher, as scripts/test.sh does"]
fn printed_lines_are_lava_test_cases_own_and_it_is_called_when_on_path() {
    let dir = temp_dir("lava-rr");
    let bin = lava_bin(&dir);
    let server = rr::udp(|_| Action::Echo);
    let target = server.addr.to_string();
    let args = [
        "rr", "--target", &target, "--count", "200", "--format", "lava",
    ];

    // Without lava-test-case on PATH: the lines it would print.
    let out = vmprobe().args(args).output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let cases = lava_records(&printed);
    let ids: Vec<&str> = cases.iter().map(|c| c.case.as_str()).collect();
    assert_eq!(
        ids,
        [
            "rr-udp-min",
            "rr-udp-mean",
            "rr-udp-p50",
            "rr-udp-p99",
            "rr-udp-p99.9",
            "rr-udp-max",
            "rr-udp-lost"
        ]
    );
    assert_ids_valid_and_unique(&cases);
    assert!(cases.iter().all(|c| c.result == "pass"));
    assert_eq!(find(&cases, "rr-udp-lost").measurement, Some(0.0));
    assert_eq!(find(&cases, "rr-udp-p99").units.as_deref(), Some("us"));
    // The same fields and values as LAVA's script prints for the same case.
    for (line, c) in printed.lines().zip(&cases) {
        let mut script = Command::new(bin.join("lava-test-case"));
        script.arg(&c.case).args(["--result", &c.result]);
        let m = line
            .split(" MEASUREMENT=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        script.args(["--measurement", m, "--units", c.units.as_deref().unwrap()]);
        let res = dir.join("results-script");
        let own = script
            .env("PATH", path_with(&bin))
            .env("LAVA_RESULT_DIR", &res)
            .output()
            .unwrap();
        assert_eq!(
            signal_fields(&String::from_utf8(own.stdout).unwrap()),
            signal_fields(line)
        );
    }

    // With it on PATH: vmprobe calls it, and it records each case in LAVA's result dir.
    let results = dir.join("results");
    let out = vmprobe()
        .args(args)
        .env("PATH", path_with(&bin))
        .env("LAVA_RESULT_DIR", &results)
        .output()
        .unwrap();
    assert!(out.status.success());
    let through = lava_records(&String::from_utf8(out.stdout).unwrap());
    let through_ids: Vec<&str> = through.iter().map(|c| c.case.as_str()).collect();
    assert_eq!(through_ids, ids);
    let p99 = results.join("results/rr-udp-p99");
    assert_eq!(
        std::fs::read_to_string(p99.join("result")).unwrap(),
        "pass\n"
    );
    assert_eq!(std::fs::read_to_string(p99.join("units")).unwrap(), "us\n");
    let m: f64 = std::fs::read_to_string(p99.join("measurement"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(Some(m), find(&through, "rr-udp-p99").measurement);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs `vmprobe ARGS`, expecting a refusal before anything boots: (exit code, stderr).
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let out = vmprobe()
        .args(args)
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(out.stdout.is_empty(), "{args:?} printed");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    (out.status.code(), err)
}

#[test]
fn bad_limits_are_one_line_before_anything_boots() {
    // PATH has no QEMU: a limit refusal must come first, and no other error.
    for (args, code, needle) in [
        (
            &["run", "--limit", "p98=1ms"][..],
            2,
            "unknown figure 'p98'",
        ),
        (
            &["run", "--limit", "p99=200"],
            2,
            "duration '200' has no unit",
        ),
        (&["run", "--limit", "lost=5ms"], 2, "lost is a count"),
        (&["run", "--limit", "residence-p99=5us"], 1, "with --probe"),
        (
            &["run", "--limit", "hypercall-p99=5us"],
            1,
            "no series 'hypercall'",
        ),
        (&["micro", "--limit", "udp-p99=5us"], 1, "no series 'udp'"),
        (
            &["micro", "--limit", "p99.9=5us"],
            1,
            "micro reports min, mean, p50, p99, max",
        ),
        (
            &["quickstart", "--image", "/x", "--limit", "sctp-max=1s"],
            1,
            "no series 'sctp'",
        ),
    ] {
        let (c, err) = refused(args);
        assert_eq!(c, Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let dir = temp_dir("lava-bad-matrix");
    let file = dir.join("m.toml");
    std::fs::write(&file, "[[config]]\nname = \"a\"\nlimit = [\"p99=5\"]\n").unwrap();
    let (c, err) = refused(&["matrix", file.to_str().unwrap()]);
    assert_eq!(c, Some(1));
    assert!(
        err.contains("configuration \"a\"") && err.contains("no unit"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `lava/vmprobe.yaml` as LAVA reads it (PyYAML, as the dispatcher loads it).
fn test_definition() -> serde_json::Value {
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(repo().join("lava/vmprobe.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn steps<'a>(def: &'a serde_json::Value, phase: &str) -> Vec<&'a str> {
    def[phase]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("{phase} step {s} is no string: quote a ': ' in YAML"))
        })
        .collect()
}

#[test]
#[ignore = "needs Debian's lava-dispatcher (its lava-test-case, parser and PyYAML): apt-get install lava-dispatcher, as scripts/test.sh does"]
fn the_test_definition_names_what_exists() {
    let def = test_definition();
    assert_eq!(def["metadata"]["format"], "Lava-Test Test Definition 1.0");
    let name = def["metadata"]["name"].as_str().unwrap();
    assert!(name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
    let params = def["params"].as_object().unwrap();
    for p in ["MATRIX", "LIMITS", "EXTRA_ARGS"] {
        assert!(params.contains_key(p), "no param {p}");
    }
    let all: Vec<&str> = [steps(&def, "install"), steps(&def, "run")].concat();
    let text = all.join("\n");
    // Every param is used, and every script a step runs is in the repository, executable.
    for p in params.keys() {
        assert!(
            text.contains(&format!("${p}")) || text.contains(&format!("${{{p}")),
            "{p} unused"
        );
    }
    let mut scripts = 0;
    for word in text.split_whitespace() {
        if let Some(rel) = word.strip_prefix("./scripts/") {
            let path = repo().join("scripts").join(rel);
            let mode = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .permissions();
            assert!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o111 != 0);
            scripts += 1;
        }
    }
    assert!(
        text.contains("./scripts/setup.sh") && scripts >= 2,
        "{text}"
    );
    assert!(text.contains("cargo build --release --bin vmprobe"));
    assert!(text.contains("./target/release/vmprobe") && text.contains("--format lava"));
    // The matrix the comments offer as an example is there.
    let yaml = std::fs::read_to_string(repo().join("lava/vmprobe.yaml")).unwrap();
    assert!(yaml.contains("MATRIX: examples/matrix.toml"));
    assert!(repo().join("examples/matrix.toml").is_file());
}

/// LAVA's run.sh for `def` with these job parameters: the parameters as shell variables,
/// `set -e`, the run steps (the install steps, setup and build, are what the checkout here
/// already did).
fn run_sh(def: &serde_json::Value, job: &[(&str, &str)]) -> String {
    let mut s = String::from("###default parameters from test definition###\n");
    for (k, v) in def["params"].as_object().unwrap() {
        s.push_str(&format!("{k}='{}'\n", v.as_str().unwrap_or("")));
    }
    s.push_str("######\n###test parameters from job submission###\n");
    for (k, v) in job {
        s.push_str(&format!("{k}='{v}'\n"));
    }
    s.push_str("######\nset -e\nexport TESTRUN_ID=0_vmprobe\n");
    for step in steps(def, "run") {
        s.push_str(step);
        s.push('\n');
    }
    s
}

#[test]
#[ignore = "needs Debian's lava-dispatcher (its lava-test-case, parser and PyYAML): apt-get install lava-dispatcher, as scripts/test.sh does"]
fn the_run_steps_report_every_figure_through_lava_test_case() {
    let dir = temp_dir("lava-definition");
    let bin = lava_bin(&dir);
    // A checkout as the test shell sees it: the definition's steps run from its root.
    let checkout = dir.join("checkout");
    std::fs::create_dir_all(checkout.join("target/release")).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_vmprobe"),
        checkout.join("target/release/vmprobe"),
    )
    .unwrap();
    std::fs::write(
        checkout.join("lab.toml"),
        format!(
            "image = {:?}\naccel = \"tcg\"\ncount = 30\ninterval = \"1ms\"\nlimit = [\"lost=0\"]\n\n\
             [[config]]\nname = \"user, irq\"\nnet = \"user\"\nlimit = [\"udp-min=1ns\"]\n",
            guest_image().display().to_string()
        ),
    )
    .unwrap();
    let script = run_sh(
        &test_definition(),
        &[
            ("MATRIX", "lab.toml"),
            ("LIMITS", "p99=10s boot=60s"),
            ("RUN_DIR", "runs/lab"),
        ],
    );
    let results = dir.join("results");
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .current_dir(&checkout)
        .env("PATH", path_with(&bin))
        .env("LAVA_RESULT_DIR", &results)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let cases = lava_records(&stdout);
    assert_ids_valid_and_unique(&cases);

    let c = find(&cases, "user-irq-run");
    assert_eq!(c.result, "pass");
    let boot = find(&cases, "user-irq-boot");
    assert_eq!(
        (boot.result.as_str(), boot.units.as_deref()),
        ("pass", Some("ms"))
    );
    for proto in ["udp", "tcp"] {
        for fig in ["min", "mean", "p50", "p99", "p99.9", "max"] {
            let c = find(&cases, &format!("user-irq-{proto}-{fig}"));
            assert_eq!(c.units.as_deref(), Some("us"), "{c:?}");
            assert!(c.measurement.unwrap() > 0.0, "{c:?}");
            let floor = find(&cases, &format!("user-irq-{proto}-floor-{fig}"));
            assert!(floor.measurement.is_some());
        }
        let lost = find(&cases, &format!("user-irq-{proto}-lost"));
        assert_eq!(
            (lost.measurement, lost.units.as_deref()),
            (Some(0.0), Some("count"))
        );
        assert_eq!(lost.result, "pass");
    }
    // The configuration's own limit failed UDP's min; TCP's, unbounded, passed; the file's
    // and the job's limits held.
    assert_eq!(find(&cases, "user-irq-udp-min").result, "fail");
    assert_eq!(find(&cases, "user-irq-tcp-min").result, "pass");
    assert_eq!(find(&cases, "user-irq-udp-p99").result, "pass");
    let status = find(&cases, "vmprobe-status");
    assert_eq!(
        (status.result.as_str(), status.measurement),
        ("fail", Some(3.0)),
        "limits exceeded is exit status 3"
    );
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.result == "fail")
        .map(|c| c.case.as_str())
        .collect();
    assert_eq!(failed, ["user-irq-udp-min", "vmprobe-status"]);
    assert!(results.join("results/user-irq-udp-min/result").is_file());
    assert!(
        stderr.contains("vmprobe: limit exceeded: user-irq-udp-min"),
        "{stderr}"
    );

    // Every other format of the same run shows the failed limit.
    let run_dir = checkout.join("runs/lab");
    let table = std::fs::read_to_string(run_dir.join("table.txt")).unwrap();
    assert!(
        table.contains("limit exceeded: user-irq-udp-min"),
        "{table}"
    );
    let csv = std::fs::read_to_string(run_dir.join("table.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(header.ends_with(",interrupt,limits_exceeded"), "{header}");
    assert!(
        csv.lines().nth(1).unwrap().contains("user-irq-udp-min"),
        "{csv}"
    );
    let md = std::fs::read_to_string(run_dir.join("table.md")).unwrap();
    assert!(md.contains("limit exceeded: user-irq-udp-min"), "{md}");
    let row = run_dir.join("01-user-irq");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(row.join("results.json")).unwrap()).unwrap();
    let limits = json["limits"].as_array().unwrap();
    let over: Vec<&serde_json::Value> = limits.iter().filter(|l| l["result"] == "fail").collect();
    assert_eq!(over.len(), 1, "{limits:?}");
    assert_eq!(over[0]["case"], "user-irq-udp-min");
    assert_eq!(over[0]["limit"], "udp-min=1ns");
    assert_eq!(over[0]["units"], "us");
    // p99 of udp and tcp, lost of both, boot and the one udp-min: six checks.
    assert_eq!(limits.len(), 6, "{limits:?}");
    let summary = std::fs::read_to_string(row.join("summary.txt")).unwrap();
    assert!(
        summary.contains("limit        fail: user-irq-udp-min"),
        "{summary}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn run_csv_names_the_exceeded_limit_and_exits_3() {
    let image = guest_image();
    let image = image.to_str().unwrap();
    let dir = temp_dir("lava-run-csv");
    let out = vmprobe()
        .args([
            "run", "--image", image, "--accel", "tcg", "--proto", "udp", "--count", "20",
        ])
        .arg("--run-dir")
        .arg(dir.join("run"))
        .args([
            "--format",
            "csv",
            "--limit",
            "udp-max=1ns",
            "--limit",
            "lost=0",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let csv = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[0].starts_with("label,") && lines[0].ends_with(",histogram_digits,limits_exceeded")
    );
    assert!(
        lines[1].contains("-udp-max ") && lines[1].contains(" us over udp-max=1ns"),
        "{csv}"
    );
    assert!(!lines[1].contains("lost"), "lost=0 held: {csv}");
    assert!(
        stderr.contains("1 of 2 limited figures over their limit"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs Debian's lava-dispatcher (its lava-test-case, parser and PyYAML): apt-get install lava-dispatcher, as scripts/test.sh does"]
fn micro_lava_goes_through_lava_test_case_and_exits_3() {
    let image = guest_image();
    let image = image.to_str().unwrap();
    let dir = temp_dir("lava-micro");
    let bin = lava_bin(&dir);
    let out = vmprobe()
        .args([
            "micro",
            "--image",
            image,
            "--accel",
            "tcg",
            "--test",
            "hypercall",
        ])
        .args([
            "--iterations",
            "50",
            "--format",
            "lava",
            "--limit",
            "hypercall-p50=1ns",
        ])
        .arg("--run-dir")
        .arg(dir.join("run"))
        .env("PATH", path_with(&bin))
        .env("LAVA_RESULT_DIR", dir.join("results"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases = lava_records(&String::from_utf8(out.stdout).unwrap());
    assert_ids_valid_and_unique(&cases);
    let ids: Vec<&str> = cases.iter().map(|c| c.case.as_str()).collect();
    let label = "user-direct-gic3-mmio-irq-tcg";
    let want: Vec<String> = ["min", "mean", "p50", "p99", "max"]
        .iter()
        .map(|f| format!("{label}-hypercall-{f}"))
        .collect();
    assert_eq!(ids, want);
    assert!(cases.iter().all(|c| c.units.as_deref() == Some("ns")));
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.result == "fail")
        .map(|c| c.case.as_str())
        .collect();
    assert_eq!(failed, [format!("{label}-hypercall-p50")]);
    std::fs::remove_dir_all(dir).unwrap();
}
