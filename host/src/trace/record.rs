//! Recording a trace for a path through tracefs, without disturbing anyone else's tracing.
//!
//! The recorder works in its own tracefs instance (`instances/vmprobe-<pid>-<n>`): its own
//! ring buffer, event switches, function filter, clock and `trace_marker`. The global tracing
//! state is never written, and removing the instance at the end restores everything.
//! A thread drains the instance's `trace_pipe` into the output file while tracing runs, so
//! long runs are not limited by the ring buffer. What the kernel lacks (an event, a traceable
//! function, function tracing altogether) is listed in [`Recorder::notes`], and recording goes
//! on without it.

use super::error::TraceError;
use super::path::PathSpec;
use super::pattern::Pattern;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Events that let `analyze` say what ran on a CPU during a gap, enabled when they exist.
pub const CONTEXT_EVENTS: &[&str] = &[
    "sched_switch",
    "sched_waking",
    "irq_handler_entry",
    "softirq_entry",
    "ipi_entry",
    "ipi_raise",
    "ipi_send_cpu",
    "ipi_send_cpumask",
];

/// Most functions one name pattern of a path may enable in the function tracer.
const MAX_FUNCTIONS_PER_PATTERN: usize = 32;

/// What to record for a path: tracepoints (`system:event`) and, for boundaries no tracepoint
/// of this kernel shows, functions for the function tracer.
#[derive(Debug, Default)]
pub struct Plan {
    /// Tracepoints to enable, `system:event`, stage events first.
    pub tracepoints: Vec<String>,
    /// Functions named exactly.
    pub functions: Vec<String>,
    /// Patterns to expand over the kernel's traceable functions.
    pub function_patterns: Vec<Pattern>,
}

/// Plans the recording of `path` given the kernel's tracepoints (`event` -> `system:event`).
/// Every boundary is recorded by its tracepoint forms where the kernel has any (cheap, and
/// every form of a boundary is as good to the analysis); a boundary without one is recorded
/// by its functions.
pub fn plan(path: &PathSpec, events: &HashMap<String, String>, context: bool) -> Plan {
    let mut p = Plan::default();
    let add_tp = |p: &mut Plan, full: &String| {
        if !p.tracepoints.contains(full) {
            p.tracepoints.push(full.clone());
        }
    };
    for stage in &path.stages {
        let mut by_tracepoint = false;
        let (mut funcs, mut pats) = (Vec::new(), Vec::new());
        for form in &stage.forms {
            for name in &form.names {
                match events.get(name) {
                    Some(full) => {
                        add_tp(&mut p, full);
                        by_tracepoint = true;
                    }
                    None => funcs.push(name.clone()),
                }
            }
            for pat in &form.name_patterns {
                let mut hits: Vec<&String> = events
                    .iter()
                    .filter(|(n, _)| pat.matches(n))
                    .map(|(_, full)| full)
                    .collect();
                hits.sort();
                for full in &hits {
                    add_tp(&mut p, full);
                }
                if hits.is_empty() {
                    pats.push(pat.clone());
                } else {
                    by_tracepoint = true;
                }
            }
        }
        if !by_tracepoint {
            for f in funcs {
                if !p.functions.contains(&f) {
                    p.functions.push(f);
                }
            }
            p.function_patterns.extend(pats);
        }
    }
    if context {
        for name in CONTEXT_EVENTS {
            if let Some(full) = events.get(*name) {
                add_tp(&mut p, full);
            }
        }
    }
    p
}

/// Where tracefs is usually mounted.
pub const DEFAULT_TRACEFS: &str = "/sys/kernel/tracing";

/// Recording settings.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// tracefs mount point; found in /proc/mounts (or mounted at [`DEFAULT_TRACEFS`]) if `None`.
    pub tracefs: Option<PathBuf>,
    /// Ring buffer per CPU, KiB.
    pub buffer_kb: u32,
    /// Also enable [`CONTEXT_EVENTS`].
    pub context_events: bool,
    /// Trace clock; `mono` makes timestamps CLOCK_MONOTONIC seconds. Kept as is if unavailable.
    pub clock: Option<String>,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            tracefs: None,
            buffer_kb: 8192,
            context_events: true,
            clock: Some("mono".into()),
        }
    }
}

