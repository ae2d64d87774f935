//! After the run: fit the clock, then split every sample (one pass over the spool) into
//! host-to-guest, guest residence and guest-to-host, with the guest's own interrupt and notify
//! readings, into bounded histograms and the per-sample log.

use std::io::{self, Write};

use serde::Serialize;

use super::framing::{exchange, GuestFacts};
use super::spool::{Record, Spool};
use super::Envelope;
use crate::clock::{self, ClockError, ClockMapping, Exact, MinRttConfig};
use crate::rr::log::SampleLog;
use crate::stats::{Recorder, SampleId, Summary};

/// Extra `--log` columns of a probe run, after the rr ones.
pub const LOG_COLUMNS: &str = "h2g_ns,residence_ns,g2h_ns,irq_to_rx_ns,notify_exit_ns,\
guest_irq_entry,guest_rx_seen,guest_handled,guest_tx_notify,guest_prev_notify_ticks";

/// The clock mapping as reported, with what it rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClockReport {
    /// The mapping (method, offset, drift, uncertainty, asymmetry bound, ...).
    #[serde(flatten)]
    pub mapping: ClockMapping,
    /// Which guest counter was read (`virtual` or `physical`).
    pub counter: &'static str,
    /// The host clock guest time was mapped onto.
    pub host_clock: &'static str,
    /// Guest counter value at which `offset_ns` holds exactly; away from it add the drift.
    pub reference_ticks: u64,
    /// Host time (ns) of `reference_ticks`.
    pub reference_host_ns: i64,
    /// Exchanges kept for the fit (bounded; see `probe::envelope`).
    pub candidates_kept: usize,
    /// Samples whose h2g or g2h is below zero by more than the uncertainty: each one is a
    /// contradiction of the mapping (0 when it holds).
    pub samples_outside_bound: u64,
}

/// Where the time of a probe run went. The JSON keys are a contract (`rr --probe`,
/// `run --probe`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    /// Host send to the guest driver seeing the request.
    pub h2g_us: Summary,
    /// Guest driver seeing the request to the reply's TX notify.
    pub guest_residence_us: Summary,
    /// Guest TX notify to the host receiving the reply.
    pub g2h_us: Summary,
    /// Guest interrupt entry to the driver seeing the request (irq mode; `samples` 0 in poll),
    /// from the samples whose interrupt entry is their own (see `irq_entry_before_send`).
    pub irq_to_rx_us: Summary,
    /// Duration of the previous reply's TX notify (the exit to QEMU or vhost).
    pub notify_exit_us: Summary,
    /// The clock mapping.
    pub clock: ClockReport,
    /// Guest mode the replies report.
    pub guest_mode: &'static str,
    /// Guest counter frequency (Hz).
    pub cntfrq_hz: u32,
    /// Replies that carried both guest readings (the split samples).
    pub stamped: u64,
    /// Replies without them (a guest without driver stamps, or facts that changed mid-run).
    pub unstamped: u64,
    /// Samples whose interrupt entry maps to before the request was sent (beyond the clock
    /// uncertainty): that interrupt was not this request's (e.g. an earlier TX completion),
    /// so they are left out of `irq_to_rx_us` (the log's `guest_irq_entry` still has it).
    pub irq_entry_before_send: u64,
}

