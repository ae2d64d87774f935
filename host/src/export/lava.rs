//! LAVA test cases: every figure as one case, `<configuration>-<series>-<figure>` (e.g.
//! `tap-irq-udp-p99`), with its measurement and units, pass or fail against the limits.
//!
//! Printed as LAVA's own `lava-test-case ID --result R --measurement M --units U` signals it,
//! `<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=ID RESULT=R MEASUREMENT=M UNITS=U>`: the same fields
//! and values (LAVA's parser reads them in any order; that script happens to write UNITS
//! first, this keeps the documented order); when `lava-test-case` is on `PATH` (a
//! LAVA test shell), it is called once per case instead, so LAVA records the results itself.
//!
//! Ids follow LAVA's own rule for names (`[-_a-zA-Z0-9.]`, no whitespace: the dispatcher
//! drops a case whose id has a space), narrowed to lowercase letters, digits, `-` and `.`,
//! which are URL-safe as they are.
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::Command;

use serde::Serialize;

use crate::limits::{Figure, Limit, LimitsExceeded, Value};
use crate::rr::RrReport;
use crate::stats::Summary;

/// A case's result, as LAVA spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Measured, and within every limit on it.
    Pass,
    /// Over a limit, not measured although limited, or the run failed.
    Fail,
    /// Not run (e.g. a micro-benchmark the guest refused).
    Skip,
}

impl Outcome {
    /// `pass`, `fail`, `skip`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
        }
    }
}

/// The unit a series reports its times in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Nanoseconds (micro-benchmarks).
    Ns,
    /// Microseconds (round trips).
    Us,
    /// Milliseconds (boot).
    Ms,
}

impl Unit {
    /// LAVA's `UNITS=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::Us => "us",
            Unit::Ms => "ms",
        }
    }

    fn ns(self) -> f64 {
        match self {
            Unit::Ns => 1.0,
            Unit::Us => 1e3,
            Unit::Ms => 1e6,
        }
    }
}

/// One test case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// The id.
    pub id: String,
    /// Its result.
    pub result: Outcome,
    /// The measurement and its units, when it has one.
    pub measurement: Option<(String, &'static str)>,
}

impl Case {
    /// The line `lava-test-case` prints for this case.
    pub fn signal(&self) -> String {
        let mut s = format!(
            "<LAVA_SIGNAL_TESTCASE TEST_CASE_ID={} RESULT={}",
            self.id,
            self.result.as_str()
        );
        if let Some((m, units)) = &self.measurement {
            s.push_str(&format!(" MEASUREMENT={m} UNITS={units}"));
        }
        s.push('>');
        s
    }

    /// `lava-test-case`'s arguments for this case.
    pub fn arguments(&self) -> Vec<String> {
        let mut a = vec![
            self.id.clone(),
            "--result".into(),
            self.result.as_str().into(),
        ];
        if let Some((m, units)) = &self.measurement {
            a.extend(["--measurement".into(), m.clone(), "--units".into()]);
            a.push((*units).into());
        }
        a
    }
}

/// One limit checked against one figure: what every output format shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// The case it decided.
    pub case: String,
    /// The limit, as given (`p99=200us`).
    pub limit: String,
    /// The figure's value (`null`: not measured).
    pub value: Option<f64>,
    /// Its units.
    pub units: &'static str,
    /// `pass` or `fail`.
    pub result: Outcome,
}

impl Check {
    /// One line, e.g. `user-irq-udp-p99 250.125 us over p99=200us`.
    pub fn line(&self) -> String {
        let v = self.value.map_or("not measured".into(), |v| {
            format!("{} {}", num(v), self.units)
        });
        let verdict = match self.result {
            Outcome::Fail => "over",
            _ => "within",
        };
        format!("{} {v} {verdict} {}", self.case, self.limit)
    }
}

