//! `vmprobe run --compare-modes`: the same run with the guest in `irq` mode, then in `poll`
//! mode, both with guest timestamps (`--probe`). In poll mode the guest spins on the ring, so
//! a request is seen as soon as QEMU/vhost has put it there; in irq mode the same request must
//! also be injected as an interrupt (vGIC) and the vCPU woken and re-entered. The difference of
//! the host-to-guest one-way delays is therefore the injection + wake-up cost; the rest of the
//! path (host stack, QEMU/vhost, the reply) is common to both and cancels.

use std::fmt::Write as _;
use std::io::Write as _;

use serde::Serialize;

use super::results::{ProbeOutcome, RunResults};
use super::signals::Signals;
use super::{hooks_for, output, run_one, RunArgs, RunError, RunPlan};
use crate::export::Format;
use crate::stats::Summary;
use crate::vm::options::Mode;

/// Injection + wake-up cost: irq-mode h2g minus poll-mode h2g.
#[derive(Debug, Clone, Serialize)]
pub struct ModeDifference {
    /// Difference of the medians (us).
    pub p50_us: Option<f64>,
    /// Difference of the 99th percentiles (us).
    pub p99_us: Option<f64>,
    /// Difference of the minima (us): the cost without any queueing.
    pub min_us: Option<f64>,
    /// Host-to-guest delay in irq mode.
    pub h2g_irq_us: Option<Summary>,
    /// Host-to-guest delay in poll mode.
    pub h2g_poll_us: Option<Summary>,
    /// Clock uncertainty of each run (us): each difference is good to their sum.
    pub uncertainty_us: f64,
}

/// What `--compare-modes --format json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct CompareModes {
    /// The injection + wake-up cost.
    pub injection_wakeup_us: ModeDifference,
    /// The irq-mode run.
    pub irq: RunResults,
    /// The poll-mode run.
    pub poll: RunResults,
}

fn h2g(r: &RunResults) -> Option<(Summary, f64)> {
    match &r.probe {
        Some(ProbeOutcome::Breakdown(b)) => Some((b.h2g_us, b.clock.mapping.uncertainty_ns / 1e3)),
        _ => None,
    }
}

/// The difference of two runs' host-to-guest delays.
pub fn difference(irq: &RunResults, poll: &RunResults) -> ModeDifference {
    let (a, b) = (h2g(irq), h2g(poll));
    let diff = |f: fn(&Summary) -> Option<f64>| {
        let (a, b) = (a.as_ref()?, b.as_ref()?);
        Some(f(&a.0)? - f(&b.0)?)
    };
    ModeDifference {
        p50_us: diff(|s| s.p50_us),
        p99_us: diff(|s| s.p99_us),
        min_us: diff(|s| s.min_us),
        h2g_irq_us: a.map(|x| x.0),
        h2g_poll_us: b.map(|x| x.0),
        uncertainty_us: a.map_or(0.0, |x| x.1) + b.map_or(0.0, |x| x.1),
    }
}

/// Runs both modes and prints the comparison.
pub fn execute(mut args: RunArgs) -> Result<(), RunError> {
    let format = args.rr.format;
    args.rr.probe = true;
    args.compare_modes = false;
    let plans = [Mode::Irq, Mode::Poll]
        .into_iter()
        .map(|mode| {
            let mut a = args.clone();
            a.vm.mode = mode;
            // One run directory each: `--run-dir D` becomes D/irq and D/poll.
            a.vm.run_dir = args.vm.run_dir.as_ref().map(|d| d.join(mode.as_str()));
            RunPlan::new(a)
        })
        .collect::<Result<Vec<_>, _>>()?;
    eprintln!("vmprobe: accelerator: {}", plans[0].vm.accel_reason);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut finished = Vec::new();
    rt.block_on(async {
        let mut signals = Signals::new()?;
        for plan in &plans {
            let mut hooks = hooks_for(&plan.args);
            let f = run_one(plan, &mut hooks, &mut signals).await?;
            let stop = f.results.interrupted || f.problem.is_some();
            finished.push(f);
            if stop {
                break;
            }
        }
        Ok::<_, RunError>(())
    })?;
    let problem = finished.iter_mut().find_map(|f| f.problem.take());
    let mut runs = finished.into_iter().map(|f| f.results);
    let (Some(irq), Some(poll)) = (runs.next(), runs.next()) else {
        return Err(problem.unwrap_or(RunError::Hook {
            hook: "compare-modes".into(),
            message: "the poll-mode run did not happen".into(),
        }));
    };
    let cmp = CompareModes {
        injection_wakeup_us: difference(&irq, &poll),
        irq,
        poll,
    };
    let bytes = match format {
        Format::Json => {
            let mut v = serde_json::to_vec_pretty(&cmp).map_err(std::io::Error::from)?;
            v.push(b'\n');
            v
        }
        Format::Csv => {
            let mut v = output::render(Format::Csv, &cmp.irq)?;
            let poll = output::render(Format::Csv, &cmp.poll)?;
            v.extend(
                String::from_utf8_lossy(&poll)
                    .lines()
                    .skip(1)
                    .flat_map(|l| {
                        let mut l = l.as_bytes().to_vec();
                        l.push(b'\n');
                        l
                    }),
            );
            v
        }
        Format::Text => text(&cmp)?.into_bytes(),
        Format::Lava => Vec::new(),
    };
    let mut out = std::io::stdout().lock();
    if format == Format::Lava {
        let cases = [&cmp.irq.cases[..], &cmp.poll.cases[..]].concat();
        crate::export::lava::emit(&cases, &mut out)?;
    }
    out.write_all(&bytes)?;
    out.flush()?;
    let checks = [&cmp.irq, &cmp.poll]
        .into_iter()
        .flat_map(|r| r.limits.iter().flatten());
    let limits = super::limit_verdict(checks);
    match problem {
        Some(e) => Err(e),
        None => Ok(limits?),
    }
}

fn text(c: &CompareModes) -> std::io::Result<String> {
    let mut out = String::new();
    for r in [&c.irq, &c.poll] {
        out.push_str(&String::from_utf8_lossy(&output::render(Format::Text, r)?));
        out.push('\n');
    }
    let d = &c.injection_wakeup_us;
    let us = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} us"));
    let _ = writeln!(
        out,
        "interrupt injection + vCPU wake-up (host->guest delay, irq minus poll): \
         p50 {}, p99 {}, min {} (each good to +-{:.1} us, the two clocks' uncertainties)",
        us(d.p50_us),
        us(d.p99_us),
        us(d.min_us),
        d.uncertainty_us
    );
    let _ = writeln!(
        out,
        "  host->guest irq  p50 {}  p99 {}\n  host->guest poll p50 {}  p99 {}",
        us(d.h2g_irq_us.and_then(|s| s.p50_us)),
        us(d.h2g_irq_us.and_then(|s| s.p99_us)),
        us(d.h2g_poll_us.and_then(|s| s.p50_us)),
        us(d.h2g_poll_us.and_then(|s| s.p99_us)),
    );
    if c.irq.config.accel == crate::vm::options::Accel::Tcg {
        let _ = writeln!(
            out,
            "  TCG: the guest is emulated, so this is QEMU's emulated interrupt delivery and \
             vCPU thread wake-up, not vGIC injection and a KVM vCPU kick."
        );
    }
    Ok(out)
}
