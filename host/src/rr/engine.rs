//! The measured loop: send, wait for the matching reply, stamp, hand the sample on.
//!
//! Only the time between the CLOCK_MONOTONIC read just before `send` and the one the
//! transport takes the moment its receive call returns is measured; pacing, checking the reply, statistics and the log
//! happen outside that window. The loop is generic over its [`Transport`], [`Framing`] and
//! [`SampleSink`], so it runs unchanged against scripted transports in tests.
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::framing::{Framing, Verdict};
use super::pacing::{Pacer, Pacing};
use super::stamp;
use super::transport::{Received, Transport};
use crate::stats::SampleId;

/// When the measured phase ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// After this many measured transactions (sent requests, whatever their outcome).
    Count(u64),
    /// When this much time has passed since the first measured request.
    Duration(Duration),
}

/// How a run proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// End of the measured phase.
    pub limit: Limit,
    /// Transactions before the measured phase, neither recorded nor counted.
    pub warmup: u64,
    /// Paced starts, or back to back when `None`.
    pub pacing: Option<Pacing>,
    /// How long a transaction waits for its reply before it is lost.
    pub timeout: Duration,
    /// Spin instead of sleeping between paced transactions.
    pub spin_wait: bool,
}

/// How a measured transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The matching reply arrived.
    Reply {
        /// Round-trip time from the user-space clocks, ns.
        rtt_ns: u64,
        /// Round-trip time to the kernel's software RX timestamp, ns, if there was one.
        rx_sw_rtt_ns: Option<u64>,
    },
    /// No matching reply before the timeout.
    Lost,
    /// A reply carrying the current sequence number came back altered.
    Error,
}

/// One measured transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Sequence number and send times.
    pub id: SampleId,
    /// Result.
    pub outcome: Outcome,
}

/// Receives every measured transaction, outside the timed window.
pub trait SampleSink {
    /// Takes one sample.
    fn sample(&mut self, sample: &Sample) -> io::Result<()>;
    /// Called when the loop is idle (about to wait for a paced slot) and at the end:
    /// a good moment to flush buffers.
    fn idle(&mut self, _now_mono_ns: u64) -> io::Result<()> {
        Ok(())
    }
}

/// Live counters another thread may read (progress display).
#[derive(Debug, Default)]
pub struct Progress {
    /// Measured transactions done so far.
    pub done: AtomicU64,
    /// Recent round-trip figures (filled by the sample collector).
    pub live: super::live::LiveStats,
}

/// What the loop counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Measured requests sent.
    pub sent: u64,
    /// Measured transactions with a matching reply.
    pub transactions: u64,
    /// Measured transactions that timed out.
    pub lost: u64,
    /// Measured transactions answered by an altered reply (their sequence number, wrong bytes).
    pub errors: u64,
    /// Replies that belong to no request (unknown sequence number or garbage), ignored.
    pub stray: u64,
    /// Intact replies to earlier, already timed-out requests (ignored, not counted as replies).
    pub late: u64,
    /// Sequence number of the first measured transaction (after warm-up).
    pub first_seq: u64,
    /// Wall-clock time of the first measured send, ns since the Unix epoch (0 if none).
    pub start_unix_ns: u64,
    /// From the first measured send to the end of the last measured transaction, ns.
    pub elapsed_ns: u64,
    /// The run was stopped early by the stop flag.
    pub interrupted: bool,
}