/// One part of an id: lowercase letters, digits and `.`, anything else a single `-`.
pub fn id_part(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// `<configuration>[-<series>]-<figure>`.
pub fn case_id(config: &str, series: Option<&str>, figure: &str) -> String {
    [Some(config), series, Some(figure)]
        .into_iter()
        .flatten()
        .map(id_part)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// A number for `MEASUREMENT=`: plain decimal, at most 3 places, no trailing zeros.
fn num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// Collects the cases of one configuration and checks the limits as it goes.
#[derive(Debug, Clone)]
pub struct Sheet {
    config: String,
    limits: Vec<Limit>,
    matched: Vec<bool>,
    /// The cases, in report order.
    pub cases: Vec<Case>,
    /// Every limit checked, in report order.
    pub checks: Vec<Check>,
}

impl Sheet {
    /// An empty sheet for the configuration `config`, checking `limits`.
    pub fn new(config: &str, limits: &[Limit]) -> Sheet {
        Sheet {
            config: id_part(config),
            matched: vec![false; limits.len()],
            limits: limits.to_vec(),
            cases: Vec::new(),
            checks: Vec::new(),
        }
    }

    /// A case without a measurement (`<configuration>-run`, a skipped test).
    pub fn status(&mut self, series: Option<&str>, what: &str, result: Outcome) {
        self.cases.push(Case {
            id: case_id(&self.config, series, what),
            result,
            measurement: None,
        });
    }

    /// One figure; `main` as in [`Limit::applies`]. A figure without a value gets a case only
    /// when a limit bounds it (and fails).
    pub fn figure(
        &mut self,
        series: Option<&str>,
        main: bool,
        figure: Figure,
        value: Option<Value>,
        unit: Unit,
    ) {
        let id = case_id(&self.config, series, figure.name());
        let (shown, units) = match value {
            Some(Value::Time(ns)) => (Some(ns / unit.ns()), unit.as_str()),
            Some(Value::Lost { lost, .. }) => (Some(lost as f64), "count"),
            None if figure == Figure::Lost => (None, "count"),
            None => (None, unit.as_str()),
        };
        let mut result = Outcome::Pass;
        let mut limited = false;
        for (i, l) in self.limits.iter().enumerate() {
            if !l.applies(series, main, figure) {
                continue;
            }
            limited = true;
            self.matched[i] = true;
            let exceeded = l.exceeded_by(value);
            if exceeded {
                result = Outcome::Fail;
            }
            self.checks.push(Check {
                case: id.clone(),
                limit: l.text.clone(),
                value: shown,
                units,
                result: if exceeded {
                    Outcome::Fail
                } else {
                    Outcome::Pass
                },
            });
        }
        if shown.is_none() && !limited {
            return;
        }
        self.cases.push(Case {
            id,
            result,
            measurement: shown.map(|v| (num(v), units)),
        });
    }

    /// The distribution figures of `summary` (microseconds).
    pub fn summary(&mut self, series: &str, main: bool, summary: &Summary) {
        for f in Figure::DISTRIBUTION {
            let v = f.of_summary(summary).map(|us| Value::Time(us * 1e3));
            self.figure(Some(series), main, f, v, Unit::Us);
        }
    }

    /// An rr report's figures: its round-trip distribution and `lost`.
    pub fn rr(&mut self, series: &str, main: bool, r: &RrReport) {
        self.summary(series, main, &r.rtt);
        let lost = Value::Lost {
            lost: r.lost,
            sent: r.sent,
        };
        self.figure(Some(series), main, Figure::Lost, Some(lost), Unit::Us);
    }

    /// Closes the sheet: a limit that bounded no figure at all becomes a failing case
    /// `<configuration>-limit-<key>` (a gate that checked nothing must not pass).
    pub fn finish(mut self) -> Sheet {
        for (l, matched) in self.limits.iter().zip(&self.matched) {
            if !matched {
                let id = case_id(&self.config, Some("limit"), &l.key());
                self.checks.push(Check {
                    case: id.clone(),
                    limit: l.text.clone(),
                    value: None,
                    units: "",
                    result: Outcome::Fail,
                });
                self.cases.push(Case {
                    id,
                    result: Outcome::Fail,
                    measurement: None,
                });
            }
        }
        // Finished twice, it must not add these cases twice.
        self.matched.iter_mut().for_each(|m| *m = true);
        self
    }

    /// The failed checks.
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.result == Outcome::Fail)
    }

    /// `Err` when a limit was exceeded.
    pub fn verdict(&self) -> Result<(), LimitsExceeded> {
        verdict(&self.checks)
    }

    /// The signal lines, one per case.
    pub fn lines(&self) -> String {
        self.cases.iter().map(|c| c.signal() + "\n").collect()
    }
}

/// `Err` when one of `checks` failed.
pub fn verdict(checks: &[Check]) -> Result<(), LimitsExceeded> {
    let mut failed = checks.iter().filter(|c| c.result == Outcome::Fail);
    match failed.next() {
        None => Ok(()),
        Some(first) => Err(LimitsExceeded {
            exceeded: 1 + failed.count(),
            checked: checks.len(),
            first: first.line(),
        }),
    }
}

/// `vmprobe rr`'s cases: configuration `rr`, the protocol as the series.
pub(super) struct LavaExporter;

impl super::Exporter for LavaExporter {
    fn serialize(&self, report: &RrReport) -> io::Result<Vec<u8>> {
        Ok(rr_sheet(report).lines().into_bytes())
    }
}

/// `vmprobe rr`'s cases.
pub fn rr_sheet(report: &RrReport) -> Sheet {
    let mut sheet = Sheet::new("rr", &[]);
    sheet.rr(report.proto.as_str(), true, report);
    sheet.finish()
}

