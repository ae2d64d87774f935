//! Boot the real guest image through real U-Boot (Debian's u-boot-qemu): unattended through its
//! qfw boot target, and by hand with `booti` typed at the U-Boot prompt over the serial console,
//! the way a U-Boot boot test drives a board.

mod support;

use std::time::Duration;
use support::guest::*;

const UBOOT: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";

fn uboot_args(port: u16) -> Vec<String> {
    let mut a = args(&format!(
        "-M virt -cpu cortex-a57 -m 256M -bios {UBOOT} -kernel"
    ));
    a.push(guest_image().display().to_string());
    a.extend(user_net(port));
    a.extend(args("-device virtio-net-device,netdev=n0"));
    a
}

#[test]
fn unattended_qfw_boot() {
    let port = free_port();
    let qemu = Qemu::spawn(&uboot_args(port));
    qemu.wait_for("Starting kernel", READY_TIMEOUT);
    let ready = qemu.wait_ready();
    assert!(
        ready.contains(" mode=irq gic=v2 transport=mmio-legacy "),
        "{ready}"
    );
    udp_echo(port, UDP_SIZES);
}

/// Stops U-Boot's autoboot and types `commands` at its prompt.
fn at_the_prompt(qemu: &mut Qemu, commands: &[&str]) {
    qemu.wait_for_text("Hit any key to stop autoboot", READY_TIMEOUT);
    qemu.type_text("\r");
    qemu.wait_for_text("=> ", Duration::from_secs(20));
    for command in commands {
        // Slowly enough for U-Boot's line editor over an emulated UART.
        for chunk in command.as_bytes().chunks(8) {
            qemu.type_text(std::str::from_utf8(chunk).unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
        qemu.type_text("\r");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn booti_typed_at_the_prompt_with_bootargs() {
    let port = free_port();
    let mut qemu = Qemu::spawn(&uboot_args(port));
    at_the_prompt(
        &mut qemu,
        &[
            "qfw load ${kernel_addr_r} ${ramdisk_addr_r}",
            "setenv bootargs mode=poll",
            "booti ${kernel_addr_r} - ${fdtcontroladdr}",
        ],
    );
    let ready = qemu.wait_ready();
    // The bootargs U-Boot put into /chosen reached the probe.
    assert!(
        ready.contains(" mode=poll gic=v2 transport=mmio-legacy "),
        "{ready}"
    );
    assert!(!qemu
        .console()
        .contains("Starting kernel ...\r\n\r\nvmprobe: error"));
    udp_echo(port, UDP_SIZES);
}

/// U-Boot owning EL2 hands over at EL2 (the probe drops to EL1), on GICv3 and virtio-pci.
#[test]
fn unattended_boot_at_el2_with_gicv3_and_virtio_pci() {
    let port = free_port();
    let mut a = args(&format!(
        "-M virt,virtualization=on,gic-version=3 -cpu max -m 256M -bios {UBOOT} -kernel"
    ));
    a.push(guest_image().display().to_string());
    a.extend(user_net(port));
    a.extend(args("-device virtio-net-pci,romfile=,netdev=n0"));
    let qemu = Qemu::spawn(&a);
    let ready = qemu.wait_ready();
    assert!(ready.contains(" mode=irq gic=v3 transport=pci "), "{ready}");
    assert!(
        qemu.console().contains("vmprobe: boot: entered at EL2"),
        "{}",
        qemu.console()
    );
    udp_echo(port, UDP_SIZES);
}

/// The image is position independent and its header lets the loader put it at any 2 MiB-aligned
/// base: loaded at 0x48000000, `booti` runs it at 0x48000000 + text_offset (not at the start of
/// RAM, where an image without header flag bit 3 would be moved), and it answers there.
#[test]
fn booti_runs_the_image_where_it_was_loaded() {
    let port = free_port();
    let mut qemu = Qemu::spawn(&uboot_args(port));
    at_the_prompt(
        &mut qemu,
        &[
            "qfw load 0x48000000 ${ramdisk_addr_r}",
            "booti 0x48000000 - ${fdtcontroladdr}",
        ],
    );
    let boot = qemu.wait_for("vmprobe: boot: entered", READY_TIMEOUT);
    assert!(
        boot.starts_with("vmprobe: boot: entered at EL1, image at 0x48080000, dtb at 0x"),
        "{boot}"
    );
    qemu.wait_ready();
    udp_echo(port, UDP_SIZES);
    tcp_echo(
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)),
        20_000,
    );
}
