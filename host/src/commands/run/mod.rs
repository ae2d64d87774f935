//! `vmprobe run`: boot the probe in the configuration under test, measure UDP and TCP echo
//! round trips against it with the `rr` engine, keep everything in the run directory, and
//! tear down: on success, on error, on Ctrl-C and when QEMU dies mid-run (the samples taken
//! so far are kept and summarised).
//!
//! The steps, each a small function, so that features hook in with one line each
//! ([`hooks::RunHook`], registered in [`hooks_for`]):
//!
//! ```text
//! RunArgs --RunPlan::new--> RunPlan --boot--> Vm
//!   --hooks.before_measure--> measure udp --hooks.after_protocol--> measure tcp --...-->
//!   --hooks.after_measure (the feature's field)--> teardown --> write_results --> RunResults
//! ```
//!
//! `matrix` and `quickstart` run many plans through the same [`run_one`].
pub mod args;
pub mod cases;
pub mod compare;
pub mod hooks;
pub mod load;
pub mod measure;
pub mod output;
pub mod results;
pub mod signals;
pub mod trace;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

pub use args::{Protocols, RunArgs};
use hooks::Hooks;
pub use results::{FloorOutcome, RunConfig, RunResults};
use signals::Signals;

use crate::export::Format;
use crate::os::shell_quote;
use crate::rr::{Proto, RrError, RrOptions};
use crate::rundir::{RunDir, RunDirError};
use crate::vm::{Vm, VmConfig, VmError};

/// Console lines shown when QEMU dies mid-run.
const TAIL: usize = 15;

/// File names `run` adds to the run directory.
pub mod files {
    /// The results as JSON (`--format json`'s object).
    pub const RESULTS: &str = "results.json";
    /// The text summary.
    pub const SUMMARY: &str = "summary.txt";
    /// The `vmprobe run` command line that repeats this run.
    pub const RUN_COMMAND: &str = "vmprobe-command.sh";

    /// Per-sample CSV of one protocol (`vmprobe rr --log` format).
    pub fn samples(proto: crate::rr::Proto) -> String {
        format!("samples-{proto}.csv")
    }

