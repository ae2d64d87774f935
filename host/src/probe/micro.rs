//! `vmprobe micro`: the guest's micro-benchmarks, with per-sample distributions.
//!
//! For each test the host sends a benchmark request to the probe port, waits for the summary,
//! then pulls the raw samples chunk by chunk (a lost chunk costs a retry, never a gap: the
//! guest holds the run until the next one) and computes the distribution itself, checking it
//! against the guest's own summary.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde::Serialize;
use vmprobe_proto::error_reply::Code;
use vmprobe_proto::{
    bench_request, samples, samples_request, BenchTest, CounterKind, Datagram, Message, HEADER_LEN,
};

use crate::stats::nearest_rank;

/// Most samples asked for per chunk: a chunk then fits a 1500-byte MTU datagram.
pub const CHUNK: u16 = samples::capacity(1472 - HEADER_LEN) as u16;
/// Tries per samples chunk.
const CHUNK_TRIES: u32 = 5;

/// Why a micro-benchmark run failed.
#[derive(Debug, thiserror::Error)]
pub enum MicroError {
    /// Socket trouble.
    #[error("probe socket: {0}")]
    Io(#[from] std::io::Error),
    /// No answer in time.
    #[error("{test}: no answer from the guest's probe port within {waited:?} ({what})")]
    Timeout {
        /// The test.
        test: BenchTest,
        /// What was awaited.
        what: &'static str,
        /// How long.
        waited: Duration,
    },
    /// The guest refused.
    #[error("{test}: {code}")]
    Refused {
        /// The test.
        test: BenchTest,
        /// Why.
        code: Code,
    },
    /// The samples disagree with the guest's summary, or the chunks do not fit together.
    #[error("{test}: {what}")]
    Inconsistent {
        /// The test.
        test: BenchTest,
        /// What.
        what: String,
    },
}

/// One test's distribution, in ns of guest counter time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestResult {
    /// Short name (`hypercall`, `mmio-virtio`, ...).
    pub name: &'static str,
    /// What one iteration is.
    pub description: &'static str,
    /// Samples taken.
    pub iterations: u64,
    /// Smallest.
    pub min_ns: f64,
    /// Median (nearest rank).
    pub p50_ns: f64,
    /// 90th percentile.
    pub p90_ns: f64,
    /// 99th percentile.
    pub p99_ns: f64,
    /// Largest.
    pub max_ns: f64,
    /// Mean.
    pub mean_ns: f64,
    /// Counter frequency the samples were taken at (Hz).
    pub cntfrq_hz: u32,
    /// Counter read (`virtual` or `physical`).
    pub counter: &'static str,
    /// One counter tick in ns: the resolution of every number above.
    pub resolution_ns: f64,
}

/// What each test measures, for humans.
pub fn describe(t: BenchTest) -> &'static str {
    match t {
        BenchTest::PsciVersion => "hypercall round trip (PSCI_VERSION over hvc/smc)",
        BenchTest::MmioVirtio => "MMIO read of a virtio register (exit to user space)",
        BenchTest::MmioGicd => "MMIO read of the GIC distributor (in-kernel vGIC under KVM)",
        BenchTest::Eoi => "end-of-interrupt write",
        BenchTest::SelfSgi => "self-SGI: send to taken",
        BenchTest::VtimerLatency => "virtual timer: programmed expiry to handler",
        BenchTest::VirtqueueNotify => "virtqueue notify (QueueNotify write, exit to QEMU/vhost)",
        BenchTest::IpiRoundTrip => "IPI round trip between two vCPUs",
        BenchTest::CounterRead => "two isb-ordered counter reads (timing overhead)",
        BenchTest::Lpi => "LPI: ITS INT command to handler (GICv3 ITS, virtio-pci, irq mode)",
    }
}

/// The default test list for a guest with `smp` vCPUs: every test, the IPI only with two.
pub fn default_tests(smp: u32) -> Vec<BenchTest> {
    BenchTest::ALL
        .into_iter()
        .filter(|t| *t != BenchTest::IpiRoundTrip || smp >= 2)
        .collect()
}

