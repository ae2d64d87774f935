//! One trace line, parsed in place.
//!
//! Two text formats carry the same information and both are accepted line by line:
//!
//! ```text
//! trace-cmd report:  [buf:]  task-pid  [cpu]  seconds: event:  details
//!     vhost-802-812   [003] 1670566189.497292: function:             kvm_vgic_inject_irq
//! tracefs `trace` / `trace_pipe`:  task-pid [(tgid)] [cpu] flags seconds: event: details
//!     bash-8173    [000] ..s1.   370.953199: softirq_entry: vec=7 [action=SCHED]
//!     bash-8173    [000] ...1.   370.953201: kvm_vcpu_kick <-vgic_queue_irq_unlock
//! ```
//!
//! Function tracer lines (`function:` events in trace-cmd, `func <-parent` in tracefs, and
//! trace-cmd's `funcgraph_entry`) become [`Kind::Function`] events named after the function,
//! so a path stage names a function the same way it names a tracepoint.
//!
//! Parsing borrows from the line and never allocates.

/// What a line turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// A trace event.
    Event(Event<'a>),
    /// The kernel dropped events (`CPU:1 [LOST 123 EVENTS]`).
    Lost(u64),
    /// A header, comment or blank line: not an event and not an error.
    Skip,
}

/// Whether an event is a tracepoint or a traced function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A tracepoint (`sched_switch`, `kvm_entry`, ...).
    Tracepoint,
    /// A function entry recorded by the function (or function_graph) tracer.
    Function,
}

/// One event, borrowing from its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The current task's command name (`<idle>`, `<...>` when the kernel did not save it).
    pub task: &'a str,
    /// The current task's pid (0 for the idle task).
    pub pid: u32,
    /// The CPU the event was recorded on.
    pub cpu: u32,
    /// Timestamp in nanoseconds (the trace clock's seconds, scaled exactly).
    pub ts_ns: u64,
    /// Tracepoint or function.
    pub kind: Kind,
    /// Tracepoint name, or the function's name for [`Kind::Function`].
    pub name: &'a str,
    /// Everything after the event name (the caller for functions), trimmed.
    pub details: &'a str,
}

/// Parses one line (without its newline). `None` means the line is not in a known format.
pub fn parse(line: &str) -> Option<Record<'_>> {
    let s = line.trim_ascii();
    if s.is_empty() || s.starts_with('#') || s.starts_with("cpus=") || s.starts_with("version") {
        return Some(Record::Skip);
    }
    if let Some(rest) = s.strip_prefix("CPU") {
        if let Some(n) = lost_count(rest) {
            return Some(Record::Lost(n));
        }
        if rest.ends_with("is empty") {
            return Some(Record::Skip);
        }
    }
    parse_event(s).map(Record::Event)
}

/// `CPU:1 [LOST 123 EVENTS]` or `CPU 1 [LOST 123 EVENTS]` (the part after `CPU`).
fn lost_count(rest: &str) -> Option<u64> {
    let at = rest.find("[LOST ")?;
    let n = rest[at + 6..].split_whitespace().next()?;
    n.parse().ok()
}

fn parse_event(s: &str) -> Option<Event<'_>> {
    let b = s.as_bytes();
    let (open, close, cpu) = find_cpu_field(b)?;
    let (task, pid) = task_pid(&s[..open])?;
    let mut rest = s[close + 1..].trim_ascii_start();
    let (ts_ns, after) = match timestamp(rest) {
        Some(t) => t,
        None => {
            // tracefs prints a flags column (`d.h1.`) before the timestamp.
            let sp = rest.find([' ', '\t'])?;
            rest = rest[sp..].trim_ascii_start();
            timestamp(rest)?
        }
    };
    let rest = after.trim_ascii_start();
    let end = rest.find([' ', '\t']).unwrap_or(rest.len());
    let word = &rest[..end];
    let tail = rest[end..].trim_ascii_start();
    if let Some(name) = word.strip_suffix(':') {
        if name.is_empty() {
            return None;
        }
        let ev = Event {
            task,
            pid,
            cpu,
            ts_ns,
            kind: Kind::Tracepoint,
            name,
            details: tail,
        };
        return Some(match name {
            "function" => function_event(ev, tail)?,
            "funcgraph_entry" => graph_entry(ev, tail)?,
            _ => ev,
        });
    }
    // tracefs function tracer: `func <-parent`.
    if word.is_empty() || !word.bytes().all(is_symbol_byte) {
        return None;
    }
    let parent = tail
        .strip_prefix("<-")
        .map(str::trim_ascii_start)
        .unwrap_or(tail);
    Some(Event {
        task,
        pid,
        cpu,
        ts_ns,
        kind: Kind::Function,
        name: word,
        details: parent,
    })
}

