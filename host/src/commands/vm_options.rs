//! The VM flags shared by `vmprobe vm`, `run`, `micro`, `matrix` and `quickstart`, and their
//! validation into a [`VmConfig`]: clap parses the enumerated values (`--net`, `--boot`, ...)
//! so a bad value is rejected with the list of valid ones; [`VmOptions::validate`] checks what
//! needs the file system or the host (image present, QEMU on PATH, KVM usable, vhost-net
//! present, root for namespaces).
use std::path::{Path, PathBuf};

use clap::Args;

use crate::netsetup::ebpf::{self, Hook};
use crate::os::{find_on_path, is_root};
use crate::vm::options::{
    check_vhost_net, default_image, is_arm64_image, resolve_accel, Accel, AccelArg, Boot, GicArg,
    Mode, Net, OnOff, Transport, VmConfig, UBOOT_BIN,
};
use crate::vm::pin::PinSpec;
use crate::vm::VmError;

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
    /// Where `--net ebpf` runs its redirect programs: tc ingress (clsact) or generic XDP
    /// [default: tc]
    #[arg(long, value_enum)]
    pub ebpf_hook: Option<Hook>,
    /// vhost-net for tap/bridge/macvtap/ebpf
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
        if !is_arm64_image(&image) {
            return Err(VmError::NotAnImage(image));
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
        if self.ebpf_hook.is_some() && self.net != Net::Ebpf {
            return Err(VmError::HookWithoutEbpf);
        }
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
        if self.net == Net::Ebpf {
            // Before anything boots: the programs load, or one line says what is missing.
            ebpf::check()?;
        }
        if self.net == Net::Ovs {
            crate::netsetup::ovs::check()?;
        }
        if let Some(pin) = &self.pin {
            pin.check(self.smp, crate::cpus::count())?;
        }
        Ok(VmConfig {
            image,
            boot: self.boot,
            uboot,
            net: self.net,
            ebpf_hook: self.ebpf_hook.unwrap_or(Hook::Tc),
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
            &["--net", "vde"][..],
            &["--ebpf-hook", "tcx"],
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

    /// A file that passes the image check: an arm64 Image header and nothing else.
    fn header_only_image(name: &str) -> PathBuf {
        let tmp = std::env::temp_dir().join(format!("vmprobe-{name}-{}", std::process::id()));
        let mut header = [0u8; 0x40];
        header[0x38..0x3c].copy_from_slice(b"ARM\x64");
        std::fs::write(&tmp, header).unwrap();
        tmp
    }

    #[test]
    fn a_file_without_the_image_magic_is_refused() {
        let tmp = std::env::temp_dir().join(format!("vmprobe-notimg-{}", std::process::id()));
        std::fs::write(&tmp, b"root:x:0:0:root:/root:/bin/bash\n").unwrap();
        let o = parse(&["--accel", "tcg", "--image", tmp.to_str().unwrap()]).unwrap();
        let r = o.validate();
        std::fs::remove_file(&tmp).unwrap();
        if find_on_path(Path::new("qemu-system-aarch64")).is_none() {
            assert!(matches!(r, Err(VmError::QemuMissing(_))), "{r:?}");
            return;
        }
        let e = r.unwrap_err();
        assert!(matches!(e, VmError::NotAnImage(_)), "{e}");
        assert!(e.to_string().contains("not an arm64 Image"), "{e}");
    }

    #[test]
    fn vhost_with_user_net_is_refused() {
        let tmp = header_only_image("opt");
        let o = parse(&["--vhost", "on", "--image", tmp.to_str().unwrap()]).unwrap();
        let r = o.validate();
        std::fs::remove_file(&tmp).unwrap();
        if find_on_path(Path::new("qemu-system-aarch64")).is_some() {
            assert!(matches!(r, Err(VmError::VhostNeedsTap)), "{r:?}");
        }
    }

    #[test]
    fn label_names_the_configuration() {
        let tmp = header_only_image("lbl");
        let mut o = parse(&["--accel", "tcg", "--mode", "poll", "--transport", "pci"]).unwrap();
        o.image = Some(tmp.clone());
        let r = o.validate();
        std::fs::remove_file(&tmp).unwrap();
        if let Ok(c) = r {
            assert_eq!(c.label(), "user-direct-gic3-pci-poll-tcg");
        }
    }
}
