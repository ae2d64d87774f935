//! The QEMU command line, built from a [`VmConfig`] and the resources a launch set up (ports,
//! network backend, sockets). Pure: no file system, no processes, so every configuration is
//! unit-tested here.
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::options::{Accel, Boot, Transport, VmConfig};
use super::services::Endpoint;
use crate::netsetup::{self, mac_string};
use crate::os::shell_quote;

/// Guest memory: the probe needs a few MB; U-Boot relocates itself to the top of RAM.
pub const GUEST_MEMORY: &str = "128M";

/// The guest's IPv4 configuration, passed as boot arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GuestNet {
    /// Guest address.
    pub ip: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
    /// Gateway (the host side).
    pub gw: Ipv4Addr,
}

impl GuestNet {
    /// QEMU user networking's defaults (the guest's own defaults too).
    pub const USER: GuestNet = GuestNet {
        ip: Ipv4Addr::new(10, 0, 2, 15),
        prefix: 24,
        gw: Ipv4Addr::new(10, 0, 2, 2),
    };
    /// The private link of tap, bridge and macvtap setups (the users' 192.168.20.0/24 layout:
    /// the host side is .1).
    pub const LINK: GuestNet = GuestNet {
        ip: netsetup::GUEST_ADDR,
        prefix: netsetup::PREFIX,
        gw: netsetup::HOST_ADDR,
    };
}

/// How QEMU reaches the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// User networking with these forwards (host loopback port -> guest port).
    User(Vec<Endpoint>),
    /// A tap device QEMU opens by name (QEMU runs in the tap's namespace).
    Tap {
        /// Interface name.
        ifname: String,
    },
    /// An already open tap/macvtap file descriptor QEMU inherits.
    Fd {
        /// Descriptor number in QEMU.
        fd: i32,
    },
}

/// Everything that goes on the command line besides the configuration.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Network backend.
    pub backend: Backend,
    /// Guest MAC address (must equal a macvtap's own address).
    pub mac: [u8; 6],
    /// Guest IPv4 configuration.
    pub guest: GuestNet,
    /// QMP unix socket path.
    pub qmp_socket: PathBuf,
}

/// A program and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuCommand {
    /// QEMU binary.
    pub program: PathBuf,
    /// Arguments, in order.
    pub args: Vec<String>,
}

