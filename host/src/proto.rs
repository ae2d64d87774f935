//! The transport protocol of a service or a measurement, one type for every layer (the rr
//! engine, the guest's services, the command line).
use serde::Serialize;

/// UDP or TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// UDP: for rr, one datagram per request and per reply, matched by sequence number.
    Udp,
    /// TCP: for rr, one connection with TCP_NODELAY; requests and replies are frames of
    /// `size` bytes.
    Tcp,
}

impl Proto {
    /// `udp` or `tcp`, as QEMU's hostfwd, the command line and the JSON write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
