//! The probe's report on its own console, for boards where no host harness runs (`bench=`):
//! the micro-benchmarks run once through the same [`ProbePlatform::run_bench`] the probe
//! protocol uses, summarised by the one [`Summary`], and printed as
//!
//! ```text
//! vmprobe: results begin
//! vmprobe: result guest-hypercall-p50 1248 ns
//! vmprobe: result guest-hypercall-p99 2016 ns
//! ...
//! vmprobe: result guest-boot 412.345 ms
//! vmprobe: results end
//! ```
//!
//! Ids are lowercase, URL-safe `<configuration>-<series>-<figure>`, the configuration being
//! `guest` (the probe does not know how the host wired it). A test the machine cannot run (no
//! second vCPU for `ipi`, no ITS for `lpi`, no NIC for `mmio-virtio`) gets a note before the
//! block, not a result. `guest-boot` is there only when the probe got as far as serving.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use vmprobe_proto::{BenchTest, Summary};

use super::platform::{BenchError, ProbePlatform};
use crate::config::BenchSet;

/// Iterations per test, as `vmprobe micro` asks by default.
pub const ITERATIONS: usize = 1000;

/// The configuration part of every id.
const CONFIGURATION: &str = "guest";

/// One figure: `vmprobe: result <id> <value> <unit>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Figure {
    /// The test case id.
    pub id: String,
    /// The measurement, a plain decimal.
    pub value: String,
    /// Its unit.
    pub unit: &'static str,
}

/// What the boot-time run produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelfReport {
    /// The figures, in order.
    pub figures: Vec<Figure>,
    /// A line per test that gave no figures, and why.
    pub notes: Vec<String>,
}

impl SelfReport {
    /// Runs each test of `tests` over `samples` (its length is the iteration count) and keeps
    /// its median and 99th percentile in ns.
    pub fn run<P: ProbePlatform>(platform: &mut P, tests: BenchSet, samples: &mut [u64]) -> Self {
        let hz = u64::from(platform.cntfrq_hz());
        let mut report = SelfReport::default();
        for test in tests.iter() {
            let summary = match platform.run_bench(test, 0, samples) {
                Ok(()) => Summary::of(samples),
                Err(e) => {
                    report.notes.push(refusal(test, e));
                    continue;
                }
            };
            let Some(summary) = summary else {
                report
                    .notes
                    .push(format!("vmprobe: bench: {test}: no samples"));
                continue;
            };
            for (figure, ticks) in [("p50", summary.p50), ("p99", summary.p99)] {
                report.figures.push(Figure {
                    id: format!("{CONFIGURATION}-{test}-{figure}"),
                    value: format!("{}", ticks_to_ns(ticks, hz)),
                    unit: "ns",
                });
            }
        }
        report
    }

    /// Adds the boot time to ready, `micros` after the counter's start, in ms.
    pub fn boot(&mut self, micros: u64) {
        self.figures.push(Figure {
            id: format!("{CONFIGURATION}-boot"),
            value: format!("{}.{:03}", micros / 1000, micros % 1000),
            unit: "ms",
        });
    }

    /// Every console line: the notes, then the block.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        let block = self
            .figures
            .iter()
            .map(|f| format!("vmprobe: result {} {} {}", f.id, f.value, f.unit));
        self.notes
            .iter()
            .cloned()
            .chain([String::from("vmprobe: results begin")])
            .chain(block)
            .chain([String::from("vmprobe: results end")])
    }
}

fn refusal(test: BenchTest, e: BenchError) -> String {
    let why = match e {
        BenchError::Unsupported => "not supported on this machine",
        BenchError::Failed => "failed",
    };
    format!("vmprobe: bench: {test}: {why}, no result")
}

/// Counter ticks at `hz` in whole ns, rounded to nearest (0 Hz gives 0).
fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    let ns = (u128::from(ticks) * 1_000_000_000 + u128::from(hz) / 2) / u128::from(hz);
    u64::try_from(ns).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_to_nearest_ns() {
        assert_eq!(ticks_to_ns(1, 62_500_000), 16);
        assert_eq!(ticks_to_ns(3, 24_000_000), 125);
        assert_eq!(ticks_to_ns(1, 24_000_000), 42);
        assert_eq!(ticks_to_ns(5, 0), 0);
        assert_eq!(ticks_to_ns(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn boot_in_ms_with_three_places() {
        let mut r = SelfReport::default();
        r.boot(412_045);
        r.boot(7);
        let values: Vec<&str> = r.figures.iter().map(|f| f.value.as_str()).collect();
        assert_eq!(values, ["412.045", "0.007"]);
    }
}
