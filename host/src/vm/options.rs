//! The VM options shared by `vmprobe vm`, `run`, `matrix` and `quickstart` (their flags and
//! values are a stable interface),
//! and their validation into a typed [`VmConfig`].
//!
//! clap parses the enumerated values (`--net`, `--boot`, ...) so a bad value is rejected with the
//! list of valid ones; [`VmOptions::validate`] checks what needs the file system or the host
//! (image present, QEMU on PATH, KVM usable, vhost-net present, root for namespaces).
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::pin::PinSpec;
use super::VmError;
use crate::netsetup::Topology;
use crate::os::is_root;

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
}

impl Net {
    /// The option value (`user`, `tap`, `bridge`, `macvtap`).
    pub fn as_str(self) -> &'static str {
        match self {
            Net::User => "user",
            Net::Tap => "tap",
            Net::Bridge => "bridge",
            Net::Macvtap => "macvtap",
        }
    }

    /// The network setup this needs (none for user networking).
    pub fn topology(self) -> Option<Topology> {
        match self {
            Net::User => None,
            Net::Tap => Some(Topology::Tap),
            Net::Bridge => Some(Topology::Bridge),
            Net::Macvtap => Some(Topology::Macvtap),
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

/// The VM options, as one clap `Args` group that `run` and `vm` flatten.
#[derive(Args, Clone, Debug)]
pub struct VmOptions {
    /// Guest image (raw arm64 Image) [default: target/guest/vmprobe-guest.bin]
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,
    /// Boot the image directly (-kernel) or through U-Boot
    #[arg(long, value_enum, default_value = "direct")]
    pub boot: Boot,
    /// Network backend
    #[arg(long, value_enum, default_value = "user")]
    pub net: Net,
    /// vhost-net for tap/bridge/macvtap
    #[arg(long, value_enum, default_value = "off")]
    pub vhost: OnOff,
    /// GIC version [default: 3 under TCG, the host's under KVM]
    #[arg(long, value_enum)]
    pub gic: Option<GicArg>,
    /// virtio-net transport
    #[arg(long, value_enum, default_value = "mmio")]
    pub transport: Transport,
    /// Accelerator
    #[arg(long, value_enum, default_value = "auto")]
    pub accel: AccelArg,
    /// Guest idle mode
    #[arg(long, value_enum, default_value = "irq")]
    pub mode: Mode,
    /// Number of vCPUs
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub smp: u32,
    /// Pin vCPU threads: VCPU=CPU pairs, e.g. `0=2,1=3` [default: every vCPU off cpu0]
    #[arg(long, value_name = "VCPU=CPU,...")]
    pub pin: Option<PinSpec>,
    /// QEMU binary [default: qemu-system-aarch64 on PATH]
    #[arg(long, value_name = "PATH")]
    pub qemu: Option<PathBuf>,
    /// Extra argument passed to QEMU as is (repeatable)
    #[arg(long = "qemu-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub qemu_args: Vec<String>,
    /// Run directory [default: runs/<time>-<label>/]
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
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
    /// A short label for run directories and tables, e.g. `user-direct-gic3-mmio-irq-tcg`.
    pub fn label(&self) -> String {
        let net = self.net.as_str();
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

impl VmOptions {
    /// Checks the options against this host and resolves defaults.
    pub fn validate(&self) -> Result<VmConfig, VmError> {
        let qemu = match &self.qemu {
            Some(p) if p.components().count() > 1 => {
                if !p.is_file() {
                    return Err(VmError::QemuMissing(p.display().to_string()));
                }
                p.clone()
            }
            Some(p) => {
                find_on_path(p).ok_or_else(|| VmError::QemuMissing(p.display().to_string()))?
            }
            None => find_on_path(Path::new("qemu-system-aarch64"))
                .ok_or_else(|| VmError::QemuMissing("qemu-system-aarch64".into()))?,
        };
        let image = match &self.image {
            Some(p) => p.clone(),
            None => default_image(),
        };
        if !image.is_file() {
            return Err(VmError::ImageMissing(image));
        }
        // Absolute, so the run directory's command line works from anywhere.
        let image = std::path::absolute(&image).unwrap_or(image);
        let uboot = match self.boot {
            Boot::Direct => None,
            Boot::Uboot => {
                let p = PathBuf::from(UBOOT_BIN);
                if !p.is_file() {
                    return Err(VmError::UbootMissing(p));
                }
                Some(p)
            }
        };
        let (accel, accel_reason) = resolve_accel(self.accel)?;
        let gic = match (self.gic, accel) {
            (Some(GicArg::V2), _) => Some(2),
            (Some(GicArg::V3), _) => Some(3),
            (None, Accel::Kvm) => None,
            (None, Accel::Tcg) => Some(3),
        };
        let vhost = self.vhost == OnOff::On;
        if vhost {
            if self.net == Net::User {
                return Err(VmError::VhostNeedsTap);
            }
            check_vhost_net()?;
        }
        if self.net != Net::User && !is_root() {
            return Err(VmError::NotRoot(self.net));
        }
        if let Some(pin) = &self.pin {
            pin.check(self.smp, crate::cpus::count())?;
        }
        Ok(VmConfig {
            image,
            boot: self.boot,
            uboot,
            net: self.net,
            vhost,
            gic,
            transport: self.transport,
            accel,
            accel_reason,
            mode: self.mode,
            smp: self.smp,
            pin: self.pin.clone(),
            qemu,
            qemu_args: self.qemu_args.clone(),
            run_dir: self.run_dir.clone(),
        })
    }
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

/// Looks a program up on `PATH` like a shell would.
pub fn find_on_path(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Resolves `--accel`: KVM needs an aarch64 host and a /dev/kvm this process can open.
fn resolve_accel(arg: AccelArg) -> Result<(Accel, String), VmError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        vm: VmOptions,
    }

    fn parse(args: &[&str]) -> Result<VmOptions, clap::Error> {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied())).map(|t| t.vm)
    }

    #[test]
    fn defaults() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.boot, Boot::Direct);
        assert_eq!(o.net, Net::User);
        assert_eq!(o.vhost, OnOff::Off);
        assert_eq!(o.gic, None);
        assert_eq!(o.transport, Transport::Mmio);
        assert_eq!(o.accel, AccelArg::Auto);
        assert_eq!(o.mode, Mode::Irq);
        assert_eq!(o.smp, 1);
    }

    #[test]
    fn every_value_parses() {
        let o = parse(&[
            "--boot",
            "uboot",
            "--net",
            "macvtap",
            "--vhost",
            "on",
            "--gic",
            "2",
            "--transport",
            "mmio-legacy",
            "--accel",
            "tcg",
            "--mode",
            "poll",
            "--smp",
            "2",
            "--pin",
            "0=1,1=1",
            "--qemu-arg",
            "-d",
            "--qemu-arg",
            "int",
        ])
        .unwrap();
        assert_eq!(o.boot, Boot::Uboot);
        assert_eq!(o.net, Net::Macvtap);
        assert_eq!(o.gic, Some(GicArg::V2));
        assert_eq!(o.transport, Transport::MmioLegacy);
        assert_eq!(o.mode, Mode::Poll);
        assert_eq!(o.qemu_args, ["-d", "int"]);
        assert_eq!(o.pin.unwrap().cpu_for(1), Some(1));
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            &["--net", "ovs"][..],
            &["--gic", "4"],
            &["--transport", "isa"],
            &["--boot", "efi"],
            &["--smp", "0"],
            &["--pin", "x=1"],
            &["--pin", "0=1,0=2"],
            &["--mode", "spin"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn missing_image_and_qemu_are_clear() {
        let mut o = parse(&["--accel", "tcg", "--image", "/nonexistent/img"]).unwrap();
        let e = o.validate().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/img"), "{e}");
        o.qemu = Some("/nonexistent/qemu".into());
        let e = o.validate().unwrap_err().to_string();
        assert!(e.contains("qemu-system-arm"), "{e}");
    }

    #[test]
    fn vhost_with_user_net_is_refused() {
        let tmp = std::env::temp_dir().join(format!("vmprobe-opt-{}", std::process::id()));
        std::fs::write(&tmp, b"x").unwrap();
        let o = parse(&["--vhost", "on", "--image", tmp.to_str().unwrap()]).unwrap();
        let r = o.validate();
        std::fs::remove_file(&tmp).unwrap();
        if find_on_path(Path::new("qemu-system-aarch64")).is_some() {
            assert!(matches!(r, Err(VmError::VhostNeedsTap)), "{r:?}");
        }
    }

    #[test]
    fn label_names_the_configuration() {
        let tmp = std::env::temp_dir().join(format!("vmprobe-lbl-{}", std::process::id()));
        std::fs::write(&tmp, b"x").unwrap();
        let mut o = parse(&["--accel", "tcg", "--mode", "poll", "--transport", "pci"]).unwrap();
        o.image = Some(tmp.clone());
        let r = o.validate();
        std::fs::remove_file(&tmp).unwrap();
        if let Ok(c) = r {
            assert_eq!(c.label(), "user-direct-gic3-pci-poll-tcg");
        }
    }
}
