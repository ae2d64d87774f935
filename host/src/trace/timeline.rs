//! What ran on each CPU recently: a bounded, time-windowed history per CPU, so a gap found
//! when a packet finally crosses a stage can say who had the CPU meanwhile.
//!
//! Every event line tells which task was running on its CPU at that instant, `sched_switch`
//! tells who runs next, and IRQ, softirq and IPI events are kept as marks. Only changes of the
//! running task are stored, so a burst of events from one task costs nothing.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};

/// Most entries kept per CPU, whatever the window.
const MAX_ENTRIES_PER_CPU: usize = 1 << 17;
/// Highest CPU number accepted (larger numbers are treated as malformed input).
pub const MAX_CPU: u32 = 4095;
/// Distinct names kept for IRQs, IPIs and softirqs before folding the rest into `other`.
const MAX_NAMES: usize = 4096;
/// Distinct tasks listed per gap; the rest is summed as `others`.
const TOP_TASKS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// From this time on, task `id` (a pid) runs.
    Task,
    Irq,
    SoftIrq,
    /// An IPI seen arriving on the CPU (arm64 `ipi_entry`).
    Ipi,
    /// An IPI sent towards the CPU (`ipi_raise`, `ipi_send_cpu`): used only where no
    /// arrival is recorded, so an IPI is not counted twice.
    IpiSent,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    ts: u64,
    mark: Mark,
    id: u32,
}

#[derive(Debug, Default)]
struct Cpu {
    entries: VecDeque<Entry>,
    /// The task running before the oldest kept entry.
    base_task: Option<u32>,
    /// The task seen last (fast path: no entry when it does not change).
    current: Option<u32>,
    /// Oldest time still fully covered, if entries were dropped by the size bound.
    truncated_before: Option<u64>,
}

/// Per-CPU activity history over a sliding time window.
#[derive(Debug)]
pub struct Timeline {
    window_ns: u64,
    cpus: Vec<Cpu>,
    /// pid -> best known command name.
    tasks: HashMap<u32, String>,
    names: Vec<String>,
    name_ids: HashMap<String, u32>,
}

/// A task's share of a gap.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskShare {
    /// Command name (`<idle>` for pid 0).
    pub task: String,
    /// Pid (0 for idle, and for the summed `others`).
    pub pid: u32,
    /// Time on the CPU during the gap, microseconds.
    pub time_us: f64,
    /// Fraction of the gap, 0..1.
    pub share: f64,
}

/// How often something happened during a gap.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Count {
    /// IRQ name, IPI reason or callback, or softirq action.
    pub name: String,
    /// Occurrences.
    pub count: u64,
}

/// What happened on one CPU during an interval.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Activity {
    /// Tasks by time on the CPU, largest first.
    pub tasks: Vec<TaskShare>,
    /// IPIs delivered to (or raised for) the CPU.
    pub ipis: Vec<Count>,
    /// Hardware IRQ handlers run on the CPU.
    pub irqs: Vec<Count>,
    /// Softirqs run on the CPU.
    pub softirqs: Vec<Count>,
    /// False when the history did not reach back to the interval's start (very busy CPU or
    /// no event from it), so shares cover only part of the interval.
    pub history_complete: bool,
}

impl Timeline {
    /// A timeline keeping at least `window_ns` of history per CPU.
    pub fn new(window_ns: u64) -> Self {
        Timeline {
            window_ns,
            cpus: Vec::new(),
            tasks: HashMap::new(),
            names: Vec::new(),
            name_ids: HashMap::new(),
        }
    }

    fn cpu(&mut self, cpu: u32) -> &mut Cpu {
        let i = cpu as usize;
        if i >= self.cpus.len() {
            self.cpus.resize_with(i + 1, Cpu::default);
        }
        &mut self.cpus[i]
    }

