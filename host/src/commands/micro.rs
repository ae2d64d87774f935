//! The `vmprobe micro` command: boot the guest, run its micro-benchmarks, print, tear down.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use vmprobe_proto::error_reply::Code;
use vmprobe_proto::{BenchTest, PROBE_PORT};

use super::vm_options::VmOptions;
use crate::export::lava::{Check, Outcome, Sheet, Unit};
use crate::limits::{Figure, Limit, LimitError, Value};
use crate::probe::micro::{default_tests, MicroClient, MicroError, TestResult};
use crate::vm::options::Accel;
use crate::vm::services::{endpoint, Proto};
use crate::vm::{Vm, VmError};

/// Output format of `vmprobe micro`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MicroFormat {
    /// A table.
    Text,
    /// One JSON object.
    Json,
    /// One LAVA test case per figure (through `lava-test-case` when it is on PATH).
    Lava,
}

/// Arguments of `vmprobe micro`.
#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Tests: hypercall, mmio-virtio, mmio-gicd, eoi, self-sgi, vtimer, \
vq-notify, ipi (needs --smp 2), counter-read, lpi (needs an ITS: --gic 3 --transport pci, irq \
mode).\nUnder TCG the numbers are emulation costs."
)]
pub struct MicroArgs {
    /// The VM options.
    #[command(flatten)]
    pub vm: VmOptions,
    /// Run only this test (repeatable) [default: all; ipi with --smp 2 or more]
    #[arg(long = "test", value_name = "NAME")]
    pub tests: Vec<String>,
    /// Iterations per test (the guest caps it to its sample buffer)
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub iterations: u32,
    /// Output format
    #[arg(long, value_enum, default_value_t = MicroFormat::Text)]
    pub format: MicroFormat,
    /// Seconds to wait for the guest's ready line
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub ready_timeout: u64,
    /// Fail (exit status 3) when a figure is over this bound: FIGURE=VALUE, the figure (min,
    /// mean, p50, p99, max) optionally led by a test: p99=2us, hypercall-p50=800ns (repeatable)
    #[arg(long = "limit", value_name = "FIGURE=VALUE")]
    pub limits: Vec<Limit>,
}

/// The figures a micro-benchmark reports (its samples are sorted, no p99.9 kept).
const FIGURES: [Figure; 5] = [
    Figure::Min,
    Figure::Mean,
    Figure::P50,
    Figure::P99,
    Figure::Max,
];

/// Checks limits before anything boots: a test's name and a figure micro reports.
fn check_limits(limits: &[Limit]) -> Result<(), LimitError> {
    let tests: Vec<&str> = BenchTest::ALL.iter().map(|t| t.name()).collect();
    for l in limits {
        l.check_scope(&tests)?;
        if !FIGURES.contains(&l.figure) {
            let names: Vec<&str> = FIGURES.iter().map(|f| f.name()).collect();
            return Err(LimitError {
                text: l.text.clone(),
                reason: format!("micro reports {} per test", names.join(", ")),
            });
        }
    }
    Ok(())
}

/// Every test's figures as test cases (`<configuration>-<test>-<figure>`, nanoseconds), a
/// skipped test as `<configuration>-<test>-run` skip, checked against `limits`.
pub fn sheet(r: &MicroReport, limits: &[Limit]) -> Sheet {
    let mut s = Sheet::new(&r.config, limits);
    for t in &r.tests {
        for f in FIGURES {
            let ns = match f {
                Figure::Min => t.min_ns,
                Figure::Mean => t.mean_ns,
                Figure::P50 => t.p50_ns,
                Figure::P99 => t.p99_ns,
                _ => t.max_ns,
            };
            s.figure(Some(t.name), true, f, Some(Value::Time(ns)), Unit::Ns);
        }
    }
    for k in &r.skipped {
        s.status(Some(k.name), "run", Outcome::Skip);
    }
    s.finish()
}

/// Why `vmprobe micro` failed.
#[derive(Debug, thiserror::Error)]
pub enum MicroCommandError {
    /// A bad option.
    #[error("{0}")]
    Options(String),
    /// The VM.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// A benchmark.
    #[error(transparent)]
    Micro(#[from] MicroError),
    /// Writing the output.
    #[error("writing the output: {0}")]
    Output(std::io::Error),
    /// A `--limit` that cannot be checked.
    #[error(transparent)]
    Limit(#[from] LimitError),
}

/// What `vmprobe micro --format json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct MicroReport {
    /// `kvm` or `tcg`.
    pub accel: Accel,
    /// Guest counter frequency (Hz).
    pub cntfrq_hz: u32,
    /// vCPUs.
    pub smp: u32,
    /// Iterations asked for per test.
    pub iterations_requested: u32,
    /// The VM's configuration label.
    pub config: String,
    /// Per test.
    pub tests: Vec<TestResult>,
    /// Tests of the default list the guest refused (e.g. the IPI where it has no second vCPU
    /// started), with its reason. A test named with `--test` is never skipped: it fails.
    pub skipped: Vec<Skipped>,
    /// `--limit`: each limit checked against each figure it bounds (`case`, `limit`, `value`,
    /// `units`, `result`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Vec<Check>>,
}

/// A default test the guest could not run.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// Short name.
    pub name: &'static str,
    /// The guest's reason.
    pub reason: String,
}