    /// HdrHistogram log of one protocol (`vmprobe rr --hist` format).
    pub fn hist(proto: crate::rr::Proto) -> String {
        format!("hist-{proto}.hlog")
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Booting or stopping the VM.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// The measurement could not run.
    #[error(transparent)]
    Rr(#[from] RrError),
    /// The run directory.
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    /// Ctrl-C or SIGTERM before the guest was ready.
    #[error("interrupted during boot; QEMU and the network setup were removed")]
    InterruptedDuringBoot,
    /// QEMU exited while measuring.
    #[error("QEMU exited during the measurement ({status}); the samples taken so far are in {}; console tail:{tail}", run_dir.display())]
    QemuDied {
        /// How it ended.
        status: String,
        /// Where the partial samples are.
        run_dir: PathBuf,
        /// Last console lines.
        tail: String,
    },
    /// A hooked-in feature failed.
    #[error("{hook}: {message}")]
    Hook {
        /// The hook's name.
        hook: String,
        /// Its error.
        message: String,
    },
    /// A `--limit` that cannot be checked.
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitError),
    /// Measured, but over a limit.
    #[error(transparent)]
    LimitsExceeded(#[from] crate::limits::LimitsExceeded),
    /// Output.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A validated run: the VM configuration checked against this host, the rr options checked.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The arguments.
    pub args: RunArgs,
    /// The VM configuration.
    pub vm: VmConfig,
    /// The `vmprobe` arguments that repeat this run (`run ...`), kept in the run directory.
    pub command: Vec<String>,
    /// The configuration's name in test case ids (a matrix row's); `None`: the VM's label.
    pub name: Option<String>,
}

impl RunPlan {
    /// Checks everything that can be checked before booting.
    pub fn new(mut args: RunArgs) -> Result<RunPlan, RunError> {
        args.limits = crate::limits::merge(std::mem::take(&mut args.limits));
        Self::check_measurement(&args)?;
        let vm = args.vm.validate()?;
        Ok(RunPlan {
            args,
            vm,
            command: Vec::new(),
            name: None,
        })
    }

    /// Checks the measurement's options (not the host: image, QEMU, root), so a matrix can
    /// refuse a mistake in any configuration before the first one boots.
    pub fn check_measurement(args: &RunArgs) -> Result<(), RunError> {
        for &proto in args.proto.list() {
            args.rr.to_options("guest".into(), proto).validate()?;
        }
        if args.rr.probe {
            crate::probe::rr::validate(
                &args.rr.to_options("guest".into(), Proto::Udp),
                args.rr.clock,
            )?;
        }
        if args.rr.probe && !args.proto.list().contains(&Proto::Udp) {
            return Err(RrError::Options(
                "--probe measures over UDP (the guest's probe port): use --proto udp or both"
                    .into(),
            )
            .into());
        }
        cases::check(&args.limits, args.rr.probe)?;
        args.trace.validate(args).map_err(|message| RunError::Hook {
            hook: "trace".into(),
            message,
        })
    }

    /// Names the configuration in test case ids.
    pub fn with_name(mut self, name: &str) -> RunPlan {
        self.name = Some(name.to_string());
        self
    }

    /// Records the `vmprobe` arguments that repeat this run.
    pub fn with_command(mut self, command: Vec<String>) -> RunPlan {
        self.command = command;
        self
    }

    /// The rr options for `proto`, logging into `run_dir`.
    pub fn rr_options(&self, proto: Proto, run_dir: &RunDir) -> RrOptions {
        let mut o = self.args.rr.to_options(String::new(), proto);
        o.log = Some(run_dir.file(&files::samples(proto)));
        o.hist = Some(run_dir.file(&files::hist(proto)));
        o
    }
}

/// A run that got as far as a booted VM.
#[derive(Debug)]
pub struct Finished {
    /// What was measured (possibly partial).
    pub results: RunResults,
    /// What went wrong after boot, if anything (the results are still valid as far as they go).
    pub problem: Option<RunError>,
}

/// The hooks for these arguments. Features add themselves here, one line each.
pub fn hooks_for(args: &RunArgs) -> Hooks {
    let mut hooks = Hooks::default();
    if let Some(h) = load::LoadHook::for_args(args) {
        hooks.push(h);
    }
    if let Some(h) = trace::TraceHook::for_args(args) {
        hooks.push(h);
    }
    hooks
}

/// Runs `plan` end to end: boot, measure, teardown, results written. `Err` when nothing could
/// be measured (the VM did not come up, or a signal came first).
pub async fn run_one(
    plan: &RunPlan,
    hooks: &mut Hooks,
    signals: &mut Signals,
) -> Result<Finished, RunError> {
    let mut vm = boot(plan, signals).await?;
    let mut results = RunResults::new(vm.info());
    let mut problem = measure_all(plan, &mut vm, hooks, signals, &mut results)
        .await
        .err();
    let run_dir = vm.run_dir().clone();
    let tail = vm.console().tail(TAIL);
    match teardown(vm).await {
        Ok(status) => results.qemu_exit = Some(status),
        Err(e) => problem = problem.or(Some(e)),
    }
    if !results.interrupted && !signals.raised() && results.reports().next().is_some() {
        results.host_floor = Some(host_floor(plan, &results).await);
    }
    if let (None, Some(status)) = (&problem, &results.qemu_died) {
        problem = Some(RunError::QemuDied {
            status: status.clone(),
            run_dir: run_dir.path().to_path_buf(),
            tail: tail.iter().map(|l| format!("\n  | {l}")).collect(),
        });
    }
    results.error = problem.as_ref().map(|p| match p {
        RunError::QemuDied { status, .. } => {
            format!("QEMU exited during the measurement ({status})")
        }
        other => other.to_string(),
    });
    let sheet = cases::sheet(
        plan.name.as_deref().unwrap_or(&results.label),
        &results,
        &plan.args.limits,
    );
    if !plan.args.limits.is_empty() {
        results.limits = Some(sheet.checks);
    }
    results.cases = sheet.cases;
    write_results(&run_dir, &results)?;
    if !plan.command.is_empty() {
        let line = std::iter::once("vmprobe".to_string())
            .chain(plan.command.iter().map(|a| shell_quote(a)))
            .collect::<Vec<_>>()
            .join(" ");
        run_dir.write_script(files::RUN_COMMAND, &[format!("exec {line}")])?;
    }
    copy_requested_files(plan, &run_dir, &results)?;
    Ok(Finished { results, problem })
}

/// The host's floor for this run, with QEMU gone: its client where the run's client ran (the
/// same `--cpu`, pacing, size, polling), the echo on the first vCPU's CPUs.
async fn host_floor(plan: &RunPlan, results: &RunResults) -> FloorOutcome {
    static NEVER: AtomicBool = AtomicBool::new(false);
    let protos: Vec<Proto> = results.reports().map(|r| r.proto).collect();
    let echo_cpus = results
        .config
        .vcpus
        .first()
        .map(|v| v.cpus.clone())
        .unwrap_or_default();
    let options = plan.args.rr.to_options(String::new(), Proto::Udp);
    tokio::task::spawn_blocking(move || {
        crate::floor::measure(&options, &protos, &echo_cpus, &NEVER).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()))
    .into()
}

/// Boots the VM; a signal during boot tears down what was started.
async fn boot(plan: &RunPlan, signals: &mut Signals) -> Result<Vm, RunError> {
    if signals.raised() {
        return Err(RunError::InterruptedDuringBoot);
    }
    tokio::select! {
        vm = Vm::start(&plan.vm, plan.args.ready_timeout()) => Ok(vm?),
        _ = signals.recv() => Err(RunError::InterruptedDuringBoot),
    }
}

/// Measures each protocol in turn, with the hooks around; stops at a signal or QEMU's death.
async fn measure_all(
    plan: &RunPlan,
    vm: &mut Vm,
    hooks: &mut Hooks,
    signals: &mut Signals,
    results: &mut RunResults,
) -> Result<(), RunError> {
    let hook_err = |name: &str, e: hooks::HookError| RunError::Hook {
        hook: name.to_string(),
        message: e.to_string(),
    };
    for h in hooks.0.iter_mut() {
        h.before_measure(vm, &plan.args)
            .map_err(|e| hook_err(h.name(), e))?;
    }
    for &proto in plan.args.proto.list() {
        if results.interrupted || results.qemu_died.is_some() || signals.raised() {
            results.interrupted |= signals.raised();
            break;
        }
        let options = plan.rr_options(proto, vm.run_dir());
        let probe = plan.args.rr.probe.then_some(plan.args.rr.clock);
        let observer = hooks.0.iter().find_map(|h| h.observer());
        let m = measure::measure(vm, options, signals, show_progress(plan), probe, observer).await;
        results.interrupted |= m.interrupted;
        if m.qemu_died.is_some() {
            results.qemu_died = m.qemu_died;
        }
        match m.run {
            Ok(run) => {
                for h in hooks.0.iter_mut() {
                    h.after_protocol(vm, proto, &run)
                        .map_err(|e| hook_err(h.name(), e))?;
                }
                results.set_report(run.report);
                if let Some(b) = m.breakdown {
                    results.probe = Some(b.into());
                }
            }
            // Stopped before the first reply: nothing of this protocol to keep.
            Err(_) if results.interrupted || results.qemu_died.is_some() => break,
            Err(e) => return Err(e.into()),
        }
    }
    for h in hooks.0.iter_mut() {
        h.after_measure(vm, results)
            .map_err(|e| hook_err(h.name(), e))?;
    }
    Ok(())
}

/// A progress bar with a live line when the summary goes to a terminal as text.
fn show_progress(plan: &RunPlan) -> bool {
    use std::io::IsTerminal;
    plan.args.rr.format == Format::Text
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal()
}

/// Stops QEMU and removes the network setup; returns how QEMU ended.
async fn teardown(vm: Vm) -> Result<String, RunError> {
    Ok(vm.shutdown().await?)
}

/// `results.json` and `summary.txt` into the run directory.
pub fn write_results(run_dir: &RunDir, results: &RunResults) -> Result<(), RunError> {
    run_dir.write_json(files::RESULTS, results)?;
    let text = output::render(Format::Text, results)?;
    run_dir.write(files::SUMMARY, &String::from_utf8_lossy(&text))?;
    Ok(())
}

/// `--log FILE` / `--hist FILE`: copies of the run directory's files; with both protocols the
/// protocol goes before the extension (`s.csv` -> `s-udp.csv`, `s-tcp.csv`).
fn copy_requested_files(
    plan: &RunPlan,
    run_dir: &RunDir,
    results: &RunResults,
) -> Result<(), RunError> {
    let many = plan.args.proto.list().len() > 1;
    for report in results.reports() {
        let p = report.proto;
        for (asked, name) in [
            (&plan.args.rr.log, files::samples(p)),
            (&plan.args.rr.hist, files::hist(p)),
        ] {
            if let Some(dest) = asked {
                let dest = if many {
                    with_proto(dest, p)
                } else {
                    dest.clone()
                };
                std::fs::copy(run_dir.file(&name), &dest).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("cannot write {}: {e}", dest.display()))
                })?;
            }
        }
    }
    Ok(())
}