impl QemuCommand {
    /// The command as one shell line that runs it again as is.
    pub fn shell_line(&self) -> String {
        std::iter::once(self.program.display().to_string())
            .chain(self.args.iter().cloned())
            .map(|a| shell_quote(&a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The guest's boot arguments (`-append`, U-Boot `bootargs`, DTB /chosen/bootargs).
pub fn boot_args(config: &VmConfig, guest: &GuestNet) -> String {
    format!(
        "ip={}/{} gw={} mode={}",
        guest.ip,
        guest.prefix,
        guest.gw,
        config.mode.as_str()
    )
}

/// Builds the QEMU command line.
pub fn build(config: &VmConfig, plan: &Plan) -> QemuCommand {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));

    // Machine: the GIC version, and EL2 for U-Boot under TCG so the guest is entered at EL2
    // as on a board (KVM cannot offer EL2 to the guest here).
    let gic = config.gic.map_or("host".to_string(), |g| g.to_string());
    let mut machine = format!("virt,gic-version={gic}");
    if config.boot == Boot::Uboot && config.accel == Accel::Tcg {
        machine.push_str(",virtualization=on");
    }
    push(&["-M", &machine]);
    match config.accel {
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => push(&["-accel", "tcg", "-cpu", "max"]),
    }
    push(&["-smp", &config.smp.to_string(), "-m", GUEST_MEMORY]);
    push(&[
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
    ]);
    push(&["-nic", "none"]);

    let netdev = match &plan.backend {
        Backend::User(forwards) => {
            let mut s = format!(
                "user,id=net0,net={}/{},host={},dhcpstart={}",
                network_of(plan.guest.ip, plan.guest.prefix),
                plan.guest.prefix,
                plan.guest.gw,
                plan.guest.ip
            );
            for f in forwards {
                s.push_str(&format!(
                    ",hostfwd={}:{}:{}-{}:{}",
                    f.service.proto.as_str(),
                    f.addr.ip(),
                    f.addr.port(),
                    plan.guest.ip,
                    f.service.port
                ));
            }
            s
        }
        Backend::Tap { ifname } => format!(
            "tap,id=net0,ifname={ifname},script=no,downscript=no,vhost={}",
            on_off(config.vhost)
        ),
        Backend::Fd { fd } => format!("tap,id=net0,fd={fd},vhost={}", on_off(config.vhost)),
    };
    push(&["-netdev", &netdev]);
    let mac = mac_string(&plan.mac);
    match config.transport {
        Transport::Mmio | Transport::MmioLegacy => {
            let legacy = config.transport == Transport::MmioLegacy;
            push(&["-global", &format!("virtio-mmio.force-legacy={legacy}")]);
            push(&[
                "-device",
                &format!("virtio-net-device,netdev=net0,mac={mac}"),
            ]);
        }
        // romfile= : no option ROM (nothing here runs PCI option ROMs; the file may be absent).
        Transport::Pci => push(&[
            "-device",
            &format!("virtio-net-pci,netdev=net0,mac={mac},romfile="),
        ]),
    }

    if let Some(uboot) = &config.uboot {
        push(&["-bios", &uboot.display().to_string()]);
    }
    push(&["-kernel", &config.image.display().to_string()]);
    push(&["-append", &boot_args(config, &plan.guest)]);
    push(&[
        "-qmp",
        &format!("unix:{},server=on,wait=off", plan.qmp_socket.display()),
    ]);
    a.extend(config.qemu_args.iter().cloned());
    QemuCommand {
        program: config.qemu.clone(),
        args: a,
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn network_of(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    Ipv4Addr::from(u32::from(ip) & mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::options::{Mode, Net};
    use crate::vm::services::{free_loopback_endpoints, Proto};

    fn config() -> VmConfig {
        VmConfig {
            image: "/img/vmprobe-guest.bin".into(),
            boot: Boot::Direct,
            uboot: None,
            net: Net::User,
            ebpf_hook: crate::netsetup::ebpf::Hook::Tc,
            vhost: false,
            gic: Some(3),
            transport: Transport::Mmio,
            accel: Accel::Tcg,
            accel_reason: String::new(),
            mode: Mode::Irq,
            smp: 1,
            pin: None,
            qemu: "/usr/bin/qemu-system-aarch64".into(),
            qemu_args: vec![],
            run_dir: None,
        }
    }

    fn plan(backend: Backend, guest: GuestNet) -> Plan {
        Plan {
            backend,
            mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            guest,
            qmp_socket: "/run/x/qmp.sock".into(),
        }
    }

    /// The value following `flag` (each occurrence).
    fn values<'a>(c: &'a QemuCommand, flag: &str) -> Vec<&'a str> {
        c.args
            .windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn user_net_tcg_direct_mmio() {
        let fw = free_loopback_endpoints().unwrap();
        let c = build(&config(), &plan(Backend::User(fw.clone()), GuestNet::USER));
        assert_eq!(values(&c, "-M"), ["virt,gic-version=3"]);
        assert_eq!(values(&c, "-accel"), ["tcg"]);
        assert_eq!(values(&c, "-cpu"), ["max"]);
        assert_eq!(values(&c, "-nic"), ["none"]);
        assert_eq!(values(&c, "-display"), ["none"]);
        assert!(c.args.iter().any(|a| a == "-no-reboot"));
        assert_eq!(values(&c, "-global"), ["virtio-mmio.force-legacy=false"]);
        assert_eq!(
            values(&c, "-device"),
            ["virtio-net-device,netdev=net0,mac=52:54:00:12:34:56"]
        );
        assert_eq!(
            values(&c, "-append"),
            ["ip=10.0.2.15/24 gw=10.0.2.2 mode=irq"]
        );
        assert_eq!(
            values(&c, "-qmp"),
            ["unix:/run/x/qmp.sock,server=on,wait=off"]
        );
        assert_eq!(values(&c, "-bios"), Vec::<&str>::new());
        let netdev = values(&c, "-netdev")[0];
        assert!(
            netdev.starts_with("user,id=net0,net=10.0.2.0/24,host=10.0.2.2,"),
            "{netdev}"
        );
        for f in &fw {
            let rule = format!(
                "hostfwd={}:127.0.0.1:{}-10.0.2.15:{}",
                f.service.proto.as_str(),
                f.addr.port(),
                f.service.port
            );
            assert!(netdev.contains(&rule), "{netdev} lacks {rule}");
        }
        assert!(netdev.contains("hostfwd=udp:") && netdev.contains("hostfwd=tcp:"));
        assert_eq!(
            fw.iter().filter(|f| f.service.proto == Proto::Udp).count(),
            4
        );
    }

    #[test]
    fn kvm_uses_host_cpu_and_gic() {
        let mut cfg = config();
        cfg.accel = Accel::Kvm;
        cfg.gic = None;
        cfg.boot = Boot::Uboot;
        cfg.uboot = Some("/u-boot.bin".into());
        let c = build(&cfg, &plan(Backend::User(vec![]), GuestNet::USER));
        assert_eq!(values(&c, "-M"), ["virt,gic-version=host"]);
        assert_eq!(values(&c, "-cpu"), ["host"]);
        assert_eq!(values(&c, "-accel"), ["kvm"]);
        assert_eq!(values(&c, "-bios"), ["/u-boot.bin"]);
    }

    #[test]
    fn uboot_under_tcg_starts_at_el2_and_keeps_kernel_and_append() {
        let mut cfg = config();
        cfg.boot = Boot::Uboot;
        cfg.uboot = Some("/usr/lib/u-boot/qemu_arm64/u-boot.bin".into());
        cfg.gic = Some(2);
        cfg.mode = Mode::Poll;
        let c = build(&cfg, &plan(Backend::User(vec![]), GuestNet::USER));
        assert_eq!(values(&c, "-M"), ["virt,gic-version=2,virtualization=on"]);
        assert_eq!(values(&c, "-kernel"), ["/img/vmprobe-guest.bin"]);
        assert_eq!(
            values(&c, "-append"),
            ["ip=10.0.2.15/24 gw=10.0.2.2 mode=poll"]
        );
    }

    #[test]
    fn transports() {
        let mut cfg = config();
        cfg.transport = Transport::MmioLegacy;
        let c = build(&cfg, &plan(Backend::User(vec![]), GuestNet::USER));
        assert_eq!(values(&c, "-global"), ["virtio-mmio.force-legacy=true"]);
        cfg.transport = Transport::Pci;
        let c = build(&cfg, &plan(Backend::User(vec![]), GuestNet::USER));
        assert!(values(&c, "-global").is_empty());
        assert_eq!(
            values(&c, "-device"),
            ["virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56,romfile="]
        );
    }

    #[test]
    fn tap_and_fd_backends_with_vhost() {
        let mut cfg = config();
        cfg.net = Net::Tap;
        cfg.vhost = true;
        let c = build(
            &cfg,
            &plan(
                Backend::Tap {
                    ifname: "tap0".into(),
                },
                GuestNet::LINK,
            ),
        );
        assert_eq!(
            values(&c, "-netdev"),
            ["tap,id=net0,ifname=tap0,script=no,downscript=no,vhost=on"]
        );
        assert_eq!(
            values(&c, "-append"),
            ["ip=192.168.20.2/24 gw=192.168.20.1 mode=irq"]
        );
        cfg.vhost = false;
        let c = build(&cfg, &plan(Backend::Fd { fd: 3 }, GuestNet::LINK));
        assert_eq!(values(&c, "-netdev"), ["tap,id=net0,fd=3,vhost=off"]);
    }

    #[test]
    fn extra_args_come_last() {
        let mut cfg = config();
        cfg.qemu_args = vec!["-d".into(), "guest_errors".into()];
        let c = build(&cfg, &plan(Backend::User(vec![]), GuestNet::USER));
        assert_eq!(&c.args[c.args.len() - 2..], ["-d", "guest_errors"]);
    }

    #[test]
    fn shell_line_quotes_only_what_needs_it() {
        let c = build(&config(), &plan(Backend::User(vec![]), GuestNet::USER));
        let line = c.shell_line();
        assert!(line.starts_with("/usr/bin/qemu-system-aarch64 -M virt,gic-version=3 "));
        assert!(line.contains("-append 'ip=10.0.2.15/24 gw=10.0.2.2 mode=irq'"));
    }

    #[test]
    fn network_prefix() {
        assert_eq!(
            network_of(Ipv4Addr::new(192, 168, 20, 2), 24),
            Ipv4Addr::new(192, 168, 20, 0)
        );
        assert_eq!(
            network_of(Ipv4Addr::new(10, 0, 2, 15), 8),
            Ipv4Addr::new(10, 0, 0, 0)
        );
    }
}