/// What a finished recording produced.
#[derive(Debug, Clone)]
pub struct RecordSummary {
    /// The trace text file (tracefs `trace_pipe` format, `analyze` reads it).
    pub output: PathBuf,
    /// Bytes written to it.
    pub bytes: u64,
    /// Events recorded (`system:event`).
    pub events: Vec<String>,
    /// Functions in the function tracer's filter.
    pub functions: Vec<String>,
    /// What was missing or could not be set, one sentence each.
    pub notes: Vec<String>,
    /// Events the kernel dropped (ring buffer overruns).
    pub lost_events: u64,
}

/// Writes `vmprobe seq=N rtt_us=X` lines into the trace. Cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct MarkerWriter {
    file: Arc<File>,
}

impl MarkerWriter {
    /// Marks probe `seq` with its round-trip time (one `write`, so lines never interleave).
    pub fn mark(&self, seq: u64, rtt_us: f64) -> io::Result<()> {
        let line = format!("vmprobe seq={seq} rtt_us={rtt_us:.3}\n");
        (&*self.file).write_all(line.as_bytes())
    }

    /// A new descriptor on the marker file that child processes inherit (no close-on-exec),
    /// for a child that cannot open tracefs itself (another mount namespace).
    pub fn inheritable_fd(&self) -> io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsRawFd;
        let fd = self.file.try_clone()?;
        // SAFETY: F_SETFD on a descriptor we own only changes its close-on-exec flag.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd.into())
    }

    /// Writes a free-form line (trimmed to one line).
    pub fn note(&self, text: &str) -> io::Result<()> {
        let line = format!("{}\n", text.lines().next().unwrap_or(""));
        (&*self.file).write_all(line.as_bytes())
    }
}

/// A running recording. Stop it with [`Recorder::stop`]; dropping it also cleans up.
#[derive(Debug)]
pub struct Recorder {
    instance: PathBuf,
    output: PathBuf,
    events: Vec<String>,
    functions: Vec<String>,
    notes: Vec<String>,
    stop: Arc<AtomicBool>,
    drain: Option<JoinHandle<io::Result<u64>>>,
    marker: MarkerWriter,
}

static INSTANCE_SEQ: AtomicU32 = AtomicU32::new(0);

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> TraceError + 'a {
    move |source| TraceError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// The tracefs mount point: from /proc/mounts, else mounted at [`DEFAULT_TRACEFS`].
pub fn find_or_mount_tracefs() -> Result<PathBuf, TraceError> {
    if let Some(dir) = mounted_tracefs() {
        return Ok(dir);
    }
    let target = Path::new(DEFAULT_TRACEFS);
    if !target.is_dir() {
        return Err(TraceError::Tracefs(format!("tracefs is not mounted and {DEFAULT_TRACEFS} does not exist (kernel without CONFIG_TRACING?)")));
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "tracefs", "nodev", DEFAULT_TRACEFS])
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| {
            TraceError::Tracefs(format!(
                "tracefs is not mounted and `mount` could not run: {e}"
            ))
        })?;
    if status.success() && target.join("instances").is_dir() {
        return Ok(target.to_owned());
    }
    // Another process may have mounted it between our look and our mount ("already mounted"):
    // only a tracefs that is still absent is a failure.
    mounted_tracefs().ok_or_else(|| {
        TraceError::Tracefs(format!(
            "tracefs is not mounted and `mount -t tracefs nodev {DEFAULT_TRACEFS}` failed ({status}); recording needs root"
        ))
    })
}

/// The first tracefs mount point in /proc/mounts.
fn mounted_tracefs() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, dir, kind) = (f.next(), f.next()?, f.next()?);
        (kind == "tracefs").then(|| PathBuf::from(dir))
    })
}

/// `TRACEFS_MAGIC` from linux/magic.h.
const TRACEFS_MAGIC: i64 = 0x7472_6163;

/// Refuses anything but an absolute path to a mounted tracefs: every later path is built from
/// it, and a relative or wrong one would have the recorder write into some other directory
/// (the current one, for an empty path).
pub fn check_tracefs(dir: &Path) -> Result<(), TraceError> {
    if !dir.is_absolute() {
        return Err(TraceError::Tracefs(format!(
            "tracefs location `{}` is not an absolute path",
            dir.display()
        )));
    }
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| {
        TraceError::Tracefs(format!("tracefs location {} contains NUL", dir.display()))
    })?;
    // SAFETY: statfs fills the zeroed struct we own; `c` is NUL-terminated and outlives the call.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(TraceError::Tracefs(format!(
            "tracefs location {}: {}",
            dir.display(),
            io::Error::last_os_error()
        )));
    }
    if st.f_type as i64 != TRACEFS_MAGIC {
        return Err(TraceError::Tracefs(format!(
            "{} is not a tracefs mount (filesystem type {:#x}); mount one with `mount -t tracefs nodev {DEFAULT_TRACEFS}`",
            dir.display(),
            st.f_type as i64
        )));
    }
    Ok(())
}