/// Talks to one guest's probe port.
#[derive(Debug)]
pub struct MicroClient {
    socket: UdpSocket,
    seq: u32,
    /// How long a benchmark may run before its result is given up on.
    pub bench_timeout: Duration,
    /// How long one samples chunk is awaited before it is asked for again.
    pub chunk_timeout: Duration,
}

impl MicroClient {
    /// A client for the probe service at `target`.
    pub fn connect(target: SocketAddr) -> std::io::Result<Self> {
        let local: SocketAddr = if target.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(target)?;
        Ok(MicroClient {
            socket,
            seq: 0,
            bench_timeout: Duration::from_secs(120),
            chunk_timeout: Duration::from_secs(2),
        })
    }

    /// Sends `message` and waits up to `timeout` for the reply with its sequence number,
    /// handing it to `take`. Other datagrams (late replies, strays) are skipped.
    fn exchange<T>(
        &mut self,
        message: Message<'_>,
        timeout: Duration,
        mut take: impl FnMut(Message<'_>) -> T,
    ) -> std::io::Result<Option<T>> {
        self.seq = self.seq.wrapping_add(1);
        let d = Datagram {
            sequence: self.seq,
            flags: 0,
            message,
        };
        let mut buf = vec![0u8; 65_536];
        let n = d
            .emit(&mut buf)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.socket.send(&buf[..n])?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket.set_read_timeout(Some(left))?;
            let n = match self.socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            };
            if let Ok(reply) = Datagram::parse(&buf[..n]) {
                if reply.sequence == self.seq {
                    return Ok(Some(take(reply.message)));
                }
            }
        }
    }

    /// Runs `test` for `iterations` and returns its distribution.
    pub fn run(&mut self, test: BenchTest, iterations: u32) -> Result<TestResult, MicroError> {
        let request = Message::BenchRequest(bench_request::Repr {
            test,
            iterations,
            param: 0,
        });
        let answer = self
            .exchange(request, self.bench_timeout, |m| match m {
                Message::BenchResult(r) => Ok(r),
                Message::Error(e) => Err(Some(e.code)),
                _ => Err(None),
            })?
            .ok_or(MicroError::Timeout {
                test,
                what: "benchmark result",
                waited: self.bench_timeout,
            })?;
        let result = match answer {
            Ok(r) => r,
            Err(Some(code)) => return Err(MicroError::Refused { test, code }),
            Err(None) => {
                return Err(MicroError::Inconsistent {
                    test,
                    what: "the guest answered a benchmark request with another message".into(),
                })
            }
        };
        if result.test != test {
            return Err(MicroError::Inconsistent {
                test,
                what: format!("the guest ran {} instead", result.test),
            });
        }
        let total = result.summary.count;
        let mut samples = Vec::with_capacity(total as usize);
        while (samples.len() as u32) < total {
            let offset = samples.len() as u32;
            let ask = Message::SamplesRequest(samples_request::Repr {
                run_id: result.run_id,
                offset,
                count: CHUNK,
            });
            let mut got = None;
            for _ in 0..CHUNK_TRIES {
                got = self.exchange(ask, self.chunk_timeout, |m| match m {
                    Message::Samples(s) if s.run_id == result.run_id && s.offset == offset => {
                        Ok(s.samples.iter().collect::<Vec<u64>>())
                    }
                    Message::Error(e) => Err(Some(e.code)),
                    _ => Err(None),
                })?;
                if got.is_some() {
                    break;
                }
            }
            match got {
                None => {
                    return Err(MicroError::Timeout {
                        test,
                        what: "raw samples",
                        waited: self.chunk_timeout * CHUNK_TRIES,
                    })
                }
                Some(Err(Some(code))) => return Err(MicroError::Refused { test, code }),
                Some(Err(None)) => {
                    return Err(MicroError::Inconsistent {
                        test,
                        what: "unexpected answer to a samples request".into(),
                    })
                }
                Some(Ok(chunk)) if chunk.is_empty() => {
                    return Err(MicroError::Inconsistent {
                        test,
                        what: format!("the guest sent no samples at offset {offset} of {total}"),
                    })
                }
                Some(Ok(chunk)) => samples.extend(chunk),
            }
        }
        samples.truncate(total as usize);
        let r = distribution(test, &samples, result.cntfrq_hz, result.counter)?;
        let s = result.summary;
        if total > 0
            && (
                to_ns(s.min, result.cntfrq_hz),
                to_ns(s.max, result.cntfrq_hz),
            ) != (r.min_ns, r.max_ns)
        {
            return Err(MicroError::Inconsistent {
                test,
                what: "the raw samples disagree with the guest's summary".into(),
            });
        }
        Ok(r)
    }

    /// Asks the guest to power off (the VM exits); `true` when it acknowledged.
    pub fn power_off(&mut self) -> std::io::Result<bool> {
        let ack = self.exchange(Message::PowerOff, self.chunk_timeout, |m| {
            matches!(m, Message::PowerOffAck)
        })?;
        Ok(ack == Some(true))
    }
}

