//! Reconstructs packets from a stream of trace lines and measures each stage.
//!
//! A packet starts at an event matching the path's first stage and moves on when an event
//! matches the next stage. Several packets may be in flight: each stage boundary is crossed in
//! FIFO order (the oldest packet waiting for a boundary takes the next matching event), and a
//! packet that waits longer than the path's timeout is counted incomplete. State is bounded:
//! at most `max_in_flight` packets per stage, a time-windowed per-CPU history, HDR histograms,
//! and capped lists of gaps and markers; memory does not grow with the trace's length.

use super::error::TraceError;
use super::fields::field;
use super::line::{self, Event, Record};
use super::path::PathSpec;
use super::report::{
    Closest, Diagnosis, Gap, Handover, Marker, Ordered, Report, StageSeen, Unparsed,
};
use super::stats::Durations;
use super::timeline::Count;
use super::timeline::{Timeline, MAX_CPU};
use crate::stats::ns_to_us as us;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

/// FNV-1a for the per-line event-name lookup: names are short, and SipHash cost more than
/// parsing the line.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FastMap<V> = HashMap<String, V, BuildHasherDefault<Fnv>>;

/// Analysis settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// A stage longer than this is reported as a gap.
    pub gap_ns: u64,
    /// Overrides the path's stall timeout.
    pub timeout_ns: Option<u64>,
    /// Most packets waiting at one stage; the oldest beyond it are counted incomplete.
    pub max_in_flight: usize,
    /// Most gaps kept (the rest are counted in `gaps_omitted`).
    pub max_gaps: usize,
    /// Most markers kept.
    pub max_markers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            gap_ns: 500_000,
            timeout_ns: None,
            max_in_flight: 10_000,
            max_gaps: 10_000,
            max_markers: 10_000,
        }
    }
}

/// What a context event tells the per-CPU history.
#[derive(Debug, Clone, Copy)]
enum Role {
    SchedSwitch,
    Irq,
    SoftIrq,
    /// arm64 `ipi_entry: (Rescheduling interrupts)` on the receiving CPU.
    IpiEntry,
    /// arm64 `ipi_raise: target_mask=... (reason)` on the sender.
    IpiRaise,
    /// `ipi_send_cpu: cpu=N callsite=... callback=...` on the sender.
    IpiSendCpu,
    /// `ipi_send_cpumask: cpumask=0-3 callsite=... callback=...` on the sender.
    IpiSendMask,
    /// `print`/`tracing_mark_write` lines from `trace_marker`.
    Marker,
}

const ROLES: &[(&str, Role)] = &[
    ("sched_switch", Role::SchedSwitch),
    ("irq_handler_entry", Role::Irq),
    ("softirq_entry", Role::SoftIrq),
    ("ipi_entry", Role::IpiEntry),
    ("ipi_raise", Role::IpiRaise),
    ("ipi_send_cpu", Role::IpiSendCpu),
    ("ipi_send_cpumask", Role::IpiSendMask),
    ("tracing_mark_write", Role::Marker),
    ("print", Role::Marker),
];

#[derive(Debug, Default, Clone)]
struct Interest {
    /// (stage, form) pairs naming this event, highest stage first, forms in path order.
    forms: Vec<(usize, usize)>,
    role: Option<Role>,
    /// Events of this name seen so far (the census a path that matched nothing reports).
    count: u64,
}

/// Distinct event names remembered (with their stage forms and counts); names beyond are
/// resolved on every line and counted together.
const MAX_NAMES: usize = 1 << 16;

#[derive(Debug)]
struct Packet {
    id: u64,
    /// (timestamp, cpu) of each boundary crossed so far.
    stamps: Vec<(u64, u32)>,
    /// Field values captured for later `same` constraints, by capture slot.
    captured: Vec<Option<Box<str>>>,
}

/// Field values a stage's `same` constraints need: slot `i` holds `field` as seen at `stage`.
#[derive(Debug, Default)]
struct Captures {
    /// (stage, field) per slot.
    slots: Vec<(usize, String)>,
    /// Per stage: (field, slot) that must match when crossing it.
    checks: Vec<Vec<(String, usize)>>,
}

