//! The probe protocol's guest side: one request datagram in, at most one reply datagram out.

use vmprobe_proto::clock_reply::{self, Reading};
use vmprobe_proto::error_reply::{self, Code};
use vmprobe_proto::samples::{self, SampleSlice};
use vmprobe_proto::{
    bench_request, bench_result, clock_request, echo_reply, echo_request, samples_request,
    Datagram, Error, Kind, Message, Summary, HEADER_LEN,
};

use super::platform::{BenchError, ProbePlatform};

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Send the first `n` bytes of the reply buffer back to the sender.
    Reply(usize),
    /// Nothing to send; the datagram was counted and dropped.
    Dropped(DropReason),
}

/// Why a datagram got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Not a valid probe message (counted in `probe_malformed`).
    Malformed(Error),
    /// A valid header of a kind the guest does not serve, e.g. a reply (counted in
    /// `probe_unknown`).
    Unknown,
    /// The caller's reply buffer cannot hold even the shortest reply.
    ReplyBufferTooSmall,
}

/// The handler's own counters, reported in the `probe_*` stats fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProbeCounters {
    /// Datagrams handed to the handler.
    pub rx: u64,
    /// Dropped as malformed.
    pub malformed: u64,
    /// Dropped as a kind the guest does not serve.
    pub unknown: u64,
    /// Replies produced.
    pub replies: u64,
}

/// The run whose samples the handler holds.
#[derive(Debug, Clone, Copy)]
struct Run {
    id: u32,
    len: usize,
}

/// Answers probe datagrams. It owns no socket: the caller receives a datagram on
/// [`PROBE_PORT`](vmprobe_proto::PROBE_PORT), calls [`handle`](Self::handle), and sends the
/// reply to the sender. Micro-benchmark samples live in the caller-supplied buffer until the
/// next run, so the host can fetch them in chunks.
pub struct ProbeHandler<'s> {
    samples: &'s mut [u64],
    run: Option<Run>,
    next_run_id: u32,
    counters: ProbeCounters,
}

impl<'s> ProbeHandler<'s> {
    /// A handler keeping at most `samples.len()` samples per micro-benchmark run.
    pub fn new(samples: &'s mut [u64]) -> Self {
        ProbeHandler {
            samples,
            run: None,
            next_run_id: 1,
            counters: ProbeCounters::default(),
        }
    }

    /// The handler's counters so far.
    pub fn counters(&self) -> ProbeCounters {
        self.counters
    }

    /// Handle one received datagram (the UDP payload), writing any reply into `reply`. Never
    /// panics, whatever the bytes.
    pub fn handle<P: ProbePlatform>(
        &mut self,
        platform: &mut P,
        request: &[u8],
        reply: &mut [u8],
    ) -> Outcome {
        self.counters.rx += 1;
        let datagram = match Datagram::parse(request) {
            Ok(d) => d,
            Err(Error::UnknownKind) => return self.drop(DropReason::Unknown),
            Err(e) => return self.drop(DropReason::Malformed(e)),
        };
        let answer = match datagram.message {
            Message::EchoRequest(r) => self.echo(platform, &r, request.len(), reply.len()),
            Message::StatsRequest => Message::StatsReply(self.stats(platform)),
            Message::BenchRequest(r) => self.bench(platform, &r),
            Message::SamplesRequest(r) => self.samples_chunk(&r, reply.len()),
            Message::ClockRequest(r) => clock(platform, &r),
            Message::PowerOff => {
                platform.request_power_off();
                Message::PowerOffAck
            }
            Message::EchoReply(_)
            | Message::StatsReply(_)
            | Message::BenchResult(_)
            | Message::Samples(_)
            | Message::PowerOffAck
            | Message::Error(_)
            | Message::ClockReply(_) => return self.drop(DropReason::Unknown),
        };
        let out = Datagram {
            sequence: datagram.sequence,
            flags: datagram.flags,
            message: answer,
        };
        match out.emit(reply) {
            Ok(n) => {
                self.counters.replies += 1;
                Outcome::Reply(n)
            }
            Err(_) => Outcome::Dropped(DropReason::ReplyBufferTooSmall),
        }
    }

    fn drop(&mut self, reason: DropReason) -> Outcome {
        match reason {
            DropReason::Malformed(_) => self.counters.malformed += 1,
            DropReason::Unknown => self.counters.unknown += 1,
            DropReason::ReplyBufferTooSmall => {}
        }
        Outcome::Dropped(reason)
    }