fn to_ns(ticks: u64, hz: u32) -> f64 {
    ticks as f64 * 1e9 / f64::from(hz.max(1))
}

/// The distribution of `samples` (ticks at `hz`), nearest-rank percentiles.
pub fn distribution(
    test: BenchTest,
    samples: &[u64],
    hz: u32,
    counter: CounterKind,
) -> Result<TestResult, MicroError> {
    if samples.is_empty() {
        return Err(MicroError::Inconsistent {
            test,
            what: "the guest took no samples".into(),
        });
    }
    if hz == 0 {
        return Err(MicroError::Inconsistent {
            test,
            what: "the guest reports a 0 Hz counter".into(),
        });
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = |q: f64| {
        to_ns(
            sorted[nearest_rank(q, sorted.len() as u64) as usize - 1],
            hz,
        )
    };
    let sum: u128 = sorted.iter().map(|&s| u128::from(s)).sum();
    Ok(TestResult {
        name: test.name(),
        description: describe(test),
        iterations: sorted.len() as u64,
        min_ns: to_ns(sorted[0], hz),
        p50_ns: rank(0.5),
        p90_ns: rank(0.9),
        p99_ns: rank(0.99),
        max_ns: to_ns(sorted[sorted.len() - 1], hz),
        mean_ns: sum as f64 / sorted.len() as f64 * 1e9 / f64::from(hz),
        cntfrq_hz: hz,
        counter: counter.name(),
        resolution_ns: 1e9 / f64::from(hz),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_is_nearest_rank_in_ns() {
        let samples: Vec<u64> = (1..=100).rev().collect();
        let r = distribution(BenchTest::Eoi, &samples, 100_000_000, CounterKind::Virtual).unwrap();
        assert_eq!((r.min_ns, r.p50_ns, r.p90_ns), (10.0, 500.0, 900.0));
        assert_eq!((r.p99_ns, r.max_ns, r.mean_ns), (990.0, 1000.0, 505.0));
        assert_eq!(r.iterations, 100);
        assert!(distribution(BenchTest::Eoi, &[], 1, CounterKind::Virtual).is_err());
    }

    #[test]
    fn ipi_needs_two_vcpus() {
        assert!(!default_tests(1).contains(&BenchTest::IpiRoundTrip));
        assert!(default_tests(2).contains(&BenchTest::IpiRoundTrip));
        assert_eq!(default_tests(2).len(), BenchTest::ALL.len());
    }

    #[test]
    fn a_chunk_fits_one_datagram() {
        let bytes = HEADER_LEN + samples::FIXED_LEN + CHUNK as usize * samples::SAMPLE_LEN;
        assert!(bytes <= 1472, "{bytes}");
    }
}
