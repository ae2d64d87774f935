//! The real guest image under real QEMU (TCG here): every network setup with direct boot,
//! U-Boot, GICv2/GICv3, virtio-mmio (modern, legacy) and virtio-pci, irq and poll mode. Each
//! boot must reach the ready line with the configuration asked for, answer UDP and TCP echo
//! with the exact bytes, and leave no process, namespace or link behind.
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use clap::Parser;
use support::vm::*;
use vmprobe::commands::vm_options::VmOptions;
use vmprobe::vm::options::default_image;
use vmprobe::vm::services::{endpoint, Proto};
use vmprobe::vm::Vm;

#[derive(Parser)]
struct T {
    #[command(flatten)]
    vm: VmOptions,
}

/// UDP and TCP echo against the guest, from the calling thread's namespace.
fn echo_both(udp: SocketAddr, tcp: SocketAddr) -> Result<(), String> {
    let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 2048];
    // A few tries: the first datagram may wait on ARP or be dropped while links settle.
    let msg = b"vmprobe echo \x00\xff binary-safe";
    let mut got = None;
    for _ in 0..5 {
        s.send_to(msg, udp).map_err(|e| e.to_string())?;
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            got = Some((buf[..n].to_vec(), from));
            break;
        }
    }
    let (data, from) = got.ok_or(format!("no UDP echo from {udp}"))?;
    if data != msg || from != udp {
        return Err(format!("bad UDP echo {data:?} from {from}"));
    }
    let mut t =
        TcpStream::connect_timeout(&tcp, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    t.write_all(&payload).map_err(|e| e.to_string())?;
    let mut back = vec![0u8; payload.len()];
    t.read_exact(&mut back)
        .map_err(|e| format!("TCP echo: {e}"))?;
    if back != payload {
        return Err("TCP echo differs".into());
    }
    Ok(())
}

/// Boots the real guest with `args`, checks the ready line, echoes, shuts down, checks cleanup.
async fn boot(test: &str, args: &[&str], expect: &[(&str, &str)]) {
    let image = default_image();
    assert!(
        image.is_file(),
        "no guest image at {}: build it with scripts/build-guest.sh",
        image.display()
    );
    let dir = temp_dir(test);
    let mut all = vec!["t", "--accel", "tcg"];
    all.extend_from_slice(args);
    let mut opts = T::try_parse_from(all).unwrap().vm;
    opts.run_dir = Some(dir.join("run"));
    let cfg = opts.validate().unwrap();
    let links = host_links();
    let vm = Vm::start(&cfg, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let info = vm.info().clone();
    for (k, v) in expect {
        assert_eq!(
            info.ready.fields.get(*k).map(String::as_str),
            Some(*v),
            "{}",
            info.ready.line
        );
    }
    let udp = endpoint(&info.endpoints, Proto::Udp, 7).unwrap();
    let tcp = endpoint(&info.endpoints, Proto::Tcp, 7).unwrap();
    let r = match vm.client_netns() {
        Some(ns) => ns.run(move || echo_both(udp, tcp)).unwrap(),
        None => tokio::task::spawn_blocking(move || echo_both(udp, tcp))
            .await
            .unwrap(),
    };
    let names: Vec<String> = info
        .qemu_netns
        .iter()
        .chain(info.client_netns.iter())
        .map(|n| n.name().to_string())
        .collect();
    let status = vm.shutdown().await.unwrap();
    r.unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert_eq!(status, "exit status 0");
    assert_no_leftovers(info.qemu_pid, &names, &links);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn user_direct() {
    boot(
        "boot-user",
        &[],
        &[
            ("mode", "irq"),
            ("gic", "v3"),
            ("transport", "mmio"),
            ("ip", "10.0.2.15/24"),
        ],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs root: --net tap sets up a network namespace"]
async fn tap_direct() {
    boot("boot-tap", &["--net", "tap"], &[("ip", "192.168.20.2/24")]).await;
}

#[tokio::test]
#[ignore = "needs root: --net bridge sets up a network namespace"]
async fn bridge_direct() {
    boot(
        "boot-bridge",
        &["--net", "bridge"],
        &[("ip", "192.168.20.2/24")],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs root: --net macvtap sets up a network namespace"]
async fn macvtap_direct() {
    boot(
        "boot-macvtap",
        &["--net", "macvtap"],
        &[("ip", "192.168.20.2/24")],
    )
    .await;
}

/// Boot arguments reach the guest through U-Boot (QEMU's DTB /chosen/bootargs, which U-Boot's
/// unattended distro boot hands to `booti`): `mode=poll` shows on the ready line.
#[tokio::test]
async fn user_uboot_gicv3_pci_poll() {
    boot(
        "boot-uboot",
        &["--boot", "uboot", "--transport", "pci", "--mode", "poll"],
        &[("mode", "poll"), ("gic", "v3"), ("transport", "pci")],
    )
    .await;
}

#[tokio::test]
async fn user_gicv2_mmio_legacy_poll() {
    boot(
        "boot-v2",
        &["--gic", "2", "--transport", "mmio-legacy", "--mode", "poll"],
        &[
            ("mode", "poll"),
            ("gic", "v2"),
            ("transport", "mmio-legacy"),
        ],
    )
    .await;
}
