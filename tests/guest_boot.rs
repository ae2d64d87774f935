//! Boot the real guest image under QEMU (`-kernel`) across the platform matrix and check that it
//! answers: GICv2/GICv3, virtio-mmio legacy/modern and virtio-pci, EL1 and EL2 entry, IRQ and
//! poll mode. Each guest gets its own free host port for user networking's hostfwd.

mod support;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use support::guest::*;

/// Boots `machine` with a virtio-net `device` and `append`, waits for the ready line, checks
/// UDP echo of every size and TCP echo, and returns the ready line and the QEMU handle.
fn boot_and_echo(machine: &str, device: &str, append: &str, extra: &[String]) -> (String, Qemu) {
    let port = free_port();
    let mut qemu_args = args(&format!("{machine} -m 128M -kernel"));
    qemu_args.push(guest_image().display().to_string());
    qemu_args.extend(user_net(port));
    qemu_args.extend(args(&format!("-device {device},netdev=n0")));
    if !append.is_empty() {
        qemu_args.extend(["-append".to_string(), append.to_string()]);
    }
    qemu_args.extend_from_slice(extra);
    let qemu = Qemu::spawn(&qemu_args);
    let ready = qemu.wait_ready();
    udp_echo(port, UDP_SIZES);
    tcp_echo(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), 100_000);
    // Echo again after TCP: the UDP path still answers with the exact bytes.
    udp_echo(port, &[1472, 1]);
    assert!(
        !qemu.console().contains("vmprobe: error"),
        "{}",
        qemu.console()
    );
    (ready, qemu)
}

fn trace_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("vmprobe-{name}-{}.trace", std::process::id()))
}

#[test]
fn gicv2_legacy_virtio_mmio_irq_mode() {
    let trace = trace_file("irq");
    let extra = args(&format!("-trace virtio_notify -D {}", trace.display()));
    let (ready, qemu) = boot_and_echo(
        "-M virt,gic-version=2 -cpu cortex-a57",
        "virtio-net-device",
        "",
        &extra,
    );
    assert_eq!(
        ready,
        "vmprobe: ready ip=10.0.2.15/24 mode=irq gic=v2 transport=mmio-legacy cntfrq=62500000 interrupt=spi"
    );
    // TCG's PSCI knows no SMCCC_VERSION: no KVM PTP service, and the guest says why.
    assert!(
        qemu.console()
            .contains("vmprobe: kvm-ptp: absent: PSCI has no SMCCC_VERSION (SMCCC 1.0)"),
        "{}",
        qemu.console()
    );
    // QEMU's -kernel puts the image at the start of RAM plus text_offset.
    assert!(
        qemu.console()
            .contains("vmprobe: boot: entered at EL1, image at 0x40080000, dtb at 0x"),
        "{}",
        qemu.console()
    );
    drop(qemu);
    // IRQ mode is woken by the device's interrupt: QEMU traces each one it raises.
    let notifies = trace_events(&trace, "virtio_notify ");
    let _ = std::fs::remove_file(&trace);
    assert!(
        notifies >= UDP_SIZES.len(),
        "only {notifies} device interrupts in IRQ mode"
    );
}

/// GICv3 + virtio-pci takes MSI-X through the ITS, and QEMU's ITS translates every interrupt.
#[test]
fn gicv3_virtio_pci_irq_mode_takes_msix_through_the_its() {
    let trace = trace_file("its");
    let extra = args(&format!(
        "-trace gicv3_its_translation_write,file={}",
        trace.display()
    ));
    let (ready, qemu) = boot_and_echo(
        "-M virt,gic-version=3 -cpu max",
        "virtio-net-pci,romfile=",
        "",
        &extra,
    );
    assert!(
        ready.starts_with("vmprobe: ready ip=10.0.2.15/24 mode=irq gic=v3 transport=pci cntfrq="),
        "{ready}"
    );
    assert!(ready.ends_with(" interrupt=msix-its"), "{ready}");
    drop(qemu);
    // Each MSI is a device write to GITS_TRANSLATER.
    let msis = trace_events(&trace, "gicv3_its_translation_write");
    let _ = std::fs::remove_file(&trace);
    assert!(
        msis >= UDP_SIZES.len(),
        "only {msis} MSIs reached the ITS in IRQ mode"
    );
}

