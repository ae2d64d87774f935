//! `vmprobe rr --probe`: the rr engine with timestamped echo requests, then the breakdown.

use std::net::SocketAddr;

use super::breakdown::{self, Breakdown, LOG_COLUMNS};
use super::framing::ProbeFraming;
use super::host_counter::{self, HostCounter};
use super::kvm_ptp::PtpSession;
use super::spool::Spool;
use super::ClockChoice;
use crate::clock::Exact;
use crate::rr::log::SampleLog;
use crate::rr::{self, Control, Endpoint, Proto, RrError, RrOptions, RrRun};

/// A finished probe run: the rr run and, when the guest's readings allowed one, the breakdown.
#[derive(Debug)]
pub struct ProbeRun {
    /// The round trips, as `vmprobe rr` measures them.
    pub rr: RrRun,
    /// The split, or why there is none (the round trips stay valid).
    pub breakdown: Result<Breakdown, String>,
}

/// Checks what `--probe` needs on top of the rr options.
pub fn validate(options: &RrOptions, clock: ClockChoice) -> Result<(), RrError> {
    options.validate()?;
    if clock == ClockChoice::SharedCounter {
        host_counter::available().map_err(|e| RrError::Options(e.to_string()))?;
    }
    if options.proto != Proto::Udp {
        return Err(RrError::Options(
            "--probe speaks the probe protocol, which is UDP: drop --proto tcp".into(),
        ));
    }
    Ok(())
}

/// Runs `options` against a probe target (`HOST:PORT` of the guest's UDP 7777).
pub fn run_probe(
    options: &RrOptions,
    control: Control<'_>,
    clock: ClockChoice,
) -> Result<ProbeRun, RrError> {
    validate(options, clock)?;
    let address = rr::resolve(&options.target)?;
    run_probe_with(
        options,
        address,
        control,
        move || rr::connect(address, Proto::Udp, options.timeout),
        clock,
    )
}

/// [`run_probe`] with the caller's connect step, run on the measuring thread (e.g. inside the
/// client network namespace of `vmprobe run`).
pub fn run_probe_with<C>(
    options: &RrOptions,
    address: SocketAddr,
    control: Control<'_>,
    connect: C,
    clock: ClockChoice,
) -> Result<ProbeRun, RrError>
where
    C: FnOnce() -> Result<Endpoint, RrError> + Send,
{
    validate(options, clock)?;
    // The log is written after the clock fit, with the split in each row; create it now so a
    // bad path fails before anything is measured.
    let log = match &options.log {
        Some(path) => Some(SampleLog::create_with_columns(path, LOG_COLUMNS).map_err(
            |source| RrError::LogFile {
                path: path.clone(),
                source,
            },
        )?),
        None => None,
    };
    let spool_dir = options.log.as_deref().and_then(|p| p.parent());
    let spool = Spool::create(spool_dir).map_err(|source| RrError::Setup {
        what: "cannot create the probe's spool file",
        source,
    })?;
    let mut framing = ProbeFraming::new(options.size, spool);
    if clock == ClockChoice::SharedCounter {
        // Readings before, during (every 1024 samples) and after the run.
        let mut counter = HostCounter::default();
        counter.read();
        framing = framing.with_host_counter(counter);
    }
    let engine_options = RrOptions {
        log: None,
        ..options.clone()
    };
    // KVM PTP readings go over a clone of the run's own socket (opened where the engine opens
    // it, e.g. inside the client namespace): one end before the first echo, one after the last.
    let session = std::sync::Mutex::new(None::<Result<PtpSession, String>>);
    let slot = &session;
    let connect = move || {
        let endpoint = connect()?;
        if clock == ClockChoice::KvmPtp {
            let opened = match &endpoint {
                crate::rr::Endpoint::Udp(socket) => socket
                    .try_clone()
                    .map(|s| {
                        let mut session = PtpSession::new(s);
                        session.take();
                        session
                    })
                    .map_err(|e| format!("kvm-ptp: cannot clone the probe socket: {e}")),
                crate::rr::Endpoint::Tcp(_) => Err("kvm-ptp needs the UDP probe socket".into()),
            };
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(opened);
        }
        Ok(endpoint)
    };
    let run = rr::run_with_framing(&engine_options, address, control, connect, &mut framing)?;
    let facts = framing.facts();
    let (spool, envelope, counter) = framing.into_parts();
    let exact = match clock {
        ClockChoice::MinRtt => None,
        ClockChoice::SharedCounter => counter.map(|mut c| {
            c.read();
            Exact::SharedCounter(c.into_shared())
        }),
        ClockChoice::KvmPtp => Some(
            match session.into_inner().unwrap_or_else(|p| p.into_inner()) {
                Some(Ok(mut s)) => {
                    s.take();
                    s.finish().map_or_else(Exact::Unavailable, Exact::KvmPtp)
                }
                Some(Err(why)) => Exact::Unavailable(why),
                None => Exact::Unavailable("kvm-ptp: the probe socket was never opened".into()),
            },
        ),
    };
    let breakdown = breakdown::analyse(spool, envelope.as_ref(), facts, exact.as_ref(), log)
        .map_err(|e| e.to_string());
    Ok(ProbeRun { rr: run, breakdown })
}