    /// Notes that `pid` (`comm`) was running on `cpu` at `ts`. Cheap when nothing changed.
    pub fn running(&mut self, cpu: u32, ts: u64, pid: u32, comm: &str) {
        if self.cpus.get(cpu as usize).and_then(|c| c.current) == Some(pid) {
            return;
        }
        self.learn_task(pid, comm);
        self.push(
            cpu,
            Entry {
                ts,
                mark: Mark::Task,
                id: pid,
            },
        );
        self.cpu(cpu).current = Some(pid);
    }

    /// Notes a context switch to `pid` (`comm`) on `cpu` at `ts`.
    pub fn switch_to(&mut self, cpu: u32, ts: u64, pid: u32, comm: &str) {
        self.running(cpu, ts, pid, comm);
    }

    /// Records an IRQ handler run on `cpu`.
    pub fn irq(&mut self, cpu: u32, ts: u64, name: &str) {
        let id = self.name_id(name);
        self.push(
            cpu,
            Entry {
                ts,
                mark: Mark::Irq,
                id,
            },
        );
    }

    /// Records a softirq run on `cpu`.
    pub fn softirq(&mut self, cpu: u32, ts: u64, name: &str) {
        let id = self.name_id(name);
        self.push(
            cpu,
            Entry {
                ts,
                mark: Mark::SoftIrq,
                id,
            },
        );
    }

    /// Records an IPI arriving on `cpu`.
    pub fn ipi(&mut self, cpu: u32, ts: u64, name: &str) {
        let id = self.name_id(name);
        self.push(
            cpu,
            Entry {
                ts,
                mark: Mark::Ipi,
                id,
            },
        );
    }

    /// Records an IPI sent towards `cpu` (from any CPU).
    pub fn ipi_sent(&mut self, cpu: u32, ts: u64, name: &str) {
        if cpu > MAX_CPU {
            return;
        }
        let id = self.name_id(name);
        self.push(
            cpu,
            Entry {
                ts,
                mark: Mark::IpiSent,
                id,
            },
        );
    }

    /// Remembers the newest real command name of `pid` (names change on exec; `<...>` means
    /// the kernel did not save one).
    fn learn_task(&mut self, pid: u32, comm: &str) {
        let comm = if pid == 0 { "<idle>" } else { comm };
        match self.tasks.get_mut(&pid) {
            Some(known) if known.as_str() == comm || comm == "<...>" => {}
            Some(known) => *known = comm.to_owned(),
            None => {
                self.tasks.insert(pid, comm.to_owned());
            }
        }
    }