/// trace-cmd's `function:  func <-- parent`.
fn function_event<'a>(ev: Event<'a>, tail: &'a str) -> Option<Event<'a>> {
    let end = tail.find([' ', '\t']).unwrap_or(tail.len());
    let func = &tail[..end];
    if func.is_empty() {
        return None;
    }
    let rest = tail[end..].trim_ascii_start();
    let parent = rest.trim_start_matches(['<', '-']).trim_ascii_start();
    Some(Event {
        kind: Kind::Function,
        name: func,
        details: parent,
        ..ev
    })
}

/// trace-cmd's `funcgraph_entry:   0.123 us   |  func() {`.
fn graph_entry<'a>(ev: Event<'a>, tail: &'a str) -> Option<Event<'a>> {
    let body = tail[tail.find('|')? + 1..].trim_start();
    let func = &body[..body.find('(')?];
    if func.is_empty() {
        return None;
    }
    Some(Event {
        kind: Kind::Function,
        name: func,
        details: "",
        ..ev
    })
}

fn is_symbol_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'$'
}

/// Finds the `[NNN]` CPU column: the first bracketed decimal preceded by white space.
/// Returns the byte offsets of `[` and `]` and the CPU number.
fn find_cpu_field(b: &[u8]) -> Option<(usize, usize, u32)> {
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'[' && i > 0 && (b[i - 1] == b' ' || b[i - 1] == b'\t') {
            let mut j = i + 1;
            let mut cpu: u32 = 0;
            while j < b.len() && b[j].is_ascii_digit() && j - i <= 6 {
                cpu = cpu * 10 + u32::from(b[j] - b'0');
                j += 1;
            }
            if j > i + 1 && j < b.len() && b[j] == b']' {
                return Some((i, j, cpu));
            }
        }
        i += 1;
    }
    None
}

/// Splits `[buffer:]  comm-pid [(tgid)]` into comm and pid. Comm may contain spaces and dashes;
/// the pid is after the last dash.
fn task_pid(head: &str) -> Option<(&str, u32)> {
    let mut h = head.trim_ascii_end();
    if h.ends_with(')') {
        // record-tgid column: `(   1234)` or `(-------)`.
        h = h[..h.rfind('(')?].trim_ascii_end();
    }
    let mut h = h.trim_ascii_start();
    // trace-cmd prefixes events from an instance with `name:`.
    if let Some(sp) = h.find([' ', '\t']) {
        if h[..sp].ends_with(':') {
            h = h[sp..].trim_ascii_start();
        }
    }
    let dash = h.rfind('-')?;
    let pid = parse_u32(&h[dash + 1..])?;
    Some((&h[..dash], pid))
}

fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `SECONDS.FRACTION:` at the start of `s` into nanoseconds (exact, no floating point),
/// returning what follows the colon. A timestamp without a fraction is taken as nanoseconds
/// (raw counters such as `trace_clock=counter`).
fn timestamp(s: &str) -> Option<(u64, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut whole: u64 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        whole = whole.checked_mul(10)?.checked_add(u64::from(b[i] - b'0'))?;
        i += 1;
    }
    if i == 0 {
        return None;
    }
    if i < b.len() && b[i] == b':' {
        return Some((whole, &s[i + 1..]));
    }
    if i >= b.len() || b[i] != b'.' {
        return None;
    }
    i += 1;
    let mut frac: u64 = 0;
    let mut digits = 0;
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        if digits < 9 {
            frac = frac * 10 + u64::from(b[i] - b'0');
            digits += 1;
        }
        i += 1;
    }
    if i == start || i >= b.len() || b[i] != b':' {
        return None;
    }
    frac *= 10u64.pow(9 - digits);
    let ns = whole.checked_mul(1_000_000_000)?.checked_add(frac)?;
    Some((ns, &s[i + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(line: &str) -> Event<'_> {
        match parse(line) {
            Some(Record::Event(e)) => e,
            other => panic!("not an event: {other:?} from {line:?}"),
        }
    }

    #[test]
    fn trace_cmd_function_line() {
        let e = ev("    vhost-802-812   [003] 1670566189.497292: function:             kvm_vgic_inject_irq");
        assert_eq!((e.task, e.pid, e.cpu), ("vhost-802", 812, 3));
        assert_eq!(e.ts_ns, 1_670_566_189_497_292_000);
        assert_eq!(
            (e.kind, e.name, e.details),
            (Kind::Function, "kvm_vgic_inject_irq", "")
        );
        let e = ev("bash-1 [000] 1.000000001: function:   vfs_read <-- ksys_read");
        assert_eq!(
            (e.name, e.details, e.ts_ns),
            ("vfs_read", "ksys_read", 1_000_000_001)
        );
    }

    #[test]
    fn trace_cmd_tracepoint_and_instance_prefix() {
        let e = ev(
            "kvm-1449        [003] 1670566189.501429: kvm_entry:            PC: 0xffffb18595f88104",
        );
        assert_eq!(
            (e.task, e.pid, e.kind, e.name),
            ("kvm", 1449, Kind::Tracepoint, "kvm_entry")
        );
        assert_eq!(e.details, "PC: 0xffffb18595f88104");
        let e = ev("vmpt:      rcu_preempt-15    [001]   370.953242: sched_switch:         rcu_preempt:15 [120] W ==> swapper/1:0 [120]");
        assert_eq!(
            (e.task, e.pid, e.cpu, e.name),
            ("rcu_preempt", 15, 1, "sched_switch")
        );
        assert_eq!(e.details, "rcu_preempt:15 [120] W ==> swapper/1:0 [120]");
    }

    #[test]
    fn tracefs_lines_with_flags_tgid_and_function() {
        let e = ev("          <idle>-0       [001] d.h1.   371.136545: irq_handler_entry: irq=42 name=virtio3-tx");
        assert_eq!(
            (e.task, e.pid, e.cpu, e.ts_ns),
            ("<idle>", 0, 1, 371_136_545_000)
        );
        assert_eq!(
            (e.name, e.details),
            ("irq_handler_entry", "irq=42 name=virtio3-tx")
        );
        let e = ev(
            "  CPU 0/TCG-4242  (   4200) [002] .N..   12.5: kvm_vcpu_kick <-vgic_queue_irq_unlock",
        );
        assert_eq!(
            (e.task, e.pid, e.cpu, e.ts_ns),
            ("CPU 0/TCG", 4242, 2, 12_500_000_000)
        );
        assert_eq!(
            (e.kind, e.name, e.details),
            (Kind::Function, "kvm_vcpu_kick", "vgic_queue_irq_unlock")
        );
    }

    #[test]
    fn graph_entry_and_headers_and_lost() {
        let e = ev("qemu-1 [000] 5.000001: funcgraph_entry:        0.811 us   |  kvm_vcpu_kick();");
        assert_eq!((e.kind, e.name), (Kind::Function, "kvm_vcpu_kick"));
        assert_eq!(parse("# tracer: nop"), Some(Record::Skip));
        assert_eq!(parse("cpus=4"), Some(Record::Skip));
        assert_eq!(parse(""), Some(Record::Skip));
        assert_eq!(parse("CPU 3 is empty"), Some(Record::Skip));
        assert_eq!(parse("CPU:1 [LOST 123 EVENTS]"), Some(Record::Lost(123)));
    }

    #[test]
    fn malformed_lines_are_rejected() {
        for bad in [
            "garbage",
            "bash-12 [001] 1.5 sched_switch: x", // no colon after timestamp
            "bash [001] 1.5: sched_switch: x",   // no pid
            "bash-12 [0x1] 1.5: sched_switch: x", // bad cpu
            "bash-12 [001] 1.: x: y",            // empty fraction
            "bash-12 [001] 99999999999999999999.1: x: y", // overflow
            "bash-12 [001] 1.5: :",              // empty event
            "bash-12 [001] 1.5: not|a|symbol",   // neither event nor function
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
