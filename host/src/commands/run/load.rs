//! `vmprobe run --load`: the generators as a [`RunHook`], started once the guest is ready
//! (before the first protocol is measured) and stopped after the last, so every latency
//! figure of the run is taken under load. Adds `load` (one [`LoadReport`] per kind) to the
//! results. Its flags, `--load KIND[,KIND...] [--load-cpu CPU]`, are flattened into
//! `vmprobe run` (and so usable as `load` / `load_cpu` keys of a matrix row).
use clap::Args;

use super::hooks::{HookError, RunHook};
use super::{RunArgs, RunResults};
use crate::load::{KindError, Load, LoadKind, LoadTargets};
use crate::vm::Vm;

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

/// The load of one run.
pub struct LoadHook {
    kinds: Vec<LoadKind>,
    cpu: Option<usize>,
    running: Option<Load>,
}

impl LoadHook {
    /// The hook for `args`, or `None` without `--load`.
    pub fn for_args(args: &RunArgs) -> Option<LoadHook> {
        let kinds = args.load.kinds().to_vec();
        (!kinds.is_empty()).then(|| LoadHook {
            kinds,
            cpu: args.load.load_cpu,
            running: None,
        })
    }
}

impl RunHook for LoadHook {
    fn name(&self) -> &str {
        "load"
    }

    fn before_measure(&mut self, vm: &Vm, _args: &RunArgs) -> Result<(), HookError> {
        let targets = LoadTargets::from_endpoints(&vm.info().endpoints)
            .ok_or("the guest exposes no discard/chargen services")?;
        self.running = Some(Load::start(
            &self.kinds,
            self.cpu,
            &targets,
            vm.client_netns(),
        )?);
        Ok(())
    }

    fn after_measure(&mut self, _vm: &Vm, results: &mut RunResults) -> Result<(), HookError> {
        if let Some(load) = self.running.take() {
            results.load = Some(load.stop());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::matrix::file::Matrix;
    use clap::Parser;

    #[test]
    fn the_load_matrix_example_is_the_users_table() {
        let m = Matrix::parse(include_str!("../../../../examples/load-matrix.toml")).unwrap();
        // (name, load, load_cpu, latency cpu)
        type Row<'a> = (&'a str, Vec<LoadKind>, Option<usize>, Option<usize>);
        let rows: Vec<Row> = m
            .rows
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.args.load.kinds().to_vec(),
                    r.args.load.load_cpu,
                    r.args.rr.cpu,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                ("A only", vec![], None, Some(1)),
                (
                    "A+B on different CPUs",
                    vec![LoadKind::ToGuest],
                    Some(0),
                    Some(1)
                ),
                (
                    "A+B on the same CPU",
                    vec![LoadKind::ToGuest],
                    Some(1),
                    Some(1)
                ),
            ]
        );
        assert!(LoadHook::for_args(&m.rows[0].args).is_none());
        assert!(LoadHook::for_args(&m.rows[1].args).is_some());
    }

    #[test]
    fn a_bad_load_in_a_matrix_row_names_the_row() {
        let e = Matrix::parse("[[config]]\nname = \"x\"\nload = \"udp-flood\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("\"x\"") && e.contains("udp-flood needs a rate"),
            "{e}"
        );
    }

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