    fn name_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        let name = if self.names.len() >= MAX_NAMES {
            "other"
        } else {
            name
        };
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.name_ids.insert(name.to_owned(), id);
        id
    }

    fn push(&mut self, cpu: u32, e: Entry) {
        let window = self.window_ns;
        let c = self.cpu(cpu);
        let horizon = e.ts.saturating_sub(window);
        while let Some(front) = c.entries.front() {
            let full = c.entries.len() >= MAX_ENTRIES_PER_CPU;
            if front.ts >= horizon && !full {
                break;
            }
            if full && front.ts >= horizon {
                c.truncated_before = Some(front.ts);
            }
            if front.mark == Mark::Task {
                c.base_task = Some(front.id);
            }
            c.entries.pop_front();
        }
        c.entries.push_back(e);
    }

    /// Walks `c` over `[from, to]`: `on_task(pid, ns)` for each stretch a task ran,
    /// `on_mark(mark, id)` for IRQs and IPIs. Returns whether history covered `from`.
    fn walk(
        c: &Cpu,
        from: u64,
        to: u64,
        mut on_task: impl FnMut(u32, u64),
        mut on_mark: impl FnMut(Mark, u32),
    ) -> bool {
        // The task running at `from`: the last task entry at or before it.
        let first_in = c.entries.partition_point(|e| e.ts <= from);
        let mut cur = c
            .entries
            .range(..first_in)
            .rev()
            .find(|e| e.mark == Mark::Task)
            .map(|e| e.id);
        let mut complete = cur.is_some();
        if cur.is_none() {
            cur = c.base_task;
            complete = c.base_task.is_some()
                && c.entries
                    .front()
                    .is_none_or(|e| e.ts <= from || c.truncated_before.is_none());
        }
        if c.truncated_before.is_some_and(|t| t > from) {
            complete = false;
        }
        let mut at = from;
        for e in c.entries.range(first_in..) {
            if e.ts > to {
                break;
            }
            if e.mark == Mark::Task {
                if let Some(p) = cur {
                    on_task(p, e.ts - at);
                }
                cur = Some(e.id);
                at = e.ts;
            } else {
                on_mark(e.mark, e.id);
            }
        }
        if let Some(p) = cur {
            on_task(p, to.saturating_sub(at));
        }
        complete
    }

    /// The task that last handed `cpu` to `pid` within `[from, to]` (the one running just
    /// before `pid` was switched in), with its command name.
    pub fn handed_over(&self, cpu: u32, from: u64, to: u64, pid: u32) -> Option<(u32, String)> {
        let c = self.cpus.get(cpu as usize)?;
        let start = c.entries.partition_point(|e| e.ts < from);
        let mut prev = c
            .entries
            .range(..start)
            .rev()
            .find(|e| e.mark == Mark::Task)
            .map(|e| e.id)
            .or(c.base_task);
        let mut last = None;
        for e in c.entries.range(start..) {
            if e.ts > to {
                break;
            }
            if e.mark == Mark::Task {
                if e.id == pid && prev.is_some_and(|p| p != pid) {
                    last = prev;
                }
                prev = Some(e.id);
            }
        }
        last.map(|p| (p, self.task_name(p)))
    }

    /// The best known command name of `pid`.
    pub fn task_name(&self, pid: u32) -> String {
        self.tasks
            .get(&pid)
            .cloned()
            .unwrap_or_else(|| "<...>".into())
    }

    /// How long `pid` ran over `[from, to]` on any CPU, and on which CPUs.
    pub fn ran(&self, pid: u32, from: u64, to: u64) -> (u64, Vec<u32>) {
        let mut total = 0;
        let mut cpus = Vec::new();
        for (i, c) in self.cpus.iter().enumerate() {
            let mut here = 0;
            Self::walk(
                c,
                from,
                to,
                |p, ns| {
                    if p == pid {
                        here += ns
                    }
                },
                |_, _| {},
            );
            if here > 0 {
                total += here;
                cpus.push(i as u32);
            }
        }
        (total, cpus)
    }

    /// Summarises `cpu` over `[from, to]` (nanoseconds).
    pub fn activity(&self, cpu: u32, from: u64, to: u64) -> Activity {
        let Some(c) = self.cpus.get(cpu as usize) else {
            return Activity::default();
        };
        let span = to.saturating_sub(from).max(1);
        let mut time: HashMap<u32, u64> = HashMap::new();
        let (mut irqs, mut ipis, mut softirqs) = (HashMap::new(), HashMap::new(), HashMap::new());
        let mut sent = HashMap::new();
        let complete = Self::walk(
            c,
            from,
            to,
            |p, ns| *time.entry(p).or_default() += ns,
            |mark, id| {
                let m = match mark {
                    Mark::Irq => &mut irqs,
                    Mark::Ipi => &mut ipis,
                    Mark::IpiSent => &mut sent,
                    Mark::SoftIrq | Mark::Task => &mut softirqs,
                };
                *m.entry(id).or_insert(0u64) += 1;
            },
        );
        Activity {
            tasks: self.shares(time, span),
            ipis: self.counts(if ipis.is_empty() { sent } else { ipis }),
            irqs: self.counts(irqs),
            softirqs: self.counts(softirqs),
            history_complete: complete,
        }
    }

    fn shares(&self, time: HashMap<u32, u64>, span: u64) -> Vec<TaskShare> {
        let mut v: Vec<(u32, u64)> = time.into_iter().filter(|&(_, t)| t > 0).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let share = |t: u64| TaskShare {
            task: String::new(),
            pid: 0,
            time_us: t as f64 / 1e3,
            share: (t as f64 / span as f64).min(1.0),
        };
        let mut out: Vec<TaskShare> = v
            .iter()
            .take(TOP_TASKS)
            .map(|&(pid, t)| TaskShare {
                task: self
                    .tasks
                    .get(&pid)
                    .cloned()
                    .unwrap_or_else(|| "<...>".into()),
                pid,
                ..share(t)
            })
            .collect();
        let rest: u64 = v.iter().skip(TOP_TASKS).map(|&(_, t)| t).sum();
        if rest > 0 {
            out.push(TaskShare {
                task: "others".into(),
                ..share(rest)
            });
        }
        out
    }

    fn counts(&self, m: HashMap<u32, u64>) -> Vec<Count> {
        let mut v: Vec<Count> = m
            .into_iter()
            .map(|(id, count)| Count {
                name: self.names[id as usize].clone(),
                count,
            })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_irqs_and_ipis_over_an_interval() {
        let mut t = Timeline::new(10_000);
        t.running(1, 100, 7, "kvm");
        t.switch_to(1, 1_000, 0, "swapper/1");
        t.switch_to(1, 2_000, 9, "qemu-worker");
        t.ipi(1, 2_500, "Rescheduling interrupts");
        t.ipi_sent(1, 2_499, "Rescheduling interrupts"); // same IPI seen at the sender
        t.ipi(1, 3_000, "Rescheduling interrupts");
        t.irq(1, 3_500, "arch_timer");
        t.running(1, 4_000, 9, "qemu-worker"); // no change: no entry
        t.switch_to(1, 5_000, 7, "kvm");
        t.running(0, 3_000, 5, "other-cpu");
        let a = t.activity(1, 500, 5_500);
        let got: Vec<_> = a
            .tasks
            .iter()
            .map(|s| (s.task.as_str(), s.pid, s.time_us))
            .collect();
        // Ties are ordered by pid.
        assert_eq!(
            got,
            [("qemu-worker", 9, 3.0), ("<idle>", 0, 1.0), ("kvm", 7, 1.0)]
        );
        assert!((a.tasks[0].share - 0.6).abs() < 1e-9);
        // qemu-worker handed cpu 1 back to kvm.
        assert_eq!(
            t.handed_over(1, 500, 5_500, 7),
            Some((9, "qemu-worker".into()))
        );
        assert_eq!(t.handed_over(1, 500, 4_999, 7), None);
        // kvm (7) ran 500 ns on cpu 1 in the interval; pid 5 only on cpu 0.
        assert_eq!(t.ran(7, 500, 5_500), (1_000, vec![1]));
        assert_eq!(t.ran(5, 3_000, 4_000), (1_000, vec![0]));
        assert_eq!(
            a.ipis,
            [Count {
                name: "Rescheduling interrupts".into(),
                count: 2
            }]
        );
        assert_eq!(
            a.irqs,
            [Count {
                name: "arch_timer".into(),
                count: 1
            }]
        );
        assert!(a.history_complete);
    }

    #[test]
    fn window_evicts_but_remembers_the_running_task() {
        let mut t = Timeline::new(1_000);
        t.running(0, 0, 3, "a");
        t.switch_to(0, 10, 4, "b");
        t.irq(0, 5_000, "x"); // evicts both task entries; b is still running
        let a = t.activity(0, 4_500, 5_500);
        assert_eq!(a.tasks.len(), 1);
        assert_eq!((a.tasks[0].task.as_str(), a.tasks[0].share), ("b", 1.0));
        assert!(a.history_complete);
        assert_eq!(t.activity(9, 0, 1), Activity::default());
        // Only the sender side recorded: those count.
        t.ipi_sent(0, 5_100, "resched_curr");
        assert_eq!(
            t.activity(0, 5_000, 5_200).ipis,
            [Count {
                name: "resched_curr".into(),
                count: 1
            }]
        );
    }
}
