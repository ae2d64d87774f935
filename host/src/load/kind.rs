//! What `--load` asks for: the kinds of background traffic and how they are written.
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// One kind of background traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum LoadKind {
    /// TCP bulk stream from the host into the guest's discard port (TCP 9): the users'
    /// TCP_MAERTS host-to-VM case.
    ToGuest,
    /// TCP bulk stream read from the guest's chargen port (TCP 19).
    FromGuest,
    /// UDP datagrams to the guest's discard port (UDP 9), paced at `rate_pps`.
    UdpFlood {
        /// Datagrams per second asked for.
        rate_pps: u64,
    },
}

/// Why a `--load` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindError {
    /// An unknown kind.
    #[error("unknown load kind `{0}`: expected to-guest, from-guest or udp-flood:RATE")]
    Unknown(String),
    /// `udp-flood` without a usable rate.
    #[error("`{0}`: udp-flood needs a rate in packets per second, e.g. udp-flood:10000 or udp-flood:10k")]
    BadRate(String),
    /// Nothing between the commas.
    #[error("--load: empty kind in `{0}`")]
    Empty(String),
}

/// The largest `udp-flood` rate accepted (10 M packets/s is beyond any loopback or tap).
pub const MAX_RATE_PPS: u64 = 10_000_000;

impl LoadKind {
    /// The kind's name as `--load` spells it, without a rate.
    pub fn name(&self) -> &'static str {
        match self {
            LoadKind::ToGuest => "to-guest",
            LoadKind::FromGuest => "from-guest",
            LoadKind::UdpFlood { .. } => "udp-flood",
        }
    }

    /// Parses a comma-separated list such as `to-guest,udp-flood:20k`.
    pub fn parse_list(s: &str) -> Result<Vec<LoadKind>, KindError> {
        s.split(',')
            .map(|part| {
                let part = part.trim();
                if part.is_empty() {
                    Err(KindError::Empty(s.to_string()))
                } else {
                    part.parse()
                }
            })
            .collect()
    }
}

impl fmt::Display for LoadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadKind::UdpFlood { rate_pps } => write!(f, "udp-flood:{rate_pps}"),
            other => f.write_str(other.name()),
        }
    }
}

impl FromStr for LoadKind {
    type Err = KindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "to-guest" => Ok(LoadKind::ToGuest),
            "from-guest" => Ok(LoadKind::FromGuest),
            _ => {
                let Some(rate) = s.strip_prefix("udp-flood") else {
                    return Err(KindError::Unknown(s.to_string()));
                };
                let rate = rate
                    .strip_prefix(':')
                    .ok_or_else(|| KindError::BadRate(s.to_string()))?;
                let (digits, scale) = match rate.strip_suffix(['k', 'K']) {
                    Some(d) => (d, 1_000),
                    None => match rate.strip_suffix(['m', 'M']) {
                        Some(d) => (d, 1_000_000),
                        None => (rate, 1),
                    },
                };
                let rate_pps = digits
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| n.checked_mul(scale))
                    .filter(|&n| (1..=MAX_RATE_PPS).contains(&n))
                    .ok_or_else(|| KindError::BadRate(s.to_string()))?;
                Ok(LoadKind::UdpFlood { rate_pps })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_lists() {
        assert_eq!(
            LoadKind::parse_list("to-guest,from-guest, udp-flood:2k").unwrap(),
            vec![
                LoadKind::ToGuest,
                LoadKind::FromGuest,
                LoadKind::UdpFlood { rate_pps: 2000 }
            ]
        );
        assert_eq!(
            "udp-flood:1M".parse::<LoadKind>(),
            Ok(LoadKind::UdpFlood {
                rate_pps: 1_000_000
            })
        );
        assert_eq!(
            LoadKind::UdpFlood { rate_pps: 5 }.to_string(),
            "udp-flood:5"
        );
    }

    #[test]
    fn refuses_bad_values() {
        for bad in [
            "udp-flood",
            "udp-flood:",
            "udp-flood:0",
            "udp-flood:x",
            "udp-flood:11M",
        ] {
            assert!(
                matches!(bad.parse::<LoadKind>(), Err(KindError::BadRate(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            "bulk".parse::<LoadKind>(),
            Err(KindError::Unknown(_))
        ));
        assert!(matches!(
            LoadKind::parse_list("to-guest,,"),
            Err(KindError::Empty(_))
        ));
    }
}
