//! Boot configuration: what the boot arguments (`/chosen/bootargs`) ask of the probe.

use alloc::string::String;
use alloc::vec::Vec;
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
    /// Network interface configuration.
    pub net: NetConfig,
    /// How packets are waited for.
    pub mode: Mode,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            net: NetConfig::default(),
            mode: Mode::Irq,
        }
    }
}

/// A boot argument the probe could not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `ip=` is not `A.B.C.D/N` with N in 0..=32.
    #[error("bad ip={0:?}: expected A.B.C.D/N")]
    BadIp(String),
    /// `gw=` is not `A.B.C.D`.
    #[error("bad gw={0:?}: expected A.B.C.D")]
    BadGateway(String),
    /// `mode=` is neither `irq` nor `poll`.
    #[error("bad mode={0:?}: expected irq or poll")]
    BadMode(String),
    /// The gateway is outside the static address's subnet.
    #[error("gateway {gw} is not in {ip}")]
    GatewayOutsideSubnet {
        /// Address and prefix.
        ip: Ipv4Cidr,
        /// Gateway.
        gw: Ipv4Address,
    },
}

/// What parsing the boot arguments produced: the configuration and the tokens it ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The configuration.
    pub config: Config,
    /// Tokens that are not probe arguments (printed as a note, e.g. `console=ttyAMA0`).
    pub ignored: Vec<&'a str>,
}

impl Config {
    /// Parses boot arguments (`/chosen/bootargs`): `ip=A.B.C.D/N gw=A.B.C.D dhcp mode=irq|poll`,
    /// separated by whitespace, all optional. Other tokens are returned as ignored; a probe
    /// argument with a bad value is an error. `ip=` alone keeps the default gateway only if it is
    /// inside the new subnet.
    pub fn parse(bootargs: &str) -> Result<Parsed<'_>, ConfigError> {
        let mut config = Config::default();
        let mut ignored = Vec::new();
        let mut gw_given = false;
        for token in bootargs.split_ascii_whitespace() {
            let (key, value) = token.split_once('=').unwrap_or((token, ""));
            match key {
                "ip" => {
                    config.net.ip =
                        parse_cidr(value).ok_or_else(|| ConfigError::BadIp(value.into()))?
                }
                "gw" => {
                    config.net.gw = Some(
                        value
                            .parse()
                            .map_err(|_| ConfigError::BadGateway(value.into()))?,
                    );
                    gw_given = true;
                }
                "dhcp" if !token.contains('=') => config.net.dhcp = true,
                "mode" => {
                    config.mode = match value {
                        "irq" => Mode::Irq,
                        "poll" => Mode::Poll,
                        _ => return Err(ConfigError::BadMode(value.into())),
                    }
                }
                _ => ignored.push(token),
            }
        }
        if let Some(gw) = config.net.gw {
            if !config.net.dhcp && !config.net.ip.contains_addr(&gw) {
                if gw_given {
                    return Err(ConfigError::GatewayOutsideSubnet {
                        ip: config.net.ip,
                        gw,
                    });
                }
                config.net.gw = None;
            }
        }
        Ok(Parsed { config, ignored })
    }
}

impl Mode {
    /// `irq` or `poll`, as the ready line shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Irq => "irq",
            Mode::Poll => "poll",
        }
    }
}

fn parse_cidr(value: &str) -> Option<Ipv4Cidr> {
    let (addr, len) = value.split_once('/')?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    Some(Ipv4Cidr::new(addr.parse().ok()?, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_gives_user_networking_defaults() {
        let p = Config::parse("").unwrap();
        assert_eq!(p.config, Config::default());
        assert_eq!(p.config.net.ip.to_string(), "10.0.2.15/24");
        assert_eq!(p.config.net.gw, Some(Ipv4Address::new(10, 0, 2, 2)));
        assert_eq!(p.config.mode, Mode::Irq);
        assert!(p.ignored.is_empty());
    }

    #[test]
    fn all_arguments() {
        let p =
            Config::parse("  ip=192.168.7.2/24\tgw=192.168.7.1 mode=poll console=ttyAMA0 dhcp ")
                .unwrap();
        assert_eq!(
            p.config.net.ip,
            Ipv4Cidr::new(Ipv4Address::new(192, 168, 7, 2), 24)
        );
        assert_eq!(p.config.net.gw, Some(Ipv4Address::new(192, 168, 7, 1)));
        assert!(p.config.net.dhcp);
        assert_eq!(p.config.mode, Mode::Poll);
        assert_eq!(p.ignored, ["console=ttyAMA0"]);
    }

    #[test]
    fn ip_alone_drops_a_default_gateway_outside_it() {
        let p = Config::parse("ip=172.16.0.9/16").unwrap();
        assert_eq!(p.config.net.gw, None);
        let p = Config::parse("ip=10.0.2.99/24").unwrap();
        assert_eq!(p.config.net.gw, Some(Ipv4Address::new(10, 0, 2, 2)));
    }

    #[test]
    fn bad_values_are_clear_errors() {
        for (args, err) in [
            ("ip=10.0.2.15", ConfigError::BadIp("10.0.2.15".into())),
            ("ip=10.0.2.15/33", ConfigError::BadIp("10.0.2.15/33".into())),
            ("ip=10.0.2/24", ConfigError::BadIp("10.0.2/24".into())),
            ("ip=", ConfigError::BadIp("".into())),
            ("gw=banana", ConfigError::BadGateway("banana".into())),
            ("mode=fast", ConfigError::BadMode("fast".into())),
            ("mode", ConfigError::BadMode("".into())),
        ] {
            assert_eq!(Config::parse(args).unwrap_err(), err, "{args}");
        }
        let e = Config::parse("ip=10.0.3.5/24 gw=10.0.2.2").unwrap_err();
        assert_eq!(e.to_string(), "gateway 10.0.2.2 is not in 10.0.3.5/24");
        assert_eq!(
            Config::parse("mode=x").unwrap_err().to_string(),
            "bad mode=\"x\": expected irq or poll"
        );
    }

    #[test]
    fn dhcp_with_a_value_is_not_dhcp() {
        let p = Config::parse("dhcp=no").unwrap();
        assert!(!p.config.net.dhcp);
        assert_eq!(p.ignored, ["dhcp=no"]);
    }
}