/// Resolves the `--test` names (or the default list).
pub fn select_tests(names: &[String], smp: u32) -> Result<Vec<BenchTest>, MicroCommandError> {
    if names.is_empty() {
        return Ok(default_tests(smp));
    }
    let mut out = Vec::new();
    for n in names {
        let t = BenchTest::from_name(n).ok_or_else(|| {
            let all: Vec<&str> = BenchTest::ALL.iter().map(|t| t.name()).collect();
            MicroCommandError::Options(format!(
                "--test {n}: no such micro-benchmark (one of {})",
                all.join(", ")
            ))
        })?;
        if t == BenchTest::IpiRoundTrip && smp < 2 {
            return Err(MicroCommandError::Options(
                "--test ipi needs a second vCPU: add --smp 2".into(),
            ));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// Runs `vmprobe micro`; exit status 3 when a figure is over its `--limit`.
pub fn execute(args: MicroArgs) -> anyhow::Result<()> {
    let limits = crate::limits::merge(args.limits.clone());
    let report = micro_command(args, &limits)?;
    let checks = report.limits.iter().flatten();
    Ok(crate::commands::run::limit_verdict(checks)?)
}

fn micro_command(args: MicroArgs, limits: &[Limit]) -> Result<MicroReport, MicroCommandError> {
    if args.iterations == 0 {
        return Err(MicroCommandError::Options(
            "--iterations must be at least 1".into(),
        ));
    }
    check_limits(limits)?;
    let tests = select_tests(&args.tests, args.vm.smp)?;
    let config = args.vm.validate()?;
    eprintln!("vmprobe: accelerator: {}", config.accel_reason);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(VmError::Io)?;
    let report = rt.block_on(async {
        let vm = Vm::start(&config, Duration::from_secs(args.ready_timeout)).await?;
        let target = endpoint(&vm.info().endpoints, Proto::Udp, PROBE_PORT)
            .ok_or_else(|| MicroCommandError::Options("the VM has no probe endpoint".into()))?;
        let iterations = args.iterations;
        let explicit = !args.tests.is_empty();
        let work = move || -> Result<(Vec<TestResult>, Vec<Skipped>), MicroError> {
            let mut client = MicroClient::connect(target)?;
            let (mut done, mut skipped) = (Vec::new(), Vec::new());
            for &t in &tests {
                match client.run(t, iterations) {
                    Ok(r) => done.push(r),
                    Err(MicroError::Refused { code, .. })
                        if !explicit && code == Code::UnsupportedTest =>
                    {
                        skipped.push(Skipped {
                            name: t.name(),
                            reason: code.to_string(),
                        })
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok((done, skipped))
        };
        let handle = match vm.client_netns() {
            Some(ns) => ns.spawn("vmprobe-micro", work),
            None => std::thread::Builder::new()
                .name("vmprobe-micro".into())
                .spawn(move || Ok(work())),
        }
        .map_err(VmError::Io)?;
        // The benchmarks block their own thread; the runtime keeps QEMU's console drained.
        let results = loop {
            if handle.is_finished() {
                break handle.join();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let info_label = vm.info().label.clone();
        let accel = vm.info().config.accel;
        vm.shutdown().await?;
        let (results, skipped) = match results {
            Ok(Ok(r)) => r?,
            Ok(Err(e)) => return Err(MicroCommandError::Vm(VmError::Io(e))),
            Err(_) => {
                return Err(MicroCommandError::Options(
                    "the benchmark thread panicked".into(),
                ))
            }
        };
        Ok::<_, MicroCommandError>(MicroReport {
            accel,
            cntfrq_hz: results.first().map_or(0, |r| r.cntfrq_hz),
            smp: config.smp,
            iterations_requested: iterations,
            config: info_label,
            tests: results,
            skipped,
            limits: None,
        })
    })?;
    let mut report = report;
    let sheet = sheet(&report, limits);
    if !limits.is_empty() {
        report.limits = Some(sheet.checks.clone());
    }
    let mut out = std::io::stdout().lock();
    match args.format {
        MicroFormat::Json => serde_json::to_writer_pretty(&mut out, &report)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out)),
        MicroFormat::Text => out.write_all(text(&report).as_bytes()),
        MicroFormat::Lava => crate::export::lava::emit(&sheet.cases, &mut out),
    }
    .and_then(|()| out.flush())
    .map_err(MicroCommandError::Output)?;
    Ok(report)
}

/// The table.
pub fn text(r: &MicroReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "vmprobe micro: {} ({} vCPUs), counter {} Hz (resolution {:.1} ns)",
        r.config,
        r.smp,
        r.cntfrq_hz,
        1e9 / f64::from(r.cntfrq_hz.max(1))
    );
    let _ = writeln!(
        out,
        "{:<14}{:>7}{:>10}{:>10}{:>10}{:>11}{:>10}  what",
        "test", "n", "min ns", "p50 ns", "p99 ns", "max ns", "mean ns"
    );
    for t in &r.tests {
        let _ = writeln!(
            out,
            "{:<14}{:>7}{:>10.0}{:>10.0}{:>10.0}{:>11.0}{:>10.0}  {}",
            t.name, t.iterations, t.min_ns, t.p50_ns, t.p99_ns, t.max_ns, t.mean_ns, t.description
        );
    }
    for s in &r.skipped {
        let _ = writeln!(out, "{:<14}skipped: {}", s.name, s.reason);
    }
    for c in r.limits.iter().flatten() {
        let _ = writeln!(out, "limit {}: {}", c.result.as_str(), c.line());
    }
    let _ = writeln!(
        out,
        "{}",
        match r.accel {
            Accel::Tcg =>
                "TCG (emulation, no KVM): these are emulation costs, not what a KVM host shows.",
            Accel::Kvm => "KVM: exits, vGIC and timer as the hardware-virtualized guest sees them.",
        }
    );
    out
}
