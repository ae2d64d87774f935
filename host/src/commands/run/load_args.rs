//! `--load KIND[,KIND...] [--load-cpu CPU]`, flattened into `vmprobe run` (and so usable as
//! `load` / `load_cpu` keys of a matrix row).
use clap::Args;

use crate::load::{KindError, LoadKind};

/// Background traffic beside the latency measurement.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadArgs {
    /// Background traffic during the measurement: to-guest (TCP bulk into the guest's
    /// discard port, the users' TCP_MAERTS host-to-VM case), from-guest (TCP read from the
    /// guest's chargen), udp-flood:RATE (RATE datagrams/s to discard, e.g. udp-flood:20k);
    /// comma-separated (or repeated) for several. Starts before and stops after the latency
    /// runs.
    #[arg(long, value_name = "KIND[,KIND...]", value_delimiter = ',', value_parser = parse_kind)]
    pub load: Vec<LoadKind>,
    /// Pin the load threads to CPU N (the latency thread's --cpu for the users' "same CPU"
    /// case, another for "different CPUs") [default: any CPU but cpu0]
    #[arg(long, value_name = "N", requires = "load")]
    pub load_cpu: Option<usize>,
}

fn parse_kind(s: &str) -> Result<LoadKind, String> {
    s.trim().parse().map_err(|e: KindError| e.to_string())
}

impl LoadArgs {
    /// The kinds asked for (empty without `--load`).
    pub fn kinds(&self) -> &[LoadKind] {
        &self.load
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        load: LoadArgs,
    }

    #[test]
    fn parses_and_refuses() {
        let t =
            T::try_parse_from(["t", "--load", "to-guest,udp-flood:1k", "--load-cpu", "1"]).unwrap();
        assert_eq!(
            t.load.kinds(),
            &[LoadKind::ToGuest, LoadKind::UdpFlood { rate_pps: 1000 }]
        );
        assert_eq!(t.load.load_cpu, Some(1));
        assert!(T::try_parse_from(["t"]).unwrap().load.kinds().is_empty());
        let e = T::try_parse_from(["t", "--load", "bulk"])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unknown load kind `bulk`"), "{e}");
        assert!(T::try_parse_from(["t", "--load-cpu", "1"]).is_err());
    }
}
