//! What a run produced: one plain `Serialize` struct, written as `results.json` and printed by
//! `--format json`. It extends `vmprobe rr`'s JSON: each measured protocol's object under
//! `udp` / `tcp` is exactly `rr`'s report (every key `rr --format json` prints). Keys are only
//! ever added; each feature that hooks into `run` has its own optional field.
use std::path::PathBuf;

use serde::Serialize;

use super::trace::RunTrace;
use crate::floor::HostFloor;
use crate::load::LoadReport;
use crate::rr::{Proto, RrReport};
use crate::vm::console::BootTimes;
use crate::vm::options::{Accel, Boot, Mode, Net, Transport};
use crate::vm::{VcpuPin, VmInfo};

/// The configuration measured, as the guest and QEMU reported it.
#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    /// Network backend.
    pub net: Net,
    /// Where the eBPF bridge's programs ran (`--net ebpf` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebpf_hook: Option<crate::netsetup::ebpf::Hook>,
    /// Boot path.
    pub boot: Boot,
    /// GIC version the guest runs on.
    pub gic: Option<u8>,
    /// virtio-net transport.
    pub transport: Transport,
    /// The NIC's interrupt path as the guest reported it (`spi`, `intx`, `msix-v2m`, `msix-its`,
    /// `none` in poll mode); null for a guest that does not say.
    pub interrupt: Option<String>,
    /// Accelerator (`tcg` numbers are emulation, not KVM numbers).
    pub accel: Accel,
    /// Guest idle mode.
    pub mode: Mode,
    /// vhost-net in use.
    pub vhost: bool,
    /// vCPUs.
    pub smp: u32,
    /// vCPU threads and where they were pinned.
    pub vcpus: Vec<VcpuPin>,
    /// QEMU's version, e.g. `7.2.0 (Debian 1:7.2+dfsg-7)`.
    pub qemu_version: String,
    /// Host kernel release.
    pub host_kernel: String,
    /// Guest image.
    pub image: PathBuf,
    /// The guest's ready line.
    pub ready_line: String,
}

impl RunConfig {
    /// From the booted VM.
    pub fn from_info(info: &VmInfo) -> RunConfig {
        let c = &info.config;
        RunConfig {
            net: c.net,
            ebpf_hook: (c.net == Net::Ebpf).then_some(c.ebpf_hook),
            boot: c.boot,
            gic: info
                .ready
                .gic
                .as_deref()
                .and_then(|g| g.parse().ok())
                .or(c.gic),
            transport: c.transport,
            interrupt: info.ready.interrupt.clone(),
            accel: c.accel,
            mode: c.mode,
            vhost: c.vhost,
            smp: c.smp,
            vcpus: info.vcpus.clone(),
            qemu_version: info.qemu_version.to_string(),
            host_kernel: info.host_kernel.clone(),
            image: c.image.clone(),
            ready_line: info.ready.line.clone(),
        }
    }
}

