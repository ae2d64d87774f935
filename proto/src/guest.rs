//! Facts about the guest that several messages carry.

/// Which generic counter the guest reads its timestamps from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CounterKind {
    /// `CNTVCT_EL0`: physical count minus the hypervisor's virtual offset (`CNTVOFF_EL2`).
    Virtual = 0,
    /// `CNTPCT_EL0`: the physical count, which under KVM is the host's own counter.
    Physical = 1,
}

impl CounterKind {
    /// The counter kind with wire value `v`, if there is one.
    pub fn from_u8(v: u8) -> Option<CounterKind> {
        match v {
            0 => Some(CounterKind::Virtual),
            1 => Some(CounterKind::Physical),
            _ => None,
        }
    }

    /// Stable lower-case name, as used in reports.
    pub fn name(self) -> &'static str {
        match self {
            CounterKind::Virtual => "virtual",
            CounterKind::Physical => "physical",
        }
    }
}

/// How the guest waits for packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum GuestMode {
    /// Idle in WFI, woken by the device interrupt (includes vGIC injection and vCPU kick).
    Irq = 0,
    /// Busy-polls the device with its interrupts suppressed.
    Poll = 1,
}

impl GuestMode {
    /// The mode with wire value `v`, if there is one.
    pub fn from_u8(v: u8) -> Option<GuestMode> {
        match v {
            0 => Some(GuestMode::Irq),
            1 => Some(GuestMode::Poll),
            _ => None,
        }
    }

    /// Stable lower-case name (`irq`, `poll`), as on the guest's command line.
    pub fn name(self) -> &'static str {
        match self {
            GuestMode::Irq => "irq",
            GuestMode::Poll => "poll",
        }
    }
}
