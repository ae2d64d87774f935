//! Timestamped echo requests for the rr engine, and what comes back in their replies.
//!
//! Each request is a probe-protocol echo request (sequence number, host send time from
//! CLOCK_MONOTONIC, padded to `--size`) asking for a reply of the same length. A reply matches
//! when it is an echo reply with the request's sequence number and send time; its guest
//! readings are kept until the engine reports the finished sample ([`Framing::observe`]), which
//! then goes to the [`Spool`] (every sample) and, when stamped, to the clock [`Envelope`].

use std::io;

use vmprobe_proto::{echo_reply, echo_request, header, Datagram, Message, HEADER_LEN};

use super::envelope::Envelope;
use super::host_counter::HostCounter;
use super::spool::{Readings, Record, Spool};
use crate::clock::{Exchange, GuestCounter};
use crate::rr::engine::{Outcome, Sample};
use crate::rr::framing::{Framing, Verdict};

/// Shortest request: the header and the echo request's fixed part.
pub const MIN_REQUEST: usize = HEADER_LEN + echo_request::FIXED_LEN;
/// Shortest reply the guest sends.
pub const MIN_REPLY: usize = HEADER_LEN + echo_reply::FIXED_LEN;

/// What the guest says about itself in its replies (from the first stamped one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestFacts {
    /// Counter frequency and kind.
    pub counter: GuestCounter,
    /// irq or poll.
    pub mode: vmprobe_proto::GuestMode,
}

/// The probe protocol as an rr [`Framing`].
#[derive(Debug)]
pub struct ProbeFraming {
    size: usize,
    sent_ns: u64,
    last: Option<(u64, Readings)>,
    facts: Option<GuestFacts>,
    changed_facts: u64,
    spool: Spool,
    envelope: Option<Envelope>,
    host_counter: Option<HostCounter>,
}

/// Samples between two host counter readings (`--clock shared-counter`).
const HOST_COUNTER_EVERY: u64 = 1024;

impl ProbeFraming {
    /// Requests of `size` bytes (at least [`MIN_REQUEST`]), records into `spool`.
    pub fn new(size: usize, spool: Spool) -> Self {
        ProbeFraming {
            size: size.max(MIN_REQUEST),
            sent_ns: 0,
            last: None,
            facts: None,
            changed_facts: 0,
            spool,
            envelope: None,
            host_counter: None,
        }
    }

    /// Also read the host's counter now and then, for the exact clock mapping.
    pub fn with_host_counter(mut self, counter: HostCounter) -> Self {
        self.host_counter = Some(counter);
        self
    }

    /// What the guest reported about its counter and mode, if it answered at all.
    pub fn facts(&self) -> Option<GuestFacts> {
        self.facts
    }

    /// Replies whose counter frequency, kind or mode differed from the first one's (a guest
    /// restarted mid-run): they are kept out of the one-way split.
    pub fn changed_facts(&self) -> u64 {
        self.changed_facts
    }

    /// Gives up the framing for its spool, clock envelope and host counter readings.
    pub fn into_parts(self) -> (Spool, Option<Envelope>, Option<HostCounter>) {
        (self.spool, self.envelope, self.host_counter)
    }

    fn note_facts(&mut self, r: &echo_reply::Repr) -> bool {
        let facts = GuestFacts {
            counter: GuestCounter {
                cntfrq_hz: r.cntfrq_hz,
                kind: r.counter,
            },
            mode: r.mode,
        };
        match self.facts {
            None => {
                self.facts = Some(facts);
                true
            }
            Some(f) if f == facts => true,
            Some(_) => {
                self.changed_facts += 1;
                false
            }
        }
    }
}

impl Framing for ProbeFraming {
    fn request_len(&self) -> usize {
        self.size
    }

    fn encode(&mut self, seq: u64, request: &mut [u8]) {
        self.sent_ns = crate::rr::stamp::mono_ns();
        let datagram = Datagram {
            sequence: seq as u32,
            flags: 0,
            message: Message::EchoRequest(echo_request::Repr::sized(
                self.sent_ns,
                request.len(),
                u16::try_from(self.size).unwrap_or(u16::MAX),
            )),
        };
        // `request` is `size >= MIN_REQUEST` bytes and the datagram exactly that long.
        let _ = datagram.emit(request);
    }