/// `event` -> `system:event` from `available_events`.
fn available_events(tracefs: &Path) -> Result<HashMap<String, String>, TraceError> {
    let p = tracefs.join("available_events");
    let text = fs::read_to_string(&p).map_err(io_err("reading", &p))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':').map(|(_, e)| (e.to_owned(), l.to_owned())))
        .collect())
}

fn write_file(p: &Path, value: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).truncate(true).open(p)?;
    f.write_all(value.as_bytes())
}

impl Recorder {
    /// Starts recording `path` (plus context events) into `output`: each boundary by its
    /// tracepoint forms where this kernel has them, else by its functions (see [`plan`]).
    pub fn start(
        path: &PathSpec,
        output: &Path,
        opts: &RecordOptions,
    ) -> Result<Recorder, TraceError> {
        let tracefs = match &opts.tracefs {
            Some(t) => t.clone(),
            None => find_or_mount_tracefs()?,
        };
        check_tracefs(&tracefs)?;
        let events = available_events(&tracefs)?;
        let name = format!(
            "vmprobe-{}-{}",
            std::process::id(),
            INSTANCE_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let instance = tracefs.join("instances").join(&name);
        fs::create_dir(&instance).map_err(|e| {
            TraceError::Tracefs(format!(
                "cannot create tracefs instance {}: {e}",
                instance.display()
            ))
        })?;
        // From here on, failure must remove the instance: build the recorder first.
        let out = File::create(output).map_err(io_err("creating", output));
        let out = match out {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_dir(&instance);
                return Err(e);
            }
        };
        let marker_path = instance.join("trace_marker");
        let marker_file = match OpenOptions::new().write(true).open(&marker_path) {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_dir(&instance);
                return Err(TraceError::Io {
                    what: "opening",
                    path: marker_path,
                    source: e,
                });
            }
        };
        let mut rec = Recorder {
            instance,
            output: output.to_owned(),
            events: Vec::new(),
            functions: Vec::new(),
            notes: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            drain: None,
            marker: MarkerWriter {
                file: Arc::new(marker_file),
            },
        };
        rec.configure(&tracefs, path, &events, opts);
        let pipe = rec.instance.join("trace_pipe");
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&pipe)
            .map_err(io_err("opening", &pipe))?;
        let mut w = BufWriter::with_capacity(1 << 20, out);
        let header = format!(
            "# vmprobe trace: path={} events={} functions={}\n",
            path.name,
            rec.events.join(","),
            rec.functions.join(",")
        );
        w.write_all(header.as_bytes())
            .map_err(io_err("writing", output))?;
        let stop = rec.stop.clone();
        rec.drain = Some(std::thread::spawn(move || drain(reader, w, &stop)));
        write_file(&rec.instance.join("tracing_on"), "1")
            .map_err(io_err("starting", &rec.instance))?;
        Ok(rec)
    }

    fn configure(
        &mut self,
        tracefs: &Path,
        path: &PathSpec,
        events: &HashMap<String, String>,
        opts: &RecordOptions,
    ) {
        let inst = self.instance.clone();
        let _ = write_file(&inst.join("tracing_on"), "0");
        if let Err(e) = write_file(&inst.join("buffer_size_kb"), &opts.buffer_kb.to_string()) {
            self.notes.push(format!(
                "could not set buffer_size_kb to {}: {e}",
                opts.buffer_kb
            ));
        }
        if let Some(clock) = &opts.clock {
            if let Err(e) = write_file(&inst.join("trace_clock"), clock) {
                self.notes.push(format!(
                    "trace clock `{clock}` unavailable ({e}); using the default"
                ));
            }
        }
        let plan = plan(path, events, opts.context_events);
        for full in &plan.tracepoints {
            let (sys, name) = full.split_once(':').unwrap_or(("", full));
            let enable = inst.join("events").join(sys).join(name).join("enable");
            match write_file(&enable, "1") {
                Ok(()) => self.events.push(full.clone()),
                Err(e) => self
                    .notes
                    .push(format!("event {full}: cannot enable ({e})")),
            }
        }
        if plan.functions.is_empty() && plan.function_patterns.is_empty() {
            return;
        }
        let avail = tracefs.join("available_filter_functions");
        let known = match read_function_names(&avail) {
            Ok(k) => k,
            Err(e) => {
                let mut all = plan.functions.clone();
                all.extend(plan.function_patterns.iter().map(|p| p.to_string()));
                self.notes.push(format!(
                    "function tracing unavailable ({}: {e}); {} will not be recorded",
                    avail.display(),
                    all.join(", ")
                ));
                return;
            }
        };
        let (mut present, absent): (Vec<String>, Vec<String>) =
            plan.functions.into_iter().partition(|f| known.contains(f));
        if !absent.is_empty() {
            self.notes.push(format!(
                "no tracepoint or traceable function named {} on this kernel; not recorded",
                absent.join(", ")
            ));
        }
        for p in &plan.function_patterns {
            let mut hits: Vec<&String> = known.iter().filter(|f| p.matches(f)).collect();
            hits.sort();
            if hits.is_empty() {
                self.notes.push(format!(
                    "no traceable function matches `{p}` on this kernel; not recorded"
                ));
            } else if hits.len() > MAX_FUNCTIONS_PER_PATTERN {
                self.notes.push(format!(
                    "`{p}` matches {} functions (more than {MAX_FUNCTIONS_PER_PATTERN}); not recorded, name them in a path file",
                    hits.len()
                ));
            } else {
                present.extend(
                    hits.into_iter()
                        .filter(|h| !present.contains(h))
                        .cloned()
                        .collect::<Vec<_>>(),
                );
            }
        }
        if present.is_empty() {
            return;
        }
        // Never switch the function tracer on without a filter: it would trace everything.
        let filter = inst.join("set_ftrace_filter");
        if let Err(e) = write_file(&filter, &present.join("\n")) {
            self.notes.push(format!(
                "cannot set {} ({e}); functions {} not recorded",
                filter.display(),
                present.join(", ")
            ));
            let _ = write_file(&filter, "");
            return;
        }
        match write_file(&inst.join("current_tracer"), "function") {
            Ok(()) => self.functions = present,
            Err(e) => {
                self.notes.push(format!(
                    "cannot select the function tracer ({e}); functions {} not recorded",
                    present.join(", ")
                ));
                let _ = write_file(&filter, "");
            }
        }
    }

    /// The private tracefs instance directory (removed by [`Recorder::stop`]).
    pub fn instance(&self) -> &Path {
        &self.instance
    }

    /// What was missing or could not be set up, one sentence each.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Events being recorded (`system:event`).
    pub fn events(&self) -> &[String] {
        &self.events
    }

    /// Functions being recorded.
    pub fn functions(&self) -> &[String] {
        &self.functions
    }

    /// A handle writing marker lines into this recording.
    pub fn marker(&self) -> MarkerWriter {
        self.marker.clone()
    }

    /// Stops tracing, drains what is buffered into the output, removes the instance.
    pub fn stop(mut self) -> Result<RecordSummary, TraceError> {
        let result = self.finish();
        let lost = result.as_ref().map(|(_, l)| *l).unwrap_or(0);
        let removed = self.remove_instance();
        let (bytes, _) = result?;
        removed?;
        Ok(RecordSummary {
            output: self.output.clone(),
            bytes,
            events: std::mem::take(&mut self.events),
            functions: std::mem::take(&mut self.functions),
            notes: std::mem::take(&mut self.notes),
            lost_events: lost,
        })
    }

    /// Stops tracing and the drain thread; returns bytes written and events lost.
    fn finish(&mut self) -> Result<(u64, u64), TraceError> {
        let _ = write_file(&self.instance.join("tracing_on"), "0");
        self.stop.store(true, Ordering::Release);
        let lost = self.lost_events();
        let bytes = match self.drain.take() {
            Some(h) => h
                .join()
                .map_err(|_| TraceError::Tracefs("trace drain thread panicked".into()))?
                .map_err(io_err("writing", &self.output))?,
            None => 0,
        };
        Ok((bytes, lost))
    }

    fn lost_events(&self) -> u64 {
        let Ok(dir) = fs::read_dir(self.instance.join("per_cpu")) else {
            return 0;
        };
        dir.flatten()
            .filter_map(|d| fs::read_to_string(d.path().join("stats")).ok())
            .flat_map(|s| {
                s.lines()
                    .filter_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        matches!(k.trim(), "overrun" | "dropped events")
                            .then(|| v.trim().parse::<u64>().ok())?
                    })
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    fn remove_instance(&mut self) -> Result<(), TraceError> {
        if !self.instance.exists() {
            return Ok(());
        }
        // The instance cannot be removed while a file in it is open: close the marker.
        self.marker = MarkerWriter {
            file: Arc::new(
                File::open("/dev/null").map_err(io_err("opening", Path::new("/dev/null")))?,
            ),
        };
        let mut last = None;
        for _ in 0..50 {
            match fs::remove_dir(&self.instance) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => last = Some(e),
            }
            // EBUSY while a clone of the marker writer or a reader still holds a file.
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(TraceError::Tracefs(format!(
            "could not remove tracefs instance {} ({}); remove it with rmdir once nothing holds its files",
            self.instance.display(),
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.drain.is_some() {
            let _ = self.finish();
        }
        let _ = self.remove_instance();
    }
}

fn read_function_names(p: &Path) -> io::Result<std::collections::HashSet<String>> {
    let mut text = String::new();
    File::open(p)?.read_to_string(&mut text)?;
    // Lines are `name` or `name [module]`.
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect())
}

/// Copies `trace_pipe` to the output until told to stop and the pipe is empty.
fn drain(mut pipe: File, mut out: BufWriter<File>, stop: &AtomicBool) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    // Once stop is seen (tracing is already off), read until empty once more, then end.
    let mut last_pass = false;
    loop {
        let empty = match pipe.read(&mut buf) {
            Ok(0) => true,
            Ok(n) => {
                out.write_all(&buf[..n])?;
                total += n as u64;
                false
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => false,
            Err(e) => return Err(e),
        };
        if empty {
            if last_pass {
                break;
            }
            if stop.load(Ordering::Acquire) {
                last_pass = true;
            } else {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    out.flush()?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(events: &[&str]) -> HashMap<String, String> {
        events
            .iter()
            .map(|e| (e.split_once(':').unwrap().1.to_owned(), e.to_string()))
            .collect()
    }

    #[test]
    fn every_boundary_by_a_tracepoint_where_the_kernel_has_one() {
        let path = PathSpec::resolve("arm64-vhost").unwrap();
        let arm64 = kernel(&[
            "irq:irq_handler_entry",
            "net:netif_receive_skb",
            "net:net_dev_xmit",
            "skb:skb_copy_datagram_iovec",
            "kvm:vgic_update_irq_pending",
            "kvm:kvm_vcpu_wakeup",
            "kvm:kvm_entry",
            "sched:sched_switch",
        ]);
        let p = plan(&path, &arm64, true);
        assert_eq!(
            p.tracepoints,
            [
                "irq:irq_handler_entry",
                "net:netif_receive_skb",
                "net:net_dev_xmit",
                "skb:skb_copy_datagram_iovec",
                "kvm:vgic_update_irq_pending",
                "kvm:kvm_vcpu_wakeup",
                "kvm:kvm_entry",
                "sched:sched_switch",
            ]
        );
        assert!(p.functions.is_empty() && p.function_patterns.is_empty());
        // A kernel without the vGIC tracepoint (not arm64): that boundary by its names as
        // functions (those the kernel cannot trace are named in the recorder's notes).
        let mut x86 = arm64;
        x86.remove("vgic_update_irq_pending");
        let p = plan(&path, &x86, false);
        assert_eq!(
            p.functions,
            ["kvm_vgic_inject_irq", "vgic_update_irq_pending"]
        );
        assert!(!p.tracepoints.contains(&"sched:sched_switch".to_owned()));
        // Without any NIC tracepoint, the driver's handlers as a pattern for the function tracer.
        let mut bare = x86;
        bare.remove("irq_handler_entry");
        let p = plan(&path, &bare, false);
        assert_eq!(p.function_patterns.len(), 1);
        assert!(p.function_patterns[0].matches("igc_msix_ring"));
    }
}
