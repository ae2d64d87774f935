//! `vmprobe run --trace`: record a host trace of the packet path while measuring, mark each
//! slow round trip in it, then analyse it into the run directory and the results.
//!
//! The recorder ([`crate::trace::Recorder`]) runs in a private tracefs instance from the
//! guest being ready until the last protocol is measured. The measuring thread writes one
//! `vmprobe seq=N rtt_us=X` marker for every round trip longer than `--gap`, from the rr
//! engine's sample sink, i.e. after the sample is taken and outside the timed window. The path's
//! variables are filled in from the run (tap name, QEMU's pid, the measuring threads' ids)
//! when analysing, so other VMs and other senders on the machine do not mix in.
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::args::RunArgs;
use super::hooks::{HookError, RunHook, SampleObserver};
use super::results::RunResults;
use crate::duration::parse_duration_ns;
use crate::rr::engine::Outcome;
use crate::trace::path::BUILTIN;
use crate::trace::report::Ordered;
use crate::trace::stats::StageSummary;
use crate::trace::{analyze_file, Config, PathSpec, RecordOptions, Recorder, Report};
use crate::vm::options::{Net, OnOff};
use crate::vm::Vm;

/// Files `--trace` adds to the run directory.
pub mod files {
    /// The recorded trace (tracefs text; `vmprobe trace analyze` reads it).
    pub const EVENTS: &str = "trace-events.txt";
    /// `vmprobe trace analyze --format json` of it.
    pub const JSON: &str = "trace.json";
    /// `vmprobe trace analyze` text of it.
    pub const TEXT: &str = "trace.txt";
}

/// `run`'s tracing options.
#[derive(Args, Debug, Clone)]
pub struct TraceRunArgs {
    /// Record a host trace while measuring (root, tracefs), mark round trips longer than
    /// --gap in it, analyse it into the run directory (trace.json, trace.txt)
    #[arg(long)]
    pub trace: bool,
    /// Path to follow: tap-tcg, arm64-vhost or FILE.toml [default: arm64-vhost with
    /// --vhost on, else tap-tcg]
    #[arg(long, value_name = "PATH", requires = "trace")]
    pub trace_path: Option<String>,
    /// With --trace: stages longer than this are reported as gaps, round trips longer than
    /// this are marked (e.g. 500us, 2ms)
    #[arg(long, value_name = "DUR", default_value = "500us", value_parser = parse_duration_ns)]
    pub gap: u64,
}

/// The measuring thread's command name (the sender of the requests in the trace).
const CLIENT_COMM: &str = "vmprobe-rr";

impl TraceRunArgs {
    /// The path to follow for this VM configuration.
    pub fn path_name(&self, args: &RunArgs) -> String {
        match &self.trace_path {
            Some(p) => p.clone(),
            None if args.vm.vhost == OnOff::On => "arm64-vhost".into(),
            None => "tap-tcg".into(),
        }
    }

