//! The analysis result (its JSON keys are a stable interface: only ever added) and its text
//! rendering.

use super::stats::StageSummary;
use super::timeline::{Activity, Count};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::io::{self, Write};

/// A map that keeps its insertion order in JSON (stage order matters).
#[derive(Debug, Clone, PartialEq)]
pub struct Ordered<T>(pub Vec<(String, T)>);

impl<T: Serialize> Serialize for Ordered<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Result of `vmprobe trace analyze`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Path name.
    pub path: String,
    /// Packets that crossed every stage.
    pub packets: u64,
    /// Packets that started but did not finish (stalled past the timeout, dropped by the
    /// in-flight bound, or still in flight at the end of the trace).
    pub incomplete: u64,
    /// Incomplete packets by the last stage they reached.
    pub incomplete_after: Ordered<u64>,
    /// Packets that went past each optional stage without it (only optional stages listed).
    pub skipped: Ordered<u64>,
    /// Per consecutive stage pair `<from>__<to>`.
    pub stages: Ordered<StageSummary>,
    /// First to last stage.
    pub total: StageSummary,
    /// The `--gap` threshold.
    pub gap_threshold_us: f64,
    /// The stall timeout used.
    pub timeout_us: f64,
    /// Every stage longer than the gap threshold (up to a bound).
    pub gaps: Vec<Gap>,
    /// Gaps beyond the bound.
    pub gaps_omitted: u64,
    /// `vmprobe seq=N rtt_us=X` trace markers.
    pub markers: Vec<Marker>,
    /// Markers beyond the bound.
    pub markers_omitted: u64,
    /// Lines that were neither events nor headers.
    pub unparsed_lines: u64,
    /// The first few of them.
    pub unparsed_examples: Vec<Unparsed>,
    /// Lines read.
    pub lines: u64,
    /// Events parsed.
    pub events: u64,
    /// Events the kernel reported lost.
    pub lost_events: u64,
    /// First event's timestamp, seconds.
    pub first_ts: Option<f64>,
    /// Last event's timestamp, seconds.
    pub last_ts: Option<f64>,
    /// Events whose timestamp went backwards.
    pub timestamps_out_of_order: u64,
    /// Per stage: the event (tracepoint or function) that first carried a packet across it;
    /// of a boundary with several forms, that form is the one used. Null: never crossed.
    pub crossed_by: Ordered<Option<String>>,
    /// When no packet crossed every stage: what the trace holds and which path comes closest.
    pub diagnosis: Option<Diagnosis>,
}

/// Why a path matched nothing: the trace's events, each stage's forms found in it, and the
/// built-in path with the most boundaries present.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Diagnosis {
    /// Event and traced-function names in the trace, most frequent first (the first 40).
    pub trace_events: Vec<Count>,
    /// Events with names beyond those.
    pub other_events: u64,
    /// Per stage of the path: its events and those of them the trace holds.
    pub stage_events: Ordered<StageSeen>,
    /// The built-in path (other than this one) with the most boundaries in the trace.
    pub closest: Option<Closest>,
}

/// A stage's events in a trace.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageSeen {
    /// The stage's event names and name patterns, as written in the path.
    pub events: Vec<String>,
    /// The trace's events that are one of them (by name: the stage's task, pid and field
    /// matchers may still have refused them). Empty: none in the trace.
    pub found: Vec<Count>,
}

/// How close a built-in path comes to a trace.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Closest {
    /// The built-in path.
    pub path: String,
    /// Its stages with at least one form's event in the trace.
    pub present: usize,
    /// Its stages.
    pub stages: usize,
    /// The stages none of whose events are in the trace.
    pub missing: Vec<String>,
}

/// Who handed the CPU to the task that ended a gap.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Handover {
    /// Command name.
    pub task: String,
    /// Pid (thread id).
    pub pid: u32,
    /// Same command name as the task it handed over to: most likely another thread of the
    /// same program (a QEMU worker next to a vCPU thread).
    pub same_command: bool,
}