impl Captures {
    fn new(path: &PathSpec) -> Self {
        let mut c = Captures {
            slots: Vec::new(),
            checks: vec![Vec::new(); path.stages.len()],
        };
        for (k, s) in path.stages.iter().enumerate() {
            for (field, at) in &s.same {
                let key = (*at, field.clone());
                let slot = c.slots.iter().position(|x| *x == key).unwrap_or_else(|| {
                    c.slots.push(key);
                    c.slots.len() - 1
                });
                c.checks[k].push((field.clone(), slot));
            }
        }
        c
    }

    /// Stores the values stage `k` must capture from `e`.
    fn capture(&self, k: usize, e: &Event<'_>, p: &mut Packet) {
        for (slot, (at, f)) in self.slots.iter().enumerate() {
            if *at == k {
                p.captured[slot] = field(e.name, e.details, f).map(Box::from);
            }
        }
    }
}

/// Most (stage, form) pairs one event name is tried against.
const MAX_FORMS_PER_EVENT: usize = 64;

/// What an event called `name` means to `path`: its context role and the stage forms naming it.
fn interest_for(path: &PathSpec, name: &str) -> Interest {
    let mut forms = Vec::new();
    for (k, s) in path.stages.iter().enumerate().rev() {
        for (f, form) in s.forms.iter().enumerate() {
            if form.names_event(name) {
                forms.push((k, f));
            }
        }
    }
    Interest {
        forms,
        role: ROLES.iter().find(|(n, _)| *n == name).map(|(_, r)| *r),
        count: 0,
    }
}

/// Unparseable lines kept as examples in the report.
const UNPARSED_EXAMPLES: usize = 5;
/// Longest example text kept.
const EXAMPLE_LEN: usize = 200;

/// Streaming analyser: feed lines, then [`Analyzer::finish`].
#[derive(Debug)]
pub struct Analyzer {
    path: PathSpec,
    cfg: Config,
    timeout_ns: u64,
    interest: FastMap<Interest>,
    /// Events whose name did not fit in `interest`.
    other_name_events: u64,
    /// Per stage: the form that first carried a packet across it (used from then on).
    locked: Vec<Option<usize>>,
    /// Per stage: the event name of that first crossing.
    crossed_by: Vec<Option<String>>,
    captures: Captures,
    /// `waiting[k]`: packets that crossed stage `k - 1` and wait for stage `k`.
    waiting: Vec<VecDeque<Packet>>,
    pairs: Vec<Durations>,
    total: Durations,
    timeline: Timeline,
    gaps: Vec<Gap>,
    gap_ends: Vec<u64>,
    gaps_omitted: u64,
    markers: Vec<Marker>,
    markers_omitted: u64,
    next_id: u64,
    packets: u64,
    incomplete_after: Vec<u64>,
    skipped: Vec<u64>,
    lines: u64,
    events: u64,
    unparsed: u64,
    unparsed_examples: Vec<Unparsed>,
    lost: u64,
    first_ts: Option<u64>,
    last_ts: u64,
    out_of_order: u64,
}

impl Analyzer {
    /// An analyser for `path`.
    pub fn new(path: PathSpec, cfg: Config) -> Self {
        let timeout_ns = cfg.timeout_ns.unwrap_or(path.timeout_ns).max(1);
        let mut interest: FastMap<Interest> = FastMap::default();
        for (name, _) in ROLES {
            interest.insert((*name).to_owned(), interest_for(&path, name));
        }
        for s in &path.stages {
            for name in s.forms.iter().flat_map(|f| &f.names) {
                interest.insert(name.clone(), interest_for(&path, name));
            }
        }
        let n = path.stages.len();
        Analyzer {
            other_name_events: 0,
            locked: vec![None; n],
            crossed_by: vec![None; n],
            captures: Captures::new(&path),
            waiting: (0..n).map(|_| VecDeque::new()).collect(),
            pairs: (1..n).map(|_| Durations::new()).collect(),
            total: Durations::new(),
            // Gaps are at most one timeout long; keep a little more history than that.
            timeline: Timeline::new(timeout_ns.saturating_add(cfg.gap_ns)),
            incomplete_after: vec![0; n],
            skipped: vec![0; n],
            path,
            cfg,
            timeout_ns,
            interest,
            gaps: Vec::new(),
            gap_ends: Vec::new(),
            gaps_omitted: 0,
            markers: Vec::new(),
            markers_omitted: 0,
            next_id: 0,
            packets: 0,
            lines: 0,
            events: 0,
            unparsed: 0,
            unparsed_examples: Vec::new(),
            lost: 0,
            first_ts: None,
            last_ts: 0,
            out_of_order: 0,
        }
    }

