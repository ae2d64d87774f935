//! Boot configuration: what the boot arguments (`/chosen/bootargs`) ask of the probe.

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

/// How the probe waits for packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Idle in WFI, woken by the virtio interrupt through the GIC.
    Irq,
    /// Busy-poll the device with its interrupts suppressed.
    Poll,
}

/// Network configuration of the probe's one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// Static address; ignored when `dhcp` is set.
    pub ip: Ipv4Cidr,
    /// Default gateway.
    pub gw: Option<Ipv4Address>,
    /// Take address and gateway from DHCP instead.
    pub dhcp: bool,
}

impl Default for NetConfig {
    /// QEMU user networking's guest address and gateway.
    fn default() -> Self {
        NetConfig {
            ip: Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 15), 24),
            gw: Some(Ipv4Address::new(10, 0, 2, 2)),
            dhcp: false,
        }
    }
}

/// Everything the boot arguments configure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub net: NetConfig,
    pub mode: Mode,
}

impl Default for Config {
    fn default() -> Self {
        Config { net: NetConfig::default(), mode: Mode::Irq }
    }
}
