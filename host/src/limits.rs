//! Figures and limits: the one list of figures vmprobe reports per series (min, mean, p50,
//! p99, p99.9, max, lost; boot per configuration), and `--limit KEY=VALUE` bounds on them,
//! which turn a measurement into a pass/fail gate.
//!
//! A limit's key is a figure, optionally led by a scope: `p99=200us` bounds the p99 of every
//! main series (each protocol's round trip, each micro-benchmark), `udp-p99=150us` only UDP's,
//! `floor-p99` the host floor's, `residence-p99` the guest residence's, `hypercall-p99` one
//! micro-benchmark's. Times take the duration grammar (`200us`, `1.5ms`); `lost` takes a count
//! (`lost=0`) or a share of the transactions sent (`lost=0.1%`). A figure above its bound
//! (strictly) fails; a bounded figure with no value (nothing measured) fails too.
use std::fmt;
use std::str::FromStr;

use crate::duration::parse_duration_ns;

/// A reported figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// Smallest sample.
    Min,
    /// Arithmetic mean.
    Mean,
    /// Median.
    P50,
    /// 99th percentile.
    P99,
    /// 99.9th percentile.
    P999,
    /// Largest sample.
    Max,
    /// Transactions without a reply.
    Lost,
    /// QEMU start to the guest's ready line.
    Boot,
}

impl Figure {
    /// Every figure, in report order.
    pub const ALL: [Figure; 8] = [
        Figure::Min,
        Figure::Mean,
        Figure::P50,
        Figure::P99,
        Figure::P999,
        Figure::Max,
        Figure::Lost,
        Figure::Boot,
    ];

    /// The figures of a latency distribution, in report order.
    pub const DISTRIBUTION: [Figure; 6] = [
        Figure::Min,
        Figure::Mean,
        Figure::P50,
        Figure::P99,
        Figure::P999,
        Figure::Max,
    ];

    /// The name in limit keys and test case ids.
    pub fn name(self) -> &'static str {
        match self {
            Figure::Min => "min",
            Figure::Mean => "mean",
            Figure::P50 => "p50",
            Figure::P99 => "p99",
            Figure::P999 => "p99.9",
            Figure::Max => "max",
            Figure::Lost => "lost",
            Figure::Boot => "boot",
        }
    }

    /// The figure called `name`.
    pub fn from_name(name: &str) -> Option<Figure> {
        Figure::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The value of this figure in a distribution summary, microseconds.
    pub fn of_summary(self, s: &crate::stats::Summary) -> Option<f64> {
        match self {
            Figure::Min => s.min_us,
            Figure::Mean => s.mean_us,
            Figure::P50 => s.p50_us,
            Figure::P99 => s.p99_us,
            Figure::P999 => s.p999_us,
            Figure::Max => s.max_us,
            Figure::Lost | Figure::Boot => None,
        }
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A measured value of a figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A time in nanoseconds.
    Time(f64),
    /// Transactions lost of those sent.
    Lost {
        /// Lost.
        lost: u64,
        /// Sent (answered + lost).
        sent: u64,
    },
}

/// What a limit bounds a figure by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// At most this many nanoseconds.
    Time(u64),
    /// At most this many transactions.
    Count(u64),
    /// At most this percentage of the transactions sent.
    Percent(f64),
}

/// Why a `--limit` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--limit {text}: {reason}")]
pub struct LimitError {
    /// The limit as given.
    pub text: String,
    /// What is wrong.
    pub reason: String,
}

/// One `KEY=VALUE` limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// The series it bounds (`udp`, `floor`, `hypercall`, ...); `None`: every main series.
    pub scope: Option<String>,
    /// The figure it bounds.
    pub figure: Figure,
    /// The bound.
    pub bound: Bound,
    /// As given, e.g. `p99=200us`.
    pub text: String,
}

impl FromStr for Limit {
    type Err = LimitError;

