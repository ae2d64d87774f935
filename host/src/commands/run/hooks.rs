//! Extension points of `run`: features that add to a measurement (guest timestamps, load
//! beside the latency run, tracing) implement [`RunHook`] and are added to [`Hooks`] in
//! [`super::hooks_for`] with one line.
use crate::rr::{Proto, RrRun};
use crate::vm::Vm;

use super::args::RunArgs;
use super::results::RunResults;

/// Sees each sample on the measuring thread, outside the timed window (see [`RunHook::observer`]).
pub type SampleObserver = std::sync::Arc<dyn Fn(&crate::rr::Sample) + Send + Sync>;

/// A hook's failure: ends the run (after teardown) with this message.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// Called at the steps of a run. Every method has a default that does nothing. Hooks run on
/// the orchestrating task: start threads for anything long.
pub trait RunHook: Send {
    /// A name for error messages.
    fn name(&self) -> &str;
    /// After the guest is ready, before the first protocol is measured.
    fn before_measure(&mut self, _vm: &Vm, _args: &RunArgs) -> Result<(), HookError> {
        Ok(())
    }
    /// Called on the measuring thread for every sample of the following measurements.
    fn observer(&self) -> Option<SampleObserver> {
        None
    }
    /// After each protocol's measurement (complete or partial).
    fn after_protocol(&mut self, _vm: &Vm, _proto: Proto, _run: &RrRun) -> Result<(), HookError> {
        Ok(())
    }
    /// After the last protocol, before teardown: fill in the feature's field of `results`.
    fn after_measure(&mut self, _vm: &Vm, _results: &mut RunResults) -> Result<(), HookError> {
        Ok(())
    }
}

/// The hooks of one run, called in order.
#[derive(Default)]
pub struct Hooks(pub Vec<Box<dyn RunHook>>);

impl Hooks {
    /// Adds a hook.
    pub fn push(&mut self, hook: impl RunHook + 'static) {
        self.0.push(Box::new(hook));
    }
}
