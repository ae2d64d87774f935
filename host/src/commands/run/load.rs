//! `vmprobe run --load`: the generators as a [`RunHook`], started once the guest is ready
//! (before the first protocol is measured) and stopped after the last, so every latency
//! figure of the run is taken under load. Adds `load` (one [`LoadReport`] per kind) to the
//! results.
use crate::commands::run::hooks::{HookError, RunHook};
use crate::commands::run::{RunArgs, RunResults};
use crate::vm::Vm;

use crate::load::{Load, LoadKind, LoadTargets};

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
}