    /// Feeds one line (with or without its newline).
    pub fn feed_line(&mut self, raw: &[u8]) {
        self.lines += 1;
        let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(text) = std::str::from_utf8(raw) else {
            self.unparsable(&String::from_utf8_lossy(raw));
            return;
        };
        match line::parse(text) {
            Some(Record::Event(e)) if e.cpu <= MAX_CPU => self.event(&e),
            Some(Record::Event(_)) | None => self.unparsable(text),
            Some(Record::Lost(n)) => self.lost += n,
            Some(Record::Skip) => {}
        }
    }

    fn unparsable(&mut self, text: &str) {
        self.unparsed += 1;
        if self.unparsed_examples.len() < UNPARSED_EXAMPLES {
            let mut t: String = text.chars().take(EXAMPLE_LEN).collect();
            if t.len() < text.len() {
                t.push('…');
            }
            self.unparsed_examples.push(Unparsed {
                line: self.lines,
                text: t,
            });
        }
    }

    fn event(&mut self, e: &Event<'_>) {
        self.events += 1;
        let ts = e.ts_ns;
        if self.first_ts.is_none() {
            self.first_ts = Some(ts);
        }
        if ts < self.last_ts {
            self.out_of_order += 1;
        } else {
            self.last_ts = ts;
        }
        self.expire(ts);
        self.timeline.running(e.cpu, ts, e.pid, e.task);
        // Borrow-free copy of the (short) list of stage forms naming this event.
        let mut forms = [(0usize, 0usize); MAX_FORMS_PER_EVENT];
        let (role, nf) = match self.interest.get_mut(e.name) {
            Some(i) => {
                i.count += 1;
                let nf = i.forms.len().min(forms.len());
                forms[..nf].copy_from_slice(&i.forms[..nf]);
                (i.role, nf)
            }
            None => {
                let mut i = interest_for(&self.path, e.name);
                i.count = 1;
                let nf = i.forms.len().min(forms.len());
                forms[..nf].copy_from_slice(&i.forms[..nf]);
                let role = i.role;
                if self.interest.len() < MAX_NAMES {
                    self.interest.insert(e.name.to_owned(), i);
                } else {
                    self.other_name_events += 1;
                }
                (role, nf)
            }
        };
        if let Some(role) = role {
            self.context(role, e);
        }
        let mut starts = None;
        for &(k, f) in &forms[..nf] {
            if self.locked[k].is_some_and(|l| l != f) {
                continue;
            }
            let form = &self.path.stages[k].forms[f];
            if k == 0 {
                if starts.is_none() && form.matches(e) {
                    starts = Some(f);
                }
            } else if self.any_waiting(k) && form.matches(e) && self.advance(k, e) {
                self.lock(k, f, e.name);
                return;
            }
        }
        if let Some(f) = starts {
            self.lock(0, f, e.name);
            let id = self.next_id;
            self.next_id += 1;
            let mut p = Packet {
                id,
                stamps: vec![(ts, e.cpu)],
                captured: vec![None; self.captures.slots.len()],
            };
            self.captures.capture(0, e, &mut p);
            self.enqueue(1, p);
        }
    }

    /// Fixes the form used for stage `k` at its first crossing.
    fn lock(&mut self, k: usize, form: usize, name: &str) {
        if self.crossed_by[k].is_none() {
            self.crossed_by[k] = Some(name.to_owned());
            if self.path.stages[k].forms.len() > 1 {
                self.locked[k] = Some(form);
            }
        }
    }

