//! The report of `rr --probe`: every `rr` key, plus the breakdown's (`h2g_us`,
//! `guest_residence_us`, `g2h_us`, `irq_to_rx_us`, `notify_exit_us`, `clock`, ...), or
//! `probe_error` when no split could be made. Text adds a "where the time went" block.

use std::fmt::Write as _;
use std::io;

use serde::Serialize;

use super::breakdown::Breakdown;
use super::rr::ProbeRun;
use crate::export::{self, Format};
use crate::rr::RrReport;
use crate::stats::Summary;

/// `rr --probe`'s report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeReport {
    /// The round trips, as `vmprobe rr` reports them.
    #[serde(flatten)]
    pub rr: RrReport,
    /// The split.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Breakdown>,
    /// Why there is no split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_error: Option<String>,
}

impl From<&ProbeRun> for ProbeReport {
    fn from(run: &ProbeRun) -> Self {
        ProbeReport {
            rr: run.rr.report.clone(),
            breakdown: run.breakdown.as_ref().ok().cloned(),
            probe_error: run.breakdown.as_ref().err().cloned(),
        }
    }
}

fn us(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

fn row(out: &mut String, label: &str, s: &Summary, note: &str) {
    let _ = writeln!(
        out,
        "  {label:<20}{:>9} {:>9} {:>9} {:>9}{note}",
        us(s.min_us),
        us(s.p50_us),
        us(s.p99_us),
        us(s.max_us)
    );
}

/// The "where the time went" block. `accel` is the VM's accelerator when known (`tcg`,
/// `kvm`).
pub fn breakdown_text(b: &Breakdown, accel: Option<&str>) -> String {
    let mut out = String::new();
    let c = &b.clock;
    let _ = writeln!(
        out,
        "where the time went, per packet path (us; {} stamped samples, guest mode {}):",
        b.stamped, b.guest_mode
    );
    let _ = writeln!(
        out,
        "  {:<20}{:>9} {:>9} {:>9} {:>9}",
        "", "min", "p50", "p99", "max"
    );
    row(
        &mut out,
        "host -> guest",
        &b.h2g_us,
        "  host send to guest driver sees it",
    );
    row(
        &mut out,
        "in the guest",
        &b.guest_residence_us,
        "  driver sees it to reply's TX notify",
    );
    row(
        &mut out,
        "guest -> host",
        &b.g2h_us,
        "  TX notify to host receive",
    );
    if b.irq_to_rx_us.samples > 0 {
        row(
            &mut out,
            "  irq entry -> rx",
            &b.irq_to_rx_us,
            "  guest interrupt entry to driver sees it",
        );
    }
    if b.irq_entry_before_send > 0 {
        let _ = writeln!(
            out,
            "    ({} samples carried an interrupt entry from before their request was sent, \
             an earlier interrupt's: left out of irq entry -> rx)",
            b.irq_entry_before_send
        );
    }
    if b.notify_exit_us.samples > 0 {
        row(
            &mut out,
            "  notify exit",
            &b.notify_exit_us,
            "  the QueueNotify write (exit to QEMU/vhost)",
        );
    }
    let _ = writeln!(
        out,
        "clock: {} ({} counter at {} Hz onto {}): offset {} ns, drift {:.3} ppm, \
         uncertainty +-{:.1} us{}",
        serde_json::to_value(c.mapping.method)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        c.counter,
        b.cntfrq_hz,
        c.host_clock,
        c.mapping.offset_ns,
        c.mapping.drift_ppm,
        c.mapping.uncertainty_ns / 1e3,
        match c.mapping.asymmetry_bound_ns {
            Some(a) => format!(
                ", of which path asymmetry can be up to {:.1} us (only an exact --clock, kvm-ptp or shared-counter, removes it)",
                a / 1e3
            ),
            None => String::new(),
        }
    );
    let _ = writeln!(
        out,
        "  host -> guest and guest -> host trade time within that uncertainty; their sum with \
         the residence is the round trip.{}",
        if c.samples_outside_bound > 0 {
            format!(
                " {} samples contradict the mapping (one-way delay below -uncertainty).",
                c.samples_outside_bound
            )
        } else {
            String::new()
        }
    );
    if let Some(f) = &c.mapping.fallback {
        let _ = writeln!(
            out,
            "  exact clock mapping not used, fell back to min-rtt: {f}"
        );
    }
    let _ = writeln!(
        out,
        "{}",
        match accel {
            Some("kvm") => "KVM: these are the costs of the hardware-virtualized path.",
            Some(_) => "TCG (emulation, no KVM): these are emulation numbers, not what a KVM host shows.",
            None => "If the guest runs under TCG (no KVM), these are emulation numbers, not what a KVM host shows.",
        }
    );
    out
}

/// `vmprobe rr --probe`'s LAVA cases: the round trip's, and the guest residence's.
pub fn lava_sheet(r: &ProbeReport) -> export::lava::Sheet {
    let mut sheet = export::lava::Sheet::new("rr", &[]);
    sheet.rr(r.rr.proto.as_str(), true, &r.rr);
    if let Some(b) = &r.breakdown {
        let series = format!("{}-residence", r.rr.proto);
        sheet.summary(&series, false, &b.guest_residence_us);
    }
    sheet.finish()
}

/// Serializes a probe report: JSON is one object; text is the rr summary and the breakdown;
/// CSV is rr's summary row (the split is per sample in `--log`).
pub fn serialize(format: Format, r: &ProbeReport, accel: Option<&str>) -> io::Result<Vec<u8>> {
    match format {
        Format::Json => {
            let mut out = serde_json::to_vec_pretty(r)?;
            out.push(b'\n');
            Ok(out)
        }
        Format::Csv => export::serialize(Format::Csv, &r.rr),
        Format::Lava => Ok(lava_sheet(r).lines().into_bytes()),
        Format::Text => {
            let mut out = export::serialize(Format::Text, &r.rr)?;
            match (&r.breakdown, &r.probe_error) {
                (Some(b), _) => out.extend_from_slice(breakdown_text(b, accel).as_bytes()),
                (None, Some(e)) => out.extend_from_slice(format!("probe: {e}\n").as_bytes()),
                (None, None) => {}
            }
            Ok(out)
        }
    }
}
