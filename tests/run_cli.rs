//! `vmprobe run` failure cases: one clear line for bad input; a guest that never gets ready
//! (console tail); QEMU killed mid-run and Ctrl-C mid-run (partial samples kept, summarised,
//! reported); after each, nothing left behind.
mod support;

use std::process::Stdio;
use std::time::Duration;

use support::run::*;
use support::vmprobe;

/// Runs `vmprobe run ARGS` expecting failure; returns (exit code, stderr).
fn fails(args: &[&str], path: Option<&str>) -> (Option<i32>, String) {
    let mut c = vmprobe();
    c.arg("run").args(args);
    if let Some(p) = path {
        c.env("PATH", p);
    }
    let out = c.output().unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(out.stdout.is_empty(), "{args:?} printed a summary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_input_is_one_clear_line() {
    let dir = temp_dir("run-bad");
    let img = fake_image(&dir, "guest.bin", "hello\r\n");
    let img = img.to_str().unwrap();

    let (code, err) = fails(&["--image", img], Some("/nonexistent"));
    assert_eq!(code, Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("qemu-system-aarch64 not found")
            && err.contains("apt-get install qemu-system-arm"),
        "{err}"
    );

    let (code, err) = fails(&["--image", "/nonexistent/guest.bin"], None);
    assert_eq!(code, Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no guest image at /nonexistent/guest.bin") && err.contains("build-guest.sh"),
        "{err}"
    );
    // A file that is not an arm64 Image is refused at once, not booted into a ready timeout.
    let (code, err) = fails(&["--image", "/etc/passwd"], None);
    assert_eq!(code, Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/etc/passwd is not an arm64 Image"), "{err}");

    for (flag, bad) in [
        ("--net", "vde"),
        ("--proto", "sctp"),
        ("--mode", "spin"),
        ("--transport", "isa"),
    ] {
        let (code, err) = fails(&["--image", img, flag, bad], None);
        assert_eq!(code, Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("invalid value '{bad}' for '{flag}")),
            "{err}"
        );
    }
    // rr's options are checked before anything boots.
    let (code, err) = fails(&["--image", img, "--size", "0"], None);
    assert_eq!(code, Some(1));
    assert!(err.contains("--size must be between"), "{err}");
    let (_, err) = fails(&["--image", img, "--target", "1.2.3.4:7"], None);
    assert!(err.contains("--target"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs root: drops to an unprivileged user with setpriv to see the refusal"]
fn tap_needs_root() {
    assert!(
        std::process::Command::new("setpriv")
            .arg("--version")
            .output()
            .is_ok(),
        "setpriv (util-linux) is missing"
    );
    let dir = temp_dir("run-notroot");
    let img = fake_image(&dir, "guest.bin", "hello\r\n");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert_namespace_nets_need_root("run", &img);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn guest_never_ready_shows_the_console_tail() {
    let net = "user";
    let dir = temp_dir("run-notready");
    let img = fake_image(&dir, "guest.bin", "guest says hello but never ready\r\n");
    let links = host_links();
    let out = vmprobe()
        .args([
            "run",
            "--accel",
            "tcg",
            "--ready-timeout",
            "3",
            "--net",
            net,
            "--image",
        ])
        .arg(&img)
        .arg("--run-dir")
        .arg(dir.join("run"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the guest was not ready within 3s"), "{err}");
    assert!(err.contains("| guest says hello but never ready"), "{err}");
    assert!(out.stdout.is_empty());
    assert_run_cleaned_up(&dir.join("run"), &links);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Starts a long paced run on the real guest and waits until UDP samples are being logged.
fn start_long_run(test: &str, net: &str) -> (std::path::PathBuf, std::process::Child) {
    let dir = temp_dir(test);
    let child = vmprobe()
        .args([
            "run",
            "--accel",
            "tcg",
            "--net",
            net,
            "--duration",
            "60s",
            "--interval",
            "2ms",
            "--run-dir",
        ])
        .arg(dir.join("run"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_lines(
        &dir.join("run/samples-udp.csv"),
        50,
        Duration::from_secs(60),
    );
    (dir, child)
}

fn read_all(r: &mut impl std::io::Read) -> String {
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    s
}

#[test]
#[ignore = "needs root: --net tap sets up a network namespace"]
fn qemu_killed_mid_run_keeps_and_reports_the_samples() {
    let net = "tap";
    let links = host_links();
    let (dir, mut child) = start_long_run("run-killed", net);
    let rd = dir.join("run");
    let (pid, _) = run_state(&rd);
    // SAFETY: QEMU is alive (samples are flowing) and is reaped by vmprobe.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    let out = read_all(child.stdout.as_mut().unwrap());
    let err = read_all(child.stderr.as_mut().unwrap());
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("QEMU exited during the measurement (killed by signal 9 (SIGKILL))"),
        "{err}"
    );
    assert!(
        err.contains("| vmprobe: ready"),
        "console tail missing: {err}"
    );
    // The partial summary was printed, and the run directory holds the samples.
    assert!(
        out.contains("--- udp echo") && out.contains("interrupted"),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rd.join("results.json")).unwrap()).unwrap();
    let n = check_proto(&v, "udp");
    assert!(v.get("tcp").is_none(), "tcp measured after QEMU died");
    assert_eq!(v["qemu_died"], "killed by signal 9 (SIGKILL)");
    let logged = std::fs::read_to_string(rd.join("samples-udp.csv")).unwrap();
    assert!(
        logged.lines().count() as u64 > n,
        "log has fewer rows than transactions"
    );
    assert_run_cleaned_up(&rd, &links);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ctrl_c_mid_run_prints_the_summary_and_tears_down() {
    let net = "user";
    let links = host_links();
    let (dir, mut child) = start_long_run("run-ctrlc", net);
    let rd = dir.join("run");
    // SAFETY: our child, alive until waited for.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    let out = read_all(child.stdout.as_mut().unwrap());
    let err = read_all(child.stderr.as_mut().unwrap());
    assert!(status.success(), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(
        out.contains("--- udp echo") && out.contains("interrupted"),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rd.join("results.json")).unwrap()).unwrap();
    assert_eq!(v["interrupted"], true);
    let n = check_proto(&v, "udp");
    assert_eq!(v["qemu_exit"], "exit status 0");
    for f in [
        "qemu-command.sh",
        "console.log",
        "summary.txt",
        "hist-udp.hlog",
    ] {
        assert!(rd.join(f).is_file(), "{f} missing");
    }
    let logged = std::fs::read_to_string(rd.join("samples-udp.csv")).unwrap();
    assert!(logged.lines().count() as u64 > n);
    assert_run_cleaned_up(&rd, &links);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs root: --net macvtap sets up a network namespace"]
fn ctrl_c_during_boot_tears_down() {
    let net = "macvtap";
    let dir = temp_dir("run-bootint");
    // Silent through U-Boot: the run stays in boot until interrupted.
    let img = fake_image(&dir, "guest.bin", "");
    let links = host_links();
    let rd = dir.join("run");
    let mut child = vmprobe()
        .args([
            "run", "--accel", "tcg", "--boot", "uboot", "--net", net, "--image",
        ])
        .arg(&img)
        .arg("--run-dir")
        .arg(&rd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(rd.join("console.log"))
        .unwrap_or_default()
        .contains("U-Boot")
    {
        assert!(std::time::Instant::now() < end, "U-Boot never showed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: our child, alive until waited for.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait_with_timeout(&mut child, Duration::from_secs(20));
    let err = read_all(child.stderr.as_mut().unwrap());
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("interrupted during boot"), "{err}");
    assert!(read_all(child.stdout.as_mut().unwrap()).is_empty());
    assert_run_cleaned_up(&rd, &links);
    std::fs::remove_dir_all(dir).unwrap();
}
