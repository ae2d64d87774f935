//! VM lifecycle under real QEMU (TCG) with a stand-in guest that prints a scripted console
//! line: ready-line detection, QMP version and vCPU pinning, every network setup, U-Boot,
//! and teardown after success, guest error, silence, QEMU killed, and bad QEMU options.
//! The real guest's services are exercised by tests/vm_boot.rs.
mod support;

use std::time::Duration;

use clap::Parser;
use support::vm::*;
use vmprobe::commands::vm_options::VmOptions;
use vmprobe::netsetup::NetNs;
use vmprobe::vm::{pin, Vm, VmError};

const READY: &str =
    "vmprobe: ready ip=10.0.2.15/24 mode=irq gic=v3 transport=mmio cntfrq=62500000\r\n";

#[derive(Parser)]
struct T {
    #[command(flatten)]
    vm: VmOptions,
}

fn options(args: &[&str]) -> VmOptions {
    T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
        .unwrap()
        .vm
}

/// Options for a stand-in guest printing `message`, run directory inside `dir`.
fn fake(dir: &std::path::Path, message: &str, extra: &[&str]) -> VmOptions {
    let img = fake_image(dir, "guest.bin", message);
    let run = dir.join("run");
    let mut args = vec!["--accel", "tcg", "--image", img.to_str().unwrap()];
    args.extend(["--run-dir", run.to_str().unwrap()]);
    args.extend(extra);
    let mut o = options(&args);
    o.run_dir = Some(run);
    o
}

fn ns_names(vm: &Vm) -> Vec<String> {
    let i = vm.info();
    let mut names: Vec<String> = i
        .qemu_netns
        .iter()
        .chain(i.client_netns.iter())
        .map(|n| n.name().to_string())
        .collect();
    names.dedup(); // tap: QEMU and client share one namespace
    names
}