    fn from_str(text: &str) -> Result<Limit, LimitError> {
        let text = text.trim();
        let err = |reason: String| LimitError {
            text: text.to_string(),
            reason,
        };
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| err("expected FIGURE=VALUE, e.g. p99=200us or lost=0".into()))?;
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        let (scope, figure) = match key.rsplit_once('-') {
            Some((s, f)) => (Some(s.to_string()), f),
            None => (None, key.as_str()),
        };
        let figure = Figure::from_name(figure).ok_or_else(|| {
            let names: Vec<&str> = Figure::ALL.iter().map(|f| f.name()).collect();
            err(format!(
                "unknown figure '{figure}' (one of {}, optionally led by a series: udp-p99)",
                names.join(", ")
            ))
        })?;
        if figure == Figure::Boot && scope.is_some() {
            return Err(err("boot is per configuration: boot=VALUE".into()));
        }
        let bound = if figure == Figure::Lost {
            match value.strip_suffix('%') {
                Some(p) => {
                    let p: f64 = p.trim().parse().map_err(|_| {
                        err(format!("'{value}' is not a percentage (e.g. 0.1%)"))
                    })?;
                    if !(0.0..=100.0).contains(&p) {
                        return Err(err(format!("'{value}' is not between 0% and 100%")));
                    }
                    Bound::Percent(p)
                }
                None => Bound::Count(value.parse().map_err(|_| {
                    err(format!(
                        "lost is a count of transactions or a share of them: lost=0 or lost=0.1%, not '{value}'"
                    ))
                })?),
            }
        } else {
            Bound::Time(parse_duration_ns(value).map_err(|e| err(e.to_string()))?)
        };
        Ok(Limit {
            scope,
            figure,
            bound,
            text: format!("{key}={value}"),
        })
    }
}

impl Limit {
    /// The key (`udp-p99`), which identifies the limit: a later limit with the same key
    /// replaces an earlier one.
    pub fn key(&self) -> String {
        match &self.scope {
            Some(s) => format!("{s}-{}", self.figure),
            None => self.figure.to_string(),
        }
    }

    /// Whether it bounds `figure` of the series `series` (`None` for a configuration's own
    /// figures); `main` tells whether the series is a main one (a round trip, a
    /// micro-benchmark) rather than a reference (the floor) or a part (the residence).
    pub fn applies(&self, series: Option<&str>, main: bool, figure: Figure) -> bool {
        if figure != self.figure {
            return false;
        }
        match (&self.scope, series) {
            (None, None) => true,
            (None, Some(_)) => main,
            (Some(_), None) => false,
            (Some(s), Some(name)) => name == s || name.ends_with(&format!("-{s}")),
        }
    }

    /// Whether `value` is over the bound; a missing value is over it (nothing proves the
    /// bound held).
    pub fn exceeded_by(&self, value: Option<Value>) -> bool {
        match (value, self.bound) {
            (Some(Value::Time(ns)), Bound::Time(b)) => ns > b as f64,
            (Some(Value::Lost { lost, .. }), Bound::Count(b)) => lost > b,
            (Some(Value::Lost { lost, sent }), Bound::Percent(p)) => {
                sent == 0 || lost as f64 * 100.0 > p * sent as f64
            }
            _ => true,
        }
    }

