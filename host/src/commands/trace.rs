//! `vmprobe trace`: analyse a recorded trace, record one while a command runs, list paths.
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::duration::parse_duration_ns;
use crate::trace::{self, analyze_file, Config, PathSpec, RecordOptions, Recorder};

/// `vmprobe trace ...`
#[derive(Args, Debug)]
pub struct TraceArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TraceCommand,
}

/// Subcommands of `vmprobe trace`.
#[derive(Subcommand, Debug)]
pub enum TraceCommand {
    /// Follow packets through a recorded trace and report per-stage latency and gaps.
    Analyze(AnalyzeArgs),
    /// Record a trace for a path while a command runs (root; tracefs).
    Record(RecordArgs),
    /// List the built-in paths, or print one as a TOML template.
    Paths {
        /// Built-in path to print.
        name: Option<String>,
    },
}

/// Output format of `trace analyze`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Per-stage table and gaps.
    Text,
    /// One JSON object.
    Json,
}

/// `vmprobe trace analyze FILE [--path ...] [--gap DUR] [--format text|json]`
#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// `trace-cmd report` text, a tracefs `trace` file, a binary trace.dat, or `-` for stdin.
    pub file: PathBuf,
    /// Built-in path (arm64-vhost, tap-tcg) or a TOML path file.
    #[arg(long, default_value = "arm64-vhost")]
    pub path: String,
    /// Set a path variable, e.g. `--var tap=vmptap0 --var qemu_pid=1234` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Report stages longer than this (e.g. 500us, 2ms).
    #[arg(long, default_value = "500us", value_parser = parse_duration_ns)]
    pub gap: u64,
    /// A started packet that stalls longer than this is incomplete (default: the path's).
    #[arg(long, value_parser = parse_duration_ns)]
    pub timeout: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `vmprobe trace record --path P --output FILE -- CMD [ARGS...]`
#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Built-in path or TOML path file whose events and functions to record.
    #[arg(long, default_value = "tap-tcg")]
    pub path: String,
    /// Set a path variable (as for `analyze`).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Where to write the trace (tracefs text format; `trace analyze` reads it).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Ring buffer per CPU, KiB.
    #[arg(long, default_value_t = 8192)]
    pub buffer_kb: u32,
    /// Record only the path's events, not the scheduler/IRQ/IPI context for gaps.
    #[arg(long)]
    pub no_context: bool,
    /// The command to run while recording. It may mark outliers by writing
    /// `vmprobe seq=N rtt_us=X` lines to $VMPROBE_TRACE_MARKER (a /dev/fd path; the
    /// descriptor number is also in $VMPROBE_TRACE_MARKER_FD).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not NAME=VALUE")),
    }
}

/// Records while `r.command` runs. Ctrl-C goes to the command; the recording is still
/// stopped, saved and cleaned up.
fn record_command(r: &RecordArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    use anyhow::Context;
    let spec = PathSpec::resolve_with(&r.path, &r.vars)?;
    let opts = RecordOptions {
        buffer_kb: r.buffer_kb,
        context_events: !r.no_context,
        ..RecordOptions::default()
    };
    let rec = Recorder::start(&spec, &r.output, &opts)?;
    for n in rec.notes() {
        eprintln!("vmprobe: trace: {n}");
    }
    // The command may run in another mount namespace (`ip netns exec` remounts /sys), so it
    // gets an inherited descriptor rather than a tracefs path.
    let marker = rec.marker().inheritable_fd()?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&marker);
    let child = std::process::Command::new(&r.command[0])
        .args(&r.command[1..])
        .env("VMPROBE_TRACE_MARKER", format!("/dev/fd/{fd}"))
        .env("VMPROBE_TRACE_MARKER_FD", fd.to_string())
        .spawn()
        .with_context(|| format!("running {}", r.command[0]));
    drop(marker);
    let status = child.map(|mut c| {
        let _guard = IgnoreInterrupt::new();
        c.wait()
    });
    let summary = rec.stop()?;
    writeln!(
        out,
        "recorded {} bytes to {} ({} events, {} functions, {} lost)",
        summary.bytes,
        summary.output.display(),
        summary.events.join(","),
        if summary.functions.is_empty() {
            "no".into()
        } else {
            summary.functions.join(",")
        },
        summary.lost_events
    )?;
    let status = status??;
    if !status.success() {
        anyhow::bail!("{} exited with {status} (the trace is saved)", r.command[0]);
    }
    Ok(())
}

/// Ignores SIGINT in this process while it lives (the child still gets Ctrl-C), so the
/// recording is stopped and its tracefs instance removed.
struct IgnoreInterrupt(libc::sighandler_t);

impl IgnoreInterrupt {
    fn new() -> Self {
        // SAFETY: installing SIG_IGN for SIGINT has no memory-safety preconditions.
        IgnoreInterrupt(unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) })
    }
}

impl Drop for IgnoreInterrupt {
    fn drop(&mut self) {
        // SAFETY: restores the handler that was installed before; no other preconditions.
        unsafe { libc::signal(libc::SIGINT, self.0) };
    }
}

/// Runs `vmprobe trace ...`, writing to `out`. A closed output (`| head`) is not an error.
pub fn execute(args: TraceArgs) -> anyhow::Result<()> {
    match run_inner(&args, &mut std::io::stdout().lock()) {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

fn run_inner(args: &TraceArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    match &args.command {
        TraceCommand::Analyze(a) => {
            let spec = PathSpec::resolve_with(&a.path, &a.vars)?;
            let cfg = Config {
                gap_ns: a.gap,
                timeout_ns: a.timeout,
                ..Config::default()
            };
            let report = analyze_file(&a.file, spec, cfg)?;
            match a.format {
                Format::Json => report.write_json(out)?,
                Format::Text => report.write_text(out)?,
            }
        }
        TraceCommand::Record(r) => record_command(r, out)?,
        TraceCommand::Paths { name: None } => {
            for (name, text) in trace::path::BUILTIN {
                let spec = PathSpec::from_toml(text, name)?;
                let stages: Vec<&str> = spec.stages.iter().map(|s| s.name.as_str()).collect();
                writeln!(out, "{name}: {}", stages.join(" -> "))?;
            }
        }
        TraceCommand::Paths { name: Some(n) } => {
            let Some((_, text)) = trace::path::BUILTIN.iter().find(|(b, _)| b == n) else {
                anyhow::bail!("no built-in path `{n}`; `vmprobe trace paths` lists them");
            };
            out.write_all(text.as_bytes())?;
        }
    }
    Ok(())
}