/// Everything one `vmprobe run` measured.
#[derive(Clone, Debug, Serialize)]
pub struct RunResults {
    /// Configuration label, e.g. `user-direct-gic3-mmio-irq-tcg`.
    pub label: String,
    /// What was measured.
    pub config: RunConfig,
    /// QEMU start to the guest's ready line, ms.
    pub boot_ms: Option<f64>,
    /// U-Boot's share of `boot_ms` (`--boot uboot`), ms.
    pub uboot_ms: Option<f64>,
    /// Every boot milestone, ms since QEMU started.
    pub boot: BootTimes,
    /// UDP echo round trips: `vmprobe rr --proto udp`'s report. Absent when not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp: Option<RrReport>,
    /// TCP echo round trips: `vmprobe rr --proto tcp`'s report. Absent when not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<RrReport>,
    /// Stopped early by Ctrl-C or SIGTERM.
    pub interrupted: bool,
    /// How QEMU ended when it died during the measurement (`null` when it did not).
    pub qemu_died: Option<String>,
    /// How QEMU ended at teardown.
    pub qemu_exit: Option<String>,
    /// What ended the run early besides a signal (QEMU died, a protocol failed), if anything.
    pub error: Option<String>,
    /// The run directory.
    pub run_dir: PathBuf,
    /// `--probe`: where the UDP round trips went (the keys `rr --probe` adds: `h2g_us`,
    /// `guest_residence_us`, `g2h_us`, `irq_to_rx_us`, `notify_exit_us`, `clock`, ...), or
    /// `probe_error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeOutcome>,
    /// `--load`: one report per kind of background traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<Vec<LoadReport>>,
    /// `--trace`: the recording and its analysis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<RunTrace>,
    /// The host's own floor, measured after teardown on the CPUs this run used: `rr` against
    /// a loopback echo, per measured protocol (absent when nothing was measured or the run
    /// was interrupted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_floor: Option<FloorOutcome>,
    /// `--limit`: each limit checked against each figure it bounds (`case`, `limit`, `value`,
    /// `units`, `result`: `pass` or `fail`), in report order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Vec<crate::export::lava::Check>>,
    /// Every figure as a LAVA test case (`--format lava`), named after the configuration.
    #[serde(skip)]
    pub cases: Vec<crate::export::lava::Case>,
}

impl RunResults {
    /// Results of a booted VM before anything is measured.
    pub fn new(info: &VmInfo) -> RunResults {
        RunResults {
            label: info.label.clone(),
            config: RunConfig::from_info(info),
            boot_ms: info.boot.ready_ms,
            uboot_ms: info.boot.uboot_ms,
            boot: info.boot.clone(),
            udp: None,
            tcp: None,
            interrupted: false,
            qemu_died: None,
            qemu_exit: None,
            error: None,
            run_dir: info.run_dir.clone(),
            probe: None,
            load: None,
            trace: None,
            host_floor: None,
            limits: None,
            cases: Vec::new(),
        }
    }

    /// The report of `proto`, if measured.
    pub fn report(&self, proto: Proto) -> Option<&RrReport> {
        match proto {
            Proto::Udp => self.udp.as_ref(),
            Proto::Tcp => self.tcp.as_ref(),
        }
    }

    /// Stores the report of `proto`.
    pub fn set_report(&mut self, report: RrReport) {
        match report.proto {
            Proto::Udp => self.udp = Some(report),
            Proto::Tcp => self.tcp = Some(report),
        }
    }

    /// The limits this run exceeded.
    pub fn exceeded(&self) -> impl Iterator<Item = &crate::export::lava::Check> {
        self.limits
            .iter()
            .flatten()
            .filter(|c| c.result == crate::export::lava::Outcome::Fail)
    }

    /// Measured reports in measuring order.
    pub fn reports(&self) -> impl Iterator<Item = &RrReport> {
        self.udp.iter().chain(self.tcp.iter())
    }
}

/// The `probe` object of a run: the breakdown, or why there is none.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum ProbeOutcome {
    /// The split.
    Breakdown(Box<crate::probe::Breakdown>),
    /// Why there is none.
    Error {
        /// The reason.
        probe_error: String,
    },
}

impl From<Result<crate::probe::Breakdown, String>> for ProbeOutcome {
    fn from(r: Result<crate::probe::Breakdown, String>) -> Self {
        match r {
            Ok(b) => ProbeOutcome::Breakdown(Box::new(b)),
            Err(probe_error) => ProbeOutcome::Error { probe_error },
        }
    }
}

/// The `host_floor` object of a run: the floor, or why there is none.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum FloorOutcome {
    /// The floor.
    Floor(Box<HostFloor>),
    /// Why there is none.
    Error {
        /// The reason.
        error: String,
    },
}

impl From<Result<HostFloor, String>> for FloorOutcome {
    fn from(r: Result<HostFloor, String>) -> Self {
        match r {
            Ok(f) => FloorOutcome::Floor(Box::new(f)),
            Err(error) => FloorOutcome::Error { error },
        }
    }
}