/// `lava-test-case` on `PATH`, if there is one.
pub fn lava_test_case() -> Option<PathBuf> {
    crate::os::find_on_path("lava-test-case")
}

/// Reports `cases` to LAVA: through `lava-test-case` when it is on `PATH` (its output goes
/// where ours does), else as the lines it would print, on `out`.
pub fn emit(cases: &[Case], out: &mut impl Write) -> io::Result<()> {
    let Some(tool) = lava_test_case() else {
        for c in cases {
            writeln!(out, "{}", c.signal())?;
        }
        return out.flush();
    };
    out.flush()?;
    for c in cases {
        let status = Command::new(&tool).args(c.arguments()).status()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "{} {} failed ({status})",
                tool.display(),
                c.arguments().join(" ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_lowercase_url_safe_and_lava_valid() {
        assert_eq!(case_id("tap, irq", Some("udp"), "p99"), "tap-irq-udp-p99");
        assert_eq!(
            case_id("User + Bridge/poll", Some("udp-floor"), "p99.9"),
            "user-bridge-poll-udp-floor-p99.9"
        );
        assert_eq!(case_id("x", None, "boot"), "x-boot");
        let lava_name = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        assert!(lava_name(&case_id("ä ö/ü", Some("mmio-virtio"), "max")));
    }

    #[test]
    fn the_line_is_lava_test_cases_own() {
        let c = Case {
            id: "tap-irq-udp-p99".into(),
            result: Outcome::Pass,
            measurement: Some(("182.5".into(), "us")),
        };
        assert_eq!(
            c.signal(),
            "<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=tap-irq-udp-p99 RESULT=pass MEASUREMENT=182.5 UNITS=us>"
        );
        assert_eq!(
            c.arguments(),
            [
                "tap-irq-udp-p99",
                "--result",
                "pass",
                "--measurement",
                "182.5",
                "--units",
                "us"
            ]
        );
        let c = Case {
            id: "x-run".into(),
            result: Outcome::Fail,
            measurement: None,
        };
        assert_eq!(
            c.signal(),
            "<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=x-run RESULT=fail>"
        );
    }

    #[test]
    fn numbers_are_plain_decimals() {
        assert_eq!(num(182.5), "182.5");
        assert_eq!(num(3.0), "3");
        assert_eq!(num(0.0004), "0");
        assert_eq!(num(1234567.1254), "1234567.125");
    }

    #[test]
    fn limits_decide_the_cases_they_bound() {
        let limits: Vec<Limit> = ["p99=200us", "lost=0", "floor-p99=10us", "residence-p50=1us"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut s = Sheet::new("c", &limits);
        let t = |us: f64| Some(Value::Time(us * 1e3));
        s.figure(Some("udp"), true, Figure::P99, t(250.0), Unit::Us);
        s.figure(Some("tcp"), true, Figure::P99, t(150.0), Unit::Us);
        s.figure(Some("udp-floor"), false, Figure::P99, t(9.0), Unit::Us);
        s.figure(Some("udp"), true, Figure::P50, t(100.0), Unit::Us);
        s.figure(Some("tcp"), true, Figure::Lost, None, Unit::Us);
        s.figure(Some("udp"), true, Figure::Max, None, Unit::Us);
        let s = s.finish();
        let lines = s.lines();
        assert_eq!(
            lines,
            "<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=c-udp-p99 RESULT=fail MEASUREMENT=250 UNITS=us>\n\
             <LAVA_SIGNAL_TESTCASE TEST_CASE_ID=c-tcp-p99 RESULT=pass MEASUREMENT=150 UNITS=us>\n\
             <LAVA_SIGNAL_TESTCASE TEST_CASE_ID=c-udp-floor-p99 RESULT=pass MEASUREMENT=9 UNITS=us>\n\
             <LAVA_SIGNAL_TESTCASE TEST_CASE_ID=c-udp-p50 RESULT=pass MEASUREMENT=100 UNITS=us>\n\
             <LAVA_SIGNAL_TESTCASE TEST_CASE_ID=c-tcp-lost RESULT=fail>\n\
             <LAVA_SIGNAL_TESTCASE TEST_CASE_ID=c-limit-residence-p50 RESULT=fail>\n"
        );
        let failed: Vec<String> = s.failed().map(Check::line).collect();
        assert_eq!(
            failed,
            [
                "c-udp-p99 250 us over p99=200us",
                "c-tcp-lost not measured over lost=0",
                "c-limit-residence-p50 not measured over residence-p50=1us"
            ]
        );
        let e = s.verdict().unwrap_err();
        assert_eq!((e.exceeded, e.checked), (3, 5));
        assert!(Sheet::new("c", &[]).finish().verdict().is_ok());
    }
}