    fn check(&mut self, seq: u64, _request: &[u8], reply: &[u8]) -> Verdict {
        let current = seq as u32;
        // The header's sequence number says whose reply this is; anything else wrong in a
        // reply carrying the current one (unparsable, another kind, another send time) is
        // that reply altered.
        let ours =
            reply.len() >= HEADER_LEN && header::Packet::new_unchecked(reply).sequence() == current;
        let altered = if ours {
            Verdict::Corrupt
        } else {
            Verdict::Stray
        };
        let Ok(d) = Datagram::parse(reply) else {
            return altered;
        };
        let Message::EchoReply(r) = d.message else {
            return altered;
        };
        if d.sequence != current {
            // An earlier request's reply (within half the 32-bit sequence space) is late.
            let behind = current.wrapping_sub(d.sequence);
            return if behind < 1 << 31 && r.host_send_ns < self.sent_ns {
                Verdict::Late
            } else {
                Verdict::Stray
            };
        }
        if r.host_send_ns != self.sent_ns {
            return Verdict::Corrupt;
        }
        let readings = Readings {
            irq_entry: r.irq_entry,
            rx_seen: r.rx_seen,
            handled: r.handled,
            tx_notify: r.tx.tx_notify,
            prev_notify_ticks: r.tx.prev_notify_ticks,
        };
        let consistent = self.note_facts(&r);
        self.last = consistent.then_some((seq, readings));
        Verdict::Match
    }

    fn observe(&mut self, sample: &Sample) -> io::Result<()> {
        let guest = match (sample.outcome, self.last.take()) {
            (Outcome::Reply { .. }, Some((seq, g))) if seq == sample.id.seq => Some(g),
            _ => None,
        };
        let record = Record {
            sample: *sample,
            guest,
        };
        if let Some(e) = exchange(&record) {
            let hz = self.facts.map_or(1, |f| f.counter.cntfrq_hz);
            self.envelope
                .get_or_insert_with(|| Envelope::new(hz))
                .offer(e);
        }
        if let Some(c) = self.host_counter.as_mut() {
            if self.spool.len().is_multiple_of(HOST_COUNTER_EVERY) {
                c.read();
            }
        }
        self.spool.push(&record)
    }
}