    /// Whether any packet could cross stage `k` (waiting for it, or for optional stages
    /// just before it). Cheap, so matchers run only when they can matter.
    fn any_waiting(&self, k: usize) -> bool {
        let mut q = k;
        loop {
            if !self.waiting[q].is_empty() {
                return true;
            }
            if q < 2 || !self.path.stages[q - 1].optional {
                return false;
            }
            q -= 1;
        }
    }

    fn enqueue(&mut self, k: usize, p: Packet) {
        let q = &mut self.waiting[k];
        q.push_back(p);
        if q.len() > self.cfg.max_in_flight {
            q.pop_front();
            self.incomplete_after[k - 1] += 1;
        }
    }

    /// Index of the oldest packet in `waiting[q]` that agrees with stage `k`'s `same` fields.
    fn fitting(&self, q: usize, k: usize, e: &Event<'_>) -> Option<usize> {
        let checks = &self.captures.checks[k];
        if checks.is_empty() {
            return if self.waiting[q].is_empty() {
                None
            } else {
                Some(0)
            };
        }
        let values: Vec<Option<&str>> = checks
            .iter()
            .map(|(f, _)| field(e.name, e.details, f))
            .collect();
        self.waiting[q].iter().position(|p| {
            checks
                .iter()
                .zip(&values)
                .all(|((_, slot), v)| v.is_some() && p.captured[*slot].as_deref() == *v)
        })
    }

    /// Moves the oldest fitting packet waiting for stage `k` across it; a packet waiting for
    /// optional stages just before `k` may skip them. False when no waiting packet fits.
    fn advance(&mut self, k: usize, e: &Event<'_>) -> bool {
        let mut best: Option<(usize, usize)> = None;
        let mut q = k;
        loop {
            if let Some(at) = self.fitting(q, k, e) {
                let older =
                    best.is_none_or(|(bq, ba)| self.waiting[q][at].id < self.waiting[bq][ba].id);
                if older {
                    best = Some((q, at));
                }
            }
            if q < 2 || !self.path.stages[q - 1].optional {
                break;
            }
            q -= 1;
        }
        let Some((q, at)) = best else {
            return false;
        };
        let Some(mut p) = self.waiting[q].remove(at) else {
            return false;
        };
        self.captures.capture(k, e, &mut p);
        let from = p.stamps.len() - 1;
        let &(t0, cpu0) = p
            .stamps
            .last()
            .expect("a waiting packet has crossed a stage");
        let d = e.ts_ns.saturating_sub(t0);
        if q == k {
            self.pairs[k - 1].record(d);
        }
        // Optional stages this packet went past: the pairs around them are not measured; the
        // stamp is repeated so stage indices stay aligned.
        for skipped in q..k {
            self.skipped[skipped] += 1;
            p.stamps.push((e.ts_ns, e.cpu));
        }
        if d > self.cfg.gap_ns {
            self.gap(&p, from, k, t0, cpu0, e);
        }
        p.stamps.push((e.ts_ns, e.cpu));
        if k + 1 == self.path.stages.len() {
            self.packets += 1;
            self.total.record(e.ts_ns.saturating_sub(p.stamps[0].0));
        } else {
            self.enqueue(k + 1, p);
        }
        true
    }

    fn gap(&mut self, p: &Packet, from: usize, k: usize, t0: u64, cpu0: u32, e: &Event<'_>) {
        if self.gaps.len() >= self.cfg.max_gaps {
            self.gaps_omitted += 1;
            return;
        }
        let s = &self.path.stages;
        let activity = self.timeline.activity(e.cpu, t0, e.ts_ns);
        let (ran_ns, ran_cpus) = self.timeline.ran(e.pid, t0, e.ts_ns);
        let handed_over_by =
            self.timeline
                .handed_over(e.cpu, t0, e.ts_ns, e.pid)
                .map(|(pid, task)| Handover {
                    same_command: task == e.task,
                    task,
                    pid,
                });
        let span = e.ts_ns.saturating_sub(t0).max(1);
        self.gaps.push(Gap {
            start: secs(t0),
            duration_us: us(e.ts_ns.saturating_sub(t0)),
            cpu: e.cpu,
            from_cpu: cpu0,
            stage: format!("{}__{}", s[from].name, s[k].name),
            packet: p.id,
            task: e.task.to_owned(),
            pid: e.pid,
            task_ran_us: us(ran_ns),
            task_share: (ran_ns as f64 / span as f64).min(1.0),
            task_cpus: ran_cpus,
            handed_over_by,
            activity,
            markers: Vec::new(),
        });
        self.gap_ends.push(e.ts_ns);
    }

