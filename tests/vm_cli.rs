//! `vmprobe vm` as users run it: boot, the services printed, Ctrl-C / SIGTERM / QEMU killed,
//! and the one-line errors for bad input; after each, nothing left behind.
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::vm::*;
use support::vmprobe;

const READY: &str =
    "vmprobe: ready ip=192.168.20.2/24 mode=irq gic=v3 transport=mmio cntfrq=62500000\r\n";

/// Starts `vmprobe vm` on the stand-in guest and reads stdout up to the Ctrl-C hint.
fn start_vm(dir: &Path, net: &str) -> (Child, String) {
    let img = fake_image(dir, "guest.bin", READY);
    let mut child = vmprobe()
        .args(["vm", "--accel", "tcg", "--net", net, "--image"])
        .arg(&img)
        .arg("--run-dir")
        .arg(dir.join("run"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("vmprobe vm ended early:\n{out}\n{err}");
        }
        out.push_str(&line);
        if line.starts_with("Ctrl-C stops") {
            break;
        }
    }
    (child, out)
}

fn stderr_of(child: &mut Child) -> String {
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    err
}

fn signal_stops_and_tears_down(sig: i32, test: &str, net: &str) {
    let dir = temp_dir(test);
    let links = host_links();
    let (mut child, out) = start_vm(&dir, net);
    assert!(out.contains("vmprobe: ready"), "{out}");
    assert!(out.contains("echo     udp 7"), "{out}");
    if net == "user" {
        assert!(out.contains("127.0.0.1:"), "{out}");
    } else {
        assert!(out.contains("ip netns exec vmp-"), "{out}");
    }
    let (pid, ns) = run_state(&dir.join("run"));
    assert!(alive(pid));
    // SAFETY: the pid is our child's, alive until we wait for it.
    unsafe { libc::kill(child.id() as i32, sig) };
    let status = wait_with_timeout(&mut child, Duration::from_secs(20));
    let err = stderr_of(&mut child);
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains("stopped (exit status 0)"), "{err}");
    assert_no_leftovers(pid, &ns, &links);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ctrl_c_stops_the_vm() {
    signal_stops_and_tears_down(libc::SIGINT, "ctrlc", "user");
}

#[test]
#[ignore = "needs root: --net tap sets up a network namespace"]
fn sigterm_stops_the_vm_on_tap() {
    signal_stops_and_tears_down(libc::SIGTERM, "sigterm", "tap");
}

#[test]
#[ignore = "needs root: --net macvtap sets up a network namespace"]
fn qemu_killed_is_reported_and_torn_down() {
    let net = "macvtap";
    let dir = temp_dir("cli-killed");
    let links = host_links();
    let (mut child, _) = start_vm(&dir, net);
    let (pid, ns) = run_state(&dir.join("run"));
    // SAFETY: QEMU is alive (the VM just came up) and is reaped by vmprobe.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let status = wait_with_timeout(&mut child, Duration::from_secs(20));
    let err = stderr_of(&mut child);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("QEMU exited unexpectedly (killed by signal 9 (SIGKILL))"),
        "{err}"
    );
    assert!(
        err.contains("| vmprobe: ready"),
        "console tail missing: {err}"
    );
    assert_no_leftovers(pid, &ns, &links);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs `vmprobe vm ARGS` expecting failure; returns (exit code, stderr).