#[tokio::test]
async fn user_net_ready_pinned_and_shut_down() {
    let dir = temp_dir("user");
    let cfg = fake(&dir, READY, &[]).validate().unwrap();
    let links = host_links();
    let vm = Vm::start(&cfg, Duration::from_secs(30)).await.unwrap();
    let info = vm.info().clone();
    assert_eq!(info.ready.addr.as_deref(), Some("10.0.2.15/24"));
    assert_eq!(info.ready.gic.as_deref(), Some("3"));
    assert_eq!(info.ready.cntfrq, Some(62_500_000));
    assert!(info.qemu_version.major >= 2, "{:?}", info.qemu_version);
    assert!(info.boot.ready_ms.is_some() && info.boot.uboot_ms.is_none());
    // Default pinning: every vCPU thread off cpu0 where the host has more CPUs.
    assert_eq!(info.vcpus.len(), 1);
    for v in &info.vcpus {
        assert_eq!(vmprobe::cpus::of(v.thread_id).unwrap(), pin::default_cpus());
    }
    // User networking: every service forwarded from a loopback port, none a fixed one.
    assert_eq!(info.endpoints.len(), 7);
    assert!(info
        .endpoints
        .iter()
        .all(|e| e.addr.ip().is_loopback() && e.addr.port() != e.service.port));
    // The run directory can re-create the run.
    let rd = vm.run_dir().path().to_path_buf();
    let cmd = std::fs::read_to_string(rd.join("qemu-command.sh")).unwrap();
    assert!(
        cmd.contains("qemu-system-aarch64") && cmd.contains("hostfwd=udp:127.0.0.1:"),
        "{cmd}"
    );
    assert!(std::fs::read_to_string(rd.join("console.log"))
        .unwrap()
        .contains("vmprobe: ready"));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rd.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["config"]["net"], "user");
    assert_eq!(config["config"]["accel"], "tcg");
    assert!(config["qemu_version"]["major"].as_u64().is_some());
    let pid = info.qemu_pid;
    assert!(alive(pid));
    let status = vm.shutdown().await.unwrap();
    assert_eq!(status, "exit status 0", "QMP quit is a clean exit");
    assert_no_leftovers(pid, &[], &links);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn explicit_pin_and_two_vcpus() {
    let dir = temp_dir("pin");
    let cpu = *vmprobe::cpus::allowed().unwrap().last().unwrap();
    let spec = format!("0={cpu},1={cpu}");
    let cfg = fake(&dir, READY, &["--smp", "2", "--pin", &spec])
        .validate()
        .unwrap();
    let vm = Vm::start(&cfg, Duration::from_secs(30)).await.unwrap();
    let vcpus = vm.info().vcpus.clone();
    assert_eq!(vcpus.len(), 2);
    assert_ne!(vcpus[0].thread_id, vcpus[1].thread_id);
    for v in &vcpus {
        assert_eq!(vmprobe::cpus::of(v.thread_id).unwrap(), vec![cpu]);
    }
    vm.shutdown().await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// Boots the stand-in guest on a namespace setup and checks its devices, then teardown.
async fn namespace_setup(net: &str, vm_links: &[&str], h1_links: &[&str]) {
    let dir = temp_dir(net);
    let cfg = fake(&dir, READY, &["--net", net]).validate().unwrap();
    let links = host_links();
    let vm = Vm::start(&cfg, Duration::from_secs(30)).await.unwrap();
    let info = vm.info().clone();
    let qemu_ns = info.qemu_netns.clone().unwrap();
    let have = links_in(qemu_ns.name()).unwrap();
    for l in vm_links {
        assert!(have.iter().any(|h| h == l), "{l} missing in {have:?}");
    }
    let client = info.client_netns.clone().unwrap();
    if h1_links.is_empty() {
        assert_eq!(client, qemu_ns, "tap: the client runs beside the tap");
    } else {
        let have = links_in(client.name()).unwrap();
        for l in h1_links {
            assert!(have.iter().any(|h| h == l), "{l} missing in host1 {have:?}");
        }
    }
    // QEMU runs inside the namespace: its network namespace is the setup's.
    let qemu_net = std::fs::read_link(format!("/proc/{}/ns/net", info.qemu_pid)).unwrap();
    let ns_ino = std::fs::metadata(qemu_ns.path()).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        qemu_net.to_string_lossy(),
        format!("net:[{}]", ns_ino.ino())
    );
    // Code run in the client namespace sees the host side address; the host does not.
    let bound = client
        .run(|| std::net::UdpSocket::bind("192.168.20.1:0").is_ok())
        .unwrap();
    assert!(bound, "192.168.20.1 not on the client side");
    assert!(std::net::UdpSocket::bind("192.168.20.1:0").is_err());
    let (pid, names) = (info.qemu_pid, ns_names(&vm));
    assert!(names.iter().all(|n| netns_list().contains(n)));
    vm.shutdown().await.unwrap();
    assert_no_leftovers(pid, &names, &links);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
#[ignore = "needs root: --net tap sets up a network namespace"]
async fn tap_setup() {
    namespace_setup("tap", &["tap0"], &[]).await;
}

#[tokio::test]
#[ignore = "needs root: --net bridge sets up a network namespace"]
async fn bridge_setup() {
    namespace_setup("bridge", &["tap0", "br0", "veth0"], &["veth1"]).await;
}

#[tokio::test]
#[ignore = "needs root: --net macvtap sets up a network namespace"]
async fn macvtap_setup() {
    namespace_setup("macvtap", &["veth0", "mvtap0"], &["veth1"]).await;
}

#[tokio::test]
async fn uboot_boot_is_timed_separately() {
    let dir = temp_dir("uboot");
    let cfg = fake(&dir, READY, &["--boot", "uboot"]).validate().unwrap();
    let vm = Vm::start(&cfg, Duration::from_secs(60)).await.unwrap();
    let b = vm.info().boot.clone();
    let (banner, kernel, first, ready) = (
        b.uboot_banner_ms.unwrap(),
        b.uboot_starting_kernel_ms.unwrap(),
        b.guest_first_line_ms.unwrap(),
        b.ready_ms.unwrap(),
    );
    assert!(
        banner <= kernel && kernel <= first && first <= ready,
        "{b:?}"
    );
    assert_eq!(b.uboot_ms, Some(first - banner));
    // Debian's U-Boot waits `bootdelay` (2 s) for a key; that wait is part of its share.
    assert!(
        b.uboot_autoboot_wait_ms.unwrap() <= b.uboot_ms.unwrap(),
        "{b:?}"
    );
    let cmd = std::fs::read_to_string(vm.run_dir().file("qemu-command.sh")).unwrap();
    assert!(
        cmd.contains("-bios /usr/lib/u-boot/qemu_arm64/u-boot.bin"),
        "{cmd}"
    );
    assert!(cmd.contains("virtualization=on"), "{cmd}");
    vm.shutdown().await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
#[ignore = "needs root: --net tap sets up a network namespace"]
async fn silent_guest_times_out_with_empty_console_and_tears_down() {
    let dir = temp_dir("silent");
    let cfg = fake(&dir, "", &["--net", "tap"]).validate().unwrap();
    let links = host_links();
    let e = Vm::start(&cfg, Duration::from_secs(2)).await.err().unwrap();
    assert!(matches!(e, VmError::NotReady { .. }), "{e}");
    assert!(e.to_string().contains("console stayed empty"), "{e}");
    let (pid, ns) = run_state(&dir.join("run"));
    assert_eq!(ns.len(), 1);
    assert_no_leftovers(pid, &ns, &links);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn guest_error_line_is_reported_with_console_tail() {
    let dir = temp_dir("gerr");
    let cfg = fake(
        &dir,
        "booting\r\nvmprobe: error: no virtio-net device\r\n",
        &[],
    )
    .validate()
    .unwrap();
    let e = Vm::start(&cfg, Duration::from_secs(30))
        .await
        .err()
        .unwrap();
    match &e {
        VmError::Guest { message, tail } => {
            assert_eq!(message, "no virtio-net device");
            assert!(tail.iter().any(|l| l == "booting"), "{tail:?}");
        }
        other => panic!("{other}"),
    }
    assert_no_leftovers(run_state(&dir.join("run")).0, &[], &[]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn bad_qemu_option_reports_qemu_message() {
    let dir = temp_dir("badopt");
    let cfg = fake(&dir, READY, &["--qemu-arg=-no-such-option"])
        .validate()
        .unwrap();
    let e = Vm::start(&cfg, Duration::from_secs(30))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, VmError::QemuExited { .. }), "{e}");
    assert!(e.to_string().contains("no-such-option"), "{e}");
    assert_no_leftovers(run_state(&dir.join("run")).0, &[], &[]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn qemu_killed_mid_run_is_noticed_and_torn_down() {
    let dir = temp_dir("killed");
    let cfg = fake(&dir, READY, &["--net", "user"]).validate().unwrap();
    let links = host_links();
    let mut vm = Vm::start(&cfg, Duration::from_secs(30)).await.unwrap();
    let (pid, names) = (vm.info().qemu_pid, ns_names(&vm));
    // SAFETY: `pid` is our QEMU child, alive until we reap it below.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let how = tokio::time::timeout(Duration::from_secs(10), vm.wait_exit())
        .await
        .unwrap();
    assert_eq!(how, "killed by signal 9 (SIGKILL)");
    vm.shutdown().await.unwrap();
    assert_no_leftovers(pid, &names, &links);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
#[ignore = "needs root: --net macvtap sets up a network namespace"]
async fn dropping_a_vm_kills_qemu_and_removes_namespaces() {
    let dir = temp_dir("drop");
    let cfg = fake(&dir, READY, &["--net", "macvtap"]).validate().unwrap();
    let links = host_links();
    let vm = Vm::start(&cfg, Duration::from_secs(30)).await.unwrap();
    let (pid, names) = (vm.info().qemu_pid, ns_names(&vm));
    drop(vm);
    assert_no_leftovers(pid, &names, &links);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs root: --net tap sets up a network namespace"]
fn vhost_on_needs_vhost_net() {
    let dir = temp_dir("vhost");
    let checked = fake(&dir, READY, &["--net", "tap", "--vhost", "on"]).validate();
    if std::path::Path::new("/dev/vhost-net").exists() {
        checked.unwrap();
    } else {
        let e = checked.unwrap_err();
        assert!(e.to_string().contains("/dev/vhost-net"), "{e}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs root: creates a network namespace"]
fn netns_threads_run_inside_the_namespace() {
    let s = vmprobe::netsetup::NetSetup::create(
        vmprobe::netsetup::Topology::Tap,
        [0x52, 0x54, 0, 1, 2, 3],
    )
    .unwrap();
    let ns: NetNs = s.client_netns().clone();
    // A thread spawned from inside inherits the namespace.
    let inner = ns
        .run(|| {
            std::thread::spawn(|| std::net::UdpSocket::bind("192.168.20.1:0").is_ok())
                .join()
                .unwrap()
        })
        .unwrap();
    assert!(inner);
    let name = ns.name().to_string();
    drop(s);
    assert!(!netns_list().contains(&name));
}

#[tokio::test]
async fn qemu_accepts_every_transport_gic_and_mode() {
    for (i, (extra, says)) in [
        (
            &["--transport", "pci", "--gic", "3"][..],
            "mode=irq gic=v3 transport=pci",
        ),
        (
            &["--transport", "mmio-legacy", "--gic", "2"],
            "mode=irq gic=v2 transport=mmio-legacy",
        ),
        (
            &["--transport", "mmio", "--gic", "2", "--mode", "poll"],
            "mode=poll gic=v2 transport=mmio",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = temp_dir(&format!("variant{i}"));
        let ready = format!("vmprobe: ready ip=10.0.2.15/24 {says} cntfrq=62500000\r\n");
        let cfg = fake(&dir, &ready, extra).validate().unwrap();
        let vm = Vm::start(&cfg, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{extra:?}: {e}"));
        let pid = vm.info().qemu_pid;
        assert_eq!(vm.shutdown().await.unwrap(), "exit status 0");
        assert!(!alive(pid));
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// The run directory re-creates the run: `netsetup.sh` then `qemu-command.sh` boot the same
/// guest again, by hand, after vmprobe has torn everything down.
#[tokio::test]
async fn run_directory_scripts_rerun_the_vm() {
    rerun("user").await;
}

#[tokio::test]
#[ignore = "needs root: --net tap and macvtap set up network namespaces"]
async fn run_directory_scripts_rerun_the_vm_in_namespaces() {
    for net in ["tap", "macvtap"] {
        rerun(net).await;
    }
}

async fn rerun(net: &str) {
    let dir = temp_dir(&format!("rerun-{net}"));
    let cfg = fake(&dir, READY, &["--net", net]).validate().unwrap();
    let vm = Vm::start(&cfg, Duration::from_secs(30)).await.unwrap();
    let (run, names) = (vm.run_dir().path().to_path_buf(), ns_names(&vm));
    vm.shutdown().await.unwrap();
    let rerun = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        if run.join("netsetup.sh").exists() {
            let st = Command::new("sh")
                .arg(run.join("netsetup.sh"))
                .output()
                .unwrap();
            assert!(
                st.status.success(),
                "{}",
                String::from_utf8_lossy(&st.stderr)
            );
        }
        let mut qemu = Command::new("sh")
            .arg(run.join("qemu-command.sh"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(qemu.stdout.take().unwrap()).lines();
        let ready = lines.any(|l| l.is_ok_and(|l| l.starts_with("vmprobe: ready")));
        // The scripts exec down to QEMU itself, so this is QEMU's pid.
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", qemu.id())).unwrap();
        qemu.kill().unwrap();
        qemu.wait().unwrap();
        assert!(
            comm.starts_with("qemu-system"),
            "the script runs {comm}, not QEMU"
        );
        for ns in &names {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        ready
    })
    .await
    .unwrap();
    assert!(rerun, "{net}: qemu-command.sh did not boot the guest again");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn guest_in_another_configuration_is_an_error() {
    let dir = temp_dir("mismatch");
    // The stand-in says mode=irq transport=mmio gic=v3.
    for (extra, key) in [
        (&["--mode", "poll"][..], "mode=irq but mode poll"),
        (&["--transport", "pci"], "transport=mmio but transport pci"),
        (&["--gic", "2"], "gic=3 but gic 2"),
    ] {
        let cfg = fake(&dir, READY, extra).validate().unwrap();
        let e = Vm::start(&cfg, Duration::from_secs(30))
            .await
            .err()
            .unwrap();
        assert!(matches!(e, VmError::Mismatch { .. }), "{e}");
        assert!(e.to_string().contains(key), "{e}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