    /// Counts packets that have waited longer than the timeout as incomplete.
    fn expire(&mut self, now: u64) {
        for k in 1..self.waiting.len() {
            while let Some(p) = self.waiting[k].front() {
                let last = p.stamps.last().map_or(0, |s| s.0);
                if now.saturating_sub(last) <= self.timeout_ns {
                    break;
                }
                self.waiting[k].pop_front();
                self.incomplete_after[k - 1] += 1;
            }
        }
    }

    fn context(&mut self, role: Role, e: &Event<'_>) {
        let (ts, cpu, d) = (e.ts_ns, e.cpu, e.details);
        match role {
            Role::SchedSwitch => {
                let pid = field(e.name, d, "next_pid").and_then(|p| p.parse().ok());
                if let (Some(pid), Some(comm)) = (pid, field(e.name, d, "next_comm")) {
                    self.timeline.switch_to(cpu, ts, pid, comm);
                }
            }
            Role::Irq => {
                let name = field(e.name, d, "name")
                    .or_else(|| field(e.name, d, "irq"))
                    .unwrap_or(d);
                self.timeline.irq(cpu, ts, name);
            }
            Role::SoftIrq => {
                let name = d
                    .split_once("action=")
                    .map(|(_, a)| a.trim_end_matches(']'))
                    .or_else(|| field(e.name, d, "vec"))
                    .unwrap_or(d);
                self.timeline.softirq(cpu, ts, name);
            }
            Role::IpiEntry => self.timeline.ipi(cpu, ts, reason(d)),
            Role::IpiRaise => {
                let why = reason(d);
                if let Some(mask) = field(e.name, d, "target_mask") {
                    let mask = mask.split_whitespace().next().unwrap_or("");
                    for target in hex_mask_cpus(mask) {
                        self.timeline.ipi_sent(target, ts, why);
                    }
                }
            }
            Role::IpiSendCpu => {
                let target = field(e.name, d, "cpu").and_then(|c| c.parse().ok());
                if let Some(target) = target {
                    self.timeline.ipi_sent(target, ts, ipi_callback(e.name, d));
                }
            }
            Role::IpiSendMask => {
                if let Some(list) = field(e.name, d, "cpumask") {
                    let name = ipi_callback(e.name, d);
                    for target in cpu_list(list) {
                        self.timeline.ipi_sent(target, ts, name);
                    }
                }
            }
            Role::Marker => self.marker(e),
        }
    }