    /// Refuses a scope outside `scopes` (the series the command measures), naming them.
    pub fn check_scope(&self, scopes: &[&str]) -> Result<(), LimitError> {
        match &self.scope {
            Some(s) if !scopes.contains(&s.as_str()) => Err(LimitError {
                text: self.text.clone(),
                reason: format!(
                    "no series '{s}' here (one of {}, or none for every main series)",
                    scopes.join(", ")
                ),
            }),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Limits with one per key, the last given winning (a matrix file's default, then the
/// configuration's own, then the command line's).
pub fn merge(limits: impl IntoIterator<Item = Limit>) -> Vec<Limit> {
    let mut out: Vec<Limit> = Vec::new();
    for l in limits {
        match out.iter_mut().find(|o| o.key() == l.key()) {
            Some(o) => *o = l,
            None => out.push(l),
        }
    }
    out
}

/// Limits were exceeded: the process exits with [`LimitsExceeded::EXIT_CODE`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("{exceeded} of {checked} limited figures over their limit: {first}")]
pub struct LimitsExceeded {
    /// Failed checks.
    pub exceeded: usize,
    /// All checks.
    pub checked: usize,
    /// The first failure, e.g. `user-irq-udp-p99 250.1 us > p99=200us`.
    pub first: String,
}

impl LimitsExceeded {
    /// The exit status of a run whose measurement went through but exceeded a limit
    /// (1 stays "could not measure", 2 "bad command line").
    pub const EXIT_CODE: u8 = 3;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(s: &str) -> Limit {
        s.parse().unwrap()
    }

    #[test]
    fn keys_figures_and_units() {
        let l = limit("p99=200us");
        assert_eq!(
            (l.scope, l.figure, l.bound),
            (None, Figure::P99, Bound::Time(200_000))
        );
        let l = limit("UDP-p99.9 = 1.5ms");
        assert_eq!(
            (l.scope.as_deref(), l.figure, l.bound),
            (Some("udp"), Figure::P999, Bound::Time(1_500_000))
        );
        assert_eq!(l.key(), "udp-p99.9");
        assert_eq!(l.text, "udp-p99.9=1.5ms");
        assert_eq!(limit("lost=0").bound, Bound::Count(0));
        assert_eq!(limit("lost=0.5%").bound, Bound::Percent(0.5));
        let l = limit("mmio-virtio-p50=2us");
        assert_eq!(l.scope.as_deref(), Some("mmio-virtio"));
        assert_eq!(limit("boot=2s").bound, Bound::Time(2_000_000_000));
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let e = |s: &str| s.parse::<Limit>().unwrap_err().to_string();
        assert!(e("p99").contains("expected FIGURE=VALUE"), "{}", e("p99"));
        assert!(e("p98=1ms").contains("unknown figure 'p98'"));
        assert!(e("p99=200").contains("duration '200' has no unit"));
        assert!(e("p99=200parsecs").contains("unknown unit"));
        assert!(e("lost=1ms").contains("lost is a count"));
        assert!(e("lost=120%").contains("between 0% and 100%"));
        assert!(e("udp-boot=1s").contains("per configuration"));
        assert!(e("p99=200").starts_with("--limit p99=200: "));
        let l = limit("sctp-p99=1ms");
        let m = l.check_scope(&["udp", "tcp"]).unwrap_err().to_string();
        assert!(
            m.contains("no series 'sctp'") && m.contains("udp, tcp"),
            "{m}"
        );
        assert!(limit("p99=1ms").check_scope(&[]).is_ok());
    }

    #[test]
    fn scopes_select_series() {
        let all = limit("p99=1ms");
        assert!(all.applies(Some("udp"), true, Figure::P99));
        assert!(!all.applies(Some("udp-floor"), false, Figure::P99));
        assert!(!all.applies(Some("udp"), true, Figure::P50));
        let floor = limit("floor-p99=1ms");
        assert!(floor.applies(Some("udp-floor"), false, Figure::P99));
        assert!(floor.applies(Some("tcp-floor"), false, Figure::P99));
        assert!(!floor.applies(Some("udp"), true, Figure::P99));
        let udp = limit("udp-p99=1ms");
        assert!(udp.applies(Some("udp"), true, Figure::P99));
        assert!(!udp.applies(Some("udp-floor"), false, Figure::P99));
        assert!(limit("boot=1s").applies(None, false, Figure::Boot));
    }

    #[test]
    fn bounds_are_inclusive_and_missing_values_fail() {
        let l = limit("p99=200us");
        assert!(!l.exceeded_by(Some(Value::Time(200_000.0))));
        assert!(l.exceeded_by(Some(Value::Time(200_000.5))));
        assert!(l.exceeded_by(None));
        let lost = |lost, sent| Some(Value::Lost { lost, sent });
        assert!(!limit("lost=0").exceeded_by(lost(0, 10)));
        assert!(limit("lost=0").exceeded_by(lost(1, 10)));
        assert!(!limit("lost=10%").exceeded_by(lost(1, 10)));
        assert!(limit("lost=9.9%").exceeded_by(lost(1, 10)));
        assert!(limit("lost=0%").exceeded_by(lost(0, 0)));
    }

    #[test]
    fn later_limits_replace_earlier_ones_with_the_same_key() {
        let m = merge(["p99=1ms", "lost=0", "udp-p99=2ms", "p99=3ms"].map(limit));
        let t: Vec<&str> = m.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(t, ["p99=3ms", "lost=0", "udp-p99=2ms"]);
    }
}
