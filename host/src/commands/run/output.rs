//! `run`'s summary on stdout: `text` (a configuration header, then `vmprobe rr`'s netperf-like
//! text per protocol), `json` ([`RunResults`] as one object), `csv` (`rr`'s CSV with a leading
//! `label` column, one row per protocol, its failed limits in a last column), `lava` (every
//! figure as a LAVA test case).
use std::fmt::Write as _;
use std::io::{self, Write as _};

use super::results::{FloorOutcome, ProbeOutcome, RunResults};
use crate::export::{self, Format};
use crate::rr::{Proto, RrReport};
use crate::vm::options::{Accel, Boot, Transport};

/// Serializes `results` in `format`.
pub fn render(format: Format, results: &RunResults) -> io::Result<Vec<u8>> {
    match format {
        Format::Json => {
            let mut out = serde_json::to_vec_pretty(results)?;
            out.push(b'\n');
            Ok(out)
        }
        Format::Csv => csv(results),
        Format::Text => text(results),
        Format::Lava => Ok(results
            .cases
            .iter()
            .map(|c| c.signal() + "\n")
            .collect::<String>()
            .into_bytes()),
    }
}

/// Prints `results` in `format` on stdout; `lava` goes through `lava-test-case` when it is
/// on PATH.
pub fn print(format: Format, results: &RunResults) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    if format == Format::Lava {
        return export::lava::emit(&results.cases, &mut stdout);
    }
    stdout.write_all(&render(format, results)?)?;
    stdout.flush()
}

/// One line describing the configuration.
pub fn describe(r: &RunResults) -> String {
    let c = &r.config;
    let transport = match c.transport {
        Transport::Mmio => "virtio-mmio",
        Transport::MmioLegacy => "virtio-mmio (legacy)",
        Transport::Pci => "virtio-pci",
    };
    let accel = match c.accel {
        Accel::Kvm => "KVM",
        Accel::Tcg => "TCG (emulation: not KVM numbers)",
    };
    let boot = match c.boot {
        Boot::Direct => "direct boot",
        Boot::Uboot => "U-Boot",
    };
    // The NIC's interrupt path, as the guest reported it.
    let interrupt = c
        .interrupt
        .as_deref()
        .map_or(String::new(), |i| format!(" (interrupt {i})"));
    format!(
        "net {}{}, {boot}, GICv{}, {transport}{interrupt}, mode {}, {} vCPU, {accel}, QEMU {}, host kernel {}",
        c.net.as_str(),
        if c.vhost { " + vhost-net" } else { "" },
        c.gic.map_or("?".into(), |g| g.to_string()),
        c.mode.as_str(),
        c.smp,
        c.qemu_version,
        c.host_kernel
    )
}

fn text(r: &RunResults) -> io::Result<Vec<u8>> {
    let mut out = String::new();
    let _ = writeln!(out, "vmprobe run {}", r.label);
    let _ = writeln!(out, "{:<13}{}", "config", describe(r));
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} ms"));
    let _ = write!(
        out,
        "{:<13}{} from QEMU start to ready",
        "boot",
        ms(r.boot_ms)
    );
    if r.uboot_ms.is_some() {
        let _ = write!(out, " (U-Boot {} of it)", ms(r.uboot_ms));
    }
    out.push('\n');
    for report in r.reports() {
        let what = match (report.proto, &r.probe) {
            (crate::rr::Proto::Udp, Some(_)) => "probe echo, port 7777",
            _ => "echo",
        };
        let _ = writeln!(
            out,
            "--- {} {what} (round trip, microseconds)",
            report.proto
        );
        out.push_str(&String::from_utf8_lossy(&export::serialize(
            Format::Text,
            report,
        )?));
    }
    match &r.probe {
        Some(ProbeOutcome::Breakdown(b)) => {
            let _ = writeln!(out, "--- udp probe (guest timestamps)");
            out.push_str(&crate::probe::report::breakdown_text(
                b,
                Some(match r.config.accel {
                    Accel::Kvm => "kvm",
                    Accel::Tcg => "tcg",
                }),
            ));
        }
        Some(ProbeOutcome::Error { probe_error }) => {
            let _ = writeln!(out, "{:<13}{probe_error}", "probe");
        }
        None => {}
    }
    match &r.host_floor {
        Some(FloorOutcome::Floor(f)) => {
            let _ = writeln!(out, "{:<13}{}", "host floor", f.line());
        }
        Some(FloorOutcome::Error { error }) => {
            let _ = writeln!(out, "{:<13}not measured: {error}", "host floor");
        }
        None => {}
    }
    if r.reports().next().is_none() {
        let _ = writeln!(out, "nothing measured");
    }
    for l in r.load.iter().flatten() {
        let _ = writeln!(out, "{}", l.line());
    }
    if r.interrupted {
        let _ = writeln!(out, "{:<13}interrupted: partial results", "note");
    }
    for c in r.limits.iter().flatten() {
        let _ = writeln!(out, "{:<13}{}: {}", "limit", c.result.as_str(), c.line());
    }
    if let Some(e) = &r.error {
        let _ = writeln!(out, "{:<13}{e}", "error");
    }
    let _ = writeln!(out, "{:<13}{}", "run dir", r.run_dir.display());
    Ok(out.into_bytes())
}

fn csv(r: &RunResults) -> io::Result<Vec<u8>> {
    // Each protocol's row lists the failures of its own figures and of the configuration's.
    let config = format!("{}-", export::lava::id_part(&r.label));
    let rows: Vec<(&str, &RrReport, String)> = r
        .reports()
        .map(|rep| {
            let exceeded: Vec<String> = r
                .exceeded()
                .filter(|c| {
                    let own = c.case.strip_prefix(&config).unwrap_or(&c.case);
                    let other = [Proto::Udp, Proto::Tcp]
                        .into_iter()
                        .filter(|&p| p != rep.proto);
                    !other.into_iter().any(|p| own.starts_with(&format!("{p}-")))
                })
                .map(|c| c.line())
                .collect();
            (r.label.as_str(), rep, exceeded.join("; "))
        })
        .collect();
    export::csv::labelled(&rows)
}