    fn marker(&mut self, e: &Event<'_>) {
        let text = e
            .details
            .strip_prefix("tracing_mark_write:")
            .unwrap_or(e.details)
            .trim_start();
        let Some(body) = text.strip_prefix("vmprobe ") else {
            return;
        };
        let seq = field("", body, "seq").and_then(|v| v.parse().ok());
        let rtt = field("", body, "rtt_us")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0);
        let (Some(seq), Some(rtt_us)) = (seq, rtt) else {
            return;
        };
        if self.markers.len() >= self.cfg.max_markers {
            self.markers_omitted += 1;
            return;
        }
        self.markers.push(Marker {
            seq,
            rtt_us,
            ts: secs(e.ts_ns),
            ts_ns: e.ts_ns,
            cpu: e.cpu,
            gaps: Vec::new(),
        });
    }

    /// Ends the stream: packets still in flight are incomplete. Fails when no line was a trace
    /// event at all.
    pub fn finish(mut self, source: &Path) -> Result<Report, TraceError> {
        if self.events == 0 {
            return Err(TraceError::NoEvents {
                path: source.to_owned(),
                lines: self.lines,
                first_bad: self.unparsed_examples.first().map(|u| u.text.clone()),
            });
        }
        for k in 1..self.waiting.len() {
            self.incomplete_after[k - 1] += self.waiting[k].len() as u64;
            self.waiting[k].clear();
        }
        self.link_markers();
        let diagnosis = (self.packets == 0).then(|| self.diagnose());
        let crossed_by = Ordered(
            self.path
                .stages
                .iter()
                .zip(std::mem::take(&mut self.crossed_by))
                .map(|(s, e)| (s.name.clone(), e))
                .collect(),
        );
        let names = self.path.stage_pair_names();
        let s = &self.path.stages;
        let incomplete: u64 = self.incomplete_after.iter().sum();
        Ok(Report {
            path: self.path.name.clone(),
            packets: self.packets,
            incomplete,
            incomplete_after: Ordered(
                s.iter()
                    .zip(&self.incomplete_after)
                    .map(|(st, &n)| (st.name.clone(), n))
                    .collect(),
            ),
            skipped: Ordered(
                s.iter()
                    .zip(&self.skipped)
                    .filter(|(st, _)| st.optional)
                    .map(|(st, &n)| (st.name.clone(), n))
                    .collect(),
            ),
            stages: Ordered(
                names
                    .into_iter()
                    .zip(self.pairs.iter().map(Durations::summary))
                    .collect(),
            ),
            total: self.total.summary(),
            gap_threshold_us: us(self.cfg.gap_ns),
            timeout_us: us(self.timeout_ns),
            gaps: self.gaps,
            gaps_omitted: self.gaps_omitted,
            markers: self.markers,
            markers_omitted: self.markers_omitted,
            unparsed_lines: self.unparsed,
            unparsed_examples: self.unparsed_examples,
            lines: self.lines,
            events: self.events,
            lost_events: self.lost,
            first_ts: self.first_ts.map(secs),
            last_ts: self.first_ts.map(|_| secs(self.last_ts)),
            timestamps_out_of_order: self.out_of_order,
            crossed_by,
            diagnosis,
        })
    }

    /// What the trace holds, against this path and the built-in ones.
    fn diagnose(&self) -> Diagnosis {
        let mut seen: Vec<Count> = self
            .interest
            .iter()
            .filter(|(_, i)| i.count > 0)
            .map(|(n, i)| Count {
                name: n.clone(),
                count: i.count,
            })
            .collect();
        seen.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        let in_trace = |s: &super::path::Stage| -> Vec<Count> {
            seen.iter()
                .filter(|c| s.forms.iter().any(|f| f.names_event(&c.name)))
                .cloned()
                .collect()
        };
        let stage_events = Ordered(
            self.path
                .stages
                .iter()
                .map(|s| {
                    let seen = StageSeen {
                        events: s.event_names(),
                        found: in_trace(s),
                    };
                    (s.name.clone(), seen)
                })
                .collect(),
        );
        let closest = super::path::BUILTIN
            .iter()
            .filter(|(n, _)| *n != self.path.name)
            .filter_map(|(n, text)| PathSpec::from_toml(text, n).ok())
            .map(|p| {
                let missing: Vec<String> = p
                    .stages
                    .iter()
                    .filter(|s| in_trace(s).is_empty())
                    .map(|s| s.name.clone())
                    .collect();
                Closest {
                    path: p.name.clone(),
                    present: p.stages.len() - missing.len(),
                    stages: p.stages.len(),
                    missing,
                }
            })
            .max_by(|a, b| {
                (a.present * b.stages)
                    .cmp(&(b.present * a.stages))
                    .then(b.path.cmp(&a.path))
            });
        let shown = 40.min(seen.len());
        let other_events =
            seen[shown..].iter().map(|c| c.count).sum::<u64>() + self.other_name_events;
        seen.truncate(shown);
        Diagnosis {
            trace_events: seen,
            other_events,
            stage_events,
            closest,
        }
    }

    /// Puts each marker next to the gaps overlapping the round trip it reports.
    fn link_markers(&mut self) {
        let slack = self.cfg.gap_ns;
        for m in self.markers.iter_mut() {
            let rtt_ns = (m.rtt_us * 1e3) as u64;
            let lo = m.ts_ns.saturating_sub(rtt_ns).saturating_sub(slack);
            let hi = m.ts_ns.saturating_add(slack);
            // Gaps end in time order and last at most one timeout.
            let first = self.gap_ends.partition_point(|&end| end < lo);
            for gi in first..self.gaps.len() {
                let end = self.gap_ends[gi];
                if end > hi.saturating_add(self.timeout_ns) {
                    break;
                }
                let start = end.saturating_sub((self.gaps[gi].duration_us * 1e3) as u64);
                if start <= hi && end >= lo {
                    m.gaps.push(gi);
                    self.gaps[gi].markers.push(m.seq);
                }
            }
        }
    }
}

