//! What the probe handler needs from the machine it runs on.

use vmprobe_proto::clock_reply::{Absence, Reading};
use vmprobe_proto::{BenchTest, CounterKind, GuestMode, GuestStats};

/// Why a micro-benchmark did not produce samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BenchError {
    /// This guest cannot run it (no second vCPU, no such device, no PSCI conduit...).
    #[error("micro-benchmark not supported here")]
    Unsupported,
    /// It started and went wrong (an interrupt that never came, a timeout).
    #[error("micro-benchmark failed")]
    Failed,
}

/// The platform hooks of the probe handler; the real one reads the arm64 generic counter and
/// drives the GIC and virtio devices, fakes run the handler under `cargo test`.
pub trait ProbePlatform {
    /// Read the guest counter, ordered with `isb` so it is not taken early or late.
    fn now(&mut self) -> u64;

    /// `CNTFRQ_EL0` in Hz.
    fn cntfrq_hz(&self) -> u32;

    /// Which counter [`now`](Self::now) reads.
    fn counter_kind(&self) -> CounterKind;

    /// How the guest waits for packets.
    fn mode(&self) -> GuestMode;

    /// The device and main-loop counters. The `probe_*` fields are the handler's own and are
    /// overwritten by it, so the platform may leave them 0.
    fn stats(&mut self) -> GuestStats;

    /// Run `test` once per element of `samples` (with its `param`), writing each iteration's
    /// cost in counter ticks, in order. Only on `Ok` are all of `samples` valid.
    fn run_bench(
        &mut self,
        test: BenchTest,
        param: u64,
        samples: &mut [u64],
    ) -> Result<(), BenchError>;

    /// Fill `readings` from KVM's PTP service, pairing the host's realtime with `counter`, in
    /// the order taken; or say why the service cannot be used.
    fn clock_readings(
        &mut self,
        counter: CounterKind,
        readings: &mut [Reading],
    ) -> Result<(), Absence>;

    /// Ask for the VM to be powered off once the pending reply has been sent (PSCI `SYSTEM_OFF`).
    /// The handler's acknowledgement must reach the wire first, so this only records the wish.
    fn request_power_off(&mut self);
}
