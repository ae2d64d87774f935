//! The guest's services (fixed ports that outside tools rely on) and how the host reaches them: for user
//! networking each one is forwarded from a free loopback port, never a fixed one (a busy UDP
//! port would silently steal the traffic).
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};

use serde::Serialize;

pub use crate::proto::Proto;

/// One guest service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Service {
    /// What it does.
    pub name: &'static str,
    /// Protocol.
    pub proto: Proto,
    /// Port in the guest.
    pub port: u16,
}

/// Every service the guest answers on (ICMP echo aside).
pub const SERVICES: [Service; 7] = [
    Service {
        name: "echo",
        proto: Proto::Udp,
        port: 7,
    },
    Service {
        name: "echo",
        proto: Proto::Tcp,
        port: 7,
    },
    Service {
        name: "discard",
        proto: Proto::Udp,
        port: 9,
    },
    Service {
        name: "discard",
        proto: Proto::Tcp,
        port: 9,
    },
    Service {
        name: "chargen",
        proto: Proto::Tcp,
        port: 19,
    },
    Service {
        name: "sockperf",
        proto: Proto::Udp,
        port: 11111,
    },
    Service {
        name: "probe",
        proto: Proto::Udp,
        port: 7777,
    },
];

/// A service and the address a host-side client uses for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// The service.
    pub service: Service,
    /// Where to send to reach it (a forwarded loopback port, or the guest's own address).
    pub addr: SocketAddr,
}

/// Finds the endpoint for `proto`/`guest_port` in a list.
pub fn endpoint(list: &[Endpoint], proto: Proto, guest_port: u16) -> Option<SocketAddr> {
    list.iter()
        .find(|e| e.service.proto == proto && e.service.port == guest_port)
        .map(|e| e.addr)
}

/// Endpoints when the client reaches the guest by its own address (tap, bridge, macvtap).
pub fn direct_endpoints(guest: Ipv4Addr) -> Vec<Endpoint> {
    SERVICES
        .iter()
        .map(|&service| Endpoint {
            service,
            addr: SocketAddr::V4(SocketAddrV4::new(guest, service.port)),
        })
        .collect()
}

/// Picks a free loopback port for each service, of the service's protocol. All sockets stay
/// bound until every port is chosen, so no two services get the same port; QEMU binds them
/// right after (a lost race shows up as QEMU refusing the forward, and the caller retries).
pub fn free_loopback_endpoints() -> std::io::Result<Vec<Endpoint>> {
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    let mut out = Vec::new();
    for &service in &SERVICES {
        let addr = match service.proto {
            Proto::Udp => {
                let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
                let a = s.local_addr()?;
                udp.push(s);
                a
            }
            Proto::Tcp => {
                let s = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
                let a = s.local_addr()?;
                tcp.push(s);
                a
            }
        };
        out.push(Endpoint { service, addr });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_per_protocol_and_not_fixed() {
        let e = free_loopback_endpoints().unwrap();
        assert_eq!(e.len(), SERVICES.len());
        for p in [Proto::Udp, Proto::Tcp] {
            let mut ports: Vec<u16> = e
                .iter()
                .filter(|x| x.service.proto == p)
                .map(|x| x.addr.port())
                .collect();
            let n = ports.len();
            ports.sort();
            ports.dedup();
            assert_eq!(ports.len(), n);
        }
        assert!(e
            .iter()
            .all(|x| x.addr.port() != x.service.port && x.addr.ip().is_loopback()));
        assert!(endpoint(&e, Proto::Udp, 7777).is_some());
    }

    #[test]
    fn direct_endpoints_use_guest_ports() {
        let e = direct_endpoints(Ipv4Addr::new(192, 168, 20, 2));
        assert_eq!(
            endpoint(&e, Proto::Tcp, 19),
            Some("192.168.20.2:19".parse().unwrap())
        );
        assert_eq!(endpoint(&e, Proto::Tcp, 11111), None);
    }
}