/// One stage that took longer than the gap threshold.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Gap {
    /// Stage start (the earlier boundary's timestamp), seconds.
    pub start: f64,
    /// Length of the stage.
    pub duration_us: f64,
    /// CPU of the later boundary: where the packet was waiting to be picked up.
    pub cpu: u32,
    /// CPU of the earlier boundary.
    pub from_cpu: u32,
    /// The stage, `<from>__<to>`.
    pub stage: String,
    /// Packet number (in start order).
    pub packet: u64,
    /// Task that finally crossed the later boundary.
    pub task: String,
    /// Its pid.
    pub pid: u32,
    /// How long that task itself ran during the gap, on any CPU: near 0 means it was kept
    /// off the CPU (the users' kicked-but-not-running vCPU); near the whole gap means the
    /// time was its own work (under TCG, emulating the guest).
    pub task_ran_us: f64,
    /// `task_ran_us` as a fraction of the gap.
    pub task_share: f64,
    /// CPUs it ran on during the gap.
    pub task_cpus: Vec<u32>,
    /// The task running on `cpu` just before that task was last switched in during the gap:
    /// the one that ended the wait by giving up the CPU.
    pub handed_over_by: Option<Handover>,
    /// What ran on `cpu` meanwhile.
    #[serde(flatten)]
    pub activity: Activity,
    /// Sequence numbers of markers whose round trip overlaps this gap.
    pub markers: Vec<u64>,
}

/// A `vmprobe seq=N rtt_us=X` line written through `trace_marker`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Marker {
    /// Probe sequence number.
    pub seq: u64,
    /// Round-trip time the probe measured.
    pub rtt_us: f64,
    /// When the marker was written, seconds.
    pub ts: f64,
    /// Same, nanoseconds (internal).
    #[serde(skip)]
    pub ts_ns: u64,
    /// CPU of the writer.
    pub cpu: u32,
    /// Indices into `gaps` of the gaps during this round trip.
    pub gaps: Vec<usize>,
}

/// An unparseable line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unparsed {
    /// 1-based line number.
    pub line: u64,
    /// Its text (shortened).
    pub text: String,
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

fn counts(list: &[Count]) -> String {
    let v: Vec<String> = list
        .iter()
        .map(|c| format!("{} x{}", c.name, c.count))
        .collect();
    v.join(", ")
}

