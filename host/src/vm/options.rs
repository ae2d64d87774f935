//! The VM's configuration: the enumerated values of the VM flags (their names and values are a
//! stable interface; clap lists them when one is wrong), the validated [`VmConfig`], and the
//! host checks behind it (QEMU on PATH, KVM usable, vhost-net present, the default image).
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde::Serialize;

use super::pin::PinSpec;
use super::VmError;
use crate::netsetup::ebpf::Hook;
use crate::netsetup::Topology;

/// Where Debian's u-boot-qemu package puts the QEMU arm64 build of U-Boot.
pub const UBOOT_BIN: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";

/// Where `scripts/build-guest.sh` writes the guest image, relative to the workspace root.
pub const DEFAULT_IMAGE: &str = "target/guest/vmprobe-guest.bin";

/// How the guest image is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Boot {
    /// QEMU loads the image itself (`-kernel`), boot arguments in the DTB.
    Direct,
    /// Debian's U-Boot loads it through fw_cfg and `booti`, as on a board.
    Uboot,
}

/// The network backend between guest and host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Net {
    /// QEMU user networking (slirp), services forwarded to free loopback ports.
    User,
    /// A tap device in a network namespace vmprobe creates; the client runs in it.
    Tap,
    /// Tap on a Linux bridge, reached from a second namespace ("host1") over a veth pair.
    Bridge,
    /// macvtap over a veth whose peer sits in a second namespace ("host1").
    Macvtap,
    /// Tap and veth joined by eBPF redirects (`--ebpf-hook`), no bridge; client in "host1".
    Ebpf,
    /// Tap and veth on an Open vSwitch bridge (ovs-vsctl) in the host's namespace; client in
    /// "host1".
    Ovs,
}

impl Net {
    /// The option value (`user`, `tap`, `bridge`, `macvtap`, `ebpf`, `ovs`).
    pub fn as_str(self) -> &'static str {
        match self {
            Net::User => "user",
            Net::Tap => "tap",
            Net::Bridge => "bridge",
            Net::Macvtap => "macvtap",
            Net::Ebpf => "ebpf",
            Net::Ovs => "ovs",
        }
    }
}

/// vhost-net on or off for tap and macvtap backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// GIC version asked for on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
pub enum GicArg {
    /// GICv2.
    #[value(name = "2")]
    V2,
    /// GICv3.
    #[value(name = "3")]
    V3,
}

/// How the virtio-net device is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// virtio-mmio, modern (virtio 1.x) register layout.
    Mmio,
    /// virtio-mmio, legacy (version 1) register layout.
    MmioLegacy,
    /// virtio-pci on the virt board's PCIe host bridge.
    Pci,
}

/// Accelerator choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelArg {
    /// KVM when the host is aarch64 and /dev/kvm opens, else TCG.
    Auto,
    /// KVM, or an error.
    Kvm,
    /// TCG (emulation).
    Tcg,
}

/// The accelerator actually used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualization.
    Kvm,
    /// Emulation: latencies are not those of a KVM guest.
    Tcg,
}

/// The guest's idle mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// WFI idle, woken by the virtio interrupt (includes vGIC injection and vCPU kick).
    Irq,
    /// Busy polling with device interrupts suppressed.
    Poll,
}

impl Mode {
    /// The value of the guest's `mode=` boot argument.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Irq => "irq",
            Mode::Poll => "poll",
        }
    }
}

/// Validated VM configuration: every path resolved, every host requirement checked.
#[derive(Clone, Debug, Serialize)]
pub struct VmConfig {
    /// Guest image.
    pub image: PathBuf,
    /// Boot path.
    pub boot: Boot,
    /// U-Boot binary when `boot` is `Uboot`.
    pub uboot: Option<PathBuf>,
    /// Network backend.
    pub net: Net,
    /// Where the eBPF bridge's programs run (`--net ebpf`).
    pub ebpf_hook: Hook,
    /// vhost-net.
    pub vhost: bool,
    /// GIC version; `None` means the host's (KVM `gic-version=host`).
    pub gic: Option<u8>,
    /// virtio-net transport.
    pub transport: Transport,
    /// Accelerator in use.
    pub accel: Accel,
    /// Why this accelerator (for `auto`), to print.
    #[serde(skip)]
    pub accel_reason: String,
    /// Guest mode.
    pub mode: Mode,
    /// vCPUs.
    pub smp: u32,
    /// vCPU pinning: host CPU per vCPU index; `None` = no explicit pin.
    pub pin: Option<PinSpec>,
    /// QEMU binary.
    pub qemu: PathBuf,
    /// Extra QEMU arguments.
    pub qemu_args: Vec<String>,
    /// Run directory asked for (`None` = default under `runs/`).
    pub run_dir: Option<PathBuf>,
}