/// GICv2 + virtio-pci takes MSI-X through the v2m frame: every interrupt is an edge on one of
/// the frame's SPIs (QEMU virt: INTIDs 80..144), none on the INTx lines.
#[test]
fn gicv2_virtio_pci_irq_mode_takes_msix_through_v2m() {
    let trace = trace_file("v2m");
    let extra = args(&format!("-trace gic_set_irq,file={}", trace.display()));
    let (ready, qemu) = boot_and_echo(
        "-M virt,gic-version=2 -cpu cortex-a57",
        "virtio-net-pci,romfile=",
        "",
        &extra,
    );
    assert!(
        ready.starts_with("vmprobe: ready ip=10.0.2.15/24 mode=irq gic=v2 transport=pci "),
        "{ready}"
    );
    assert!(ready.ends_with(" interrupt=msix-v2m"), "{ready}");
    drop(qemu);
    let log = std::fs::read_to_string(&trace).unwrap_or_default();
    let _ = std::fs::remove_file(&trace);
    let raised: Vec<u32> = log
        .lines()
        .filter(|l| l.contains("gic_set_irq") && l.contains(" level 1 "))
        .filter_map(|l| l.split(" irq ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    let msis = raised.iter().filter(|i| (80..144).contains(*i)).count();
    assert!(
        msis >= UDP_SIZES.len(),
        "only {msis} v2m interrupts: {raised:?}"
    );
    assert!(
        !raised.iter().any(|i| (35..=38).contains(i)),
        "INTx raised: {raised:?}"
    );
}

/// Without an ITS (and no v2m on GICv3) virtio-pci falls back to INTx and says so.
#[test]
fn gicv3_without_its_falls_back_to_intx() {
    let (ready, _qemu) = boot_and_echo(
        "-M virt,gic-version=3,its=off -cpu max",
        "virtio-net-pci,romfile=",
        "",
        &[],
    );
    assert!(ready.contains(" mode=irq gic=v3 transport=pci "), "{ready}");
    assert!(ready.ends_with(" interrupt=intx"), "{ready}");
}

#[test]
fn gicv3_modern_virtio_mmio_entered_at_el2() {
    let extra = args("-global virtio-mmio.force-legacy=false");
    let (ready, qemu) = boot_and_echo(
        "-M virt,gic-version=3,virtualization=on -cpu max",
        "virtio-net-device",
        "",
        &extra,
    );
    assert!(
        ready.starts_with("vmprobe: ready ip=10.0.2.15/24 mode=irq gic=v3 transport=mmio cntfrq="),
        "{ready}"
    );
    assert!(
        qemu.console().contains("vmprobe: boot: entered at EL2"),
        "{}",
        qemu.console()
    );
    assert!(
        qemu.console()
            .contains("vmprobe: kvm-ptp: absent: the probe owns EL2: no hypervisor"),
        "{}",
        qemu.console()
    );
}

#[test]
fn poll_mode_answers_with_device_interrupts_suppressed() {
    let trace = trace_file("poll");
    let extra = args(&format!("-trace virtio_notify -D {}", trace.display()));
    let (ready, qemu) = boot_and_echo(
        "-M virt,gic-version=2 -cpu cortex-a57",
        "virtio-net-device",
        "mode=poll",
        &extra,
    );
    assert!(
        ready.contains(" mode=poll gic=v2 transport=mmio-legacy "),
        "{ready}"
    );
    assert!(ready.ends_with(" interrupt=none"), "{ready}");
    drop(qemu);
    // Not one interrupt raised by the device over the whole run (virtio_notify is traced only
    // when QEMU actually signals the guest, after VRING_AVAIL_F_NO_INTERRUPT / EVENT_IDX checks).
    let notifies = trace_events(&trace, "virtio_notify ");
    let log = std::fs::read_to_string(&trace).unwrap_or_default();
    let _ = std::fs::remove_file(&trace);
    assert_eq!(notifies, 0, "device interrupts in poll mode:\n{log}");
}

/// Poll mode on virtio-pci with an ITS present: no device interrupt, no MSI at all.
#[test]
fn poll_mode_on_virtio_pci() {
    let trace = trace_file("poll-pci");
    let extra = args(&format!(
        "-trace virtio_notify -trace gicv3_its_translation_write -D {}",
        trace.display()
    ));
    let (ready, qemu) = boot_and_echo(
        "-M virt,gic-version=3 -cpu max",
        "virtio-net-pci,romfile=",
        "mode=poll",
        &extra,
    );
    assert!(
        ready.contains(" mode=poll gic=v3 transport=pci "),
        "{ready}"
    );
    assert!(ready.ends_with(" interrupt=none"), "{ready}");
    drop(qemu);
    let log = std::fs::read_to_string(&trace).unwrap_or_default();
    let _ = std::fs::remove_file(&trace);
    let interrupts = log
        .lines()
        .filter(|l| l.contains("virtio_notify ") || l.contains("gicv3_its_translation_write"))
        .count();
    assert_eq!(interrupts, 0, "interrupts in poll mode:\n{log}");
}

/// A bad boot argument is reported and the guest powers the machine off through PSCI.
#[test]
fn bad_boot_argument_is_reported_then_powers_off() {
    let mut qemu_args = args("-M virt -cpu cortex-a57 -m 128M -kernel");
    qemu_args.push(guest_image().display().to_string());
    qemu_args.extend(args(
        "-netdev user,id=n0 -device virtio-net-device,netdev=n0 -append mode=fast",
    ));
    let mut qemu = Qemu::spawn(&qemu_args);
    let line = qemu.wait_for("vmprobe: error", READY_TIMEOUT);
    assert_eq!(
        line,
        "vmprobe: error: boot arguments: bad mode=\"fast\": expected irq or poll"
    );
    let status = qemu
        .wait_exit(Duration::from_secs(30))
        .expect("guest did not power off");
    assert!(status.success(), "{status:?}");
    assert!(!qemu.console().contains("vmprobe: ready"));
}

/// Without a NIC the guest says so and powers off (over SMC when it owns EL2).
#[test]
fn missing_nic_is_reported_then_powers_off() {
    let mut qemu_args = args("-M virt,virtualization=on -cpu max -m 128M -kernel");
    qemu_args.push(guest_image().display().to_string());
    let mut qemu = Qemu::spawn(&qemu_args);
    let line = qemu.wait_for("vmprobe: error", READY_TIMEOUT);
    assert_eq!(
        line,
        "vmprobe: error: no virtio-net device on virtio-mmio or PCI"
    );
    assert!(qemu
        .wait_exit(Duration::from_secs(30))
        .expect("guest did not power off")
        .success());
}

/// `dhcp` takes the address from QEMU's DHCP server (on a non-default subnet, so a static
/// default could not pass); the ready line waits for the lease, which needs the timer in IRQ mode.
#[test]
fn dhcp_lease_on_user_networking() {
    let port = free_port();
    let mut qemu_args = args("-M virt,gic-version=3 -cpu max -m 128M -kernel");
    qemu_args.push(guest_image().display().to_string());
    qemu_args.extend(args(&format!(
        "-netdev user,id=n0,net=10.9.8.0/24,hostfwd=udp:127.0.0.1:{port}-10.9.8.15:7 \
         -device virtio-net-pci,romfile=,netdev=n0 -append dhcp"
    )));
    let qemu = Qemu::spawn(&qemu_args);
    let ready = qemu.wait_ready();
    assert!(
        ready.starts_with("vmprobe: ready ip=10.9.8.15/24 mode=irq gic=v3 transport=pci "),
        "{ready}"
    );
    udp_echo(port, UDP_SIZES);
}

/// Every contract service answers on the real image: an unmodified `sockperf ping-pong` on UDP
/// 11111, chargen on TCP 19, discard on TCP 9 (and ICMP on the tap test).
#[test]
fn all_services_answer_on_the_real_image() {
    let (sockperf, chargen, discard) = (free_port(), free_port(), free_port());
    let mut qemu_args = args("-M virt,gic-version=3 -cpu max -m 128M -kernel");
    qemu_args.push(guest_image().display().to_string());
    qemu_args.extend(args(&format!(
        "-netdev user,id=n0,hostfwd=udp:127.0.0.1:{sockperf}-:11111,\
         hostfwd=tcp:127.0.0.1:{chargen}-:19,hostfwd=tcp:127.0.0.1:{discard}-:9 \
         -device virtio-net-pci,romfile=,netdev=n0"
    )));
    let qemu = Qemu::spawn(&qemu_args);
    qemu.wait_ready();

    let out = std::process::Command::new("sockperf")
        .args([
            "ping-pong",
            "-i",
            "127.0.0.1",
            "-p",
            &sockperf.to_string(),
            "-t",
            "1",
            "--msg-size",
            "64",
        ])
        .output()
        .expect("run sockperf (scripts/setup.sh installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sockperf failed:\n{text}");
    let observations: u64 = text
        .split("Total ")
        .find_map(|t| t.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no sockperf summary:\n{text}"));
    assert!(
        observations > 100,
        "{observations} sockperf round trips:\n{text}"
    );
    assert!(text.contains("# dropped messages = 0;"), "{text}");

    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", chargen)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut bulk = vec![0u8; 200_000];
    stream.read_exact(&mut bulk).expect("chargen stream");
    // RFC 864: printable ASCII lines.
    assert!(bulk
        .iter()
        .all(|&b| (b' '..=b'~').contains(&b) || b == b'\r' || b == b'\n'));
    assert!(bulk.windows(2).any(|w| w == b"\r\n"));

    let mut sink = std::net::TcpStream::connect(("127.0.0.1", discard)).unwrap();
    sink.write_all(&payload(300_000, 3))
        .expect("discard accepts everything");
    sink.shutdown(std::net::Shutdown::Write).unwrap();
    sink.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = sink.read_to_end(&mut rest);
    assert!(rest.is_empty(), "discard sent {} bytes back", rest.len());
    assert!(!qemu.console().contains("vmprobe: error"));
}

/// Boots with user networking `netdev` (guest UDP 7 forwarded from 127.0.0.1:`port`) while a
/// client sends a UDP echo every 5 ms from QEMU's start, and checks that the client is answered
/// right after the ready line: the guest announced itself before it said ready, so QEMU's user
/// network is not sitting out its ARP retry with the client's first datagrams.
fn early_client_answered_right_after_ready(netdev: &str, port: u16, append: &str) {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let pinger = EarlyPinger::start(socket, SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    let mut qemu_args = args("-M virt,gic-version=3 -cpu max -m 128M -kernel");
    qemu_args.push(guest_image().display().to_string());
    qemu_args.extend(args(&format!(
        "-netdev {netdev} -device virtio-net-pci,romfile=,netdev=n0"
    )));
    if !append.is_empty() {
        qemu_args.extend(["-append".to_string(), append.to_string()]);
    }
    let qemu = Qemu::spawn(&qemu_args);
    qemu.wait_ready();
    let ready = Instant::now();
    pinger
        .answered_soon_after(ready, &qemu)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn early_client_answered_right_after_ready_static_address() {
    let port = free_port();
    early_client_answered_right_after_ready(
        &format!("user,id=n0,hostfwd=udp:127.0.0.1:{port}-:7"),
        port,
        "",
    );
}

#[test]
fn early_client_answered_right_after_ready_dhcp() {
    let port = free_port();
    early_client_answered_right_after_ready(
        &format!("user,id=n0,net=10.9.8.0/24,hostfwd=udp:127.0.0.1:{port}-10.9.8.15:7"),
        port,
        "dhcp",
    );
}

/// A device tree the probe cannot run on (here: its GIC's compatible string defaced) is
/// reported on the console that tree names, instead of a silent park.
#[test]
fn unusable_device_tree_is_reported_on_its_console() {
    let path = std::env::temp_dir().join(format!("vmprobe-nogic-{}.dtb", std::process::id()));
    let machine = "-M virt,gic-version=2";
    let dump = std::process::Command::new("qemu-system-aarch64")
        .args(args(&format!(
            "{machine},dumpdtb={} -cpu cortex-a57 -m 128M -nographic -nic none",
            path.display()
        )))
        .output()
        .expect("run qemu-system-aarch64");
    assert!(dump.status.success(), "{dump:?}");
    let mut blob = std::fs::read(&path).unwrap();
    let gic = b"arm,cortex-a15-gic";
    let at = blob
        .windows(gic.len())
        .position(|w| w == gic)
        .expect("GIC compatible in QEMU's tree");
    blob[at + gic.len() - 1] = b'x';
    std::fs::write(&path, &blob).unwrap();

    let mut qemu_args = args(&format!("{machine} -cpu cortex-a57 -m 128M -kernel"));
    qemu_args.push(guest_image().display().to_string());
    qemu_args.extend(["-dtb".to_string(), path.display().to_string()]);
    let qemu = Qemu::spawn(&qemu_args);
    let line = qemu.wait_for("vmprobe: error", READY_TIMEOUT);
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        line,
        "vmprobe: error: device tree has no GICv2 or GICv3 interrupt controller"
    );
}

/// The `vmprobe: result` lines of `console` between `results begin` and `results end`, as
/// (id, value, unit); panics unless the block is there once, with the line after it starting
/// with `next`.
fn self_report(console: &str, next: &str) -> Vec<(String, f64, String)> {
    let lines: Vec<&str> = console.lines().map(str::trim).collect();
    let at = |needle: &str| {
        let found: Vec<usize> = (0..lines.len()).filter(|&i| lines[i] == needle).collect();
        assert_eq!(found.len(), 1, "{needle:?} once in:\n{console}");
        found[0]
    };
    let (begin, end) = (at("vmprobe: results begin"), at("vmprobe: results end"));
    assert!(begin < end, "{console}");
    assert!(
        lines.get(end + 1).is_some_and(|l| l.starts_with(next)),
        "{next:?} right after the block in:\n{console}"
    );
    lines[begin + 1..end]
        .iter()
        .map(|l| {
            let fields: Vec<&str> = l
                .strip_prefix("vmprobe: result ")
                .unwrap_or_else(|| panic!("not a result line: {l:?}"))
                .split(' ')
                .collect();
            let [id, value, unit] = fields[..] else {
                panic!("not `id value unit`: {l:?}")
            };
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{id}"
            );
            (
                id.to_string(),
                value.parse().expect(value),
                unit.to_string(),
            )
        })
        .collect()
}

/// `bench=all` on a machine that can run every micro-benchmark (two vCPUs for the IPI, the ITS
/// for the LPI): the p50 and p99 of each and the boot time, between the markers and before the
/// unchanged ready line; then the probe serves as usual.
#[test]
fn bench_all_reports_every_micro_benchmark_then_serves() {
    let (ready, qemu) = boot_and_echo(
        "-M virt,gic-version=3 -cpu max -smp 2",
        "virtio-net-pci,romfile=",
        "bench=all",
        &[],
    );
    assert!(
        ready.starts_with("vmprobe: ready ip=10.0.2.15/24 mode=irq gic=v3 transport=pci cntfrq="),
        "{ready}"
    );
    assert!(ready.ends_with(" interrupt=msix-its"), "{ready}");
    let results = self_report(&qemu.console(), "vmprobe: ready ");
    let mut expected: Vec<String> = vmprobe_proto::BenchTest::ALL
        .iter()
        .flat_map(|t| [format!("guest-{t}-p50"), format!("guest-{t}-p99")])
        .collect();
    expected.push("guest-boot".into());
    let ids: Vec<&str> = results.iter().map(|(id, ..)| id.as_str()).collect();
    assert_eq!(ids, expected);
    for pair in results[..results.len() - 1].chunks(2) {
        let ((p50_id, p50, p50_unit), (_, p99, p99_unit)) = (&pair[0], &pair[1]);
        assert_eq!((p50_unit.as_str(), p99_unit.as_str()), ("ns", "ns"));
        assert!(p50 <= p99, "{p50_id}: p50 {p50} above p99 {p99}");
    }
    // The boot figure is the time to ready in ms: well under the ready timeout, not zero.
    let (_, boot, unit) = results.last().unwrap();
    assert_eq!(unit, "ms");
    assert!(
        *boot > 0.0 && *boot < READY_TIMEOUT.as_millis() as f64,
        "{boot}"
    );
    assert!(
        !qemu.console().contains("vmprobe: bench:"),
        "{}",
        qemu.console()
    );
}

/// A name that is no micro-benchmark: one line naming it, no results, and the probe serves.
#[test]
fn unknown_bench_name_is_said_and_the_probe_serves() {
    let (ready, qemu) = boot_and_echo(
        "-M virt,gic-version=2 -cpu cortex-a57",
        "virtio-net-device",
        "bench=hypercall,eio",
        &[],
    );
    assert!(ready.starts_with("vmprobe: ready ip=10.0.2.15/24 mode=irq gic=v2 "));
    let console = qemu.console();
    let notes: Vec<&str> = console
        .lines()
        .filter(|l| l.contains("eio"))
        .map(str::trim)
        .collect();
    assert_eq!(notes.len(), 1, "{console}");
    assert!(
        notes[0].starts_with(
            "vmprobe: note: bench=: no micro-benchmark named \"eio\" (one of all, hypercall, "
        ),
        "{}",
        notes[0]
    );
    assert!(notes[0].ends_with("; running none"), "{}", notes[0]);
    assert!(!console.contains("vmprobe: result"), "{console}");
}

/// Without any NIC (a board without virtio-net), `bench=all` still reports what needs none,
/// notes the rest, and then stops with the error it stops with anyway; no boot time, as it never
/// gets to serve.
#[test]
fn bench_all_without_a_nic_reports_then_stops() {
    let mut qemu_args = args("-M virt,gic-version=2 -cpu cortex-a57 -m 128M -nic none -kernel");
    qemu_args.push(guest_image().display().to_string());
    qemu_args.extend(args("-append bench=all"));
    let mut qemu = Qemu::spawn(&qemu_args);
    qemu.wait_for("vmprobe: error", READY_TIMEOUT);
    assert!(
        qemu.wait_exit(Duration::from_secs(20)).is_some(),
        "powered off"
    );
    let console = qemu.console();
    let results = self_report(
        &console,
        "vmprobe: error: no virtio-net device on virtio-mmio or PCI",
    );
    let ids: Vec<&str> = results.iter().map(|(id, ..)| id.as_str()).collect();
    let expected: Vec<String> = [
        "hypercall",
        "mmio-gicd",
        "eoi",
        "self-sgi",
        "vtimer",
        "counter-read",
    ]
    .iter()
    .flat_map(|t| [format!("guest-{t}-p50"), format!("guest-{t}-p99")])
    .collect();
    assert_eq!(ids, expected);
    for t in ["mmio-virtio", "vq-notify", "ipi", "lpi"] {
        let note = format!("vmprobe: bench: {t}: not supported on this machine, no result");
        assert!(console.contains(&note), "{note:?} in:\n{console}");
    }
}
