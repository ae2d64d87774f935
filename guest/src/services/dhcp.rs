//! Address configuration: the static one from the boot arguments, or a DHCP lease.

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::dhcpv4::{self, Event};
use smoltcp::wire::{IpCidr, Ipv4Address, Ipv4Cidr};

use super::stats::DhcpStats;

/// Give the interface `cidr` as its only address and `gateway` as its default route; `None`
/// removes both.
pub(crate) fn apply_ipv4(
    iface: &mut Interface,
    cidr: Option<Ipv4Cidr>,
    gateway: Option<Ipv4Address>,
) {
    iface.update_ip_addrs(|addrs| {
        addrs.clear();
        if let Some(cidr) = cidr {
            // The list was just emptied, so there is room for one address.
            let _ = addrs.push(IpCidr::Ipv4(cidr));
        }
    });
    iface.routes_mut().remove_default_ipv4_route();
    if let Some(gateway) = gateway {
        // Fails only when the table is full; the probe adds no other route.
        let _ = iface.routes_mut().add_default_ipv4_route(gateway);
    }
}

/// The DHCP client: smoltcp's socket, whose events are applied to the interface.
pub(crate) struct Dhcp {
    handle: SocketHandle,
}

impl Dhcp {
    /// Start a DHCP client in `sockets` (it sends DISCOVER on the first poll).
    pub fn new(sockets: &mut SocketSet<'static>) -> Self {
        Dhcp {
            handle: sockets.add(dhcpv4::Socket::new()),
        }
    }

    /// Apply a lease gained, changed or lost since the last call to `iface`, `address` and
    /// `gateway`. Returns true if the configuration changed.
    pub fn serve(
        &self,
        iface: &mut Interface,
        sockets: &mut SocketSet<'_>,
        (address, gateway): (&mut Option<Ipv4Cidr>, &mut Option<Ipv4Address>),
        stats: &mut DhcpStats,
    ) -> bool {
        match sockets.get_mut::<dhcpv4::Socket>(self.handle).poll() {
            None => false,
            Some(Event::Configured(lease)) => {
                apply_ipv4(iface, Some(lease.address), lease.router);
                *address = Some(lease.address);
                *gateway = lease.router;
                stats.configured += 1;
                true
            }
            // smoltcp also reports this once at start, before any lease: not a loss.
            Some(Event::Deconfigured) if address.is_none() => false,
            Some(Event::Deconfigured) => {
                apply_ipv4(iface, None, None);
                *address = None;
                *gateway = None;
                stats.deconfigured += 1;
                true
            }
        }
    }
}
