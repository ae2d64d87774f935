//! KVM's PTP service, the one Linux's `ptp_kvm` uses: one hypervisor call returns the host's
//! CLOCK_REALTIME and the guest's own counter at the same instant, so the host can map guest
//! counter readings onto its clocks exactly, without sharing its counter.
//!
//! Discovery, as Linux does it, over the SMCCC conduit (the PSCI one): PSCI must list
//! `SMCCC_VERSION` (asking an unknown function of a conduit nobody answers would trap), SMCCC
//! must be at least 1.1, the vendor hypervisor service's UID must be KVM's and its feature
//! bitmap must have the PTP bit. Generic over the [`Conduit`], so it is tested with a fake.

use vmprobe_proto::clock_reply::{Absence, Reading};
use vmprobe_proto::CounterKind;

/// A way to make SMC32 calls (HVC or SMC on the probe, a fake in tests): function id and
/// w1..w3 in, w0..w3 out.
pub trait Conduit {
    /// Makes the call.
    fn call(&mut self, function: u32, args: [u32; 3]) -> [u32; 4];
}

/// `PSCI_FEATURES`.
pub const PSCI_FEATURES: u32 = 0x8400_000a;
/// `SMCCC_VERSION`.
pub const SMCCC_VERSION: u32 = 0x8000_0000;
/// `ARM_SMCCC_VENDOR_HYP_CALL_UID`.
pub const VENDOR_HYP_CALL_UID: u32 = 0x8600_ff01;
/// `ARM_SMCCC_VENDOR_HYP_KVM_FEATURES`.
pub const VENDOR_HYP_KVM_FEATURES: u32 = 0x8600_0000;
/// `ARM_SMCCC_VENDOR_HYP_KVM_PTP`.
pub const VENDOR_HYP_KVM_PTP: u32 = 0x8600_0001;
/// KVM's vendor hypervisor UID 28b46fb6-2ec5-11e9-a9ca-4b564d003a74, as w0..w3 return it.
pub const KVM_UID: [u32; 4] = [0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d];
/// Bit of the PTP service in `VENDOR_HYP_KVM_FEATURES`' w0.
const FEATURE_PTP: u32 = 1 << 1;
/// SMCCC's `NOT_SUPPORTED` (-1).
const NOT_SUPPORTED: u32 = u32::MAX;

/// Why the service cannot be used; the text is what the probe prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Absent {
    /// No PSCI conduit in the device tree, so no SMCCC either.
    #[error("no PSCI conduit")]
    NoConduit,
    /// The probe entered at EL2: there is no hypervisor below it to ask.
    #[error("the probe owns EL2: no hypervisor")]
    OwnsEl2,
    /// PSCI does not list `SMCCC_VERSION`: SMCCC 1.0, no vendor hypervisor calls.
    #[error("PSCI has no SMCCC_VERSION (SMCCC 1.0)")]
    NoSmcccVersion,
    /// SMCCC older than 1.1.
    #[error("SMCCC {major}.{minor} is older than 1.1")]
    OldSmccc {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// The vendor hypervisor service is not KVM's (another hypervisor, or none).
    #[error("the hypervisor is not KVM (vendor UID {0:08x})")]
    NotKvm(u32),
    /// KVM without the PTP service (older than Linux 5.12, or turned off).
    #[error("KVM offers no PTP service (features {0:#x})")]
    NoPtp(u32),
}

impl Absent {
    /// The reason's code on the wire (its detail numbers stay on the console).
    pub fn code(self) -> Absence {
        match self {
            Absent::NoConduit => Absence::NoConduit,
            Absent::OwnsEl2 => Absence::OwnsEl2,
            Absent::NoSmcccVersion => Absence::NoSmcccVersion,
            Absent::OldSmccc { .. } => Absence::OldSmccc,
            Absent::NotKvm(_) => Absence::NotKvm,
            Absent::NoPtp(_) => Absence::NoPtp,
        }
    }
}

/// The service, found to be there.
pub struct KvmPtp<C> {
    conduit: C,
}

impl<C: Conduit> KvmPtp<C> {
    /// Looks for the service over `conduit`.
    pub fn discover(mut conduit: C) -> Result<Self, Absent> {
        let [features, ..] = conduit.call(PSCI_FEATURES, [SMCCC_VERSION, 0, 0]);
        if features as i32 <= -1 {
            return Err(Absent::NoSmcccVersion);
        }
        let [version, ..] = conduit.call(SMCCC_VERSION, [0; 3]);
        let (major, minor) = ((version >> 16) as u16, version as u16);
        if version as i32 <= -1 || version < 0x1_0001 {
            return Err(Absent::OldSmccc { major, minor });
        }
        let uid = conduit.call(VENDOR_HYP_CALL_UID, [0; 3]);
        if uid != KVM_UID {
            return Err(Absent::NotKvm(uid[0]));
        }
        let [features, ..] = conduit.call(VENDOR_HYP_KVM_FEATURES, [0; 3]);
        if features == NOT_SUPPORTED || features & FEATURE_PTP == 0 {
            return Err(Absent::NoPtp(features));
        }
        Ok(KvmPtp { conduit })
    }