/// Why the loop ended before its limit.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    /// Sending failed.
    #[error("send failed: {0}")]
    Send(#[source] io::Error),
    /// Receiving failed.
    #[error("receive failed: {0}")]
    Recv(#[source] io::Error),
    /// The sample sink (log file) failed.
    #[error("writing a sample failed: {0}")]
    Sink(#[source] io::Error),
}

impl LoopError {
    /// The underlying I/O error.
    pub fn io(&self) -> &io::Error {
        match self {
            LoopError::Send(e) | LoopError::Recv(e) | LoopError::Sink(e) => e,
        }
    }
}

/// Runs the loop until the plan's limit, the stop flag, or an I/O error. On error the tally
/// of what was measured so far comes back with it.
pub fn measure<T, F, S>(
    transport: &mut T,
    framing: &mut F,
    plan: &Plan,
    stop: &AtomicBool,
    progress: &Progress,
    sink: &mut S,
) -> (Tally, Result<(), LoopError>)
where
    T: Transport + ?Sized,
    F: Framing + ?Sized,
    S: SampleSink + ?Sized,
{
    let mut tally = Tally::default();
    let result = run_loop(transport, framing, plan, stop, progress, sink, &mut tally);
    let idle = sink.idle(stamp::mono_ns()).map_err(LoopError::Sink);
    (tally, result.and(idle))
}

fn run_loop<T, F, S>(
    transport: &mut T,
    framing: &mut F,
    plan: &Plan,
    stop: &AtomicBool,
    progress: &Progress,
    sink: &mut S,
    tally: &mut Tally,
) -> Result<(), LoopError>
where
    T: Transport + ?Sized,
    F: Framing + ?Sized,
    S: SampleSink + ?Sized,
{
    let timeout_ns = u64::try_from(plan.timeout.as_nanos()).unwrap_or(u64::MAX);
    let mut request = vec![0u8; framing.request_len()];
    // Room for any reply a little longer than the request, so over-long ones are caught.
    let mut reply = vec![0u8; framing.request_len().max(65_536) + 1];
    let mut pacer = plan.pacing.map(Pacer::new);
    let mut measured_start_mono: Option<u64> = None;
    tally.first_seq = plan.warmup;
    let mut answered = false;

    for seq in 0u64.. {
        let measured = seq >= plan.warmup;
        if measured {
            let done = seq - plan.warmup;
            let over = match plan.limit {
                Limit::Count(n) => done >= n,
                Limit::Duration(d) => measured_start_mono
                    .is_some_and(|t0| stamp::mono_ns().saturating_sub(t0) >= d.as_nanos() as u64),
            };
            if over {
                break;
            }
        }
        if stop.load(Ordering::Relaxed) {
            tally.interrupted = true;
            break;
        }
        let mut slot_start = None;
        if let Some(p) = pacer.as_mut() {
            let now = stamp::mono_ns();
            let start = p.next_start(now);
            slot_start = Some(start);
            if let (Limit::Duration(d), Some(t0)) = (plan.limit, measured_start_mono) {
                if start.saturating_sub(t0) >= d.as_nanos() as u64 {
                    break; // the slot is past the end of the run: do not wait for it
                }
            }
            if start > now {
                sink.idle(now).map_err(LoopError::Sink)?;
                if !stamp::wait_until(start, plan.spin_wait, stop) {
                    tally.interrupted = true;
                    break;
                }
            }
        }

        framing.encode(seq, &mut request);
        let send_unix_ns = stamp::realtime_ns();
        let t0 = stamp::mono_ns();
        // Once the target has answered, an ICMP "port unreachable" (a restarting echo
        // service) is not fatal: the transaction waits for its timeout and counts as lost.
        let transient = |e: &io::Error| answered && e.kind() == io::ErrorKind::ConnectionRefused;
        match transport.send(&request) {
            Err(e) if !transient(&e) => return Err(LoopError::Send(e)),
            _ => {}
        }
        if measured {
            if measured_start_mono.is_none() {
                // A paced run's measured time starts at its first slot, so that a duration
                // of k intervals holds exactly k slots.
                measured_start_mono = Some(slot_start.map_or(t0, |s| s.min(t0)));
                tally.start_unix_ns = send_unix_ns;
            }
            tally.sent += 1;
        }
        let deadline = t0.saturating_add(timeout_ns);
        let outcome = loop {
            let received = match transport.recv(&mut reply, deadline, stop) {
                Ok(r) => r,
                Err(e) if transient(&e) => continue,
                Err(e) => return Err(LoopError::Recv(e)),
            };
            match received {
                Received::Data {
                    len,
                    t1_mono_ns: t1,
                    rx_sw_unix_ns,
                } => match framing.check(seq, &request, &reply[..len]) {
                    Verdict::Match => {
                        answered = true;
                        let rx_sw_rtt_ns = rx_sw_unix_ns
                            .and_then(|rx| rx.checked_sub(send_unix_ns))
                            .filter(|rtt| *rtt <= timeout_ns.saturating_mul(2));
                        break Some(Outcome::Reply {
                            rtt_ns: t1 - t0,
                            rx_sw_rtt_ns,
                        });
                    }
                    Verdict::Late => {
                        if measured {
                            tally.late += 1;
                        }
                    }
                    Verdict::Corrupt => break Some(Outcome::Error),
                    Verdict::Stray => {
                        if measured {
                            tally.stray += 1;
                        }
                    }
                },
                Received::Timeout => break Some(Outcome::Lost),
                Received::Stopped => break None,
            }
        };
        let Some(outcome) = outcome else {
            // Interrupted while waiting: the transaction has no result and is not counted.
            if measured {
                tally.sent -= 1;
            }
            tally.interrupted = true;
            break;
        };
        if !measured {
            continue;
        }
        match outcome {
            Outcome::Reply { .. } => tally.transactions += 1,
            Outcome::Lost => tally.lost += 1,
            Outcome::Error => tally.errors += 1,
        }
        tally.elapsed_ns = stamp::mono_ns() - measured_start_mono.unwrap_or(t0);
        let id = SampleId {
            seq,
            send_unix_ns,
            send_mono_ns: t0,
        };
        let sample = Sample { id, outcome };
        sink.sample(&sample).map_err(LoopError::Sink)?;
        framing.observe(&sample).map_err(LoopError::Sink)?;
        progress
            .done
            .store(seq + 1 - plan.warmup, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rr::framing::EchoFraming;
    use std::collections::VecDeque;

    /// What the scripted target does with each request.
    #[derive(Clone, Copy)]
    enum Act {
        Echo,
        Drop,
        Corrupt,
        /// Echo it later: just before the reply to the next request.
        Defer,
    }

    struct Scripted {
        acts: Vec<Act>,
        next: usize,
        queue: VecDeque<Vec<u8>>,
        deferred: Option<Vec<u8>>,
    }

    impl Transport for Scripted {
        fn send(&mut self, request: &[u8]) -> io::Result<()> {
            let act = self.acts.get(self.next).copied().unwrap_or(Act::Echo);
            self.next += 1;
            if !matches!(act, Act::Drop | Act::Defer) {
                if let Some(late) = self.deferred.take() {
                    self.queue.push_back(late);
                }
            }
            match act {
                Act::Echo => self.queue.push_back(request.to_vec()),
                Act::Drop => {}
                Act::Corrupt => {
                    let mut r = request.to_vec();
                    let last = r.len() - 1;
                    r[last] ^= 0xff;
                    self.queue.push_back(r)
                }
                Act::Defer => self.deferred = Some(request.to_vec()),
            }
            Ok(())
        }

        fn recv(
            &mut self,
            buf: &mut [u8],
            _deadline: u64,
            _stop: &AtomicBool,
        ) -> io::Result<Received> {
            Ok(match self.queue.pop_front() {
                Some(r) => {
                    buf[..r.len()].copy_from_slice(&r);
                    Received::Data {
                        len: r.len(),
                        t1_mono_ns: stamp::mono_ns(),
                        rx_sw_unix_ns: None,
                    }
                }
                None => Received::Timeout,
            })
        }
    }

    #[derive(Default)]
    struct Collect(Vec<Sample>);
    impl SampleSink for Collect {
        fn sample(&mut self, s: &Sample) -> io::Result<()> {
            self.0.push(*s);
            Ok(())
        }
    }

    fn run(acts: Vec<Act>, count: u64, warmup: u64) -> (Tally, Vec<Sample>) {
        let mut t = Scripted {
            acts,
            next: 0,
            queue: VecDeque::new(),
            deferred: None,
        };
        let plan = Plan {
            limit: Limit::Count(count),
            warmup,
            pacing: None,
            timeout: Duration::from_millis(10),
            spin_wait: false,
        };
        let mut sink = Collect::default();
        let (tally, res) = measure(
            &mut t,
            &mut EchoFraming::new(32),
            &plan,
            &AtomicBool::new(false),
            &Progress::default(),
            &mut sink,
        );
        res.unwrap();
        (tally, sink.0)
    }

    #[test]
    fn counts_exclude_warmup() {
        let (t, s) = run(vec![Act::Drop, Act::Echo], 5, 2);
        assert_eq!((t.sent, t.transactions, t.lost), (5, 5, 0));
        assert_eq!(s.first().unwrap().id.seq, 2);
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn drops_are_lost() {
        let (t, s) = run(vec![Act::Echo, Act::Drop, Act::Echo, Act::Drop], 4, 0);
        assert_eq!((t.transactions, t.lost, t.errors), (2, 2, 0));
        assert_eq!(s[1].outcome, Outcome::Lost);
    }

    #[test]
    fn deferred_reply_is_late_not_the_next_ones() {
        let (t, s) = run(vec![Act::Echo, Act::Defer, Act::Echo, Act::Echo], 4, 0);
        assert_eq!((t.transactions, t.lost, t.late, t.errors), (3, 1, 1, 0));
        assert_eq!(s[1].outcome, Outcome::Lost);
        assert!(matches!(s[2].outcome, Outcome::Reply { .. }));
    }

    #[test]
    fn corrupted_reply_is_an_error() {
        let (t, s) = run(vec![Act::Echo, Act::Corrupt, Act::Echo], 3, 0);
        assert_eq!((t.transactions, t.lost, t.errors), (2, 0, 1));
        assert_eq!(s[1].outcome, Outcome::Error);
    }

    #[test]
    fn raised_stop_flag_ends_before_sending() {
        let mut t = Scripted {
            acts: vec![],
            next: 0,
            queue: VecDeque::new(),
            deferred: None,
        };
        let plan = Plan {
            limit: Limit::Count(10),
            warmup: 0,
            pacing: None,
            timeout: Duration::from_millis(10),
            spin_wait: false,
        };
        let (tally, res) = measure(
            &mut t,
            &mut EchoFraming::new(8),
            &plan,
            &AtomicBool::new(true),
            &Progress::default(),
            &mut Collect::default(),
        );
        res.unwrap();
        assert!(tally.interrupted);
        assert_eq!(tally.sent, 0);
    }
}