fn fails(args: &[&str]) -> (Option<i32>, String) {
    let out = vmprobe().arg("vm").args(args).output().unwrap();
    assert!(!out.status.success());
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_input_is_one_clear_line() {
    let dir = temp_dir("cli-bad");
    let img = fake_image(&dir, "guest.bin", READY);
    let img = img.to_str().unwrap();

    let (code, err) = fails(&["--image", "/nonexistent/guest.bin"]);
    assert_eq!(code, Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no guest image at /nonexistent/guest.bin") && err.contains("build-guest.sh"),
        "{err}"
    );

    let (code, err) = fails(&["--image", img, "--qemu", "/nonexistent/qemu-system-aarch64"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("apt-get install qemu-system-arm"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // Unknown option values: clap names the valid ones.
    for (flag, bad) in [
        ("--net", "vde"),
        ("--gic", "4"),
        ("--transport", "isa"),
        ("--boot", "efi"),
    ] {
        let (code, err) = fails(&["--image", img, flag, bad]);
        assert_eq!(code, Some(2));
        assert!(
            err.contains(&format!("invalid value '{bad}' for '{flag}")),
            "{err}"
        );
    }
    let (_, err) = fails(&["--image", img, "--pin", "0=x"]);
    assert!(err.contains("VCPU=CPU"), "{err}");
    let (_, err) = fails(&["--image", img, "--pin", "3=0"]);
    assert!(err.contains("vCPU 3 does not exist"), "{err}");

    let (code, err) = fails(&["--image", img, "--vhost", "on"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--vhost on needs --net tap"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs root: drops to an unprivileged user with setpriv to see the refusal"]
fn namespace_setups_need_root() {
    assert!(
        Command::new("setpriv").arg("--version").output().is_ok(),
        "setpriv (util-linux) is missing"
    );
    let dir = temp_dir("cli-notroot");
    let img = fake_image(&dir, "guest.bin", READY);
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert_namespace_nets_need_root("vm", &img);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs root: --net bridge sets up a network namespace"]
fn ctrl_c_during_boot_tears_down() {
    let net = "bridge";
    let dir = temp_dir("cli-bootint");
    // Silent through U-Boot: the VM stays in boot until interrupted.
    let img = fake_image(&dir, "guest.bin", "");
    let links = host_links();
    let mut child = vmprobe()
        .args([
            "vm", "--accel", "tcg", "--boot", "uboot", "--net", net, "--image",
        ])
        .arg(&img)
        .arg("--run-dir")
        .arg(dir.join("run"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until U-Boot is on the console, i.e. QEMU and the network setup are up.
    let console = dir.join("run/console.log");
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&console)
        .unwrap_or_default()
        .contains("U-Boot")
    {
        assert!(std::time::Instant::now() < end, "U-Boot never showed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (pid, ns) = run_state(&dir.join("run"));
    assert!(alive(pid));
    // SAFETY: our child, alive until waited for.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait_with_timeout(&mut child, Duration::from_secs(20));
    let err = stderr_of(&mut child);
    assert!(status.success(), "{err}");
    assert!(err.contains("interrupted during boot"), "{err}");
    assert_no_leftovers(pid, &ns, &links);
    std::fs::remove_dir_all(dir).unwrap();
}

/// SIGKILL leaves no teardown chance: QEMU still dies with vmprobe (parent-death signal), and
/// the namespaces left behind are removed by the next setup (they name a dead process).
#[test]
#[ignore = "needs root: --net bridge sets up a network namespace"]
fn sigkill_of_vmprobe_kills_qemu_and_next_setup_reaps_namespaces() {
    let dir = temp_dir("cli-sigkill");
    let (mut child, _) = start_vm(&dir, "bridge");
    let (pid, ns) = run_state(&dir.join("run"));
    child.kill().unwrap();
    child.wait().unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(std::time::Instant::now() < end, "QEMU outlived vmprobe");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        ns.iter().all(|n| netns_list().contains(n)),
        "expected stale namespaces"
    );
    let fresh = vmprobe::netsetup::NetSetup::create(
        vmprobe::netsetup::Topology::Tap,
        [0x52, 0x54, 0, 9, 9, 9],
    )
    .unwrap();
    let list = netns_list();
    assert!(
        ns.iter().all(|n| !list.contains(n)),
        "stale namespaces not reaped: {list:?}"
    );
    drop(fresh);
    std::fs::remove_dir_all(dir).unwrap();
}