    /// One reading against `counter` (w1 = 0: virtual, 1: physical); `None` if the hypervisor
    /// refused it.
    pub fn read(&mut self, counter: CounterKind) -> Option<Reading> {
        let which = match counter {
            CounterKind::Virtual => 0,
            CounterKind::Physical => 1,
        };
        let [a0, a1, a2, a3] = self.conduit.call(VENDOR_HYP_KVM_PTP, [which, 0, 0]);
        if a0 == NOT_SUPPORTED {
            return None;
        }
        Some(Reading {
            realtime_ns: u64::from(a0) << 32 | u64::from(a1),
            counter: u64::from(a2) << 32 | u64::from(a3),
        })
    }

    /// Fills `readings` one after the other.
    pub fn fill(&mut self, counter: CounterKind, readings: &mut [Reading]) -> Result<(), Absence> {
        for r in readings {
            *r = self.read(counter).ok_or(Absence::Refused)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// A hypervisor answering from a table; unknown functions get NOT_SUPPORTED. Records calls.
    struct Fake {
        answers: Vec<(u32, [u32; 4])>,
        calls: Vec<(u32, [u32; 3])>,
    }

    impl Conduit for &mut Fake {
        fn call(&mut self, function: u32, args: [u32; 3]) -> [u32; 4] {
            self.calls.push((function, args));
            self.answers
                .iter()
                .find(|(f, _)| *f == function)
                .map_or([NOT_SUPPORTED, 0, 0, 0], |(_, a)| *a)
        }
    }

    fn kvm() -> Fake {
        Fake {
            answers: std::vec![
                (PSCI_FEATURES, [0, 0, 0, 0]),
                (SMCCC_VERSION, [0x1_0001, 0, 0, 0]),
                (VENDOR_HYP_CALL_UID, KVM_UID),
                (VENDOR_HYP_KVM_FEATURES, [0b11, 0, 0, 0]),
                // 2021-01-01T00:00:00.123456789Z and counter 0x1_2345_6789.
                (
                    VENDOR_HYP_KVM_PTP,
                    [0x1655_f29d, 0x7fd7_cd15, 0x1, 0x2345_6789]
                ),
            ],
            calls: Vec::new(),
        }
    }

    #[test]
    fn kvm_with_ptp_is_found_and_read() {
        let mut fake = kvm();
        let mut ptp = KvmPtp::discover(&mut fake).unwrap();
        let sample = ptp.read(CounterKind::Virtual).unwrap();
        assert_eq!(sample.realtime_ns, 1_609_459_200_123_456_789);
        assert_eq!(sample.counter, 0x1_2345_6789);
        ptp.read(CounterKind::Physical).unwrap();
        let functions: Vec<_> = fake.calls.iter().map(|c| c.0).collect();
        assert_eq!(
            functions,
            [
                PSCI_FEATURES,
                SMCCC_VERSION,
                VENDOR_HYP_CALL_UID,
                VENDOR_HYP_KVM_FEATURES,
                VENDOR_HYP_KVM_PTP,
                VENDOR_HYP_KVM_PTP
            ]
        );
        assert_eq!(fake.calls[0].1[0], SMCCC_VERSION, "PSCI asked about SMCCC");
        assert_eq!(fake.calls[4].1[0], 0, "w1 = 0: virtual counter");
        assert_eq!(fake.calls[5].1[0], 1, "w1 = 1: physical counter");
    }

    /// `fake` with `function` answering `answer` (or NOT_SUPPORTED when `None`).
    fn with(function: u32, answer: Option<[u32; 4]>) -> Fake {
        let mut fake = kvm();
        fake.answers.retain(|(f, _)| *f != function);
        if let Some(answer) = answer {
            fake.answers.push((function, answer));
        }
        fake
    }

    fn absent(mut fake: Fake) -> (Absent, usize) {
        let reason = KvmPtp::discover(&mut fake).err().expect("absent");
        (reason, fake.calls.len())
    }

    #[test]
    fn each_missing_step_names_its_reason_and_asks_no_further() {
        // QEMU under TCG: its PSCI knows nothing of SMCCC_VERSION, and nothing else is asked
        // (a vendor call nobody answers would trap).
        assert_eq!(
            absent(with(PSCI_FEATURES, None)),
            (Absent::NoSmcccVersion, 1)
        );
        assert_eq!(
            absent(with(SMCCC_VERSION, Some([0x1_0000, 0, 0, 0]))),
            (Absent::OldSmccc { major: 1, minor: 0 }, 2)
        );
        let mut other = KVM_UID;
        other[0] ^= 1;
        assert_eq!(
            absent(with(VENDOR_HYP_CALL_UID, Some(other))),
            (Absent::NotKvm(0xb66f_b429), 3)
        );
        assert_eq!(
            absent(with(VENDOR_HYP_KVM_FEATURES, Some([0b01, 0, 0, 0]))),
            (Absent::NoPtp(1), 4)
        );
        assert_eq!(
            absent(with(VENDOR_HYP_KVM_FEATURES, None)),
            (Absent::NoPtp(NOT_SUPPORTED), 4)
        );
        assert_eq!(
            Absent::NoSmcccVersion.to_string(),
            "PSCI has no SMCCC_VERSION (SMCCC 1.0)"
        );
    }

    #[test]
    fn a_refused_reading_is_none() {
        let mut fake = with(VENDOR_HYP_KVM_PTP, None);
        let mut ptp = KvmPtp::discover(&mut fake).unwrap();
        assert_eq!(ptp.read(CounterKind::Virtual), None);
        let mut readings = [Reading::default(); 2];
        assert_eq!(
            ptp.fill(CounterKind::Virtual, &mut readings),
            Err(Absence::Refused)
        );
        assert_eq!(Absent::NotKvm(1).code(), Absence::NotKvm);
    }
}
