//! `vmprobe run --load`: the generators as a [`RunHook`], started once the guest is ready
//! (before the first protocol is measured) and stopped after the last, so every latency
//! figure of the run is taken under load. Adds `load` (one [`LoadReport`] per kind) to the
//! results.
use crate::run::hooks::{HookError, RunHook};
use crate::run::{RunArgs, RunResults};
use crate::vm::Vm;

use super::{Load, LoadKind, LoadTargets};

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
            let reports = load.stop();
            results
                .extra
                .insert("load".into(), serde_json::to_value(&reports)?);
        }
        Ok(())
    }
}