    /// The echo reply, padded to the requested length as far as the reply buffer allows.
    fn echo<P: ProbePlatform>(
        &mut self,
        platform: &mut P,
        r: &echo_request::Repr,
        request_len: usize,
        reply_capacity: usize,
    ) -> Message<'static> {
        let handled = platform.now();
        let minimal = HEADER_LEN + echo_reply::FIXED_LEN;
        let total = usize::from(r.reply_len).clamp(minimal, reply_capacity.max(minimal));
        Message::EchoReply(echo_reply::Repr {
            host_send_ns: r.host_send_ns,
            request_len: u16::try_from(request_len).unwrap_or(u16::MAX),
            cntfrq_hz: platform.cntfrq_hz(),
            counter: platform.counter_kind(),
            mode: platform.mode(),
            irq_entry: r.rx.irq_entry,
            rx_seen: r.rx.rx_seen,
            handled,
            tx: echo_reply::TxStamps::default(),
            padding: total - minimal,
        })
    }

    fn stats<P: ProbePlatform>(&self, platform: &mut P) -> vmprobe_proto::GuestStats {
        let mut s = platform.stats();
        s.probe_rx = self.counters.rx;
        s.probe_malformed = self.counters.malformed;
        s.probe_unknown = self.counters.unknown;
        s.probe_replies = self.counters.replies;
        s
    }

    /// Run a micro-benchmark into the sample buffer and summarise it.
    fn bench<P: ProbePlatform>(
        &mut self,
        platform: &mut P,
        r: &bench_request::Repr,
    ) -> Message<'static> {
        // The buffer is about to be overwritten: the previous run's samples are gone.
        self.run = None;
        let len = (r.iterations as usize).min(self.samples.len());
        let buf = &mut self.samples[..len];
        let refuse = |code| {
            Message::Error(error_reply::Repr {
                code,
                request_kind: Kind::BenchRequest,
                detail: u32::from(r.test.id()),
            })
        };
        match platform.run_bench(r.test, r.param, buf) {
            Ok(()) => {}
            Err(BenchError::Unsupported) => return refuse(Code::UnsupportedTest),
            Err(BenchError::Failed) => return refuse(Code::BenchFailed),
        }
        let id = self.next_run_id;
        self.next_run_id = self.next_run_id.wrapping_add(1).max(1);
        self.run = Some(Run { id, len });
        Message::BenchResult(bench_result::Repr {
            test: r.test,
            counter: platform.counter_kind(),
            run_id: id,
            cntfrq_hz: platform.cntfrq_hz(),
            // No iterations: an empty summary, `count` 0 says so.
            summary: Summary::of(buf).unwrap_or_default(),
        })
    }

    /// A chunk of the held run's samples, as many as asked for and as fit the reply buffer.
    fn samples_chunk(&self, r: &samples_request::Repr, reply_capacity: usize) -> Message<'_> {
        let Some(run) = self.run.filter(|run| run.id == r.run_id) else {
            return Message::Error(error_reply::Repr {
                code: Code::NoSuchRun,
                request_kind: Kind::SamplesRequest,
                detail: r.run_id,
            });
        };
        let start = (r.offset as usize).min(run.len);
        let fit = samples::capacity(reply_capacity.saturating_sub(HEADER_LEN));
        let count = usize::from(r.count).min(run.len - start).min(fit);
        Message::Samples(samples::Repr {
            run_id: run.id,
            offset: r.offset,
            total: run.len as u32,
            samples: SampleSlice::Values(&self.samples[start..start + count]),
        })
    }
}

/// KVM PTP readings, as many as asked for and fit one reply, or why there are none.
fn clock<P: ProbePlatform>(platform: &mut P, r: &clock_request::Repr) -> Message<'static> {
    let mut readings = [Reading::default(); clock_reply::MAX_READINGS];
    let count = usize::from(r.count).min(clock_reply::MAX_READINGS);
    match platform.clock_readings(r.counter, &mut readings[..count]) {
        Ok(()) => Message::ClockReply(clock_reply::Repr {
            counter: r.counter,
            count: count as u8,
            readings,
        }),
        Err(absence) => Message::Error(error_reply::Repr {
            code: Code::ClockAbsent,
            request_kind: Kind::ClockRequest,
            detail: absence as u32,
        }),
    }
}