impl VmConfig {
    /// The network setup this needs (none for user networking).
    pub fn topology(&self) -> Option<Topology> {
        match self.net {
            Net::User => None,
            Net::Tap => Some(Topology::Tap),
            Net::Bridge => Some(Topology::Bridge),
            Net::Macvtap => Some(Topology::Macvtap),
            Net::Ebpf => Some(Topology::Ebpf(self.ebpf_hook)),
            Net::Ovs => Some(Topology::Ovs),
        }
    }

    /// A short label for run directories and tables, e.g. `user-direct-gic3-mmio-irq-tcg`
    /// (`ebpf-tc-...` names the hook too).
    pub fn label(&self) -> String {
        let net = match self.net {
            Net::Ebpf => format!("ebpf-{}", self.ebpf_hook.as_str()),
            n => n.as_str().to_string(),
        };
        let boot = match self.boot {
            Boot::Direct => "direct",
            Boot::Uboot => "uboot",
        };
        let gic = self
            .gic
            .map_or("gichost".to_string(), |g| format!("gic{g}"));
        let transport = match self.transport {
            Transport::Mmio => "mmio",
            Transport::MmioLegacy => "mmiolegacy",
            Transport::Pci => "pci",
        };
        let accel = match self.accel {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        };
        let vhost = if self.vhost { "-vhost" } else { "" };
        format!(
            "{net}{vhost}-{boot}-{gic}-{transport}-{}-{accel}",
            self.mode.as_str()
        )
    }
}

/// Whether `path` starts with an arm64 Linux Image header: QEMU and U-Boot would load anything
/// else and leave the run waiting for a ready line that never comes.
pub fn is_arm64_image(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 0x40];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| header[0x38..0x3c] == *b"ARM\x64")
}

/// The default guest image: `target/guest/vmprobe-guest.bin` under the current directory, else
/// next to the running binary's `target/` directory (`target/release/vmprobe` -> `target/guest`).
pub fn default_image() -> PathBuf {
    let here = PathBuf::from(DEFAULT_IMAGE);
    if here.is_file() {
        return here;
    }
    let beside_exe = std::env::current_exe().ok().and_then(|exe| {
        // target/<profile>/vmprobe or target/<profile>/deps/<test binary>
        exe.ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == "target"))
            .map(|t| t.join("guest/vmprobe-guest.bin"))
    });
    match beside_exe {
        Some(p) if p.is_file() => p,
        _ => here,
    }
}

/// Resolves `--accel`: KVM needs an aarch64 host and a /dev/kvm this process can open.
pub fn resolve_accel(arg: AccelArg) -> Result<(Accel, String), VmError> {
    let kvm = kvm_usable();
    match (arg, kvm) {
        (AccelArg::Tcg, _) => Ok((Accel::Tcg, "TCG as asked".into())),
        (AccelArg::Kvm, Ok(())) | (AccelArg::Auto, Ok(())) => {
            Ok((Accel::Kvm, "KVM (/dev/kvm on an aarch64 host)".into()))
        }
        (AccelArg::Kvm, Err(why)) => Err(VmError::KvmUnavailable(why)),
        (AccelArg::Auto, Err(why)) => Ok((
            Accel::Tcg,
            format!("TCG because {why}: TCG numbers are not KVM numbers"),
        )),
    }
}

fn kvm_usable() -> Result<(), String> {
    if std::env::consts::ARCH != "aarch64" {
        return Err(format!(
            "the host is {}, not aarch64",
            std::env::consts::ARCH
        ));
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| format!("/dev/kvm does not open ({e})"))
}

/// vhost-net needs /dev/vhost-net, openable read-write (QEMU opens it itself).
pub fn check_vhost_net() -> Result<(), VmError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/vhost-net")
        .map(drop)
        .map_err(|e| VmError::VhostUnavailable(e.to_string()))
}