/// Nanoseconds to seconds, rounded once (a plain `ns as f64` loses the microseconds of a
/// wall-clock timestamp).
fn secs(ns: u64) -> f64 {
    (ns / 1_000_000_000) as f64 + (ns % 1_000_000_000) as f64 / 1e9
}

/// `(Rescheduling interrupts)` -> `Rescheduling interrupts`.
fn reason(d: &str) -> &str {
    match (d.rfind('('), d.rfind(')')) {
        (Some(a), Some(b)) if a < b => &d[a + 1..b],
        _ => d.trim(),
    }
}

/// The IPI's callback symbol (or its call site for plain reschedule IPIs), without offsets.
fn ipi_callback<'a>(event: &str, d: &'a str) -> &'a str {
    let sym = |k| field(event, d, k).map(|v| v.split('+').next().unwrap_or(v));
    match sym("callback") {
        Some(cb) if !cb.is_empty() && cb != "0x0" && cb != "0" => cb,
        _ => sym("callsite").unwrap_or("ipi"),
    }
}

/// CPUs in a hex mask such as `0000000000000008` or `00000000,00000008`.
fn hex_mask_cpus(mask: &str) -> impl Iterator<Item = u32> + '_ {
    mask.bytes()
        .rev()
        .filter(|&c| c != b',')
        .enumerate()
        .flat_map(|(nibble, c)| {
            let v = (c as char).to_digit(16).unwrap_or(0);
            (0..4)
                .filter(move |b| v & (1 << b) != 0)
                .map(move |b| nibble as u32 * 4 + b)
        })
        .filter(|&c| c <= MAX_CPU)
}

/// CPUs in a list such as `0-2,5`.
fn cpu_list(list: &str) -> impl Iterator<Item = u32> + '_ {
    list.split(',').flat_map(|part| {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: u32 = a.trim().parse().unwrap_or(1);
        let b: u32 = b.trim().parse().unwrap_or(0);
        a..=b.min(MAX_CPU)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipi_target_parsing() {
        assert_eq!(hex_mask_cpus("0000000000000008").collect::<Vec<_>>(), [3]);
        assert_eq!(
            hex_mask_cpus("00000001,00000003").collect::<Vec<_>>(),
            [0, 1, 32]
        );
        assert_eq!(cpu_list("0-2,5").collect::<Vec<_>>(), [0, 1, 2, 5]);
        assert_eq!(cpu_list("x").count(), 0);
        assert_eq!(
            reason("target_mask=08 (Rescheduling interrupts)"),
            "Rescheduling interrupts"
        );
        let d = "cpu=1 callsite=on_each_cpu_cond_mask+0x20/0x60 callback=generic_smp_call_function_single_interrupt+0x0/0x10";
        assert_eq!(
            ipi_callback("ipi_send_cpu", d),
            "generic_smp_call_function_single_interrupt"
        );
        assert_eq!(
            ipi_callback(
                "ipi_send_cpu",
                "cpu=1 callsite=resched_curr+0x5c/0x70 callback=0x0"
            ),
            "resched_curr"
        );
    }
}