/// Why no breakdown could be made.
#[derive(Debug, thiserror::Error)]
pub enum BreakdownError {
    /// No reply carried guest readings.
    #[error("no reply carried the guest's receive and transmit readings: is the target a vmprobe guest's probe port (7777)?")]
    NoReadings,
    /// The clock could not be mapped.
    #[error("mapping the guest clock: {0}")]
    Clock(#[from] ClockError),
    /// Reading the spool or writing the log.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A series of signed values (ns) in a [`Recorder`], shifted up by `shift` so values down to
/// `-shift` stay exact; below that they are clamped (and counted by the caller).
struct Signed {
    rec: Recorder,
    shift: i64,
    min: i64,
    max: i64,
}

impl Signed {
    fn new(shift: i64) -> Self {
        Signed {
            rec: Recorder::new(0),
            shift,
            min: i64::MAX,
            max: i64::MIN,
        }
    }

    fn record(&mut self, v: i64, id: SampleId) {
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.rec
            .record(v.saturating_add(self.shift).max(0) as u64, id);
    }

    fn summary(&self) -> Summary {
        let mut s = self.rec.summary();
        if s.samples == 0 {
            return s;
        }
        let d = self.shift as f64 / 1e3;
        for v in [
            &mut s.mean_us,
            &mut s.p50_us,
            &mut s.p90_us,
            &mut s.p99_us,
            &mut s.p999_us,
            &mut s.p9999_us,
        ] {
            *v = v.map(|x| x - d);
        }
        s.min_us = Some(self.min as f64 / 1e3);
        s.max_us = Some(self.max as f64 / 1e3);
        s
    }
}

/// Fits the clock on `envelope`, then replays `spool` into the breakdown, writing each sample
/// with its split to `log` when given.
pub fn analyse(
    spool: Spool,
    envelope: Option<&Envelope>,
    facts: Option<GuestFacts>,
    exact: Option<&Exact>,
    mut log: Option<SampleLog>,
) -> Result<Breakdown, BreakdownError> {
    let (Some(envelope), Some(facts)) = (envelope, facts) else {
        // Still write the log: the samples are real even without a split.
        if let Some(log) = log.as_mut() {
            for r in spool.replay()? {
                write_row(log, &r?, None)?;
            }
            log.flush(0)?;
        }
        return Err(BreakdownError::NoReadings);
    };
    let kept = envelope.kept();
    let mut mapping = clock::select(&kept, facts.counter, exact, &MinRttConfig::default())?;
    mapping.exchanges = envelope.offered();
    mapping.rejected += envelope.inconsistent();
    let (reference_ticks, reference_host_ns) = mapping.reference();
    let shift = mapping.uncertainty_ns.ceil().clamp(0.0, 1e12) as i64;
    let mut h2g = Signed::new(shift);
    let mut residence = Signed::new(0);
    let mut g2h = Signed::new(shift);
    let mut irq_to_rx = Recorder::new(0);
    let mut notify = Recorder::new(0);
    let (mut stamped, mut unstamped, mut outside, mut early_irq) = (0u64, 0u64, 0u64, 0u64);
    for r in spool.replay()? {
        let r = r?;
        let id = r.sample.id;
        let split = exchange(&r).map(|e| (e, mapping.one_way(&e)));
        let mut extra = None;
        let mut foreign_irq = false;
        if let Some((e, w)) = split {
            stamped += 1;
            h2g.record(w.h2g_ns, id);
            residence.record(w.residence_ns, id);
            g2h.record(w.g2h_ns, id);
            let bound_rx = mapping.uncertainty_at_ns(e.g_rx);
            let bound_tx = mapping.uncertainty_at_ns(e.g_tx);
            if (w.h2g_ns as f64) < -bound_rx || (w.g2h_ns as f64) < -bound_tx {
                outside += 1;
            }
            if let Some(irq) = r.guest.and_then(|g| g.irq_entry) {
                let at = mapping.to_host_ns(irq) as f64;
                if at < e.t1_ns as f64 - mapping.uncertainty_at_ns(irq) {
                    early_irq += 1;
                    foreign_irq = true;
                }
            }
            extra = Some(w);
        } else if matches!(r.sample.outcome, crate::rr::engine::Outcome::Reply { .. }) {
            unstamped += 1;
        }
        let g = r.guest.unwrap_or_default();
        let irq = g
            .irq_entry
            .filter(|_| !foreign_irq)
            .zip(g.rx_seen)
            .map(|(i, rx)| mapping.duration_ns(rx.saturating_sub(i)).round() as u64);
        let exit = g
            .prev_notify_ticks
            .map(|t| mapping.duration_ns(t).round() as u64);
        if r.guest.is_some() {
            if let Some(v) = irq {
                irq_to_rx.record(v, id);
            }
            if let Some(v) = exit {
                notify.record(v, id);
            }
        }
        if let Some(log) = log.as_mut() {
            write_row(log, &r, extra.map(|w| (w, irq, exit)))?;
        }
    }
    if let Some(log) = log.as_mut() {
        log.flush(0)?;
    }
    Ok(Breakdown {
        h2g_us: h2g.summary(),
        guest_residence_us: residence.summary(),
        g2h_us: g2h.summary(),
        irq_to_rx_us: irq_to_rx.summary(),
        notify_exit_us: notify.summary(),
        clock: ClockReport {
            counter: facts.counter.kind.name(),
            host_clock: "CLOCK_MONOTONIC",
            reference_ticks,
            reference_host_ns,
            candidates_kept: kept.len(),
            samples_outside_bound: outside,
            mapping,
        },
        guest_mode: facts.mode.name(),
        cntfrq_hz: facts.counter.cntfrq_hz,
        stamped,
        unstamped,
        irq_entry_before_send: early_irq,
    })
}

type Split = (clock::OneWay, Option<u64>, Option<u64>);

/// One log row: the rr columns, then [`LOG_COLUMNS`].
fn write_row(log: &mut SampleLog, r: &Record, split: Option<Split>) -> io::Result<()> {
    let mut extra = Vec::with_capacity(128);
    let opt = |v: Option<u64>| v.map_or_else(String::new, |v| v.to_string());
    match split {
        Some((w, irq, exit)) => write!(
            extra,
            "{},{},{},{},{}",
            w.h2g_ns,
            w.residence_ns,
            w.g2h_ns,
            opt(irq),
            opt(exit)
        )?,
        None => extra.extend_from_slice(b",,,,"),
    }
    match r.guest {
        Some(g) => write!(
            extra,
            ",{},{},{},{},{}",
            opt(g.irq_entry),
            opt(g.rx_seen),
            g.handled,
            opt(g.tx_notify),
            opt(g.prev_notify_ticks)
        )?,
        None => extra.extend_from_slice(b",,,,,"),
    }
    log.write_extra(&r.sample, std::str::from_utf8(&extra).unwrap_or_default())
}
