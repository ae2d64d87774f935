//! The validated description of an `rr` run, independent of the command line.
use std::path::PathBuf;
use std::time::Duration;

use super::engine::Limit;
use super::error::RrError;
use super::pacing::Pacing;

/// Largest UDP payload over IPv4.
pub const MAX_UDP_SIZE: usize = 65_507;
/// Largest TCP request accepted (a sanity bound, not a protocol one).
pub const MAX_TCP_SIZE: usize = 16 << 20;

pub use crate::proto::Proto;

/// Everything an `rr` run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct RrOptions {
    /// The echo target as given, `HOST:PORT`.
    pub target: String,
    /// UDP or TCP.
    pub proto: Proto,
    /// When the measured phase ends.
    pub limit: Limit,
    /// Paced starts (`--interval`, `--burst`), or back to back.
    pub pacing: Option<Pacing>,
    /// Request and reply size in bytes.
    pub size: usize,
    /// Unmeasured transactions first.
    pub warmup: u64,
    /// When a transaction is declared lost.
    pub timeout: Duration,
    /// Pin the measuring thread to this CPU; `None` keeps it off cpu0 when there are others.
    pub cpu: Option<usize>,
    /// Spin on a non-blocking socket instead of sleeping in `recv`.
    pub busy_poll: bool,
    /// How many of the largest samples to report.
    pub outliers: usize,
    /// Per-sample CSV log.
    pub log: Option<PathBuf>,
    /// HdrHistogram log of the RTT histogram.
    pub hist: Option<PathBuf>,
}

impl RrOptions {
    /// The defaults: UDP, 10 s, back to back, 64 bytes, 10 warm-up transactions, 1 s timeout.
    pub fn new(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            proto: Proto::Udp,
            limit: Limit::Duration(Duration::from_secs(10)),
            pacing: None,
            size: 64,
            warmup: 10,
            timeout: Duration::from_secs(1),
            cpu: None,
            busy_poll: false,
            outliers: 10,
            log: None,
            hist: None,
        }
    }

    /// Checks the combination of values.
    pub fn validate(&self) -> Result<(), RrError> {
        let bad = |m: String| Err(RrError::Options(m));
        let max = match self.proto {
            Proto::Udp => MAX_UDP_SIZE,
            Proto::Tcp => MAX_TCP_SIZE,
        };
        if self.size == 0 || self.size > max {
            return bad(format!(
                "--size must be between 1 and {max} bytes for {}, not {}",
                self.proto, self.size
            ));
        }
        match self.limit {
            Limit::Count(0) => return bad("--count must be at least 1".into()),
            Limit::Duration(d) if d.is_zero() => {
                return bad("--duration must be longer than 0".into())
            }
            _ => {}
        }
        if let Some(p) = self.pacing {
            if p.interval.is_zero() {
                return bad("--interval must be longer than 0".into());
            }
            if p.burst == 0 {
                return bad("--burst must be at least 1".into());
            }
        }
        if self.timeout.is_zero() {
            return bad("--timeout must be longer than 0".into());
        }
        if self.timeout > Duration::from_secs(3600) {
            return bad("--timeout must be at most 1h".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        RrOptions::new("127.0.0.1:7").validate().unwrap();
    }

    #[test]
    fn refusals() {
        let base = RrOptions::new("x:1");
        let cases = [
            RrOptions {
                size: 0,
                ..base.clone()
            },
            RrOptions {
                size: MAX_UDP_SIZE + 1,
                ..base.clone()
            },
            RrOptions {
                limit: Limit::Count(0),
                ..base.clone()
            },
            RrOptions {
                limit: Limit::Duration(Duration::ZERO),
                ..base.clone()
            },
            RrOptions {
                timeout: Duration::ZERO,
                ..base.clone()
            },
            RrOptions {
                pacing: Some(Pacing {
                    interval: Duration::ZERO,
                    burst: 1,
                }),
                ..base.clone()
            },
            RrOptions {
                pacing: Some(Pacing {
                    interval: Duration::from_millis(1),
                    burst: 0,
                }),
                ..base.clone()
            },
        ];
        for c in cases {
            assert!(matches!(c.validate(), Err(RrError::Options(_))), "{c:?}");
        }
        RrOptions {
            size: MAX_UDP_SIZE + 1,
            proto: Proto::Tcp,
            ..base
        }
        .validate()
        .unwrap();
    }
}