/// `dir/name.ext` -> `dir/name-udp.ext`.
fn with_proto(path: &Path, proto: Proto) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{proto}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{proto}"),
    };
    path.with_file_name(name)
}

/// `vmprobe run`: one run, summary on stdout in `--format`; exit status non-zero when QEMU
/// died or a protocol failed (after the partial summary), 3 when it measured but a figure was
/// over its `--limit`.
pub fn execute(args: RunArgs) -> anyhow::Result<()> {
    match run_command(args) {
        Err(RunError::LimitsExceeded(e)) => Err(e.into()),
        r => Ok(r?),
    }
}

/// Says each exceeded limit on stderr; `Err` when there was one.
pub fn limit_verdict<'a>(
    checks: impl IntoIterator<Item = &'a crate::export::lava::Check>,
) -> Result<(), crate::limits::LimitsExceeded> {
    let checks: Vec<_> = checks.into_iter().cloned().collect();
    for c in checks
        .iter()
        .filter(|c| c.result == crate::export::lava::Outcome::Fail)
    {
        eprintln!("vmprobe: limit exceeded: {}", c.line());
    }
    crate::export::lava::verdict(&checks)
}

fn run_command(args: RunArgs) -> Result<(), RunError> {
    if args.compare_modes {
        return compare::execute(args);
    }
    let format = args.rr.format;
    let plan = RunPlan::new(args)?.with_command(std::env::args().skip(1).collect());
    eprintln!("vmprobe: accelerator: {}", plan.vm.accel_reason);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut signals = Signals::new()?;
        let mut hooks = hooks_for(&plan.args);
        let finished = run_one(&plan, &mut hooks, &mut signals).await?;
        output::print(format, &finished.results)?;
        if finished.results.interrupted {
            eprintln!(
                "vmprobe: interrupted: summary of the samples taken so far; everything was torn down"
            );
        }
        let limits = limit_verdict(finished.results.limits.iter().flatten());
        match finished.problem {
            Some(e) => Err(e),
            None => Ok(limits?),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_files_get_the_protocol() {
        assert_eq!(
            with_proto(Path::new("/tmp/s.csv"), Proto::Udp),
            Path::new("/tmp/s-udp.csv")
        );
        assert_eq!(with_proto(Path::new("h"), Proto::Tcp), Path::new("h-tcp"));
    }
}
