//! The micro-benchmark catalogue and the summary of a run's samples.
//!
//! The ids are the wire format and never change meaning; new tests get new ids. Each sample is
//! the cost of one iteration in guest counter ticks, measured with `isb`-ordered counter reads.

/// A guest micro-benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum BenchTest {
    /// Hypercall round trip: `PSCI_VERSION` over the conduit the DTB names (`hvc` or `smc`).
    PsciVersion = 1,
    /// MMIO read of a virtio-mmio register: an exit to user space (QEMU).
    MmioVirtio = 2,
    /// MMIO read of the GIC distributor: handled by the in-kernel vGIC under KVM.
    MmioGicd = 3,
    /// End of interrupt: the EOI write for an acknowledged interrupt.
    Eoi = 4,
    /// Self-SGI: from sending a software-generated interrupt to oneself until it is taken.
    SelfSgi = 5,
    /// Virtual timer interrupt latency: from the programmed expiry until the handler runs.
    /// `param`: timer delay in ticks (0: the guest's default).
    VtimerLatency = 6,
    /// Virtqueue notify: the `QueueNotify` write, an exit to QEMU or vhost.
    VirtqueueNotify = 7,
    /// IPI round trip between two vCPUs (second vCPU started by PSCI `CPU_ON`).
    /// `param`: target CPU index (0: the first secondary).
    IpiRoundTrip = 8,
    /// Baseline: two back-to-back `isb`-ordered counter reads, the timing overhead every other
    /// sample contains.
    CounterRead = 9,
    /// LPI delivery through the GICv3 ITS: from queueing an ITS `INT` command for one of the
    /// guest's events until the LPI's handler runs. Needs an ITS in use (virtio-pci, GICv3,
    /// IRQ mode).
    Lpi = 10,
}

impl BenchTest {
    /// Every test, in id order.
    pub const ALL: [BenchTest; 10] = [
        BenchTest::PsciVersion,
        BenchTest::MmioVirtio,
        BenchTest::MmioGicd,
        BenchTest::Eoi,
        BenchTest::SelfSgi,
        BenchTest::VtimerLatency,
        BenchTest::VirtqueueNotify,
        BenchTest::IpiRoundTrip,
        BenchTest::CounterRead,
        BenchTest::Lpi,
    ];

    /// The test with wire id `id`, if there is one.
    pub fn from_id(id: u16) -> Option<BenchTest> {
        BenchTest::ALL.into_iter().find(|t| t.id() == id)
    }

    /// The stable wire id.
    pub fn id(self) -> u16 {
        self as u16
    }

    /// Stable short name, as used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            BenchTest::PsciVersion => "hypercall",
            BenchTest::MmioVirtio => "mmio-virtio",
            BenchTest::MmioGicd => "mmio-gicd",
            BenchTest::Eoi => "eoi",
            BenchTest::SelfSgi => "self-sgi",
            BenchTest::VtimerLatency => "vtimer",
            BenchTest::VirtqueueNotify => "vq-notify",
            BenchTest::IpiRoundTrip => "ipi",
            BenchTest::CounterRead => "counter-read",
            BenchTest::Lpi => "lpi",
        }
    }

    /// The test with short name `name`, if there is one.
    pub fn from_name(name: &str) -> Option<BenchTest> {
        BenchTest::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl core::fmt::Display for BenchTest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Summary of a run's samples, in counter ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct Summary {
    /// Number of samples.
    pub count: u32,
    /// Smallest sample.
    pub min: u64,
    /// Median (nearest rank).
    pub p50: u64,
    /// 99th percentile (nearest rank).
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
    /// Sum of all samples (saturating), for the mean.
    pub sum: u64,
}

impl Summary {
    /// Summarise samples without reordering or copying them (the raw order is kept for the
    /// host). Percentiles are nearest-rank, found by bisecting the value range, O(n log range).
    /// Returns `None` for no samples or more than `u32::MAX` of them.
    pub fn of(samples: &[u64]) -> Option<Summary> {
        let count = u32::try_from(samples.len()).ok().filter(|&n| n > 0)?;
        let (mut min, mut max, mut sum) = (u64::MAX, 0u64, 0u64);
        for &s in samples {
            min = min.min(s);
            max = max.max(s);
            sum = sum.saturating_add(s);
        }
        Some(Summary {
            count,
            min,
            p50: nearest_rank(samples, min, max, 50),
            p99: nearest_rank(samples, min, max, 99),
            max,
            sum,
        })
    }

    /// Mean in ticks.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.sum as f64 / self.count as f64
    }
}

/// The smallest sample `v` with at least `ceil(pct * n / 100)` samples `<= v`.
fn nearest_rank(samples: &[u64], min: u64, max: u64, pct: u64) -> u64 {
    let n = samples.len() as u64;
    let rank = (pct * n).div_ceil(100).max(1);
    let (mut lo, mut hi) = (min, max);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let at_most = samples.iter().filter(|&&s| s <= mid).count() as u64;
        if at_most >= rank {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn ids_and_names_are_unique_and_round_trip() {
        for (i, t) in BenchTest::ALL.iter().enumerate() {
            assert_eq!(BenchTest::from_id(t.id()), Some(*t));
            assert_eq!(BenchTest::from_name(t.name()), Some(*t));
            assert!(BenchTest::ALL[..i].iter().all(|u| u.name() != t.name()));
        }
        assert_eq!(BenchTest::from_id(0), None);
        assert_eq!(BenchTest::from_name("nope"), None);
    }

    #[test]
    fn summary_matches_sorting() {
        let samples: [u64; 10] = [50, 10, 40, 1000, 20, 30, 70, 60, 90, 80];
        let s = Summary::of(&samples).unwrap();
        // sorted: 10 20 30 40 50 60 70 80 90 1000; rank(50%) = 5, rank(99%) = 10
        assert_eq!(
            s,
            Summary {
                count: 10,
                min: 10,
                p50: 50,
                p99: 1000,
                max: 1000,
                sum: 1450
            }
        );
        assert_eq!(s.mean(), 145.0);
        assert_eq!(Summary::of(&[]), None);
        let one = Summary::of(&[7]).unwrap();
        assert_eq!((one.min, one.p50, one.p99, one.max), (7, 7, 7, 7));
    }

    #[test]
    fn summary_of_equal_and_extreme_values() {
        let s = Summary::of(&[u64::MAX, 0, u64::MAX]).unwrap();
        assert_eq!(
            (s.min, s.p50, s.p99, s.max, s.sum),
            (0, u64::MAX, u64::MAX, u64::MAX, u64::MAX)
        );
    }
}
