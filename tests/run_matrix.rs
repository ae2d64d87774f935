//! `vmprobe matrix` on a small file (two configurations that run, one that fails and does not
//! stop the matrix) and `vmprobe quickstart` once: the table on stdout, CSV and Markdown in the
//! matrix's run directory, each configuration's run directory inside, nothing left behind.
mod support;

use support::run::*;
use support::vmprobe;

#[test]
fn matrix_runs_each_configuration_and_goes_on_after_a_failure() {
    let dir = temp_dir("matrix");
    let file = dir.join("m.toml");
    std::fs::write(
        &file,
        r#"
accel = "tcg"
count = 100
[[config]]
name = "user irq"
[[config]]
name = "broken"
image = "/nonexistent/guest.bin"
[[config]]
name = "user poll"
mode = "poll"
proto = "udp"
"#,
    )
    .unwrap();
    let links = host_links();
    let md = dir.join("m");
    let out = vmprobe()
        .arg("matrix")
        .arg(&file)
        .arg("--run-dir")
        .arg(&md)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("1 of 3 configurations failed"), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].contains("UDP round trip (us)") && lines[0].contains("TCP round trip (us)"));
    assert!(
        lines[1].starts_with("configuration")
            && lines[1].contains("stddev")
            && lines[1].contains("p99")
    );
    let row = |name: &str| *lines.iter().find(|l| l.starts_with(name)).unwrap();
    // user irq: 10 numbers; user poll: UDP numbers, TCP not measured.
    let nums = |l: &str| {
        l.split_whitespace()
            .filter(|t| t.parse::<f64>().is_ok())
            .count()
    };
    assert_eq!(nums(row("user irq")), 10, "{stdout}");
    assert_eq!(nums(row("user poll")), 5, "{stdout}");
    // The interrupt path the guest reported: virtio-mmio's wired SPI, none in poll mode.
    assert!(row("user irq").ends_with("(interrupt spi)"), "{stdout}");
    assert!(row("user poll").ends_with("(interrupt none)"), "{stdout}");
    assert!(row("broken").contains("failed: no guest image"), "{stdout}");
    assert!(stdout.contains("TCG emulation"));
    // Each measured configuration's host floor, below the table.
    let floor = |name: &str| {
        lines.iter().any(|l| {
            l.trim_start().starts_with(name)
                && l.contains("udp p50 ")
                && l.contains("loopback echo")
        })
    };
    assert!(
        stdout.contains("host floor, what this host costs without a VM:"),
        "{stdout}"
    );
    assert!(
        floor("user irq") && floor("user poll") && !floor("broken"),
        "{stdout}"
    );

    let csv = std::fs::read_to_string(md.join("table.csv")).unwrap();
    let csv: Vec<&str> = csv.lines().collect();
    assert_eq!(csv.len(), 4);
    assert!(csv[0].starts_with("configuration,label,udp_transactions"));
    assert!(csv[1].starts_with("user irq,user-direct-gic3-mmio-irq-tcg,100,0,0,"));
    // Columns are only appended: the interrupt path, then the exceeded limits (none here).
    assert!(
        csv[0].ends_with(",note,interrupt,limits_exceeded"),
        "{}",
        csv[0]
    );
    assert!(csv[1].ends_with(",spi,"), "{}", csv[1]);
    assert!(csv[2].starts_with("broken,,") && csv[2].contains("no guest image"));
    let mdt = std::fs::read_to_string(md.join("table.md")).unwrap();
    assert!(mdt.starts_with("| configuration | UDP min | UDP avg |"));
    assert_eq!(mdt.lines().count(), 5);
    assert!(md.join("matrix.toml").is_file());
    for sub in ["01-user-irq", "03-user-poll"] {
        let rd = md.join(sub);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(rd.join("results.json")).unwrap())
                .unwrap();
        assert_eq!(check_proto(&v, "udp"), 100);
        assert_run_cleaned_up(&rd, &links);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn quickstart_runs_what_this_host_can() {
    let dir = temp_dir("quickstart");
    let links = host_links();
    let child = vmprobe()
        .args(["quickstart", "--count", "100", "--run-dir"])
        .arg(dir.join("q"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ours = format!("vmp-{}-", child.id());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Quickstart itself adapts to the host: as root every setup, else user networking and a
    // line saying why.
    let not_root = "not root: user networking only";
    let mut nets = vec!["user"];
    if is_root() {
        assert!(!stderr.contains(not_root), "{stderr}");
        nets.extend(["tap", "bridge", "macvtap"]);
        // The eBPF rows where the programs load here, else one line why not.
        match vmprobe::netsetup::ebpf::check() {
            Ok(()) => nets.extend(["ebpf tc", "ebpf xdp"]),
            Err(e) => assert!(
                stderr.contains(&format!("vmprobe: no eBPF rows: {e}")),
                "{stderr}"
            ),
        }
    } else {
        assert!(stderr.contains(not_root), "{stderr}");
    }
    for net in &nets {
        for mode in ["irq", "poll"] {
            let name = format!("{net}, {mode}");
            let l = stdout
                .lines()
                .find(|l| l.starts_with(&name))
                .unwrap_or_else(|| panic!("no row {name}: {stdout}"));
            assert_eq!(
                l.split_whitespace()
                    .filter(|t| t.parse::<f64>().is_ok())
                    .count(),
                10,
                "{l}"
            );
        }
    }
    let q = dir.join("q");
    assert!(q.join("table.csv").is_file() && q.join("table.md").is_file());
    assert!(std::fs::read_to_string(q.join("matrix.toml"))
        .unwrap()
        .contains("[[config]]"));
    for entry in std::fs::read_dir(&q).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            assert_run_cleaned_up(&p, &links);
        }
    }
    let leftover: Vec<_> = netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&ours))
        .collect();
    assert!(leftover.is_empty(), "{leftover:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn quickstart_checks_its_options_once_before_anything_boots() {
    let dir = temp_dir("quickstart-count0");
    let out = vmprobe()
        .args(["quickstart", "--count", "0", "--run-dir"])
        .arg(dir.join("q"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--count must be at least 1"), "{err}");
    assert!(!dir.join("q").exists(), "nothing may run: {err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn quickstart_outside_a_checkout_says_how() {
    let dir = temp_dir("quickstart-elsewhere");
    let exe = dir.join("vmprobe");
    std::fs::copy(env!("CARGO_BIN_EXE_vmprobe"), &exe).unwrap();
    let out = std::process::Command::new(&exe)
        .arg("quickstart")
        .current_dir(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no vmprobe checkout here") && err.contains("scripts/build-guest.sh"),
        "{err}"
    );
    assert!(
        !dir.join("runs").exists(),
        "nothing may run without an image"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ctrl_c_stops_the_matrix_with_the_partial_table() {
    let net = "user";
    let dir = temp_dir("matrix-ctrlc");
    let file = dir.join("m.toml");
    std::fs::write(
        &file,
        format!(
            "accel = \"tcg\"\nduration = \"60s\"\ninterval = \"2ms\"\nnet = \"{net}\"\n\
             [[config]]\nname = \"first\"\n[[config]]\nname = \"second\"\n"
        ),
    )
    .unwrap();
    let links = host_links();
    let md = dir.join("m");
    let mut child = vmprobe()
        .arg("matrix")
        .arg(&file)
        .arg("--run-dir")
        .arg(&md)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_lines(
        &md.join("01-first/samples-udp.csv"),
        50,
        std::time::Duration::from_secs(60),
    );
    // SAFETY: our child, alive until waited for.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait_with_timeout(&mut child, std::time::Duration::from_secs(30));
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_string()
    };
    assert!(
        row("first").ends_with("(interrupt spi; interrupted)"),
        "{stdout}"
    );
    assert!(row("second").ends_with("not run (interrupted)"), "{stdout}");
    assert!(md.join("table.csv").is_file() && md.join("table.md").is_file());
    assert!(!md.join("02-second").exists());
    assert_run_cleaned_up(&md.join("01-first"), &links);
    std::fs::remove_dir_all(dir).unwrap();
}