    /// Checks before booting: root, a path that parses, a network the path can follow.
    pub fn validate(&self, args: &RunArgs) -> Result<(), String> {
        if !self.trace {
            return Ok(());
        }
        if !crate::os::is_root() {
            return Err("--trace needs root (it records through tracefs): run as root".into());
        }
        let name = self.path_name(args);
        PathSpec::resolve(&name).map_err(|e| format!("--trace-path: {e}"))?;
        if args.vm.net == Net::User && BUILTIN.iter().any(|(b, _)| *b == name) {
            return Err(
                "--trace follows packets through a tap device, and --net user has none: \
                 use --net tap, bridge or macvtap (or --trace-path FILE.toml with a path for \
                 user networking)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Counts of what the measuring thread marked.
#[derive(Default)]
struct Marks {
    written: AtomicU64,
    failed: AtomicU64,
    last_tid: AtomicU32,
    /// Thread ids of the measuring threads (one per protocol).
    tids: Mutex<Vec<u32>>,
}

/// A recording in progress.
struct Active {
    recorder: Recorder,
    vars: Vec<(String, String)>,
}

/// The `--trace` hook: starts the recorder before measuring, analyses after.
pub struct TraceHook {
    path: String,
    gap_ns: u64,
    active: Option<Active>,
    observer: Option<SampleObserver>,
    marks: Arc<Marks>,
    notes: Vec<String>,
}

impl TraceHook {
    /// The hook for `args`, when `--trace` is given.
    pub fn for_args(args: &RunArgs) -> Option<TraceHook> {
        args.trace.trace.then(|| TraceHook {
            path: args.trace.path_name(args),
            gap_ns: args.trace.gap,
            active: None,
            observer: None,
            marks: Arc::default(),
            notes: Vec::new(),
        })
    }

    fn note(&mut self, text: String) {
        eprintln!("vmprobe: trace: {text}");
        self.notes.push(text);
    }

    /// Stops the recording and analyses it; `Err` is a note for the results.
    fn finish(&mut self, vm: &Vm) -> Result<(Recorded, Analysis, String), String> {
        let Some(Active { recorder, mut vars }) = self.active.take() else {
            return Err("no trace was recorded".into());
        };
        // The recorder's instance cannot go while a marker descriptor is open.
        self.observer = None;
        let summary = recorder.stop().map_err(|e| e.to_string())?;
        let tids = self
            .marks
            .tids
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        if !tids.is_empty() && declared_vars(&self.path).iter().any(|v| v == "client_pid") {
            let list: Vec<String> = tids.iter().map(u32::to_string).collect();
            vars.push(("client_pid".into(), format!("re:^({})$", list.join("|"))));
        }
        let recorded = Recorded {
            path_spec: self.path.clone(),
            file: summary.output.clone(),
            vars: vars.iter().cloned().collect(),
            events_recorded: summary.events.clone(),
            functions_recorded: summary.functions.clone(),
            bytes: summary.bytes,
            lost_events: summary.lost_events,
            mark_threshold_us: self.gap_ns as f64 / 1e3,
            marked: self.marks.written.load(Ordering::Relaxed),
        };
        let failed = self.marks.failed.load(Ordering::Relaxed);
        if failed > 0 {
            self.note(format!("{failed} outlier markers could not be written"));
        }
        let spec = PathSpec::resolve_with(&self.path, &vars).map_err(|e| e.to_string())?;
        let cfg = Config {
            gap_ns: self.gap_ns,
            ..Config::default()
        };
        let report = analyze_file(&summary.output, spec, cfg).map_err(|e| e.to_string())?;
        let run_dir = vm.run_dir();
        let mut json_bytes = Vec::new();
        report
            .write_json(&mut json_bytes)
            .map_err(|e| e.to_string())?;
        let mut text = Vec::new();
        report.write_text(&mut text).map_err(|e| e.to_string())?;
        for (name, bytes) in [(files::JSON, &json_bytes), (files::TEXT, &text)] {
            run_dir
                .write(name, &String::from_utf8_lossy(bytes))
                .map_err(|e| e.to_string())?;
        }
        eprintln!(
            "vmprobe: trace: {} packets followed along {}, {} gaps over {} us; {}",
            report.packets,
            self.path,
            report.gaps.len() as u64 + report.gaps_omitted,
            self.gap_ns / 1000,
            run_dir.file(files::TEXT).display()
        );
        Ok((recorded, Analysis::of(&report), report.path.clone()))
    }
}

/// `trace` in `run`'s results: the recording and the analysis's counts and per-stage
/// statistics (the full report with every gap is `trace.json`), or why there is none.
#[derive(Clone, Debug, Serialize)]
pub struct RunTrace {
    /// The path followed: its name once analysed, else as given.
    pub path: String,
    /// What was recorded.
    #[serde(flatten)]
    pub recorded: Option<Recorded>,
    /// What the analysis found.
    #[serde(flatten)]
    pub analysis: Option<Analysis>,
    /// Why there is no analysis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Events this kernel lacks, markers that could not be written, and the like.
    pub notes: Vec<String>,
}

/// The recording of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Recorded {
    /// `--trace-path` as given (a built-in name or a file).
    pub path_spec: String,
    /// The trace file.
    pub file: PathBuf,
    /// The path variables filled in from the run.
    pub vars: BTreeMap<String, String>,
    /// Events recorded (`system:event`).
    pub events_recorded: Vec<String>,
    /// Functions traced.
    pub functions_recorded: Vec<String>,
    /// Size of the trace file.
    pub bytes: u64,
    /// Events the kernel dropped.
    pub lost_events: u64,
    /// Round trips at least this long were marked, us.
    pub mark_threshold_us: f64,
    /// Markers written.
    pub marked: u64,
}

/// The analysis's counts and statistics, as `trace analyze` names them.
#[derive(Clone, Debug, Serialize)]
pub struct Analysis {
    /// Packets that crossed every stage.
    pub packets: u64,
    /// Packets that started and did not finish.
    pub incomplete: u64,
    /// Incomplete packets by the last stage they reached.
    pub incomplete_after: Ordered<u64>,
    /// Packets that went past each optional stage without it.
    pub skipped: Ordered<u64>,
    /// Per consecutive stage pair.
    pub stages: Ordered<StageSummary>,
    /// First to last stage.
    pub total: StageSummary,
    /// The gap threshold, us.
    pub gap_threshold_us: f64,
    /// Events parsed.
    pub events: u64,
    /// Lines that were neither events nor headers.
    pub unparsed_lines: u64,
    /// Stages longer than the gap threshold.
    pub gaps: u64,
    /// Outlier markers found in the trace.
    pub markers: u64,
    /// Markers next to a gap.
    pub markers_near_gaps: u64,
}

impl Analysis {
    fn of(r: &Report) -> Analysis {
        Analysis {
            packets: r.packets,
            incomplete: r.incomplete,
            incomplete_after: r.incomplete_after.clone(),
            skipped: r.skipped.clone(),
            stages: r.stages.clone(),
            total: r.total.clone(),
            gap_threshold_us: r.gap_threshold_us,
            events: r.events,
            unparsed_lines: r.unparsed_lines,
            gaps: r.gaps.len() as u64 + r.gaps_omitted,
            markers: r.markers.len() as u64 + r.markers_omitted,
            markers_near_gaps: r.markers.iter().filter(|m| !m.gaps.is_empty()).count() as u64,
        }
    }
}

/// Variables a path declares in its `[vars]` table.
fn declared_vars(path: &str) -> Vec<String> {
    let text = match BUILTIN.iter().find(|(n, _)| *n == path) {
        Some((_, t)) => t.to_string(),
        None => std::fs::read_to_string(path).unwrap_or_default(),
    };
    toml::from_str::<toml::Table>(&text)
        .ok()
        .and_then(|t| t.get("vars").and_then(|v| v.as_table()).cloned())
        .map(|v| v.keys().cloned().collect())
        .unwrap_or_default()
}

/// The path variables this VM fills in (only those the path declares are passed).
fn run_vars(vm: &Vm, declared: &[String]) -> Vec<(String, String)> {
    let info = vm.info();
    let qemu_pid = info.qemu_pid.to_string();
    // Where the requests leave the client's stack and the replies come back in: the tap
    // (also on the bridge), or the client's veth for macvtap (the macvtap sits on its peer).
    let link = match info.config.net {
        Net::Macvtap => crate::netsetup::VETH_HOST1,
        _ => vm.tap_name().unwrap_or(crate::netsetup::TAP),
    };
    let mut vars = vec![
        ("tap".to_string(), link.to_string()),
        ("qemu_pid".into(), qemu_pid.clone()),
        ("client".into(), CLIENT_COMM.into()),
    ];
    // QEMU's main loop writes the reply into the tap itself (and the tap's own ingress hook
    // redirects it on the eBPF bridge); on macvtap the reply reaches the client's veth in a
    // softirq, in any task.
    if matches!(
        info.config.net,
        Net::Tap | Net::Bridge | Net::Ebpf | Net::Ovs
    ) {
        vars.push(("reply_pid".into(), qemu_pid));
    }
    vars.retain(|(k, _)| declared.contains(k));
    vars
}

impl RunHook for TraceHook {
    fn name(&self) -> &str {
        "trace"
    }

    fn before_measure(&mut self, vm: &Vm, _args: &RunArgs) -> Result<(), HookError> {
        let vars = run_vars(vm, &declared_vars(&self.path));
        let spec = PathSpec::resolve_with(&self.path, &vars)?;
        let out = vm.run_dir().file(files::EVENTS);
        let recorder = match Recorder::start(&spec, &out, &RecordOptions::default()) {
            Ok(r) => r,
            Err(e) => {
                self.note(format!("not recording, measuring without a trace: {e}"));
                return Ok(());
            }
        };
        for n in recorder.notes().to_vec() {
            self.note(n);
        }
        let marker = recorder.marker();
        let marks = self.marks.clone();
        let threshold = self.gap_ns;
        self.observer = Some(Arc::new(move |s: &crate::rr::Sample| {
            // SAFETY: gettid has no preconditions and cannot fail.
            let tid = unsafe { libc::gettid() } as u32;
            if marks.last_tid.swap(tid, Ordering::Relaxed) != tid {
                if let Ok(mut t) = marks.tids.lock() {
                    if !t.contains(&tid) {
                        t.push(tid);
                    }
                }
            }
            if let Outcome::Reply { rtt_ns, .. } = s.outcome {
                if rtt_ns >= threshold {
                    let c = match marker.mark(s.id.seq, rtt_ns as f64 / 1e3) {
                        Ok(()) => &marks.written,
                        Err(_) => &marks.failed,
                    };
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
        self.active = Some(Active { recorder, vars });
        Ok(())
    }

    fn observer(&self) -> Option<SampleObserver> {
        self.observer.clone()
    }

    fn after_measure(&mut self, vm: &Vm, results: &mut RunResults) -> Result<(), HookError> {
        let trace = match self.finish(vm) {
            Ok((recorded, analysis, path)) => RunTrace {
                path,
                recorded: Some(recorded),
                analysis: Some(analysis),
                error: None,
                notes: Vec::new(),
            },
            Err(e) => {
                self.note(format!("no analysis: {e}"));
                RunTrace {
                    path: self.path.clone(),
                    recorded: None,
                    analysis: None,
                    error: Some(e),
                    notes: Vec::new(),
                }
            }
        };
        results.trace = Some(RunTrace {
            notes: self.notes.clone(),
            ..trace
        });
        Ok(())
    }
}
