//! Asking the guest for KVM PTP readings (`--clock kvm-ptp`), before and after a run.
//!
//! Each call is a probe-protocol clock request on the run's own socket path: the guest asks
//! KVM for host CLOCK_REALTIME and its counter at one instant, or says why it cannot. Right
//! after each answer the host brackets a realtime read between two monotonic reads, keeping
//! the tightest of [`BRACKET_TRIES`], which is what the mapping steps realtime to monotonic by.

use std::io;
use std::net::UdpSocket;
use std::time::Duration;

use vmprobe_proto::clock_reply::{Absence, MAX_READINGS};
use vmprobe_proto::error_reply::Code;
use vmprobe_proto::{clock_request, CounterKind, Datagram, Message};

use crate::clock::{KvmPtp, PtpCall, RealtimeBracket};
use crate::rr::stamp::{mono_ns, realtime_ns};

/// Calls per counter kind at each end of the run.
pub const CALLS: usize = 4;
/// Realtime brackets tried after each call (the tightest is kept).
pub const BRACKET_TRIES: usize = 32;
/// How long one call is awaited.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// Sequence numbers of clock requests, far from the echo requests' (which count from 0).
const SEQUENCE_BASE: u32 = 0xc10c_0000;

/// The tightest of `tries` monotonic-realtime-monotonic reads.
pub fn tightest_bracket(tries: usize) -> RealtimeBracket {
    (0..tries.max(1))
        .map(|_| {
            let before = mono_ns();
            let realtime = realtime_ns();
            let after = mono_ns();
            RealtimeBracket {
                mono_before_ns: before as i64,
                realtime_ns: realtime as i64,
                mono_after_ns: after as i64,
            }
        })
        .min_by_key(|b| b.width_ns())
        .expect("at least one try")
}

/// Gathers PTP readings over a run. A refusal ends the calls for that counter kind (the
/// guest says why); silence or socket trouble ends the session.
#[derive(Debug)]
pub struct PtpSession {
    socket: UdpSocket,
    sequence: u32,
    readings: KvmPtp,
    absent: Option<String>,
}

impl PtpSession {
    /// A session on `socket` (connected to the guest's probe port; a clone of the run's).
    pub fn new(socket: UdpSocket) -> Self {
        PtpSession {
            socket,
            sequence: SEQUENCE_BASE,
            readings: KvmPtp::default(),
            absent: None,
        }
    }

    /// Takes [`CALLS`] calls for each counter kind the guest has not refused (which one it
    /// stamps with is only known from its echo replies).
    pub fn take(&mut self) {
        for kind in [CounterKind::Virtual, CounterKind::Physical] {
            for _ in 0..CALLS {
                if self.absent.is_some() || self.readings.refused.iter().any(|(k, _)| *k == kind) {
                    break;
                }
                match self.call(kind) {
                    Ok(Ok(call)) => self.readings.calls.push(call),
                    Ok(Err(refusal)) => self.readings.refused.push((kind, refusal)),
                    Err(why) => self.absent = Some(why),
                }
            }
        }
    }

    /// The readings, or why there are none to trust.
    pub fn finish(self) -> Result<KvmPtp, String> {
        match self.absent {
            Some(why) => Err(why),
            None => Ok(self.readings),
        }
    }

    /// One call: the readings or the guest's refusal, or (outer error) no answer at all.
    fn call(&mut self, counter: CounterKind) -> Result<Result<PtpCall, String>, String> {
        self.sequence = self.sequence.wrapping_add(1);
        let request = Datagram {
            sequence: self.sequence,
            flags: 0,
            message: Message::ClockRequest(clock_request::Repr {
                counter,
                count: MAX_READINGS as u8,
            }),
        };
        let mut buf = [0u8; 1500];
        let n = request.emit(&mut buf).map_err(|e| e.to_string())?;
        let io_err = |e: io::Error| format!("kvm-ptp: probe socket: {e}");
        self.socket
            .set_read_timeout(Some(CALL_TIMEOUT))
            .map_err(io_err)?;
        let sent_ns = mono_ns() as i64;
        self.socket.send(&buf[..n]).map_err(io_err)?;
        loop {
            let n = match self.socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(format!(
                        "kvm-ptp: the guest did not answer a clock request within {CALL_TIMEOUT:?} (not a vmprobe guest with KVM PTP support?)"
                    ))
                }
                Err(e) => return Err(io_err(e)),
            };
            let received_ns = mono_ns() as i64;
            // Anything else (a late echo reply) is not ours.
            let Ok(reply) = Datagram::parse(&buf[..n]) else {
                continue;
            };
            if reply.sequence != self.sequence {
                continue;
            }
            return match reply.message {
                Message::ClockReply(r) if r.counter == counter => Ok(Ok(PtpCall {
                    counter,
                    readings: r.readings().to_vec(),
                    sent_ns,
                    received_ns,
                    bracket: tightest_bracket(BRACKET_TRIES),
                })),
                Message::Error(e) if e.code == Code::ClockAbsent => Ok(Err(format!(
                    "kvm-ptp absent in the guest: {}",
                    Absence::from_u32(e.detail)
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| format!("unknown reason {}", e.detail))
                ))),
                other => Err(format!(
                    "kvm-ptp: the guest answered a clock request with {:?}",
                    other.kind()
                )),
            };
        }
    }
}