/// The clock exchange a record describes, if the guest stamped both ends.
pub fn exchange(r: &Record) -> Option<Exchange> {
    let Outcome::Reply { rtt_ns, .. } = r.sample.outcome else {
        return None;
    };
    let g = r.guest?;
    let t1 = i64::try_from(r.sample.id.send_mono_ns).ok()?;
    Some(Exchange {
        t1_ns: t1,
        g_rx: g.rx_seen?,
        g_tx: g.tx_notify?,
        t4_ns: t1.checked_add(i64::try_from(rtt_ns).ok()?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmprobe_proto::{CounterKind, GuestMode};

    fn reply(seq: u32, host_send_ns: u64, tx: Option<u64>) -> Vec<u8> {
        let d = Datagram {
            sequence: seq,
            flags: 0,
            message: Message::EchoReply(echo_reply::Repr {
                host_send_ns,
                request_len: 64,
                cntfrq_hz: 62_500_000,
                counter: CounterKind::Virtual,
                mode: GuestMode::Irq,
                irq_entry: Some(1),
                rx_seen: Some(2),
                handled: 3,
                tx: echo_reply::TxStamps {
                    tx_notify: tx,
                    prev_notify_ticks: Some(5),
                },
                padding: 0,
            }),
        };
        let mut buf = vec![0; d.buffer_len()];
        d.emit(&mut buf).unwrap();
        buf
    }

    #[test]
    fn requests_are_echo_requests_of_the_asked_size() {
        let f = ProbeFraming::new(10, Spool::create(None).unwrap());
        assert_eq!(f.request_len(), MIN_REQUEST);
        let mut f = ProbeFraming::new(200, Spool::create(None).unwrap());
        let mut req = vec![0; f.request_len()];
        f.encode(7, &mut req);
        let d = Datagram::parse(&req).unwrap();
        assert_eq!(d.sequence, 7);
        let Message::EchoRequest(r) = d.message else {
            panic!("{d:?}")
        };
        assert_eq!((r.reply_len, r.host_send_ns), (200, f.sent_ns));
    }

    #[test]
    fn matching_late_and_wrong_replies() {
        let mut f = ProbeFraming::new(64, Spool::create(None).unwrap());
        let mut req = vec![0; 64];
        f.encode(4, &mut req);
        let sent = f.sent_ns;
        assert_eq!(f.check(4, &req, &reply(4, sent, Some(4))), Verdict::Match);
        assert_eq!(
            f.check(4, &req, &reply(3, sent - 1, Some(4))),
            Verdict::Late
        );
        assert_eq!(f.check(4, &req, &reply(5, sent, Some(4))), Verdict::Stray);
        assert_eq!(
            f.check(4, &req, &reply(4, sent + 1, Some(4))),
            Verdict::Corrupt
        );
        // Our own request reflected (a plain echo target), or our reply cut short.
        assert_eq!(f.check(4, &req, &req), Verdict::Corrupt);
        assert_eq!(
            f.check(4, &req, &reply(4, sent, Some(4))[..20]),
            Verdict::Corrupt
        );
        assert_eq!(f.check(4, &req, b"garbage"), Verdict::Stray);
    }

    #[test]
    fn observed_samples_carry_their_readings() {
        let mut f = ProbeFraming::new(64, Spool::create(None).unwrap());
        let mut req = vec![0; 64];
        f.encode(1, &mut req);
        assert_eq!(
            f.check(1, &req, &reply(1, f.sent_ns, Some(9))),
            Verdict::Match
        );
        let id = crate::stats::SampleId {
            seq: 1,
            send_unix_ns: 0,
            send_mono_ns: 1_000,
        };
        let ok = Outcome::Reply {
            rtt_ns: 500,
            rx_sw_rtt_ns: None,
        };
        f.observe(&Sample { id, outcome: ok }).unwrap();
        // A lost one next: no readings may leak into it.
        f.observe(&Sample {
            id: crate::stats::SampleId { seq: 2, ..id },
            outcome: Outcome::Lost,
        })
        .unwrap();
        assert_eq!(f.facts().unwrap().counter.cntfrq_hz, 62_500_000);
        let (spool, env, _) = f.into_parts();
        let recs: Vec<Record> = spool.replay().unwrap().map(Result::unwrap).collect();
        assert_eq!(recs[0].guest.unwrap().tx_notify, Some(9));
        assert_eq!(recs[1].guest, None);
        assert_eq!(env.unwrap().kept().len(), 1);
    }

    /// A guest that answers every request, altering the replies of some (by sequence
    /// number): `send` flips a bit of the echoed send time, `kind` makes the reply another
    /// message kind, `cut` truncates it.
    struct AlteringGuest {
        queue: std::collections::VecDeque<Vec<u8>>,
    }

    impl crate::rr::transport::Transport for AlteringGuest {
        fn send(&mut self, request: &[u8]) -> io::Result<()> {
            let d = Datagram::parse(request).unwrap();
            let Message::EchoRequest(r) = d.message else {
                panic!("{d:?}")
            };
            let mut out = reply(d.sequence, r.host_send_ns, Some(4));
            match d.sequence % 4 {
                1 => out[HEADER_LEN] ^= 1, // host send time (first body field)
                2 => out[5] = 0xee,        // header kind
                3 => out.truncate(HEADER_LEN + 3),
                _ => {}
            }
            self.queue.push_back(out);
            Ok(())
        }

        fn recv(
            &mut self,
            buf: &mut [u8],
            _deadline_ns: u64,
            _stop: &std::sync::atomic::AtomicBool,
        ) -> io::Result<crate::rr::transport::Received> {
            use crate::rr::transport::Received;
            Ok(match self.queue.pop_front() {
                Some(r) => {
                    buf[..r.len()].copy_from_slice(&r);
                    Received::Data {
                        len: r.len(),
                        t1_mono_ns: crate::rr::stamp::mono_ns(),
                        rx_sw_unix_ns: None,
                    }
                }
                None => Received::Timeout,
            })
        }
    }

    #[test]
    fn altered_probe_replies_are_errors_not_strays_or_losses() {
        use crate::rr::engine::{measure, Limit, Plan, Progress, SampleSink};
        struct Outcomes(Vec<Outcome>);
        impl SampleSink for Outcomes {
            fn sample(&mut self, s: &Sample) -> io::Result<()> {
                self.0.push(s.outcome);
                Ok(())
            }
        }
        let mut guest = AlteringGuest {
            queue: Default::default(),
        };
        let plan = Plan {
            limit: Limit::Count(40),
            warmup: 0,
            pacing: None,
            timeout: std::time::Duration::from_millis(5),
            spin_wait: false,
        };
        let mut outcomes = Outcomes(Vec::new());
        let (tally, result) = measure(
            &mut guest,
            &mut ProbeFraming::new(64, Spool::create(None).unwrap()),
            &plan,
            &std::sync::atomic::AtomicBool::new(false),
            &Progress::default(),
            &mut outcomes,
        );
        result.unwrap();
        assert_eq!(
            (tally.transactions, tally.errors, tally.stray, tally.lost),
            (10, 30, 0, 0)
        );
        for (seq, o) in outcomes.0.iter().enumerate() {
            let altered = seq % 4 != 0;
            assert_eq!(matches!(o, Outcome::Error), altered, "seq {seq}: {o:?}");
        }
    }
}
