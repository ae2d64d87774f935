//! Boot configuration: what the boot arguments (`/chosen/bootargs`) ask of the probe.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};
use vmprobe_proto::BenchTest;

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
    /// Micro-benchmarks to run once at boot and report on the console (`bench=`).
    pub bench: BenchSet,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            net: NetConfig::default(),
            mode: Mode::Irq,
            bench: BenchSet::default(),
        }
    }
}

/// A set of micro-benchmarks, one bit per wire id; iterated in id order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BenchSet(u32);

impl BenchSet {
    /// Every micro-benchmark.
    pub fn all() -> BenchSet {
        BenchTest::ALL.into_iter().fold(BenchSet(0), BenchSet::with)
    }

    /// This set and `test`.
    pub fn with(self, test: BenchTest) -> BenchSet {
        BenchSet(self.0 | (1 << test.id()))
    }

    /// Whether nothing is in it.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The tests in it, in id order.
    pub fn iter(self) -> impl Iterator<Item = BenchTest> {
        BenchTest::ALL
            .into_iter()
            .filter(move |t| self.0 & (1 << t.id()) != 0)
    }
}

/// `bench=` named something that is no micro-benchmark: none is run, and the console says
/// which names were wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownBench<'a> {
    /// The names that are not micro-benchmarks, as given.
    pub names: Vec<&'a str>,
}

impl fmt::Display for UnknownBench<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bench=: no micro-benchmark named")?;
        for name in &self.names {
            write!(f, " {name:?}")?;
        }
        f.write_str(" (one of all")?;
        for t in BenchTest::ALL {
            write!(f, ", {}", t.name())?;
        }
        f.write_str("); running none")
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
    /// `bench=` names that are not micro-benchmarks (then `config.bench` is empty).
    pub unknown_bench: Option<UnknownBench<'a>>,
}

impl Config {
    /// Parses boot arguments (`/chosen/bootargs`): `ip=A.B.C.D/N gw=A.B.C.D dhcp mode=irq|poll
    /// bench=all|NAME,NAME...`, separated by whitespace, all optional. Other tokens are returned
    /// as ignored; a probe argument with a bad value is an error, except `bench=`, whose unknown
    /// names are returned so that the probe can say so and still serve. `ip=` alone keeps the
    /// default gateway only if it is inside the new subnet.
    pub fn parse(bootargs: &str) -> Result<Parsed<'_>, ConfigError> {
        let mut config = Config::default();
        let mut ignored = Vec::new();
        let mut unknown_bench = None;
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
                "bench" => {
                    (config.bench, unknown_bench) = match parse_bench(value) {
                        Ok(set) => (set, None),
                        Err(unknown) => (BenchSet::default(), Some(unknown)),
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
        Ok(Parsed {
            config,
            ignored,
            unknown_bench,
        })
    }
}

/// `all` or comma-separated micro-benchmark names (as `vmprobe micro --test` spells them).
fn parse_bench(value: &str) -> Result<BenchSet, UnknownBench<'_>> {
    let mut set = BenchSet::default();
    let mut names = Vec::new();
    for name in value.split(',') {
        match name {
            "all" => set = BenchSet::all(),
            _ => match BenchTest::from_name(name) {
                Some(t) => set = set.with(t),
                None => names.push(name),
            },
        }
    }
    if names.is_empty() {
        Ok(set)
    } else {
        Err(UnknownBench { names })
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

    #[test]
    fn bench_all_and_names() {
        assert!(Config::parse("").unwrap().config.bench.is_empty());
        let all = Config::parse("bench=all").unwrap();
        assert!(all.config.bench.iter().eq(BenchTest::ALL));
        assert_eq!(all.unknown_bench, None);
        let some = Config::parse("mode=poll bench=eoi,hypercall,eoi").unwrap();
        assert_eq!(some.config.mode, Mode::Poll);
        assert!(some
            .config
            .bench
            .iter()
            .eq([BenchTest::PsciVersion, BenchTest::Eoi]));
        let names: Vec<&str> = BenchTest::ALL.iter().map(|t| t.name()).collect();
        let spelled = alloc::format!("bench={}", names.join(","));
        assert_eq!(
            Config::parse(&spelled).unwrap().config.bench,
            BenchSet::all()
        );
    }

    #[test]
    fn unknown_bench_names_run_none_and_say_which() {
        let p = Config::parse("bench=hypercall,eio,x ip=10.0.2.20/24").unwrap();
        assert!(p.config.bench.is_empty());
        assert_eq!(p.config.net.ip.to_string(), "10.0.2.20/24");
        let unknown = p.unknown_bench.unwrap();
        assert_eq!(unknown.names, ["eio", "x"]);
        assert_eq!(
            unknown.to_string(),
            "bench=: no micro-benchmark named \"eio\" \"x\" (one of all, hypercall, \
             mmio-virtio, mmio-gicd, eoi, self-sgi, vtimer, vq-notify, ipi, counter-read, lpi); \
             running none"
        );
        let empty = Config::parse("bench=").unwrap();
        assert!(empty.config.bench.is_empty());
        assert_eq!(empty.unknown_bench.unwrap().names, [""]);
    }
}