impl Report {
    fn write_diagnosis(&self, d: &Diagnosis, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "\nno packet crossed every stage of path {}. The trace holds: {}{}",
            self.path,
            counts(&d.trace_events),
            if d.other_events > 0 {
                format!(", {} more", d.other_events)
            } else {
                String::new()
            }
        )?;
        writeln!(out, "stages of path {} in this trace:", self.path)?;
        for (stage, seen) in &d.stage_events.0 {
            if seen.found.is_empty() {
                writeln!(out, "  {stage}: none of {}", seen.events.join(", "))?;
            } else {
                writeln!(out, "  {stage}: {}", counts(&seen.found))?;
            }
        }
        if let Some(c) = &d.closest {
            writeln!(
                out,
                "closest built-in path: {} ({} of {} boundaries in this trace{})",
                c.path,
                c.present,
                c.stages,
                if c.missing.is_empty() {
                    String::new()
                } else {
                    format!("; missing {}", c.missing.join(", "))
                }
            )?;
        }
        Ok(())
    }

    /// Writes the report as one JSON object.
    pub fn write_json(&self, out: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self)?;
        writeln!(out)
    }

    /// Writes a readable per-stage table, then the gaps with what ran meanwhile.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "path {}: {} packets complete, {} incomplete; {} events in {} lines, {} unparsed, {} lost",
            self.path, self.packets, self.incomplete, self.events, self.lines, self.unparsed_lines, self.lost_events
        )?;
        let w = self
            .stages
            .0
            .iter()
            .map(|(n, _)| n.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            out,
            "\n{:<w$} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "stage", "count", "min_us", "p50_us", "p99_us", "max_us", "mean_us"
        )?;
        let row = |out: &mut dyn Write, name: &str, s: &StageSummary| {
            writeln!(
                out,
                "{:<w$} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
                name,
                s.count,
                num(s.min_us),
                num(s.p50_us),
                num(s.p99_us),
                num(s.max_us),
                num(s.mean_us)
            )
        };
        for (n, s) in &self.stages.0 {
            row(out, n, s)?;
        }
        row(out, "total", &self.total)?;
        if self.incomplete > 0 {
            let after: Vec<String> = self
                .incomplete_after
                .0
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(s, n)| format!("{n} after {s}"))
                .collect();
            writeln!(out, "\nincomplete: {}", after.join(", "))?;
        }
        let skipped: Vec<String> = self
            .skipped
            .0
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{s} by {n}"))
            .collect();
        if !skipped.is_empty() {
            writeln!(out, "optional stages skipped: {}", skipped.join(", "))?;
        }
        let crossed: Vec<String> = self
            .crossed_by
            .0
            .iter()
            .filter_map(|(s, e)| {
                e.as_ref()
                    .filter(|e| *e != s)
                    .map(|e| format!("{s} by {e}"))
            })
            .collect();
        if !crossed.is_empty() {
            writeln!(out, "boundaries seen as: {}", crossed.join(", "))?;
        }
        if let Some(d) = &self.diagnosis {
            self.write_diagnosis(d, out)?;
        }
        writeln!(
            out,
            "\ngaps longer than {:.0} us: {}{}",
            self.gap_threshold_us,
            self.gaps.len() as u64 + self.gaps_omitted,
            if self.gaps_omitted > 0 {
                format!(" ({} not listed)", self.gaps_omitted)
            } else {
                String::new()
            }
        )?;
        for (i, g) in self.gaps.iter().enumerate() {
            writeln!(
                out,
                "  #{i} {:.6}  {:>9.1} us  {}  packet {} on cpu {} (from cpu {}), ended by {}-{} (which ran {:.1}% of it{})",
                g.start,
                g.duration_us,
                g.stage,
                g.packet,
                g.cpu,
                g.from_cpu,
                g.task,
                g.pid,
                g.task_share * 100.0,
                if g.task_cpus.is_empty() {
                    String::new()
                } else {
                    format!(", cpus {:?}", g.task_cpus)
                }
            )?;
            if let Some(h) = &g.handed_over_by {
                writeln!(
                    out,
                    "      cpu {} handed to {}-{} by {}-{}{}",
                    g.cpu,
                    g.task,
                    g.pid,
                    h.task,
                    h.pid,
                    if h.same_command {
                        format!(" (also `{}`: another thread of the same program)", h.task)
                    } else {
                        String::new()
                    }
                )?;
            }
            let tasks: Vec<String> = g
                .activity
                .tasks
                .iter()
                .map(|t| format!("{}-{} {:.1}%", t.task, t.pid, t.share * 100.0))
                .collect();
            writeln!(
                out,
                "      ran on cpu {}: {}{}",
                g.cpu,
                if tasks.is_empty() {
                    "(no record)".into()
                } else {
                    tasks.join(", ")
                },
                if g.activity.history_complete {
                    ""
                } else {
                    " (partial history)"
                }
            )?;
            for (label, list) in [
                ("IPIs", &g.activity.ipis),
                ("IRQs", &g.activity.irqs),
                ("softirqs", &g.activity.softirqs),
            ] {
                if !list.is_empty() {
                    let v: Vec<String> = list
                        .iter()
                        .map(|c| format!("{} x{}", c.name, c.count))
                        .collect();
                    writeln!(out, "      {label}: {}", v.join(", "))?;
                }
            }
            for m in self.markers.iter().filter(|m| g.markers.contains(&m.seq)) {
                writeln!(
                    out,
                    "      outlier marker seq={} rtt_us={:.1} at {:.6}",
                    m.seq, m.rtt_us, m.ts
                )?;
            }
        }
        if !self.markers.is_empty() {
            let alone: Vec<String> = self
                .markers
                .iter()
                .filter(|m| m.gaps.is_empty())
                .map(|m| format!("seq={} rtt_us={:.1}", m.seq, m.rtt_us))
                .collect();
            writeln!(
                out,
                "\nmarkers: {} ({} without a gap nearby{}{})",
                self.markers.len(),
                alone.len(),
                if alone.is_empty() { "" } else { ": " },
                alone.join(", ")
            )?;
        }
        for u in &self.unparsed_examples {
            writeln!(out, "unparsed line {}: {}", u.line, u.text)?;
        }
        Ok(())
    }
}
